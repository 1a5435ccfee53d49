//! The loader: applies change events from the clean topics to PostgreSQL — batched,
//! set-based, exactly once in effect — and evolves target tables as source schemas change.
//!
//! Parts: [`source`] (Kafka consumer thread, batches, stored offsets at assignment),
//! [`prepare`] (decode, coalesce, encode, one batch ahead), [`apply`] (one PostgreSQL
//! transaction per batch and session), [`target`] and [`statements`] (pure DDL
//! and SQL generation), [`dead_letters`], [`grpc`] (control API), [`service`] (wiring).
//! Schemas come from the kit's schema registry.

pub mod apply;
pub mod config;
pub mod copy_binary;
pub mod dead_letters;
pub mod event;
pub mod grpc;
pub mod metrics;
pub mod naming;
pub mod prepare;
pub mod service;
pub mod source;
pub mod statements;
pub mod store;
pub mod tables;
pub mod target;

pub mod proto {
    //! The loader's control API generated from `proto/cdc/loader/v1`. Never edited by hand.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cdc.loader.v1");

    /// Encoded descriptor set of the loader API, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cdc_loader_descriptor");
}

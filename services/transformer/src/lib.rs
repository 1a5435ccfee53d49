//! The transformer: reads change events from the raw topics, applies declarative rules
//! (column selection and renaming, routing, masking, type conversions, row filters, computed
//! columns, dropped operations) and writes the clean topics, exactly once, with dead letters
//! for what cannot be transformed.
//!
//! Parts: [`rules`] (configuration, validation, per-schema plans and value operations),
//! [`expr`] (the row-filter language), [`engine`] (one record's transform), [`pipeline`] (the
//! consume-transform-produce loop in Kafka transactions), [`parallel`] (transform threads),
//! [`output`] (the producing side),
//! [`dead_letters`] (list and replay), [`grpc`] (control API), [`service`] (wiring).

pub mod config;
pub mod dead_letters;
pub mod engine;
pub mod expr;
pub mod grpc;
pub mod metrics;
pub mod output;
pub mod parallel;
pub mod pipeline;
pub mod rules;
pub mod service;

pub mod proto {
    //! The transformer's control API generated from `proto/cdc/transformer/v1`. Never edited
    //! by hand.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cdc.transformer.v1");

    /// Encoded descriptor set of the transformer API, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cdc_transformer_descriptor");
}

//! The extractor: reads SQL Server's change data capture tables and publishes ordered change
//! events to Kafka, snapshot then stream, exactly once.
//!
//! Parts: [`config`], [`control`] (commands from the control topic), [`sql`] (connections and errors), [`discovery`] (captured tables from
//! SQL Server's metadata), [`values`] (exact value conversion), [`source`] (the queries), [`change_reader`] (pages of changes read ahead),
//! [`table`] (a table's stream and snapshot state), [`unit`] (one work unit's loop and its
//! Kafka transactions), [`checkpoint`] (positions in the offsets topic), [`assign`] (work
//! shared between instances), [`registry`], [`grpc`] (control API), [`metrics`], [`service`]
//! (wiring).

pub mod assign;
pub mod change_reader;
pub mod checkpoint;
pub mod config;
pub mod control;
pub mod discovery;
pub mod grpc;
pub mod metrics;
pub mod registry;
pub mod service;
pub mod source;
pub mod sql;
pub mod table;
pub mod unit;
pub mod values;

pub mod proto {
    //! The extractor's control API and checkpoint, generated from `proto/cdc/extractor/v1`.
    //! Never edited by hand.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cdc.extractor.v1");

    /// Encoded descriptor set of the extractor API, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cdc_extractor_descriptor");
}

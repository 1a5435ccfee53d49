//! The reconciler: proves that PostgreSQL holds what SQL Server holds, table by table, and
//! names the rows that differ.
//!
//! Parts: [`config`], [`canonical`] (the canonical form as SQL for both engines), [`rules`]
//! (what the transformer's rules change), [`plan`] (tables and column pairs), [`databases`]
//! (the queries' answers), [`compare`] (buckets, drill-down, settling), [`runs`] (runs and
//! their progress), [`report`] (Markdown and JSON), [`repair`] (re-snapshot commands), [`store`] (reports in PostgreSQL),
//! [`schedule`], [`grpc`] (control API), [`cli`] (`cdc-reconciler run`), [`metrics`],
//! [`service`] (wiring).

pub mod canonical;
pub mod cli;
pub mod compare;
pub mod config;
pub mod databases;
pub mod grpc;
pub mod metrics;
pub mod plan;
pub mod repair;
pub mod report;
pub mod rules;
pub mod runs;
pub mod schedule;
pub mod service;
pub mod store;

pub mod proto {
    //! The reconciler's control API, generated from `proto/cdc/reconciler/v1`. Never edited
    //! by hand.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cdc.reconciler.v1");

    /// Encoded descriptor set of the reconciler API, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cdc_reconciler_descriptor");
}

//! Test helpers shared by the integration tests of every crate.
//!
//! Tests run against the real local stack (`make stack-up`): each test gets its own Kafka
//! topics and its own PostgreSQL database, removed when the test ends. A missing stack is a
//! loud failure naming the command to run, never a silent skip.
// Test support code: panicking with a clear message is how a harness reports a broken setup.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

pub mod bench;
pub mod control;
pub mod events;
pub mod grpcurl;
pub mod kafka;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod service_contract;
pub mod sqlserver;
pub mod stack;
pub mod vault;

pub use stack::Stack;

//! Test helpers shared by the integration tests of every crate.

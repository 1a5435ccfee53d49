//! A SQL Server simulator that speaks TDS 7.4, so that the real `tiberius` client (and any
//! other TDS client) can talk to it where no SQL Server can run. It behaves as SQL Server
//! 2019/2022 does; where it cannot, it answers with SQL Server's error for the case, or with
//! the simulator-only error 50000 naming what it does not implement.
//!
//! Start one in-process with [`Simulator::start`], or run the `mssql-sim` binary.

pub mod engine;
pub mod script;
pub mod server;
pub mod tds;

pub use server::{Simulator, SimulatorConfig};

//! The Tabular Data Stream protocol, server side, as SQL Server 2019/2022 speak TDS 7.4.

pub mod login;
pub mod packet;
pub mod prelogin;
pub mod rpc;
pub mod token;
pub mod types;

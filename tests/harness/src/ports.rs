//! Free loopback ports for processes a test starts.

use std::net::{SocketAddr, TcpListener};

/// A loopback address whose port was free a moment ago.
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind an ephemeral loopback port")
}

//! Free loopback ports for processes a test starts.
//!
//! A port is picked, checked free, released, and only then bound by the service under test, so
//! something else can take it in between. Asking the kernel for an ephemeral port (bind to 0)
//! makes that likely: every outgoing connection (the services' Kafka and PostgreSQL clients
//! open dozens) draws its local port from the same ephemeral range, and a reconciler once
//! found its gRPC port taken by another service's Kafka connection. So ports come from a range
//! below the kernel's ephemeral one (32768-60999 by default) and above the local stack's, each
//! handed out once per test process, starting at a per-process offset so that two test
//! processes rarely probe the same ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// First port handed out (the local stack's ports are all below it).
const FIRST_PORT: u16 = 27_000;
/// One past the last port handed out (the kernel's ephemeral range starts at 32768).
const END_PORT: u16 = 32_700;

/// How many ports this process has handed out or skipped.
static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// A loopback address whose port was free a moment ago, outside the kernel's ephemeral range
/// and never handed out before by this process.
pub fn free_local_addr() -> SocketAddr {
    let span = u32::from(END_PORT - FIRST_PORT);
    let offset = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST_PORT + u16::try_from((offset + n) % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return listener
                .local_addr()
                .expect("a bound listener has a local address");
        }
    }
    panic!("no free loopback port in {FIRST_PORT}..{END_PORT}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_and_stay_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_local_addr().port()).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(
            ports.iter().all(|p| (FIRST_PORT..END_PORT).contains(p)),
            "{ports:?}"
        );
    }
}

//! The real `grpcurl`, as operators use it against the services.

use std::net::SocketAddr;
use std::process::Command;

use crate::Stack;

/// What one grpcurl call printed and whether it succeeded.
#[derive(Debug)]
pub struct GrpcurlOutput {
    /// Exit status was zero.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs grpcurl in plaintext mode against `addr` with `args` before the address and `method`
/// after it (empty for `list`-style calls that put the verb last).
pub fn grpcurl(stack: &Stack, addr: SocketAddr, before: &[&str], after: &[&str]) -> GrpcurlOutput {
    assert!(
        stack.grpcurl.exists(),
        "grpcurl not found at {}: run `make stack-up`, which installs it",
        stack.grpcurl.display()
    );
    let output = Command::new(&stack.grpcurl)
        .arg("-plaintext")
        .args(before)
        .arg(addr.to_string())
        .args(after)
        .output()
        .unwrap_or_else(|e| panic!("cannot run grpcurl: {e}"));
    GrpcurlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Calls `method` with the JSON body `data`, with `authorization: Bearer <token>` when given.
pub fn call(
    stack: &Stack,
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    data: &str,
) -> GrpcurlOutput {
    let header = token.map(|t| format!("authorization: Bearer {t}"));
    let mut before = vec!["-d", data];
    if let Some(header) = &header {
        before.extend(["-H", header.as_str()]);
    }
    grpcurl(stack, addr, &before, &[method])
}

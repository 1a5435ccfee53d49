//! What every service binary must do on its control plane, written once and run against each
//! binary from its own crate's tests: start with secrets from Vault, answer `grpcurl` through
//! reflection, refuse control calls without the token, report status, pause and resume, export
//! metrics, stop cleanly on SIGTERM, and never print a secret. And: refuse bad configuration
//! with a message naming the key.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::grpcurl::{call, grpcurl};
use crate::ports::free_local_addr;
use crate::process::{ServiceProcess, run_to_exit};
use crate::{Stack, vault};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(35);

/// A service configuration for the stack, with the control token read from Vault at `secret_path`.
fn config_toml(
    stack: &Stack,
    grpc: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    secret_path: &str,
) -> String {
    format!(
        r#"
[grpc]
listen = "{grpc}"
auth_token = "vault:secret/{secret_path}#token"

[metrics]
listen = "{metrics}"

[telemetry]
log_filter = "info"

[vault]
address = "{vault}"
token = "env:VAULT_TOKEN"

[kafka]
bootstrap_servers = "{kafka}"
"#,
        vault = stack.vault_addr,
        kafka = stack.kafka_bootstrap,
    )
}

/// A control token and the Vault path holding it, unique to one test.
async fn seed_control_token(stack: &Stack) -> (String, String) {
    let path = format!("cdc-test/{}", uuid::Uuid::new_v4().simple());
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    vault::write_secret(stack, &path, &[("token", &token)]).await;
    (path, token)
}

/// The whole control-plane contract against the binary at `binary`, named `service`.
///
/// `extra_config` is appended to the common sections: the service's own required sections.
pub async fn control_plane(binary: &Path, service: &str, extra_config: &str) {
    let stack = Stack::get();
    let (secret_path, token) = seed_control_token(&stack).await;
    let (grpc, metrics) = (free_local_addr(), free_local_addr());
    let config = config_toml(&stack, grpc, metrics, &secret_path) + extra_config;
    let env = [("VAULT_TOKEN", stack.vault_token.as_str())];
    let mut process = ServiceProcess::spawn(binary, &config, &env, grpc, metrics);
    process.wait_until_listening(START_TIMEOUT);

    let listed = grpcurl(&stack, grpc, &[], &["list"]);
    assert!(listed.success, "grpcurl list failed: {}", listed.stderr);
    for expected in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "cdc.control.v1.Control",
    ] {
        assert!(
            listed.stdout.lines().any(|l| l.trim() == expected),
            "`grpcurl list` lacks {expected}:\n{}",
            listed.stdout
        );
    }

    let health = call(&stack, grpc, None, "grpc.health.v1.Health/Check", "{}");
    assert!(
        health.success && health.stdout.contains("SERVING"),
        "health check: {health:?}"
    );

    let refused = call(&stack, grpc, None, "cdc.control.v1.Control/GetStatus", "{}");
    assert!(
        !refused.success && refused.stderr.contains("Unauthenticated"),
        "no token must be refused: {refused:?}"
    );
    let wrong = call(
        &stack,
        grpc,
        Some("not-the-token"),
        "cdc.control.v1.Control/GetStatus",
        "{}",
    );
    assert!(
        !wrong.success && wrong.stderr.contains("Unauthenticated"),
        "a wrong token must be refused: {wrong:?}"
    );

    let status = status_json(&stack, grpc, &token);
    assert_eq!(status["service"], service);
    assert_eq!(status["state"], "STATE_RUNNING");

    let paused = call(
        &stack,
        grpc,
        Some(&token),
        "cdc.control.v1.Control/Pause",
        r#"{"reason":"contract test"}"#,
    );
    assert!(paused.success, "pause: {paused:?}");
    let status = status_json(&stack, grpc, &token);
    assert_eq!(status["state"], "STATE_PAUSED");
    assert_eq!(status["pauseReason"], "contract test");
    let metrics_text = scrape(metrics);
    assert!(
        metrics_text.contains(&format!("cdc_{service}_paused 1")),
        "paused gauge:\n{metrics_text}"
    );

    let resumed = call(
        &stack,
        grpc,
        Some(&token),
        "cdc.control.v1.Control/Resume",
        "{}",
    );
    assert!(resumed.success, "resume: {resumed:?}");
    assert_eq!(status_json(&stack, grpc, &token)["state"], "STATE_RUNNING");

    assert!(
        scrape(metrics).contains(&format!("cdc_{service}_build_info{{")),
        "metrics lack build_info"
    );
    wait_for_kafka_component(&stack, grpc, &token);

    let status = process.terminate(STOP_TIMEOUT);
    assert!(
        status.success(),
        "SIGTERM must stop the service cleanly, got {status}:\n{}",
        process.output()
    );
    let output = process.output();
    assert!(
        output.contains("\"stopped cleanly\""),
        "no clean-stop log line:\n{output}"
    );
    assert!(
        !output.contains(&token),
        "the control token leaked into the output:\n{output}"
    );
    assert!(
        !output.contains(&stack.vault_token),
        "the Vault token leaked into the output"
    );
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "log line is not JSON: {line}"
        );
    }
}

fn status_json(stack: &Stack, grpc: std::net::SocketAddr, token: &str) -> serde_json::Value {
    let answer = call(
        stack,
        grpc,
        Some(token),
        "cdc.control.v1.Control/GetStatus",
        "{}",
    );
    assert!(
        answer.success,
        "GetStatus with the token failed: {answer:?}"
    );
    serde_json::from_str(&answer.stdout)
        .unwrap_or_else(|e| panic!("GetStatus is not JSON ({e}): {}", answer.stdout))
}

fn wait_for_kafka_component(stack: &Stack, grpc: std::net::SocketAddr, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = status_json(stack, grpc, token);
        let kafka = status["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "kafka").cloned());
        if let Some(kafka) = &kafka
            && kafka["state"] == "STATE_RUNNING"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the kafka component never became RUNNING: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The Prometheus text a service serves on `metrics` (panics unless it answers 200).
pub fn scrape(metrics: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(metrics)
        .unwrap_or_else(|e| panic!("cannot reach /metrics on {metrics}: {e}"));
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n")
        .expect("cannot send the scrape request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("cannot read the scrape response");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "scrape failed:\n{response}"
    );
    response
}

/// Bad configuration stops the binary before it serves anything, with exit code 2 and a message
/// naming the key; a secret value never appears in the output.
/// `extra_config` is appended to the common sections, as for [`control_plane`].
pub async fn configuration_errors(binary: &Path, extra_config: &str) {
    let stack = Stack::get();
    let (secret_path, token) = seed_control_token(&stack).await;
    let good =
        config_toml(&stack, free_local_addr(), free_local_addr(), &secret_path) + extra_config;
    let env = [("VAULT_TOKEN", stack.vault_token.as_str())];
    let cases: [(&str, String, &str); 6] = [
        (
            "unknown key",
            good.replace("[metrics]\n", "[metrics]\nlisten_port = 1\n"),
            "metrics.listen_port",
        ),
        (
            "bad value",
            good.replace("[telemetry]\n", "[telemetry]\ntrace_sample_ratio = 7.5\n"),
            "telemetry.trace_sample_ratio",
        ),
        (
            "bad address",
            good.replacen("listen = \"127.0.0.1:", "listen = \"localhost-ish:", 1),
            "grpc.listen",
        ),
        (
            "plain secret",
            good.replace(&format!("vault:secret/{secret_path}#token"), &token),
            "grpc.auth_token",
        ),
        (
            "missing Vault secret",
            good.replace(&secret_path, "cdc-test/does-not-exist"),
            "grpc.auth_token",
        ),
        (
            "missing Vault field",
            good.replace("#token", "#no_such_field"),
            "grpc.auth_token",
        ),
    ];
    for (case, config, key) in cases {
        let finished = run_to_exit(binary, &config, &env, Duration::from_secs(20));
        assert_exit_code(finished.status, 2, case, &finished.all_output());
        assert!(
            finished.stderr.contains(key),
            "{case}: the message must name `{key}`:\n{}",
            finished.stderr
        );
        assert!(
            !finished.all_output().contains(&token),
            "{case}: the token leaked:\n{}",
            finished.all_output()
        );
    }
}

fn assert_exit_code(status: ExitStatus, expected: i32, case: &str, output: &str) {
    assert_eq!(
        status.code(),
        Some(expected),
        "{case}: expected exit code {expected}, got {status}:\n{output}"
    );
}

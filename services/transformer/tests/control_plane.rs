//! The control-plane contract every binary keeps (`cdc_test_harness::service_contract`),
//! run against `cdc-transformer` as a real process on the local stack.

use std::path::Path;

use cdc_test_harness::service_contract;

const BINARY: &str = env!("CARGO_BIN_EXE_cdc-transformer");

#[tokio::test]
async fn control_plane_answers_grpcurl_and_refuses_calls_without_the_token() {
    service_contract::control_plane(Path::new(BINARY), "transformer", "").await;
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message_naming_the_key() {
    service_contract::configuration_errors(Path::new(BINARY), "").await;
}

/// A rule set with errors stops start-up (exit 2) with every error named by key and position.
#[test]
fn bad_rules_stop_start_up_naming_each_rule_and_position() {
    let config = r#"
[grpc]
auth_token = "env:CDC_TEST_TOKEN"
[metrics]
[kafka]
bootstrap_servers = "127.0.0.1:1"

[[rules]]
tables = "shop.dbo.orders"
filter = "amount > AND status = 'paid'"

[[rules]]
tables = "shop.dbo.orders"
mask = { column = "email", method = "hmac" }
exclude_columns = ["x"]
"#;
    let finished = cdc_test_harness::process::run_to_exit(
        Path::new(BINARY),
        config,
        &[("CDC_TEST_TOKEN", "t")],
        std::time::Duration::from_secs(20),
    );
    let output = finished.all_output();
    assert_eq!(finished.status.code(), Some(2), "{output}");
    assert!(
        output.contains("`rules[0].filter`: at character 10: expected an expression after '>'"),
        "{output}"
    );
    assert!(
        output.contains("`rules[1]`: has 2 actions (exclude_columns, mask)"),
        "{output}"
    );
}

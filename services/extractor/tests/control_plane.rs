//! The control-plane contract every binary keeps (`cdc_test_harness::service_contract`),
//! run against `cdc-extractor` as a real process on the local stack. No SQL Server answers at
//! the configured address: the control plane must serve regardless, and say so in status.

use std::path::Path;

use cdc_test_harness::service_contract;

const BINARY: &str = env!("CARGO_BIN_EXE_cdc-extractor");

/// A source nobody listens on (port 9 is discard, never SQL Server).
const SOURCE: &str = r#"
[source]
server_name = "contract"
host = "127.0.0.1"
port = 9
user = "sa"
password = "env:VAULT_TOKEN" # any resolvable secret: nothing answers on port 9
databases = ["shop"]
encryption = "off"
connect_timeout_ms = 500
"#;

#[tokio::test]
async fn control_plane_answers_grpcurl_and_refuses_calls_without_the_token() {
    service_contract::control_plane(Path::new(BINARY), "extractor", SOURCE).await;
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message_naming_the_key() {
    service_contract::configuration_errors(Path::new(BINARY), SOURCE).await;
}

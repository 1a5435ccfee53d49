//! The control-plane contract every binary keeps (`cdc_test_harness::service_contract`),
//! run against `cdc-reconciler` as a real process on the local stack. No SQL Server answers at
//! the configured address: the control plane serves regardless (runs fail, naming it).

use std::path::Path;

use cdc_test_harness::{Stack, service_contract};

const BINARY: &str = env!("CARGO_BIN_EXE_cdc-reconciler");

/// A source nobody listens on (port 9 is discard, never SQL Server), and the stack's
/// PostgreSQL with its password from Vault as in production.
fn sections() -> String {
    let stack = Stack::get();
    format!(
        r#"
[source]
server_name = "contract"
host = "127.0.0.1"
port = 9
user = "sa"
password = "env:VAULT_TOKEN" # any resolvable secret: nothing answers on port 9
databases = ["shop"]
encryption = "off"
connect_timeout_ms = 500

[postgres]
url = "{}"
password = "vault:secret/cdc/postgres#password"
"#,
        stack.pg_url_without_password()
    )
}

#[tokio::test]
async fn control_plane_answers_grpcurl_and_refuses_calls_without_the_token() {
    service_contract::control_plane(Path::new(BINARY), "reconciler", &sections()).await;
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message_naming_the_key() {
    service_contract::configuration_errors(Path::new(BINARY), &sections()).await;
}

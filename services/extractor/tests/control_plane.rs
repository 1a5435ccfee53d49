//! The control-plane contract every binary keeps (`cdc_test_harness::service_contract`),
//! run against `cdc-extractor` as a real process on the local stack.

use std::path::Path;

use cdc_test_harness::service_contract;

const BINARY: &str = env!("CARGO_BIN_EXE_cdc-extractor");

#[tokio::test]
async fn control_plane_answers_grpcurl_and_refuses_calls_without_the_token() {
    service_contract::control_plane(Path::new(BINARY), "extractor", "").await;
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message_naming_the_key() {
    service_contract::configuration_errors(Path::new(BINARY), "").await;
}

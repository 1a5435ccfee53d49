//! The loader's configuration: defaults, and bad values refused with the key they are under.

// Tests: a panic with the value in question is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use cdc_loader::config::LoaderConfig;
use cdc_service_kit::Error;
use cdc_service_kit::config::load_from;

const MINIMAL: &str = r#"
[grpc]
auth_token = "env:TOKEN"

[kafka]
bootstrap_servers = "127.0.0.1:9092"

[postgres]
url = "postgres://cdc@127.0.0.1:5432/target"
"#;

fn load(extra: &str) -> Result<LoaderConfig, Error> {
    let directory = std::env::temp_dir().join(format!(
        "cdc-loader-config-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("loader.toml");
    std::fs::write(&file, format!("{MINIMAL}\n{extra}")).unwrap();
    let loaded = load_from(&cdc_loader::service::SPEC, Some(&file), HashMap::new());
    std::fs::remove_dir_all(&directory).unwrap();
    loaded
}

fn invalid_keys(extra: &str) -> Vec<String> {
    match load(extra) {
        Err(Error::ConfigInvalid(fields)) => fields.into_iter().map(|f| f.key).collect(),
        Err(other) => panic!("expected an invalid-configuration error, got {other}"),
        Ok(config) => panic!("accepted: {config:?}"),
    }
}

#[test]
fn batches_and_the_in_flight_budget_default_to_what_the_readme_says() {
    let config = load("").unwrap();
    assert_eq!(config.batch.max_rows, 7_500);
    assert_eq!(config.batch.max_in_flight_rows, 15_000);
    assert_eq!(config.batch.appliers, 2);
    assert_eq!(config.target.housekeeping_interval_ms, 30_000);
}

#[test]
fn an_in_flight_budget_smaller_than_a_batch_is_refused_by_its_key() {
    assert_eq!(
        invalid_keys("[batch]\nmax_rows = 5000\nmax_in_flight_rows = 4999\n"),
        ["batch.max_in_flight_rows"]
    );
    assert!(load("[batch]\nmax_rows = 5000\nmax_in_flight_rows = 5000\n").is_ok());
}

#[test]
fn a_housekeeping_interval_out_of_range_is_refused_by_its_key() {
    assert_eq!(
        invalid_keys("[target]\nhousekeeping_interval_ms = 0\n"),
        ["target.housekeeping_interval_ms"]
    );
}

#[test]
fn commits_are_asynchronous_unless_configured_and_a_bad_setting_is_refused_by_its_key() {
    use cdc_loader::config::SynchronousCommit;
    // `extra` without a section header continues MINIMAL's `[postgres]`.
    assert_eq!(
        load("").unwrap().postgres.synchronous_commit,
        SynchronousCommit::Off
    );
    assert_eq!(
        load("synchronous_commit = \"remote_apply\"\n")
            .unwrap()
            .postgres
            .synchronous_commit,
        SynchronousCommit::RemoteApply
    );
    match load("synchronous_commit = \"sometimes\"\n") {
        Err(error) => assert!(
            error.to_string().contains("synchronous_commit"),
            "the error does not name the key: {error}"
        ),
        Ok(config) => panic!("accepted: {config:?}"),
    }
}

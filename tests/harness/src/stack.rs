//! Where the local stack is: from environment variables, or from the `.stack/env` file that
//! `make stack-up` writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Addresses and credentials of the running stack.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka bootstrap servers.
    pub kafka_bootstrap: String,
    /// PostgreSQL URL of the project's own database.
    pub pg_url: String,
    /// PostgreSQL URL of the maintenance database (for CREATE/DROP DATABASE).
    pub pg_admin_url: String,
    /// Vault (OpenBao) address.
    pub vault_addr: String,
    /// Vault root token of the dev server.
    pub vault_token: String,
    /// Path of the grpcurl binary.
    pub grpcurl: PathBuf,
    /// Path of Prometheus's promtool.
    pub promtool: PathBuf,
    /// Jaeger's OTLP/gRPC receiver, for the services' `telemetry.otlp_endpoint`.
    pub otlp_endpoint: String,
    /// Jaeger's query API (`/api/traces`).
    pub jaeger_query_url: String,
}

const KEYS: [&str; 9] = [
    "CDC_KAFKA_BOOTSTRAP",
    "CDC_PG_URL",
    "CDC_PG_ADMIN_URL",
    "CDC_VAULT_ADDR",
    "CDC_VAULT_TOKEN",
    "CDC_GRPCURL",
    "CDC_PROMTOOL",
    "CDC_OTLP_ENDPOINT",
    "CDC_JAEGER_QUERY_URL",
];

impl Stack {
    /// The running stack. Panics with the command to run when it is not there.
    pub fn get() -> Stack {
        let file = workspace_root().join(".stack/env");
        let from_file = std::fs::read_to_string(&file)
            .map(|text| parse_env_file(&text))
            .unwrap_or_default();
        let value = |key: &str| {
            std::env::var(key)
                .ok()
                .or_else(|| from_file.get(key).cloned())
                .unwrap_or_else(|| {
                    panic!(
                        "LOCAL STACK NOT AVAILABLE: {key} is neither set nor in {}. \
                         Run `make stack-up` (or `make test`, which starts it).",
                        file.display()
                    )
                })
        };
        let [
            kafka,
            pg,
            pg_admin,
            vault_addr,
            vault_token,
            grpcurl,
            promtool,
            otlp_endpoint,
            jaeger_query_url,
        ] = KEYS.map(value);
        Stack {
            kafka_bootstrap: kafka,
            pg_url: pg,
            pg_admin_url: pg_admin,
            vault_addr,
            vault_token,
            grpcurl: PathBuf::from(grpcurl),
            promtool: PathBuf::from(promtool),
            otlp_endpoint,
            jaeger_query_url,
        }
    }

    /// [`Stack::pg_url`] without its password (services take passwords as secret references).
    pub fn pg_url_without_password(&self) -> String {
        without_password(&self.pg_url)
    }

    /// The password in [`Stack::pg_url`] (empty when it has none).
    pub fn pg_password(&self) -> String {
        url::Url::parse(&self.pg_url)
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `url` with its password removed.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// Root of the Cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .expect("the harness lives two levels below the workspace root")
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("export ").unwrap_or(line).split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_with_comments_exports_and_quotes() {
        let parsed = parse_env_file("# stack\nexport A=1\nB=\"two\"\n\nC = x=y\n");
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two");
        assert_eq!(parsed["C"], "x=y");
    }
}

//! Secrets: configuration holds only references (`vault:<mount>/<path>#<field>` or
//! `env:<VARIABLE>`), resolved once at start-up into values that cannot be printed or
//! serialised.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::VaultConfig;
use crate::error::{Error, Result};

/// Where a secret lives. Displaying it shows the reference, never the value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A field of a KV v2 secret in Vault.
    Vault {
        /// The KV v2 mount, e.g. `secret`.
        mount: String,
        /// The secret's path under the mount, e.g. `cdc/postgres`.
        path: String,
        /// The field inside the secret, e.g. `password`.
        field: String,
    },
    /// An environment variable of the process (for the Vault token itself, and development).
    Env {
        /// The variable's name.
        variable: String,
    },
}

const EXPECTED_FORM: &str = "expected a secret reference `vault:<mount>/<path>#<field>` or \
                             `env:<VARIABLE>` (secret values never go in configuration)";

impl FromStr for SecretRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(variable) = text.strip_prefix("env:") {
            return if !variable.is_empty()
                && variable
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                Ok(SecretRef::Env {
                    variable: variable.to_owned(),
                })
            } else {
                Err(format!("`env:` needs a variable name; {EXPECTED_FORM}"))
            };
        }
        let Some(location) = text.strip_prefix("vault:") else {
            return Err(EXPECTED_FORM.to_owned());
        };
        let (location, field) = location
            .split_once('#')
            .ok_or_else(|| format!("missing `#<field>`; {EXPECTED_FORM}"))?;
        let (mount, path) = location
            .split_once('/')
            .ok_or_else(|| format!("missing `<mount>/`; {EXPECTED_FORM}"))?;
        if mount.is_empty() || path.is_empty() || field.is_empty() {
            return Err(format!("empty mount, path or field; {EXPECTED_FORM}"));
        }
        Ok(SecretRef::Vault {
            mount: mount.to_owned(),
            path: path.trim_matches('/').to_owned(),
            field: field.to_owned(),
        })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Vault { mount, path, field } => write!(f, "vault:{mount}/{path}#{field}"),
            SecretRef::Env { variable } => write!(f, "env:{variable}"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Resolves secret references, holding a Vault client when one is configured.
pub struct SecretResolver {
    vault: Option<VaultClient>,
}

impl fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretResolver")
            .field(
                "vault",
                &self.vault.as_ref().map(|c| c.settings.address.to_string()),
            )
            .finish()
    }
}

impl SecretResolver {
    /// A resolver for environment references only.
    pub fn without_vault() -> Self {
        Self { vault: None }
    }

    /// Builds a resolver from the `[vault]` section, reading the token reference first.
    pub fn connect(vault: Option<&VaultConfig>) -> Result<Self> {
        let Some(vault) = vault else {
            return Ok(Self::without_vault());
        };
        let token = resolve_env("vault.token", &vault.token)?;
        let settings = VaultClientSettingsBuilder::default()
            .address(vault.address.as_str())
            .token(token.expose_secret())
            .timeout(Some(Duration::from_millis(vault.timeout_ms)))
            .build()
            .map_err(|e| vault_error("vault.address", &vault.token, e.to_string(), false))?;
        let client = VaultClient::new(settings)
            .map_err(|e| vault_error("vault.address", &vault.token, e.to_string(), false))?;
        Ok(Self {
            vault: Some(client),
        })
    }

    /// Resolves the reference stored under configuration key `key`.
    pub async fn resolve(&self, key: &str, reference: &SecretRef) -> Result<SecretString> {
        match reference {
            SecretRef::Env { .. } => resolve_env(key, reference),
            SecretRef::Vault { mount, path, field } => {
                let client = self.vault.as_ref().ok_or_else(|| {
                    vault_error(key, reference, "no [vault] section".to_owned(), false)
                })?;
                let secret: HashMap<String, String> = vaultrs::kv2::read(client, mount, path)
                    .await
                    .map_err(|e| vault_error(key, reference, describe(&e), is_transient(&e)))?;
                let value = secret.get(field).ok_or_else(|| {
                    let reason = format!("the secret at {mount}/{path} has no field `{field}`");
                    vault_error(key, reference, reason, false)
                })?;
                Ok(SecretString::from(value.clone()))
            }
        }
    }

    /// Keeps the Vault token alive: renews it at two thirds of its TTL while it is renewable.
    /// Returns when the token is not renewable, has no TTL, or `shutdown` fires.
    pub async fn renew_token_until(&self, shutdown: tokio_util::sync::CancellationToken) {
        let Some(client) = &self.vault else { return };
        loop {
            let lookup = match vaultrs::token::lookup_self(client).await {
                Ok(lookup) => lookup,
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "vault token lookup failed; retrying in 30 s");
                    if sleep_or_shutdown(Duration::from_secs(30), &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if !lookup.renewable.unwrap_or(false) || lookup.ttl == 0 {
                tracing::info!("vault token has no expiry or is not renewable; not renewing");
                return;
            }
            if sleep_or_shutdown(Duration::from_secs(lookup.ttl * 2 / 3), &shutdown).await {
                return;
            }
            match vaultrs::token::renew_self(client, None).await {
                Ok(_) => tracing::info!("vault token renewed"),
                Err(e) => tracing::warn!(error = %describe(&e), "vault token renewal failed"),
            }
        }
    }
}

/// Sleeps; returns true when shutdown fired first.
async fn sleep_or_shutdown(
    duration: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}

fn resolve_env(key: &str, reference: &SecretRef) -> Result<SecretString> {
    let SecretRef::Env { variable } = reference else {
        return Err(vault_error(
            key,
            reference,
            "must be an `env:` reference".to_owned(),
            false,
        ));
    };
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Ok(SecretString::from(value)),
        _ => Err(vault_error(
            key,
            reference,
            format!("environment variable {variable} is not set"),
            false,
        )),
    }
}

fn vault_error(key: &str, reference: &SecretRef, reason: String, retryable: bool) -> Error {
    Error::Secret {
        key: key.to_owned(),
        reference: reference.to_string(),
        reason,
        retryable,
    }
}

/// Describes a Vault client error without echoing anything the server sent back verbatim
/// beyond its status and messages (which never contain secret values).
fn describe(error: &ClientError) -> String {
    match error {
        ClientError::APIError { code: 404, .. } => "not found in Vault (404)".to_owned(),
        ClientError::APIError { code: 403, .. } => {
            "permission denied by Vault (403): check the token's policy".to_owned()
        }
        ClientError::APIError { code, errors } => {
            format!("Vault answered {code}: {}", errors.join("; "))
        }
        ClientError::RestClientError { source } => format!("Vault unreachable: {source}"),
        other => other.to_string(),
    }
}

fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::APIError { code, .. } => *code == 429 || *code >= 500,
        ClientError::RestClientError { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_references_parse_into_mount_path_and_field() {
        let parsed: SecretRef = "vault:secret/cdc/postgres#password".parse().unwrap();
        assert_eq!(
            parsed,
            SecretRef::Vault {
                mount: "secret".into(),
                path: "cdc/postgres".into(),
                field: "password".into()
            }
        );
        assert_eq!(parsed.to_string(), "vault:secret/cdc/postgres#password");
    }

    #[test]
    fn plain_values_are_refused_as_secrets() {
        let error = "hunter2".parse::<SecretRef>().unwrap_err();
        assert!(
            error.contains("secret values never go in configuration"),
            "{error}"
        );
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn malformed_vault_references_say_what_is_missing() {
        assert!(
            "vault:secret#x"
                .parse::<SecretRef>()
                .unwrap_err()
                .contains("<mount>/")
        );
        assert!(
            "vault:secret/a"
                .parse::<SecretRef>()
                .unwrap_err()
                .contains("#<field>")
        );
        assert!(
            "env:"
                .parse::<SecretRef>()
                .unwrap_err()
                .contains("variable name")
        );
    }

    #[tokio::test]
    async fn an_unset_environment_variable_names_the_key() {
        let resolver = SecretResolver::without_vault();
        let reference: SecretRef = "env:CDC_TEST_SURELY_UNSET_VARIABLE".parse().unwrap();
        let error = resolver
            .resolve("grpc.auth_token", &reference)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("grpc.auth_token"), "{message}");
        assert!(!error.is_retryable());
    }
}

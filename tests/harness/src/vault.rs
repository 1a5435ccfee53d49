//! Reading and writing secrets in the stack's OpenBao (Vault API).

use std::collections::HashMap;

use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use crate::Stack;

/// A client with the dev root token.
pub fn client(stack: &Stack) -> VaultClient {
    let settings = VaultClientSettingsBuilder::default()
        .address(&stack.vault_addr)
        .token(&stack.vault_token)
        .build()
        .expect("bad Vault client settings");
    VaultClient::new(settings).expect("cannot build a Vault client")
}

/// Writes `fields` as the KV v2 secret at `secret/<path>`.
pub async fn write_secret(stack: &Stack, path: &str, fields: &[(&str, &str)]) {
    let data: HashMap<&str, &str> = fields.iter().copied().collect();
    vaultrs::kv2::set(&client(stack), "secret", path, &data)
        .await
        .unwrap_or_else(|e| panic!("cannot write secret/{path} to Vault: {e}"));
}

/// Reads the KV v2 secret at `secret/<path>`.
pub async fn read_secret(stack: &Stack, path: &str) -> HashMap<String, String> {
    vaultrs::kv2::read(&client(stack), "secret", path)
        .await
        .unwrap_or_else(|e| panic!("cannot read secret/{path} from Vault: {e}"))
}

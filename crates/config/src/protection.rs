//! `[quotas]` and `[encryption]`: what one tenant may take of the shared cache, and which cache types are
//! sealed with an AEAD before they reach the backend. Only names and paths of secrets are settings; the store
//! reads the key material itself (a secret never passes through a config file or a `Debug` of settings).

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{CacheType, ConfigError, duration};

/// `[quotas]`: per-tenant bounds, shared by every replica on one backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaSettings {
    /// Bytes of live entries (encoded envelopes, as written) one tenant may hold; a write that would pass it is
    /// refused and counted (`quota_refused`), never stored. 0 turns the quota off.
    pub tenant_bytes: u64,
    /// Requests one tenant may make to `serve` or `proxy` per `request_window`; beyond it the answer is 429
    /// with `Retry-After` until the window ends. 0 turns the quota off.
    pub tenant_requests: u64,
    /// The fixed window `tenant_requests` is counted over.
    #[serde(with = "duration")]
    pub request_window: Duration,
}

impl QuotaSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.request_window < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "quotas.request_window",
                "must be at least 1s",
            ));
        }
        Ok(())
    }
}

/// `[encryption]`: values of these cache types are sealed (AES-256-GCM, the full key as associated data)
/// before they are stored, so a value copied under another key — another tenant's — fails to open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EncryptionSettings {
    /// Cache types whose values are sealed. Empty: none (and no keys are needed). A list, or one string of
    /// comma-separated names (as an environment variable gives it).
    #[serde(deserialize_with = "list_or_csv")]
    pub cache_types: Vec<CacheType>,
    /// The environment variable holding the keys, `id:base64(32 bytes)` separated by commas; the first key
    /// seals, every listed key opens (rotation: put the new key first, remove an old one when its entries
    /// have expired).
    pub keys_env: String,
    /// A secret file holding the keys instead, one `id:base64` per line (`#` comments), first line seals.
    /// Empty: the environment variable is used.
    pub keys_file: String,
}

impl EncryptionSettings {
    /// Whether values of `cache_type` are sealed.
    pub fn seals(&self, cache_type: &CacheType) -> bool {
        self.cache_types.contains(cache_type)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self.cache_types.is_empty() && self.keys_env.is_empty() && self.keys_file.is_empty() {
            return Err(ConfigError::invalid(
                "encryption.keys_env",
                "name an environment variable or set encryption.keys_file when cache_types is not empty",
            ));
        }
        Ok(())
    }
}

/// A list of cache types, or a string of comma-separated ones.
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CacheType>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    let names = match Form::deserialize(d)? {
        Form::List(l) => l,
        Form::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    names
        .iter()
        .map(|n| CacheType::new(n).map_err(D::Error::custom))
        .collect()
}

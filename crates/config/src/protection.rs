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

/// The AEAD that seals new values. Entries name the algorithm they were sealed with, so changing it leaves
/// existing entries readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum SealAlgorithm {
    /// `aegis-256x4`: AEGIS-256X4 (RFC 10032), 256-bit nonces (random ones never need counting) and 256-bit
    /// tags; the fastest on CPUs with AES instructions (measured: `cargo xtask bench http`, section 3).
    Aegis256X4,
    /// `aes-256-gcm`: AES-256-GCM (NIST SP 800-38D), for deployments that must use a NIST-approved mode;
    /// 96-bit random nonces, so a key should seal fewer than 2³² values before it is rotated out.
    Aes256Gcm,
}

impl TryFrom<String> for SealAlgorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "aegis-256x4" => Ok(SealAlgorithm::Aegis256X4),
            "aes-256-gcm" => Ok(SealAlgorithm::Aes256Gcm),
            other => Err(format!(
                "{other:?} is not an algorithm; use \"aegis-256x4\" or \"aes-256-gcm\""
            )),
        }
    }
}

/// `[encryption]`: values of these cache types are sealed (an AEAD whose associated data is the entry's header
/// and full key) before they are stored, so a value copied under another key — another tenant's — or put back
/// with its header edited fails to open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EncryptionSettings {
    /// Cache types whose values are sealed. Empty: none (and no keys are needed). A list, or one string of
    /// comma-separated names (as an environment variable gives it).
    #[serde(deserialize_with = "list_or_csv")]
    pub cache_types: Vec<CacheType>,
    /// Seal every value that holds document data ([`CacheType::DOCUMENT_DATA`]: results, OCR text, extracted
    /// fields, HTTP copies), wherever it lands — Redis, the disk file. On in production.
    pub document_data: bool,
    /// The environment variable holding the keys, `id:base64(32 bytes)` separated by commas; the first key
    /// seals, every listed key opens (rotation: put the new key first, remove an old one when its entries
    /// have expired).
    pub keys_env: String,
    /// A secret file holding the keys instead, one `id:base64` per line (`#` comments), first line seals.
    /// Empty: the environment variable is used.
    pub keys_file: String,
    /// The AEAD new values are sealed with; every entry names its own, so either opens.
    pub algorithm: SealAlgorithm,
}

impl EncryptionSettings {
    /// Whether values of `cache_type` are sealed.
    pub fn seals(&self, cache_type: &CacheType) -> bool {
        self.cache_types.contains(cache_type)
            || (self.document_data && CacheType::DOCUMENT_DATA.contains(cache_type))
    }

    /// Every sealed cache type: `cache_types`, and the document data when `document_data` is on.
    pub fn sealed_types(&self) -> Vec<CacheType> {
        let mut types = self.cache_types.clone();
        if self.document_data {
            for t in CacheType::DOCUMENT_DATA {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        types
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self.sealed_types().is_empty() && self.keys_env.is_empty() && self.keys_file.is_empty()
        {
            return Err(ConfigError::invalid(
                "encryption.keys_env",
                "name an environment variable or set encryption.keys_file when values are sealed \
                 (encryption.cache_types or encryption.document_data)",
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

#[cfg(test)]
mod tests {
    use super::SealAlgorithm;
    use crate::{Environment, LoadOptions, Settings};

    fn load(env: Environment, pairs: &[(&str, &str)]) -> Result<Settings, crate::ConfigError> {
        Settings::load(LoadOptions::isolated(env).set_all(pairs.iter().map(|(k, v)| (*k, *v))))
    }

    #[test]
    fn aegis_seals_by_default_and_either_algorithm_can_be_chosen() {
        let s = load(Environment::Production, &[]).unwrap();
        assert_eq!(s.encryption.algorithm, SealAlgorithm::Aegis256X4);
        // Production seals every type holding document data, not a list someone must keep in step.
        for t in crate::CacheType::DOCUMENT_DATA {
            assert!(s.encryption.seals(&t), "{t} in clear in production");
        }
        assert!(!s.encryption.seals(&crate::CacheType::SESSION));
        let dev = load(Environment::Development, &[]).unwrap();
        assert!(dev.encryption.sealed_types().is_empty());
        let s = load(
            Environment::Test,
            &[("encryption.algorithm", "aes-256-gcm")],
        )
        .unwrap();
        assert_eq!(s.encryption.algorithm, SealAlgorithm::Aes256Gcm);
        let e = load(
            Environment::Test,
            &[("encryption.algorithm", "aes-128-gcm")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("encryption.algorithm") && e.contains("aes-256-gcm"),
            "{e}"
        );
    }
}

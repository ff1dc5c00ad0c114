//! `[quotas]` and `[encryption]`: what one tenant may take of the shared cache, and how sealed values are
//! sealed. Which cache types are sealed is each type's own `types.<name>.sealed` (`types.rs`), plus every type
//! holding document data when `encryption.document_data` is on ([`crate::Settings::seals`] joins the two). Only
//! names and paths of secrets are settings; the store reads the key material itself (a secret never passes
//! through a config file or a `Debug` of settings).

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, duration};

/// `[quotas]`: per-tenant bounds shared by every replica on one backend, counted in the backend. (The
/// per-process request rate, which costs no backend call, is `server.limits.per_process_rate`.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaSettings {
    /// Bytes of live entries (encoded envelopes, as written) one tenant may hold; a write that would pass it is
    /// refused and counted (`quota_refused`), never stored. 0 turns the quota off.
    pub tenant_bytes: u64,
    /// Requests one tenant may make to `serve` or `proxy` per `shared_window`, summed over every replica; beyond
    /// it the answer is 429 with `Retry-After` until the window ends. 0 turns the quota off.
    pub shared_requests: u64,
    /// The fixed window `shared_requests` is counted over; 1s to 31d.
    #[serde(with = "duration")]
    pub shared_window: Duration,
}

impl QuotaSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.shared_window < Duration::from_secs(1)
            || self.shared_window > Duration::from_secs(31 * 24 * 3600)
        {
            return Err(ConfigError::invalid(
                "quotas.shared_window",
                "must be between 1s and 31d",
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
        crate::choice::pick(
            &name,
            &[
                ("aegis-256x4", SealAlgorithm::Aegis256X4),
                ("aes-256-gcm", SealAlgorithm::Aes256Gcm),
            ],
        )
    }
}

/// `[encryption]`: how values of sealed cache types are sealed — an AEAD whose associated data is the entry's
/// header and full key — before they are stored, so a value copied under another key (another tenant's) or put
/// back with its header edited fails to open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EncryptionSettings {
    /// Seal every value that holds document data ([`crate::CacheType::DOCUMENT_DATA`]: results, OCR text,
    /// extracted fields, HTTP copies), wherever it lands — Redis, the disk file — whatever those types' own
    /// `sealed` says, so a new copy of document data cannot be forgotten in a list of names. On in production.
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
            assert!(s.seals(&t), "{t} in clear in production");
        }
        assert!(!s.seals(&crate::CacheType::SESSION));
        let dev = load(Environment::Development, &[]).unwrap();
        assert!(dev.sealed_types().is_empty());
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

//! The sealing keys: read from the variable or file the settings name, parsed from `id:base64(32 bytes)`
//! entries, and turned into one subkey per algorithm by HKDF-SHA256, so one configured key never keys two ciphers.
//!
//! The derivation is part of the stored format (design 0018): its salt names the format version, `v2` since the
//! header is bound into the associated data (issue 28), so a subkey of the retired format is never used again.
//! Errors name the variable, the file or the entry's id and position, never key material.

use base64::Engine as _;
use fernando_cache_config::{CacheType, EncryptionSettings};
use ring::{
    aead::{AES_256_GCM, LessSafeKey, UnboundKey},
    hkdf,
};
use zeroize::Zeroizing;

/// Longest key id, in bytes (it is stored in every sealed entry behind a one-byte length).
const MAX_ID_LEN: usize = 32;

/// The HKDF salt of the subkeys: it names the sealed format, so changing the format changes every subkey.
const SUBKEY_SALT: &[u8] = b"fernando-cache sealed values v2";

/// One configured key: its id and a subkey per algorithm.
pub(super) struct SealKey {
    pub(super) id: String,
    pub(super) aes: LessSafeKey,
    pub(super) aegis: Zeroizing<[u8; 32]>,
}

/// Why the keys could not be loaded; names where they were looked for, never what was there.
#[derive(Debug, thiserror::Error)]
#[error("encryption keys: {0}")]
pub(crate) struct KeyError(String);

/// The keys `settings` point at (the environment variable, or the file when one is named), the first one
/// sealing; `sealed` names the sealed cache types in the error when the variable is not set.
pub(super) fn load(
    settings: &EncryptionSettings,
    sealed: &[CacheType],
) -> Result<Vec<SealKey>, KeyError> {
    let text = if settings.keys_file.is_empty() {
        std::env::var(&settings.keys_env)
            .map(Zeroizing::new)
            .map_err(|_| {
                KeyError(format!(
                    "encryption seals {} but the environment variable {} is not set (or not UTF-8); \
                     set it to id:base64(32 bytes), or set encryption.keys_file",
                    names(sealed),
                    settings.keys_env
                ))
            })?
    } else {
        std::fs::read_to_string(&settings.keys_file)
            .map(Zeroizing::new)
            .map_err(|e| {
                KeyError(format!(
                    "encryption.keys_file {}: {}",
                    settings.keys_file,
                    e.kind()
                ))
            })?
    };
    parse_keys(&text)
}

fn names(types: &[CacheType]) -> String {
    types
        .iter()
        .map(CacheType::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `id:base64` entries separated by commas or lines (`#` starts a comment line); the first seals.
pub(super) fn parse_keys(text: &str) -> Result<Vec<SealKey>, KeyError> {
    let mut keys: Vec<SealKey> = Vec::new();
    let entries = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for (i, entry) in entries.enumerate() {
        let n = i + 1;
        let Some((id, material)) = entry.split_once(':') else {
            return Err(KeyError(format!(
                "entry {n} is not id:base64 (no ':' after the id)"
            )));
        };
        let id = id.trim();
        if id.is_empty()
            || id.len() > MAX_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(KeyError(format!(
                "entry {n}: a key id is 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ . -"
            )));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(KeyError(format!("entry {n}: key id {id:?} appears twice")));
        }
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(material.trim())
                .map_err(|_| KeyError(format!("key {id:?} is not valid base64")))?,
        );
        if bytes.len() != 32 {
            return Err(KeyError(format!(
                "key {id:?} is {} bytes; it must be 32 (head -c32 /dev/urandom | base64)",
                bytes.len()
            )));
        }
        // A placeholder (`head -c32 /dev/zero`, 32 × 0xFF) seals nothing: anyone can open what it sealed.
        if bytes.iter().all(|&b| b == bytes[0]) {
            return Err(KeyError(format!(
                "key {id:?} is a placeholder (its 32 bytes are all the same), not a random key \
                 (head -c32 /dev/urandom | base64)"
            )));
        }
        let invalid = || KeyError(format!("key {id:?} is not a valid key"));
        let aes = UnboundKey::new(
            &AES_256_GCM,
            &*subkey(&bytes, b"aes-256-gcm").ok_or_else(invalid)?,
        )
        .map(LessSafeKey::new)
        .map_err(|_| invalid())?;
        let aegis = subkey(&bytes, b"aegis-256x4").ok_or_else(invalid)?;
        keys.push(SealKey {
            id: id.to_owned(),
            aes,
            aegis,
        });
    }
    if keys.is_empty() {
        return Err(KeyError("no key is configured".into()));
    }
    Ok(keys)
}

/// The 32-byte subkey of one algorithm: HKDF-SHA256 of the configured key, the format's salt, the algorithm's
/// name as the info.
fn subkey(material: &[u8], algorithm: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SUBKEY_SALT).extract(material);
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&[algorithm], Len32).ok()?.fill(&mut *out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse_keys;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

    #[test]
    fn bad_keys_are_named_without_their_material() {
        for (text, says) in [
            ("", "no key"),
            ("k1", "not id:base64"),
            ("k1:not-base64!", "not valid base64"),
            ("k1:AAAA", "is 3 bytes"),
            (&format!("k1:{K1},k1:{K2}") as &str, "appears twice"),
            ("bad id:AAAA", "key id is"),
            (
                "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "placeholder",
            ),
            (
                "k1://////////////////////////////////////////8=",
                "placeholder",
            ),
        ] {
            let e = parse_keys(text).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(
                !e.contains(K1) && !e.contains(K2) && !e.contains("AAAA"),
                "{e}"
            );
        }
    }
}

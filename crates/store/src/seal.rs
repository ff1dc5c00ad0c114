//! Sealed values (design 0018): the payload of an envelope of a sealed cache type is encrypted with
//! AES-256-GCM (ring's, already in the tree for TLS) whose associated data is the full cache key, so a ciphertext copied under another key —
//! another tenant's, another type's — fails to open and is a counted miss. The header stays clear (the store
//! stamps generations and freshness into it after sealing); what it says is checked against the opened payload.
//!
//! Sealed section: `[id length u8][key id][nonce 12][ciphertext + tag 16]`. Random 96-bit nonces (no counter to
//! share across replicas; NIST's bound for random nonces is 2³² values per key, which rotation keeps far off).
//! Keys: `id:base64(32 bytes)`, the first seals, every one opens — rotation is putting a new key first and
//! removing an old one once its entries have expired. Why AES-GCM and not XChaCha20-Poly1305: measured, see
//! the design note.
//!
//! Key material never leaves this module: `Debug` prints key ids, errors name the source and the entry's
//! position, never a value.

use std::{collections::HashSet, fmt};

use base64::Engine as _;
use fernando_cache_config::{CacheType, EncryptionSettings};
use fernando_cache_keys::KeyBuilder;
use rand::RngCore as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::codec::{self, FLAG_SEALED, FLAGS_AT, Header};

/// Longest key id, in bytes.
const MAX_ID_LEN: usize = 32;

/// The keys and the sealed cache types of one store.
pub(crate) struct Sealer {
    /// `(id, cipher)`, the sealing key first.
    keys: Vec<(String, LessSafeKey)>,
    types: HashSet<String>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("types", &self.types)
            .finish()
    }
}

/// Why the keys could not be loaded; names where they were looked for, never what was there.
#[derive(Debug, thiserror::Error)]
#[error("encryption keys: {0}")]
pub(crate) struct KeyError(String);

/// Why a sealed payload did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// The entry is of a sealed type but not sealed (written before sealing was on, or planted).
    #[error("an entry of a sealed cache type is not sealed")]
    NotSealed,
    /// The sealed section is cut short or malformed.
    #[error("the sealed section is malformed")]
    Malformed,
    /// Sealed with a key id this store does not have (removed by a rotation).
    #[error("sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The AEAD refused: another key's ciphertext (the associated data differs), or tampered bytes.
    #[error("the value does not open under its key (copied from another key, or altered)")]
    Refused,
}

impl Sealer {
    /// The sealer the settings ask for: `None` when no cache type is sealed.
    pub(crate) fn from_settings(settings: &EncryptionSettings) -> Result<Option<Sealer>, KeyError> {
        if settings.cache_types.is_empty() {
            return Ok(None);
        }
        let text = if settings.keys_file.is_empty() {
            std::env::var(&settings.keys_env).map(Zeroizing::new).map_err(|_| {
                KeyError(format!(
                    "encryption.cache_types seals {} but the environment variable {} is not set (or not UTF-8); \
                     set it to id:base64(32 bytes), or set encryption.keys_file",
                    names(&settings.cache_types),
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
        let keys = parse_keys(&text)?;
        Ok(Some(Sealer {
            keys,
            types: settings
                .cache_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
        }))
    }

    /// Whether values of `cache_type` are sealed.
    pub(crate) fn seals(&self, cache_type: &CacheType) -> bool {
        self.types.contains(cache_type.as_str())
    }

    /// Whether the entry `key` (a key the store built) is of a sealed type.
    pub(crate) fn seals_key(&self, key: &str) -> bool {
        let group = KeyBuilder::group_of(key);
        group
            .rsplit(':')
            .next()
            .is_some_and(|t| self.types.contains(t))
    }

    /// `envelope` with its payload sealed under `key` (unchanged if already sealed).
    pub(crate) fn seal(&self, key: &str, mut envelope: Vec<u8>) -> Result<Vec<u8>, String> {
        let header = codec::read_header(&envelope).map_err(|e| e.to_string())?;
        if header.sealed {
            return Ok(envelope);
        }
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // The value moves once, to make room for `[id len][id][nonce]` after the header, and is sealed where it
        // lands; the tag is appended.
        let prefix = 1 + id.len() + NONCE_LEN;
        let end = envelope.len();
        envelope.reserve(prefix + cipher.algorithm().tag_len());
        envelope.resize(end + prefix, 0);
        envelope.copy_within(header.len..end, header.len + prefix);
        let section = &mut envelope[header.len..header.len + prefix];
        section[0] = id.len() as u8;
        section[1..1 + id.len()].copy_from_slice(id.as_bytes());
        section[1 + id.len()..].copy_from_slice(&nonce);
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_bytes()),
                &mut envelope[header.len + prefix..],
            )
            .map_err(|_| "the value could not be sealed".to_owned())?;
        envelope.extend_from_slice(tag.as_ref());
        envelope[FLAGS_AT] |= FLAG_SEALED;
        Ok(envelope)
    }

    /// The envelope of `key` with its payload opened (the seal flag cleared), and its header; an entry of a
    /// sealed type that is not sealed is refused.
    pub(crate) fn open(
        &self,
        key: &str,
        envelope: bytes::Bytes,
        header: Header,
    ) -> Result<(bytes::Bytes, Header), OpenError> {
        if !header.sealed {
            return Err(OpenError::NotSealed);
        }
        let section = &envelope[header.len..];
        let (&id_len, rest) = section.split_first().ok_or(OpenError::Malformed)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN + 16 {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, _) = rest.split_at(NONCE_LEN);
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k.as_bytes() == id)
            .map(|(_, c)| c)
            .ok_or_else(|| OpenError::UnknownKey(String::from_utf8_lossy(id).into_owned()))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let sealed_at = header.len + 1 + id_len + NONCE_LEN;
        // Opened in place when the buffer is ours alone (a value just read): the plaintext stays where the
        // ciphertext was and the header moves up to sit right before it — no copy of the value. A shared
        // buffer is copied once.
        let mut buf = envelope
            .try_into_mut()
            .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
        let plain_len = cipher
            .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf[sealed_at..])
            .map_err(|_| OpenError::Refused)?
            .len();
        let start = sealed_at - header.len;
        buf.copy_within(..header.len, start);
        buf.truncate(sealed_at + plain_len);
        buf[start + FLAGS_AT] &= !FLAG_SEALED;
        let out = buf.freeze().slice(start..);
        let header = Header {
            sealed: false,
            ..header
        };
        Ok((out, header))
    }
}

fn names(types: &[CacheType]) -> String {
    types
        .iter()
        .map(CacheType::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `id:base64` entries separated by commas or lines (`#` starts a comment line); the first seals.
fn parse_keys(text: &str) -> Result<Vec<(String, LessSafeKey)>, KeyError> {
    let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
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
        if keys.iter().any(|(k, _)| k == id) {
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
        let cipher = UnboundKey::new(&AES_256_GCM, &bytes)
            .map(LessSafeKey::new)
            .map_err(|_| KeyError(format!("key {id:?} is not a valid key")))?;
        keys.push((id.to_owned(), cipher));
    }
    if keys.is_empty() {
        return Err(KeyError("no key is configured".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

    fn sealer(keys: &str) -> Sealer {
        Sealer {
            keys: parse_keys(keys).unwrap(),
            types: ["ocr_result".to_owned()].into(),
        }
    }

    fn envelope() -> Vec<u8> {
        let policy = codec::CompressionPolicy {
            enabled: false,
            threshold: 1 << 20,
            level: 1,
            max_decoded: 1 << 20,
        };
        codec::encode_raw(b"IBAN DE89 3704 0044 0532 0130 00", [0, 0], &policy)
            .unwrap()
            .bytes
    }

    fn open(s: &Sealer, key: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let bytes = bytes::Bytes::copy_from_slice(sealed);
        let header = codec::read_header(&bytes).unwrap();
        let (opened, header) = s.open(key, bytes, header)?;
        Ok(codec::decode_raw(&opened, &header, 1 << 20).unwrap())
    }

    #[test]
    fn a_sealed_payload_opens_under_its_key_only() {
        let s = sealer(&format!("k1:{K1}"));
        let sealed = s
            .seal("ns:env:{tenant_a}:ocr_result:x", envelope())
            .unwrap();
        let needle = b"DE89";
        assert!(!sealed.windows(needle.len()).any(|w| w == needle));
        assert_eq!(
            open(&s, "ns:env:{tenant_a}:ocr_result:x", &sealed).unwrap(),
            b"IBAN DE89 3704 0044 0532 0130 00"
        );
        assert_eq!(
            open(&s, "ns:env:{tenant_b}:ocr_result:x", &sealed),
            Err(OpenError::Refused)
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            open(&s, "ns:env:{tenant_a}:ocr_result:x", &altered),
            Err(OpenError::Refused)
        );
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = sealer(&format!("k1:{K1}"));
        let sealed_old = old.seal("k", envelope()).unwrap();
        let rotated = sealer(&format!("k2:{K2}, k1:{K1}"));
        assert!(open(&rotated, "k", &sealed_old).is_ok());
        let sealed_new = rotated.seal("k", envelope()).unwrap();
        assert_eq!(
            open(&old, "k", &sealed_new),
            Err(OpenError::UnknownKey("k2".into()))
        );
        let removed = sealer(&format!("k2:{K2}"));
        assert_eq!(
            open(&removed, "k", &sealed_old),
            Err(OpenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_keys_are_named_without_their_material() {
        for (text, says) in [
            ("", "no key"),
            ("k1", "not id:base64"),
            ("k1:not-base64!", "not valid base64"),
            ("k1:AAAA", "is 3 bytes"),
            (&format!("k1:{K1},k1:{K2}") as &str, "appears twice"),
            ("bad id:AAAA", "key id is"),
        ] {
            let e = parse_keys(text).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(
                !e.contains(K1) && !e.contains(K2) && !e.contains("AAAA"),
                "{e}"
            );
        }
        let s = sealer(&format!("# rotated 2026-12\nk2:{K2}\nk1:{K1}\n"));
        let debug = format!("{s:?}");
        assert!(debug.contains("k2") && !debug.contains(K2), "{debug}");
    }

    #[test]
    fn a_sealed_type_is_told_from_its_key() {
        let s = sealer(&format!("k1:{K1}"));
        assert!(s.seals_key("fernando:prod:{tenant_a}:ocr_result:abc"));
        assert!(!s.seals_key("fernando:prod:{tenant_a}:session:abc"));
        assert!(!s.seals_key("fernando:prod:{tenant_ocr_result}:session:ocr_result"));
    }
}

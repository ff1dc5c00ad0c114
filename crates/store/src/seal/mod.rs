//! Sealed values (design 0018): the payload of an envelope of a sealed cache type is encrypted with an AEAD
//! whose associated data is the envelope's header as written — flags, type tag, generations, length, freshness
//! and tag section — followed by the full cache key. So a ciphertext copied under another key (another tenant's,
//! another type's) fails to open, and so does one whose clear header was edited: an invalidated or expired value
//! put back with its generations or freshness changed is a counted miss, never a hit (issue 28). The store
//! therefore seals last, after stamping the generations, and seals again whenever it re-stamps them.
//!
//! Two AEADs, chosen by `encryption.algorithm` for new values; every entry names its own, so changing the
//! setting leaves existing entries readable. AEGIS-256X4 (RFC 10032, libaegis through the `aegis` crate) by
//! default: random 256-bit nonces never need counting, and it opens a 64 KB value in about half the time of
//! the fastest AES-GCM here (measured in the design note). AES-256-GCM (ring's) where a NIST-approved mode is
//! required: random 96-bit nonces, so a key should seal fewer than 2³² values before rotation retires it.
//!
//! Sealed section: `[algorithm u8][id length u8][key id][nonce 32 | 12][ciphertext][tag 32 | 16]`. The algorithm
//! byte also names the sealed format: 3 (AES-256-GCM) and 4 (AEGIS-256X4) bind the header; 1 and 2, the first
//! format, bound the key alone and are refused as retired, because opening them would leave their headers
//! forgeable. Keys (`keys.rs`): `id:base64(32 bytes)`, the first seals, every one opens — rotation is putting a
//! new key first and removing an old one once its entries have expired.
//!
//! Key material never leaves this module: `Debug` prints key ids, errors name the source and the entry's
//! position, never a value.

use std::{collections::HashSet, fmt};

use aegis::aegis256x4::Aegis256X4;
use fernando_cache_config::{CacheType, SealAlgorithm, Settings};
use fernando_cache_keys::KeyBuilder;
use rand::RngCore as _;
use ring::aead::{Aad, Nonce};

use crate::codec::{self, FLAG_SEALED, FLAGS_AT, Header};

mod keys;

pub(crate) use keys::KeyError;
use keys::SealKey;

/// Longest nonce and tag (AEGIS-256X4's), in bytes.
const MAX_NONCE: usize = 32;
const MAX_TAG: usize = 32;

/// Algorithm bytes of the first sealed format (AES-256-GCM, AEGIS-256X4 with the key alone as associated
/// data): refused, never opened.
const RETIRED: [u8; 2] = [1, 2];

/// The AEAD of a sealed section, as its first byte names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aead {
    Aes256Gcm,
    Aegis256X4,
}

impl Aead {
    fn of(setting: SealAlgorithm) -> Aead {
        match setting {
            SealAlgorithm::Aes256Gcm => Aead::Aes256Gcm,
            // `SealAlgorithm` is non-exhaustive; AEGIS is the default.
            _ => Aead::Aegis256X4,
        }
    }

    fn code(self) -> u8 {
        match self {
            Aead::Aes256Gcm => 3,
            Aead::Aegis256X4 => 4,
        }
    }

    fn from_code(code: u8) -> Result<Aead, OpenError> {
        match code {
            3 => Ok(Aead::Aes256Gcm),
            4 => Ok(Aead::Aegis256X4),
            c if RETIRED.contains(&c) => Err(OpenError::Retired),
            _ => Err(OpenError::Malformed),
        }
    }

    fn nonce_len(self) -> usize {
        match self {
            Aead::Aes256Gcm => 12,
            Aead::Aegis256X4 => MAX_NONCE,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            Aead::Aes256Gcm => 16,
            Aead::Aegis256X4 => MAX_TAG,
        }
    }
}

/// The keys, the sealing algorithm and the sealed cache types of one store.
pub(crate) struct Sealer {
    /// The sealing key first.
    keys: Vec<SealKey>,
    aead: Aead,
    types: HashSet<String>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .field("aead", &self.aead)
            .field("types", &self.types)
            .finish()
    }
}

/// Why a sealed payload did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// The entry is of a sealed type but not sealed (written before sealing was on, or planted).
    #[error("an entry of a sealed cache type is not sealed")]
    NotSealed,
    /// The sealed section is cut short or malformed.
    #[error("the sealed section is malformed")]
    Malformed,
    /// Sealed in the first format, whose header was not authenticated (issue 28): never opened.
    #[error("sealed in the retired format that left the header unauthenticated")]
    Retired,
    /// Sealed with a key id this store does not have (removed by a rotation).
    #[error("sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The AEAD refused: another key's ciphertext (the associated data differs), an edited header, or tampered
    /// bytes.
    #[error(
        "the value does not open under its key and header (copied from another key, or altered)"
    )]
    Refused,
}

impl Sealer {
    /// The sealer the settings ask for (`types.<name>.sealed`, `encryption.document_data`): `None` when no cache
    /// type is sealed.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Option<Sealer>, KeyError> {
        let sealed = settings.sealed_types();
        if sealed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Sealer {
            keys: keys::load(&settings.encryption, &sealed)?,
            aead: Aead::of(settings.encryption.algorithm),
            types: sealed.iter().map(|t| t.as_str().to_owned()).collect(),
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

    /// The bytes sealing adds to an envelope: what the tenant's quota is charged beyond the envelope.
    pub(crate) fn overhead(&self) -> usize {
        2 + self.keys[0].id.len() + self.aead.nonce_len() + self.aead.tag_len()
    }

    /// The bytes to store for `envelope` under `key`: its header with the seal flag set, then the sealed
    /// section. `envelope` is unsealed and final — generations and freshness stamped — because the header as
    /// written is authenticated with the key: an envelope stamped again must be sealed again.
    pub(crate) fn seal(&self, key: &str, envelope: &[u8]) -> Result<Vec<u8>, String> {
        let header = codec::read_header(envelope).map_err(|e| e.to_string())?;
        if header.sealed {
            return Err("the envelope is sealed already".into());
        }
        let failed = || "the value could not be sealed".to_owned();
        let (aead, sealer) = (self.aead, &self.keys[0]);
        let id = sealer.id.as_bytes();
        let mut out = Vec::with_capacity(envelope.len() + self.overhead());
        out.extend_from_slice(&envelope[..header.len]);
        out[FLAGS_AT] |= FLAG_SEALED;
        let aad = associated_data(&out, key);
        let mut nonce = [0u8; MAX_NONCE];
        let nonce = &mut nonce[..aead.nonce_len()];
        rand::rng().fill_bytes(nonce);
        out.push(aead.code());
        // At most MAX_ID_LEN (32) bytes: checked when the keys were parsed.
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(nonce);
        let sealed_at = out.len();
        out.extend_from_slice(&envelope[header.len..]);
        let value = &mut out[sealed_at..];
        match aead {
            Aead::Aes256Gcm => {
                let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed())?;
                let tag = sealer
                    .aes
                    .seal_in_place_separate_tag(nonce, Aad::from(aad.as_slice()), value)
                    .map_err(|_| failed())?;
                out.extend_from_slice(tag.as_ref());
            }
            Aead::Aegis256X4 => {
                let nonce: &[u8; MAX_NONCE] = (&*nonce).try_into().map_err(|_| failed())?;
                let tag =
                    Aegis256X4::<MAX_TAG>::new(&sealer.aegis, nonce).encrypt_in_place(value, &aad);
                out.extend_from_slice(&tag);
            }
        }
        Ok(out)
    }

    /// The envelope of `key` with its payload opened (the seal flag cleared), and its header; an entry of a
    /// sealed type that is not sealed is refused, and so is one whose header is not the one it was sealed with.
    pub(crate) fn open(
        &self,
        key: &str,
        envelope: bytes::Bytes,
        header: Header,
    ) -> Result<(bytes::Bytes, Header), OpenError> {
        if !header.sealed {
            return Err(OpenError::NotSealed);
        }
        let [code, id_len, rest @ ..] = &envelope[header.len..] else {
            return Err(OpenError::Malformed);
        };
        let aead = Aead::from_code(*code)?;
        let (id_len, nonce_len, tag_len) = (usize::from(*id_len), aead.nonce_len(), aead.tag_len());
        if rest.len() < id_len + nonce_len + tag_len {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let mut nonce = [0u8; MAX_NONCE];
        nonce[..nonce_len].copy_from_slice(&rest[..nonce_len]);
        let sealer = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == id)
            .ok_or_else(|| OpenError::UnknownKey(String::from_utf8_lossy(id).into_owned()))?;
        let aad = associated_data(&envelope[..header.len], key);
        let sealed_at = header.len + 2 + id_len + nonce_len;
        // Opened in place when the buffer is ours alone (a value just read): the plaintext stays where the
        // ciphertext was and the header moves up to sit right before it — no copy of the value. A shared
        // buffer is copied once.
        let mut buf = envelope
            .try_into_mut()
            .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
        let plain_end = buf.len() - tag_len;
        match aead {
            Aead::Aes256Gcm => {
                let nonce = Nonce::try_assume_unique_for_key(&nonce[..nonce_len])
                    .map_err(|_| OpenError::Malformed)?;
                sealer
                    .aes
                    .open_in_place(nonce, Aad::from(aad.as_slice()), &mut buf[sealed_at..])
                    .map_err(|_| OpenError::Refused)?;
            }
            Aead::Aegis256X4 => {
                let mut tag = [0u8; MAX_TAG];
                tag.copy_from_slice(&buf[plain_end..]);
                Aegis256X4::<MAX_TAG>::new(&sealer.aegis, &nonce)
                    .decrypt_in_place(&mut buf[sealed_at..plain_end], &tag, &aad)
                    .map_err(|_| OpenError::Refused)?;
            }
        }
        let start = sealed_at - header.len;
        buf.copy_within(..header.len, start);
        buf.truncate(plain_end);
        buf[start + FLAGS_AT] &= !FLAG_SEALED;
        let out = buf.freeze().slice(start..);
        let header = Header {
            sealed: false,
            ..header
        };
        Ok((out, header))
    }
}

/// The associated data of a sealed section: the header as written, seal flag set and tag section included,
/// then the full cache key. The header is self-delimiting (its format and its tag section say where it ends),
/// so no other header and key make the same bytes.
fn associated_data(header: &[u8], key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::{keys::parse_keys, *};

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

    const BOTH: [Aead; 2] = [Aead::Aegis256X4, Aead::Aes256Gcm];
    const PLAIN: &[u8] = b"IBAN DE89 3704 0044 0532 0130 00";

    fn sealer_with(keys: &str, aead: Aead) -> Sealer {
        Sealer {
            keys: parse_keys(keys).unwrap(),
            aead,
            types: ["ocr_result".to_owned()].into(),
        }
    }

    fn sealer(keys: &str) -> Sealer {
        sealer_with(keys, Aead::Aegis256X4)
    }

    fn envelope() -> Vec<u8> {
        let policy = codec::CompressionPolicy {
            enabled: false,
            threshold: 1 << 20,
            level: 1,
            max_decoded: 1 << 20,
        };
        codec::encode_raw(PLAIN, [0, 0], &policy).unwrap().bytes
    }

    /// An envelope as the store seals it: generations and freshness stamped first.
    fn stamped() -> Vec<u8> {
        let mut e = envelope();
        codec::set_generations(&mut e, [7, 9]);
        codec::set_freshness(&mut e, 1_000, 60_000, false);
        e
    }

    fn opened(s: &Sealer, key: &str, sealed: &[u8]) -> Result<(Vec<u8>, Header), OpenError> {
        let bytes = bytes::Bytes::copy_from_slice(sealed);
        let header = codec::read_header(&bytes).unwrap();
        let (opened, header) = s.open(key, bytes, header)?;
        Ok((
            codec::decode_raw(&opened, &header, 1 << 20).unwrap(),
            header,
        ))
    }

    fn open(s: &Sealer, key: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        opened(s, key, sealed).map(|(value, _)| value)
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_sealed_payload_opens_under_its_key_only() {
        for aead in BOTH {
            let s = sealer_with(&format!("k1:{K1}"), aead);
            let sealed = s
                .seal("ns:env:{tenant_a}:ocr_result:x", &envelope())
                .unwrap();
            let needle = b"DE89";
            assert!(!sealed.windows(needle.len()).any(|w| w == needle));
            assert_eq!(
                open(&s, "ns:env:{tenant_a}:ocr_result:x", &sealed).unwrap(),
                PLAIN,
                "{aead:?}"
            );
            assert_eq!(
                open(&s, "ns:env:{tenant_b}:ocr_result:x", &sealed),
                Err(OpenError::Refused),
                "{aead:?}"
            );
            assert_eq!(sealed.len(), envelope().len() + s.overhead(), "{aead:?}");
            // A flipped bit anywhere in the ciphertext or the tag is refused.
            let header_len = codec::read_header(&sealed).unwrap().len;
            let body = header_len + 2 + 2 + aead.nonce_len();
            for at in [body, body + 10, sealed.len() - 1] {
                let mut altered = sealed.clone();
                altered[at] ^= 1;
                assert_eq!(
                    open(&s, "ns:env:{tenant_a}:ocr_result:x", &altered),
                    Err(OpenError::Refused),
                    "{aead:?}, byte {at}"
                );
            }
            // Cut short, or naming an algorithm this build does not know: malformed, never a panic.
            let shortest = header_len + 2 + 2 + aead.nonce_len() + aead.tag_len();
            for cut in [header_len, header_len + 1, shortest - 1] {
                assert_eq!(
                    open(&s, "ns:env:{tenant_a}:ocr_result:x", &sealed[..cut]),
                    Err(OpenError::Malformed),
                    "{aead:?}, cut at {cut}"
                );
            }
            let mut unknown = sealed.clone();
            unknown[header_len] = 0xEE;
            assert_eq!(
                open(&s, "ns:env:{tenant_a}:ocr_result:x", &unknown),
                Err(OpenError::Malformed)
            );
            assert!(s.seal("k", &sealed).is_err(), "never sealed twice");
        }
    }

    /// Issue 28, item 12: the header is clear but authenticated. Whoever can write the backend cannot put back
    /// an invalidated or expired ciphertext with its generations or freshness edited: every field of the header,
    /// and the tag section, is bound into the seal.
    #[test]
    fn an_edited_header_does_not_open() {
        let key = "ns:env:{tenant_a}:ocr_result:x";
        for aead in BOTH {
            let s = sealer_with(&format!("k1:{K1}"), aead);
            let sealed = s.seal(key, &stamped()).unwrap();
            let (value, header) = opened(&s, key, &sealed).unwrap();
            assert_eq!(value, PLAIN, "{aead:?}: the untouched value opens");
            assert_eq!(
                (header.generations, header.written_ms, header.fresh_ms),
                ([7, 9], 1_000, 60_000),
                "{aead:?}"
            );
            // (what, byte, bits flipped): each leaves a header that still parses.
            for (what, at, bits) in [
                ("type tag", 5, 0x01),
                ("scope generation", 13, 0x01),
                ("cache-type generation", 21, 0x80),
                ("decoded length", 29, 0x01),
                ("written at", 33, 0x01),
                ("fresh for", 41, 0x10),
                ("fail-safe flag", FLAGS_AT, 0b10),
                ("compression flag", FLAGS_AT, 0b01),
            ] {
                let mut edited = sealed.clone();
                edited[at] ^= bits;
                assert_eq!(
                    open(&s, key, &edited),
                    Err(OpenError::Refused),
                    "{aead:?}: {what} edited"
                );
            }
            // Re-stamped the way a write stamps an unsealed envelope: refused too.
            let mut restamped = sealed.clone();
            codec::set_generations(&mut restamped, [8, 9]);
            assert_eq!(
                open(&s, key, &restamped),
                Err(OpenError::Refused),
                "{aead:?}"
            );
            let mut refreshed = sealed.clone();
            codec::set_freshness(&mut refreshed, 1_000, u64::MAX, false);
            assert_eq!(
                open(&s, key, &refreshed),
                Err(OpenError::Refused),
                "{aead:?}"
            );

            // A tag's generation at the write lives in the tag section, which is part of the header.
            let tagged = codec::with_tags(&stamped(), &[("customer:42", 3)]).unwrap();
            let sealed = s.seal(key, &tagged).unwrap();
            assert_eq!(open(&s, key, &sealed).unwrap(), PLAIN, "{aead:?}");
            let mut edited = sealed.clone();
            edited[codec::HEADER_LEN + 1] ^= 0x01;
            assert_eq!(
                codec::tags(&edited, &codec::read_header(&edited).unwrap()),
                [("customer:42", 2)]
            );
            assert_eq!(
                open(&s, key, &edited),
                Err(OpenError::Refused),
                "{aead:?}: tag edited"
            );
        }
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        for aead in BOTH {
            let old = sealer_with(&format!("k1:{K1}"), aead);
            let sealed_old = old.seal("k", &envelope()).unwrap();
            let rotated = sealer_with(&format!("k2:{K2}, k1:{K1}"), aead);
            assert!(open(&rotated, "k", &sealed_old).is_ok());
            let sealed_new = rotated.seal("k", &envelope()).unwrap();
            assert_eq!(
                open(&old, "k", &sealed_new),
                Err(OpenError::UnknownKey("k2".into()))
            );
            let removed = sealer_with(&format!("k2:{K2}"), aead);
            assert_eq!(
                open(&removed, "k", &sealed_old),
                Err(OpenError::UnknownKey("k1".into()))
            );
        }
    }

    #[test]
    fn changing_the_algorithm_leaves_sealed_entries_readable() {
        let aes = sealer_with(&format!("k1:{K1}"), Aead::Aes256Gcm);
        let aegis = sealer_with(&format!("k1:{K1}"), Aead::Aegis256X4);
        let by_aes = aes.seal("k", &envelope()).unwrap();
        let by_aegis = aegis.seal("k", &envelope()).unwrap();
        for (s, sealed) in [(&aegis, &by_aes), (&aes, &by_aegis)] {
            assert_eq!(open(s, "k", sealed).unwrap(), PLAIN);
        }
    }

    /// Entries sealed by an earlier build of this format keep opening: the section layout, the associated data
    /// (header as written, then the key) and the subkey derivation are a stored format. These were sealed once
    /// under `k1:K1` and the key `k`, with generations [7, 9], written at 1 000 ms, fresh for 60 000 ms, by
    /// libaegis and by a second AES-GCM implementation (Python's `cryptography`), not by this code.
    #[test]
    fn the_sealed_format_is_stable() {
        let s = sealer(&format!("k1:{K1}"));
        for (aead, hex) in [
            (Aead::Aegis256X4, AEGIS_VECTOR),
            (Aead::Aes256Gcm, AES_VECTOR),
        ] {
            let sealed = unhex(hex);
            assert_eq!(sealed[codec::HEADER_LEN], aead.code(), "{aead:?}");
            let (value, header) = opened(&s, "k", &sealed).unwrap();
            assert_eq!(value, PLAIN, "{aead:?}");
            assert_eq!(
                (header.generations, header.written_ms, header.fresh_ms),
                ([7, 9], 1_000, 60_000),
                "{aead:?}"
            );
            let mut edited = sealed.clone();
            edited[13] ^= 1;
            assert_eq!(open(&s, "k", &edited), Err(OpenError::Refused), "{aead:?}");
        }
    }

    const AEGIS_VECTOR: &str = "4643020008d38f2319d85154500700000000000000090000000000000020000000e80300000000000060ea0000000000\
        0004026b31404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f388ce0d38be5fc858672f8\
        78a2cf514257bc349267ab0507a47b985a660dd9940477ea3068a2443b54fc58f6aa272b353758cee271001ad7492b2f\
        c966d2a1a0";
    const AES_VECTOR: &str = "4643020008d38f2319d85154500700000000000000090000000000000020000000e80300000000000060ea0000000000\
        0003026b31606162636465666768696a6bb430ce0d89dc1916ac369e8a73060cb1f27b9aa465303611820f94ede212bd\
        17f56411fa28ea4cdf79f8c8c6965f953b";

    /// The first sealed format (algorithm bytes 1 and 2) bound only the key, so its header could be edited at
    /// will; its entries are refused as retired — a counted miss each, computed again — under any key.
    #[test]
    fn the_first_sealed_format_is_retired() {
        let s = sealer(&format!("k1:{K1}"));
        for hex in [FIRST_FORMAT_AEGIS, FIRST_FORMAT_AES] {
            assert_eq!(open(&s, "k", &unhex(hex)), Err(OpenError::Retired));
        }
    }

    /// Sealed by the first format's build under `k1:K1` and the key `k`.
    const FIRST_FORMAT_AEGIS: &str = "4643020008d38f2319d85154500000000000000000000000000000000020000000000000000000000000000000000000\
        0002026b3109b08fdd2e2e3e55c83735d2efc37fed8ce17282552558ed5fa150fbb09425d062e971546f16a5e6934866\
        22858814e712b864cdd10ffd6d7ae1f692c6a824509cdab08d01b3fdd0154e8ab508f808583b8d8ccca56744959122ce\
        cec1cd61c9";
    const FIRST_FORMAT_AES: &str = "4643020008d38f2319d85154500000000000000000000000000000000020000000000000000000000000000000000000\
        0001026b3123ddd479e56a3f22867cc76775f30e3bd964369f6c43223d9f189dceacb7a9830d23c7aacf7d2b91eb3fe5\
        c70bca85459135f24cba1dc9da98ab4309";

    #[test]
    fn the_debug_form_names_key_ids_only() {
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

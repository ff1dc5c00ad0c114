//! The stored value envelope: a fixed header, then the (optionally zstd-compressed) encoded payload.
//!
//! ```text
//! offset size field
//!      0    2 magic "FC"
//!      2    1 format version (2; format 1 is still read)
//!      3    1 codec id (0 raw bytes, 1 bincode 2 over serde)
//!      4    1 flags (bit 0: zstd-compressed; bit 1: fail-safe copy; bit 2: a tag section follows;
//!             bit 3: sealed; bit 4: the zstd frame was made with a dictionary; other bits must be zero)
//!      5    8 type tag, little-endian (FNV-1a 64 of the value's type name)
//!     13    8 scope generation, little-endian
//!     21    8 cache-type generation, little-endian
//!     29    4 decoded payload length, little-endian
//!     33    8 written at, ms since the Unix epoch, little-endian   (format 2 only)
//!     41    8 fresh for, ms after that (the TTL written with)       (format 2 only)
//!     49    … tag section when flagged, then the payload (at 33 in format 1)
//! ```
//!
//! A sealed payload (design 0018, `seal/`) is `[algorithm][id length][key id][nonce][ciphertext][tag]`, and its
//! AEAD authenticates the header above as written, so the header stays readable but cannot be edited.
//!
//! An entry lives in the backend `fresh for` plus the cache type's `max_stale`: past `fresh for` it is stale —
//! a miss, kept only so that a failing computation can fall back on it (fail-safe, design 0014).
//!
//! Decoding is bounded: a decoded length above `max_decoded_bytes` is refused before anything is allocated,
//! zstd may not produce more than the header announced, and bincode runs with a byte limit. The codec is behind
//! [`CodecId`], so bincode can be replaced by adding an id and keeping the old reader.
//!
//! A small payload of a group with a trained dictionary (design 0025) is compressed with it; the frame names
//! the dictionary by id, and the store opens such an envelope with that dictionary ([`with_dictionary`]) before
//! it decodes it. Values written without one, or with an older one, are read as they were written.
//!
//! By concern: `header.rs` (the fixed header and type tags), `compression.rs` (zstd, bounded), `dictionary.rs`
//! (zstd dictionaries: training, compressing with one), `payload.rs` (bincode, bounded); sealing (`seal/`) runs
//! last, after the store has stamped the header.

mod compression;
pub(crate) mod dictionary;
mod header;
mod payload;

use serde::{Serialize, de::DeserializeOwned};

#[cfg(feature = "seal")]
pub(crate) use self::header::{FLAG_SEALED, FLAGS_AT};
pub(crate) use self::{
    compression::CompressionPolicy,
    header::{
        HEADER_LEN, Header, RAW_TYPE_TAG, now_ms, read_header, set_freshness, set_generations,
        tags, type_tag_of, with_tags, written_at,
    },
};
use self::{compression::payload, payload::bincode_bounded};

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CodecId {
    /// The caller's bytes, as they are.
    Raw = 0,
    /// bincode 2.0 (standard configuration: little-endian, varint) through serde.
    Bincode2 = 1,
}

impl CodecId {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(CodecId::Raw),
            1 => Some(CodecId::Bincode2),
            _ => None,
        }
    }
}

/// Why a stored value was not usable. Every variant makes the read a miss.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("value is {0} bytes, shorter than the {HEADER_LEN}-byte envelope header")]
    Truncated(usize),
    #[error("value does not start with the envelope magic")]
    BadMagic,
    #[error("envelope version {0} is not supported")]
    Version(u8),
    #[error("codec id {0} is not known")]
    Codec(u8),
    #[error("unknown flag bits {0:#04x}")]
    Flags(u8),
    #[error("the tag section is malformed")]
    Tags,
    #[error("value was stored as another type")]
    ForeignType,
    #[error("decoded length {claimed} exceeds the limit of {limit} bytes")]
    TooLarge { claimed: u64, limit: usize },
    #[error("payload length {actual} does not match the header's {claimed}")]
    LengthMismatch { claimed: u64, actual: usize },
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("bincode: {0}")]
    Bincode(String),
    #[error("the value was compressed with dictionary {0}, which was not given to open it")]
    Dictionary(u32),
}

/// Encodes a typed value with bincode into an envelope, without a dictionary (the store encodes through its
/// groups, `Store::encode_value`).
#[cfg(test)]
pub(crate) fn encode_typed<T: Serialize + ?Sized>(
    value: &T,
    generations: [u64; 2],
    policy: &CompressionPolicy,
) -> Result<Encoded, String> {
    encode_typed_with(value, generations, policy, None, |_| {})
}

/// [`encode_typed`] with the group's dictionary, if it has one, for payloads of
/// [`dictionary::MIN_DICTIONARY_VALUE`] to [`dictionary::MAX_DICTIONARY_VALUE`] bytes; `sample` sees the encoded
/// payload first (what a dictionary is trained on).
pub(crate) fn encode_typed_with<T: Serialize + ?Sized>(
    value: &T,
    generations: [u64; 2],
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
    sample: impl FnOnce(&[u8]),
) -> Result<Encoded, String> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| format!("bincode could not encode the value: {e}"))?;
    sample(&payload);
    seal(
        CodecId::Bincode2,
        type_tag_of::<T>(),
        generations,
        payload,
        policy,
        dictionary,
    )
}

/// Wraps caller bytes into an envelope.
pub(crate) fn encode_raw(
    bytes: &[u8],
    generations: [u64; 2],
    policy: &CompressionPolicy,
) -> Result<Encoded, String> {
    encode_raw_with(bytes, generations, policy, None)
}

/// [`encode_raw`] with the group's dictionary, if it has one (as [`encode_typed_with`]).
pub(crate) fn encode_raw_with(
    bytes: &[u8],
    generations: [u64; 2],
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
) -> Result<Encoded, String> {
    seal(
        CodecId::Raw,
        RAW_TYPE_TAG,
        generations,
        bytes.to_vec(),
        policy,
        dictionary,
    )
}

/// An encoded envelope and the size of the value before compression.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) raw_len: usize,
}

fn seal(
    codec: CodecId,
    type_tag: u64,
    generations: [u64; 2],
    payload: Vec<u8>,
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
) -> Result<Encoded, String> {
    if payload.len() > policy.max_decoded {
        return Err(format!(
            "the encoded value is {} bytes, above compression.max_decoded_bytes ({})",
            payload.len(),
            policy.max_decoded
        ));
    }
    let raw_len = payload.len();
    let with_dictionary = dictionary.filter(|_| {
        policy.enabled
            && (dictionary::MIN_DICTIONARY_VALUE..=dictionary::MAX_DICTIONARY_VALUE)
                .contains(&payload.len())
    });
    let framed = match with_dictionary {
        Some(d) => Some(dictionary::compress(&payload, d, policy.level)?)
            .filter(|c| c.len() < payload.len())
            .map(|c| (header::FLAG_ZSTD | header::FLAG_DICT, c)),
        None => None,
    };
    let (flags, body) = match framed {
        Some(framed) => framed,
        None => match compression::compress(&payload, policy)? {
            Some(compressed) => (header::FLAG_ZSTD, compressed),
            None => (0, payload),
        },
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    header::push_header(&mut out, codec, flags, type_tag, generations, raw_len);
    out.extend_from_slice(&body);
    Ok(Encoded {
        bytes: out,
        raw_len,
    })
}

/// Decodes a typed value, checking codec and type tag.
#[cfg(test)]
pub(crate) fn decode_typed<T: DeserializeOwned>(
    bytes: &[u8],
    header: &Header,
    max_decoded: usize,
) -> Result<T, DecodeError> {
    typed_decoder::<T>()(bytes, header, max_decoded)
}

/// What decodes envelopes of `T`, checking codec and type tag: the tag (a hash of the type's name) is worked
/// out once here, not once a value — a batch decodes many with one decoder.
pub(crate) fn typed_decoder<T: DeserializeOwned>()
-> impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError> + Copy {
    let tag = type_tag_of::<T>();
    move |bytes, header, max_decoded| {
        if header.codec != CodecId::Bincode2 || header.type_tag != tag {
            return Err(DecodeError::ForeignType);
        }
        let payload = payload(bytes, header, max_decoded)?;
        bincode_bounded(&payload)
    }
}

/// The decoded payload of any envelope: the caller's bytes for raw entries, the bincode encoding for typed ones.
/// Operators read entries this way, so it never treats a typed entry as foreign.
pub(crate) fn decode_raw(
    bytes: &[u8],
    header: &Header,
    max_decoded: usize,
) -> Result<Vec<u8>, DecodeError> {
    Ok(payload(bytes, header, max_decoded)?.into_owned())
}

/// The same envelope with its payload decompressed (checked against the header), for a copy read many times
/// in process: an uncompressed envelope is returned as it is.
pub(crate) fn uncompressed(
    bytes: bytes::Bytes,
    header: &Header,
    max_decoded: usize,
) -> Result<bytes::Bytes, DecodeError> {
    if !header.compressed {
        return Ok(bytes);
    }
    let payload = payload(&bytes, header, max_decoded)?;
    // The header and tag section as they are, the compression flag cleared.
    let mut out = Vec::with_capacity(header.len + payload.len());
    out.extend_from_slice(&bytes[..header.len]);
    out[4] &= !header::FLAG_ZSTD;
    out.extend_from_slice(&payload);
    Ok(out.into())
}

/// The dictionary an envelope's payload was compressed with, by id; `None` for one made without.
pub(crate) fn dictionary_of(bytes: &[u8], header: &Header) -> Option<u32> {
    if !header.dictionary {
        return None;
    }
    // A dictionary-flagged frame that names none is as unusable as one naming a dictionary that is gone.
    Some(dictionary::frame_dictionary(bytes.get(header.len..).unwrap_or_default()).unwrap_or(0))
}

/// The envelope with its payload opened with `dictionary` (checked against the id the frame names, and against
/// the header's length and `max_decoded`), the compression flags cleared — what the store decodes, or keeps
/// in process, as it does any uncompressed envelope.
pub(crate) fn with_dictionary(
    bytes: &[u8],
    header: &Header,
    dictionary: &dictionary::Dictionary,
    max_decoded: usize,
) -> Result<bytes::Bytes, DecodeError> {
    let claimed = compression::claimed_len(header, max_decoded)?;
    let frame = bytes.get(header.len..).unwrap_or_default();
    let named = dictionary::frame_dictionary(frame).unwrap_or(0);
    if !header.dictionary || named != dictionary.id() {
        return Err(DecodeError::Dictionary(named));
    }
    let payload = dictionary::decompress(frame, dictionary, claimed)?;
    if payload.len() != claimed {
        return Err(DecodeError::LengthMismatch {
            claimed: claimed as u64,
            actual: payload.len(),
        });
    }
    let mut out = Vec::with_capacity(header.len + payload.len());
    out.extend_from_slice(&bytes[..header.len]);
    out[4] &= !(header::FLAG_ZSTD | header::FLAG_DICT);
    out.extend_from_slice(&payload);
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// The production profile's compression, for the codec's tests.
    pub(super) const POLICY: CompressionPolicy = CompressionPolicy {
        enabled: true,
        threshold: 1024,
        level: 3,
        max_decoded: 64 << 20,
    };

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Doc {
        id: u64,
        text: String,
        fields: Vec<(String, String)>,
    }

    fn round_trip<T: Serialize + DeserializeOwned>(v: &T) -> T {
        let enc = encode_typed(v, [7, 9], &POLICY).unwrap();
        let h = read_header(&enc.bytes).unwrap();
        assert_eq!(h.generations, [7, 9]);
        decode_typed(&enc.bytes, &h, POLICY.max_decoded).unwrap()
    }

    #[test]
    fn an_uncompressed_copy_decodes_to_the_same_value() {
        let doc = Doc {
            id: 7,
            text: "invoice total ".repeat(400),
            fields: vec![],
        };
        let sealed = encode_typed(&doc, [3, 4], &POLICY).unwrap();
        let header = read_header(&sealed.bytes).unwrap();
        assert!(header.compressed);
        let copy = uncompressed(sealed.bytes.clone().into(), &header, POLICY.max_decoded).unwrap();
        let copy_header = read_header(&copy).unwrap();
        assert!(!copy_header.compressed);
        assert_eq!(copy_header.generations, [3, 4]);
        let back: Doc = decode_typed(&copy, &copy_header, POLICY.max_decoded).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn golden_bytes_of_a_small_value() {
        // Pins the envelope layout: changing it must be a conscious act with a new format version.
        let enc = encode_typed(&(1u8, "hi".to_owned()), [1, 2], &POLICY).unwrap();
        let tag = type_tag_of::<(u8, String)>().to_le_bytes();
        let mut expected = vec![b'F', b'C', 2, 1, 0];
        expected.extend_from_slice(&tag);
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&4u32.to_le_bytes());
        expected.extend_from_slice(&[0; 16]);
        expected.extend_from_slice(&[1, 2, b'h', b'i']);
        assert_eq!(enc.bytes, expected);
        let mut stamped = enc.bytes.clone();
        set_freshness(&mut stamped, 1_000, 60_000, true);
        expected[4] = 0b10;
        expected[33..41].copy_from_slice(&1_000u64.to_le_bytes());
        expected[41..49].copy_from_slice(&60_000u64.to_le_bytes());
        assert_eq!(stamped, expected);
        let h = read_header(&stamped).unwrap();
        assert!(h.fail_safe && h.is_fresh(60_999) && !h.is_fresh(61_000));
        assert!(h.is_past(0.5, 31_000) && !h.is_past(0.5, 30_999));
        assert_eq!(RAW_TYPE_TAG, 0x5054_51d8_1923_8fd3);
        assert_eq!(crate::hash::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn tags_ride_between_header_and_payload() {
        let doc = Doc {
            id: 1,
            text: "total 12.00 EUR ".repeat(300),
            fields: vec![],
        };
        let sealed = encode_typed(&doc, [1, 2], &POLICY).unwrap();
        let tagged = with_tags(&sealed.bytes, &[("customer:42", 7), ("reports", 9)]).unwrap();
        let h = read_header(&tagged).unwrap();
        assert_eq!(tags(&tagged, &h), [("customer:42", 7), ("reports", 9)]);
        let back: Doc = decode_typed(&tagged, &h, POLICY.max_decoded).unwrap();
        assert_eq!(back, doc);
        // Kept through decompression for the in-process tier.
        let copy = uncompressed(tagged.clone().into(), &h, POLICY.max_decoded).unwrap();
        let ch = read_header(&copy).unwrap();
        assert!(!ch.compressed);
        assert_eq!(tags(&copy, &ch), [("customer:42", 7), ("reports", 9)]);
        assert_eq!(
            decode_typed::<Doc>(&copy, &ch, POLICY.max_decoded).unwrap(),
            doc
        );
        // A cut or lying tag section is refused, not read past.
        for cut in [HEADER_LEN + 1, HEADER_LEN + 12] {
            assert_eq!(
                read_header(&tagged[..cut]),
                Err(DecodeError::Tags),
                "cut at {cut}"
            );
        }
        let mut lying = tagged.clone();
        lying[HEADER_LEN] = 200;
        assert_eq!(read_header(&lying), Err(DecodeError::Tags));
        assert!(with_tags(&tagged, &[("x", 1)]).is_err(), "tagged twice");
        let many: Vec<(&str, u64)> = (0..17).map(|_| ("t", 0)).collect();
        assert!(with_tags(&sealed.bytes, &many).is_err());
    }

    #[test]
    fn format_1_envelopes_still_read_and_are_always_fresh() {
        // Written by earlier releases: no freshness fields, payload at 33.
        let tag = type_tag_of::<(u8, String)>().to_le_bytes();
        let mut v1 = vec![b'F', b'C', 1, 1, 0];
        v1.extend_from_slice(&tag);
        v1.extend_from_slice(&1u64.to_le_bytes());
        v1.extend_from_slice(&2u64.to_le_bytes());
        v1.extend_from_slice(&4u32.to_le_bytes());
        v1.extend_from_slice(&[1, 2, b'h', b'i']);
        let h = read_header(&v1).unwrap();
        assert_eq!((h.len, h.written_ms, h.fresh_ms), (33, 0, 0));
        assert!(h.is_fresh(u64::MAX) && !h.is_past(0.5, u64::MAX));
        let back: (u8, String) = decode_typed(&v1, &h, POLICY.max_decoded).unwrap();
        assert_eq!(back, (1, "hi".to_owned()));
        // A format-2 header cut short is truncated, not read as format 1.
        let v2 = encode_typed(&(1u8, "hi".to_owned()), [1, 2], &POLICY)
            .unwrap()
            .bytes;
        assert_eq!(read_header(&v2[..40]), Err(DecodeError::Truncated(40)));
    }

    #[test]
    fn compresses_only_above_threshold_and_only_when_smaller() {
        let small = "x".repeat(1000);
        let big = "invoice line 42: widgets 3 x 19.99 EUR\n".repeat(100);
        let enc_small = encode_raw(small.as_bytes(), [0, 0], &POLICY).unwrap();
        let enc_big = encode_raw(big.as_bytes(), [0, 0], &POLICY).unwrap();
        assert!(!read_header(&enc_small.bytes).unwrap().compressed);
        assert!(read_header(&enc_big.bytes).unwrap().compressed);
        assert!(enc_big.bytes.len() < big.len() / 3);
        let h = read_header(&enc_big.bytes).unwrap();
        assert_eq!(
            decode_raw(&enc_big.bytes, &h, POLICY.max_decoded).unwrap(),
            big.as_bytes()
        );
        // Incompressible data above the threshold is stored as it is.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64*: bytes with no structure zstd can use.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let enc_noise = encode_raw(&noise, [0, 0], &POLICY).unwrap();
        assert!(!read_header(&enc_noise.bytes).unwrap().compressed);
    }

    #[test]
    fn borrowed_and_owned_forms_share_a_tag() {
        assert_eq!(type_tag_of::<&str>(), type_tag_of::<String>());
        assert_eq!(type_tag_of::<str>(), type_tag_of::<String>());
        assert_eq!(type_tag_of::<&[u32]>(), type_tag_of::<Vec<u32>>());
        assert_eq!(type_tag_of::<&&u8>(), type_tag_of::<u8>());
        assert_ne!(type_tag_of::<[u8; 4]>(), type_tag_of::<Vec<u8>>());
        assert_ne!(type_tag_of::<u64>(), type_tag_of::<i64>());
        let enc = encode_typed("text", [0, 0], &POLICY).unwrap();
        let h = read_header(&enc.bytes).unwrap();
        assert_eq!(
            decode_typed::<String>(&enc.bytes, &h, 1 << 20).unwrap(),
            "text"
        );
    }

    #[test]
    fn foreign_types_and_codecs_are_refused() {
        let enc = encode_typed(&42u64, [0, 0], &POLICY).unwrap();
        let h = read_header(&enc.bytes).unwrap();
        assert_eq!(
            decode_typed::<i64>(&enc.bytes, &h, 1 << 20),
            Err(DecodeError::ForeignType)
        );
        let raw = encode_raw(b"abc", [0, 0], &POLICY).unwrap();
        let h = read_header(&raw.bytes).unwrap();
        assert_eq!(
            decode_typed::<Vec<u8>>(&raw.bytes, &h, 1 << 20),
            Err(DecodeError::ForeignType)
        );
        assert_eq!(decode_raw(&raw.bytes, &h, 1 << 20).unwrap(), b"abc");
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics_or_huge_allocations() {
        assert_eq!(read_header(b"FC\x01"), Err(DecodeError::Truncated(3)));
        assert_eq!(read_header(&[0u8; 40]), Err(DecodeError::BadMagic));
        let good = encode_typed(&"hello".to_owned(), [0, 0], &POLICY)
            .unwrap()
            .bytes;
        let mut v = good.clone();
        v[2] = 9;
        assert_eq!(read_header(&v), Err(DecodeError::Version(9)));
        let mut v = good.clone();
        v[3] = 200;
        assert_eq!(read_header(&v), Err(DecodeError::Codec(200)));
        let mut v = good.clone();
        v[4] = 0x80;
        assert_eq!(read_header(&v), Err(DecodeError::Flags(0x80)));

        // A bincode length prefix claiming 2^40 bytes for a String.
        let mut claim = vec![253u8];
        claim.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut v = good[..HEADER_LEN].to_vec();
        v[29..33].copy_from_slice(&(claim.len() as u32).to_le_bytes());
        v.extend_from_slice(&claim);
        let h = read_header(&v).unwrap();
        assert!(matches!(
            decode_typed::<String>(&v, &h, 1 << 20),
            Err(DecodeError::Bincode(_))
        ));

        // A header announcing more than the limit is refused before any allocation.
        let mut v = good.clone();
        v[29..33].copy_from_slice(&u32::MAX.to_le_bytes());
        let h = read_header(&v).unwrap();
        assert!(matches!(
            decode_typed::<String>(&v, &h, 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));

        // Truncated payload.
        let v = &good[..good.len() - 1];
        let h = read_header(v).unwrap();
        assert!(matches!(
            decode_typed::<String>(v, &h, 1 << 20),
            Err(DecodeError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn a_zstd_bomb_is_bounded_by_the_announced_length() {
        // 1 GiB of zeros compresses to ~40 KiB; streamed so the test never holds the gigabyte.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        for announced in [100u32, 1 << 20, u32::MAX] {
            let mut v = vec![b'F', b'C', 1, 0, 1];
            v.extend_from_slice(&RAW_TYPE_TAG.to_le_bytes());
            v.extend_from_slice(&[0u8; 16]);
            v.extend_from_slice(&announced.to_le_bytes());
            v.extend_from_slice(&bomb);
            let h = read_header(&v).unwrap();
            let err = decode_raw(&v, &h, 64 << 20).unwrap_err();
            assert!(
                matches!(err, DecodeError::Zstd(_) | DecodeError::TooLarge { .. }),
                "{err}"
            );
        }
    }

    proptest! {
        #[test]
        fn typed_round_trip(id in any::<u64>(), text in ".{0,3000}", n in 0usize..20) {
            let doc = Doc { id, fields: (0..n).map(|i| (format!("k{i}"), text.clone())).collect(), text };
            prop_assert_eq!(round_trip(&doc), doc);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(h) = read_header(&bytes) {
                let _ = decode_typed::<Doc>(&bytes, &h, 1 << 20);
                let _ = decode_raw(&bytes, &h, 1 << 20);
            }
        }

        #[test]
        fn mutated_envelopes_never_panic(idx in 0usize..200, byte in any::<u8>()) {
            let doc = Doc { id: 1, text: "abc".repeat(400), fields: vec![("a".into(), "b".into())] };
            let mut bytes = encode_typed(&doc, [0, 0], &POLICY).unwrap().bytes;
            let i = idx % bytes.len();
            bytes[i] = byte;
            if let Ok(h) = read_header(&bytes) {
                let _ = decode_typed::<Doc>(&bytes, &h, 1 << 20);
            }
        }
    }
}

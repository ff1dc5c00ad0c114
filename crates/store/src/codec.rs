//! The stored value envelope: a fixed header, then the (optionally zstd-compressed) encoded payload.
//!
//! ```text
//! offset size field
//!      0    2 magic "FC"
//!      2    1 format version (1)
//!      3    1 codec id (0 raw bytes, 1 bincode 2 over serde)
//!      4    1 flags (bit 0: zstd-compressed; other bits must be zero)
//!      5    8 type tag, little-endian (FNV-1a 64 of the value's type name)
//!     13    8 scope generation, little-endian
//!     21    8 cache-type generation, little-endian
//!     29    4 decoded payload length, little-endian
//!     33    … payload
//! ```
//!
//! Decoding is bounded: a decoded length above `max_decoded_bytes` is refused before anything is allocated,
//! zstd may not produce more than the header announced, and bincode runs with a byte limit. The codec is behind
//! [`CodecId`], so bincode can be replaced by adding an id and keeping the old reader.

use std::cell::RefCell;

use serde::{Serialize, de::DeserializeOwned};

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 33;
const MAGIC: [u8; 2] = *b"FC";
const VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_ZSTD;

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
}

/// What the header says, and where the payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: CodecId,
    pub(crate) compressed: bool,
    pub(crate) type_tag: u64,
    pub(crate) generations: [u64; 2],
    pub(crate) decoded_len: u32,
}

/// Compression settings the encoder needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompressionPolicy {
    pub(crate) enabled: bool,
    pub(crate) threshold: usize,
    pub(crate) level: i32,
    pub(crate) max_decoded: usize,
}

/// FNV-1a 64 of a type's name, normalised so that borrowed and owned forms that serialize identically share a
/// tag (`&T` and `T`, `str` and `String`, `[T]` and `Vec<T>`): a value written as `&str` reads back as `String`.
pub(crate) fn type_tag_of<T: ?Sized>() -> u64 {
    fnv1a(normalized_type_name(std::any::type_name::<T>()).as_bytes())
}

fn normalized_type_name(name: &str) -> std::borrow::Cow<'_, str> {
    let mut n = name.trim();
    while let Some(rest) = n.strip_prefix('&') {
        n = rest
            .trim_start()
            .strip_prefix("mut ")
            .unwrap_or(rest)
            .trim_start();
    }
    if n == "str" {
        return std::borrow::Cow::Borrowed("alloc::string::String");
    }
    if let Some(inner) = n.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        && !inner.contains(';')
    {
        return std::borrow::Cow::Owned(format!("alloc::vec::Vec<{inner}>"));
    }
    std::borrow::Cow::Borrowed(n)
}

/// The tag of values written with [`CodecId::Raw`].
pub(crate) const RAW_TYPE_TAG: u64 = fnv1a(b"fernando-cache:raw-bytes");

pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Encodes a typed value with bincode into an envelope.
pub(crate) fn encode_typed<T: Serialize + ?Sized>(
    value: &T,
    generations: [u64; 2],
    policy: &CompressionPolicy,
) -> Result<Encoded, String> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| format!("bincode could not encode the value: {e}"))?;
    seal(
        CodecId::Bincode2,
        type_tag_of::<T>(),
        generations,
        payload,
        policy,
    )
}

/// Wraps caller bytes into an envelope.
pub(crate) fn encode_raw(
    bytes: &[u8],
    generations: [u64; 2],
    policy: &CompressionPolicy,
) -> Result<Encoded, String> {
    seal(
        CodecId::Raw,
        RAW_TYPE_TAG,
        generations,
        bytes.to_vec(),
        policy,
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
) -> Result<Encoded, String> {
    if payload.len() > policy.max_decoded {
        return Err(format!(
            "the encoded value is {} bytes, above compression.max_decoded_bytes ({})",
            payload.len(),
            policy.max_decoded
        ));
    }
    let raw_len = payload.len();
    let compress = policy.enabled && raw_len > policy.threshold;
    let mut out;
    let mut flags = 0;
    if compress {
        let compressed = COMPRESSOR
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot
                    .as_ref()
                    .is_none_or(|(level, _)| *level != policy.level)
                {
                    *slot = Some((policy.level, zstd::bulk::Compressor::new(policy.level)?));
                }
                let (_, c) = slot.as_mut().expect("compressor was just created");
                c.compress(&payload)
            })
            .map_err(|e| format!("zstd could not compress the value: {e}"))?;
        if compressed.len() < raw_len {
            flags |= FLAG_ZSTD;
            out = Vec::with_capacity(HEADER_LEN + compressed.len());
            push_header(&mut out, codec, flags, type_tag, generations, raw_len);
            out.extend_from_slice(&compressed);
            return Ok(Encoded {
                bytes: out,
                raw_len,
            });
        }
    }
    out = Vec::with_capacity(HEADER_LEN + payload.len());
    push_header(&mut out, codec, flags, type_tag, generations, raw_len);
    out.extend_from_slice(&payload);
    Ok(Encoded {
        bytes: out,
        raw_len,
    })
}

fn push_header(
    out: &mut Vec<u8>,
    codec: CodecId,
    flags: u8,
    type_tag: u64,
    generations: [u64; 2],
    raw_len: usize,
) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(codec as u8);
    out.push(flags);
    out.extend_from_slice(&type_tag.to_le_bytes());
    out.extend_from_slice(&generations[0].to_le_bytes());
    out.extend_from_slice(&generations[1].to_le_bytes());
    // `seal` refused payloads above max_decoded (at most 1 GiB by config validation), so this fits.
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
}

/// Stamps the `[scope, cache type]` generations into an encoded envelope.
pub(crate) fn set_generations(bytes: &mut [u8], generations: [u64; 2]) {
    bytes[13..21].copy_from_slice(&generations[0].to_le_bytes());
    bytes[21..29].copy_from_slice(&generations[1].to_le_bytes());
}

/// Reads and checks the header.
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if bytes[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(DecodeError::Version(bytes[2]));
    }
    let codec = CodecId::from_byte(bytes[3]).ok_or(DecodeError::Codec(bytes[3]))?;
    let flags = bytes[4];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Flags(flags & !KNOWN_FLAGS));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[29..33]);
    Ok(Header {
        codec,
        compressed: flags & FLAG_ZSTD != 0,
        type_tag: u64_at(5),
        generations: [u64_at(13), u64_at(21)],
        decoded_len: u32::from_le_bytes(len),
    })
}

/// The payload after undoing compression, bounded by the header's length and `max_decoded`.
fn payload<'a>(
    bytes: &'a [u8],
    header: &Header,
    max_decoded: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    let claimed = header.decoded_len as usize;
    if claimed > max_decoded {
        return Err(DecodeError::TooLarge {
            claimed: claimed as u64,
            limit: max_decoded,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if !header.compressed {
        if body.len() != claimed {
            return Err(DecodeError::LengthMismatch {
                claimed: claimed as u64,
                actual: body.len(),
            });
        }
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let out = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new().map_err(|e| DecodeError::Zstd(e.to_string()))?,
            );
        }
        let d = slot.as_mut().expect("decompressor was just created");
        // The output buffer is exactly the announced size: a frame that expands further fails here.
        d.decompress(body, claimed)
            .map_err(|e| DecodeError::Zstd(e.to_string()))
    })?;
    if out.len() != claimed {
        return Err(DecodeError::LengthMismatch {
            claimed: claimed as u64,
            actual: out.len(),
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Decodes a typed value, checking codec and type tag.
pub(crate) fn decode_typed<T: DeserializeOwned>(
    bytes: &[u8],
    header: &Header,
    max_decoded: usize,
) -> Result<T, DecodeError> {
    if header.codec != CodecId::Bincode2 || header.type_tag != type_tag_of::<T>() {
        return Err(DecodeError::ForeignType);
    }
    let payload = payload(bytes, header, max_decoded)?;
    bincode_bounded(&payload)
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

/// bincode with a byte limit chosen from the payload size.
///
/// A valid payload never claims more than 16 bytes per input byte (the widest varint expansion), so the limit is
/// the smallest tier at least 16 times the payload: a hostile length prefix can make the decoder allocate at most
/// that much, never 2^40 bytes.
fn bincode_bounded<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    use bincode::config::standard;
    fn run<T: DeserializeOwned, const N: usize>(payload: &[u8]) -> Result<T, DecodeError> {
        let (value, used) =
            bincode::serde::decode_from_slice(payload, standard().with_limit::<N>())
                .map_err(|e| DecodeError::Bincode(e.to_string()))?;
        if used != payload.len() {
            return Err(DecodeError::Bincode(format!(
                "{} trailing bytes after the value",
                payload.len() - used
            )));
        }
        Ok(value)
    }
    match payload.len() {
        0..=4096 => run::<T, { 64 << 10 }>(payload),
        4097..=65_536 => run::<T, { 1 << 20 }>(payload),
        65_537..=1_048_576 => run::<T, { 16 << 20 }>(payload),
        1_048_577..=16_777_216 => run::<T, { 256 << 20 }>(payload),
        _ => run::<T, { 1 << 30 }>(payload),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    const POLICY: CompressionPolicy = CompressionPolicy {
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
    fn golden_bytes_of_a_small_value() {
        // Pins the envelope layout: changing it must be a conscious act with a new format version.
        let enc = encode_typed(&(1u8, "hi".to_owned()), [1, 2], &POLICY).unwrap();
        let tag = type_tag_of::<(u8, String)>().to_le_bytes();
        let mut expected = vec![b'F', b'C', 1, 1, 0];
        expected.extend_from_slice(&tag);
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&4u32.to_le_bytes());
        expected.extend_from_slice(&[1, 2, b'h', b'i']);
        assert_eq!(enc.bytes, expected);
        assert_eq!(RAW_TYPE_TAG, 0x5054_51d8_1923_8fd3);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
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

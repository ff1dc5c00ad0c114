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
        HEADER_LEN, Header, RAW_TYPE_TAG, Version, now_ms, read_header, set_freshness,
        set_generations, set_version, tags, type_tag_of, with_tags, written_at,
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
    encode_typed_with(value, generations, policy, None, false, |_| {})
}

/// [`encode_typed`] with the group's dictionary, if it has one, for payloads of
/// [`dictionary::MIN_DICTIONARY_VALUE`] to [`dictionary::MAX_DICTIONARY_VALUE`] bytes; `sample` sees the encoded
/// payload first (what a dictionary is trained on). `versioned`: room is kept for a version section.
pub(crate) fn encode_typed_with<T: Serialize + ?Sized>(
    value: &T,
    generations: [u64; 2],
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
    versioned: bool,
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
        versioned,
    )
}

/// Wraps caller bytes into an envelope.
pub(crate) fn encode_raw(
    bytes: &[u8],
    generations: [u64; 2],
    policy: &CompressionPolicy,
) -> Result<Encoded, String> {
    encode_raw_with(bytes, generations, policy, None, false)
}

/// [`encode_raw`] with the group's dictionary, if it has one (as [`encode_typed_with`]).
pub(crate) fn encode_raw_with(
    bytes: &[u8],
    generations: [u64; 2],
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
    versioned: bool,
) -> Result<Encoded, String> {
    seal(
        CodecId::Raw,
        RAW_TYPE_TAG,
        generations,
        bytes.to_vec(),
        policy,
        dictionary,
        versioned,
    )
}

/// An encoded envelope and the size of the value before compression.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) raw_len: usize,
}

/// The envelope of `payload`. `versioned`: the value will be given a version (a replicated type's), so room
/// for its section is kept — it goes in without the envelope being copied again.
fn seal(
    codec: CodecId,
    type_tag: u64,
    generations: [u64; 2],
    payload: Vec<u8>,
    policy: &CompressionPolicy,
    dictionary: Option<&dictionary::Dictionary>,
    versioned: bool,
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
    let room = if versioned { header::VERSION_LEN } else { 0 };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + room);
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
mod tests;

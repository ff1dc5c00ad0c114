//! The envelope's fixed 33-byte header: writing it, stamping generations into it, reading and checking it, and
//! the type tags it carries.

use super::{CodecId, DecodeError};
use crate::hash::fnv1a;

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 33;
const MAGIC: [u8; 2] = *b"FC";
const VERSION: u8 = 1;
pub(super) const FLAG_ZSTD: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_ZSTD;

/// What the header says, and where the payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: CodecId,
    pub(crate) compressed: bool,
    pub(crate) type_tag: u64,
    pub(crate) generations: [u64; 2],
    pub(crate) decoded_len: u32,
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

pub(super) fn push_header(
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

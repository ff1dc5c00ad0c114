//! The envelope's fixed header — 49 bytes in format 2, 33 in format 1 (still read) — writing it, stamping
//! generations and freshness into it, reading and checking it, and the type tags it carries.

use super::{CodecId, DecodeError};
use crate::hash::fnv1a;

/// Bytes before the payload in the format written (2).
pub(crate) const HEADER_LEN: usize = 49;
/// Bytes before the payload in format 1 (no freshness).
const HEADER_LEN_V1: usize = 33;
const MAGIC: [u8; 2] = *b"FC";
const VERSION: u8 = 2;
pub(super) const FLAG_ZSTD: u8 = 0b0000_0001;
/// The entry is a fail-safe copy: an expired value written back for the throttle period after its computation
/// failed (design 0014). Readers that ask are told it is stale.
pub(crate) const FLAG_FAIL_SAFE: u8 = 0b0000_0010;
/// A tag section follows the header: a count, then per tag its generation at the write (u64 LE), its length
/// (u8) and its UTF-8 bytes. Tag invalidation bumps a tag's generation (design 0014).
pub(crate) const FLAG_TAGGED: u8 = 0b0000_0100;
/// The payload is sealed (design 0018): a key id, a nonce and the AEAD ciphertext of the payload described by
/// the rest of the header; it opens only under the same full key and the same header, byte for byte (this flag
/// set, the tag section included). A build that does not know the flag refuses the entry (a counted miss), never
/// reads ciphertext as a value.
pub(crate) const FLAG_SEALED: u8 = 0b0000_1000;
/// The zstd frame was made with a dictionary (design 0025), whose id the frame's own header carries; set only
/// with [`FLAG_ZSTD`]. A build that does not know the flag refuses the entry (a counted miss).
pub(crate) const FLAG_DICT: u8 = 0b0001_0000;
/// A version section follows the header, before any tag section (design 0026): the [`Version`] a value of a
/// replicated type was written with — its hybrid logical clock, then its origin (region and process) — 16 bytes,
/// big-endian, so that comparing them byte by byte (as the apply script does) orders versions. Covered by the
/// seal like the rest of the header. A build that does not know the flag refuses the entry (a counted miss).
pub(crate) const FLAG_VERSIONED: u8 = 0b0010_0000;
/// Bytes of the version section.
pub(crate) const VERSION_LEN: usize = 16;
const KNOWN_FLAGS: u8 =
    FLAG_ZSTD | FLAG_FAIL_SAFE | FLAG_TAGGED | FLAG_SEALED | FLAG_DICT | FLAG_VERSIONED;
/// Where the flags byte is.
#[cfg_attr(not(feature = "seal"), allow(dead_code))]
pub(crate) const FLAGS_AT: usize = 4;
/// Most tags one entry may carry.
pub(crate) const MAX_TAGS: usize = 16;

/// Which write of a replicated value is newer (design 0026): a hybrid logical clock (48 bits of ms since the
/// Unix epoch, 16 of a counter), then who wrote it — the region's id in the top 16 bits, a process's random
/// 48 below — so two writes never share a version, and every region orders them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Version {
    pub(crate) hlc: u64,
    pub(crate) origin: u64,
}

impl Version {
    /// The section's bytes: big-endian, so their byte order is the versions' order.
    pub(crate) fn to_bytes(self) -> [u8; VERSION_LEN] {
        let mut out = [0u8; VERSION_LEN];
        out[..8].copy_from_slice(&self.hlc.to_be_bytes());
        out[8..].copy_from_slice(&self.origin.to_be_bytes());
        out
    }

    /// The version a section's bytes say.
    pub(crate) fn from_bytes(bytes: &[u8; VERSION_LEN]) -> Version {
        let mut hlc = [0u8; 8];
        let mut origin = [0u8; 8];
        hlc.copy_from_slice(&bytes[..8]);
        origin.copy_from_slice(&bytes[8..]);
        Version {
            hlc: u64::from_be_bytes(hlc),
            origin: u64::from_be_bytes(origin),
        }
    }

    /// The region id an origin carries.
    pub(crate) fn region(self) -> u16 {
        (self.origin >> 48) as u16
    }
}

/// What the header says, and where the payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: CodecId,
    pub(crate) compressed: bool,
    /// Compressed with a dictionary (see [`FLAG_DICT`]).
    pub(crate) dictionary: bool,
    pub(crate) type_tag: u64,
    pub(crate) generations: [u64; 2],
    pub(crate) decoded_len: u32,
    /// When the value was written (ms since the Unix epoch); 0 for format 1, which did not say.
    pub(crate) written_ms: u64,
    /// How long after `written_ms` the value is fresh (the TTL it was written with); 0 = not said (format 1:
    /// fresh for as long as it exists).
    pub(crate) fresh_ms: u64,
    /// A fail-safe copy (see [`FLAG_FAIL_SAFE`]).
    pub(crate) fail_safe: bool,
    /// The payload is sealed (see [`FLAG_SEALED`]).
    pub(crate) sealed: bool,
    /// The version a replicated value was written with (see [`FLAG_VERSIONED`]).
    pub(crate) version: Option<Version>,
    /// Where the tag section starts (0: the entry has no tags).
    pub(crate) tags_at: usize,
    /// Where the payload starts.
    pub(crate) len: usize,
}

impl Header {
    /// Whether the value is still fresh at `now_ms` (ms since the Unix epoch). Entries that do not say are.
    pub(crate) fn is_fresh(&self, now_ms: u64) -> bool {
        self.fresh_ms == 0 || now_ms < self.written_ms.saturating_add(self.fresh_ms)
    }

    /// Whether `fraction` of the value's fresh life has passed at `now_ms`.
    pub(crate) fn is_past(&self, fraction: f64, now_ms: u64) -> bool {
        self.fresh_ms != 0
            && now_ms
                >= self
                    .written_ms
                    .saturating_add((self.fresh_ms as f64 * fraction) as u64)
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    // Freshness is stamped by the write (`set_freshness`), which knows the TTL.
    out.extend_from_slice(&[0u8; 16]);
}

/// Stamps when a format-2 envelope was written, how long it is fresh, and whether it is a fail-safe copy.
pub(crate) fn set_freshness(bytes: &mut [u8], written_ms: u64, fresh_ms: u64, fail_safe: bool) {
    if bytes.len() < HEADER_LEN || bytes[2] != VERSION {
        return;
    }
    if fail_safe {
        bytes[4] |= FLAG_FAIL_SAFE;
    } else {
        bytes[4] &= !FLAG_FAIL_SAFE;
    }
    bytes[33..41].copy_from_slice(&written_ms.to_le_bytes());
    bytes[41..49].copy_from_slice(&fresh_ms.to_le_bytes());
}

/// Gives a format-2 envelope (unsealed) the version section saying `version`, or says it in the one it has: the
/// section goes right after the header, ahead of any tag section. Bytes that are no format-2 envelope are left
/// as they are.
pub(crate) fn set_version(bytes: &mut Vec<u8>, version: Version) {
    if bytes.len() < HEADER_LEN || bytes[2] != VERSION {
        return;
    }
    let section = version.to_bytes();
    if bytes[4] & FLAG_VERSIONED != 0 {
        if let Some(at) = bytes.get_mut(HEADER_LEN..HEADER_LEN + VERSION_LEN) {
            at.copy_from_slice(&section);
        }
        return;
    }
    bytes[4] |= FLAG_VERSIONED;
    // In place when the encoder kept room for it (a replicated type's value: `seal`); otherwise built anew at its
    // exact size — growing the vector would double it, and a vector with spare capacity costs another
    // allocation as it becomes the write's `Bytes`.
    if bytes.capacity() - bytes.len() >= VERSION_LEN {
        let len = bytes.len();
        bytes.extend_from_slice(&[0; VERSION_LEN]);
        bytes.copy_within(HEADER_LEN..len, HEADER_LEN + VERSION_LEN);
        bytes[HEADER_LEN..HEADER_LEN + VERSION_LEN].copy_from_slice(&section);
        return;
    }
    let mut versioned = Vec::with_capacity(bytes.len() + VERSION_LEN);
    versioned.extend_from_slice(&bytes[..HEADER_LEN]);
    versioned.extend_from_slice(&section);
    versioned.extend_from_slice(&bytes[HEADER_LEN..]);
    *bytes = versioned;
}

/// When an envelope was written (ms since the Unix epoch) and whether it is sealed, from its first
/// [`HEADER_LEN`] bytes alone — what a listing reads of each entry; `None` for bytes that do not start a
/// format-2 envelope (format 1 did not say when).
pub(crate) fn written_at(head: &[u8]) -> Option<(u64, bool)> {
    if head.len() < HEADER_LEN || head[0..2] != MAGIC || head[2] != VERSION {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&head[33..41]);
    Some((u64::from_le_bytes(at), head[4] & FLAG_SEALED != 0))
}

/// Stamps the `[scope, cache type]` generations into an encoded envelope (of a sealed type, before it is
/// sealed: the seal authenticates the header). Bytes too short to be an envelope are left as they are.
pub(crate) fn set_generations(bytes: &mut [u8], generations: [u64; 2]) {
    if bytes.len() < HEADER_LEN_V1 {
        return;
    }
    bytes[13..21].copy_from_slice(&generations[0].to_le_bytes());
    bytes[21..29].copy_from_slice(&generations[1].to_le_bytes());
}

/// Reads and checks the header.
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    if bytes.len() < HEADER_LEN_V1 {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if bytes[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let len = match bytes[2] {
        1 => HEADER_LEN_V1,
        VERSION if bytes.len() >= HEADER_LEN => HEADER_LEN,
        VERSION => return Err(DecodeError::Truncated(bytes.len())),
        v => return Err(DecodeError::Version(v)),
    };
    let codec = CodecId::from_byte(bytes[3]).ok_or(DecodeError::Codec(bytes[3]))?;
    let flags = bytes[4];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Flags(flags & !KNOWN_FLAGS));
    }
    if flags & FLAG_DICT != 0 && flags & FLAG_ZSTD == 0 {
        return Err(DecodeError::Flags(FLAG_DICT));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut decoded = [0u8; 4];
    decoded.copy_from_slice(&bytes[29..33]);
    let (written_ms, fresh_ms) = if len == HEADER_LEN {
        (u64_at(33), u64_at(41))
    } else {
        (0, 0)
    };
    let (version, len) = if flags & FLAG_VERSIONED != 0 && len == HEADER_LEN {
        let section = bytes
            .get(len..len + VERSION_LEN)
            .ok_or(DecodeError::Truncated(bytes.len()))?;
        let mut v = [0u8; VERSION_LEN];
        v.copy_from_slice(section);
        (Some(Version::from_bytes(&v)), len + VERSION_LEN)
    } else if flags & FLAG_VERSIONED != 0 {
        return Err(DecodeError::Flags(FLAG_VERSIONED));
    } else {
        (None, len)
    };
    let (tags_at, len) = if flags & FLAG_TAGGED != 0 && len >= HEADER_LEN {
        (len, tag_section_end(bytes, len)?)
    } else if flags & FLAG_TAGGED != 0 {
        return Err(DecodeError::Flags(FLAG_TAGGED));
    } else {
        (0, len)
    };
    Ok(Header {
        codec,
        compressed: flags & FLAG_ZSTD != 0,
        dictionary: flags & FLAG_DICT != 0,
        type_tag: u64_at(5),
        generations: [u64_at(13), u64_at(21)],
        decoded_len: u32::from_le_bytes(decoded),
        written_ms,
        fresh_ms,
        fail_safe: flags & FLAG_FAIL_SAFE != 0,
        sealed: flags & FLAG_SEALED != 0,
        version,
        tags_at,
        len,
    })
}

/// Checks the tag section starting at `at` and returns where it ends.
fn tag_section_end(bytes: &[u8], at: usize) -> Result<usize, DecodeError> {
    let bad = || DecodeError::Tags;
    let count = usize::from(*bytes.get(at).ok_or_else(bad)?);
    if count == 0 || count > MAX_TAGS {
        return Err(bad());
    }
    let mut i = at + 1;
    for _ in 0..count {
        let len = usize::from(*bytes.get(i + 8).ok_or_else(bad)?);
        let name = bytes.get(i + 9..i + 9 + len).ok_or_else(bad)?;
        if len == 0 || std::str::from_utf8(name).is_err() {
            return Err(bad());
        }
        i += 9 + len;
    }
    Ok(i)
}

/// The tags of an envelope whose header is `header` (checked by [`read_header`]): each name and its generation
/// when the value was written.
pub(crate) fn tags<'a>(bytes: &'a [u8], header: &Header) -> Vec<(&'a str, u64)> {
    let mut out = Vec::new();
    if header.tags_at == 0 {
        return out;
    }
    let count = usize::from(bytes[header.tags_at]);
    let mut i = header.tags_at + 1;
    for _ in 0..count {
        let mut generation = [0u8; 8];
        generation.copy_from_slice(&bytes[i..i + 8]);
        let len = usize::from(bytes[i + 8]);
        let name = std::str::from_utf8(&bytes[i + 9..i + 9 + len]).unwrap_or_default();
        out.push((name, u64::from_le_bytes(generation)));
        i += 9 + len;
    }
    out
}

/// The envelope `bytes` (format 2, untagged) with a tag section for `tags` (name, current generation).
pub(crate) fn with_tags(bytes: &[u8], tags: &[(&str, u64)]) -> Result<Vec<u8>, String> {
    if tags.is_empty() {
        return Ok(bytes.to_vec());
    }
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags; an entry may carry at most {MAX_TAGS}",
            tags.len()
        ));
    }
    if bytes.len() < HEADER_LEN
        || bytes[2] != VERSION
        || bytes[4] & (FLAG_TAGGED | FLAG_VERSIONED) != 0
    {
        return Err("not an untagged, unversioned envelope".into());
    }
    let mut out =
        Vec::with_capacity(bytes.len() + 1 + tags.iter().map(|(t, _)| 9 + t.len()).sum::<usize>());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    out[4] |= FLAG_TAGGED;
    // Bounded by MAX_TAGS above.
    out.push(tags.len() as u8);
    for (name, generation) in tags {
        let len = u8::try_from(name.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| format!("tag {name:?} must be 1 to 255 bytes"))?;
        out.extend_from_slice(&generation.to_le_bytes());
        out.push(len);
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&bytes[HEADER_LEN..]);
    Ok(out)
}

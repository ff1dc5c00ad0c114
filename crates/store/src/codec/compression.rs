//! zstd for payloads above the threshold, with one compressor and one decompressor reused per thread (a fresh
//! context costs ~7.5 µs even for 100 bytes), and decompression bounded by the length the header announced.

use std::cell::RefCell;

use super::{DecodeError, Header};

/// Compression settings the encoder needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompressionPolicy {
    pub(crate) enabled: bool,
    pub(crate) threshold: usize,
    pub(crate) level: i32,
    pub(crate) max_decoded: usize,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The payload compressed, when the policy asks for it and it comes out smaller; `None` to store it as it is.
pub(super) fn compress(
    payload: &[u8],
    policy: &CompressionPolicy,
) -> Result<Option<Vec<u8>>, String> {
    if !(policy.enabled && payload.len() > policy.threshold) {
        return Ok(None);
    }
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
            c.compress(payload)
        })
        .map_err(|e| format!("zstd could not compress the value: {e}"))?;
    Ok((compressed.len() < payload.len()).then_some(compressed))
}

/// The decoded length the header announces, refused above `max_decoded` before anything is allocated.
pub(super) fn claimed_len(header: &Header, max_decoded: usize) -> Result<usize, DecodeError> {
    let claimed = header.decoded_len as usize;
    if claimed > max_decoded {
        return Err(DecodeError::TooLarge {
            claimed: claimed as u64,
            limit: max_decoded,
        });
    }
    Ok(claimed)
}

/// The payload after undoing compression, bounded by the header's length and `max_decoded`.
pub(super) fn payload<'a>(
    bytes: &'a [u8],
    header: &Header,
    max_decoded: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    let claimed = claimed_len(header, max_decoded)?;
    let body = bytes.get(header.len..).unwrap_or_default();
    if header.dictionary {
        // The store opens such a payload with its dictionary first (`codec::with_dictionary`).
        return Err(DecodeError::Dictionary(
            super::dictionary::frame_dictionary(body).unwrap_or(0),
        ));
    }
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
        // The output buffer is exactly the announced size: a frame that expands further fails here. (Into a
        // buffer of our own: `decompress` would first walk the frame's blocks for a bound.)
        let mut out = Vec::with_capacity(claimed);
        d.decompress_to_buffer(body, &mut out)
            .map_err(|e| DecodeError::Zstd(e.to_string()))?;
        Ok(out)
    })?;
    if out.len() != claimed {
        return Err(DecodeError::LengthMismatch {
            claimed: claimed as u64,
            actual: out.len(),
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

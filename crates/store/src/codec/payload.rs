//! The payload codecs behind [`super::CodecId`]: bincode 2 over serde, decoded with a byte limit.

use serde::de::DeserializeOwned;

use super::DecodeError;

/// bincode with a byte limit chosen from the payload size.
///
/// A valid payload never claims more than 16 bytes per input byte (the widest varint expansion), so the limit is
/// the smallest tier at least 16 times the payload: a hostile length prefix can make the decoder allocate at most
/// that much, never 2^40 bytes.
pub(super) fn bincode_bounded<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
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

//! zstd dictionaries (design 0025): a dictionary trained on values of one kind compresses each small value of
//! that kind far better than zstd alone, which barely shrinks values under ~1 KiB. Here: a trained dictionary
//! and the id zstd writes into every frame made with it, compressing and decompressing with one (a context per
//! thread and dictionary, loaded once, as for plain zstd), and training one from samples.
//!
//! Which dictionary a group of entries uses, where it is stored and when it is trained is the store's
//! (design 0025); this module only knows bytes.

use std::{
    cell::RefCell,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use super::DecodeError;

/// Payloads of this size and smaller are compressed with their group's dictionary; above it plain zstd finds
/// enough repetition in the value itself.
pub(crate) const MAX_DICTIONARY_VALUE: usize = 16 << 10;

/// Payloads smaller than this are stored as they are, dictionary or not: a frame's own bytes outweigh the gain.
pub(crate) const MIN_DICTIONARY_VALUE: usize = 64;

/// The size a dictionary is trained to: zstd's advice for records of a few hundred bytes is ~100× the record.
pub(crate) const DICTIONARY_BYTES: usize = 16 << 10;

/// Fewest samples a dictionary is trained from; zstd's trainer fails or overfits below some dozens.
pub(crate) const MIN_SAMPLES: usize = 32;

/// The largest dictionary loaded: a trained one is [`DICTIONARY_BYTES`]; anything far larger found in the
/// backend is not one of ours, and would cost its size in every process that read it.
pub(crate) const MAX_DICTIONARY_BYTES: usize = 128 << 10;

/// What starts a zstd frame in its own format. Frames made with a dictionary are stored without it (zstd's
/// magicless format): the envelope's flags already say a frame follows, and four bytes are a tenth of a small
/// entry. Frames stored with it (before) are still read: a magicless frame never starts with these bytes (its
/// first byte would set a bit zstd reserves).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Compression and decompression contexts kept per thread: one per dictionary in use, for the few groups a
/// thread serves at once.
const CONTEXTS: usize = 8;

/// A trained dictionary: its bytes, and the id zstd writes into every frame made with it (so a frame names its
/// dictionary and opens with no other).
pub(crate) struct Dictionary {
    id: u32,
    /// Tells this dictionary's contexts apart from another's: two groups may hold dictionaries with one id.
    serial: u64,
    bytes: Box<[u8]>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Dictionary {
    /// A dictionary from its stored bytes.
    ///
    /// # Errors
    /// Bytes that are not a zstd dictionary with an id (a raw-content dictionary has none, and its frames could
    /// not say which dictionary they need), or that zstd cannot load.
    pub(crate) fn new(bytes: Vec<u8>) -> Result<Arc<Dictionary>, String> {
        if bytes.len() > MAX_DICTIONARY_BYTES {
            return Err(format!(
                "{} bytes; a dictionary has at most {MAX_DICTIONARY_BYTES}",
                bytes.len()
            ));
        }
        let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes)
            .ok_or("the bytes are not a zstd dictionary with an id")?
            .get();
        zstd::bulk::Decompressor::with_dictionary(&bytes)
            .map_err(|e| format!("zstd cannot load dictionary {id}: {e}"))?;
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        Ok(Arc::new(Dictionary {
            id,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            bytes: bytes.into_boxed_slice(),
        }))
    }

    /// The id its frames carry.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Its bytes, as stored.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A dictionary of at most [`DICTIONARY_BYTES`] trained on `samples` (encoded payloads of one group).
///
/// # Errors
/// Fewer than [`MIN_SAMPLES`] samples, or samples zstd cannot learn from (too alike, too few bytes).
pub(crate) fn train(samples: &[Vec<u8>]) -> Result<Arc<Dictionary>, String> {
    if samples.len() < MIN_SAMPLES {
        return Err(format!(
            "{} samples; a dictionary is trained from at least {MIN_SAMPLES}",
            samples.len()
        ));
    }
    let mut bytes = zstd::dict::from_samples(samples, DICTIONARY_BYTES)
        .map_err(|e| format!("zstd could not train a dictionary: {e}"))?;
    // zstd derives the id from the dictionary's content, and two trainings on nearly the same values can end
    // with one id and different tables — the second would then replace the first under its name and turn the
    // values made with it into misses. The id is drawn at random instead (above zstd's reserved range).
    let header = bytes
        .get_mut(..8)
        .filter(|h| h[..4] == DICTIONARY_MAGIC)
        .ok_or("zstd trained something that is not a dictionary")?;
    let id = rand::random_range(MIN_RANDOM_ID..=u32::MAX >> 1);
    header[4..8].copy_from_slice(&id.to_le_bytes());
    Dictionary::new(bytes)
}

/// What starts a zstd dictionary (its id follows, 4 bytes little-endian).
const DICTIONARY_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];

/// Ids below this are zstd's reserved range.
const MIN_RANDOM_ID: u32 = 32_768;

/// A dictionary trained on samples, and what it does to them.
#[derive(Debug)]
pub(crate) struct Trial {
    pub(crate) dictionary: Arc<Dictionary>,
    pub(crate) samples: usize,
    /// The held-out samples' bytes, as they are.
    pub(crate) sample_bytes: u64,
    /// The held-out samples compressed by zstd alone (each kept as it is where that is smaller).
    pub(crate) plain_bytes: u64,
    /// The held-out samples compressed with the dictionary (likewise).
    pub(crate) dictionary_bytes: u64,
}

/// A dictionary trained on four in five of `samples`, kept only when it makes the fifth smaller than zstd alone
/// does at `level`: a dictionary that does not help costs memory in every process for nothing.
///
/// # Errors
/// As [`train`], or the dictionary does not make the samples smaller.
pub(crate) fn train_better(samples: &[Vec<u8>], level: i32) -> Result<Trial, String> {
    // Judged on every fifth sample, held out of the training: a dictionary remembers what it was trained on,
    // and would seem to shrink even random bytes it has seen.
    let (mut trained_on, mut held_out) = (Vec::new(), Vec::new());
    for (i, s) in samples.iter().enumerate() {
        if i % 5 == 4 {
            held_out.push(s);
        } else {
            trained_on.push(s.clone());
        }
    }
    let dictionary = train(&trained_on)?;
    let mut alone = zstd::bulk::Compressor::new(level).map_err(|e| e.to_string())?;
    let (mut sample_bytes, mut plain_bytes, mut dictionary_bytes) = (0u64, 0u64, 0u64);
    for s in held_out {
        let len = s.len();
        sample_bytes += len as u64;
        plain_bytes += alone.compress(s).map_or(len, |c| c.len().min(len)) as u64;
        dictionary_bytes +=
            compress(s, &dictionary, level).map_or(len, |c| c.len().min(len)) as u64;
    }
    if dictionary_bytes >= plain_bytes {
        return Err(format!(
            "a dictionary would not make these values smaller ({dictionary_bytes} bytes with it, {plain_bytes} \
             with zstd alone)"
        ));
    }
    Ok(Trial {
        dictionary,
        samples: samples.len(),
        sample_bytes,
        plain_bytes,
        dictionary_bytes,
    })
}

thread_local! {
    static COMPRESSORS: RefCell<Vec<(u64, i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: RefCell<Vec<(u64, zstd::bulk::Decompressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
}

/// `payload` compressed with `dictionary` at `level`.
pub(crate) fn compress(
    payload: &[u8],
    dictionary: &Dictionary,
    level: i32,
) -> Result<Vec<u8>, String> {
    let failed = |e: std::io::Error| {
        format!(
            "zstd could not compress the value with dictionary {}: {e}",
            dictionary.id
        )
    };
    COMPRESSORS.with(|cell| {
        let mut contexts = cell.borrow_mut();
        let at = match contexts
            .iter()
            .position(|(serial, l, _)| *serial == dictionary.serial && *l == level)
        {
            Some(at) => at,
            None => {
                let mut context = zstd::bulk::Compressor::with_dictionary(level, &dictionary.bytes)
                    .map_err(failed)?;
                context
                    .set_parameter(zstd::zstd_safe::CParameter::Format(
                        zstd::zstd_safe::FrameFormat::Magicless,
                    ))
                    .map_err(failed)?;
                if contexts.len() >= CONTEXTS {
                    contexts.remove(0);
                }
                contexts.push((dictionary.serial, level, context));
                contexts.len() - 1
            }
        };
        contexts[at].2.compress(payload).map_err(failed)
    })
}

/// `frame` (made with `dictionary`: the caller checked its id) decompressed into at most `claimed` bytes.
pub(crate) fn decompress(
    frame: &[u8],
    dictionary: &Dictionary,
    claimed: usize,
) -> Result<Vec<u8>, DecodeError> {
    let failed = |e: std::io::Error| DecodeError::Zstd(e.to_string());
    DECOMPRESSORS.with(|cell| {
        let mut contexts = cell.borrow_mut();
        let at = match contexts
            .iter()
            .position(|(serial, _)| *serial == dictionary.serial)
        {
            Some(at) => at,
            None => {
                let context =
                    zstd::bulk::Decompressor::with_dictionary(&dictionary.bytes).map_err(failed)?;
                if contexts.len() >= CONTEXTS {
                    contexts.remove(0);
                }
                contexts.push((dictionary.serial, context));
                contexts.len() - 1
            }
        };
        let format = if frame.starts_with(&ZSTD_MAGIC) {
            zstd::zstd_safe::FrameFormat::One
        } else {
            zstd::zstd_safe::FrameFormat::Magicless
        };
        let context = &mut contexts[at].1;
        context
            .set_parameter(zstd::zstd_safe::DParameter::Format(format))
            .map_err(failed)?;
        // The output buffer is exactly the announced size: a frame that expands further fails here. (Into a
        // buffer of our own: `decompress` would first walk the frame's blocks for a bound.)
        let mut out = Vec::with_capacity(claimed);
        context
            .decompress_to_buffer(frame, &mut out)
            .map_err(failed)?;
        Ok(out)
    })
}

/// The dictionary id a zstd frame made with a dictionary names (magicless or not); `None` for a frame that
/// names none, or too short to say.
pub(crate) fn frame_dictionary(frame: &[u8]) -> Option<u32> {
    // The frame header (RFC 8878, 3.1.1.1): a descriptor byte, the window byte unless the frame is a single
    // segment, then the dictionary id in 0, 1, 2 or 4 bytes, little-endian.
    let header = frame.strip_prefix(&ZSTD_MAGIC).unwrap_or(frame);
    let descriptor = *header.first()?;
    let single_segment = descriptor & 0x20 != 0;
    let id_len = match descriptor & 0x03 {
        0 => return None,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let at = 1 + usize::from(!single_segment);
    let id = header.get(at..at + id_len)?;
    let mut le = [0u8; 4];
    le[..id_len].copy_from_slice(id);
    NonZeroU32::new(u32::from_le_bytes(le)).map(NonZeroU32::get)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{
        super::{tests::POLICY, *},
        *,
    };

    /// An API answer of the kind an `api_response` entry holds: a few hundred bytes, each like the others.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct ApiResponse {
        status: u16,
        request_id: String,
        customer: String,
        items: Vec<(String, u32)>,
        total_cents: u64,
        currency: String,
        note: String,
    }

    fn response(i: u64) -> ApiResponse {
        ApiResponse {
            status: 200,
            request_id: format!("req-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            customer: format!("ACME Office Supplies GmbH, branch {}", i % 17),
            items: (0..(i % 4 + 1))
                .map(|n| {
                    (
                        format!("Druckerpapier A4, Karton {n}"),
                        (i * 7 + n) as u32 % 500,
                    )
                })
                .collect(),
            total_cents: i * 1_337 % 100_000,
            currency: "EUR".into(),
            note: format!(
                "Zahlbar innerhalb von 14 Tagen ohne Abzug. Rechnung RE-2026-{i:06}, Kundennummer K-{}",
                i % 977
            ),
        }
    }

    fn payloads<T: Serialize>(values: impl Iterator<Item = T>) -> Vec<Vec<u8>> {
        let mut samples = Vec::new();
        for v in values {
            encode_typed_with(&v, [0, 0], &POLICY, None, false, |p| {
                samples.push(p.to_vec())
            })
            .unwrap();
        }
        samples
    }

    fn trained() -> Arc<Dictionary> {
        train(&payloads((0..400).map(response))).unwrap()
    }

    #[test]
    fn a_small_value_with_its_groups_dictionary_is_stored_in_under_half_and_reads_back() {
        let d = trained();
        // Not one of the training values.
        let value = response(10_001);
        let plain = encode_typed(&value, [1, 2], &POLICY).unwrap();
        let with = encode_typed_with(&value, [1, 2], &POLICY, Some(&d), false, |_| {}).unwrap();
        assert!(
            with.bytes.len() * 2 <= plain.bytes.len(),
            "{} bytes with the dictionary, {} without",
            with.bytes.len(),
            plain.bytes.len()
        );
        let h = read_header(&with.bytes).unwrap();
        assert!(h.compressed && h.dictionary);
        assert_eq!(dictionary_of(&with.bytes, &h), Some(d.id()));
        // Without its dictionary it is an error that names it, never a value.
        assert_eq!(
            decode_typed::<ApiResponse>(&with.bytes, &h, POLICY.max_decoded),
            Err(DecodeError::Dictionary(d.id()))
        );
        let opened = with_dictionary(&with.bytes, &h, &d, POLICY.max_decoded).unwrap();
        let oh = read_header(&opened).unwrap();
        assert!(!oh.compressed && !oh.dictionary);
        assert_eq!(oh.generations, [1, 2]);
        assert_eq!(
            decode_typed::<ApiResponse>(&opened, &oh, POLICY.max_decoded),
            Ok(value)
        );
    }

    #[test]
    fn another_dictionary_never_opens_a_value() {
        let ours = trained();
        let theirs = train(&payloads((0..400u64).map(|i| {
            format!(
                "Patient {i}: Befund unauffällig, Kontrolle in {} Wochen",
                i % 9
            )
        })))
        .unwrap();
        assert_ne!(ours.id(), theirs.id());
        let with =
            encode_typed_with(&response(5), [0, 0], &POLICY, Some(&ours), false, |_| {}).unwrap();
        let h = read_header(&with.bytes).unwrap();
        assert_eq!(
            with_dictionary(&with.bytes, &h, &theirs, POLICY.max_decoded),
            Err(DecodeError::Dictionary(ours.id()))
        );
        // Nor does a dictionary open a value made without one.
        let plain = encode_typed(&"x".repeat(4096), [0, 0], &POLICY).unwrap();
        let ph = read_header(&plain.bytes).unwrap();
        assert!(ph.compressed && !ph.dictionary);
        assert_eq!(dictionary_of(&plain.bytes, &ph), None);
        assert!(with_dictionary(&plain.bytes, &ph, &ours, POLICY.max_decoded).is_err());
    }

    #[test]
    fn values_outside_the_dictionarys_sizes_are_written_as_without_one() {
        let d = trained();
        for (value, compressed) in [("tiny".to_owned(), false), ("Rechnung ".repeat(3000), true)] {
            let with = encode_typed_with(&value, [0, 0], &POLICY, Some(&d), false, |_| {}).unwrap();
            let without = encode_typed(&value, [0, 0], &POLICY).unwrap();
            assert_eq!(with.bytes, without.bytes, "{} bytes", value.len());
            let h = read_header(&with.bytes).unwrap();
            assert_eq!((h.compressed, h.dictionary), (compressed, false));
        }
        // Compression off: no dictionary either.
        let off = CompressionPolicy {
            enabled: false,
            ..POLICY
        };
        let v = encode_typed_with(&response(1), [0, 0], &off, Some(&d), false, |_| {}).unwrap();
        assert!(!read_header(&v.bytes).unwrap().compressed);
    }

    #[test]
    fn a_dictionary_that_would_not_shrink_new_values_is_not_kept() {
        // Random bytes: a dictionary remembers the ones it was trained on, and shrinks no others.
        let random: Vec<Vec<u8>> = (0..200)
            .map(|i| fernando_cache_testkit::bench::noise(i, 400))
            .collect();
        let e = train_better(&random, 3).unwrap_err();
        assert!(e.contains("would not make these values smaller"), "{e}");
        let trial = train_better(&payloads((0..400).map(response)), 3).unwrap();
        assert!(
            trial.dictionary_bytes * 2 < trial.plain_bytes,
            "{} with it, {} without",
            trial.dictionary_bytes,
            trial.plain_bytes
        );
        assert_eq!(trial.samples, 400);
    }

    #[test]
    fn the_dictionary_flag_without_compression_is_refused() {
        let mut bytes = encode_typed(&7u32, [0, 0], &POLICY).unwrap().bytes;
        bytes[4] |= header::FLAG_DICT;
        assert_eq!(
            read_header(&bytes),
            Err(DecodeError::Flags(header::FLAG_DICT))
        );
    }

    #[test]
    fn a_dictionary_is_known_again_by_its_stored_bytes_and_nothing_else_is_one() {
        let d = trained();
        let again = Dictionary::new(d.bytes().to_vec()).unwrap();
        assert_eq!(again.id(), d.id());
        let value =
            encode_typed_with(&response(3), [0, 0], &POLICY, Some(&d), false, |_| {}).unwrap();
        let h = read_header(&value.bytes).unwrap();
        assert!(with_dictionary(&value.bytes, &h, &again, POLICY.max_decoded).is_ok());
        for junk in [
            &b""[..],
            b"not a dictionary",
            &[0x37, 0xA4, 0x30, 0xEC, 0, 0, 0, 0],
        ] {
            assert!(Dictionary::new(junk.to_vec()).is_err(), "{junk:?}");
        }
        let mut padded = d.bytes().to_vec();
        padded.resize(MAX_DICTIONARY_BYTES + 1, 0);
        let e = Dictionary::new(padded).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let few = train(&vec![vec![1, 2, 3]; 3]).unwrap_err();
        assert!(few.contains("at least 32"), "{few}");
    }

    /// Frames made with a dictionary are stored without zstd's four-byte magic and name their dictionary all
    /// the same; frames stored with it (before) still open; a header cut short names none, and never panics.
    #[test]
    fn dictionary_frames_are_magicless_and_frames_with_the_magic_still_open() {
        let d = trained();
        let payload =
            bincode::serde::encode_to_vec(response(20_002), bincode::config::standard()).unwrap();
        let ours = compress(&payload, &d, POLICY.level).unwrap();
        assert!(!ours.starts_with(&ZSTD_MAGIC), "{:02x?}", &ours[..4]);
        let mut legacy = zstd::bulk::Compressor::with_dictionary(POLICY.level, d.bytes()).unwrap();
        let with_magic = legacy.compress(&payload).unwrap();
        assert!(with_magic.starts_with(&ZSTD_MAGIC));
        assert_eq!(ours.len() + 4, with_magic.len());
        for frame in [&ours, &with_magic] {
            assert_eq!(frame_dictionary(frame), Some(d.id()));
            assert_eq!(decompress(frame, &d, payload.len()).unwrap(), payload);
        }
        for cut in 0..8 {
            let _ = frame_dictionary(&ours[..cut.min(ours.len())]);
            let _ = frame_dictionary(&with_magic[..cut]);
        }
        assert_eq!(frame_dictionary(&[]), None);
        // A frame made without a dictionary names none.
        let plain = zstd::bulk::compress(&payload, POLICY.level).unwrap();
        assert_eq!(frame_dictionary(&plain), None);
    }

    /// Two trainings on the same values name their dictionaries differently (zstd's own ids come from the
    /// content: the attack that found it saw 8 repeats in 45 retrainings), and each opens only its own frames.
    #[test]
    fn every_training_draws_its_own_id() {
        let samples = payloads((0..400).map(response));
        let (a, b) = (train(&samples).unwrap(), train(&samples).unwrap());
        assert_ne!(a.id(), b.id());
        assert!(a.id() >= MIN_RANDOM_ID && b.id() >= MIN_RANDOM_ID);
        let payload = &samples[7];
        let frame = compress(payload, &a, POLICY.level).unwrap();
        assert_eq!(frame_dictionary(&frame), Some(a.id()));
        assert_eq!(decompress(&frame, &a, payload.len()).unwrap(), *payload);
    }
}

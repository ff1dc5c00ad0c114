//! Image sizes read from headers alone — PNG's `IHDR`, JPEG's frame header, the directory of every TIFF page —
//! so that an image's pixels are bounded before any decoder allocates them (issue 28, item 19: a 111 KB PNG
//! of 25 000 × 25 000 pixels made tesseract take 662 MB and 8 s of CPU).
//!
//! Only the three formats the pipeline accepts are read; anything else has no known size and is refused, since
//! tesseract would read it (BMP, PNM, GIF …) without a bound.

use std::collections::HashSet;

/// Most pages of a TIFF whose directories are walked: more is refused rather than walked (a chain of tiny
/// directories costs nothing to write).
pub(crate) const MAX_TIFF_PAGES: usize = 10_000;

/// Why an image's pixels are not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// The header is missing, cut short or contradicts itself.
    Malformed(String),
    /// More TIFF pages than [`MAX_TIFF_PAGES`].
    TooManyPages,
}

/// Width and height of every page of an image: one for PNG and JPEG, one per directory for TIFF.
pub(crate) fn page_sizes(bytes: &[u8]) -> Result<Vec<(u64, u64)>, SizeError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(bytes).map(|size| vec![size])
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes).map(|size| vec![size])
    } else if bytes.starts_with(b"II") || bytes.starts_with(b"MM") {
        tiff(bytes)
    } else {
        Err(malformed("not a PNG, JPEG or TIFF image"))
    }
}

fn malformed(reason: impl Into<String>) -> SizeError {
    SizeError::Malformed(reason.into())
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// PNG: the signature, then the `IHDR` chunk, which the format requires first: length, type, width, height.
fn png(bytes: &[u8]) -> Result<(u64, u64), SizeError> {
    if bytes.get(12..16) != Some(&b"IHDR"[..]) {
        return Err(malformed("a PNG without its IHDR header"));
    }
    let width = be32(bytes, 16).ok_or_else(|| malformed("a PNG cut short in its header"))?;
    let height = be32(bytes, 20).ok_or_else(|| malformed("a PNG cut short in its header"))?;
    Ok((u64::from(width), u64::from(height)))
}

/// JPEG: the segments after the start-of-image marker, up to the first frame header (`SOF0`–`SOF15`, except the
/// `DHT`, `JPG` and `DAC` markers that share the range), which holds the height and the width.
fn jpeg(bytes: &[u8]) -> Result<(u64, u64), SizeError> {
    let cut = || malformed("a JPEG cut short before its frame header");
    let mut at = 2;
    loop {
        if *bytes.get(at).ok_or_else(cut)? != 0xFF {
            return Err(malformed("a JPEG whose segments are not marked"));
        }
        // Any number of fill bytes may come before a marker.
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *bytes.get(at).ok_or_else(cut)?;
        at += 1;
        match marker {
            // Markers without a segment.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => return Err(malformed("a JPEG without a frame header")),
            _ => {}
        }
        let length = usize::from(be16(bytes, at).ok_or_else(cut)?);
        if length < 2 {
            return Err(malformed("a JPEG segment of impossible length"));
        }
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            // Length, sample precision, number of lines, samples per line.
            let height = be16(bytes, at + 3).ok_or_else(cut)?;
            let width = be16(bytes, at + 5).ok_or_else(cut)?;
            if width == 0 || height == 0 {
                // A height of 0 is defined later by a DNL marker, which decoders do not support either.
                return Err(malformed("a JPEG frame without its size"));
            }
            return Ok((u64::from(width), u64::from(height)));
        }
        at += length;
    }
}

/// Numbers in a TIFF's byte order, at offsets given as the file gives them (`None` past the end).
struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Tiff<'_> {
    fn field<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let at = usize::try_from(at).ok()?;
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: u64) -> Option<u64> {
        let b = self.field::<2>(at)?;
        Some(u64::from(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    }

    fn u32(&self, at: u64) -> Option<u64> {
        let b = self.field::<4>(at)?;
        Some(u64::from(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    }

    fn u64(&self, at: u64) -> Option<u64> {
        let b = self.field::<8>(at)?;
        Some(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

/// TIFF (and BigTIFF): every image file directory of the main chain — the pages tesseract reads — and its
/// `ImageWidth` (256) and `ImageLength` (257) tags.
fn tiff(bytes: &[u8]) -> Result<Vec<(u64, u64)>, SizeError> {
    let t = Tiff {
        bytes,
        little: bytes.starts_with(b"II"),
    };
    let cut = || malformed("a TIFF cut short in a page directory");
    // Classic TIFF: 2-byte entry counts, 12-byte entries, 4-byte offsets; BigTIFF: 8, 20 and 8.
    let big = match t.u16(2) {
        Some(42) => false,
        Some(43) if t.u16(4) == Some(8) && t.u16(6) == Some(0) => true,
        _ => return Err(malformed("not a TIFF image")),
    };
    let (count_size, entry_size, offset_size) = if big { (8, 20, 8) } else { (2, 12, 4) };
    let offset = |at: u64| if big { t.u64(at) } else { t.u32(at) };
    let mut next = offset(if big { 8 } else { 4 }).ok_or_else(cut)?;
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    while next != 0 {
        if pages.len() >= MAX_TIFF_PAGES {
            return Err(SizeError::TooManyPages);
        }
        if !seen.insert(next) {
            return Err(malformed("a TIFF whose page directories form a loop"));
        }
        let count = if big { t.u64(next) } else { t.u16(next) }.ok_or_else(cut)?;
        let entries = next.checked_add(count_size).ok_or_else(cut)?;
        let end = count
            .checked_mul(entry_size)
            .and_then(|n| n.checked_add(entries))
            .ok_or_else(cut)?;
        if end
            .checked_add(offset_size)
            .is_none_or(|e| e > bytes.len() as u64)
        {
            return Err(cut());
        }
        let (mut width, mut height) = (None, None);
        for i in 0..count {
            let entry = entries + i * entry_size;
            let tag = t.u16(entry).ok_or_else(cut)?;
            if tag != 256 && tag != 257 {
                continue;
            }
            let value_at = entry + if big { 12 } else { 8 };
            // SHORT, LONG or (BigTIFF) LONG8, left-justified in the entry's value field.
            let value = match t.u16(entry + 2).ok_or_else(cut)? {
                3 => t.u16(value_at),
                4 => t.u32(value_at),
                16 if big => t.u64(value_at),
                _ => return Err(malformed("a TIFF page whose size is not a whole number")),
            }
            .ok_or_else(cut)?;
            if tag == 256 {
                width = Some(value);
            } else {
                height = Some(value);
            }
        }
        let (Some(width), Some(height)) = (width, height) else {
            return Err(malformed(format!(
                "page {} of a TIFF without its size",
                pages.len() + 1
            )));
        };
        pages.push((width, height));
        next = offset(end).ok_or_else(cut)?;
    }
    if pages.is_empty() {
        return Err(malformed("a TIFF without pages"));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF whose pages are only directories with these sizes (SHORT width, LONG height).
    fn tiff_of(sizes: &[(u16, u32)]) -> Vec<u8> {
        let mut out = b"II*\0".to_vec();
        out.extend_from_slice(&8u32.to_le_bytes());
        for (i, (w, h)) in sizes.iter().enumerate() {
            let here = out.len() as u32;
            out.extend_from_slice(&3u16.to_le_bytes());
            // ImageWidth SHORT, ImageLength LONG, Compression SHORT.
            for (tag, kind, value) in [(256u16, 3u16, u32::from(*w)), (257, 4, *h), (259, 3, 1)] {
                out.extend_from_slice(&tag.to_le_bytes());
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(&1u32.to_le_bytes());
                out.extend_from_slice(&value.to_le_bytes());
            }
            let next = if i + 1 == sizes.len() {
                0
            } else {
                here + 2 + 3 * 12 + 4
            };
            out.extend_from_slice(&next.to_le_bytes());
        }
        out
    }

    #[test]
    fn png_and_jpeg_sizes_come_from_their_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&25_000u32.to_be_bytes());
        png.extend_from_slice(&24_000u32.to_be_bytes());
        png.extend_from_slice(&[1, 0, 0, 0, 0]);
        assert_eq!(page_sizes(&png), Ok(vec![(25_000, 24_000)]));
        assert!(page_sizes(&png[..20]).is_err());

        // SOI, an APP0 segment, fill bytes, then a baseline frame header of 640 × 480.
        let mut jpeg = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, b'J', b'F', 0xFF, 0xFF, 0xC0, 0x00, 0x0B, 8,
        ];
        jpeg.extend_from_slice(&480u16.to_be_bytes());
        jpeg.extend_from_slice(&640u16.to_be_bytes());
        jpeg.extend_from_slice(&[1, 1, 0x11, 0]);
        assert_eq!(page_sizes(&jpeg), Ok(vec![(640, 480)]));
        // A Huffman table (0xC4) is not a frame header; the data starting without one is refused.
        let no_frame = [0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02];
        assert!(page_sizes(&no_frame).is_err());
        assert!(page_sizes(&jpeg[..12]).is_err());
    }

    #[test]
    fn every_tiff_page_is_read_and_loops_and_other_formats_are_refused() {
        let tiff = tiff_of(&[(850, 1100), (30_000, 30_000)]);
        assert_eq!(page_sizes(&tiff), Ok(vec![(850, 1100), (30_000, 30_000)]));
        // The second directory pointing back at the first.
        let mut looped = tiff_of(&[(10, 10), (10, 10)]);
        let last = looped.len() - 4;
        looped[last..].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(page_sizes(&looped), Err(SizeError::Malformed(m)) if m.contains("loop")));
        assert!(page_sizes(&tiff[..30]).is_err());
        assert!(page_sizes(b"BM\0\0 a bitmap").is_err());
        assert!(page_sizes(b"").is_err());
    }
}

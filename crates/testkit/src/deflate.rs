//! A zlib writer for one shape of data only — a prefix, a unit repeated many times, a suffix — in fixed Huffman
//! codes (RFC 1951 §3.2.6), each 258 repeated bytes one back-reference of 13 bits (about 160 : 1). It writes the
//! bombs of [`crate::hostile`] in a moment, where a real compressor would first need the whole inflated data
//! (hundreds of megabytes) in memory, and minutes in a debug build.

/// A zlib stream (RFC 1950) of `prefix`, then `unit` repeated `count` times, then `suffix`.
///
/// # Panics
/// When `unit` is not 1 or 2 bytes long (258, the longest back-reference, must be a whole number of units).
pub(crate) fn zlib_repeat(prefix: &[u8], unit: &[u8], count: usize, suffix: &[u8]) -> Vec<u8> {
    assert!(
        matches!(unit.len(), 1 | 2),
        "the repeated unit is 1 or 2 bytes"
    );
    let mut w = BitWriter {
        // CMF: deflate with a 32 KiB window; FLG: no dictionary, (CMF·256 + FLG) divisible by 31.
        out: vec![0x78, 0x01],
        bits: 0,
        count: 0,
    };
    // One final block with fixed Huffman codes.
    w.put(1, 1);
    w.put(1, 2);
    for &b in prefix {
        w.literal(b);
    }
    let total = unit.len() * count;
    let mut done = 0;
    if count > 0 {
        for &b in unit {
            w.literal(b);
        }
        done = unit.len();
    }
    while total - done >= 258 {
        // Length 258 is symbol 285 (8-bit code 11000101, no extra bits); distance 1 or 2 is code 0 or 1.
        w.code(0b1100_0101, 8);
        w.code(unit.len() as u32 - 1, 5);
        done += 258;
    }
    while done < total {
        w.literal(unit[done % unit.len()]);
        done += 1;
    }
    for &b in suffix {
        w.literal(b);
    }
    // End of block: symbol 256, the 7-bit code 0000000.
    w.code(0, 7);
    let mut out = w.finish();
    let mut adler = Adler32::default();
    adler.update(prefix);
    for _ in 0..count {
        adler.update(unit);
    }
    adler.update(suffix);
    out.extend_from_slice(&adler.value().to_be_bytes());
    out
}

/// Bits packed from the least significant end of each byte, as deflate wants them.
struct BitWriter {
    out: Vec<u8>,
    bits: u64,
    count: u32,
}

impl BitWriter {
    /// `count` bits of `value`, least significant first (headers and extra bits).
    fn put(&mut self, value: u32, count: u32) {
        self.bits |= u64::from(value) << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.count -= 8;
        }
    }

    /// A Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        let reversed = (0..len).fold(0, |r, i| r | (((code >> i) & 1) << (len - 1 - i)));
        self.put(reversed, len);
    }

    /// A literal byte in the fixed code: 0–143 in 8 bits from 0x30, 144–255 in 9 bits from 0x190.
    fn literal(&mut self, byte: u8) {
        let b = u32::from(byte);
        if b < 144 {
            self.code(0x30 + b, 8);
        } else {
            self.code(0x190 + b - 144, 9);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.bits as u8);
        }
        self.out
    }
}

/// Adler-32 (RFC 1950 §8), reduced once per 5552 bytes as zlib does.
struct Adler32 {
    a: u32,
    b: u32,
    pending: usize,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 {
            a: 1,
            b: 0,
            pending: 0,
        }
    }
}

impl Adler32 {
    const MOD: u32 = 65_521;
    /// Most bytes summed before `b` could overflow 32 bits.
    const NMAX: usize = 5552;

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.a += u32::from(byte);
            self.b += self.a;
            self.pending += 1;
            if self.pending == Self::NMAX {
                self.a %= Self::MOD;
                self.b %= Self::MOD;
                self.pending = 0;
            }
        }
    }

    fn value(&self) -> u32 {
        ((self.b % Self::MOD) << 16) | (self.a % Self::MOD)
    }
}

/// CRC-32 (ISO-HDLC, as PNG chunks use it), bit by bit: the chunks checked are small.
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_reference_values() {
        // RFC 1950's and PNG's check values for "123456789"; Wikipedia's Adler-32 example.
        assert_eq!(crc32(&[&b"1234"[..], &b"56789"[..]]), 0xCBF4_3926);
        let mut a = Adler32::default();
        a.update(b"Wikipedia");
        assert_eq!(a.value(), 0x11E6_0398);
    }

    #[test]
    fn the_stream_inflates_to_the_repeated_data() {
        // lopdf's own decoder (flate2) reads it back.
        let z = zlib_repeat(b"7 0 [", b"0 ", 1000, b"]");
        let stream = lopdf::Stream::new(lopdf::dictionary! { "Filter" => "FlateDecode" }, z);
        let plain = stream.decompressed_content().expect("inflates");
        let mut want = b"7 0 [".to_vec();
        for _ in 0..1000 {
            want.extend_from_slice(b"0 ");
        }
        want.push(b']');
        assert_eq!(plain, want);
        let zeros = zlib_repeat(b"", &[0], 100_000, b"");
        let stream = lopdf::Stream::new(lopdf::dictionary! { "Filter" => "FlateDecode" }, zeros);
        assert_eq!(
            stream.decompressed_content().expect("inflates"),
            vec![0; 100_000]
        );
    }
}

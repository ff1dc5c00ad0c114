//! SHA-256 document fingerprints, computed incrementally so a document never has to fit in memory.

use std::{fmt, io::Read, str::FromStr};

use sha2::{Digest, Sha256};

use crate::KeyError;

/// The SHA-256 of a document's bytes: identical documents have identical fingerprints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentFingerprint([u8; 32]);

impl DocumentFingerprint {
    /// The fingerprint of an in-memory byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        DocumentFingerprint(Sha256::digest(bytes).into())
    }

    /// Streams a reader to its end in 64 KiB chunks and fingerprints what it read.
    ///
    /// # Errors
    /// Any error of the reader (interrupted reads are retried).
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Self> {
        let mut hasher = Fingerprinter::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(hasher.finish())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for DocumentFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DocumentFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentFingerprint({self})")
    }
}

impl FromStr for DocumentFingerprint {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || KeyError::BadFingerprint(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(DocumentFingerprint(out))
    }
}

/// An incremental fingerprint: feed chunks as they arrive (from a file, a socket, an upload), then finish.
#[derive(Clone, Default)]
pub struct Fingerprinter(Sha256);

impl Fingerprinter {
    /// An empty fingerprinter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// The fingerprint of everything fed so far.
    pub fn finish(self) -> DocumentFingerprint {
        DocumentFingerprint(self.0.finalize().into())
    }
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprinter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields `left` bytes of a cheap pattern without holding them, to prove streaming.
    struct Synthetic {
        left: u64,
        chunk: usize,
        counter: u8,
    }

    impl Read for Synthetic {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (buf.len().min(self.chunk) as u64).min(self.left) as usize;
            self.counter = self.counter.wrapping_add(1);
            buf[..n].fill(self.counter);
            self.left -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            DocumentFingerprint::of_bytes(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn streaming_equals_one_shot_and_hex_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let streamed = DocumentFingerprint::of_reader(&data[..]).unwrap();
        assert_eq!(streamed, DocumentFingerprint::of_bytes(&data));
        assert_eq!(
            streamed.to_hex().parse::<DocumentFingerprint>().unwrap(),
            streamed
        );
        assert!("xyz".parse::<DocumentFingerprint>().is_err());
        assert!("g".repeat(64).parse::<DocumentFingerprint>().is_err());
    }

    #[test]
    fn a_gigabyte_streams_in_constant_memory() {
        // 1 GiB is generated on the fly; only the 64 KiB buffer is ever held. Feeding the same bytes in
        // other chunk sizes gives the same fingerprint.
        const GIB: u64 = 1 << 30;
        let streamed = DocumentFingerprint::of_reader(Synthetic {
            left: GIB,
            chunk: 64 * 1024,
            counter: 0,
        })
        .unwrap();
        let mut by_hand = Fingerprinter::new();
        let mut source = Synthetic {
            left: GIB,
            chunk: 64 * 1024,
            counter: 0,
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = source.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for piece in buf[..n].chunks(10_000) {
                by_hand.update(piece);
            }
        }
        assert_eq!(streamed, by_hand.finish());
    }
}

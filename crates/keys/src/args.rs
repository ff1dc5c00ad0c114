//! Stable hashing of arguments into a key: a canonical, self-delimiting encoding of any `serde::Serialize`
//! value fed into SHA-256.
//!
//! The digest depends only on the values, never on `std::hash::Hash`, the process, the build or the platform:
//! integers are widened (so `5u8` and `5u64` hash alike), every string is length-prefixed, sequences and structs
//! carry explicit ends, enum variants are named (reordering variants keeps keys), and map entries are sorted by
//! their encoding (a `HashMap` hashes the same in every process). Sequences keep their order, so a `HashSet`
//! (which serde presents as a sequence) is not stable: use a `BTreeSet` in keyed arguments.

use std::fmt;

use serde::{Serialize, ser};
use sha2::{Digest, Sha256};

/// Hashes named arguments into a stable digest. Feed arguments in a fixed order (the order of a signature).
///
/// ```
/// use fernando_cache_keys::ArgsHasher;
///
/// let mut a = ArgsHasher::new("billing::summary");
/// a.arg("user", &42u32).unwrap();
/// a.arg("period", "2026-11").unwrap();
/// let mut b = ArgsHasher::new("billing::summary");
/// b.arg("user", &42u64).unwrap();
/// b.arg("period", &"2026-11".to_owned()).unwrap();
/// assert_eq!(a.finish_hex(), b.finish_hex());
/// ```
#[derive(Clone)]
pub struct ArgsHasher {
    sha: Sha256,
    scratch: Vec<u8>,
}

impl fmt::Debug for ArgsHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgsHasher").finish_non_exhaustive()
    }
}

/// An argument could not be encoded: its `Serialize` implementation reported an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument `{arg}` cannot be part of a cache key: {reason}")]
pub struct ArgsError {
    arg: String,
    reason: String,
}

impl ArgsHasher {
    /// Starts a digest in a domain (for example a function's path), so equal arguments of different domains
    /// never produce the same digest.
    pub fn new(domain: &str) -> Self {
        let mut h = ArgsHasher {
            sha: Sha256::new(),
            scratch: Vec::new(),
        };
        h.sha.update(b"fernando-cache/args/v1\0");
        Sink::put_str(&mut h.sha, domain);
        h
    }

    /// Adds more domain text (for example the type a method belongs to).
    pub fn domain(&mut self, more: &str) {
        self.sha.update([tag::DOMAIN]);
        Sink::put_str(&mut self.sha, more);
    }

    /// Adds one named argument.
    ///
    /// # Errors
    /// [`ArgsError`] when the value's `Serialize` implementation fails.
    pub fn arg<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), ArgsError> {
        self.sha.update([tag::ARG]);
        Sink::put_str(&mut self.sha, name);
        let mut enc = Encoder {
            out: &mut self.sha,
            scratch: &mut self.scratch,
        };
        value.serialize(&mut enc).map_err(|e| ArgsError {
            arg: name.to_owned(),
            reason: e.0,
        })
    }

    /// The digest as 64 lowercase hex characters.
    pub fn finish_hex(self) -> String {
        let mut s = String::with_capacity(64);
        self.finish_hex_into(&mut s);
        s
    }

    /// [`ArgsHasher::finish_hex`] appended to `out`: a key that starts with a prefix is built in one buffer.
    pub fn finish_hex_into(self, out: &mut String) {
        push_hex(out, &self.sha.finalize());
    }

    /// The first 128 bits of the digest as 32 lowercase hex characters, appended to `out`: the part of a
    /// `#[cached]` key that names its arguments (design 0004). Half the characters of [`finish_hex_into`]
    /// — every hit sends the key to Redis and Redis tracks it, so its length is paid on every read — and
    /// still a second preimage away (2^128 work) from another caller's entry.
    ///
    /// [`finish_hex_into`]: ArgsHasher::finish_hex_into
    pub fn finish_short_hex_into(self, out: &mut String) {
        push_hex(out, &self.sha.finalize()[..16]);
    }
}

/// Appends `bytes` as lowercase hex, through one stack buffer (a `push` per character checks capacity and
/// encodes UTF-8 each time).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    let n = bytes.len().min(32);
    for (pair, b) in buf.chunks_exact_mut(2).zip(&bytes[..n]) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    // Only ASCII hex digits were written.
    out.push_str(std::str::from_utf8(&buf[..2 * n]).unwrap_or_default());
}

/// The seed's `generate_cache_key_from_params`: a stable key `{prefix}/{sha256 of the parameters}`.
///
/// ```
/// use std::collections::HashMap;
/// use fernando_cache_keys::generate_cache_key_from_params;
///
/// let params: HashMap<&str, u32> = [("page", 2), ("size", 50)].into();
/// let key = generate_cache_key_from_params("invoices", &params).unwrap();
/// assert!(key.starts_with("invoices/"));
/// assert_eq!(key.len(), "invoices/".len() + 64);
/// ```
///
/// # Errors
/// [`ArgsError`] when the parameters cannot be serialized.
pub fn generate_cache_key_from_params<T: Serialize + ?Sized>(
    prefix: &str,
    params: &T,
) -> Result<String, ArgsError> {
    let mut h = ArgsHasher::new(prefix);
    h.arg("params", params)?;
    Ok(format!("{prefix}/{}", h.finish_hex()))
}

mod tag {
    pub(super) const ARG: u8 = 0x01;
    pub(super) const DOMAIN: u8 = 0x02;
    pub(super) const BOOL: u8 = 0x10;
    pub(super) const INT: u8 = 0x11;
    pub(super) const UINT: u8 = 0x12;
    pub(super) const FLOAT: u8 = 0x13;
    pub(super) const CHAR: u8 = 0x14;
    pub(super) const STR: u8 = 0x15;
    pub(super) const BYTES: u8 = 0x16;
    pub(super) const NONE: u8 = 0x17;
    pub(super) const SOME: u8 = 0x18;
    pub(super) const UNIT: u8 = 0x19;
    pub(super) const VARIANT: u8 = 0x1a;
    pub(super) const SEQ: u8 = 0x20;
    pub(super) const MAP: u8 = 0x21;
    pub(super) const STRUCT: u8 = 0x22;
    pub(super) const ITEM: u8 = 0x2e;
    pub(super) const END: u8 = 0x2f;
}

/// Where encoded bytes go: the digest, or a buffer (for map entries, which are sorted before hashing).
trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_len(&mut self, len: usize) {
        self.put(&(len as u64).to_le_bytes());
    }

    fn put_str(&mut self, s: &str) {
        self.put_len(s.len());
        self.put(s.as_bytes());
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[derive(Debug)]
struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

struct Encoder<'a, S: Sink> {
    out: &'a mut S,
    /// Reused buffers for map entries.
    scratch: &'a mut Vec<u8>,
}

impl<S: Sink> Encoder<'_, S> {
    fn tagged(&mut self, t: u8, bytes: &[u8]) -> Result<(), EncodeError> {
        self.out.put(&[t]);
        self.out.put(bytes);
        Ok(())
    }
}

type Res = Result<(), EncodeError>;

impl<'a, 'b, S: Sink> ser::Serializer for &'a mut Encoder<'b, S> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'a, 'b, S>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Res {
        self.tagged(tag::BOOL, &[u8::from(v)])
    }
    fn serialize_i8(self, v: i8) -> Res {
        self.serialize_i128(v.into())
    }
    fn serialize_i16(self, v: i16) -> Res {
        self.serialize_i128(v.into())
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.serialize_i128(v.into())
    }
    fn serialize_i64(self, v: i64) -> Res {
        self.serialize_i128(v.into())
    }
    fn serialize_i128(self, v: i128) -> Res {
        // Non-negative integers hash alike whatever their signedness.
        match u128::try_from(v) {
            Ok(u) => self.serialize_u128(u),
            Err(_) => self.tagged(tag::INT, &v.to_le_bytes()),
        }
    }
    fn serialize_u8(self, v: u8) -> Res {
        self.serialize_u128(v.into())
    }
    fn serialize_u16(self, v: u16) -> Res {
        self.serialize_u128(v.into())
    }
    fn serialize_u32(self, v: u32) -> Res {
        self.serialize_u128(v.into())
    }
    fn serialize_u64(self, v: u64) -> Res {
        self.serialize_u128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Res {
        self.tagged(tag::UINT, &v.to_le_bytes())
    }
    fn serialize_f32(self, v: f32) -> Res {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Res {
        // One NaN and one zero, so values that compare equal (or are both NaN) hash alike.
        let v = if v.is_nan() {
            f64::NAN
        } else if v == 0.0 {
            0.0
        } else {
            v
        };
        self.tagged(tag::FLOAT, &v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Res {
        self.tagged(tag::CHAR, &u32::from(v).to_le_bytes())
    }
    fn serialize_str(self, v: &str) -> Res {
        self.out.put(&[tag::STR]);
        self.out.put_str(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.out.put(&[tag::BYTES]);
        self.out.put_len(v.len());
        self.out.put(v);
        Ok(())
    }
    fn serialize_none(self) -> Res {
        self.tagged(tag::NONE, &[])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        self.out.put(&[tag::SOME]);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        self.tagged(tag::UNIT, &[])
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> Res {
        self.out.put(&[tag::VARIANT]);
        self.out.put_str(variant);
        self.serialize_unit()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        self.out.put(&[tag::VARIANT]);
        self.out.put_str(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, EncodeError> {
        self.out.put(&[tag::SEQ]);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        self.out.put(&[tag::VARIANT]);
        self.out.put_str(variant);
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'a, 'b, S>, EncodeError> {
        Ok(MapEncoder {
            enc: self,
            entries: Vec::new(),
            current: Vec::new(),
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        self.out.put(&[tag::STRUCT]);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.out.put(&[tag::VARIANT]);
        self.out.put_str(variant);
        self.out.put(&[tag::STRUCT]);
        Ok(self)
    }
}

impl<S: Sink> Encoder<'_, S> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        self.out.put(&[tag::ITEM]);
        value.serialize(&mut *self)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Res {
        self.out.put(&[tag::ITEM]);
        self.out.put_str(name);
        value.serialize(&mut *self)
    }

    fn end(&mut self) -> Res {
        self.out.put(&[tag::END]);
        Ok(())
    }
}

macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl<S: Sink> ser::$trait for &mut Encoder<'_, S> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
                self.item(value)
            }
            fn end(self) -> Res {
                Encoder::end(self)
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl<S: Sink> ser::$trait for &mut Encoder<'_, S> {
            type Ok = ();
            type Error = EncodeError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Res {
                self.field(name, value)
            }
            fn end(self) -> Res {
                Encoder::end(self)
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

/// Encodes each entry on its own, then writes the entries sorted, so iteration order never matters.
struct MapEncoder<'a, 'b, S: Sink> {
    enc: &'a mut Encoder<'b, S>,
    entries: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl<S: Sink> MapEncoder<'_, '_, S> {
    fn encode_into_current<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        let mut scratch = std::mem::take(self.enc.scratch);
        let r = value.serialize(&mut Encoder {
            out: &mut self.current,
            scratch: &mut scratch,
        });
        *self.enc.scratch = scratch;
        r
    }
}

impl<S: Sink> ser::SerializeMap for MapEncoder<'_, '_, S> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        self.current.clear();
        self.encode_into_current(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        self.encode_into_current(value)?;
        self.entries.push(std::mem::take(&mut self.current));
        Ok(())
    }

    fn end(mut self) -> Res {
        self.entries.sort_unstable();
        self.enc.out.put(&[tag::MAP]);
        for e in &self.entries {
            self.enc.out.put(&[tag::ITEM]);
            self.enc.out.put_len(e.len());
            self.enc.out.put(e);
        }
        self.enc.end()
    }
}

#[cfg(test)]
mod tests;

//! How a writer packs its operations into one field of one stream entry (design 0026), and how they are
//! read back: compactly ([`PACKED_FIELD`]), as writers append them now, and as `ops`, as writers before it did
//! (a region may run either during an upgrade). Bytes no writer packed read as `None`.

use bytes::Bytes;
use fernando_cache_keys::Scope;

use super::entry::{Op, Replicated};

/// Fields one packed operation may have at most.
const MAX_OP_FIELDS: usize = 8;

/// Operations one packed entry may carry at most (a writer packs up to 256).
const MAX_PACKED: usize = 256;

/// The one field a writer appends its operations in, packed compactly ([`Replicated::pack_compact`]). Entries
/// of writers before it carry an `ops` field ([`Replicated::pack`]) or loose fields, and still read.
pub(crate) const PACKED_FIELD: &str = "ops2";

/// The operations' kinds, by the number the compact packing gives them (the low three bits of an operation's
/// first byte).
const KINDS: [&str; 6] = ["entries", "pattern", "subject", "tag", "erase", "value"];
/// In an operation's first byte: it names a tenant …
const HAS_TENANT: u8 = 0x08;
/// … the one the last operation to name one named;
const SAME_TENANT: u8 = 0x10;
/// it names a cache type …
const HAS_TYPE: u8 = 0x20;
/// … the one the last operation to name one named.
const SAME_TYPE: u8 = 0x40;

/// Appends `n` as a LEB128 varint (a length: one byte below 128).
fn push_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Appends `text` after its length.
fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    push_len(out, text.len());
    out.extend_from_slice(text);
}

/// A reader of a compactly packed field.
struct Cursor<'b>(&'b [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*byte)
    }

    /// A length (a varint of at most five bytes) and that many bytes after it.
    fn text(&mut self) -> Option<Bytes> {
        let mut len: usize = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let (head, rest) = self.0.split_at_checked(len)?;
                self.0 = rest;
                return Some(Bytes::copy_from_slice(head));
            }
        }
        None
    }
}

impl Op {
    /// The operation's kind (its number in [`KINDS`]) and argument.
    fn kind_and_arg(&self) -> (u8, &[u8]) {
        match self {
            Op::Entries { strategy } => (0, strategy.as_str().as_bytes()),
            Op::Pattern(glob) => (1, glob.as_bytes()),
            Op::Subject(subject) => (2, subject.as_bytes()),
            Op::Tag(tag) => (3, tag.as_bytes()),
            Op::Erase => (4, b""),
            Op::Value { key } => (5, key.as_bytes()),
        }
    }
}

/// The kind of [`Op::Value`], which a writer packs from its key alone.
const VALUE: u8 = 5;

/// A [`PACKED_FIELD`] being written, an operation at a time, in order. The region once; then for each operation
/// a byte (its kind, whether it names a tenant and a type, and whether they are the ones named last), the
/// tenant and type only when they are not, and its argument; lengths as varints. A value's entry is a few bytes
/// beside its key, where [`Replicated::pack`] spent 70: the server copies every byte into the stream (session 45
/// measured an `XADD` of 253 operations of that packing at 88 µs).
#[derive(Debug)]
pub(super) struct Packer {
    bytes: Vec<u8>,
    ops: usize,
    tenant: Option<String>,
    cache_type: Option<String>,
}

impl Packer {
    /// An empty field for operations made in region `from`.
    pub(super) fn new(from: &str) -> Packer {
        let mut bytes = Vec::with_capacity(256);
        push_text(&mut bytes, from.as_bytes());
        Packer {
            bytes,
            ops: 0,
            tenant: None,
            cache_type: None,
        }
    }

    /// How many operations it holds.
    pub(super) fn ops(&self) -> usize {
        self.ops
    }

    /// Adds `op` of `scope` (and `cache_type`).
    pub(super) fn push(&mut self, scope: &Scope, cache_type: Option<&str>, op: &Op) {
        let (kind, arg) = op.kind_and_arg();
        self.push_kind(scope, cache_type, kind, arg);
    }

    /// Adds that a value of `cache_type` was written under the specific key `key`.
    pub(super) fn push_value(&mut self, scope: &Scope, cache_type: &str, key: &str) {
        self.push_kind(scope, Some(cache_type), VALUE, key.as_bytes());
    }

    fn push_kind(&mut self, scope: &Scope, cache_type: Option<&str>, kind: u8, arg: &[u8]) {
        let tenant = match scope {
            Scope::Tenant(t) => Some(t.as_str()),
            Scope::Global => None,
        };
        let same_tenant = tenant.is_some() && tenant == self.tenant.as_deref();
        let same_type = cache_type.is_some() && cache_type == self.cache_type.as_deref();
        let mut head = kind;
        if tenant.is_some() {
            head |= HAS_TENANT | if same_tenant { SAME_TENANT } else { 0 };
        }
        if cache_type.is_some() {
            head |= HAS_TYPE | if same_type { SAME_TYPE } else { 0 };
        }
        self.bytes.push(head);
        if let Some(t) = tenant.filter(|_| !same_tenant) {
            push_text(&mut self.bytes, t.as_bytes());
            self.tenant = Some(t.to_owned());
        }
        if let Some(t) = cache_type.filter(|_| !same_type) {
            push_text(&mut self.bytes, t.as_bytes());
            self.cache_type = Some(t.to_owned());
        }
        push_text(&mut self.bytes, arg);
        self.ops += 1;
    }

    /// The field's bytes.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Replicated {
    /// Operations made in region `from` packed into one [`PACKED_FIELD`], as a writer appends them.
    #[cfg(test)]
    pub(super) fn pack_compact(from: &str, ops: &[Replicated]) -> Vec<u8> {
        let mut packer = Packer::new(from);
        for op in ops {
            packer.push(&op.scope, op.cache_type.as_deref(), &op.op);
        }
        packer.into_bytes()
    }

    /// The operations of a [`Replicated::pack_compact`]ed field, each as its fields; `None` for bytes no writer
    /// packed.
    pub(super) fn unpack_compact(bytes: &[u8]) -> Option<Vec<Vec<(String, Bytes)>>> {
        let mut at = Cursor(bytes);
        let from = at.text()?;
        let (mut tenant, mut cache_type): (Option<Bytes>, Option<Bytes>) = (None, None);
        let mut ops = Vec::new();
        while let Some(head) = at.byte() {
            if ops.len() >= MAX_PACKED || head & 0x80 != 0 {
                return None;
            }
            let kind = *KINDS.get(usize::from(head & 0x07))?;
            let mut fields = vec![
                ("op".to_owned(), Bytes::from_static(kind.as_bytes())),
                ("from".to_owned(), from.clone()),
            ];
            for (has, same, last, name) in [
                (HAS_TENANT, SAME_TENANT, &mut tenant, "tenant"),
                (HAS_TYPE, SAME_TYPE, &mut cache_type, "type"),
            ] {
                let value = match (head & has != 0, head & same != 0) {
                    (false, false) => continue,
                    (false, true) => return None,
                    (true, true) => last.clone()?,
                    (true, false) => {
                        let value = at.text()?;
                        *last = Some(value.clone());
                        value
                    }
                };
                fields.push((name.to_owned(), value));
            }
            fields.push(("arg".to_owned(), at.text()?));
            ops.push(fields);
        }
        Some(ops)
    }

    /// Several operations as the value of one field, `ops`, as writers before [`PACKED_FIELD`] appended them:
    /// kept to show such entries still read. For each operation, its field count (a byte), then each field's
    /// name length (a byte), name, value length (4 bytes, little-endian) and value.
    #[cfg(test)]
    pub(super) fn pack(ops: &[Replicated]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ops.len() * 96);
        for op in ops {
            let fields = op.fields();
            out.push(fields.len() as u8);
            for (name, value) in fields {
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// The operations of a [`Replicated::pack`]ed field, each as its fields; `None` for bytes no writer packed.
    pub(super) fn unpack(mut bytes: &[u8]) -> Option<Vec<Vec<(String, Bytes)>>> {
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, rest) = bytes.split_at_checked(n)?;
            bytes = rest;
            Some(head)
        };
        let mut ops = Vec::new();
        while let Some(count) = take(1) {
            let count = usize::from(count[0]);
            if count > MAX_OP_FIELDS || ops.len() >= MAX_PACKED {
                return None;
            }
            let mut fields = Vec::with_capacity(count);
            for _ in 0..count {
                let name_len = usize::from(take(1)?[0]);
                let name = std::str::from_utf8(take(name_len)?).ok()?.to_owned();
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?);
                let value = Bytes::copy_from_slice(take(usize::try_from(len).ok()?)?);
                fields.push((name, value));
            }
            ops.push(fields);
        }
        Some(ops)
    }
}

#[cfg(test)]
mod tests {
    use fernando_cache_keys::{Scope, TenantId};

    use super::*;
    use crate::InvalidationStrategy;
    use crate::store::replication::entry::tests::entry;

    #[test]
    fn packed_operations_read_back_in_order_and_bytes_no_writer_packed_are_refused() {
        let ops: Vec<Replicated> = (0..MAX_PACKED)
            .map(|i| Replicated {
                from: "eu".into(),
                scope: Scope::Tenant(TenantId::new(format!("t{i}")).unwrap()),
                cache_type: Some("ocr_result".into()),
                op: if i % 2 == 0 {
                    Op::Value {
                        key: format!("doc:{i}"),
                    }
                } else {
                    Op::Subject("é".repeat(i))
                },
            })
            .collect();
        let packed = Replicated::pack(&ops);
        let read = Replicated::read_all(&entry(&[("ops", &packed)]), 128);
        let read: Vec<Replicated> = read.into_iter().map(Result::unwrap).collect();
        assert_eq!(read, ops);
        // One more than a writer packs is not a writer's.
        let mut more = ops.clone();
        more.push(ops[0].clone());
        let read = Replicated::read_all(&entry(&[("ops", &Replicated::pack(&more))]), 128);
        assert!(matches!(&read[..], [Err(_)]), "{}", read.len());
        for bad in [
            &packed[..packed.len() - 1],
            &[9u8][..],
            &[1, 200, b'a'][..],
            b"",
        ] {
            let read = Replicated::read_all(&entry(&[("ops", bad)]), 128);
            assert!(matches!(&read[..], [Err(_)]), "{read:?}");
        }
    }

    #[test]
    fn compactly_packed_operations_read_back_in_order_and_bytes_no_writer_packed_are_refused() {
        // Tenants and types that repeat, change, come back and are absent, so that every case of the first
        // byte's "the one named last" is written and read.
        let tenant = |t: &str| Scope::Tenant(TenantId::new(t).unwrap());
        let ops: Vec<Replicated> = (0..MAX_PACKED)
            .map(|i| Replicated {
                from: "eu-west".into(),
                scope: if i % 7 == 3 {
                    Scope::Global
                } else {
                    tenant(&format!("t{}", i / 5))
                },
                cache_type: match i % 4 {
                    0 | 1 => Some("ocr_result".to_owned()),
                    2 => Some("llm_extraction".to_owned()),
                    _ => None,
                },
                op: match i % 6 {
                    0 => Op::Entries {
                        strategy: InvalidationStrategy::Lazy,
                    },
                    1 => Op::Pattern("inv-*".into()),
                    2 => Op::Subject("é".repeat(i)),
                    3 => Op::Tag(String::new()),
                    4 if i % 7 != 3 => Op::Erase,
                    _ => Op::Value {
                        key: format!("doc:{i}:{}", "x".repeat(i % 200)),
                    },
                },
            })
            .collect();
        let ops: Vec<Replicated> = ops
            .into_iter()
            .filter(|r| !matches!(r.op, Op::Value { .. }) || r.cache_type.is_some())
            .collect();
        let packed = Replicated::pack_compact("eu-west", &ops);
        let read = Replicated::read_all(&entry(&[(PACKED_FIELD, &packed)]), 128);
        let read: Vec<Replicated> = read.into_iter().map(Result::unwrap).collect();
        assert_eq!(read, ops);
        // A writer's usual entry — values of one tenant and type — is a few bytes an operation beside its key,
        // where the packing before it spent about 70.
        let values: Vec<Replicated> = (0..MAX_PACKED)
            .map(|i| Replicated {
                from: "eu-west".into(),
                scope: tenant("acme"),
                cache_type: Some("ocr_result".to_owned()),
                op: Op::Value {
                    key: format!("w{}", i % 64),
                },
            })
            .collect();
        let (compact, before) = (
            Replicated::pack_compact("eu-west", &values).len(),
            Replicated::pack(&values).len(),
        );
        assert!(
            compact < MAX_PACKED * 6 && before > MAX_PACKED * 60,
            "{compact} / {before}"
        );
        // An entry of a writer before it still reads.
        let old = Replicated::read_all(&entry(&[("ops", &Replicated::pack(&ops))]), 128);
        assert_eq!(old.into_iter().map(Result::unwrap).collect::<Vec<_>>(), ops);
        // One more than a writer packs is not a writer's.
        let mut more = ops.clone();
        more.extend(ops.iter().take(MAX_PACKED + 1 - ops.len()).cloned());
        let read = Replicated::read_all(
            &entry(&[(PACKED_FIELD, &Replicated::pack_compact("eu", &more))]),
            128,
        );
        assert!(matches!(&read[..], [Err(_)]), "{}", read.len());
        for bad in [
            &packed[..packed.len() - 1],
            // No region, or an empty entry.
            b"",
            &[2, b'e', b'u'][..],
            // A kind no writer gives, a flag no writer sets, "the tenant named last" before any was named.
            &[2, b'e', b'u', 7, 0][..],
            &[2, b'e', b'u', 0x85, 1, b'k'][..],
            &[2, b'e', b'u', 0x18 | 5, 1, b'k'][..],
            // "The same" without "names one"; a length past the bytes; a varint that never ends.
            &[2, b'e', b'u', 0x40 | 3, 0][..],
            &[2, b'e', b'u', 3, 9, b'k'][..],
            &[2, b'e', b'u', 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        ] {
            let read = Replicated::read_all(&entry(&[(PACKED_FIELD, bad)]), 128);
            assert!(matches!(&read[..], [Err(_)]), "{bad:?}: {read:?}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes a stream holds under `ops2`, reading them ends — every operation read, or each one
        /// refused — without a panic, and never with more operations than a writer packs.
        #[test]
        fn any_bytes_read_as_operations_or_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)
        ) {
            let read = Replicated::read_all(&entry(&[(PACKED_FIELD, &bytes)]), 128);
            proptest::prop_assert!(!read.is_empty() && read.len() <= MAX_PACKED);
        }

        /// Any run of value and tag operations over a few tenants and types reads back as packed, in order.
        #[test]
        fn any_run_of_operations_reads_back(
            picks in proptest::collection::vec((0u8..4, 0u8..3, 0u8..3, "[a-z0-9:]{0,24}"), 1..MAX_PACKED)
        ) {
            let ops: Vec<Replicated> = picks
                .into_iter()
                .map(|(kind, tenant, cache_type, arg)| Replicated {
                    from: "eu".into(),
                    scope: match tenant {
                        0 => Scope::Global,
                        t => Scope::Tenant(TenantId::new(format!("t{t}")).unwrap()),
                    },
                    cache_type: match (kind, cache_type) {
                        (0, c) => Some(format!("type{c}")),
                        (_, 0) => None,
                        (_, c) => Some(format!("type{c}")),
                    },
                    op: match kind {
                        0 => Op::Value { key: arg },
                        1 => Op::Tag(arg),
                        2 => Op::Subject(arg),
                        _ => Op::Pattern(arg),
                    },
                })
                .collect();
            let packed = Replicated::pack_compact("eu", &ops);
            let read: Vec<Result<Replicated, String>> =
                Replicated::read_all(&entry(&[(PACKED_FIELD, &packed)]), 128);
            proptest::prop_assert_eq!(read, ops.into_iter().map(Ok).collect::<Vec<_>>());
        }
    }
}

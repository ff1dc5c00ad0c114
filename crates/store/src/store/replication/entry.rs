//! What one replication stream entry says (design 0026): an operation in the store's own terms — an
//! invalidation, an erasure, or a value of a replicated type — with the region it was made in. Written as a
//! stream entry's fields and read back from them, checked: an entry from a stream is input like any other.

use fernando_cache_config::RegionSettings;
use fernando_cache_keys::{Scope, TenantId};

use super::packing::PACKED_FIELD;
use crate::{InvalidationStrategy, StreamEntry};

/// One operation another region is to apply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// Every entry of a scope, or of one type in it, with a strategy.
    Entries {
        /// The strategy the writing region used.
        strategy: InvalidationStrategy,
    },
    /// The entries whose specific key matches a glob.
    Pattern(String),
    /// Everything about a subject.
    Subject(String),
    /// The entries written with a tag.
    Tag(String),
    /// A tenant's erasure.
    Erase,
    /// A value of a replicated type was written under this specific key: the applying region reads it from the
    /// writing region's backend (as it is then, if no invalidation hid it since), so the stream carries no
    /// value and the writer no copy of it.
    Value {
        /// The specific key.
        key: String,
    },
}

/// An operation with where it applies and where it was made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Replicated {
    /// The region it was made in.
    pub(crate) from: String,
    /// Its scope.
    pub(crate) scope: Scope,
    /// Its cache type, when it names one.
    pub(crate) cache_type: Option<String>,
    /// What happened.
    pub(crate) op: Op,
}

impl Replicated {
    /// The operation as loose fields, as the first writers appended it: kept to show such entries still read.
    #[cfg(test)]
    pub(super) fn fields(&self) -> Vec<(&'static str, &[u8])> {
        let (kind, arg): (&str, &[u8]) = match &self.op {
            Op::Entries { strategy } => ("entries", strategy.as_str().as_bytes()),
            Op::Pattern(glob) => ("pattern", glob.as_bytes()),
            Op::Subject(subject) => ("subject", subject.as_bytes()),
            Op::Tag(tag) => ("tag", tag.as_bytes()),
            Op::Erase => ("erase", b""),
            Op::Value { key, .. } => ("value", key.as_bytes()),
        };
        let mut fields = vec![
            ("op", kind.as_bytes()),
            ("from", self.from.as_bytes()),
            ("arg", arg),
        ];
        if let Scope::Tenant(t) = &self.scope {
            fields.push(("tenant", t.as_str().as_bytes()));
        }
        if let Some(t) = &self.cache_type {
            fields.push(("type", t.as_bytes()));
        }
        fields
    }

    /// Reads every operation an entry carries — packed in one field as a writer appends them (compactly in
    /// [`PACKED_FIELD`], or in `ops` by writers before it), or each starting with its own `op` field — checking every field; an `Err` says what is wrong with one (never its
    /// contents). An entry with no fields, or fields before its first `op`, reads as one that is wrong.
    pub(crate) fn read_all(
        entry: &StreamEntry,
        max_tenant_len: usize,
    ) -> Vec<Result<Replicated, String>> {
        if let [(name, packed)] = &entry.fields[..]
            && (name == "ops" || name == PACKED_FIELD)
        {
            let unpacked = if name == PACKED_FIELD {
                Replicated::unpack_compact(packed)
            } else {
                Replicated::unpack(packed)
            };
            return match unpacked {
                Some(ops) if !ops.is_empty() => ops
                    .iter()
                    .map(|fields| Replicated::read(fields, max_tenant_len))
                    .collect(),
                _ => vec![Err("packed operations no writer packed".into())],
            };
        }
        let fields = &entry.fields;
        let starts: Vec<usize> = (0..fields.len())
            .filter(|&i| i == 0 || fields[i].0 == "op")
            .collect();
        if starts.is_empty() {
            return vec![Err("an entry with no fields".into())];
        }
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts.get(n + 1).copied().unwrap_or(fields.len());
                Replicated::read(&fields[start..end], max_tenant_len)
            })
            .collect()
    }

    /// Reads one operation's fields, checking every one.
    fn read(
        fields: &[(String, bytes::Bytes)],
        max_tenant_len: usize,
    ) -> Result<Replicated, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| {
                    std::str::from_utf8(v).map_err(|_| format!("field {name} is not text"))
                })
                .transpose()
        };
        let from = text("from")?.ok_or("no field from")?;
        // The checks' own errors quote what they checked; an entry's are logged, so they say only which field.
        RegionSettings::check_name(from).map_err(|_| "field from is no region's name")?;
        let scope = match text("tenant")? {
            None => Scope::Global,
            Some(t) if t.len() > max_tenant_len => return Err("field tenant is too long".into()),
            Some(t) => Scope::Tenant(TenantId::new(t).map_err(|_| "field tenant is no tenant id")?),
        };
        let cache_type = text("type")?.map(str::to_owned);
        let arg = text("arg")?.ok_or("no field arg")?.to_owned();
        let op = match text("op")?.ok_or("no field op")? {
            "entries" => Op::Entries {
                strategy: arg
                    .parse()
                    .map_err(|_| "field arg is no invalidation strategy")?,
            },
            "pattern" => Op::Pattern(arg),
            "subject" => Op::Subject(arg),
            "tag" => Op::Tag(arg),
            "erase" => Op::Erase,
            "value" => Op::Value { key: arg },
            _ => return Err("unknown op".into()),
        };
        if matches!(op, Op::Erase) && scope == Scope::Global {
            return Err("an erasure names no tenant".into());
        }
        if matches!(op, Op::Value { .. }) && cache_type.is_none() {
            return Err("a value names no cache type".into());
        }
        Ok(Replicated {
            from: from.to_owned(),
            scope,
            cache_type,
            op,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A stream entry of `fields`, as a reader gets it.
    pub(in crate::store::replication) fn entry(fields: &[(&str, &[u8])]) -> StreamEntry {
        StreamEntry {
            id: "1-0".into(),
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), bytes::Bytes::copy_from_slice(v)))
                .collect(),
            deleted: false,
        }
    }

    #[test]
    fn every_op_reads_back_as_written() {
        let tenant = Scope::Tenant(TenantId::new("acme").unwrap());
        for (scope, cache_type, op) in [
            (
                tenant.clone(),
                None,
                Op::Entries {
                    strategy: InvalidationStrategy::Hybrid,
                },
            ),
            (
                Scope::Global,
                Some("session".to_owned()),
                Op::Pattern("inv-*".into()),
            ),
            (tenant.clone(), None, Op::Subject("9f86d081".into())),
            (tenant.clone(), None, Op::Tag("customer:42".into())),
            (tenant.clone(), None, Op::Erase),
            (
                tenant.clone(),
                Some("ocr_result".to_owned()),
                Op::Value {
                    key: "doc:1".into(),
                },
            ),
        ] {
            let r = Replicated {
                from: "eu-west".into(),
                scope,
                cache_type,
                op,
            };
            let read = Replicated::read_all(&entry(&r.fields()), 128);
            assert_eq!(read, [Ok(r)]);
        }
    }

    #[test]
    fn an_entry_packs_operations_each_starting_with_its_op_and_a_bad_one_spoils_only_itself() {
        let tenant = Scope::Tenant(TenantId::new("acme").unwrap());
        let ops = [
            Op::Tag("a".into()),
            Op::Value { key: "k".into() },
            Op::Erase,
        ];
        let records: Vec<Replicated> = ops
            .into_iter()
            .map(|op| Replicated {
                from: "eu".into(),
                scope: tenant.clone(),
                cache_type: Some("ocr_result".into()),
                op,
            })
            .collect();
        let mut fields: Vec<(&str, &[u8])> = Vec::new();
        let all: Vec<_> = records.iter().map(Replicated::fields).collect();
        fields.push(("op", b"nonsense"));
        for f in &all {
            fields.extend(f.iter().copied());
        }
        let read = Replicated::read_all(&entry(&fields), 128);
        assert_eq!(read.len(), 4, "{read:?}");
        assert!(read[0].is_err(), "{read:?}");
        for (got, want) in read[1..].iter().zip(&records) {
            assert_eq!(got.as_ref(), Ok(want));
        }
        // Fields before the first op: a record of its own, refused.
        let read = Replicated::read_all(&entry(&[("from", b"eu"), ("op", b"erase")]), 128);
        assert!(read[0].is_err(), "{read:?}");
        assert_eq!(
            Replicated::read_all(&entry(&[]), 128),
            [Err("an entry with no fields".to_owned())]
        );
    }

    #[test]
    fn an_entry_not_ours_says_what_is_wrong_and_nothing_of_its_contents() {
        for (fields, why) in [
            (
                vec![("op", &b"entries"[..]), ("arg", b"lazy")],
                "no field from",
            ),
            (
                vec![("op", b"x"), ("from", b"EU"), ("arg", b"")],
                "field from",
            ),
            (
                vec![("op", b"secret-op"), ("from", b"eu"), ("arg", b"")],
                "unknown op",
            ),
            (
                vec![("op", b"entries"), ("from", b"eu"), ("arg", b"now")],
                "field arg",
            ),
            (
                vec![("op", b"erase"), ("from", b"eu"), ("arg", b"")],
                "names no tenant",
            ),
            (
                vec![
                    ("op", b"value"),
                    ("from", b"eu"),
                    ("arg", b"k"),
                    ("tenant", b"t"),
                ],
                "names no cache type",
            ),
            (
                vec![
                    ("op", b"tag"),
                    ("from", b"eu"),
                    ("arg", b"t"),
                    ("tenant", b"\xff"),
                ],
                "not text",
            ),
            (
                vec![
                    ("op", b"tag"),
                    ("from", b"eu"),
                    ("arg", b"t"),
                    ("tenant", b"a\x01"),
                ],
                "field tenant",
            ),
        ] {
            let read = Replicated::read_all(&entry(&fields), 128);
            let [Err(err)] = &read[..] else {
                panic!("{read:?}")
            };
            assert!(err.contains(why), "{err:?} does not say {why:?}");
        }
        // What a field held never reaches the error (it is logged): a secret in each field that is checked.
        for (fields, why) in [
            (
                vec![("op", &b"tag"[..]), ("from", b"CARD-4111"), ("arg", b"t")],
                "field from",
            ),
            (
                vec![("op", b"entries"), ("from", b"eu"), ("arg", b"CARD-4111")],
                "field arg",
            ),
            (
                vec![
                    ("op", b"tag"),
                    ("from", b"eu"),
                    ("arg", b"t"),
                    ("tenant", b"CARD-4111\x01"),
                ],
                "field tenant",
            ),
            (
                vec![("op", b"CARD-4111"), ("from", b"eu"), ("arg", b"t")],
                "unknown op",
            ),
        ] {
            let read = Replicated::read_all(&entry(&fields), 128);
            let [Err(err)] = &read[..] else {
                panic!("{read:?}")
            };
            assert!(err.contains(why), "{err:?} does not say {why:?}");
            assert!(!err.contains("CARD"), "{err:?} says what the field held");
        }
    }
}

//! What one replication stream entry says (design 0026): an operation in the store's own terms — an
//! invalidation, an erasure, or a value of a replicated type — with the region it was made in. Written as a
//! stream entry's fields and read back from them, checked: an entry from a stream is input like any other.

use fernando_cache_config::RegionSettings;
use fernando_cache_keys::{Scope, TenantId};

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
    /// The entry's fields, as appended.
    pub(crate) fn fields(&self) -> Vec<(&'static str, &[u8])> {
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

    /// Reads an entry, checking every field; `Err` says what is wrong with it (never its contents).
    pub(crate) fn read(entry: &StreamEntry, max_tenant_len: usize) -> Result<Replicated, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            entry
                .field(name)
                .map(|v| std::str::from_utf8(v).map_err(|_| format!("field {name} is not text")))
                .transpose()
        };
        let from = text("from")?.ok_or("no field from")?;
        RegionSettings::check_name(from).map_err(|e| format!("field from: {e}"))?;
        let scope = match text("tenant")? {
            None => Scope::Global,
            Some(t) if t.len() > max_tenant_len => return Err("field tenant is too long".into()),
            Some(t) => Scope::Tenant(TenantId::new(t).map_err(|e| format!("field tenant: {e}"))?),
        };
        let cache_type = text("type")?.map(str::to_owned);
        let arg = text("arg")?.ok_or("no field arg")?.to_owned();
        let op = match text("op")?.ok_or("no field op")? {
            "entries" => Op::Entries {
                strategy: arg.parse().map_err(|e| format!("field arg: {e}"))?,
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
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(fields: &[(&str, &[u8])]) -> StreamEntry {
        StreamEntry {
            id: "1-0".into(),
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), Bytes::copy_from_slice(v)))
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
            let read = Replicated::read(&entry(&r.fields()), 128).unwrap();
            assert_eq!(read, r);
        }
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
            let err = Replicated::read(&entry(&fields), 128).unwrap_err();
            assert!(err.contains(why), "{err:?} does not say {why:?}");
        }
    }
}

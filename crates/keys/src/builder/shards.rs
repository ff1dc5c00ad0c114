//! Tenants spread over several hash tags (design 0024): how many shards each tenant has ([`ShardCounts`]),
//! which shard an entry lives on, and the keys and patterns that change with shards — an entry's generation
//! keys and byte ledger, read off its key; every shard's generation keys, for an invalidation; every byte
//! ledger and SCAN pattern of a scope.
//!
//! Shard `n` of tenant `t` is the hash tag `{tenant_<t escaped>%s<n>}`. An escaped id never contains `%s` (its
//! own `%` is written `%25`), so no shard tag of one tenant is a tag of another tenant, nor the tenant's own
//! one-tag `{tenant_<t>}`. An entry's shard is the first eight bytes of the SHA-256 of its escaped specific
//! key, read big-endian, modulo the tenant's shard count: fixed forever, the same in every process.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc};

use fernando_cache_config::{CacheType, MAX_SHARDS, TenantPlans};
use sha2::{Digest, Sha256};

use super::{KeyBuilder, Scope, ScopeRef, push_pattern_rest};
use crate::{
    CacheKey, GenerationKeys, KeyError,
    escape::{escape_glob, escape_segment},
};

/// How many hash tags each tenant's entries are spread over (design 0024): a count per tenant named, and one
/// for every other tenant. A count is 1 — one hash tag, the layout of every tenant before shards — to
/// [`MAX_SHARDS`]; a count outside that range is brought to its nearest end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCounts {
    default: u16,
    listed: BTreeMap<String, u16>,
}

impl Default for ShardCounts {
    /// Every tenant on one hash tag.
    fn default() -> Self {
        ShardCounts::new(1)
    }
}

impl ShardCounts {
    /// Every tenant on `default` shards, but those [`ShardCounts::tenant`] names.
    pub fn new(default: u16) -> Self {
        ShardCounts {
            default: in_range(default),
            listed: BTreeMap::new(),
        }
    }

    /// `tenant` (its id as written, not escaped) on `shards` shards.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>, shards: u16) -> Self {
        self.listed.insert(tenant.into(), in_range(shards));
        self
    }

    /// How many shards `tenant` (its id as written) has.
    pub fn of(&self, tenant: &str) -> u16 {
        self.listed.get(tenant).copied().unwrap_or(self.default)
    }

    /// Whether every tenant is on one hash tag.
    pub fn is_flat(&self) -> bool {
        self.default == 1 && self.listed.values().all(|&n| n == 1)
    }
}

impl From<&TenantPlans> for ShardCounts {
    /// Each listed tenant's `shards`, and `[tenants.default]`'s for every other tenant.
    fn from(plans: &TenantPlans) -> Self {
        plans.listed().fold(
            ShardCounts::new(plans.default_plan().shards),
            |counts, (tenant, plan)| counts.tenant(tenant, plan.shards),
        )
    }
}

fn in_range(shards: u16) -> u16 {
    shards.clamp(1, MAX_SHARDS)
}

/// The shard, among `count`, of the entry whose *escaped* specific key is `specific`: the first eight bytes of
/// its SHA-256, big-endian, modulo `count`. Fixed forever: it decides where every entry of a sharded tenant
/// lives, in every process and every version.
fn shard_of_key(specific: &str, count: u16) -> u16 {
    let d = Sha256::digest(specific.as_bytes());
    let first = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    u16::try_from(first % u64::from(count.max(1))).unwrap_or(0)
}

/// Writes the mark of shard `n` inside a hash tag: `%s<n>`.
pub(super) fn push_shard(out: &mut String, n: u16) {
    // Writing into a `String` cannot fail.
    let _ = write!(out, "%s{n}");
}

/// An entry key's prefix (`{namespace}:{environment}:`), hash tag and cache type. Every segment of a key this
/// crate builds is free of `:` (escaped), so its colons delimit them: `{prefix}{tag}:{type}:{specific}`.
fn entry_parts(entry: &str) -> (&str, &str, &str) {
    let mut segments = entry.splitn(5, ':');
    let namespace = segments.next().unwrap_or("");
    let environment = segments.next().unwrap_or("");
    let tag = segments.next().unwrap_or("");
    let cache_type = segments.next().unwrap_or("");
    // Up to and including the second `:` (the whole text if it has fewer).
    let prefix_len = (namespace.len() + environment.len() + 2).min(entry.len());
    (&entry[..prefix_len], tag, cache_type)
}

impl KeyBuilder {
    /// The scope and cache type of an entry key a [`KeyBuilder`] made — whichever shard of its tenant it is on —
    /// read off the key; `None` for a key of another layout (a generation key, a lease, another prefix's). What
    /// finds the scopes that hold entries of a type, when none can be trusted to be known (design 0026's gap).
    pub fn scope_of<'k>(&self, entry: &'k str) -> Option<(Scope, &'k str)> {
        let (prefix, tag, cache_type) = entry_parts(entry);
        if prefix != self.prefix || cache_type.is_empty() {
            return None;
        }
        let inner = tag.strip_prefix('{')?.strip_suffix('}')?;
        if inner == "global" {
            return Some((Scope::Global, cache_type));
        }
        let escaped = inner.strip_prefix("tenant_")?;
        // A shard's tag ends with `%s<n>`: an escaped id has no `%s` of its own.
        let escaped = escaped.find("%s").map_or(escaped, |i| &escaped[..i]);
        let id = crate::escape::unescape_segment(escaped).ok()?;
        let tenant = crate::TenantId::new(&*id).ok()?;
        Some((Scope::Tenant(tenant), cache_type))
    }

    /// A SCAN MATCH pattern for every entry of `cache_type` of every scope and shard — with
    /// [`Self::scope_of`], what finds who holds entries of a type.
    pub fn type_pattern(&self, cache_type: &CacheType) -> String {
        format!(
            "{}{{*}}:{}:*",
            escape_glob(&self.prefix),
            escape_glob(cache_type.as_str())
        )
    }
}

impl KeyBuilder {
    /// This builder with each tenant's shard count (design 0024). While every count is 1 it builds exactly the
    /// keys of a builder without shards, at the cost of one check per entry key.
    #[must_use]
    pub fn with_shards(mut self, shards: ShardCounts) -> Self {
        self.shards = (!shards.is_flat()).then(|| Arc::new(shards));
        self
    }

    /// How many shards the scope's entries are spread over: 1 for the global scope and for a tenant on one
    /// hash tag.
    pub fn shards<'s>(&self, scope: impl Into<ScopeRef<'s>>) -> u16 {
        match (scope.into(), self.shards.as_deref()) {
            (ScopeRef::Tenant(t), Some(counts)) => counts.of(t.as_str()),
            _ => 1,
        }
    }

    /// The shard of an entry of `scope` whose escaped specific key is `specific`; `None` for a scope on one
    /// hash tag — found by one check while no tenant is sharded.
    #[inline]
    pub(super) fn entry_shard(&self, scope: ScopeRef<'_>, specific: &str) -> Option<u16> {
        let counts = self.shards.as_deref()?;
        let ScopeRef::Tenant(t) = scope else {
            return None;
        };
        let count = counts.of(t.as_str());
        (count > 1).then(|| shard_of_key(specific, count))
    }

    /// The generation keys `entry` (a key a [`KeyBuilder`] made) is checked against: its scope's — its shard's,
    /// for a tenant spread over shards — and its type's, read off the key, so they always carry its hash tag and
    /// share its slot on a cluster (design 0007's argument holds shard by shard). For an entry on one hash tag
    /// they are [`Self::generation_keys`] of its scope and type.
    pub fn generation_keys_of(&self, entry: &CacheKey) -> GenerationKeys {
        let (prefix, tag, cache_type) = entry_parts(entry.as_str());
        let mut type_key = String::with_capacity(prefix.len() + 6 + tag.len() + cache_type.len());
        type_key.push_str(prefix);
        type_key.push_str("_gen:");
        type_key.push_str(tag);
        let scope_len = type_key.len();
        type_key.push(':');
        type_key.push_str(cache_type);
        GenerationKeys {
            type_key,
            scope_len,
        }
    }

    /// The generation keys an invalidation of `(scope, cache_type)` bumps: [`Self::generation_keys`] for a scope
    /// on one hash tag; for a tenant spread over shards, each shard's — one write per shard, however many entries
    /// the tenant holds — and the one tag's last: the entries those guard (written before the tenant was
    /// sharded) are read again if it goes back to one tag, and must stay hidden.
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn generation_keys_per_shard<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
    ) -> Result<Vec<GenerationKeys>, KeyError> {
        let scope = scope.into();
        match self.shards(scope) {
            0 | 1 => Ok(vec![self.generation_keys_at(scope, cache_type, None)?]),
            count => (0..count)
                .map(|n| self.generation_keys_at(scope, cache_type, Some(n)))
                .chain(std::iter::once(
                    self.generation_keys_at(scope, cache_type, None),
                ))
                .collect(),
        }
    }

    /// The byte ledger (design 0017) `entry` — an entry key of this builder's namespace — is charged to: its
    /// scope's, or its shard's for a tenant spread over shards (`…:_quota:{tenant_<id>%s<n>}:bytes`), so on a
    /// cluster it lives in the entry's slot. `None` for a key of another namespace or that is no entry key.
    pub fn byte_ledger_of(&self, entry: &str) -> Option<String> {
        let (prefix, tag, _) = entry_parts(entry);
        (prefix == self.prefix && tag.starts_with('{'))
            .then(|| format!("{prefix}_quota:{tag}:bytes"))
    }

    /// Every byte ledger a scope's entries are charged to, so its use is their sum: the one-tag ledger (the
    /// first of [`Self::quota_keys`]), then for a tenant spread over shards each shard's, in shard order.
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn byte_ledgers<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
    ) -> Result<Vec<String>, KeyError> {
        let scope = scope.into();
        let count = self.shards(scope);
        let [bytes, _] = self.quota_keys(scope)?;
        let mut ledgers = Vec::with_capacity(usize::from(count) + 1);
        ledgers.push(bytes);
        if count > 1 {
            for n in 0..count {
                let mut ledger = String::with_capacity(self.prefix.len() + 48);
                ledger.push_str(&self.prefix);
                ledger.push_str("_quota:");
                self.push_scope(&mut ledger, scope, Some(n))?;
                ledger.push_str(":bytes");
                ledgers.push(ledger);
            }
        }
        Ok(ledgers)
    }

    /// Every SCAN MATCH pattern the entries of a scope (or of one type in it) match: [`Self::scan_pattern`],
    /// and for a tenant spread over shards a second one that matches every shard — two scans, whatever the
    /// shard count. The first still finds what the tenant wrote before it was sharded.
    pub fn scan_patterns(&self, scope: &Scope, cache_type: Option<&CacheType>) -> Vec<String> {
        self.patterns(scope, cache_type, None)
    }

    /// Every SCAN MATCH pattern of [`Self::key_pattern`]: the one-tag pattern, and for a tenant spread over
    /// shards a second one over every shard.
    pub fn key_patterns(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        key_glob: &str,
    ) -> Vec<String> {
        self.patterns(scope, cache_type, Some(key_glob))
    }

    fn patterns(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        key_glob: Option<&str>,
    ) -> Vec<String> {
        let mut patterns = vec![self.pattern(scope, cache_type, key_glob)];
        if let Scope::Tenant(t) = scope
            && self.shards(t) > 1
        {
            let literal = format!("{}{{tenant_{}%s", self.prefix, escape_segment(t.as_str()));
            let mut every_shard = escape_glob(&literal).into_owned();
            // Any shard number, then the end of the tag. The literal before it is no other tenant's (no escaped
            // id holds `%s`), and the rest picks the tenant's entries as the one-tag pattern does.
            every_shard.push_str("*}");
            push_pattern_rest(&mut every_shard, cache_type, key_glob);
            patterns.push(every_shard);
        }
        patterns
    }
}

#[cfg(test)]
mod tests {
    use fernando_cache_config::Environment;

    use super::*;
    use crate::{TenantId, glob_match};

    fn plain() -> KeyBuilder {
        KeyBuilder::new("fernando", Environment::Production, 128)
    }

    fn sharded(tenant: &str, shards: u16) -> KeyBuilder {
        plain().with_shards(ShardCounts::new(1).tenant(tenant, shards))
    }

    fn scope(id: &str) -> Scope {
        TenantId::new(id).unwrap().into()
    }

    #[test]
    fn the_type_pattern_finds_every_scope_and_shard_and_scope_of_reads_them_back() {
        let keys = sharded("big:co", 4);
        let ty = CacheType::OCR_RESULT;
        let pattern = keys.type_pattern(&ty);
        let mut found = Vec::new();
        for id in ["acme", "big:co", "50%*off}"] {
            for specific in ["a", "b:c", "d%e", "f}:ocr_result:g"] {
                let key = keys.key(&scope(id), &ty, specific).unwrap();
                assert!(
                    glob_match(pattern.as_bytes(), key.as_str().as_bytes()),
                    "{key:?}"
                );
                let (of, t) = keys.scope_of(key.as_str()).unwrap();
                assert_eq!((&of, t), (&scope(id), "ocr_result"), "{key:?}");
                found.push(of);
            }
            // Another type's keys, whatever their specific key, are not matched.
            let other = keys
                .key(&scope(id), &CacheType::DOC_HASH, "x}:ocr_result:y")
                .unwrap();
            assert!(
                !glob_match(pattern.as_bytes(), other.as_str().as_bytes()),
                "{other:?}"
            );
        }
        let global = keys.key(&Scope::Global, &ty, "table").unwrap();
        assert!(glob_match(pattern.as_bytes(), global.as_str().as_bytes()));
        assert_eq!(keys.scope_of(global.as_str()).unwrap().0, Scope::Global);
        // Not entry keys of this builder.
        let gens = keys.generation_keys(&scope("acme"), &ty).unwrap();
        for other in [
            gens.cache_type(),
            "fernando:staging:{tenant_acme}:ocr_result:a",
            "fernando:production:_repl:eu",
            "fernando:production:{tenant_}:ocr_result:a",
        ] {
            assert!(keys.scope_of(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn counts_of_one_build_the_keys_of_a_builder_without_shards() {
        let flat = plain().with_shards(ShardCounts::new(1).tenant("acme", 1));
        assert!(flat.shards.is_none(), "no per-key check of a map");
        let (a, ty) = (scope("acme"), CacheType::DOC_HASH);
        let key = flat.key(&a, &ty, "a1b2c3d4e5f6").unwrap();
        assert_eq!(key, plain().key(&a, &ty, "a1b2c3d4e5f6").unwrap());
        assert_eq!(
            key.as_str(),
            "fernando:production:{tenant_acme}:doc_hash:a1b2c3d4e5f6"
        );
        let gens = flat.generation_keys_of(&key);
        assert_eq!(gens, plain().generation_keys(&a, &ty).unwrap());
        assert_eq!(flat.generation_keys_per_shard(&a, &ty).unwrap(), [gens]);
        assert_eq!(
            flat.byte_ledger_of(key.as_str()).unwrap(),
            plain().quota_keys(&a).unwrap()[0]
        );
        assert_eq!(flat.byte_ledgers(&a).unwrap().len(), 1);
        assert_eq!(
            flat.scan_patterns(&a, None),
            [plain().scan_pattern(&a, None)]
        );
        assert_eq!(
            flat.key_patterns(&a, Some(&ty), "k*"),
            [plain().key_pattern(&a, Some(&ty), "k*")]
        );
    }

    #[test]
    fn a_sharded_tenants_layout_is_pinned() {
        let b = sharded("acme", 4);
        let (a, ty) = (scope("acme"), CacheType::DOC_HASH);
        let key = b.key(&a, &ty, "a1b2c3d4e5f6").unwrap();
        // SHA-256("a1b2c3d4e5f6") begins bde81e9384b7848e; that modulo 4 is 2.
        assert_eq!(
            key.as_str(),
            "fernando:production:{tenant_acme%s2}:doc_hash:a1b2c3d4e5f6"
        );
        let gens = b.generation_keys_of(&key);
        assert_eq!(gens.scope(), "fernando:production:_gen:{tenant_acme%s2}");
        assert_eq!(
            gens.cache_type(),
            "fernando:production:_gen:{tenant_acme%s2}:doc_hash"
        );
        assert_eq!(
            gens.tag("customer:42").unwrap(),
            "fernando:production:_gen:{tenant_acme%s2}:_tag:customer%3A42"
        );
        assert_eq!(
            b.byte_ledger_of(key.as_str()).unwrap(),
            "fernando:production:_quota:{tenant_acme%s2}:bytes"
        );
        assert_eq!(
            b.lease_key(&key),
            "fernando:production:_lease:{tenant_acme%s2}:doc_hash:a1b2c3d4e5f6"
        );
        // The request counter stays on the one tag.
        assert_eq!(
            b.quota_keys(&a).unwrap()[1],
            "fernando:production:_quota:{tenant_acme}:requests"
        );
        // The shard is a hash of the escaped key: `inv:42` is `inv%3A42`, on shard 4 of 8 (`inv:42` would be 0).
        let eight = sharded("acme", 8);
        assert_eq!(
            eight.key(&a, &ty, "inv:42").unwrap().as_str(),
            "fernando:production:{tenant_acme%s4}:doc_hash:inv%3A42"
        );
        // Other tenants keep the one-tag layout.
        assert_eq!(
            b.key(&scope("globex"), &ty, "a1b2c3d4e5f6")
                .unwrap()
                .as_str(),
            "fernando:production:{tenant_globex}:doc_hash:a1b2c3d4e5f6"
        );
        assert_eq!(
            b.key(&Scope::Global, &ty, "x").unwrap().as_str(),
            "fernando:production:{global}:doc_hash:x"
        );
    }

    #[test]
    fn every_shard_has_its_generations_and_ledger_and_two_patterns_cover_them_all() {
        let b = sharded("acme", 4);
        let a = scope("acme");
        let gens = b
            .generation_keys_per_shard(&a, &CacheType::SESSION)
            .unwrap();
        let scopes: Vec<&str> = gens.iter().map(GenerationKeys::scope).collect();
        assert_eq!(
            scopes,
            (0..4)
                .map(|n| format!("fernando:production:_gen:{{tenant_acme%s{n}}}"))
                .chain(["fernando:production:_gen:{tenant_acme}".to_owned()])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            b.byte_ledgers(&a).unwrap(),
            [
                "fernando:production:_quota:{tenant_acme}:bytes",
                "fernando:production:_quota:{tenant_acme%s0}:bytes",
                "fernando:production:_quota:{tenant_acme%s1}:bytes",
                "fernando:production:_quota:{tenant_acme%s2}:bytes",
                "fernando:production:_quota:{tenant_acme%s3}:bytes",
            ]
        );
        assert_eq!(
            b.scan_patterns(&a, Some(&CacheType::SESSION)),
            [
                "fernando:production:{tenant_acme}:session:*",
                "fernando:production:{tenant_acme%s*}:session:*",
            ]
        );
        assert_eq!(
            b.key_patterns(&a, None, "inv:*"),
            [
                "fernando:production:{tenant_acme}:*:inv%3A*",
                "fernando:production:{tenant_acme%s*}:*:inv%3A*",
            ]
        );
        // Every entry, of any shard, is matched, and so is one written before the tenant was sharded.
        let patterns = b.scan_patterns(&a, None);
        let matched = |key: &str| {
            patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), key.as_bytes()))
        };
        for i in 0..64 {
            let key = b.key(&a, &CacheType::SESSION, &format!("k{i}")).unwrap();
            assert!(matched(key.as_str()), "{key}");
        }
        assert!(matched(
            plain()
                .key(&a, &CacheType::SESSION, "old")
                .unwrap()
                .as_str()
        ));
        // Nothing of the generations, leases or ledgers, which sweeps must not delete.
        let key = b.key(&a, &CacheType::SESSION, "k").unwrap();
        for other in [
            b.generation_keys_of(&key).scope().to_owned(),
            b.lease_key(&key),
            b.byte_ledger_of(key.as_str()).unwrap(),
        ] {
            assert!(!matched(&other), "{other}");
        }
    }

    #[test]
    fn entries_spread_evenly_over_the_shards() {
        let b = sharded("acme", 8);
        let a = scope("acme");
        let mut per_shard = [0u32; 8];
        for i in 0..4000 {
            let key = b.key(&a, &CacheType::SESSION, &format!("k{i}")).unwrap();
            let (_, tag, _) = entry_parts(key.as_str());
            let n: usize = tag
                .trim_start_matches("{tenant_acme%s")
                .trim_end_matches('}')
                .parse()
                .unwrap();
            per_shard[n] += 1;
        }
        assert!(
            per_shard.iter().all(|&n| (400..600).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn shard_counts_come_from_the_plans_and_stay_in_range() {
        let counts = ShardCounts::new(0).tenant("big", 500).tenant("small", 1);
        assert_eq!(
            (counts.of("big"), counts.of("small"), counts.of("other")),
            (MAX_SHARDS, 1, 1)
        );
        assert!(!counts.is_flat());
        assert!(ShardCounts::default().is_flat());
        let b = plain().with_shards(counts);
        assert_eq!(b.shards(&TenantId::new("big").unwrap()), MAX_SHARDS);
        assert_eq!(b.shards(ScopeRef::Global), 1);
        // A key of another namespace has no ledger of this one; neither has a key that is no entry.
        assert_eq!(
            b.byte_ledger_of("other:production:{tenant_big%s1}:session:k"),
            None
        );
        assert_eq!(
            b.byte_ledger_of("fernando:production:_gen:{tenant_big}"),
            None
        );
    }

    proptest::proptest! {
        /// For any tenant name and shard count, a key's generations, ledger and lease share its hash tag, and
        /// the tenant's patterns match its entries of every shard and no other tenant's.
        #[test]
        fn sharded_keys_keep_their_slot_and_their_tenant(
            t1 in "[a-c:%*?{}%s\\\\\\[\\]]{1,6}", t2 in "[a-c:%*?{}%s\\\\\\[\\]]{1,6}",
            k in "[a-z:%*]{0,8}", shards in 1u16..=8,
        ) {
            let b = plain().with_shards(ShardCounts::new(shards));
            let (s1, s2) = (scope(&t1), scope(&t2));
            let key = b.key(&s2, &CacheType::SESSION, &k).unwrap();
            let tag = |text: &str| {
                let open = text.find('{').unwrap();
                let len = text[open + 1..].find('}').unwrap();
                text[open + 1..open + 1 + len].to_owned()
            };
            let gens = b.generation_keys_of(&key);
            proptest::prop_assert_eq!(tag(gens.scope()), tag(key.as_str()));
            proptest::prop_assert_eq!(tag(gens.cache_type()), tag(key.as_str()));
            proptest::prop_assert_eq!(tag(&b.lease_key(&key)), tag(key.as_str()));
            proptest::prop_assert_eq!(tag(&b.byte_ledger_of(key.as_str()).unwrap()), tag(key.as_str()));
            let bumped = b.generation_keys_per_shard(&s2, &CacheType::SESSION).unwrap();
            proptest::prop_assert!(bumped.contains(&gens));
            let matched = b.scan_patterns(&s1, None).iter().any(|p| glob_match(p.as_bytes(), key.as_str().as_bytes()));
            proptest::prop_assert_eq!(matched, t1 == t2);
            // The specific key comes back from the entry key, sharded or not (what another region keys it by).
            proptest::prop_assert_eq!(KeyBuilder::specific_of(key.as_str()).unwrap(), k.as_str());
        }
    }
}

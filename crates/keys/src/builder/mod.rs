//! The key builder: entry keys, invalidation-generation keys and SCAN patterns from one place; what changes for
//! a tenant spread over several hash tags is in `shards.rs` (design 0024).

mod batch;
mod shards;

use std::{fmt, sync::Arc};

use fernando_cache_config::{CacheType, Environment};

use crate::{GenerationKeys, KeyError, TenantId, escape::escape_glob, escape::escape_segment};

pub use batch::KeyBatch;
pub use shards::ShardCounts;

/// Whose namespace a key lives in: one tenant's, or the explicitly global one for shared reference data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A tenant's own namespace (`tenant_{id}`).
    Tenant(TenantId),
    /// Data shared by every tenant, such as reference tables (`global`). Use it only on purpose.
    Global,
}

impl Scope {
    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Tenant(t) => Some(t),
            Scope::Global => None,
        }
    }

    /// A short label for metrics and logs: the tenant id, or `_global`.
    pub fn label(&self) -> &str {
        match self {
            Scope::Tenant(t) => t.as_str(),
            Scope::Global => "_global",
        }
    }
}

impl From<TenantId> for Scope {
    fn from(t: TenantId) -> Self {
        Scope::Tenant(t)
    }
}

impl From<&TenantId> for Scope {
    fn from(t: &TenantId) -> Self {
        Scope::Tenant(t.clone())
    }
}

/// A borrowed [`Scope`]: keys are built from it without cloning the tenant id (whose reference count every
/// request on a hot tenant would otherwise bounce between cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeRef<'a> {
    /// A tenant's own namespace.
    Tenant(&'a TenantId),
    /// The global namespace.
    Global,
}

impl<'a> ScopeRef<'a> {
    /// A short label for metrics and logs: the tenant id, or `_global` (see [`Scope::label`]).
    pub fn label(self) -> &'a str {
        match self {
            ScopeRef::Tenant(t) => t.as_str(),
            ScopeRef::Global => "_global",
        }
    }

    /// The owned scope.
    pub fn to_scope(self) -> Scope {
        match self {
            ScopeRef::Tenant(t) => Scope::Tenant(t.clone()),
            ScopeRef::Global => Scope::Global,
        }
    }
}

impl<'a> From<&'a Scope> for ScopeRef<'a> {
    fn from(s: &'a Scope) -> Self {
        match s {
            Scope::Tenant(t) => ScopeRef::Tenant(t),
            Scope::Global => ScopeRef::Global,
        }
    }
}

impl<'a> From<&'a TenantId> for ScopeRef<'a> {
    fn from(t: &'a TenantId) -> Self {
        ScopeRef::Tenant(t)
    }
}

/// Anything that names a scope — a [`TenantId`] or a [`Scope`], owned or borrowed — as a [`ScopeRef`].
pub trait AsScope {
    /// The scope, borrowed.
    fn as_scope(&self) -> ScopeRef<'_>;
}

impl AsScope for Scope {
    fn as_scope(&self) -> ScopeRef<'_> {
        self.into()
    }
}

impl AsScope for TenantId {
    fn as_scope(&self) -> ScopeRef<'_> {
        ScopeRef::Tenant(self)
    }
}

impl AsScope for ScopeRef<'_> {
    fn as_scope(&self) -> ScopeRef<'_> {
        *self
    }
}

impl<T: AsScope + ?Sized> AsScope for &T {
    fn as_scope(&self) -> ScopeRef<'_> {
        (**self).as_scope()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant(t) => write!(f, "tenant {t:?}"),
            Scope::Global => f.write_str("global scope"),
        }
    }
}

/// A complete Redis key for one cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The key of another entry of this entry's group — its scope, cache type and (for a sharded tenant)
    /// shard — under `specific` (escaped as any specific key): an entry kept beside the ones it serves, in their
    /// hash slot, under their generations.
    pub fn sibling(&self, specific: &str) -> CacheKey {
        let group = KeyBuilder::group_of(&self.0);
        let specific = escape_segment(specific);
        let mut key = String::with_capacity(group.len() + 1 + specific.len());
        key.push_str(group);
        key.push(':');
        key.push_str(&specific);
        CacheKey(key)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds every key and pattern of one namespace and environment.
///
/// A tenant spread over several hash tags ([`KeyBuilder::with_shards`], design 0024) has each entry under the
/// tag `{tenant_<id>%s<n>}` of its shard `n`, with that shard's own generation keys and byte ledger; every
/// other key keeps the tag `{tenant_<id>}`.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    /// `{namespace}:{environment}:`
    prefix: String,
    max_tenant_len: usize,
    /// How many shards each tenant has; `None` while every tenant is on one hash tag, so an entry key of the
    /// usual layout costs one check more than before shards existed.
    shards: Option<Arc<ShardCounts>>,
}

impl KeyBuilder {
    /// The longest specific key accepted, in bytes; hash longer inputs (see [`crate::Fingerprinter`]).
    pub const MAX_SPECIFIC_KEY_LEN: usize = 4096;

    /// A builder for `namespace` (validated by the config crate) in `environment`, enforcing `max_tenant_len`.
    pub fn new(namespace: &str, environment: Environment, max_tenant_len: usize) -> Self {
        KeyBuilder {
            prefix: format!("{}:{}:", escape_segment(namespace), environment.as_str()),
            max_tenant_len: max_tenant_len.min(TenantId::MAX_LEN),
            shards: None,
        }
    }

    /// The longest tenant id this builder makes keys for, in bytes.
    pub fn max_tenant_len(&self) -> usize {
        self.max_tenant_len
    }

    /// `{namespace}:{environment}:`, the part shared by every key this builder makes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{namespace}:{environment}:_gen:`, the prefix of every generation key (see [`Self::generation_keys`])
    /// and of no entry key, for server-side tracking of generation changes.
    pub fn generation_prefix(&self) -> String {
        format!("{}_gen:", self.prefix)
    }

    /// The key counting tenant erasures on a deployment, `{namespace}:{environment}:_gen:_erasures`: a number
    /// and nothing of any tenant (no tenant glob matches it, so erasing one leaves it), bumped before and after
    /// every erasure, so that what a process held of a tenant's values from before another process erased it
    /// can tell (design 0025).
    pub fn erasures_key(&self) -> String {
        format!("{}_gen:_erasures", self.prefix)
    }

    /// Shard `shard` of the replication stream of `region` (a checked region name) on a deployment whose stream
    /// has `shards` shards: `{namespace}:{environment}:_repl:{region}` when it has one, and
    /// `{namespace}:{environment}:_repl:{region}:{s<shard>}` when it has more — each shard its own hash tag, so on
    /// a cluster the shards spread over the primaries. What the region's writers appended for other regions to
    /// apply (design 0026). Outside every tenant's data pattern: a sweep or an erasure never touches it.
    pub fn replication_stream(&self, region: &str, shard: u16, shards: u16) -> String {
        if shards <= 1 {
            format!("{}_repl:{region}", self.prefix)
        } else {
            format!("{}_repl:{region}:{{s{shard}}}", self.prefix)
        }
    }

    /// What a region notes, on its own deployment, of applying shard `shard` (of `shards`) of `from`'s stream
    /// (a checked region name): `{namespace}:{environment}:_repl_applied:{from}`, with `:{shard}` after it when
    /// the stream has more than one — the last entry applied, how far behind, how many losses (design 0026).
    /// Outside every tenant's data pattern.
    pub fn replication_progress(&self, from: &str, shard: u16, shards: u16) -> String {
        if shards <= 1 {
            format!("{}_repl_applied:{from}", self.prefix)
        } else {
            format!("{}_repl_applied:{from}:{shard}", self.prefix)
        }
    }

    /// The key of the lease that marks a cross-process computation of `entry` (a key this builder made):
    /// `{namespace}:{environment}:_lease:` and the rest of the entry key, so it shares the entry's slot and
    /// lies outside every tenant's data pattern (a sweep never counts or deletes it).
    pub fn lease_key(&self, entry: &CacheKey) -> String {
        let rest = entry
            .as_str()
            .strip_prefix(&self.prefix)
            .unwrap_or(entry.as_str());
        format!("{}_lease:{rest}", self.prefix)
    }

    /// The keys of a scope's quota ledgers: `[bytes, requests]`, under `{namespace}:{environment}:_quota:` and
    /// the scope's hash tag — outside every tenant's data pattern (a sweep never deletes them), and in the
    /// scope's slot on a cluster. `bytes` names the entries the scope holds and their sizes; `requests` counts
    /// the scope's requests in the current window. A tenant spread over shards keeps its one `requests` counter
    /// here, but charges each entry to its shard's ledger ([`Self::byte_ledger_of`], [`Self::byte_ledgers`]).
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn quota_keys<'s>(&self, scope: impl Into<ScopeRef<'s>>) -> Result<[String; 2], KeyError> {
        let mut base = String::with_capacity(self.prefix.len() + 40);
        base.push_str(&self.prefix);
        base.push_str("_quota:");
        self.push_scope(&mut base, scope.into(), None)?;
        Ok([format!("{base}:bytes"), format!("{base}:requests")])
    }

    /// The channel on which a released lease is announced (its payload is the lease key).
    pub fn lease_channel(&self) -> String {
        format!("{}_lease", self.prefix)
    }

    /// Writes the scope's hash tag: `{tenant_<id>}`, or `{tenant_<id>%s<n>}` for shard `n` of a tenant spread
    /// over shards (never for the global scope, which is not sharded).
    fn push_scope(
        &self,
        out: &mut String,
        scope: ScopeRef<'_>,
        shard: Option<u16>,
    ) -> Result<(), KeyError> {
        match scope {
            ScopeRef::Tenant(t) => {
                // A `TenantId` is valid by construction; only this builder's (configurable) length limit is
                // left to enforce.
                let len = t.as_str().len();
                if len > self.max_tenant_len {
                    return Err(KeyError::TenantTooLong {
                        len,
                        max: self.max_tenant_len,
                    });
                }
                out.push_str("{tenant_");
                out.push_str(&escape_segment(t.as_str()));
                if let Some(n) = shard {
                    shards::push_shard(out, n);
                }
                out.push('}');
            }
            ScopeRef::Global => out.push_str("{global}"),
        }
        Ok(())
    }

    /// The key of one entry. For a tenant spread over shards, the entry's shard is a hash of its specific key
    /// (design 0024), so the same key always lands on the same shard.
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit, [`KeyError::KeyTooLong`] when
    /// `specific` exceeds [`Self::MAX_SPECIFIC_KEY_LEN`].
    pub fn key<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
        specific: &str,
    ) -> Result<CacheKey, KeyError> {
        self.key_in(String::new(), scope, cache_type, specific)
    }

    /// [`Self::key`] written into `buffer` (cleared first), so a caller can reuse one allocation for many keys
    /// (get it back with [`CacheKey::into_string`]).
    ///
    /// # Errors
    /// As [`Self::key`].
    pub fn key_in<'s>(
        &self,
        mut buffer: String,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
        specific: &str,
    ) -> Result<CacheKey, KeyError> {
        buffer.clear();
        self.push_key(&mut buffer, scope.into(), cache_type, specific)?;
        Ok(CacheKey(buffer))
    }

    /// Appends the entry key of `specific` in `(scope, cache_type)` to `out`.
    fn push_key(
        &self,
        out: &mut String,
        scope: ScopeRef<'_>,
        cache_type: &CacheType,
        specific: &str,
    ) -> Result<(), KeyError> {
        Self::check_specific(specific)?;
        // The escaped key is hashed only for a tenant spread over shards; otherwise it is escaped straight
        // into the buffer.
        let shard = if self.shards.is_some() {
            self.entry_shard(scope, &escape_segment(specific))
        } else {
            None
        };
        out.reserve(
            self.prefix.len()
                + 14
                + scope.label().len()
                + cache_type.as_str().len()
                + specific.len()
                + 2,
        );
        out.push_str(&self.prefix);
        self.push_scope(out, scope, shard)?;
        out.push(':');
        out.push_str(cache_type.as_str());
        out.push(':');
        crate::escape::push_escaped(out, specific);
        Ok(())
    }

    /// Refuses a specific key the store keeps for itself, or one too long.
    ///
    /// # Errors
    /// [`KeyError::Reserved`] and [`KeyError::KeyTooLong`].
    pub fn check_specific(specific: &str) -> Result<(), KeyError> {
        if specific.starts_with(crate::RESERVED_KEY_PREFIX) {
            return Err(KeyError::Reserved(specific.to_owned()));
        }
        if specific.len() > Self::MAX_SPECIFIC_KEY_LEN {
            return Err(KeyError::KeyTooLong {
                len: specific.len(),
                max: Self::MAX_SPECIFIC_KEY_LEN,
            });
        }
        Ok(())
    }

    /// The `{prefix}{scope}:{type}` part of an entry key this builder made: one-to-one with the entry's generation
    /// keys, so a backend can remember generations per entry group without knowing the layout. The specific key
    /// is escaped (it holds no `:`), so the last `:` ends the group.
    pub fn group_of(entry_key: &str) -> &str {
        entry_key.rfind(':').map_or(entry_key, |i| &entry_key[..i])
    }

    /// The specific key an entry key this builder made was built from: its last segment, unescaped — what
    /// another region builds its own key of the same entry from (design 0026).
    ///
    /// # Errors
    /// [`KeyError::BadEscape`] for a last segment no key builder wrote.
    pub fn specific_of(entry_key: &str) -> Result<std::borrow::Cow<'_, str>, KeyError> {
        let last = entry_key
            .rfind(':')
            .map_or(entry_key, |i| &entry_key[i + 1..]);
        crate::escape::unescape_segment(last)
    }

    /// The generation keys an entry of `(scope, cache_type)` is checked against when the scope is on one hash
    /// tag. An entry of a tenant spread over shards is checked against its shard's
    /// ([`Self::generation_keys_of`]), and an invalidation bumps every shard's
    /// ([`Self::generation_keys_per_shard`]).
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn generation_keys<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
    ) -> Result<GenerationKeys, KeyError> {
        self.generation_keys_at(scope.into(), cache_type, None)
    }

    /// The generation keys of `(scope, cache_type)` on the scope's one hash tag (`shard` `None`) or on shard
    /// `shard` of a tenant spread over shards.
    fn generation_keys_at(
        &self,
        scope: ScopeRef<'_>,
        cache_type: &CacheType,
        shard: Option<u16>,
    ) -> Result<GenerationKeys, KeyError> {
        let mut type_key = String::with_capacity(
            self.prefix.len() + 20 + scope.label().len() + cache_type.as_str().len(),
        );
        type_key.push_str(&self.prefix);
        type_key.push_str("_gen:");
        self.push_scope(&mut type_key, scope, shard)?;
        let scope_len = type_key.len();
        type_key.push(':');
        type_key.push_str(cache_type.as_str());
        Ok(GenerationKeys {
            type_key,
            scope_len,
        })
    }

    /// Every glob a key of `tenant` matches — its entries, generation keys, leases and quota ledgers, whether
    /// the tenant is on one hash tag or spread over shards (`{tenant_<id>%s<n>}`, design 0024) — and no key of
    /// another tenant: an escaped id never contains `%s` (its own `%` is written `%25`) nor an unescaped glob
    /// character. What a Redis ACL user of the tenant may touch (design 0023) and what erasing it removes.
    pub fn tenant_globs(&self, tenant: &TenantId) -> Vec<String> {
        let id = escape_glob(&escape_segment(tenant.as_str())).into_owned();
        let mut globs = Vec::with_capacity(10);
        for area in ["", "_gen:", "_lease:", "_quota:"] {
            let base = escape_glob(&format!("{}{area}", self.prefix)).into_owned();
            // One hash tag, then `:` — not `}` or more of an id: `acme}` is another tenant.
            globs.push(format!("{base}{{tenant_{id}}}:*"));
            // Shards: `{tenant_<id>%s<n>}`, then anything.
            globs.push(format!("{base}{{tenant_{id}%s*"));
        }
        // The scope's own generation key ends with its tag.
        let gen_base = escape_glob(&format!("{}_gen:", self.prefix)).into_owned();
        globs.push(format!("{gen_base}{{tenant_{id}}}"));
        globs
    }

    /// A SCAN MATCH pattern for every entry of a scope, or of one type in it, under the scope's one hash tag —
    /// for a tenant spread over shards, [`Self::scan_patterns`] gives every pattern its entries match.
    ///
    /// The scope's own text is glob-escaped, so the pattern matches that scope's keys and no others. An
    /// over-long tenant yields a pattern that matches nothing it does not own (such a tenant cannot have keys).
    pub fn scan_pattern(&self, scope: &Scope, cache_type: Option<&CacheType>) -> String {
        self.pattern(scope, cache_type, None)
    }

    /// A SCAN MATCH pattern for entries of a scope (and optionally a type) whose *specific key* matches
    /// `key_glob`, a Redis glob written against unescaped keys (`*`, `?`, `[…]`), under the scope's one hash tag
    /// — for a tenant spread over shards, [`Self::key_patterns`] gives every pattern its entries match.
    ///
    /// The glob can only ever match inside the given scope: the scope prefix is literal. Characters `%` and `:`
    /// inside the glob are escaped the way keys are, so `inv:*` matches keys that start with `inv:`.
    pub fn key_pattern(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        key_glob: &str,
    ) -> String {
        self.pattern(scope, cache_type, Some(key_glob))
    }

    fn pattern(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        key_glob: Option<&str>,
    ) -> String {
        let mut literal = String::with_capacity(self.prefix.len() + 32);
        literal.push_str(&self.prefix);
        match scope {
            Scope::Tenant(t) => {
                literal.push_str("{tenant_");
                literal.push_str(&escape_segment(t.as_str()));
                literal.push('}');
            }
            Scope::Global => literal.push_str("{global}"),
        }
        let mut out = escape_glob(&literal).into_owned();
        push_pattern_rest(&mut out, cache_type, key_glob);
        out
    }
}

/// The part of a SCAN pattern after the scope's hash tag: `:`, the type (or any), `:`, the key glob (or any).
fn push_pattern_rest(out: &mut String, cache_type: Option<&CacheType>, key_glob: Option<&str>) {
    let mut literal = String::with_capacity(24);
    literal.push(':');
    if let Some(t) = cache_type {
        literal.push_str(t.as_str());
        literal.push(':');
    }
    out.push_str(&escape_glob(&literal));
    match (cache_type, key_glob) {
        (_, None) => out.push('*'),
        (Some(_), Some(glob)) => out.push_str(&escape_segment(glob)),
        (None, Some(glob)) => {
            // Any type (a type name never contains ':' or a glob character), then the key glob.
            out.push_str("*:");
            out.push_str(&escape_segment(glob));
        }
    }
}

#[cfg(test)]
mod tests;

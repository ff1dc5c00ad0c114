//! The key builder: entry keys, invalidation-generation keys and SCAN patterns from one place.

use std::fmt;

use fernando_cache_config::{CacheType, Environment};

use crate::{GenerationKeys, KeyError, TenantId, escape::escape_glob, escape::escape_segment};

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
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds every key and pattern of one namespace and environment.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    /// `{namespace}:{environment}:`
    prefix: String,
    max_tenant_len: usize,
}

impl KeyBuilder {
    /// The longest specific key accepted, in bytes; hash longer inputs (see [`crate::Fingerprinter`]).
    pub const MAX_SPECIFIC_KEY_LEN: usize = 4096;

    /// A builder for `namespace` (validated by the config crate) in `environment`, enforcing `max_tenant_len`.
    pub fn new(namespace: &str, environment: Environment, max_tenant_len: usize) -> Self {
        KeyBuilder {
            prefix: format!("{}:{}:", escape_segment(namespace), environment.as_str()),
            max_tenant_len: max_tenant_len.min(TenantId::MAX_LEN),
        }
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
    /// the scope's requests in the current window.
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn quota_keys<'s>(&self, scope: impl Into<ScopeRef<'s>>) -> Result<[String; 2], KeyError> {
        let mut base = String::with_capacity(self.prefix.len() + 40);
        base.push_str(&self.prefix);
        base.push_str("_quota:");
        self.push_scope(&mut base, scope.into())?;
        Ok([format!("{base}:bytes"), format!("{base}:requests")])
    }

    /// The channel on which a released lease is announced (its payload is the lease key).
    pub fn lease_channel(&self) -> String {
        format!("{}_lease", self.prefix)
    }

    fn push_scope(&self, out: &mut String, scope: ScopeRef<'_>) -> Result<(), KeyError> {
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
                out.push('}');
            }
            ScopeRef::Global => out.push_str("{global}"),
        }
        Ok(())
    }

    /// The key of one entry.
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
        let scope = scope.into();
        if specific.len() > Self::MAX_SPECIFIC_KEY_LEN {
            return Err(KeyError::KeyTooLong {
                len: specific.len(),
                max: Self::MAX_SPECIFIC_KEY_LEN,
            });
        }
        buffer.clear();
        buffer.reserve(
            self.prefix.len()
                + 10
                + scope.label().len()
                + cache_type.as_str().len()
                + specific.len()
                + 2,
        );
        let mut out = buffer;
        out.push_str(&self.prefix);
        self.push_scope(&mut out, scope)?;
        out.push(':');
        out.push_str(cache_type.as_str());
        out.push(':');
        out.push_str(&escape_segment(specific));
        Ok(CacheKey(out))
    }

    /// The `{prefix}{scope}:{type}` part of an entry key this builder made: one-to-one with the entry's generation
    /// keys, so a backend can remember generations per entry group without knowing the layout. The specific key
    /// is escaped (it holds no `:`), so the last `:` ends the group.
    pub fn group_of(entry_key: &str) -> &str {
        entry_key.rfind(':').map_or(entry_key, |i| &entry_key[..i])
    }

    /// The generation keys an entry of `(scope, cache_type)` is checked against.
    ///
    /// # Errors
    /// [`KeyError::TenantTooLong`] when the tenant exceeds the configured limit.
    pub fn generation_keys<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
    ) -> Result<GenerationKeys, KeyError> {
        let scope = scope.into();
        let mut type_key = String::with_capacity(
            self.prefix.len() + 16 + scope.label().len() + cache_type.as_str().len(),
        );
        type_key.push_str(&self.prefix);
        type_key.push_str("_gen:");
        self.push_scope(&mut type_key, scope)?;
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

    /// A SCAN MATCH pattern for every entry of a scope, or of one type in it.
    ///
    /// The scope's own text is glob-escaped, so the pattern matches that scope's keys and no others. An
    /// over-long tenant yields a pattern that matches nothing it does not own (such a tenant cannot have keys).
    pub fn scan_pattern(&self, scope: &Scope, cache_type: Option<&CacheType>) -> String {
        self.pattern(scope, cache_type, None)
    }

    /// A SCAN MATCH pattern for entries of a scope (and optionally a type) whose *specific key* matches
    /// `key_glob`, a Redis glob written against unescaped keys (`*`, `?`, `[…]`).
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
        literal.push(':');
        if let Some(t) = cache_type {
            literal.push_str(t.as_str());
            literal.push(':');
        }
        let mut out = escape_glob(&literal).into_owned();
        match (cache_type, key_glob) {
            (_, None) => out.push('*'),
            (Some(_), Some(glob)) => out.push_str(&escape_segment(glob)),
            (None, Some(glob)) => {
                // Any type (a type name never contains ':' or a glob character), then the key glob.
                out.push_str("*:");
                out.push_str(&escape_segment(glob));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

//! The key namespace of fernando-cache: tenant ids, escaped key segments, tenant-scoped SCAN patterns, the keys
//! of invalidation generations, stable argument digests for derived keys, SHA-256 document fingerprints, and
//! ([`layout`]) every specific-key layout the library writes: document stages, derived keys, HTTP entries.
//!
//! Every key has the layout `{namespace}:{environment}:{tenant_<tenant_id>}:{cache_type}:{specific_key}` (or
//! `…:{global}:{cache_type}:…` for explicitly global reference data). The braces are a Redis Cluster hash tag:
//! every key of a scope — its entries and the generation keys that guard them — hashes to one slot, so a read
//! of an entry with its generations is one single-slot command on any topology (design 0010). A big tenant may
//! be spread over several tags instead, `{tenant_<id>%s<n>}`, each shard with its own generation keys
//! ([`ShardCounts`], design 0024). Segments that come from users are
//! percent-escaped (`%` and `:`), so two different (tenant, type, key) triples never produce the same key, and
//! SCAN patterns are built by the same code with glob characters escaped, so a tenant called `*` matches only
//! itself.
//!
//! This crate is pure computation: it must not touch Redis, the network, a runtime or the file system (a
//! fingerprint reads from a reader its caller opened). It depends only on `fernando-cache-config`.
//!
//! ```
//! use fernando_cache_config::{CacheType, Environment};
//! use fernando_cache_keys::{KeyBuilder, TenantId};
//!
//! let keys = KeyBuilder::new("fernando", Environment::Production, 128);
//! let tenant = TenantId::new("user123").unwrap();
//! let key = keys.key(&tenant, &CacheType::DOC_HASH, "a1b2c3").unwrap();
//! assert_eq!(key.as_str(), "fernando:production:{tenant_user123}:doc_hash:a1b2c3");
//! assert_eq!(
//!     keys.scan_pattern(&tenant.into(), None),
//!     "fernando:production:{tenant_user123}:*"
//! );
//! ```

mod args;
mod builder;
mod error;
mod escape;
mod fingerprint;
mod generation;
mod glob;
pub mod layout;
mod tenant;

pub use args::{ArgsError, ArgsHasher, generate_cache_key_from_params};
pub use builder::{AsScope, CacheKey, KeyBatch, KeyBuilder, Scope, ScopeRef, ShardCounts};
pub use error::KeyError;
pub use escape::{escape_glob, escape_segment, unescape_segment};
pub use fernando_cache_config::CacheType;
pub use fingerprint::{DocumentFingerprint, Fingerprinter};
pub use generation::GenerationKeys;
pub use glob::glob_match;
pub use tenant::TenantId;

/// The beginning of the specific keys the store keeps for itself in every entry group — its compression
/// dictionaries (`fc.dictionary.<id>`, `fc.dictionary.current`); [`KeyBuilder::key`] refuses them to callers
/// ([`KeyError::Reserved`]), and only [`CacheKey::sibling`] names them.
pub const RESERVED_KEY_PREFIX: &str = "fc.dictionary.";

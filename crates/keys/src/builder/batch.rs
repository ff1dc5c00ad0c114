//! Keys of a batch: the entry keys of many specific keys of one scope and cache type, built together into one
//! buffer — the part they share written once — for a read of all of them (`get_many`).

use fernando_cache_config::CacheType;

use super::{CacheKey, KeyBuilder, ScopeRef};
use crate::{KeyError, escape::push_escaped};

/// Bytes reserved a key for escapes: three `:` or `%` (each grows by two).
const ESCAPE_ROOM: usize = 6;

/// Entry keys of one scope and cache type, built together by [`KeyBuilder::keys_in`] into one buffer: a batch
/// of a hundred keys costs two allocations, not a hundred. Each is the key [`KeyBuilder::key`] builds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBatch {
    text: String,
    /// Where each key ends in `text`.
    ends: Vec<usize>,
}

impl KeyBatch {
    /// How many keys the batch holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text of key `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// The keys' texts, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.text[start..self.ends[i]]
        })
    }

    /// Key `i` as a key of its own (a copy).
    pub fn key(&self, i: usize) -> Option<CacheKey> {
        self.get(i).map(|k| CacheKey(k.to_owned()))
    }
}

impl KeyBuilder {
    /// The entry keys of `specifics` in `(scope, cache_type)`, as [`Self::key`] builds each, in one buffer:
    /// the part they share (all but the specific key, unless the scope is spread over shards) is built once.
    ///
    /// # Errors
    /// As [`Self::key`], for the first specific key that fails.
    pub fn keys_in<'s>(
        &self,
        scope: impl Into<ScopeRef<'s>>,
        cache_type: &CacheType,
        specifics: &[&str],
    ) -> Result<KeyBatch, KeyError> {
        let scope = scope.into();
        if specifics.is_empty() {
            return Ok(KeyBatch::default());
        }
        let mut batch = KeyBatch {
            text: String::new(),
            ends: Vec::with_capacity(specifics.len()),
        };
        if self.shards(scope) > 1 {
            for specific in specifics {
                self.push_key(&mut batch.text, scope, cache_type, specific)?;
                batch.ends.push(batch.text.len());
            }
            return Ok(batch);
        }
        let mut shared = String::with_capacity(
            self.prefix.len() + 14 + scope.label().len() + cache_type.as_str().len() + 2,
        );
        shared.push_str(&self.prefix);
        self.push_scope(&mut shared, scope, None)?;
        shared.push(':');
        shared.push_str(cache_type.as_str());
        shared.push(':');
        // Room for a few escapes a key without scanning for them (each `:` or `%` grows by two bytes): a buffer
        // that grows copies all it holds, and keys escaped beyond that make it grow once or twice, not per key.
        let specific_bytes: usize = specifics.iter().map(|s| s.len() + ESCAPE_ROOM).sum();
        batch
            .text
            .reserve_exact(shared.len() * specifics.len() + specific_bytes);
        for specific in specifics {
            Self::check_specific(specific)?;
            batch.text.push_str(&shared);
            push_escaped(&mut batch.text, specific);
            batch.ends.push(batch.text.len());
        }
        Ok(batch)
    }
}

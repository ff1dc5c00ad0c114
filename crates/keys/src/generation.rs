//! [`GenerationKeys`]: the keys whose values a lazy invalidation bumps, built by
//! [`crate::KeyBuilder::generation_keys`].

use crate::{KeyError, escape::escape_segment};

/// The two keys holding the invalidation generations that an entry of one (scope, type) depends on.
///
/// They live under `{namespace}:{environment}:_gen:…`, outside every tenant's data pattern, so clearing a
/// tenant's data never touches them. The type's key is the scope's key plus `:{type}`, so both are held in one
/// string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationKeys {
    pub(crate) type_key: String,
    pub(crate) scope_len: usize,
}

impl GenerationKeys {
    /// Placeholder keys for a backend that has no generations to look up (see
    /// `Storage::generations_in_use` in the store); building them allocates nothing.
    pub fn unused() -> Self {
        GenerationKeys {
            type_key: String::new(),
            scope_len: 0,
        }
    }

    /// Bumped when the whole scope is invalidated.
    pub fn scope(&self) -> &str {
        &self.type_key[..self.scope_len]
    }

    /// Bumped when one cache type of the scope is invalidated.
    pub fn cache_type(&self) -> &str {
        &self.type_key
    }

    /// The key holding the version of the last invalidation of this (scope, type) made or applied in this
    /// region (design 0026): `{scope key}:_mark:{type}`, with the scope's hash tag, so a replicated value is
    /// written in one script with it. A value from another region older than it is not applied.
    pub fn invalidation_mark(&self) -> String {
        let mut mark = String::with_capacity(self.type_key.len() + 6);
        mark.push_str(self.scope());
        mark.push_str(":_mark");
        mark.push_str(&self.type_key[self.scope_len..]);
        mark
    }

    /// Longest tag accepted, in bytes.
    pub const MAX_TAG_LEN: usize = 128;

    /// The generation key of `tag` in this scope, bumped by the store's invalidation of the tag:
    /// `{scope key}:_tag:{tag}`, escaped, under the generation prefix (so trackers hear of it) and with the
    /// scope's hash tag (so it shares the entries' slot on a cluster).
    ///
    /// # Errors
    /// [`KeyError::BadTag`] for an empty or over-long tag, or one with a control character.
    pub fn tag(&self, tag: &str) -> Result<String, KeyError> {
        if tag.is_empty() || tag.len() > Self::MAX_TAG_LEN || tag.chars().any(char::is_control) {
            return Err(KeyError::BadTag(
                tag.chars().take(Self::MAX_TAG_LEN).collect(),
            ));
        }
        Ok(format!("{}:_tag:{}", self.scope(), escape_segment(tag)))
    }
}

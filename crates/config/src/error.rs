//! The configuration error type.

/// Why configuration could not be loaded.
///
/// Messages name the offending key and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A source could not be read or parsed (a file that is not TOML), or a value could not be read in a way
    /// that names no key.
    #[error("configuration could not be read: {0}")]
    Source(String),
    /// A value was read but is not acceptable: of the wrong kind, not one of the names allowed, out of range.
    #[error("invalid configuration `{key}`: {reason}{detail}")]
    Invalid {
        /// The dotted key, for example `compression.level`.
        key: String,
        /// What is wrong with it, and what it must be (for a name, every valid one and the nearest).
        reason: String,
        /// Where the value was given, starting with a space — ` (given as FERNANDO_CACHE__BACKEND=reddis)`,
        /// ` (in /etc/fernando-cache/local.toml)` — or empty for the embedded profiles and explicit overrides.
        detail: String,
    },
    /// A setting was given under the name it had before it moved (`ttl.ocr_result`, now
    /// `types.ocr_result.ttl`). Refused rather than ignored, so an old configuration never silently stops
    /// doing what it said.
    #[error("`{key}` is now `{now}`{detail}")]
    Moved {
        /// The old dotted key, as given.
        key: String,
        /// Where the setting lives now.
        now: String,
        /// Where the old key was given, and what to write instead there (for example the new environment
        /// variable), starting with a space; empty when there is nothing to add.
        detail: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
            detail: String::new(),
        }
    }

    /// The same error under another key: `redis.url` checked for a dedicated tenant is reported as
    /// `tenants.<id>.redis.url`. Keys starting with `from` get `to` in its place; an error of any other key is
    /// put under `to` whole.
    pub(crate) fn rekeyed(self, from: &str, to: &str) -> Self {
        match self {
            Self::Invalid {
                key,
                reason,
                detail,
            } => Self::Invalid {
                key: match key.strip_prefix(from) {
                    Some(rest) => format!("{to}{rest}"),
                    None => to.to_owned(),
                },
                reason,
                detail,
            },
            other => other,
        }
    }
}

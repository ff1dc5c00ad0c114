//! The configuration error type.

/// Why configuration could not be loaded.
///
/// Messages name the offending key and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A source could not be read or parsed, or a value has the wrong type.
    #[error("configuration could not be read: {0}")]
    Source(String),
    /// A value was read but is not acceptable.
    #[error("invalid configuration `{key}`: {reason}")]
    Invalid {
        /// The dotted key, for example `compression.level`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

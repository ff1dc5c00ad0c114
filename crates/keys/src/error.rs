//! The key error type.

/// Why a tenant id, key or fingerprint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The tenant id is empty.
    #[error("tenant id is empty")]
    EmptyTenant,
    /// The tenant id is longer than allowed.
    #[error("tenant id is {len} bytes long; at most {max} are allowed")]
    TenantTooLong {
        /// Its length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The tenant id contains a control character.
    #[error("tenant id contains the control character {0:?}")]
    TenantControlChar(char),
    /// A specific key is longer than allowed.
    #[error("cache key is {len} bytes long; at most {max} are allowed")]
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A tag is empty, longer than [`crate::GenerationKeys::MAX_TAG_LEN`] bytes, or holds a control character.
    #[error("tag {0:?} must be 1 to 128 bytes without control characters")]
    BadTag(String),
    /// A fingerprint is not 64 hexadecimal digits.
    #[error("{0:?} is not a SHA-256 fingerprint (64 hexadecimal digits)")]
    BadFingerprint(String),
    /// A percent-escape is malformed.
    #[error("malformed escape in key segment {0:?}")]
    BadEscape(String),
    /// A specific key in the store's own names ([`crate::RESERVED_KEY_PREFIX`]: its compression dictionaries).
    #[error(
        "cache key {0:?} is reserved: keys starting with `fc.dictionary.` hold the store's compression dictionaries"
    )]
    Reserved(String),
}

//! Cache type names: the eight built-in types of the seed and user-defined ones.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::ConfigError;

/// The name of a cache type, such as `ocr_result`.
///
/// A name is 1 to 64 characters of lowercase ASCII letters, digits and `_`, starting with a letter, so it is
/// safe in a key segment and in a metric label without escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheType(Cow<'static, str>);

impl CacheType {
    /// Processed document metadata, keyed by the document's SHA-256 (seed TTL 24 h).
    pub const DOC_HASH: CacheType = CacheType(Cow::Borrowed("doc_hash"));
    /// OCR text extraction (seed TTL 7 d).
    pub const OCR_RESULT: CacheType = CacheType(Cow::Borrowed("ocr_result"));
    /// Structured field extraction by an LLM or rules (seed TTL 30 d).
    pub const LLM_EXTRACTION: CacheType = CacheType(Cow::Borrowed("llm_extraction"));
    /// User sessions (seed TTL 24 h).
    pub const SESSION: CacheType = CacheType(Cow::Borrowed("session"));
    /// API endpoint responses (seed TTL 5 min).
    pub const API_RESPONSE: CacheType = CacheType(Cow::Borrowed("api_response"));
    /// Dashboard metrics and analytics (seed TTL 10 min).
    pub const DASHBOARD: CacheType = CacheType(Cow::Borrowed("dashboard"));
    /// Billing information and calculations (seed TTL 1 h).
    pub const BILLING: CacheType = CacheType(Cow::Borrowed("billing"));
    /// Master data and reference tables (seed TTL 24 h).
    pub const REFERENCE_DATA: CacheType = CacheType(Cow::Borrowed("reference_data"));

    /// The types whose values hold a document's content or the fields extracted from it: the processed result
    /// (`doc_hash`: text and fields), its stages, and HTTP copies (`api_response`: `serve`'s document route
    /// answers with the result, `proxy` stores whatever an origin answers). `encryption.document_data` seals
    /// them all, so a new copy of document data cannot be forgotten in a list of names.
    pub const DOCUMENT_DATA: [CacheType; 4] = [
        CacheType::DOC_HASH,
        CacheType::OCR_RESULT,
        CacheType::LLM_EXTRACTION,
        CacheType::API_RESPONSE,
    ];

    /// The eight types every profile configures.
    pub const BUILT_IN: [CacheType; 8] = [
        CacheType::DOC_HASH,
        CacheType::OCR_RESULT,
        CacheType::LLM_EXTRACTION,
        CacheType::SESSION,
        CacheType::API_RESPONSE,
        CacheType::DASHBOARD,
        CacheType::BILLING,
        CacheType::REFERENCE_DATA,
    ];

    /// The longest accepted name.
    pub const MAX_LEN: usize = 64;

    /// Validates a user-defined cache type name.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the name is empty, longer than [`Self::MAX_LEN`], does not start with a
    /// lowercase letter, or contains anything but lowercase letters, digits and `_`.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        if let Some(builtin) = Self::BUILT_IN.iter().find(|t| t.as_str() == name) {
            return Ok(builtin.clone());
        }
        let reason = if name.is_empty() {
            Some("is empty".to_owned())
        } else if name.len() > Self::MAX_LEN {
            Some(format!("is longer than {} characters", Self::MAX_LEN))
        } else if !name.as_bytes()[0].is_ascii_lowercase() {
            Some("must start with a lowercase letter".to_owned())
        } else {
            name.chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
                .map(|c| format!("contains {c:?}; only a-z, 0-9 and '_' are allowed"))
        };
        match reason {
            Some(reason) => Err(ConfigError::invalid(
                "cache_type",
                format!("cache type name {name:?} {reason}"),
            )),
            None => Ok(CacheType(Cow::Owned(name))),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CacheType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CacheType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CacheType {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CacheType::new(s)
    }
}

impl Serialize for CacheType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CacheType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        CacheType::new(name).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_names_round_trip() {
        for t in CacheType::BUILT_IN {
            assert_eq!(CacheType::new(t.as_str()).unwrap(), t);
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        for bad in ["", "Upper", "1abc", "a:b", "a*", "_x", "é", &"a".repeat(65)] {
            let err = CacheType::new(bad).unwrap_err().to_string();
            assert!(err.contains("cache type name"), "{bad:?}: {err}");
        }
        assert_eq!(CacheType::new("invoice_v2").unwrap().as_str(), "invoice_v2");
    }
}

//! Sealing when the store is built without its `seal` feature: no sealer can exist, so a configuration that
//! seals a cache type is refused at start-up — never silently stored in clear — and every call site compiles
//! unchanged (the sealer is an uninhabited type).

use std::{convert::Infallible, fmt};

use fernando_cache_config::{CacheType, Settings};

use crate::codec::Header;

/// Why sealing cannot start: this build has no `seal` feature.
#[derive(Debug)]
pub(crate) struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a sealed entry cannot be opened: never, since none is opened without the feature.
#[derive(Debug)]
pub(crate) enum OpenError {}

impl fmt::Display for OpenError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// Never constructed in this build.
#[derive(Debug)]
pub(crate) struct Sealer(Infallible);

impl Sealer {
    /// `None` when no cache type is sealed; otherwise an error naming the missing feature.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Option<Sealer>, KeyError> {
        let sealed = settings.sealed_types();
        if sealed.is_empty() {
            return Ok(None);
        }
        let names: Vec<&str> = sealed.iter().map(CacheType::as_str).collect();
        Err(KeyError(format!(
            "the settings seal {} (types.<name>.sealed / encryption.document_data), but this build of \
             fernando-cache-store has no `seal` feature",
            names.join(", ")
        )))
    }

    pub(crate) fn seals(&self, _: &CacheType) -> bool {
        match self.0 {}
    }

    pub(crate) fn seals_key(&self, _: &str) -> bool {
        match self.0 {}
    }

    pub(crate) fn overhead(&self) -> usize {
        match self.0 {}
    }

    pub(crate) fn seal(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, String> {
        match self.0 {}
    }

    pub(crate) fn open(
        &self,
        _: &str,
        _: bytes::Bytes,
        _: Header,
    ) -> Result<(bytes::Bytes, Header), OpenError> {
        match self.0 {}
    }
}

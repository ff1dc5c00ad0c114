//! `[tenancy]`: what a tenant id may be.

use serde::Deserialize;

use crate::{ConfigError, check};

/// `[tenancy]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TenancySettings {
    /// Longest tenant id accepted, in bytes (1 to 1024).
    pub max_tenant_id_len: usize,
}

impl TenancySettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check::range("tenancy.max_tenant_id_len", self.max_tenant_id_len, 1, 1024)
    }
}

//! Validated tenant identifiers.

use std::{fmt, sync::Arc};

use crate::KeyError;

/// A tenant id: non-empty, at most [`TenantId::MAX_LEN`] bytes, no control characters.
///
/// Any other character is allowed (`:`, `*`, `%`…): key segments are escaped, so such ids are safe. The
/// configured `tenancy.max_tenant_id_len` is enforced again by [`crate::KeyBuilder`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// The absolute upper bound on a tenant id, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Validates a tenant id.
    ///
    /// # Errors
    /// [`KeyError::EmptyTenant`], [`KeyError::TenantTooLong`] or [`KeyError::TenantControlChar`].
    pub fn new(id: impl AsRef<str>) -> Result<Self, KeyError> {
        let id = id.as_ref();
        Self::check(id, Self::MAX_LEN)?;
        Ok(TenantId(Arc::from(id)))
    }

    pub(crate) fn check(id: &str, max: usize) -> Result<(), KeyError> {
        if id.is_empty() {
            return Err(KeyError::EmptyTenant);
        }
        if id.len() > max {
            return Err(KeyError::TenantTooLong { len: id.len(), max });
        }
        if let Some(c) = id.chars().find(|c| c.is_control()) {
            return Err(KeyError::TenantControlChar(c));
        }
        Ok(())
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(TenantId::new("").unwrap_err(), KeyError::EmptyTenant);
        assert!(matches!(
            TenantId::new("a\nb"),
            Err(KeyError::TenantControlChar('\n'))
        ));
        assert!(matches!(
            TenantId::new("x".repeat(1025)),
            Err(KeyError::TenantTooLong {
                len: 1025,
                max: 1024
            })
        ));
        for ok in ["a", "a:b", "*", "a%3Ab", "ünïcode"] {
            assert_eq!(TenantId::new(ok).unwrap().as_str(), ok);
        }
    }
}

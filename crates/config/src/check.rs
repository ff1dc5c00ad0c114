//! The bounds checks every section's `validate` shares, so that one kind of bound reads the same wherever it is
//! reported.

use std::time::Duration;

use crate::ConfigError;

/// `value` must lie within `min..=max`.
pub(crate) fn range(key: &str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

/// `value` must be longer than zero and at most an hour: the bound of every timeout and polling interval.
pub(crate) fn duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    if value > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(key, "must be at most 1h"));
    }
    Ok(())
}

/// `value` must be 64 hexadecimal digits (a SHA-256), or empty when `optional`.
pub(crate) fn sha256(
    key: &str,
    value: &str,
    optional: bool,
    what: &str,
) -> Result<(), ConfigError> {
    if optional && value.is_empty() {
        return Ok(());
    }
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::invalid(
            key,
            format!("must be the SHA-256 of the {what}: 64 hexadecimal digits"),
        ));
    }
    Ok(())
}

//! Serde support for human-readable durations such as `"250ms"`, `"10m"` or `"7d"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

/// Parses a duration written like `250ms`, `10m`, `24h` or `7d`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration such as \"250ms\", \"10m\" or \"7d\" ({e})")
    })
}

/// Formats a duration the way [`parse`] reads it.
pub(crate) fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

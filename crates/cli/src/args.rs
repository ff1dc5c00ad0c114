//! Parsers of command-line values that several commands take — durations and TTLs — each refusing a value in
//! the words it was typed.

use std::time::Duration;

use fernando_cache_config::TtlTable;

/// A duration as options take it (`15m`, `24h`, `7d`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 15m, 24h or 7d ({e})"))
}

/// A TTL as `--ttl` takes it (`cache set`, `proxy`): a duration within the bounds every TTL is held to, refused
/// in the words it was typed (the store's own check would print the parsed value, `0ns`).
pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    parse_duration(text).and_then(|ttl| TtlTable::check_typed(text, ttl))
}

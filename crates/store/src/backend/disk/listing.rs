//! Listing the cache file's entries a page at a time (`Storage::scan`): in key order by the key index, from the
//! last key listed, so a listing holds one page in memory however many keys match.

use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::super::{KeyTtl, Listed, ScanCursor, ScanPage, glob_match};

/// One page of the live entries matching `pattern` after the key `after` (empty: from the first): `count` rows
/// are read and those outside the glob are not listed, so a page may list fewer. `read`: how many bytes of each
/// value (`i64::MAX`: all; 0: none); `now` in Unix milliseconds.
pub(super) fn scan(
    conn: &Connection,
    now: i64,
    pattern: &str,
    after: &str,
    count: usize,
    read: i64,
) -> rusqlite::Result<ScanPage> {
    let prefix = super::literal_prefix(pattern);
    let upper = format!("{prefix}\u{10FFFF}");
    let mut stmt = conn.prepare_cached(
        "SELECT key, expires_at, length(value), CASE WHEN ?5 > 0 THEN substr(value, 1, ?5) END \
         FROM entries WHERE key >= ?1 AND key < ?2 AND key > ?3 AND expires_at > ?4 \
         ORDER BY key LIMIT ?6",
    )?;
    let limit = i64::try_from(count).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![prefix, upper, after, now, read, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = match rows.last() {
        Some(last) if rows.len() >= count => Some(ScanCursor {
            after: Some(last.0.clone()),
            ..ScanCursor::default()
        }),
        _ => None,
    };
    let keys = rows
        .into_iter()
        .filter(|row| glob_match(pattern.as_bytes(), row.0.as_bytes()))
        .map(|(key, expires_at, len, head)| Listed {
            key,
            ttl: KeyTtl::Expires(Duration::from_millis(
                u64::try_from(expires_at - now).unwrap_or(0),
            )),
            size: Some(u64::try_from(len).unwrap_or(0)),
            value: head.map(Bytes::from),
        })
        .collect();
    Ok(ScanPage { keys, next })
}

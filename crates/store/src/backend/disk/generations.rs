//! The disk backend's generation keys (design 0001): a table of their own, each a `u64` stored as the bits of
//! an SQLite integer, with its expiry — read, set, and made where missing in one statement, so that the
//! processes sharing the file agree on one value.

use rusqlite::{Connection, params};

/// A generation as stored: the bits of the `u64`.
pub(super) fn generation(value: Option<i64>) -> u64 {
    value.map_or(0, |v| v as u64)
}

/// The `[scope, cache type]` generations `generations` names, at `now` (0 where missing or expired).
pub(super) fn read_generations(
    conn: &Connection,
    generations: &[String; 2],
    now: i64,
) -> rusqlite::Result<[u64; 2]> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT value FROM generations WHERE key = ?1 AND expires_at > ?3), \
                (SELECT value FROM generations WHERE key = ?2 AND expires_at > ?3)",
    )?;
    stmt.query_row(params![generations[0], generations[1], now], |r| {
        Ok([generation(r.get(0)?), generation(r.get(1)?)])
    })
}

/// Each of `keys`' generation at `now` (0 where missing or expired).
pub(super) fn read_each(
    conn: &Connection,
    keys: &[String],
    now: i64,
) -> rusqlite::Result<Vec<u64>> {
    let mut stmt =
        conn.prepare_cached("SELECT value FROM generations WHERE key = ?1 AND expires_at > ?2")?;
    keys.iter()
        .map(|k| {
            stmt.query_row(params![k, now], |r| r.get::<_, i64>(0))
                .map(|v| generation(Some(v)))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    e => Err(e),
                })
        })
        .collect()
}

/// Sets `key` to `value` until `expires_at`; returns `value`.
pub(super) fn set(
    conn: &Connection,
    key: &str,
    value: u64,
    expires_at: i64,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO generations (key, value, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )?
    .execute(params![key, value as i64, expires_at])?;
    Ok(value)
}

/// `key`'s generation, set to `fresh` (until `expires_at`) first where it has none — missing, expired at
/// `now`, 0, or not an integer (written by hand) — in one statement; the file's other processes then read the
/// same value.
pub(super) fn or_new(
    conn: &Connection,
    key: &str,
    fresh: u64,
    expires_at: i64,
    now: i64,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO generations (key, value, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at \
         WHERE generations.expires_at <= ?4 OR generations.value = 0 \
         OR typeof(generations.value) != 'integer'",
    )?
    .execute(params![key, fresh as i64, expires_at, now])?;
    let value = conn
        .prepare_cached("SELECT value FROM generations WHERE key = ?1")?
        .query_row(params![key], |r| r.get::<_, i64>(0))?;
    Ok(generation(Some(value)))
}

//! Quota ledgers in the cache file (design 0017): the semantics of the Redis scripts in
//! `redis/commands/limits.rs`, shared by every process that opens the file. The tables are additive (created if
//! missing), so a file of format 1 written before them still opens.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::{Charge, WindowCount, glob_match};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS quota_ledger (
    ledger TEXT NOT NULL,
    member TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (ledger, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quota_ledger_by_expiry ON quota_ledger (ledger, expires_at);
CREATE TABLE IF NOT EXISTS quota_windows (
    key TEXT PRIMARY KEY NOT NULL,
    count INTEGER NOT NULL,
    resets_at INTEGER NOT NULL
) WITHOUT ROWID;
";

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// See `Coordination::charge`; `now` and the expiry in Unix milliseconds.
pub(super) fn charge(
    conn: &mut Connection,
    now: i64,
    ledger: &str,
    member: &str,
    bytes: u64,
    expires_in_ms: u64,
    limit: u64,
) -> rusqlite::Result<Charge> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached("DELETE FROM quota_ledger WHERE ledger = ?1 AND expires_at <= ?2")?
        .execute(params![ledger, now])?;
    let total: i64 = tx
        .prepare_cached("SELECT coalesce(sum(bytes), 0) FROM quota_ledger WHERE ledger = ?1")?
        .query_row([ledger], |r| r.get(0))?;
    let total = u64::try_from(total).unwrap_or(0);
    if member.is_empty() {
        tx.commit()?;
        return Ok(Charge {
            admitted: true,
            total,
        });
    }
    let old: i64 = tx
        .prepare_cached("SELECT bytes FROM quota_ledger WHERE ledger = ?1 AND member = ?2")?
        .query_row([ledger, member], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let old = u64::try_from(old).unwrap_or(0);
    let after = total.saturating_sub(old) + bytes;
    if limit > 0 && bytes > old && after > limit {
        tx.commit()?;
        return Ok(Charge {
            admitted: false,
            total,
        });
    }
    tx.prepare_cached(
        "INSERT INTO quota_ledger (ledger, member, bytes, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (ledger, member) DO UPDATE SET bytes = excluded.bytes, expires_at = excluded.expires_at",
    )?
    .execute(params![
        ledger,
        member,
        int(bytes),
        now.saturating_add(int(expires_in_ms))
    ])?;
    tx.commit()?;
    Ok(Charge {
        admitted: true,
        total: after,
    })
}

/// Removes a deleted entry's `member` from `ledger`, inside the transaction that deleted it.
pub(super) fn release(
    tx: &rusqlite::Transaction<'_>,
    ledger: &str,
    member: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM quota_ledger WHERE ledger = ?1 AND member = ?2")?
        .execute([ledger, member])?;
    Ok(())
}

/// See `Coordination::count_in_window`.
pub(super) fn count_in_window(
    conn: &mut Connection,
    now: i64,
    key: &str,
    add: u64,
    window_ms: u64,
) -> rusqlite::Result<WindowCount> {
    if add == 0 {
        // Only a look: a window that has not started is not started.
        let current: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT count, resets_at FROM quota_windows WHERE key = ?1 AND resets_at > ?2",
            )?
            .query_row(params![key, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        return Ok(match current {
            Some((count, resets_at)) => WindowCount {
                count: u64::try_from(count).unwrap_or(0),
                resets_in: std::time::Duration::from_millis(
                    u64::try_from(resets_at - now).unwrap_or(0),
                ),
            },
            None => WindowCount {
                count: 0,
                resets_in: std::time::Duration::from_millis(window_ms),
            },
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached("DELETE FROM quota_windows WHERE resets_at <= ?1")?
        .execute([now])?;
    let (count, resets_at): (i64, i64) = tx
        .prepare_cached(
            "INSERT INTO quota_windows (key, count, resets_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET count = count + excluded.count \
             RETURNING count, resets_at",
        )?
        .query_row(
            params![key, int(add), now.saturating_add(int(window_ms))],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    tx.commit()?;
    Ok(WindowCount {
        count: u64::try_from(count).unwrap_or(0),
        resets_in: std::time::Duration::from_millis(u64::try_from(resets_at - now).unwrap_or(0)),
    })
}

/// Removes every ledger and request window whose key matches the Redis glob `pattern` (whose literal start is
/// `prefix`), in one transaction; returns how many (a ledger counts once, whatever its members).
pub(super) fn remove_matching(
    conn: &mut Connection,
    prefix: &str,
    pattern: &str,
) -> rusqlite::Result<u64> {
    let upper = format!("{prefix}\u{10FFFF}");
    let matching = |conn: &Connection, sql: &str| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let keys = stmt
            .query_map(params![prefix, upper], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(keys
            .into_iter()
            .filter(|k| glob_match(pattern.as_bytes(), k.as_bytes()))
            .collect())
    };
    let ledgers = matching(
        &*conn,
        "SELECT DISTINCT ledger FROM quota_ledger WHERE ledger >= ?1 AND ledger < ?2",
    )?;
    let windows = matching(
        &*conn,
        "SELECT key FROM quota_windows WHERE key >= ?1 AND key < ?2",
    )?;
    if ledgers.is_empty() && windows.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for ledger in &ledgers {
        tx.prepare_cached("DELETE FROM quota_ledger WHERE ledger = ?1")?
            .execute([ledger])?;
    }
    for key in &windows {
        tx.prepare_cached("DELETE FROM quota_windows WHERE key = ?1")?
            .execute([key])?;
    }
    tx.commit()?;
    Ok((ledgers.len() + windows.len()) as u64)
}

//! The backend's bounded bookkeeping in Redis: the admission set behind per-URL variant budgets, the byte
//! ledger behind tenant quotas (charged on write, released by sweeps) and the fixed-window request counter —
//! each one Lua script, so every decision is atomic and one round trip.

use std::time::Duration;

use redis::{RedisResult, aio::ConnectionLike};

use super::millis;
use crate::backend::{Charge, WindowCount};

/// One round trip, atomic: a member already in stays in; a new one only while the set is under `limit`.
const ADMIT: &str = "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end \
     if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end \
     redis.call('SADD', KEYS[1], ARGV[1]) \
     redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
     return 1";

/// Adds `member` to the bounded set at `key` (see `Coordination::admit`).
pub(crate) async fn admit<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    member: &[u8],
    limit: u64,
    ttl: Duration,
) -> RedisResult<bool> {
    let admitted: i64 = redis::cmd("EVAL")
        .arg(ADMIT)
        .arg(1)
        .arg(key)
        .arg(member)
        .arg(limit)
        .arg(millis(ttl))
        .query_async(conn)
        .await?;
    Ok(admitted == 1)
}

/// A byte ledger (design 0017): `KEYS[1]` a hash member → bytes (and `_total`), `KEYS[2]` a sorted set member →
/// expiry (server time, ms). Expired members leave the total first (a bounded batch per call), then the member
/// is recorded at its new size unless growing takes the total past the limit. Server time, so replicas' clocks
/// do not matter; the keys live as long as their longest-lived member.
const CHARGE: &str = "local t = redis.call('TIME') \
     local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
     local total = tonumber(redis.call('HGET', KEYS[1], '_total') or '0') \
     local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 512) \
     for _, m in ipairs(gone) do \
       total = total - tonumber(redis.call('HGET', KEYS[1], m) or '0') \
       redis.call('HDEL', KEYS[1], m) \
     end \
     if #gone > 0 then redis.call('ZREM', KEYS[2], unpack(gone)) end \
     if total < 0 then total = 0 end \
     if ARGV[1] == '' then \
       if #gone > 0 then redis.call('HSET', KEYS[1], '_total', total) end \
       return {1, total} \
     end \
     local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') \
     local bytes = tonumber(ARGV[2]) \
     local limit = tonumber(ARGV[4]) \
     local after = total - old + bytes \
     if limit > 0 and bytes > old and after > limit then \
       redis.call('HSET', KEYS[1], '_total', total) \
       return {0, total} \
     end \
     local life = tonumber(ARGV[3]) \
     redis.call('HSET', KEYS[1], ARGV[1], bytes, '_total', after) \
     redis.call('ZADD', KEYS[2], now + life, ARGV[1]) \
     if redis.call('PTTL', KEYS[1]) < life then \
       redis.call('PEXPIRE', KEYS[1], life) \
       redis.call('PEXPIRE', KEYS[2], life) \
     end \
     return {1, after}";

/// The second key of a byte ledger (its members' expiries): the ledger key plus `:expiry`, so it shares the
/// ledger's hash tag (one slot on a cluster).
fn expiry_key(ledger: &str) -> String {
    format!("{ledger}:expiry")
}

/// Charges a byte ledger (see `Coordination::charge`).
pub(crate) async fn charge<C: ConnectionLike + Send>(
    conn: &mut C,
    ledger: &str,
    member: &str,
    bytes: u64,
    expires_in: Duration,
    limit: u64,
) -> RedisResult<Charge> {
    let (admitted, total): (i64, i64) = redis::cmd("EVAL")
        .arg(CHARGE)
        .arg(2)
        .arg(ledger)
        .arg(expiry_key(ledger))
        .arg(member)
        .arg(bytes)
        .arg(millis(expires_in))
        .arg(limit)
        .query_async(conn)
        .await?;
    Ok(Charge {
        admitted: admitted == 1,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// Removes deleted entries from a byte ledger: `KEYS` as in [`CHARGE`], `ARGV` the members. The total is only
/// rewritten when a member was there, so a ledger that does not exist is not created (without an expiry).
const RELEASE_MEMBERS: &str = "local total = tonumber(redis.call('HGET', KEYS[1], '_total') or '0') \
     local found = 0 \
     for _, m in ipairs(ARGV) do \
       local b = redis.call('HGET', KEYS[1], m) \
       if b then \
         total = total - tonumber(b) \
         found = found + 1 \
         redis.call('HDEL', KEYS[1], m) \
         redis.call('ZREM', KEYS[2], m) \
       end \
     end \
     if found > 0 then \
       if total < 0 then total = 0 end \
       redis.call('HSET', KEYS[1], '_total', total) \
     end \
     return found";

/// Releases the entries `keys` (just deleted) from `ledger`; one script per call, so a caller passes a bounded
/// batch.
pub(crate) fn release_cmd(ledger: &str, keys: &[impl AsRef<str>]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE_MEMBERS)
        .arg(2)
        .arg(ledger)
        .arg(expiry_key(ledger));
    for key in keys {
        cmd.arg(crate::backend::ledger_member(key.as_ref()));
    }
    cmd
}

/// A fixed-window counter: the first addition starts the window. Adding 0 only reads, and creates nothing (an
/// operator's look at an erased tenant's quota leaves no key of it behind).
const COUNT_IN_WINDOW: &str = "if tonumber(ARGV[1]) == 0 then \
       local ttl = redis.call('PTTL', KEYS[1]) \
       if ttl < 0 then return {0, tonumber(ARGV[2])} end \
       return {tonumber(redis.call('GET', KEYS[1]) or '0'), ttl} \
     end \
     local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
     local ttl = redis.call('PTTL', KEYS[1]) \
     if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) ttl = tonumber(ARGV[2]) end \
     return {n, ttl}";

/// Adds to a windowed counter (see `Coordination::count_in_window`).
pub(crate) async fn count_in_window<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    add: u64,
    window: Duration,
) -> RedisResult<WindowCount> {
    let (count, ttl): (i64, i64) = redis::cmd("EVAL")
        .arg(COUNT_IN_WINDOW)
        .arg(1)
        .arg(key)
        .arg(add)
        .arg(millis(window))
        .query_async(conn)
        .await?;
    Ok(WindowCount {
        count: u64::try_from(count).unwrap_or(0),
        resets_in: Duration::from_millis(u64::try_from(ttl).unwrap_or(0)),
    })
}

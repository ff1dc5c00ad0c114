//! The backend's Redis commands, written once for any connection — a standalone or Sentinel-found server's
//! multiplexed connection, or a cluster connection that routes each command by its key. Every multi-key command
//! here names keys of one scope, which share a hash tag (design 0010), so none of them is ever cross-slot.
//!
//! Each function returns the client's own result, so the caller can decide what a failure says about its
//! connection; the replies are turned into backend values here.

use std::time::Duration;

use fernando_cache_keys::GenerationKeys;
use redis::{RedisResult, Value, aio::ConnectionLike};

use crate::backend::{BackendInfo, KeyTtl, parse_generation};

mod fetch;
mod limits;
mod listing;
mod streams;
mod versioned;

pub(crate) use fetch::{
    fetch, fetch_checked, fetch_many, fetched, fetched_checked, fetched_many, fetched_opted_in,
    opted_in,
};
pub(crate) use limits::{admit, charge, count_in_window, release_cmd};
pub(crate) use listing::{list_cmd, listed};
pub(crate) use streams::{
    ack, append, claim_idle, claimed_entries, join_group, new_entries, read_entries, read_new,
    read_pending, recorded,
};
pub(crate) use versioned::{mark, put_newer, versioned};

/// The two generation values as `MGET` returns them.
type Generations = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The `[scope, cache type]` generations from their stored values.
fn parse_pair(g_scope: &Option<Vec<u8>>, g_type: &Option<Vec<u8>>) -> [u64; 2] {
    [
        parse_generation(g_scope.as_deref()),
        parse_generation(g_type.as_deref()),
    ]
}

/// A TTL as the `PX` milliseconds Redis takes (at least 1).
pub(crate) fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// [`set`] on a connection that tracks the keys it opts in to: the generations are read after
/// `CLIENT CACHING YES` (see [`fetch_checked`]). Also says whether the server agreed to announce them.
pub(crate) async fn set_opted_in<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    generations: &GenerationKeys,
) -> RedisResult<([u64; 2], bool)> {
    let replies: Vec<Value> = redis::pipe()
        .ignore_errors()
        .cmd("CLIENT")
        .arg("CACHING")
        .arg("YES")
        .cmd("MGET")
        .arg(generations.scope())
        .arg(generations.cache_type())
        .cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(millis(ttl))
        .query_async(conn)
        .await?;
    let [caching, gens, set]: [Value; 3] = replies.try_into().map_err(|r: Vec<_>| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "unexpected reply",
            format!("pipeline answered {} replies, not 3", r.len()),
        ))
    })?;
    for reply in [&gens, &set] {
        if let Value::ServerError(e) = reply {
            return Err(e.clone().into());
        }
    }
    let (g_scope, g_type): Generations = redis::FromRedisValue::from_redis_value(gens)?;
    Ok((parse_pair(&g_scope, &g_type), opted_in(&caching)))
}

/// `SET key value PX ttl` with the generations read just before it, in one round trip.
pub(crate) async fn set<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    generations: &GenerationKeys,
) -> RedisResult<[u64; 2]> {
    let ((g_scope, g_type),): (Generations,) = redis::pipe()
        .cmd("MGET")
        .arg(generations.scope())
        .arg(generations.cache_type())
        .cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(millis(ttl))
        .ignore()
        .query_async(conn)
        .await?;
    Ok(parse_pair(&g_scope, &g_type))
}

/// `SET key value PX ttl`: a write whose generations are already known current (tracked, design 0007).
pub(crate) async fn set_plain<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(millis(ttl))
        .exec_async(conn)
        .await
}

/// [`set`] as one script: a cluster client follows `MOVED` and `ASK` for a single command, while a pipeline
/// caught mid-migration can keep failing (redis-rs 1.8), so the cluster backend writes this way.
static SET_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local g = redis.call('MGET', KEYS[2], KEYS[3]) \
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
         return g",
    )
});

/// [`set`] as one single-slot script (`EVALSHA`, loaded on first use).
pub(crate) async fn set_scripted<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    generations: &GenerationKeys,
) -> RedisResult<[u64; 2]> {
    let (g_scope, g_type): Generations = SET_SCRIPT
        .key(key)
        .key(generations.scope())
        .key(generations.cache_type())
        .arg(value)
        .arg(millis(ttl))
        .invoke_async(conn)
        .await?;
    Ok(parse_pair(&g_scope, &g_type))
}

/// [`fetch_checked`] as one script, for the cluster backend (see [`set_scripted`]): a key of another type is a
/// `WRONGTYPE` error, anything else the `MGET` of the entry and its generations.
static FETCH_CHECKED_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local t = redis.call('TYPE', KEYS[1]).ok \
         if t ~= 'string' and t ~= 'none' then \
           return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value') end \
         return redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])",
    )
});

/// The checked read as one single-slot script.
pub(crate) async fn fetch_checked_scripted<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    generations: &GenerationKeys,
) -> RedisResult<Vec<Option<Vec<u8>>>> {
    FETCH_CHECKED_SCRIPT
        .key(key)
        .key(generations.scope())
        .key(generations.cache_type())
        .invoke_async(conn)
        .await
}

/// `PTTL key` as a [`KeyTtl`].
pub(crate) async fn ttl<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> RedisResult<KeyTtl> {
    let ms: i64 = redis::cmd("PTTL").arg(key).query_async(conn).await?;
    Ok(match ms {
        -2 => KeyTtl::Missing,
        -1 => KeyTtl::Persistent,
        ms => KeyTtl::Expires(Duration::from_millis(ms.max(0) as u64)),
    })
}

/// `EXISTS key`.
pub(crate) async fn exists<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> RedisResult<bool> {
    redis::cmd("EXISTS").arg(key).query_async(conn).await
}

/// `UNLINK keys…` (at least one): how many existed. On a cluster the keys must share a slot.
pub(crate) async fn unlink<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &[&str],
) -> RedisResult<u64> {
    redis::cmd("UNLINK").arg(keys).query_async(conn).await
}

/// `MGET` of generation keys, decoded as the store reads generations.
pub(crate) async fn get_generations<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &[&str],
) -> RedisResult<Vec<u64>> {
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query_async(conn).await?;
    Ok(values
        .iter()
        .map(|v| crate::backend::parse_generation(v.as_deref()))
        .collect())
}

/// `SET key generation PX ttl`.
pub(crate) async fn set_generation<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    generation: u64,
    ttl: Duration,
) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(generation.to_string())
        .arg("PX")
        .arg(millis(ttl))
        .exec_async(conn)
        .await
}

/// A generation key's value, set first to `ARGV[1]` (for `ARGV[2]` ms) where the key has none — or holds 0, or
/// is not a string (the store's own key, repaired): one script, so that processes finding it missing at once
/// agree on one value.
static GENERATION_OR_NEW_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| {
        redis::Script::new(
            "local t = redis.call('TYPE', KEYS[1]).ok \
             if t == 'string' then \
               local v = redis.call('GET', KEYS[1]) \
               if v ~= '0' then return v end \
             end \
             redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
             return ARGV[1]",
        )
    });

/// The value of generation key `key`, `generation` (kept `ttl`) where it had none.
pub(crate) async fn generation_or_new<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    generation: u64,
    ttl: Duration,
) -> RedisResult<u64> {
    let value: Option<Vec<u8>> = GENERATION_OR_NEW_SCRIPT
        .key(key)
        .arg(generation.to_string())
        .arg(millis(ttl))
        .invoke_async(conn)
        .await?;
    Ok(crate::backend::parse_generation(value.as_deref()))
}

/// `INFO memory stats clients` and `DBSIZE` of one server.
pub(crate) async fn info<C: ConnectionLike + Send>(conn: &mut C) -> RedisResult<BackendInfo> {
    let text: String = redis::cmd("INFO")
        .arg("memory")
        .arg("stats")
        .arg("clients")
        .query_async(conn)
        .await?;
    let keys: u64 = redis::cmd("DBSIZE").query_async(conn).await?;
    Ok(parse_info(&text, keys))
}

/// The fields of an `INFO` reply the store reports.
pub(crate) fn parse_info(text: &str, keys: u64) -> BackendInfo {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    let num = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
    BackendInfo {
        used_memory: num("used_memory"),
        max_memory: num("maxmemory"),
        eviction_policy: field("maxmemory_policy"),
        evicted_keys: num("evicted_keys"),
        keys: Some(keys),
        connected_clients: num("connected_clients"),
        keyspace_hits: num("keyspace_hits"),
        keyspace_misses: num("keyspace_misses"),
        nodes: Vec::new(),
    }
}

/// `SET lease token NX PX ttl`: whether the lease was taken.
pub(crate) async fn acquire_lease<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    token: &str,
    ttl: Duration,
) -> RedisResult<bool> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl))
        .query_async(conn)
        .await?;
    Ok(reply.is_some())
}

/// Extends a lease still held by the token.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// Extends the lease if `token` holds it.
pub(crate) async fn renew_lease<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    token: &str,
    ttl: Duration,
) -> RedisResult<bool> {
    let renewed: i64 = redis::cmd("EVAL")
        .arg(RENEW)
        .arg(1)
        .arg(key)
        .arg(token)
        .arg(millis(ttl))
        .query_async(conn)
        .await?;
    Ok(renewed == 1)
}

/// Ends a lease still held by the token and announces it (the payload is the lease key). Classic pub/sub
/// reaches every subscriber of a cluster, whichever node it is connected to.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('DEL', KEYS[1]) redis.call('PUBLISH', ARGV[2], KEYS[1]) return 1 end return 0";

/// Ends the lease if `token` holds it, announcing it on `channel`.
pub(crate) async fn release_lease<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    token: &str,
    channel: &str,
) -> RedisResult<()> {
    let _: i64 = redis::cmd("EVAL")
        .arg(RELEASE)
        .arg(1)
        .arg(key)
        .arg(token)
        .arg(channel)
        .query_async(conn)
        .await?;
    Ok(())
}

/// The write of a lease holder: the generations as they were, and the entry set, only while the token holds
/// the lease (checked in the same atomic step). `false` (nil) when fenced out. All four keys share the
/// entry's hash tag, so the script runs on one node of a cluster.
const SET_FENCED: &str = "if redis.call('GET', KEYS[4]) ~= ARGV[3] then return false end \
     local g = redis.call('MGET', KEYS[2], KEYS[3]) \
     redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
     return g";

/// [`set`] while `token` holds `lease`; `None` when fenced out.
pub(crate) async fn set_fenced<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    generations: &GenerationKeys,
    (lease, token): (&str, &str),
) -> RedisResult<Option<[u64; 2]>> {
    let reply: Option<Generations> = redis::cmd("EVAL")
        .arg(SET_FENCED)
        .arg(4)
        .arg(key)
        .arg(generations.scope())
        .arg(generations.cache_type())
        .arg(lease)
        .arg(value)
        .arg(millis(ttl))
        .arg(token)
        .query_async(conn)
        .await?;
    Ok(reply.map(|(g_scope, g_type)| parse_pair(&g_scope, &g_type)))
}

/// Delivers every message on `channel` to `on_message`, from a subscription made with the client `connect`
/// gives each time (a server of the moment), until the returned task is aborted. Reconnects after a pause.
pub(crate) fn listen<F, Fut>(
    channel: String,
    on_message: crate::backend::OnMessage,
    connect: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = RedisResult<redis::Client>> + Send,
{
    use futures_util::StreamExt;
    tokio::spawn(async move {
        let mut attempt = 0usize;
        loop {
            let subscribed = async {
                let mut pubsub = connect(attempt).await?.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            }
            .await;
            match subscribed {
                Ok(mut pubsub) => {
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        on_message(msg.get_payload_bytes());
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lease channel subscription failed; retrying")
                }
            }
            attempt = attempt.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// One step of a sweep: `SCAN cursor MATCH pattern COUNT batch`.
pub(crate) async fn scan_step<C: ConnectionLike + Send>(
    conn: &mut C,
    cursor: u64,
    pattern: &str,
    batch: usize,
) -> RedisResult<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(batch)
        .query_async(conn)
        .await
}

/// The Redis Cluster hash tag of a key: the text between its first `{` and the first `}` after it, when not
/// empty; else the whole key. Keys with equal tags live in one slot.
pub(crate) fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// `keys` grouped so that each group lies in one slot (equal hash tags), each group at most `batch` long.
pub(crate) fn same_slot_batches<'k>(keys: &[&'k str], batch: usize) -> Vec<Vec<&'k str>> {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|a, b| hash_tag(a).cmp(hash_tag(b)));
    let mut out: Vec<Vec<&str>> = Vec::new();
    for key in sorted {
        match out.last_mut() {
            Some(group) if group.len() < batch.max(1) && hash_tag(group[0]) == hash_tag(key) => {
                group.push(key)
            }
            _ => out.push(vec![key]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_batched_by_hash_tag_only() {
        let keys = [
            "ns:e:{tenant_a}:t:1",
            "ns:e:{tenant_b}:t:1",
            "ns:e:{tenant_a}:t:2",
            "plain",
            "ns:e:{tenant_a}:t:3",
        ];
        let batches = same_slot_batches(&keys, 2);
        for b in &batches {
            assert!(b.iter().all(|k| hash_tag(k) == hash_tag(b[0])), "{b:?}");
            assert!(b.len() <= 2);
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), keys.len());
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(hash_tag("x{tenant_}}:y"), "tenant_");
    }
}

//! The reads of the hot path: an entry with its generations (`fetch`, and `fetch_checked`, which tells a
//! non-string value apart and may opt the generations in to a connection's OPTIN tracking), and a batch of
//! entries sharing their generations (`fetch_many`).

use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::{RedisResult, Value, aio::ConnectionLike};

use super::{Generations, parse_pair};
use crate::backend::{BackendError, Fetched};

/// The entry and both generations in one `MGET` (which answers nil for a key of another type).
pub(crate) async fn fetch<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    generations: &GenerationKeys,
) -> RedisResult<Vec<Option<Vec<u8>>>> {
    redis::cmd("MGET")
        .arg(key)
        .arg(generations.scope())
        .arg(generations.cache_type())
        .query_async(conn)
        .await
}

/// What [`fetch`] read, as a backend value.
pub(crate) fn fetched(mut replies: Vec<Option<Vec<u8>>>) -> Result<Fetched, BackendError> {
    if replies.len() != 3 {
        return Err(BackendError::Other(format!(
            "MGET answered {} values, not 3",
            replies.len()
        )));
    }
    let g_type = replies.pop().flatten();
    let g_scope = replies.pop().flatten();
    Ok(Fetched {
        value: replies.pop().flatten().map(Bytes::from),
        generations: parse_pair(&g_scope, &g_type),
    })
}

/// `GET key` and the generations in one pipeline; the per-command replies keep a `WRONGTYPE` visible instead
/// of failing the whole pipeline. With `opt_in`, `CLIENT CACHING YES` goes between them: on a connection that
/// tracks the keys it opts in to (an `acl` tenant's, `hot.rs`'s `SwitchUser`) the server then announces the
/// generations' next change there — theirs only, not the entry's (read the replies with [`fetched_opted_in`]).
pub(crate) async fn fetch_checked<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    generations: &GenerationKeys,
    opt_in: bool,
) -> RedisResult<Vec<Value>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors().cmd("GET").arg(key);
    with_generations(pipe, conn, generations, opt_in).await
}

/// `MGET` of entries that share `generations`, and `MGET` of those generations in the same round trip (after
/// `CLIENT CACHING YES` with `opt_in`, as in [`fetch_checked`]). Read the replies with [`fetched_many`].
pub(crate) async fn fetch_many<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &[&str],
    generations: &GenerationKeys,
    opt_in: bool,
) -> RedisResult<Vec<Value>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors().cmd("MGET").arg(keys);
    with_generations(pipe, conn, generations, opt_in).await
}

/// Sends `pipe` with the generations read at its end — after `CLIENT CACHING YES` when `opt_in`.
async fn with_generations<C: ConnectionLike + Send>(
    mut pipe: redis::Pipeline,
    conn: &mut C,
    generations: &GenerationKeys,
    opt_in: bool,
) -> RedisResult<Vec<Value>> {
    if opt_in {
        pipe.cmd("CLIENT").arg("CACHING").arg("YES");
    }
    pipe.cmd("MGET")
        .arg(generations.scope())
        .arg(generations.cache_type())
        .query_async(conn)
        .await
}

/// What [`fetch_many`] read: the entries, their generations, and whether the server agreed to announce the
/// generations' next change (always, without `opt_in`).
pub(crate) struct FetchedMany {
    pub(crate) values: Vec<Option<Vec<u8>>>,
    pub(crate) generations: [u64; 2],
    pub(crate) tracked: bool,
}

/// The replies of [`fetch_many`], read.
pub(crate) fn fetched_many(mut replies: Vec<Value>) -> Result<FetchedMany, BackendError> {
    let opted_in = match replies.len() {
        2 => true,
        3 => opted_in(&replies.remove(1)),
        n => {
            return Err(BackendError::Other(format!(
                "pipeline answered {n} replies, not 2 or 3"
            )));
        }
    };
    let gens = replies.pop().expect("two replies");
    let values = replies.pop().expect("two replies");
    let error = |v: &Value| match v {
        Value::ServerError(e) => Some(super::super::error::conn_err(e.clone().into())),
        _ => None,
    };
    if let Some(e) = error(&values).or_else(|| error(&gens)) {
        return Err(e);
    }
    let values: Vec<Option<Vec<u8>>> = redis::FromRedisValue::from_redis_value(values)
        .map_err(|e| BackendError::Other(e.to_string()))?;
    let (g_scope, g_type): Generations = redis::FromRedisValue::from_redis_value(gens)
        .map_err(|e| BackendError::Other(e.to_string()))?;
    Ok(FetchedMany {
        values,
        generations: parse_pair(&g_scope, &g_type),
        tracked: opted_in,
    })
}

/// What [`fetch_checked`] read, as a backend value.
pub(crate) fn fetched_checked(replies: Vec<Value>) -> Result<Fetched, BackendError> {
    let [value, gens]: [Value; 2] = replies.try_into().map_err(|r: Vec<_>| {
        BackendError::Other(format!("pipeline answered {} replies, not 2", r.len()))
    })?;
    let value = match value {
        Value::Nil => None,
        Value::BulkString(bytes) => Some(Bytes::from(bytes)),
        Value::ServerError(e) if e.code() == "WRONGTYPE" => return Err(BackendError::WrongType),
        other => {
            return Err(BackendError::Other(format!(
                "unexpected reply to GET: {other:?}"
            )));
        }
    };
    let (g_scope, g_type): Generations = redis::FromRedisValue::from_redis_value(gens)
        .map_err(|e| BackendError::Other(e.to_string()))?;
    Ok(Fetched {
        value,
        generations: parse_pair(&g_scope, &g_type),
    })
}

/// What [`fetch_checked`] with `opt_in` read, and whether the server agreed to announce the generations' next
/// change (a user made before `CLIENT CACHING` was among its commands is refused it: its generations are then
/// read again with every hit, until `tenant acl` applies its rules anew).
pub(crate) fn fetched_opted_in(mut replies: Vec<Value>) -> Result<(Fetched, bool), BackendError> {
    if replies.len() != 3 {
        return Err(BackendError::Other(format!(
            "pipeline answered {} replies, not 3",
            replies.len()
        )));
    }
    let caching = replies.remove(1);
    Ok((fetched_checked(replies)?, opted_in(&caching)))
}

/// Whether `CLIENT CACHING YES` was accepted.
pub(crate) fn opted_in(reply: &Value) -> bool {
    matches!(reply, Value::Okay) || matches!(reply, Value::SimpleString(s) if s == "OK")
}

//! The replication stream's commands (design 0026): `XADD` bounded by `MAXLEN ~`, a consumer group made once,
//! `XREADGROUP` of new or of this consumer's own pending entries, `XACK`, and `XAUTOCLAIM` of entries another
//! consumer left pending. Replies are read whether the connection speaks RESP2 or RESP3.

use std::time::Duration;

use bytes::Bytes;
use redis::{RedisResult, Value, aio::ConnectionLike};

use crate::backend::{BackendError, StreamEntry};

/// Fields a stream entry may have at most: more is no entry of ours.
const MAX_FIELDS: usize = 32;

/// `XADD stream MAXLEN ~ max_len * field value …`; the entry's id.
pub(crate) async fn append<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    fields: &[(&str, &[u8])],
    max_len: u64,
) -> RedisResult<String> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(conn).await
}

/// `XGROUP CREATE stream group 0 MKSTREAM`: a group that reads the stream from its first entry kept; one that
/// exists already is left as it is (`Ok(false)`).
pub(crate) async fn join_group<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> RedisResult<bool> {
    let made: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match made {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
        Err(e) => Err(e),
    }
}

/// `XREADGROUP GROUP group consumer COUNT count STREAMS stream >` (new entries), or `… 0` (this consumer's own
/// entries delivered but not acknowledged). Never blocks: the caller polls.
pub(crate) async fn read_group<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
    own_pending: bool,
    count: usize,
) -> RedisResult<Value> {
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(if own_pending { "0" } else { ">" })
        .query_async(conn)
        .await
}

/// `XACK stream group id …`.
pub(crate) async fn ack<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    ids: &[String],
) -> RedisResult<()> {
    redis::cmd("XACK")
        .arg(stream)
        .arg(group)
        .arg(ids)
        .query_async(conn)
        .await
}

/// `XAUTOCLAIM stream group consumer min_idle 0 COUNT count`: entries other consumers were given and left
/// unacknowledged for `min_idle`, now this consumer's.
pub(crate) async fn claim_idle<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
    min_idle: Duration,
    count: usize,
) -> RedisResult<Value> {
    redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(group)
        .arg(consumer)
        .arg(super::millis(min_idle))
        .arg("0")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
}

/// The entries of an `XREADGROUP` reply (nil when there are none; one stream, as a map or an array of pairs).
pub(crate) fn read_entries(reply: Value) -> Result<Vec<StreamEntry>, BackendError> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.pop().expect("two")),
                other => Err(bad("a stream of XREADGROUP", &other)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(bad("XREADGROUP", &other)),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(entries_of(entries)?);
    }
    Ok(out)
}

/// The entries of an `XAUTOCLAIM` reply: `[next id, entries, deleted ids]`.
pub(crate) fn claimed_entries(reply: Value) -> Result<Vec<StreamEntry>, BackendError> {
    match reply {
        Value::Array(mut parts) if parts.len() >= 2 => entries_of(parts.swap_remove(1)),
        other => Err(bad("XAUTOCLAIM", &other)),
    }
}

/// An array of `[id, [field, value, …]]`; an entry deleted meanwhile (its fields nil) is left out.
fn entries_of(entries: Value) -> Result<Vec<StreamEntry>, BackendError> {
    let Value::Array(entries) = entries else {
        return Err(bad("stream entries", &entries));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut pair) = entry else {
            return Err(bad("a stream entry", &entry));
        };
        if pair.len() != 2 {
            return Err(BackendError::Other(format!(
                "a stream entry of {} parts, not 2",
                pair.len()
            )));
        }
        let fields = pair.pop().expect("two");
        let id = match pair.pop().expect("two") {
            Value::BulkString(b) => String::from_utf8(b)
                .map_err(|_| BackendError::Other("a stream entry id that is not text".into()))?,
            Value::SimpleString(s) => s,
            other => return Err(bad("a stream entry id", &other)),
        };
        // An entry whose fields cannot be read — too many, a name that is not text, not pairs — is an entry
        // with none: the caller skips it (and acknowledges it) like any entry it cannot use, and reads the rest.
        let fields = match fields {
            Value::Nil => continue,
            Value::Array(items) if items.len() % 2 == 0 && items.len() / 2 <= MAX_FIELDS => {
                let mut fields = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(name), Some(value)) = (items.next(), items.next()) {
                    let (Some(name), Some(value)) = (bulk(name), bulk(value)) else {
                        fields.clear();
                        break;
                    };
                    let Ok(name) = String::from_utf8(name) else {
                        fields.clear();
                        break;
                    };
                    fields.push((name, Bytes::from(value)));
                }
                fields
            }
            _ => Vec::new(),
        };
        out.push(StreamEntry { id, fields });
    }
    Ok(out)
}

fn bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// An unexpected reply, named without its contents (they may be a tenant's data).
fn bad(what: &str, v: &Value) -> BackendError {
    let kind = match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::ServerError(_) => "an error",
        _ => "another kind of reply",
    };
    BackendError::Other(format!("{what} answered {kind}"))
}

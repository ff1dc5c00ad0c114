//! The replication stream's commands (design 0026): `XADD` bounded by `MAXLEN ~`, a consumer group made once,
//! `XREADGROUP` of this consumer's own pending entries, new entries read by a script that sees whether entries
//! the group never got are gone, `XACK`, and `XAUTOCLAIM` of entries another
//! consumer left pending. Replies are read whether the connection speaks RESP2 or RESP3.

use std::time::Duration;

use bytes::Bytes;
use redis::{RedisResult, Value, aio::ConnectionLike};

use crate::backend::{BackendError, NewEntries, StreamEntry};

/// Fields a stream entry may have at most: more is no entry of ours (a writer packs its operations into one
/// field; an entry written by hand may carry a few operations of five fields each).
const MAX_FIELDS: usize = 64;

/// `XADD stream MAXLEN ~ max_len * field value …`, and with `min_ms` `XTRIM stream MINID ~ min_ms` in the same
/// pipeline.
pub(crate) async fn append<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    fields: &[(&str, &[u8])],
    max_len: u64,
    min_ms: Option<u64>,
) -> RedisResult<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    let Some(min_ms) = min_ms else {
        return cmd.exec_async(conn).await;
    };
    let mut pipe = redis::pipe();
    pipe.add_command(cmd).ignore();
    pipe.cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg("~")
        .arg(min_ms)
        .ignore();
    pipe.exec_async(conn).await
}

/// `XGROUP CREATE stream group 0 MKSTREAM ENTRIESREAD 0`: a group that reads the stream from its first entry
/// kept, knowing it has read none (Redis 7; before it, without the count); one that exists already is left as
/// it is (`Ok(false)`).
pub(crate) async fn join_group<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> RedisResult<bool> {
    let create = |counted: bool| {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM");
        if counted {
            cmd.arg("ENTRIESREAD").arg(0);
        }
        cmd
    };
    let mut made: RedisResult<()> = create(true).query_async(conn).await;
    if made.as_ref().is_err_and(|e| e.code() == Some("ERR")) {
        made = create(false).query_async(conn).await;
    }
    match made {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
        Err(e) => Err(e),
    }
}

/// `XREADGROUP GROUP group consumer COUNT count STREAMS stream 0`: this consumer's own entries delivered but not
/// acknowledged (those deleted since with nil fields).
pub(crate) async fn read_pending<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
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
        .arg("0")
        .query_async(conn)
        .await
}

/// New entries for a group, unless entries it was never given are gone: one script, so that the check and the
/// read see the same stream. `XINFO GROUPS` gives the group's last delivered id `L` and entries read `R`;
/// `XINFO STREAM` the first entry kept `F`, the entries ever added `A`, the length `N` and the greatest id ever
/// deleted by `XDEL` `D` (Redis 7). Lost, unless the caller accepted a loss up to that point already
/// (`ARGV[4]`):
/// - trimmed unread: `F` after `L` (every entry kept is new to the group) and more were added since the group
///   read than are kept (`A - R > N`; `R` unknown counts as more). Once accepted, the group's count is set
///   right (`XGROUP SETID … ENTRIESREAD A - N`): its lag is true again, and the loss is not found again;
/// - deleted unread: `D` after `L`;
/// - the group given less than what the caller applied (`ARGV[5]`): it was made again, what it was given
///   before is unknown;
/// - the group past the last entry ever made (`XGROUP SETID` to the future): it would be given nothing until
///   the stream caught up. Known by the last entry made; once accepted, the group is set back to it.
///
/// Ids are compared as two decimal numbers, by length then text (no float rounding). Replies
/// `{'lost', L, the id the loss is known by}` or `{'read', XREADGROUP's reply, the entries still waiting after
/// the read or false}` — none when the read reached the last entry made, whatever the group's count says.
static READ_NEW_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local function field(reply, name)
  for i = 1, #reply - 1, 2 do
    if reply[i] == name then return reply[i + 1] end
  end
  return nil
end
local function num_gt(a, b)
  a = string.gsub(a, '^0+', '') b = string.gsub(b, '^0+', '')
  if #a ~= #b then return #a > #b end
  return a > b
end
local function newer(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  if am ~= bm then return num_gt(am, bm) end
  return num_gt(as, bs)
end
local last, read, lag = nil, false, false
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(g, 'name') == ARGV[1] then
    last = field(g, 'last-delivered-id')
    read = field(g, 'entries-read') or false
    lag = field(g, 'lag') or false
  end
end
if not last then
  return redis.error_reply('NOGROUP No such consumer group ' .. ARGV[1] .. ' for key name ' .. KEYS[1])
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local lastgen = field(info, 'last-generated-id')
if lastgen and newer(last, lastgen) then
  if newer(lastgen, ARGV[4]) then return {'lost', lastgen, lastgen} end
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], lastgen)
  last = lastgen
end
local added, length = field(info, 'entries-added'), field(info, 'length')
local first = field(info, 'first-entry')
first = (first and first[1]) or field(info, 'last-generated-id')
if added and first and newer(first, last) and (not read or added - read > length) then
  if newer(first, ARGV[4]) then return {'lost', last, first} end
  pcall(redis.call, 'XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', added - length)
  lag = length
end
local deleted = field(info, 'max-deleted-entry-id')
if deleted and newer(deleted, last) and newer(deleted, ARGV[4]) then
  return {'lost', last, deleted}
end
if newer(ARGV[5], last) then
  return {'lost', last, ARGV[5]}
end
local entries = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local read_last = last
if entries and entries[1] and #entries[1][2] > 0 then
  read_last = entries[1][2][#entries[1][2]][1]
  if lag then lag = lag - #entries[1][2] end
end
-- Caught up with the last entry made: nothing waits, whatever the counts say (an XDEL leaves them wrong).
if read_last == field(info, 'last-generated-id') then lag = 0 end
if lag and lag < 0 then lag = 0 end
return {'read', entries, lag}
",
    )
});

/// [`READ_NEW_SCRIPT`] on `stream` for `consumer` of `group`.
pub(crate) async fn read_new<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
    accepted: &str,
    applied: &str,
) -> RedisResult<Value> {
    READ_NEW_SCRIPT
        .key(stream)
        .arg(group)
        .arg(consumer)
        .arg(count)
        .arg(accepted)
        .arg(applied)
        .invoke_async(conn)
        .await
}

/// What [`read_new`] answered.
pub(crate) fn new_entries(reply: Value) -> Result<NewEntries, BackendError> {
    let Value::Array(parts) = reply else {
        return Err(bad("the read of new entries", &reply));
    };
    let mut parts = parts.into_iter();
    let kind = parts.next().and_then(bulk);
    match kind.as_deref() {
        Some(b"lost") => {
            let mut id = || {
                parts
                    .next()
                    .and_then(bulk)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| BackendError::Other("a lost range without its ids".into()))
            };
            let (last, deleted) = (id()?, id()?);
            Ok(NewEntries {
                lost: Some((last, deleted)),
                ..NewEntries::default()
            })
        }
        Some(b"read") => {
            let entries = read_entries(parts.next().unwrap_or(Value::Nil))?;
            let behind = match parts.next() {
                Some(Value::Int(lag)) => u64::try_from(lag).ok(),
                _ => None,
            };
            Ok(NewEntries {
                entries,
                lost: None,
                behind,
            })
        }
        _ => Err(BackendError::Other(
            "the read of new entries answered neither entries nor a loss".into(),
        )),
    }
}

/// `GET key`: a reader's note, if kept.
pub(crate) async fn recorded<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
) -> RedisResult<Option<Vec<u8>>> {
    redis::cmd("GET").arg(key).query_async(conn).await
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

/// The entries of an `XAUTOCLAIM` reply: `[next id, entries, deleted ids]` (the last since Redis 7: entries
/// pending that are gone from the stream, each returned as a deleted entry).
pub(crate) fn claimed_entries(reply: Value) -> Result<Vec<StreamEntry>, BackendError> {
    let Value::Array(parts) = reply else {
        return Err(bad("XAUTOCLAIM", &reply));
    };
    let mut parts = parts.into_iter().skip(1);
    let mut out = entries_of(parts.next().ok_or_else(|| bad("XAUTOCLAIM", &Value::Nil))?)?;
    if let Some(Value::Array(gone)) = parts.next() {
        for id in gone {
            let id = bulk(id)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| BackendError::Other("a deleted entry id that is not text".into()))?;
            out.push(StreamEntry {
                id,
                fields: Vec::new(),
                deleted: true,
            });
        }
    }
    Ok(out)
}

/// An array of `[id, [field, value, …]]`; an entry deleted meanwhile (its fields nil) is marked so.
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
            Value::Nil => {
                out.push(StreamEntry {
                    id,
                    fields: Vec::new(),
                    deleted: true,
                });
                continue;
            }
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
        out.push(StreamEntry {
            id,
            fields,
            deleted: false,
        });
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

//! The versioned write another region's value is applied with (design 0026): one script on the entry's slot
//! that writes only when the generations are the ones the envelope was stamped with and the copy held — one
//! no invalidation hid — is older than the incoming version, and no invalidation made or applied here since
//! that version marks the scope's type.

use std::time::Duration;

use fernando_cache_keys::GenerationKeys;
use redis::{RedisResult, Value, aio::ConnectionLike};

use crate::backend::{BackendError, Versioned};

/// `KEYS`: the entry, its scope's and its type's generation keys, the type's invalidation mark. `ARGV`: the
/// envelope, its TTL in ms, the generations' stored values the envelope was stamped for (`''` for none), the
/// 16 bytes of the stamped generations as the header holds them, the 16 bytes of the incoming version.
///
/// The mark is looked at only when no copy is held that the generations still show: a copy held and shown
/// has outlived every invalidation since it was written (one that reached its key deleted or hid it), so a
/// newer value of that key is no older than what those invalidations left — even when another key of the
/// scope's type was invalidated after it was written (a mark is per scope and type).
///
/// The header's layout (codec/header.rs), 1-based as Lua counts: `FC` and the format (2) at 1–3, the flags at
/// 5, the generations at 14–29, the version section at 50–65 when flag 0x20 is set. Versions are compared
/// byte by byte (big-endian: their byte order is their order), never with Lua's `<` on strings, which follows
/// the server's collation locale.
///
/// Replies `{'gens', scope's, type's}` (stamped for other generations: stamp again), `{'held', version}` (the
/// copy held is as new or newer; its version), `{'marked', version}` (an invalidation here is as new or
/// newer), or `{'stored'}`.
static PUT_NEWER_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local function cmp(a, b)
  for i = 1, 16 do
    local x, y = string.byte(a, i) or 0, string.byte(b, i) or 0
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end
local g = redis.call('MGET', KEYS[2], KEYS[3])
local gs, gt = g[1] or '', g[2] or ''
if gs ~= ARGV[3] or gt ~= ARGV[4] then return {'gens', gs, gt} end
local held = redis.call('GETRANGE', KEYS[1], 0, 64)
local current = #held >= 49 and string.sub(held, 1, 3) == 'FC\2' and string.sub(held, 14, 29) == ARGV[5]
if current and #held == 65 and string.byte(held, 5) % 64 >= 32 then
  local version = string.sub(held, 50, 65)
  if cmp(version, ARGV[6]) >= 0 then return {'held', version} end
end
if not current then
  local mark = redis.call('GET', KEYS[4])
  if mark and #mark == 16 and cmp(mark, ARGV[6]) >= 0 then return {'marked', mark} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'stored'}
",
    )
});

/// `KEYS`: an invalidation mark. `ARGV`: a version (16 bytes), a TTL in ms. Sets the mark to the version unless
/// it holds one as new or newer — a mark never goes back — and either way gives it the TTL: a mark that was
/// written without one (by hand) lives no longer than one written here.
static MARK_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local m = redis.call('GET', KEYS[1])
if m and #m == 16 then
  for i = 1, 16 do
    local x, y = string.byte(m, i), string.byte(ARGV[1], i) or 0
    if x < y then break end
    if x > y or i == 16 then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// [`MARK_SCRIPT`] on `mark`.
pub(crate) async fn mark<C: ConnectionLike + Send>(
    conn: &mut C,
    mark: &str,
    version: &[u8; 16],
    ttl: Duration,
) -> RedisResult<()> {
    MARK_SCRIPT
        .key(mark)
        .arg(&version[..])
        .arg(super::millis(ttl))
        .invoke_async::<i64>(conn)
        .await
        .map(drop)
}

/// [`PUT_NEWER_SCRIPT`] for the entry `key`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn put_newer<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    generations: &GenerationKeys,
    mark: &str,
    expected: [&[u8]; 2],
    stamped: [u64; 2],
    version: &[u8; 16],
) -> RedisResult<Value> {
    let mut stamped_bytes = [0u8; 16];
    stamped_bytes[..8].copy_from_slice(&stamped[0].to_le_bytes());
    stamped_bytes[8..].copy_from_slice(&stamped[1].to_le_bytes());
    PUT_NEWER_SCRIPT
        .key(key)
        .key(generations.scope())
        .key(generations.cache_type())
        .key(mark)
        .arg(value)
        .arg(super::millis(ttl))
        .arg(expected[0])
        .arg(expected[1])
        .arg(&stamped_bytes[..])
        .arg(&version[..])
        .invoke_async(conn)
        .await
}

/// The script's reply, read; anything else is no reply of it.
pub(crate) fn versioned(reply: Value) -> Result<Versioned, BackendError> {
    let bad = || BackendError::Other("the versioned write's reply is not one it gives".into());
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let version = |v: Option<&Value>| {
        v.and_then(text)
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
    };
    match (items.first().and_then(text).as_deref(), items.len()) {
        (Some(b"stored"), 1) => Ok(Versioned::Stored),
        (Some(b"held"), 2) => version(items.get(1)).map(Versioned::Held).ok_or_else(bad),
        (Some(b"marked"), 2) => version(items.get(1)).map(Versioned::Marked).ok_or_else(bad),
        (Some(b"gens"), 3) => match (text(&items[1]), text(&items[2])) {
            (Some(scope), Some(cache_type)) => Ok(Versioned::Generations([scope, cache_type])),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

//! Listing keys with what a tenant's export needs of each — its type, size, remaining life and first bytes —
//! in one script per batch of keys of one slot, after the `SCAN` step that found them (`Storage::scan`).

use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use crate::backend::{BackendError, KeyTtl, Listed};

/// Per key: its type, its length (a string's; -1 otherwise), its remaining life (`PTTL`) and its first bytes
/// (`ARGV[1]`: how many; -1: all; 0: none), flattened four by four. Every key of a call shares one slot.
const LIST: &str = "local out = {} \
     local n = tonumber(ARGV[1]) \
     for _, k in ipairs(KEYS) do \
       local t = redis.call('TYPE', k)['ok'] \
       local size, head = -1, '' \
       if t == 'string' then \
         size = redis.call('STRLEN', k) \
         if n > 0 then head = redis.call('GETRANGE', k, 0, n - 1) \
         elseif n < 0 then head = redis.call('GETRANGE', k, 0, -1) end \
       end \
       out[#out + 1] = t \
       out[#out + 1] = size \
       out[#out + 1] = redis.call('PTTL', k) \
       out[#out + 1] = head \
     end \
     return out";

/// The script listing `keys` (of one slot) with the first `read` bytes of each value (`usize::MAX`: all).
pub(crate) fn list_cmd(keys: &[&str], read: usize) -> redis::Cmd {
    let read: i64 = if read == usize::MAX {
        -1
    } else {
        i64::try_from(read).unwrap_or(-1)
    };
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(LIST).arg(keys.len()).arg(keys).arg(read);
    cmd
}

/// The keys [`list_cmd`] listed, as its reply says; a key gone since the `SCAN` is left out.
pub(crate) fn listed(keys: &[&str], reply: Value) -> Result<Vec<Listed>, BackendError> {
    let bad = || BackendError::Other("the key listing script answered something else".to_owned());
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    if items.len() != keys.len() * 4 {
        return Err(bad());
    }
    let mut items = items.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let (Some(kind), Some(size), Some(ttl), Some(head)) =
            (items.next(), items.next(), items.next(), items.next())
        else {
            return Err(bad());
        };
        let kind = text(&kind).ok_or_else(bad)?;
        let ttl = match int(&ttl).ok_or_else(bad)? {
            -2 => continue,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        };
        if kind == "none" {
            continue;
        }
        let (size, value) = if kind == "string" {
            let size = u64::try_from(int(&size).ok_or_else(bad)?).unwrap_or(0);
            (Some(size), Some(bytes(head)))
        } else {
            (None, None)
        };
        out.push(Listed {
            key: (*key).to_owned(),
            ttl,
            size,
            value,
        });
    }
    Ok(out)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn bytes(v: Value) -> Bytes {
    match v {
        Value::BulkString(b) => Bytes::from(b),
        _ => Bytes::new(),
    }
}

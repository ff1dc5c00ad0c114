//! A tenant's export (issue 31, item 4): what the backend holds for it, entry by entry — the cache type, the
//! key as the application gave it, the bytes stored, how long ago it was written and how long it is kept —
//! and, when asked, the envelope exactly as stored: a sealed value stays sealed, nothing is decrypted or
//! decoded. A page at a time (the backend's [`Storage::scan`](crate::Storage::scan)), so an export of any size
//! holds one page in memory.

use std::time::Duration;

use bytes::Bytes;
use fernando_cache_keys::{AsScope, KeyBuilder, TenantId, escape_segment, unescape_segment};
use tracing::{Instrument, debug_span};

use super::{Store, erasure::Area};
use crate::{KeyTtl, Listed, ScanCursor, StoreError, codec};

/// One entry a tenant holds, as its export tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldEntry {
    /// The cache type (`ocr_result`, `api_response`…); empty for a key of the tenant of no known shape, whose
    /// [`HeldEntry::key`] is then the whole key.
    pub cache_type: String,
    /// The specific key as the application gave it (unescaped).
    pub key: String,
    /// Bytes stored: the envelope as written (compressed, sealed, tags included); `None` for a key that holds
    /// no value (a bounded set of the HTTP layer).
    pub size: Option<u64>,
    /// How long ago it was written, as its envelope says.
    pub age: Option<Duration>,
    /// How long the backend keeps it (its TTL and `max_stale`); `None` for a key without an expiry.
    pub expires_in: Option<Duration>,
    /// Whether its value is sealed (design 0018).
    pub sealed: bool,
    /// The envelope as stored, when the export asked for values; a sealed one as sealed.
    pub envelope: Option<Bytes>,
}

/// Where an export goes on from: `ExportCursor::default()` at first, then each page's [`ExportPage::next`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportCursor {
    /// Which of the tenant's entry globs (one tag, then its shards).
    glob: usize,
    scan: ScanCursor,
}

/// A page of a tenant's export.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportPage {
    /// The entries of this page (possibly none, with more pages to come).
    pub entries: Vec<HeldEntry>,
    /// Where the next page starts; `None` after the last one.
    pub next: Option<ExportCursor>,
}

impl Store {
    /// One page of what the backend holds for `tenant`; public as [`super::Admin::export_tenant`].
    pub(super) async fn export_tenant(
        &self,
        tenant: &TenantId,
        from: &ExportCursor,
        count: usize,
        values: bool,
    ) -> Result<ExportPage, StoreError> {
        let keys = &self.inner.keys;
        // An over-long tenant is refused as every call refuses it.
        keys.quota_keys(tenant)?;
        let globs: Vec<String> = keys
            .tenant_globs(tenant)
            .into_iter()
            .filter(|g| Area::of(keys, g) == Area::Entries)
            .collect();
        let Some(glob) = globs.get(from.glob) else {
            return Ok(ExportPage::default());
        };
        // Without values, a header's worth: when it was written, whether it is sealed.
        let read = if values {
            usize::MAX
        } else {
            codec::HEADER_LEN
        };
        // An operator's listing: on the tenant's own deployment when it has one; an `acl` tenant's user may not
        // SCAN (design 0023), so its keys are listed by the shared user, whose deployment holds them.
        let lane = self.lane(tenant.as_scope());
        let lane = self.own_users_lane(&lane);
        let page = self
            .call(
                lane,
                lane.storage().scan(glob, &from.scan, count.max(1), read),
            )
            .instrument(debug_span!("cache.export_tenant", tenant = tenant.as_str()))
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "export_tenant",
                source,
            })?;
        let next = match page.next {
            Some(scan) => Some(ExportCursor {
                glob: from.glob,
                scan,
            }),
            None if from.glob + 1 < globs.len() => Some(ExportCursor {
                glob: from.glob + 1,
                scan: ScanCursor::default(),
            }),
            None => None,
        };
        let now = codec::now_ms();
        let entries = page
            .keys
            .into_iter()
            .filter_map(|listed| held(keys, tenant, listed, values, now))
            .collect();
        Ok(ExportPage { entries, next })
    }
}

/// A listed key as its export tells it (`None`: gone since it was listed).
fn held(
    keys: &KeyBuilder,
    tenant: &TenantId,
    listed: Listed,
    values: bool,
    now_ms: u64,
) -> Option<HeldEntry> {
    let expires_in = match listed.ttl {
        KeyTtl::Missing => return None,
        KeyTtl::Persistent => None,
        KeyTtl::Expires(left) => Some(left),
    };
    let (cache_type, key) = logical_key(keys, tenant, &listed.key);
    let head = listed.value.as_deref().and_then(codec::written_at);
    Some(HeldEntry {
        cache_type,
        key,
        size: listed.size,
        age: head.map(|(at, _)| Duration::from_millis(now_ms.saturating_sub(at))),
        expires_in,
        sealed: head.is_some_and(|(_, sealed)| sealed),
        envelope: if values { listed.value } else { None },
    })
}

/// The cache type and the specific key (unescaped) of one of `tenant`'s entry keys —
/// `{prefix}{tenant_<id>}:<type>:<key>`, or a shard's `{tenant_<id>%s<n>}:…` — or, for a key of another shape,
/// no type and the whole key.
fn logical_key(keys: &KeyBuilder, tenant: &TenantId, full: &str) -> (String, String) {
    let whole = || (String::new(), full.to_owned());
    let tag = format!("{{tenant_{}", escape_segment(tenant.as_str()));
    let Some(rest) = full
        .strip_prefix(keys.prefix())
        .and_then(|r| r.strip_prefix(tag.as_str()))
    else {
        return whole();
    };
    let rest = match rest.strip_prefix("}:") {
        Some(r) => r,
        None => match rest.strip_prefix("%s").and_then(|r| r.split_once("}:")) {
            Some((shard, r)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => r,
            _ => return whole(),
        },
    };
    // The specific key is escaped (it holds no `:`), so the last `:` ends the type.
    let Some((cache_type, specific)) = rest.rsplit_once(':') else {
        return whole();
    };
    match unescape_segment(specific) {
        Ok(key) => (cache_type.to_owned(), key.into_owned()),
        Err(_) => whole(),
    }
}

#[cfg(test)]
mod tests {
    use fernando_cache_config::{CacheType, Environment};

    use super::*;

    #[test]
    fn entry_keys_read_back_as_the_type_and_key_the_application_gave() {
        let keys = KeyBuilder::new("fernando", Environment::Production, 128);
        for (tenant, key) in [
            ("acme", "user:1"),
            ("a}b", "50%: off"),
            ("%s1", "x"),
            ("acme", ""),
        ] {
            let t = TenantId::new(tenant).unwrap();
            let full = keys.key(&t, &CacheType::OCR_RESULT, key).unwrap();
            assert_eq!(
                logical_key(&keys, &t, full.as_str()),
                ("ocr_result".to_owned(), key.to_owned()),
                "{tenant} {key}"
            );
        }
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(
            logical_key(
                &keys,
                &acme,
                "fernando:production:{tenant_acme%s3}:session:u%3A1"
            ),
            ("session".to_owned(), "u:1".to_owned())
        );
        // Not of the shape: given whole, never a panic.
        for odd in [
            "",
            "fernando:production:{tenant_acme}",
            "other:{tenant_acme}:x:y",
        ] {
            assert_eq!(
                logical_key(&keys, &acme, odd),
                (String::new(), odd.to_owned())
            );
        }
    }
}

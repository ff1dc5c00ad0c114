//! Revalidation (RFC 9111 §4.3): the conditional request that asks the origin whether a stored response still
//! holds, and how a `304 Not Modified` refreshes what was stored.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, header};

use crate::{entries::Target, layer::Config};

/// Whether a stored response carries a validator the origin can be asked about.
pub(crate) fn has_validators(stored: &HeaderMap) -> bool {
    stored.contains_key(header::ETAG) || stored.contains_key(header::LAST_MODIFIED)
}

/// Turns a request into the conditional request that revalidates `stored` (RFC 9111 §4.3.1): the stored
/// `ETag` as `If-None-Match` and the stored `Last-Modified` as `If-Modified-Since`. The client's own
/// conditions are replaced — they are about the client's copy, not ours, and the layer answers them itself
/// from the refreshed entry.
pub(crate) fn make_conditional(request: &mut HeaderMap, stored: &HeaderMap) {
    request.remove(header::IF_NONE_MATCH);
    request.remove(header::IF_MODIFIED_SINCE);
    request.remove(header::IF_RANGE);
    if let Some(etag) = stored.get(header::ETAG) {
        request.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.get(header::LAST_MODIFIED) {
        request.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
}

/// Fields a 304 never replaces in the stored response (RFC 9111 §3.2: they describe the stored content, not
/// the metadata being refreshed), beside hop-by-hop ones.
const KEPT_FROM_STORED: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// The stored response's headers refreshed by a 304 (RFC 9111 §4.3.4), or `None` when the 304 does not
/// select it: a strong `ETag` in the 304 must equal the stored one, a weak one must match it weakly, and a
/// 304 naming a different `Last-Modified` refreshes nothing.
pub(crate) fn refreshed(stored: &HeaderMap, not_modified: &HeaderMap) -> Option<HeaderMap> {
    let text = |h: &HeaderMap, n: header::HeaderName| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    let (old_etag, new_etag) = (text(stored, header::ETAG), text(not_modified, header::ETAG));
    let selected = match (&old_etag, &new_etag) {
        (_, Some(new)) if !new.starts_with("W/") => {
            old_etag.as_deref().map(|o| o.trim_start_matches("W/")) == Some(new.as_str())
        }
        (Some(old), Some(new)) => old.trim_start_matches("W/") == new.trim_start_matches("W/"),
        (None, Some(_)) => false,
        (_, None) => match text(not_modified, header::LAST_MODIFIED) {
            Some(new) => text(stored, header::LAST_MODIFIED).as_deref() == Some(new.as_str()),
            None => true,
        },
    };
    if !selected {
        return None;
    }
    let mut merged = stored.clone();
    for name in not_modified.keys() {
        if KEPT_FROM_STORED.contains(name) || !crate::policy::stored_header(name) {
            continue;
        }
        merged.remove(name);
        for v in not_modified.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    Some(merged)
}

/// Whether this request revalidates an entry behind a stale answer.
pub(crate) enum Claim {
    Claimed(RefreshGuard),
    Running,
    NoRuntime,
}

/// One revalidation behind a stale answer per entry in this process; released when dropped.
pub(crate) struct RefreshGuard {
    config: Arc<Config>,
    claim: String,
}

impl RefreshGuard {
    /// Claims the entry's revalidation, unless one is running or there is no runtime to run it on.
    pub(crate) fn claim(config: &Arc<Config>, target: &Target, key: &str) -> Claim {
        if tokio::runtime::Handle::try_current().is_err() {
            return Claim::NoRuntime;
        }
        let claim = format!("{}\u{0}{key}", target.scope.label());
        let mut running = config.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        if running.insert(claim.clone()) {
            Claim::Claimed(RefreshGuard {
                config: config.clone(),
                claim,
            })
        } else {
            Claim::Running
        }
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        let mut running = self
            .config
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.claim);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_conditional_request_carries_the_stored_validators_instead_of_the_clients() {
        let mut req = headers(&[("if-none-match", "\"client\""), ("accept", "text/plain")]);
        make_conditional(
            &mut req,
            &headers(&[
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 01 Nov 2026 10:00:00 GMT"),
            ]),
        );
        assert_eq!(req["if-none-match"], "\"v1\"");
        assert_eq!(req["if-modified-since"], "Sun, 01 Nov 2026 10:00:00 GMT");
        assert_eq!(req["accept"], "text/plain");
    }

    #[test]
    fn a_304_refreshes_the_stored_headers_it_selects_and_nothing_else() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=1"),
            ("content-length", "5"),
            ("x-kept", "yes"),
        ]);
        let merged = refreshed(
            &stored,
            &headers(&[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("connection", "close"),
            ]),
        )
        .unwrap();
        assert_eq!(merged["cache-control"], "max-age=60");
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["x-kept"], "yes");
        assert!(!merged.contains_key("connection"));
        assert!(refreshed(&stored, &headers(&[("etag", "\"v2\"")])).is_none());
        assert!(refreshed(&stored, &headers(&[("etag", "W/\"v1\"")])).is_some());
        assert!(refreshed(&headers(&[]), &headers(&[("etag", "\"v1\"")])).is_none());
        let dated = headers(&[("last-modified", "Sun, 01 Nov 2026 10:00:00 GMT")]);
        assert!(refreshed(&dated, &dated).is_some());
        assert!(
            refreshed(
                &dated,
                &headers(&[("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT")])
            )
            .is_none()
        );
        assert!(refreshed(&dated, &headers(&[])).is_some());
    }
}

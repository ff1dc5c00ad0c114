//! RFC 9111 shared-cache rules: `Cache-Control` parsing, whether a request may be answered from the cache,
//! and whether a response may be stored (and for how long).

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, header};

/// The directives of one or more `Cache-Control` headers (and `Pragma: no-cache`) that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
}

impl CacheControl {
    pub(crate) fn parse(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            // A header that is not visible ASCII is ignored, as if absent, except that it cannot relax anything.
            let Ok(text) = value.to_str() else {
                cc.no_store = true;
                continue;
            };
            for directive in split_directives(text) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    // `no-cache="Set-Cookie"` restricts fields; treat every form as no-cache (stricter).
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    // An unparsable age is treated as zero (RFC 9111 §1.2.2): stale, never fresher.
                    "max-age" => cc.max_age = Some(seconds().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(seconds().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        if headers.get_all(header::PRAGMA).iter().any(|v| {
            v.to_str()
                .is_ok_and(|t| t.to_ascii_lowercase().contains("no-cache"))
        }) && headers.get(header::CACHE_CONTROL).is_none()
        {
            cc.no_cache = true;
        }
        cc
    }
}

/// Splits on commas outside quoted strings.
fn split_directives(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// What the cache may do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestUse {
    /// Serve from the cache, and store the response on a miss.
    LookupAndStore,
    /// Do not serve from the cache (`no-cache`, `max-age=0`), but the fresh response may be stored.
    StoreOnly,
    /// Neither (`no-store`).
    Bypass,
}

pub(crate) fn request_use(method: &Method, headers: &HeaderMap) -> RequestUse {
    if method != Method::GET {
        return RequestUse::Bypass;
    }
    // A range request would need partial content handling; it goes to the origin.
    if headers.contains_key(header::RANGE) {
        return RequestUse::Bypass;
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store {
        RequestUse::Bypass
    } else if cc.no_cache || cc.max_age == Some(0) {
        RequestUse::StoreOnly
    } else {
        RequestUse::LookupAndStore
    }
}

/// Status codes a shared cache may store without explicit freshness (RFC 9110 §15.1, "heuristically
/// cacheable"), minus 501: no 5xx is ever stored, nor partial content.
pub(crate) fn storable_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414
    )
}

/// Why a response was not stored (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    Status,
    NoStore,
    Private,
    NoCache,
    ZeroAge,
    VaryStar,
    Authorization,
    SetCookie,
}

/// Whether a response may be stored by a shared cache, and its TTL: the route's, shortened by `s-maxage`
/// (or `max-age`).
pub(crate) fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    request_had_authorization: bool,
    route_ttl: Duration,
) -> Result<Duration, NotStored> {
    if !storable_status(status) {
        return Err(NotStored::Status);
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    // This cache does not revalidate, so a response that must be revalidated before each use is not kept.
    if cc.no_cache {
        return Err(NotStored::NoCache);
    }
    if headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map_or(true, |t| t.split(',').any(|f| f.trim() == "*"))
    }) {
        return Err(NotStored::VaryStar);
    }
    // RFC 9111 §3.5: a response to an authorized request is stored only when it says so explicitly.
    if request_had_authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if headers.contains_key(header::SET_COOKIE) && !cc.public {
        return Err(NotStored::SetCookie);
    }
    let ttl = match cc.s_maxage.or(cc.max_age) {
        Some(0) => return Err(NotStored::ZeroAge),
        Some(s) => route_ttl.min(Duration::from_secs(s)),
        None => route_ttl,
    };
    Ok(ttl)
}

/// Whether an unsafe request's response means the resource changed (RFC 9111 §4.4: a 2xx or 3xx).
pub(crate) fn invalidates(method: &Method, status: StatusCode) -> bool {
    !method.is_safe() && (status.is_success() || status.is_redirection())
}

/// Headers never stored with a response: hop-by-hop fields, and `Set-Cookie` (a cookie is for the client
/// that caused the response, never for the next one).
pub(crate) fn stored_header(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "set-cookie"
            | "age"
            | "x-cache"
    )
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
    fn directives_parse_across_headers_quotes_and_case() {
        let cc = CacheControl::parse(&headers(&[
            ("cache-control", "Public, max-age=60"),
            (
                "cache-control",
                "no-cache=\"set-cookie, x-a\", s-maxage=\"30\"",
            ),
        ]));
        assert!(cc.public && cc.no_cache);
        assert_eq!((cc.max_age, cc.s_maxage), (Some(60), Some(30)));
        assert_eq!(
            CacheControl::parse(&headers(&[("cache-control", "max-age=abc")])).max_age,
            Some(0)
        );
        assert!(CacheControl::parse(&headers(&[("pragma", "no-cache")])).no_cache);
    }

    #[test]
    fn storability_follows_rfc_9111() {
        let ttl = Duration::from_secs(300);
        let ok = StatusCode::OK;
        assert_eq!(storable(ok, &headers(&[]), false, ttl), Ok(ttl));
        assert_eq!(
            storable(ok, &headers(&[("cache-control", "max-age=10")]), false, ttl),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            storable(
                ok,
                &headers(&[("cache-control", "max-age=10, s-maxage=20")]),
                false,
                ttl
            ),
            Ok(Duration::from_secs(20))
        );
        let refused = [
            (
                StatusCode::PARTIAL_CONTENT,
                &[][..],
                false,
                NotStored::Status,
            ),
            (StatusCode::BAD_GATEWAY, &[][..], false, NotStored::Status),
            (
                ok,
                &[("cache-control", "no-store")][..],
                false,
                NotStored::NoStore,
            ),
            (
                ok,
                &[("cache-control", "private")][..],
                false,
                NotStored::Private,
            ),
            (
                ok,
                &[("cache-control", "no-cache")][..],
                false,
                NotStored::NoCache,
            ),
            (
                ok,
                &[("cache-control", "s-maxage=0")][..],
                false,
                NotStored::ZeroAge,
            ),
            (ok, &[("vary", "accept, *")][..], false, NotStored::VaryStar),
            (ok, &[][..], true, NotStored::Authorization),
            (
                ok,
                &[("set-cookie", "sid=1")][..],
                false,
                NotStored::SetCookie,
            ),
        ];
        for (status, h, auth, why) in refused {
            assert_eq!(
                storable(status, &headers(h), auth, ttl),
                Err(why),
                "{status} {h:?}"
            );
        }
        assert!(storable(ok, &headers(&[("cache-control", "public")]), true, ttl).is_ok());
        assert!(storable(ok, &headers(&[("cache-control", "s-maxage=5")]), true, ttl).is_ok());
        assert!(
            storable(
                ok,
                &headers(&[("set-cookie", "a=b"), ("cache-control", "public")]),
                false,
                ttl
            )
            .is_ok()
        );
    }

    #[test]
    fn requests_choose_lookup_store_or_bypass() {
        let get = Method::GET;
        assert_eq!(request_use(&get, &headers(&[])), RequestUse::LookupAndStore);
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "no-cache")])),
            RequestUse::StoreOnly
        );
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "max-age=0")])),
            RequestUse::StoreOnly
        );
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "no-store")])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&get, &headers(&[("range", "bytes=0-1")])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&Method::POST, &headers(&[])),
            RequestUse::Bypass
        );
        assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
        assert!(!invalidates(&Method::POST, StatusCode::BAD_REQUEST));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }
}

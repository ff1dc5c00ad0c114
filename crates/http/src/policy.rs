//! RFC 9111 shared-cache rules around freshness (which [`crate::freshness`] judges): `Cache-Control`
//! parsing, whether a request may use the cache at all, which statuses are ever stored, which unsafe responses
//! invalidate, and which headers are never stored.

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
    /// A request's `min-fresh`.
    pub(crate) min_fresh: Option<u64>,
    /// RFC 5861: how long after going stale the response may still be served while it is revalidated.
    pub(crate) stale_while_revalidate: Option<u64>,
    /// RFC 5861: how long after going stale the response may still be served when the origin fails.
    pub(crate) stale_if_error: Option<u64>,
    /// A request's `only-if-cached`: answer from the cache or with 504, never from the origin.
    pub(crate) only_if_cached: bool,
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
                    "only-if-cached" => cc.only_if_cached = true,
                    // An unparsable age is treated as zero (RFC 9111 §1.2.2): stale, never fresher.
                    "max-age" => cc.max_age = Some(seconds().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(seconds().unwrap_or(0)),
                    "min-fresh" => cc.min_fresh = Some(seconds().unwrap_or(0)),
                    // An unparsable extension grants nothing.
                    "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                    "stale-if-error" => cc.stale_if_error = seconds(),
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
    /// Ask the service even about a fresh entry (`no-cache`, `max-age=0`) — revalidating it when it has a
    /// validator — and store what it answers.
    StoreOnly,
    /// Neither (`no-store`).
    Bypass,
    /// Only from the cache (`only-if-cached`): a miss is a 504, the origin is never asked.
    CacheOnly,
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
    if cc.only_if_cached {
        RequestUse::CacheOnly
    } else if cc.no_store {
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

/// Whether a client's conditional `GET` is answered 304 by the stored response (RFC 9110 §13.1.2–13.1.3):
/// `If-None-Match` by weak comparison of entity tags (`*` matches any), else `If-Modified-Since` against the
/// stored `Last-Modified`. A malformed date is ignored, as the RFC asks.
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let inm: Vec<&str> = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if !inm.is_empty() {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return inm.iter().any(|t| *t == "*" || weak(t) == weak(etag));
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = stored
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((since, modified), (Some(s), Some(m)) if m <= s)
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
        let cc = CacheControl::parse(&headers(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=\"600\", min-fresh=5",
        )]));
        assert_eq!(
            (cc.stale_while_revalidate, cc.stale_if_error, cc.min_fresh),
            (Some(30), Some(600), Some(5))
        );
        assert_eq!(
            CacheControl::parse(&headers(&[("cache-control", "stale-if-error=soon")]))
                .stale_if_error,
            None
        );
    }

    #[test]
    fn conditional_requests_match_by_weak_etag_then_by_date() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 01 Nov 2026 10:00:00 GMT"),
        ]);
        let nm = |h: &[(&'static str, &'static str)]| not_modified(&headers(h), &stored);
        assert!(nm(&[("if-none-match", "\"v1\"")]));
        assert!(nm(&[("if-none-match", "W/\"v1\"")]), "weak comparison");
        assert!(nm(&[("if-none-match", "\"v0\", \"v1\"")]));
        assert!(nm(&[("if-none-match", "*")]));
        assert!(!nm(&[("if-none-match", "\"v2\"")]));
        assert!(
            !nm(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT")
            ]),
            "If-None-Match decides when present"
        );
        assert!(nm(&[(
            "if-modified-since",
            "Mon, 02 Nov 2026 10:00:00 GMT"
        )]));
        assert!(nm(&[(
            "if-modified-since",
            "Sun, 01 Nov 2026 10:00:00 GMT"
        )]));
        assert!(!nm(&[(
            "if-modified-since",
            "Sat, 31 Oct 2026 10:00:00 GMT"
        )]));
        assert!(
            !nm(&[("if-modified-since", "yesterday")]),
            "a malformed date is ignored"
        );
        assert!(!nm(&[]));
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
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "only-if-cached")])),
            RequestUse::CacheOnly
        );
        assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
        assert!(!invalidates(&Method::POST, StatusCode::BAD_REQUEST));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }
}

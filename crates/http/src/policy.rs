//! RFC 9111 shared-cache rules around freshness (which [`crate::freshness`] judges): `Cache-Control`
//! parsing, whether a request may use the cache at all, which statuses are ever stored, the names a `Vary`
//! lists, which unsafe responses invalidate, and which headers are never stored.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

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

/// The `Cache-Control` fields of `headers` as RFC 9111 §5.2 reads them, as one field: directive names are
/// case-insensitive, so they are lowercased (`http-cache-semantics`, which decides storability, compares them
/// as written); arguments are kept as sent. Nothing unreadable may make a response more shareable than it would
/// be without it: a field that is not visible ASCII reads as `no-store`, and a freshness directive given twice
/// with different values reads as `=0` (§4.2.1 allows the first or stale; stale does not depend on order).
fn canonical_cache_control(headers: &HeaderMap) -> HeaderValue {
    let mut directives: Vec<(String, Option<&str>)> = Vec::new();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            directives.push(("no-store".to_owned(), None));
            continue;
        };
        for directive in split_directives(text) {
            directives.push(match directive.split_once('=') {
                // White space around `=` is not the directive's syntax (RFC 9111 §5.2): its argument cannot be
                // read, and an unreadable age reads as 0, never as the number written.
                Some((name, arg))
                    if name.ends_with([' ', '\t']) || arg.starts_with([' ', '\t']) =>
                {
                    (name.trim().to_ascii_lowercase(), Some("invalid"))
                }
                Some((name, arg)) => (name.trim().to_ascii_lowercase(), Some(arg.trim())),
                None => (directive.trim().to_ascii_lowercase(), None),
            });
        }
    }
    // An age that cannot be read is 0 (RFC 9111 §1.2.2: stale), never absent (which could leave room for more).
    for (name, arg) in &mut directives {
        if (name == "max-age" || name == "s-maxage")
            && !arg.is_some_and(|a| {
                let a = a.trim_matches('"');
                !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit())
            })
        {
            *arg = Some("0");
        }
    }
    for name in ["max-age", "s-maxage"] {
        let mut values = directives
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| *a);
        let first = values.next();
        if values.any(|a| a != first.flatten()) {
            directives.retain(|(n, _)| n != name);
            directives.push((name.to_owned(), Some("0")));
        }
    }
    let canonical: Vec<String> = directives
        .into_iter()
        .map(|(name, arg)| arg.map_or_else(|| name.clone(), |a| format!("{name}={a}")))
        .collect();
    // Visible ASCII in, visible ASCII out; the fallback is the strictest reading, never a relaxed one.
    HeaderValue::from_str(&canonical.join(", ")).unwrap_or(HeaderValue::from_static("no-store"))
}

/// RFC 9213 §2.1: `CDN-Cache-Control` is a Structured Field dictionary, and one that does not parse as such, or
/// whose known directives have the wrong type (`max-age="60"`), is ignored whole. The valid field as the
/// `Cache-Control` directives it stands for (unknown members dropped), or `None` when it must be ignored.
pub(crate) fn targeted_cache_control(values: &[HeaderValue]) -> Option<HeaderValue> {
    let mut joined = String::new();
    for v in values {
        let text = v.to_str().ok()?;
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(text);
    }
    let dict: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
    let mut directives = Vec::new();
    for (name, member) in &dict {
        let sfv::ListEntry::Item(item) = member else {
            continue;
        };
        let name = name.as_str();
        match (name, &item.bare_item) {
            (
                "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error",
                sfv::BareItem::Integer(n),
            ) => directives.push(format!("{name}={n}")),
            ("max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error", _) => {
                return None;
            }
            (
                "no-store" | "no-cache" | "private" | "public" | "must-revalidate"
                | "proxy-revalidate",
                sfv::BareItem::Boolean(true),
            ) => directives.push(name.to_owned()),
            (
                "no-store" | "no-cache" | "private" | "public" | "must-revalidate"
                | "proxy-revalidate",
                sfv::BareItem::Boolean(false),
            ) => {}
            // `no-cache` and `private` may name fields (a string or inner list in SF); read them whole.
            ("no-store" | "no-cache" | "private", _) => directives.push(name.to_owned()),
            ("public" | "must-revalidate" | "proxy-revalidate", _) => return None,
            _ => {}
        }
    }
    HeaderValue::from_str(&directives.join(", ")).ok()
}

/// The directive fields of `headers` (`Cache-Control`, `Pragma`) in their canonical form, the rest untouched:
/// what every judgement of this cache reads, so that no spelling of a directive decides differently.
pub(crate) fn canonical_directives(headers: &HeaderMap) -> HeaderMap {
    if !headers.contains_key(header::CACHE_CONTROL) && !headers.contains_key(header::PRAGMA) {
        return headers.clone();
    }
    let mut view = headers.clone();
    if headers.contains_key(header::CACHE_CONTROL) {
        view.insert(header::CACHE_CONTROL, canonical_cache_control(headers));
    }
    let pragma: Vec<HeaderValue> = headers
        .get_all(header::PRAGMA)
        .iter()
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|t| HeaderValue::from_str(&t.to_ascii_lowercase()).ok())
                .unwrap_or(HeaderValue::from_static("no-cache"))
        })
        .collect();
    view.remove(header::PRAGMA);
    for v in pragma {
        view.append(header::PRAGMA, v);
    }
    view
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

/// What the cache may do for a request of `method` with `headers`. Only `GET` and `HEAD` use it: a `HEAD` is
/// answered from what a `GET` stored (RFC 9111 §4) and stores nothing itself (`crate::head`).
pub(crate) fn request_use(method: &Method, headers: &HeaderMap) -> RequestUse {
    if method != Method::GET && method != Method::HEAD {
        return RequestUse::Bypass;
    }
    // A range request would need partial content handling; it goes to the origin.
    if headers.contains_key(header::RANGE) {
        return RequestUse::Bypass;
    }
    // Preconditions the cache does not evaluate itself: what the origin answers them (a 412, say) is this
    // client's alone, and no stored answer may stand in for the origin's evaluation. (`If-None-Match` and
    // `If-Modified-Since` the cache answers, and replaces with its own validators when it asks the origin.)
    if [
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ]
    .iter()
    .any(|h| headers.contains_key(h))
    {
        return RequestUse::Bypass;
    }
    // A GET with a body: the body reaches the service but is no part of the key, so what it changes must never
    // be stored for, or answered from, the same URL without it. It goes through, uncached.
    if has_body(headers) {
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

/// Whether a request announces a body (RFC 9112 §6.3: `Transfer-Encoding`, or a `Content-Length` other than 0;
/// an unreadable length counts as a body).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.to_str().map_or(true, |t| t.trim() != "0"))
}

/// Status codes a shared cache may store without explicit freshness (RFC 9110 §15.1, "heuristically
/// cacheable"), minus 501: no 5xx is stored on a heuristic lifetime.
pub(crate) fn heuristically_storable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414
    )
}

/// Status codes stored when the response states its own freshness (RFC 9111 §3: any final status this cache
/// understands): all but interim responses, partial content (ranges are not served from the cache) and 304
/// (which only refreshes a stored response).
pub(crate) fn storable_with_explicit_freshness(status: StatusCode) -> bool {
    status.as_u16() >= 200
        && status != StatusCode::PARTIAL_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// The status `http-cache-semantics` is shown for a stored response: the crate refuses statuses outside its
/// own short list even with explicit freshness, which RFC 9111 §3 allows; a status it does not know is
/// judged as a 200 — only once [`storable_with_explicit_freshness`] and an explicit lifetime admitted it.
pub(crate) fn judged_status(status: StatusCode) -> StatusCode {
    const UNDERSTOOD: [u16; 14] = [
        200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
    ];
    if UNDERSTOOD.contains(&status.as_u16()) {
        status
    } else {
        StatusCode::OK
    }
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

/// The `Vary` field names of a response, lowercased (a `*` was refused before).
pub(crate) fn vary_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether an unsafe request's response means the resource changed (RFC 9111 §4.4: a 2xx or 3xx).
pub(crate) fn invalidates(method: &Method, status: StatusCode) -> bool {
    !method.is_safe() && (status.is_success() || status.is_redirection())
}

/// Headers never stored with a response: hop-by-hop fields, `Set-Cookie` (a cookie is for the client that
/// caused the response, never for the next one), and `Content-Length` — the stored body's own length is sent
/// with it, so a length the service got wrong (or a framing it contradicted) is never replayed.
pub(crate) fn stored_header(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "content-length"
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
            request_use(&Method::HEAD, &headers(&[])),
            RequestUse::LookupAndStore,
            "a HEAD looks up what a GET stored"
        );
        assert_eq!(
            request_use(&Method::HEAD, &headers(&[("range", "bytes=0-1")])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&Method::OPTIONS, &headers(&[])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "only-if-cached")])),
            RequestUse::CacheOnly
        );
        for body in [
            &[("content-length", "5")][..],
            &[("transfer-encoding", "chunked")][..],
            &[("content-length", "x")][..],
        ] {
            assert_eq!(
                request_use(&get, &headers(body)),
                RequestUse::Bypass,
                "{body:?}"
            );
        }
        assert_eq!(
            request_use(&get, &headers(&[("content-length", "0")])),
            RequestUse::LookupAndStore
        );
        assert_eq!(
            request_use(&get, &headers(&[("cache-control", "No-Store")])),
            RequestUse::Bypass
        );
        assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
        assert!(!invalidates(&Method::POST, StatusCode::BAD_REQUEST));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }

    #[test]
    fn vary_names_are_lowercased_split_and_deduplicated() {
        let mut h = HeaderMap::new();
        h.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, accept"),
        );
        h.append(header::VARY, HeaderValue::from_static("ACCEPT"));
        assert_eq!(vary_names(&h), ["accept", "accept-language"]);
    }
}

//! Whether a response may be stored and whether a stored one may answer a request, judged by RFC 9111 through
//! the `http-cache-semantics` crate (freshness from `s-maxage`, `max-age` or `Expires` against `Date`, the
//! origin's `Age`, the request's `max-age`, `min-fresh` and `max-stale`), with RFC 9213's `CDN-Cache-Control`
//! taking the place of `Cache-Control` when an origin sends it.
//!
//! The route's TTL caps how long anything is kept; its heuristic lifetime (RFC 9111 §4.2.2) applies only to a
//! response that states no freshness at all. A stored response keeps what the judgement needs — when it
//! arrived, the age it arrived with, the heuristic it was given — never the request's headers (they may hold
//! credentials), and is judged again at every lookup.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use serde::{Deserialize, Serialize};

use crate::policy::{
    CacheControl, canonical_directives, heuristically_storable, judged_status,
    storable_with_explicit_freshness, targeted_cache_control,
};

/// RFC 9213's field for caches of a CDN — which a shared cache in front of an origin is.
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// What a stored response carries for judging its freshness again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Judgement {
    /// When the response arrived, in milliseconds since the Unix epoch.
    received_ms: u64,
    /// Its age on arrival: the larger of the origin's `Age` and the time since its `Date` (RFC 9111 §4.2.3).
    initial_age: u64,
    /// The heuristic lifetime it was given because it stated none, in seconds.
    heuristic: Option<u64>,
    /// Its freshness lifetime in milliseconds, as the policy computed it when the response arrived: what a
    /// request without directives is judged by (see [`judge`]'s fast path).
    lifetime_ms: u64,
    /// RFC 5861's `stale-while-revalidate`, in seconds (0 when absent).
    stale_while_revalidate: u64,
    /// RFC 5861's `stale-if-error`, in seconds (0 when absent).
    stale_if_error: u64,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale, whatever a request accepts.
    must_revalidate: bool,
}

impl Judgement {
    /// Whether a response this old and this far past its freshness may be served to this request while it is
    /// revalidated behind it. A request that states how fresh it needs the answer (`min-fresh`, or a `max-age`
    /// the response is older than) is revalidated before it is answered, as in `http-cache-semantics`: the
    /// origin's grace period never overrides what the client asked for.
    pub(crate) fn serves_while_revalidating(
        &self,
        age: u64,
        overdue: Duration,
        request: &HeaderMap,
    ) -> bool {
        if self.must_revalidate || overdue > Duration::from_secs(self.stale_while_revalidate) {
            return false;
        }
        if !request.contains_key(header::CACHE_CONTROL) {
            return true;
        }
        let asked = CacheControl::parse(request);
        asked.min_fresh.is_none() && asked.max_age.is_none_or(|max| age <= max)
    }

    /// Whether a response this far past its freshness may be served because the origin failed; a request's
    /// own `stale-if-error` widens what the response allows.
    pub(crate) fn serves_on_error(&self, overdue: Duration, request: &HeaderMap) -> bool {
        let asked = CacheControl::parse(request).stale_if_error.unwrap_or(0);
        !self.must_revalidate && overdue <= Duration::from_secs(self.stale_if_error.max(asked))
    }
}

/// What a stored response may do for a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answers the request, with this `Age` (seconds).
    Fresh(u64),
    /// The origin must be asked (or the stale response served as RFC 5861 allows): `age` in seconds, and how
    /// far past its freshness lifetime it is.
    Stale { age: u64, overdue: Duration },
}

/// Why a response was not stored (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    /// Partial content, a 5xx, or a status a shared cache does not store.
    Status,
    /// RFC 9111 forbids storing it (`no-store`, `private`, an authorized request without `public`, …).
    Forbidden,
    /// Stale on arrival, or fresh for no time at all (`no-cache`, `max-age=0`, a cookie, `Vary: *`).
    Stale,
}

/// A response that may be stored: how long to keep it and how to judge it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Storable {
    /// How long the entry is kept: its remaining freshness, capped by the route.
    pub(crate) ttl: Duration,
    pub(crate) judgement: Judgement,
    /// Explicitly shareable (`public`, `s-maxage`, `must-revalidate`): may answer authorized requests.
    pub(crate) for_authorized: bool,
}

fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        // The route's heuristic is applied instead (`heuristic`), so the crate's own stays out of the way.
        cache_heuristic: 0.0,
        ..CacheOptions::default()
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The response as this cache judges it: `CDN-Cache-Control` in place of `Cache-Control`, `Expires` and
/// `Pragma` when present; `Age` set to the age on arrival; the heuristic lifetime as a `max-age` when given.
fn judged_headers(headers: &HeaderMap, initial_age: u64, heuristic: Option<u64>) -> HeaderMap {
    let mut view = canonical_directives(headers);
    if let Some(expires) = view.get(header::EXPIRES)
        && !expires.to_str().is_ok_and(valid_http_date)
    {
        view.insert(header::EXPIRES, HeaderValue::from_static("0"));
    }
    let targeted: Vec<HeaderValue> = headers.get_all(CDN_CACHE_CONTROL).iter().cloned().collect();
    // An invalid targeted field is ignored whole (RFC 9213 §2.1), and `Cache-Control` decides.
    if let Some(cc) = (!targeted.is_empty())
        .then(|| targeted_cache_control(&targeted))
        .flatten()
    {
        view.remove(header::CACHE_CONTROL);
        view.remove(header::EXPIRES);
        view.remove(header::PRAGMA);
        view.append(header::CACHE_CONTROL, cc);
    }
    view.insert(header::AGE, HeaderValue::from(initial_age));
    if let Some(secs) = heuristic {
        add_heuristic(&mut view, secs);
    }
    view
}

/// States the heuristic lifetime of a response that states none, as the `max-age` the policy reads.
fn add_heuristic(view: &mut HeaderMap, secs: u64) {
    // Digits only: always a valid header value.
    let value = HeaderValue::from_str(&format!("max-age={secs}"))
        .unwrap_or(HeaderValue::from_static("max-age=0"));
    view.append(header::CACHE_CONTROL, value);
}

/// The greatest age (RFC 9111 §1.2.2: 2^31 seconds).
const MAX_AGE: u64 = 1 << 31;

/// Whether an `Expires` value is an HTTP-date as RFC 9110 §5.6.7 writes it: IMF-fixdate exactly (one space
/// between fields), or one of the two obsolete forms. Anything else is invalid and means "already expired"
/// (RFC 9111 §5.3), however leniently a date parser would read it.
fn valid_http_date(value: &str) -> bool {
    let Ok(at) = httpdate::parse_http_date(value) else {
        return false;
    };
    if value.contains(',') && !value.contains('-') {
        return httpdate::fmt_http_date(at) == value;
    }
    // rfc850-date (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime-date (`Sun Nov  6 08:49:37 1994`).
    !value.contains("   ") && !value.starts_with(' ') && !value.ends_with(' ')
}

/// The age a response arrives with (RFC 9111 §4.2.3): the larger of its `Age` and the time since its `Date`.
fn initial_age(headers: &HeaderMap, now: SystemTime) -> u64 {
    // RFC 9111 §5.1: the first member of the first line counts (parameters after `;` aside); one that is not
    // delta-seconds is ignored; an age past 2^31 is 2^31 (§1.2.2).
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|first| first.split(';').next().unwrap_or_default().trim())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .map_or(0, |t| t.parse::<u64>().map_or(MAX_AGE, |a| a.min(MAX_AGE)));
    let apparent = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|date| now.duration_since(date).ok())
        .map_or(0, |d| d.as_secs());
    age.max(apparent)
}

fn policy<B>(
    request: &Request<B>,
    status: StatusCode,
    view: HeaderMap,
    received: SystemTime,
) -> CachePolicy {
    let mut response = Response::new(());
    *response.status_mut() = judged_status(status);
    *response.headers_mut() = view;
    CachePolicy::new_options(request, &response, received, options())
}

/// Whether a response to `request` may be stored, and for how long: its freshness lifetime less its age,
/// capped by `cap`; `heuristic` is the lifetime of a response that states none.
pub(crate) fn storable(
    request: &http::request::Parts,
    status: StatusCode,
    headers: &HeaderMap,
    cap: Duration,
    heuristic: Duration,
    now: SystemTime,
) -> Result<Storable, NotStored> {
    if !storable_with_explicit_freshness(status) {
        return Err(NotStored::Status);
    }
    let age = initial_age(headers, now);
    // Judged with no age, the policy's time to live at arrival is the whole freshness lifetime.
    let mut view = judged_headers(headers, 0, None);
    let cc = CacheControl::parse(&view);
    let explicit =
        cc.max_age.is_some() || cc.s_maxage.is_some() || view.contains_key(header::EXPIRES);
    if !explicit && !heuristically_storable(status) {
        return Err(NotStored::Status);
    }
    let heuristic = (!explicit).then_some(heuristic.as_secs());
    if let Some(secs) = heuristic {
        add_heuristic(&mut view, secs);
    }
    let mut req = Request::new(());
    *req.method_mut() = request.method.clone();
    *req.uri_mut() = request.uri.clone();
    *req.headers_mut() = canonical_directives(&request.headers);
    // Judged from the arrival time as stored (whole milliseconds), so later judgements agree to the millisecond.
    let received = UNIX_EPOCH + Duration::from_millis(millis(now));
    let never_reused = view.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map_or(true, |v| v.split(',').any(|n| n.trim() == "*"))
    }) || (view.contains_key(header::SET_COOKIE) && !cc.public);
    let policy = policy(&req, status, view, received);
    if !policy.is_storable() {
        return Err(NotStored::Forbidden);
    }
    let explicitly_shared = cc.public || cc.s_maxage.is_some() || cc.must_revalidate;
    // RFC 9111 §3.5: a response to a request with credentials is shared only when it says it may be — and a
    // cookie is a credential as much as `Authorization` is (web-cache deception: `/account/x.css` answered
    // for a signed-in user, then stored by heuristic and served to everyone).
    let credentialed = request.headers.contains_key(header::AUTHORIZATION)
        || request.headers.contains_key(header::COOKIE);
    if credentialed && !explicitly_shared {
        return Err(NotStored::Forbidden);
    }
    if never_reused {
        return Err(NotStored::Stale);
    }
    let lifetime = policy.time_to_live(received);
    let age_d = Duration::from_secs(age);
    // A stale response is still worth keeping when it can be revalidated (a validator) or served stale (RFC
    // 5861) — for the window past its lifetime the origin granted; the route caps both.
    let validators =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let swr = cc.stale_while_revalidate.unwrap_or(0);
    let sie = cc.stale_if_error.unwrap_or(0);
    let ttl = if validators {
        cap
    } else {
        (lifetime + Duration::from_secs(swr.max(sie)))
            .saturating_sub(age_d)
            .min(cap)
    };
    if ttl.is_zero() {
        return Err(NotStored::Stale);
    }
    Ok(Storable {
        ttl,
        judgement: Judgement {
            stale_while_revalidate: swr,
            stale_if_error: sie,
            must_revalidate: cc.must_revalidate || cc.no_cache,
            received_ms: millis(received),
            initial_age: age,
            heuristic,
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
        },
        for_authorized: explicitly_shared,
    })
}

/// Whether a stored response answers a request with these headers now (fresh, or stale within what the
/// request's `max-stale` accepts), and with which `Age`; otherwise how stale it is.
pub(crate) fn judge(
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
    judgement: &Judgement,
    request_headers: &HeaderMap,
    now: SystemTime,
) -> Verdict {
    let received = UNIX_EPOCH + Duration::from_millis(judgement.received_ms);
    let age = Duration::from_secs(judgement.initial_age)
        + now.duration_since(received).unwrap_or_default();
    let stale = || Verdict::Stale {
        age: age.as_secs(),
        overdue: age.saturating_sub(Duration::from_millis(judgement.lifetime_ms)),
    };
    // Fast path, the common hit: a request without directives is answered exactly when the stored response is
    // fresh (the policy's age below its lifetime), so the policy need not be built again — that costs several
    // header-map copies and a date formatting per hit. Equivalence with the policy: a unit test below.
    if !request_headers.contains_key(header::CACHE_CONTROL)
        && !request_headers.contains_key(header::PRAGMA)
    {
        return if age < Duration::from_millis(judgement.lifetime_ms) {
            Verdict::Fresh(age.as_secs())
        } else {
            stale()
        };
    }
    let view = judged_headers(stored_headers, judgement.initial_age, judgement.heuristic);
    // The key already chose the entry (path, query, tenant, variant): the policy only judges time and the
    // request's directives, so both requests are the same bare GET apart from those.
    let stored_request = Request::new(());
    let mut request = Request::new(());
    *request.method_mut() = Method::GET;
    for name in [header::CACHE_CONTROL, header::PRAGMA] {
        for v in request_headers.get_all(&name) {
            request.headers_mut().append(name.clone(), v.clone());
        }
    }
    *request.headers_mut() = canonical_directives(request.headers());
    match policy(&stored_request, stored_status, view, received).before_request(&request, now) {
        BeforeRequest::Fresh(parts) => Verdict::Fresh(
            parts
                .headers
                .get(header::AGE)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0),
        ),
        BeforeRequest::Stale { .. } => stale(),
    }
}

#[cfg(test)]
mod tests;

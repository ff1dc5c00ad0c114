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

use crate::policy::{CacheControl, canonical_directives, storable_status, targeted_cache_control};

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

/// The age a response arrives with (RFC 9111 §4.2.3): the larger of its `Age` and the time since its `Date`.
fn initial_age(headers: &HeaderMap, now: SystemTime) -> u64 {
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
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
    *response.status_mut() = status;
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
    if !storable_status(status) {
        return Err(NotStored::Status);
    }
    let age = initial_age(headers, now);
    // Judged with no age, the policy's time to live at arrival is the whole freshness lifetime.
    let mut view = judged_headers(headers, 0, None);
    let cc = CacheControl::parse(&view);
    let explicit =
        cc.max_age.is_some() || cc.s_maxage.is_some() || view.contains_key(header::EXPIRES);
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
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn get() -> http::request::Parts {
        Request::new(()).into_parts().0
    }

    const CAP: Duration = Duration::from_secs(300);

    fn fresh_age(
        status: StatusCode,
        stored: &HeaderMap,
        judgement: &Judgement,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<u64> {
        match judge(status, stored, judgement, request, now) {
            Verdict::Fresh(age) => Some(age),
            Verdict::Stale { .. } => None,
        }
    }

    fn ttl(h: &[(&'static str, &str)]) -> Result<u64, NotStored> {
        storable(
            &get(),
            StatusCode::OK,
            &headers(h),
            CAP,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .map(|s| s.ttl.as_secs())
    }

    #[test]
    fn the_route_caps_explicit_freshness_and_fills_in_a_heuristic() {
        assert_eq!(ttl(&[]), Ok(60), "no freshness information: the heuristic");
        assert_eq!(ttl(&[("cache-control", "max-age=10")]), Ok(10));
        assert_eq!(ttl(&[("cache-control", "max-age=3600")]), Ok(300), "capped");
        assert_eq!(ttl(&[("cache-control", "max-age=10, s-maxage=20")]), Ok(20));
        assert_eq!(
            ttl(&[("cache-control", "max-age=100"), ("age", "40")]),
            Ok(60)
        );
        let date = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert!(matches!(
            ttl(&[("cache-control", "max-age=100"), ("date", &date)]),
            Ok(69..=70)
        ));
    }

    #[test]
    fn what_rfc_9111_forbids_is_refused() {
        let refused = [
            (&[("cache-control", "no-store")][..], NotStored::Forbidden),
            (&[("cache-control", "private")][..], NotStored::Forbidden),
            (&[("cache-control", "no-cache")][..], NotStored::Stale),
            (
                &[("cache-control", "s-maxage=0, max-age=60")][..],
                NotStored::Stale,
            ),
            (&[("vary", "*")][..], NotStored::Stale),
            (&[("set-cookie", "sid=1")][..], NotStored::Stale),
            (&[("expires", "0")][..], NotStored::Stale),
            (
                &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")][..],
                NotStored::Stale,
            ),
            (
                &[("cache-control", "max-age=60"), ("age", "61")][..],
                NotStored::Stale,
            ),
            (
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store"),
                ][..],
                NotStored::Forbidden,
            ),
        ];
        for (h, why) in refused {
            assert_eq!(ttl(h), Err(why), "{h:?}");
        }
        assert_eq!(
            ttl(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=30")
            ]),
            Ok(30)
        );
        assert_eq!(
            ttl(&[("set-cookie", "a=b"), ("cache-control", "public")]),
            Ok(60)
        );
        for status in [StatusCode::PARTIAL_CONTENT, StatusCode::BAD_GATEWAY] {
            let r = storable(&get(), status, &headers(&[]), CAP, CAP, SystemTime::now());
            assert_eq!(r, Err(NotStored::Status));
        }
        let mut authorized = get();
        authorized
            .headers
            .insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        let h = headers(&[]);
        let r = storable(&authorized, StatusCode::OK, &h, CAP, CAP, SystemTime::now());
        assert_eq!(r, Err(NotStored::Forbidden));
        let h = headers(&[("cache-control", "s-maxage=5")]);
        let r = storable(&authorized, StatusCode::OK, &h, CAP, CAP, SystemTime::now()).unwrap();
        assert!(r.for_authorized);
    }

    #[test]
    fn stale_responses_are_kept_to_be_revalidated_or_served_as_rfc_5861_allows() {
        let etag = ("etag", "\"v1\"");
        assert_eq!(
            ttl(&[("cache-control", "no-cache"), etag]),
            Ok(300),
            "revalidated each time"
        );
        assert_eq!(
            ttl(&[
                ("cache-control", "max-age=10"),
                ("last-modified", "Sun, 01 Nov 2026 10:00:00 GMT")
            ]),
            Ok(300)
        );
        assert_eq!(
            ttl(&[("cache-control", "max-age=10, stale-while-revalidate=30")]),
            Ok(40)
        );
        assert_eq!(
            ttl(&[
                ("cache-control", "max-age=60, stale-if-error=100"),
                ("age", "70")
            ]),
            Ok(90)
        );
        assert_eq!(ttl(&[("vary", "*"), etag]), Err(NotStored::Stale));
        assert_eq!(ttl(&[("set-cookie", "sid=1"), etag]), Err(NotStored::Stale));

        let now = SystemTime::now();
        let h = headers(&[(
            "cache-control",
            "max-age=10, stale-while-revalidate=30, stale-if-error=60",
        )]);
        let s = storable(&get(), StatusCode::OK, &h, CAP, CAP, now).unwrap();
        let at = now + Duration::from_secs(25);
        let Verdict::Stale { age, overdue } =
            judge(StatusCode::OK, &h, &s.judgement, &HeaderMap::new(), at)
        else {
            panic!("stale after its lifetime");
        };
        assert_eq!((age, overdue.as_secs()), (25, 15));
        assert!(
            s.judgement
                .serves_while_revalidating(age, overdue, &HeaderMap::new())
        );
        let none = HeaderMap::new();
        assert!(
            !s.judgement
                .serves_while_revalidating(41, Duration::from_secs(31), &none)
        );
        // The client's own freshness demands are revalidated before answering, grace period or not.
        let min_fresh = headers(&[("cache-control", "min-fresh=1")]);
        assert!(
            !s.judgement
                .serves_while_revalidating(age, overdue, &min_fresh)
        );
        let max_age = |v| headers(&[("cache-control", v)]);
        assert!(
            !s.judgement
                .serves_while_revalidating(age, overdue, &max_age("max-age=20"))
        );
        assert!(
            s.judgement
                .serves_while_revalidating(age, overdue, &max_age("max-age=30"))
        );
        assert!(
            s.judgement
                .serves_on_error(Duration::from_secs(60), &HeaderMap::new())
        );
        assert!(
            !s.judgement
                .serves_on_error(Duration::from_secs(61), &HeaderMap::new())
        );
        assert!(s.judgement.serves_on_error(
            Duration::from_secs(61),
            &headers(&[("cache-control", "stale-if-error=120")])
        ));
        let h = headers(&[(
            "cache-control",
            "max-age=10, must-revalidate, stale-while-revalidate=30, stale-if-error=60",
        )]);
        let s = storable(&get(), StatusCode::OK, &h, CAP, CAP, now).unwrap();
        assert!(!s.judgement.serves_while_revalidating(
            11,
            Duration::from_secs(1),
            &HeaderMap::new()
        ));
        assert!(
            !s.judgement
                .serves_on_error(Duration::from_secs(1), &HeaderMap::new())
        );
    }

    #[test]
    fn the_fast_path_agrees_with_the_policy_for_requests_without_directives() {
        let now = SystemTime::now();
        for h in [
            headers(&[("cache-control", "max-age=100"), ("age", "10")]),
            headers(&[]),
            headers(&[("cache-control", "s-maxage=30, max-age=5")]),
            headers(&[(
                "expires",
                &httpdate::fmt_http_date(now + Duration::from_secs(40)),
            )]),
            headers(&[
                ("cdn-cache-control", "max-age=20"),
                ("cache-control", "no-store"),
            ]),
        ] {
            let s = storable(
                &get(),
                StatusCode::OK,
                &h,
                CAP,
                Duration::from_secs(50),
                now,
            )
            .unwrap();
            for secs in [0, 1, 9, 19, 20, 21, 29, 39, 49, 50, 51, 89, 90, 91, 200] {
                for millis in [0, 500, 999] {
                    let at = now + Duration::from_secs(secs) + Duration::from_millis(millis);
                    let fast = fresh_age(StatusCode::OK, &h, &s.judgement, &HeaderMap::new(), at);
                    // A harmless directive takes the policy's path.
                    let slow = fresh_age(
                        StatusCode::OK,
                        &h,
                        &s.judgement,
                        &headers(&[("cache-control", "no-transform")]),
                        at,
                    );
                    assert_eq!(fast, slow, "{h:?} at +{secs}.{millis:03}s");
                }
            }
        }
    }

    #[test]
    fn a_stored_response_is_judged_again_with_the_requests_directives() {
        let now = SystemTime::now();
        let h = headers(&[("cache-control", "max-age=100"), ("age", "10")]);
        let s = storable(&get(), StatusCode::OK, &h, CAP, CAP, now).unwrap();
        let later = now + Duration::from_secs(20);
        let age = |req: &[(&'static str, &str)], at| {
            fresh_age(StatusCode::OK, &h, &s.judgement, &headers(req), at)
        };
        assert_eq!(age(&[], later), Some(30));
        assert_eq!(age(&[("cache-control", "max-age=20")], later), None);
        assert_eq!(age(&[("cache-control", "min-fresh=80")], later), None);
        assert_eq!(age(&[("cache-control", "no-cache")], later), None);
        assert_eq!(age(&[], now + Duration::from_secs(95)), None, "stale");
        assert_eq!(
            age(
                &[("cache-control", "max-stale=10")],
                now + Duration::from_secs(95)
            ),
            Some(105),
            "stale within what the request accepts"
        );
    }

    #[test]
    fn directive_names_are_case_insensitive() {
        for cc in [
            "Private, max-age=600",
            "PRIVATE, Max-Age=600",
            "No-Store, max-age=600",
            "max-age=600, NO-STORE",
        ] {
            assert_eq!(
                ttl(&[("cache-control", cc)]),
                Err(NotStored::Forbidden),
                "{cc}"
            );
        }
        assert_eq!(
            ttl(&[("cache-control", "No-Cache, max-age=600")]),
            Err(NotStored::Stale)
        );
        assert_eq!(ttl(&[("cache-control", "Max-Age=600")]), Ok(300));
        assert_eq!(ttl(&[("cache-control", "S-MAXAGE=20")]), Ok(20));
    }

    #[test]
    fn a_field_that_cannot_be_read_relaxes_nothing() {
        let mut h = headers(&[]);
        h.append(
            header::CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=600, private \xfc").unwrap(),
        );
        let r = storable(&get(), StatusCode::OK, &h, CAP, CAP, SystemTime::now());
        assert_eq!(r, Err(NotStored::Forbidden), "unreadable: no-store");
        // An invalid targeted field is ignored whole and `Cache-Control` decides (RFC 9213 §2.1).
        for cdn in ["max-age=10000, &&&&&", "max-age=\"10000\"", "public=5"] {
            assert_eq!(
                ttl(&[("cdn-cache-control", cdn), ("cache-control", "no-store")]),
                Err(NotStored::Forbidden),
                "{cdn}"
            );
        }
        let mut h = headers(&[("cache-control", "no-store")]);
        h.append(
            CDN_CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=600 \xfc").unwrap(),
        );
        let r = storable(&get(), StatusCode::OK, &h, CAP, CAP, SystemTime::now());
        assert_eq!(r, Err(NotStored::Forbidden));
    }

    #[test]
    fn credentials_share_a_response_only_when_it_says_so() {
        for (name, value) in [("cookie", "sid=alice"), ("authorization", "Basic YTpi")] {
            let mut credentialed = get();
            credentialed
                .headers
                .insert(name, HeaderValue::from_static(value));
            let judge = |h: &[(&'static str, &str)]| {
                storable(
                    &credentialed,
                    StatusCode::OK,
                    &headers(h),
                    CAP,
                    Duration::from_secs(300),
                    SystemTime::now(),
                )
                .map(|s| s.ttl.as_secs())
            };
            assert_eq!(judge(&[]), Err(NotStored::Forbidden), "{name}: heuristic");
            assert_eq!(
                judge(&[("cache-control", "max-age=60")]),
                Err(NotStored::Forbidden),
                "{name}: max-age alone"
            );
            assert_eq!(judge(&[("cache-control", "public, max-age=60")]), Ok(60));
            assert_eq!(judge(&[("cache-control", "s-maxage=60")]), Ok(60));
        }
    }

    mod spellings {
        use proptest::prelude::*;

        use super::*;

        const DIRECTIVES: &[&str] = &[
            "no-store",
            "no-cache",
            "private",
            "public",
            "must-revalidate",
            "max-age=0",
            "max-age=60",
            "max-age=600",
            "s-maxage=30",
            "stale-while-revalidate=30",
        ];

        /// One spelling of a directive: random case per letter and optional white space around it.
        fn spelled(directive: &'static str) -> impl Strategy<Value = String> {
            (
                proptest::collection::vec(any::<bool>(), directive.len()),
                0..3usize,
                0..3usize,
            )
                .prop_map(move |(upper, before, after)| {
                    let (name, arg) = directive
                        .split_once('=')
                        .map_or((directive, None), |(n, a)| (n, Some(a)));
                    let name: String = name
                        .chars()
                        .zip(&upper)
                        .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                        .collect();
                    let body = arg.map_or(name.clone(), |a| format!("{name}={a}"));
                    format!("{}{body}{}", " ".repeat(before), "\t".repeat(after))
                })
        }

        fn shareability(cc: &[String]) -> Option<(u64, bool)> {
            let mut h = HeaderMap::new();
            for v in cc {
                h.append(header::CACHE_CONTROL, HeaderValue::from_str(v).ok()?);
            }
            storable(
                &get(),
                StatusCode::OK,
                &h,
                CAP,
                Duration::from_secs(120),
                UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )
            .ok()
            .map(|s| (s.ttl.as_secs(), s.for_authorized))
        }

        proptest! {
            /// No spelling of a set of directives — case, white space, repetition, one field or several — is
            /// ever more shareable than its canonical lowercase form.
            #[test]
            fn no_spelling_is_more_shareable_than_the_canonical_form(
                (picked, variants) in proptest::sample::subsequence(DIRECTIVES, 1..4).prop_flat_map(|picked| {
                    let spellings: Vec<_> = picked.iter().map(|d| spelled(d)).collect();
                    (Just(picked), spellings)
                }),
                split in any::<bool>(),
                repeat in any::<bool>(),
                reverse in any::<bool>(),
            ) {
                let canonical = vec![picked.join(", ")];
                let mut variants = variants;
                if repeat {
                    variants.push(variants[0].clone());
                }
                if reverse {
                    variants.reverse();
                }
                let spelled_fields = if split { variants } else { vec![variants.join(",")] };
                let base = shareability(&canonical);
                let other = shareability(&spelled_fields);
                match (base, other) {
                    (None, Some(o)) => prop_assert!(false, "{canonical:?} not stored, {spelled_fields:?} stored as {o:?}"),
                    (Some((t, a)), Some((t2, a2))) => {
                        prop_assert!(t2 <= t, "{spelled_fields:?} kept longer");
                        prop_assert!(!a2 || a, "{spelled_fields:?} shared with authorized requests");
                    }
                    _ => {}
                }
            }
        }
    }
}

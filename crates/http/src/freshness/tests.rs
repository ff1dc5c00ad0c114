//! The freshness rules, judged case by case: storability, the route's cap, RFC 5861, spellings of directives.

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
    // With a lifetime of its own, any final status is stored for that long (RFC 9111 §3) — never a partial
    // response, a 304 or an interim one.
    let stated = headers(&[("cache-control", "max-age=30")]);
    for code in [299, 302, 400, 499, 500, 502, 503, 599] {
        let status = StatusCode::from_u16(code).unwrap();
        let r = storable(&get(), status, &stated, CAP, CAP, SystemTime::now()).map(|s| s.ttl);
        assert_eq!(r, Ok(Duration::from_secs(30)), "{code}");
    }
    for status in [
        StatusCode::PARTIAL_CONTENT,
        StatusCode::NOT_MODIFIED,
        StatusCode::CONTINUE,
    ] {
        let r = storable(&get(), status, &stated, CAP, CAP, SystemTime::now());
        assert_eq!(r, Err(NotStored::Status), "{status}");
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
    assert!(
        !s.judgement
            .serves_while_revalidating(11, Duration::from_secs(1), &HeaderMap::new())
    );
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

#[test]
fn ages_dates_and_arguments_are_read_as_the_rfc_says_and_never_fresher() {
    for h in [
        &[("cache-control", "max-age=3600"), ("age", "7200, 0")][..],
        &[("cache-control", "max-age=3600"), ("age", "7200;foo=bar")][..],
        &[("cache-control", "max-age=3600"), ("age", "2147483649")][..],
        &[
            ("cache-control", "max-age=3600"),
            ("age", "7200"),
            ("age", "0"),
        ][..],
        &[("expires", "Thu, 18  Aug  2050 02:01:18 GMT")][..],
        &[("expires", "Thu, 18 Aug 2050 02:01:18 UTC")][..],
        &[("cache-control", "max-age =3600")][..],
        &[("cache-control", "max-age= 3600")][..],
        &[("cache-control", "max-age=soon")][..],
    ] {
        assert_eq!(ttl(h), Err(NotStored::Stale), "{h:?}");
    }
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
    assert!(matches!(ttl(&[("expires", &later)]), Ok(99..=100)));
    // RFC 9111 §5.1: an `Age` that is not delta-seconds is ignored; the first member counts.
    for age in ["abc", "-7200", "7200.0", "0, 7200"] {
        assert_eq!(
            ttl(&[("cache-control", "max-age=60"), ("age", age)]),
            Ok(60),
            "{age}"
        );
    }
    assert_eq!(ttl(&[("cache-control", "max-age=\"60\"")]), Ok(60));
    assert_eq!(
        ttl(&[("cache-control", "max-age=60"), ("age", " 10 ")]),
        Ok(50)
    );
}

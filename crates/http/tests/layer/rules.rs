//! The rule table: for each row, a first request, then a second one; does the second reach the handler?

use std::time::Duration;

use axum::http::Method;

use crate::support::start;

/// Headers of a request.
type Headers = &'static [(&'static str, &'static str)];
/// A request: method, path and query, headers.
type Request = (Method, &'static str, Headers);

/// One row: the requests before the probe (method, path, headers), the probe, and whether it reaches the
/// handler.
struct Row {
    rule: &'static str,
    before: &'static [Request],
    probe: (&'static str, Headers),
    reaches_handler: bool,
}

const fn get(path: &'static str) -> Request {
    (Method::GET, path, &[])
}

const ROWS: &[Row] = &[
    Row {
        rule: "a plain GET is cached",
        before: &[get("/c/plain/1")],
        probe: ("/c/plain/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "404 is heuristically cacheable",
        before: &[get("/c/not-found/1")],
        probe: ("/c/not-found/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "no-store response is never stored",
        before: &[get("/c/no-store/1")],
        probe: ("/c/no-store/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "private response is never stored",
        before: &[get("/c/private/1")],
        probe: ("/c/private/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a no-cache response without a validator is not stored",
        before: &[get("/c/no-cache/1")],
        probe: ("/c/no-cache/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "max-age=0 response is not stored",
        before: &[get("/c/zero/1")],
        probe: ("/c/zero/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "Vary: * is never stored",
        before: &[get("/c/vary-star/1")],
        probe: ("/c/vary-star/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "206 partial content is never stored",
        before: &[get("/c/partial/1")],
        probe: ("/c/partial/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "5xx is not stored on a heuristic lifetime",
        before: &[get("/c/error/1")],
        probe: ("/c/error/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a 503 that states its freshness is stored (RFC 9111 §3)",
        before: &[get("/c/error-fresh/1")],
        probe: ("/c/error-fresh/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "Set-Cookie response is not stored",
        before: &[get("/c/cookie/1")],
        probe: ("/c/cookie/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "Set-Cookie response that is public is stored",
        before: &[get("/c/public-cookie/1")],
        probe: ("/c/public-cookie/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "Authorization request: plain response not stored",
        before: &[(Method::GET, "/c/plain/2", &[("authorization", "Bearer a")])],
        probe: ("/c/plain/2", &[("authorization", "Bearer a")]),
        reaches_handler: true,
    },
    Row {
        rule: "Authorization request: public response stored",
        before: &[(Method::GET, "/c/public/2", &[("authorization", "Bearer a")])],
        probe: ("/c/public/2", &[("authorization", "Bearer b")]),
        reaches_handler: false,
    },
    Row {
        rule: "Authorization request: s-maxage response stored",
        before: &[(
            Method::GET,
            "/c/s-maxage/2",
            &[("authorization", "Bearer a")],
        )],
        probe: ("/c/s-maxage/2", &[("authorization", "Bearer a")]),
        reaches_handler: false,
    },
    Row {
        rule: "an entry stored without Authorization is not served to an authorized request",
        before: &[get("/c/plain/3")],
        probe: ("/c/plain/3", &[("authorization", "Bearer a")]),
        reaches_handler: true,
    },
    Row {
        rule: "request no-store bypasses the cache",
        before: &[get("/c/plain/4")],
        probe: ("/c/plain/4", &[("cache-control", "no-store")]),
        reaches_handler: true,
    },
    Row {
        rule: "request no-cache skips the lookup",
        before: &[get("/c/plain/5")],
        probe: ("/c/plain/5", &[("cache-control", "no-cache")]),
        reaches_handler: true,
    },
    Row {
        rule: "request Pragma: no-cache skips the lookup",
        before: &[get("/c/plain/6")],
        probe: ("/c/plain/6", &[("pragma", "no-cache")]),
        reaches_handler: true,
    },
    Row {
        rule: "a no-cache request still stores the fresh response",
        before: &[(Method::GET, "/c/plain/7", &[("cache-control", "no-cache")])],
        probe: ("/c/plain/7", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "a no-store request stores nothing",
        before: &[(Method::GET, "/c/plain/8", &[("cache-control", "no-store")])],
        probe: ("/c/plain/8", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a Range request bypasses",
        before: &[get("/c/plain/9")],
        probe: ("/c/plain/9", &[("range", "bytes=0-3")]),
        reaches_handler: true,
    },
    Row {
        rule: "Vary: another language is another variant",
        before: &[(Method::GET, "/c/vary-lang/1", &[("accept-language", "de")])],
        probe: ("/c/vary-lang/1", &[("accept-language", "en")]),
        reaches_handler: true,
    },
    Row {
        rule: "Vary: the same language is a hit",
        before: &[(Method::GET, "/c/vary-lang/2", &[("accept-language", "de")])],
        probe: ("/c/vary-lang/2", &[("accept-language", "de")]),
        reaches_handler: false,
    },
    Row {
        rule: "Vary: an absent header differs from an empty one",
        before: &[get("/c/vary-lang/3")],
        probe: ("/c/vary-lang/3", &[("accept-language", "")]),
        reaches_handler: true,
    },
    Row {
        rule: "Vary: absent twice is a hit",
        before: &[get("/c/vary-lang/4")],
        probe: ("/c/vary-lang/4", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "a successful POST invalidates its path",
        before: &[get("/c/plain/10"), (Method::POST, "/c/plain/10", &[])],
        probe: ("/c/plain/10", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a successful DELETE invalidates every query variant of its path",
        before: &[
            get("/c/plain/11?page=2"),
            (Method::DELETE, "/c/plain/11", &[("x-status", "204")]),
        ],
        probe: ("/c/plain/11?page=2", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a failed PUT invalidates nothing",
        before: &[
            get("/c/plain/12"),
            (Method::PUT, "/c/plain/12", &[("x-status", "400")]),
        ],
        probe: ("/c/plain/12", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "a PATCH invalidates its Location too",
        before: &[
            get("/c/plain/13"),
            (
                Method::PATCH,
                "/c/other/13",
                &[("x-location", "/c/plain/13")],
            ),
        ],
        probe: ("/c/plain/13", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "another tenant's POST invalidates nothing of ours",
        before: &[
            get("/c/plain/14"),
            (Method::POST, "/c/plain/14", &[("x-tenant-id", "globex")]),
        ],
        probe: ("/c/plain/14", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "query strings are one entry up to RFC 3986's equivalences, ignored parameters left out",
        before: &[get("/c/plain/15?a=1&b=%2f&utm_source=mail")],
        probe: ("/c/plain/15?a=%31&b=%2F", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "parameters in another order are another entry (an origin may read them in order)",
        before: &[get("/c/plain/15?b=2&a=1")],
        probe: ("/c/plain/15?a=1&b=2", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "`+` and `%20` are different queries",
        before: &[get("/c/plain/15?q=a+b")],
        probe: ("/c/plain/15?q=a%20b", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "different percent-encoded bytes are different queries",
        before: &[get("/c/plain/15?q=%FF")],
        probe: ("/c/plain/15?q=%FE", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "different query values are different entries",
        before: &[get("/c/plain/16?a=1")],
        probe: ("/c/plain/16?a=2", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "tenants never share entries",
        before: &[get("/c/plain/17")],
        probe: ("/c/plain/17", &[("x-tenant-id", "globex")]),
        reaches_handler: true,
    },
    Row {
        rule: "a request without a tenant is not cached",
        before: &[(Method::GET, "/c/plain/18", &[("x-tenant-id", "")])],
        probe: ("/c/plain/18", &[("x-tenant-id", "")]),
        reaches_handler: true,
    },
    Row {
        rule: "excluded routes are not cached",
        before: &[get("/c/excluded/1")],
        probe: ("/c/excluded/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "routes not included are not cached",
        before: &[get("/u/plain/1")],
        probe: ("/u/plain/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "a body of unknown size (chunked) that ends within the bound is stored",
        before: &[get("/c/stream/1")],
        probe: ("/c/stream/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "a body of unknown size past the bound is not stored",
        before: &[get("/c/stream-large/1")],
        probe: ("/c/stream-large/1", &[]),
        reaches_handler: true,
    },
    // RFC 9111 freshness as an arbitrary origin states it: the route TTL only caps it.
    Row {
        rule: "Expires in the past is stale",
        before: &[get("/c/expires-past/1")],
        probe: ("/c/expires-past/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "an invalid Expires is stale (RFC 9111 §5.3)",
        before: &[get("/c/expires-invalid/1")],
        probe: ("/c/expires-invalid/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "Expires in the future is fresh",
        before: &[get("/c/expires-future/1")],
        probe: ("/c/expires-future/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "Expires counts from the response's Date: an hour-old Date with a minute of life is stale",
        before: &[get("/c/dated-old/1")],
        probe: ("/c/dated-old/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "the origin's Age counts against freshness: max-age=3600 with Age 7200 is stale",
        before: &[get("/c/aged-stale/1")],
        probe: ("/c/aged-stale/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "max-age=3600 with Age 100 is fresh",
        before: &[get("/c/aged-fresh/1")],
        probe: ("/c/aged-fresh/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "s-maxage=0 wins over max-age in a shared cache",
        before: &[get("/c/s-maxage-zero/1")],
        probe: ("/c/s-maxage-zero/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "CDN-Cache-Control: no-store wins over Cache-Control (RFC 9213)",
        before: &[get("/c/cdn-no-store/1")],
        probe: ("/c/cdn-no-store/1", &[]),
        reaches_handler: true,
    },
    Row {
        rule: "CDN-Cache-Control: max-age stores what Cache-Control: no-store would not (RFC 9213)",
        before: &[get("/c/cdn-max-age/1")],
        probe: ("/c/cdn-max-age/1", &[]),
        reaches_handler: false,
    },
    Row {
        rule: "request max-age below the entry's age is not answered from the cache",
        before: &[get("/c/aged-fresh/2")],
        probe: ("/c/aged-fresh/2", &[("cache-control", "max-age=50")]),
        reaches_handler: true,
    },
    Row {
        rule: "request max-age above the entry's age is a hit",
        before: &[get("/c/aged-fresh/3")],
        probe: ("/c/aged-fresh/3", &[("cache-control", "max-age=500")]),
        reaches_handler: false,
    },
    Row {
        rule: "request min-fresh beyond the remaining lifetime is not answered from the cache",
        before: &[get("/c/long/1")],
        probe: ("/c/long/1", &[("cache-control", "min-fresh=7200")]),
        reaches_handler: true,
    },
    Row {
        rule: "request min-fresh within the remaining lifetime is a hit",
        before: &[get("/c/long/2")],
        probe: ("/c/long/2", &[("cache-control", "min-fresh=60")]),
        reaches_handler: false,
    },
    Row {
        rule: "request only-if-cached with a fresh entry is a hit",
        before: &[get("/c/long/3")],
        probe: ("/c/long/3", &[("cache-control", "only-if-cached")]),
        reaches_handler: false,
    },
    Row {
        rule: "request only-if-cached without an entry never reaches the origin",
        before: &[],
        probe: ("/c/long/4", &[("cache-control", "only-if-cached")]),
        reaches_handler: false,
    },
];

#[tokio::test]
async fn each_rule_decides_whether_the_second_request_reaches_the_handler() {
    let app = start(|b| b).await;
    let mut failures = Vec::new();
    for row in ROWS {
        for (method, path, headers) in row.before {
            app.send(method.clone(), path, headers).await;
        }
        let path_only = row.probe.0.split('?').next().unwrap();
        let before = app.calls.of(path_only);
        let resp = app.get(row.probe.0, row.probe.1).await;
        let x_cache = resp
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned());
        let reached = app.calls.of(path_only) > before;
        if reached != row.reaches_handler {
            failures.push(format!(
                "{}: expected the probe to {}reach the handler (x-cache {x_cache:?})",
                row.rule,
                if row.reaches_handler { "" } else { "not " }
            ));
        }
        if !reached && path_only.starts_with("/c/") && row.before.iter().any(|r| r.1 == row.probe.0)
        {
            assert_eq!(x_cache.as_deref(), Some("HIT"), "{}", row.rule);
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn hits_replay_the_response_without_its_cookie_and_with_an_age() {
    let app = start(|b| b).await;
    let first = app.get("/c/public-cookie/1", &[]).await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    assert_eq!(first.headers()["set-cookie"], "sid=secret");
    let first_body = first.text().await.unwrap();
    let second = app.get("/c/public-cookie/1", &[]).await;
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert!(
        second.headers().get("set-cookie").is_none(),
        "a cookie is never replayed"
    );
    assert_eq!(second.headers()["cache-control"], "public");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.unwrap(), first_body);
}

#[tokio::test]
async fn a_short_max_age_shortens_the_route_ttl() {
    let app = start(|b| b).await;
    app.get("/c/short/1", &[]).await;
    assert_eq!(app.get("/c/short/1", &[]).await.headers()["x-cache"], "HIT");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        app.get("/c/short/1", &[]).await.headers()["x-cache"],
        "MISS"
    );
    assert_eq!(app.calls.of("/c/short/1"), 2);
}

#[tokio::test]
async fn a_hit_sends_the_age_accumulated_upstream_and_here() {
    let app = start(|b| b).await;
    app.get("/c/aged-fresh/9", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let hit = app.get("/c/aged-fresh/9", &[]).await;
    assert_eq!(hit.headers()["x-cache"], "HIT");
    let age: u64 = hit.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(
        (101..110).contains(&age),
        "Age {age}: the origin's 100 s plus the time held here"
    );
}

#[tokio::test]
async fn a_clients_conditional_request_is_answered_304_from_a_fresh_entry() {
    let app = start(|b| b).await;
    assert_eq!(
        app.get("/c/validated/1", &[]).await.headers()["x-cache"],
        "MISS"
    );
    let not_modified = app
        .get("/c/validated/1", &[("if-none-match", "W/\"v1\"")])
        .await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["x-cache"], "HIT");
    assert_eq!(not_modified.headers()["etag"], "\"v1\"");
    assert!(not_modified.headers().contains_key("age"));
    assert!(not_modified.text().await.unwrap().is_empty());
    let by_date = app
        .get(
            "/c/validated/1",
            &[("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT")],
        )
        .await;
    assert_eq!(by_date.status(), 304);
    let changed = app
        .get("/c/validated/1", &[("if-none-match", "\"v0\"")])
        .await;
    assert_eq!(
        changed.status(),
        200,
        "another tag: the stored body, from the cache"
    );
    assert_eq!(changed.headers()["x-cache"], "HIT");
    assert_eq!(changed.text().await.unwrap(), "/c/validated/1 call 1");
    assert_eq!(
        app.calls.of("/c/validated/1"),
        1,
        "the origin was asked once"
    );
}

#[tokio::test]
async fn only_if_cached_without_an_entry_is_a_504() {
    let app = start(|b| b).await;
    let r = app
        .get("/c/long/5", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(r.status(), 504);
    assert_eq!(app.calls.of("/c/long/5"), 0);
}

#[tokio::test]
async fn the_route_ttl_caps_an_origins_longer_freshness() {
    let app = start(|b| {
        b.route(
            fernando_cache_http::Route::new("/u/long/**")
                .cache_type(fernando_cache_store::config::CacheType::API_RESPONSE)
                .ttl(Duration::from_secs(1)),
        )
    })
    .await;
    // max-age=3600 from the origin, a one-second route.
    app.get("/u/long/6", &[]).await;
    assert_eq!(app.get("/u/long/6", &[]).await.headers()["x-cache"], "HIT");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(app.get("/u/long/6", &[]).await.headers()["x-cache"], "MISS");
    assert_eq!(app.calls.of("/u/long/6"), 2);
}

#[tokio::test]
async fn redis_killed_every_request_is_served_by_the_handler() {
    let mut app = start(|b| b).await;
    app.get("/c/plain/1", &[]).await;
    app.redis.kill();
    for i in 0..5 {
        let r = app.get("/c/plain/1", &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "MISS");
        assert!(
            r.text()
                .await
                .unwrap()
                .ends_with(&format!("call {}", i + 2))
        );
    }
}

#[tokio::test]
async fn a_body_too_large_to_store_reaches_the_client_whole() {
    let app = start(|b| b).await;
    for _ in 0..2 {
        let r = app.get("/c/stream-large/2", &[]).await;
        assert_eq!(r.headers()["x-cache"], "MISS");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), 5 * 256 * 1024);
        for (i, chunk) in body.chunks(256 * 1024).enumerate() {
            assert!(
                chunk
                    .iter()
                    .all(|&b| usize::from(b) == usize::from(b'a') + i),
                "frame {i}"
            );
        }
    }
    assert_eq!(app.calls.of("/c/stream-large/2"), 2);
}

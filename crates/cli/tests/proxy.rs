//! `fernando-cache proxy` as a real process in front of a real local origin (issue 15, items 1 and 2): the
//! RFC 9111 cases an ordinary origin produces — Expires, Date, Age, s-maxage, CDN-Cache-Control, the request's
//! directives, revalidation with ETag and Last-Modified, 304s to clients, stale-while-revalidate,
//! stale-if-error, Vary — each asserting what must and must not be served; forwarding of methods, queries,
//! bodies and hop-by-hop fields; large bodies streamed unstored; tenants from a trusted header. `origins`: the
//! origins beyond plain HTTP/1.1 — `https://`, HTTP/1.0 — and `HEAD` answered from a stored `GET` (issue 30).

#[path = "proxy/origins.rs"]
mod origins;
mod support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use fernando_cache_testkit::{PostgresDb, RedisServer};
use support::{
    ADMIN, Server, proxy,
    wire::{closed_within, read_response, stalled_body},
};

/// Requests the origin received, per path (and `path 304` for the 304s it answered).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, usize>>>);

impl Seen {
    fn paths(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }

    fn of(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn count(&self, key: &str) -> usize {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }
}

fn http_date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

const MODIFIED: &str = "Sun, 01 Nov 2026 10:00:00 GMT";

/// The origin: what it answers depends on the path's first segment.
async fn origin(
    State(seen): State<Seen>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let n = seen.count(&path);
    let now = SystemTime::now();
    let text = format!("{path} #{n}");
    let ok = |pairs: Vec<(&str, String)>| {
        let mut r = text.clone().into_response();
        for (k, v) in pairs {
            r.headers_mut().append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        r
    };
    let cc = |v: &str| vec![("cache-control", v.to_owned())];
    let name = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match name {
        "fresh" => ok(cc("max-age=600")),
        "no-store" => ok(cc("no-store, max-age=600")),
        "expires-past" => ok(vec![
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT".into()),
            ("date", http_date(now)),
        ]),
        "expires-invalid" => ok(vec![("expires", "0".into())]),
        "expires-future" => ok(vec![
            ("expires", http_date(now + Duration::from_secs(600))),
            ("date", http_date(now)),
        ]),
        "aged-stale" => ok(vec![
            ("cache-control", "max-age=3600".into()),
            ("age", "7200".into()),
        ]),
        "aged-fresh" => ok(vec![
            ("cache-control", "max-age=3600".into()),
            ("age", "100".into()),
        ]),
        "dated-old" => ok(vec![
            ("cache-control", "max-age=60".into()),
            ("date", http_date(now - Duration::from_secs(3600))),
        ]),
        "s-maxage" => ok(cc("max-age=0, s-maxage=600")),
        "cdn" => ok(vec![
            ("cache-control", "no-store".into()),
            ("cdn-cache-control", "max-age=600".into()),
        ]),
        "cdn-no-store" => ok(vec![
            ("cache-control", "max-age=600".into()),
            ("cdn-cache-control", "no-store".into()),
        ]),
        "no-freshness" => ok(vec![]),
        "short-sie" => ok(cc("max-age=1, stale-if-error=600")),
        "etag" | "last-modified" => {
            let unchanged = if name == "etag" {
                headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v == "\"v1\"")
            } else {
                headers
                    .get(header::IF_MODIFIED_SINCE)
                    .is_some_and(|v| v == MODIFIED)
            };
            let validator = if name == "etag" {
                ("etag", "\"v1\"".to_owned())
            } else {
                ("last-modified", MODIFIED.to_owned())
            };
            if unchanged {
                seen.count(&format!("{path} 304"));
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r.headers_mut().insert(
                    header::HeaderName::from_static(validator.0),
                    HeaderValue::from_str(&validator.1).unwrap(),
                );
                return r;
            }
            ok(vec![("cache-control", "no-cache".into()), validator])
        }
        "swr" => ok(cc("max-age=0, stale-while-revalidate=600")),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok(cc("no-store"))
        }
        "swr-slow" => {
            // Stale after a second, served stale while it is revalidated; the revalidation is slow (so
            // replicas' refreshes would overlap) and its 304 makes the entry fresh for long.
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v == "\"s1\"")
            {
                seen.count(&format!("{path} 304"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=600"),
                );
                r.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static("\"s1\""));
                return r;
            }
            ok(vec![
                (
                    "cache-control",
                    "max-age=1, stale-while-revalidate=600".into(),
                ),
                ("etag", "\"s1\"".into()),
            ])
        }
        "sie" => {
            if n > 1 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "origin exploded").into_response();
            }
            ok(cc("max-age=0, stale-if-error=600"))
        }
        "vary" => {
            let lang = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            let mut r = ok(vec![
                ("cache-control", "max-age=600".into()),
                ("vary", "Accept-Language".into()),
            ]);
            *r.body_mut() = format!("{text} lang={lang}").into();
            r
        }
        "large" => {
            let mut r = ok(cc("max-age=600"));
            *r.body_mut() = vec![b'x'; 3 << 20].into();
            r
        }
        "hop" => {
            // What reached the origin, for the test to check; and hop-by-hop fields of its own.
            let seen_hop = headers.contains_key("x-client-hop");
            let via = headers
                .get(header::VIA)
                .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
            let mut r = ok(vec![
                ("connection", "x-origin-hop".into()),
                ("x-origin-hop", "secret".into()),
                ("keep-alive", "timeout=5".into()),
            ]);
            let field = |name: header::HeaderName| {
                headers
                    .get(name)
                    .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned())
            };
            *r.body_mut() = format!(
                "client-hop={seen_hop} via={via} cookie={} authorization={}",
                field(header::COOKIE),
                field(header::AUTHORIZATION)
            )
            .into();
            r
        }
        "echo" => format!(
            "{method} {} {}",
            uri.query().unwrap_or(""),
            String::from_utf8_lossy(&body)
        )
        .into_response(),
        other => (StatusCode::NOT_FOUND, format!("no scenario {other}")).into_response(),
    }
}

async fn start_origin() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new().fallback(origin).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// The console's own listener.
struct Console(String, reqwest::Client);

impl Console {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.1.get(format!("{}{path}", self.0));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }
}

async fn get(p: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = p.client.get(format!("{}{path}", p.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// One row: a first plain GET stores (or not), then a probe with headers; does the probe reach the origin?
struct Row {
    rule: &'static str,
    path: &'static str,
    probe: &'static [(&'static str, &'static str)],
    reaches_origin: bool,
}

const ROWS: &[Row] = &[
    Row {
        rule: "fresh by max-age: a hit",
        path: "/fresh/1",
        probe: &[],
        reaches_origin: false,
    },
    Row {
        rule: "no-store: never stored",
        path: "/no-store/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "Expires in the past: stale",
        path: "/expires-past/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "invalid Expires: stale",
        path: "/expires-invalid/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "Expires in the future against Date: fresh",
        path: "/expires-future/1",
        probe: &[],
        reaches_origin: false,
    },
    Row {
        rule: "Age beyond max-age: stale on arrival",
        path: "/aged-stale/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "Date an hour old with max-age=60: stale",
        path: "/dated-old/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "s-maxage wins over max-age=0 in a shared cache",
        path: "/s-maxage/1",
        probe: &[],
        reaches_origin: false,
    },
    Row {
        rule: "CDN-Cache-Control replaces Cache-Control",
        path: "/cdn/1",
        probe: &[],
        reaches_origin: false,
    },
    Row {
        rule: "CDN-Cache-Control: no-store forbids",
        path: "/cdn-no-store/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "no freshness and no heuristic (--heuristic 0s): not stored",
        path: "/no-freshness/1",
        probe: &[],
        reaches_origin: true,
    },
    Row {
        rule: "request max-age=0 asks the origin",
        path: "/fresh/2",
        probe: &[("cache-control", "max-age=0")],
        reaches_origin: true,
    },
    Row {
        rule: "request no-cache asks the origin",
        path: "/fresh/3",
        probe: &[("cache-control", "no-cache")],
        reaches_origin: true,
    },
    Row {
        rule: "request min-fresh beyond what is left asks the origin",
        path: "/fresh/4",
        probe: &[("cache-control", "min-fresh=6000")],
        reaches_origin: true,
    },
    Row {
        rule: "request max-age within the age: a hit",
        path: "/fresh/5",
        probe: &[("cache-control", "max-age=300")],
        reaches_origin: false,
    },
    Row {
        rule: "request no-store bypasses",
        path: "/fresh/6",
        probe: &[("cache-control", "no-store")],
        reaches_origin: true,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rfc_9111_rule_decides_whether_the_origin_is_asked_again() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let p = proxy(&redis, addr, &["--heuristic", "0s"]);
    let mut failures = Vec::new();
    for row in ROWS {
        let first = get(&p, row.path, &[]).await;
        assert_eq!(first.headers()["x-cache"], "MISS", "{}", row.rule);
        assert_eq!(first.headers()["via"], "1.1 fernando-cache", "{}", row.rule);
        let body = first.text().await.unwrap();
        let probe = get(&p, row.path, row.probe).await;
        let x_cache = probe.headers()["x-cache"].to_str().unwrap().to_owned();
        let probe_body = probe.text().await.unwrap();
        let reached = seen.of(row.path) == 2;
        if reached != row.reaches_origin {
            failures.push(format!(
                "{}: reached the origin {reached}, expected {} (x-cache {x_cache})",
                row.rule, row.reaches_origin
            ));
        }
        if !row.reaches_origin && probe_body != body {
            failures.push(format!(
                "{}: a hit served {probe_body:?}, not {body:?}",
                row.rule
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ages_accumulate_only_if_cached_never_asks_and_max_stale_is_honoured() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let p = proxy(&redis, addr, &[]);
    get(&p, "/aged-fresh/1", &[]).await;
    let hit = get(&p, "/aged-fresh/1", &[]).await;
    assert_eq!(hit.headers()["x-cache"], "HIT");
    let age: u64 = hit.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(
        (100..110).contains(&age),
        "the origin's Age carried on: {age}"
    );

    let r = get(&p, "/fresh/never", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(r.status(), 504);
    assert_eq!(seen.of("/fresh/never"), 0, "the origin was never asked");

    // Stale after a second; kept for stale-if-error, so a client accepting staleness gets it.
    get(&p, "/short-sie/1", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(&p, "/short-sie/1", &[("cache-control", "max-stale=600")]).await;
    assert_eq!(stale.headers()["x-cache"], "HIT");
    assert_eq!(seen.of("/short-sie/1"), 1);
    let strict = get(&p, "/short-sie/1", &[]).await;
    assert_eq!(
        strict.headers()["x-cache"],
        "MISS",
        "without max-stale the origin is asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_304s_stale_while_revalidate_and_stale_if_error_through_the_proxy() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let p = proxy(&redis, addr, &[]);
    for path in ["/etag/1", "/last-modified/1"] {
        let body = get(&p, path, &[]).await.text().await.unwrap();
        let again = get(&p, path, &[]).await;
        assert_eq!(again.headers()["x-cache"], "REVALIDATED", "{path}");
        assert_eq!(again.text().await.unwrap(), body, "{path}: the stored body");
        assert_eq!(seen.of(&format!("{path} 304")), 1, "{path}");
    }
    let conditional = get(&p, "/etag/1", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(conditional.status(), 304);
    assert!(conditional.bytes().await.unwrap().is_empty());

    let first = get(&p, "/swr/1", &[]).await.text().await.unwrap();
    let stale = get(&p, "/swr/1", &[]).await;
    assert_eq!(stale.headers()["x-cache"], "STALE");
    assert_eq!(stale.text().await.unwrap(), first);

    let first = get(&p, "/sie/1", &[]).await.text().await.unwrap();
    let failing = get(&p, "/sie/1", &[]).await;
    assert_eq!(failing.status(), 200, "the origin's 500 is covered");
    assert_eq!(failing.headers()["x-cache"], "STALE");
    assert_eq!(failing.text().await.unwrap(), first);
    assert_eq!(seen.of("/sie/1"), 2);
}

/// Two `proxy` processes on one Redis: a stale entry that both are asked for at once is answered stale by both
/// and revalidated once — by whichever process claimed the entry's refresh first — not once per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_revalidate_a_stale_entry_once_between_them() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let (a, b) = (proxy(&redis, addr, &[]), proxy(&redis, addr, &[]));
    let path = "/swr-slow/1";
    assert_eq!(get(&a, path, &[]).await.headers()["x-cache"], "MISS");
    assert_eq!(
        get(&b, path, &[]).await.headers()["x-cache"],
        "HIT",
        "one shared entry"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;

    let mut asks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let p = if i % 2 == 0 { &a } else { &b };
        let ask = p.client.get(format!("{}{path}", p.base)).send();
        asks.spawn(async move { ask.await.unwrap().headers()["x-cache"].clone() });
    }
    let answers = asks.join_all().await;
    // Answered at once from the stale entry, revalidated behind; an answer that a loaded machine delayed past
    // the revalidation is a hit on the refreshed entry.
    assert!(
        answers.iter().all(|x| x == "STALE" || x == "HIT"),
        "{answers:?}"
    );
    assert!(answers.iter().any(|x| x == "STALE"), "{answers:?}");
    // The revalidation takes 500 ms at the origin; wait until the entry is fresh again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&a, path, &[]).await.headers()["x-cache"] != "HIT" {
        assert!(
            std::time::Instant::now() < deadline,
            "the entry was never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&b, path, &[]).await.headers()["x-cache"], "HIT");
    assert_eq!(
        seen.of(&format!("{path} 304")),
        1,
        "one revalidation for both replicas"
    );
    assert_eq!(
        seen.of(path),
        2,
        "the first request and the one revalidation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_forwarding_hop_by_hop_fields_and_large_bodies() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let p = proxy(&redis, addr, &[]);
    for lang in ["de", "fr"] {
        let first = get(&p, "/vary/1", &[("accept-language", lang)]).await;
        assert_eq!(first.headers()["x-cache"], "MISS", "{lang}");
        let hit = get(&p, "/vary/1", &[("accept-language", lang)]).await;
        assert_eq!(hit.headers()["x-cache"], "HIT", "{lang}");
        assert!(hit.text().await.unwrap().ends_with(&format!("lang={lang}")));
    }
    assert_eq!(seen.of("/vary/1"), 2);

    let r = p
        .client
        .post(format!("{}/echo/1?b=2&a=1", p.base))
        .body("hello origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST b=2&a=1 hello origin");

    let r = get(
        &p,
        "/hop/1",
        &[("connection", "x-client-hop"), ("x-client-hop", "1")],
    )
    .await;
    assert!(
        !r.headers().contains_key("x-origin-hop"),
        "a Connection-listed field came through"
    );
    assert!(!r.headers().contains_key("keep-alive"));
    assert_eq!(r.headers()["via"], "1.1 fernando-cache");
    assert_eq!(
        r.text().await.unwrap(),
        "client-hop=false via=1.1 fernando-cache cookie=none authorization=none"
    );

    // 3 MiB is above what the layer stores: streamed through whole, and asked for again next time.
    for _ in 0..2 {
        let r = get(&p, "/large/1", &[]).await;
        assert_eq!(r.headers()["x-cache"], "MISS");
        assert_eq!(r.bytes().await.unwrap().len(), 3 << 20);
    }
    assert_eq!(seen.of("/large/1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_from_a_trusted_header_have_their_own_entries_and_origin_failures_are_clean() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let p = proxy(&redis, addr, &["--tenant-header", "x-tenant"]);
    let a = [("x-tenant", "acme")];
    let b = [("x-tenant", "globex")];
    assert_eq!(get(&p, "/fresh/t", &a).await.headers()["x-cache"], "MISS");
    assert_eq!(get(&p, "/fresh/t", &a).await.headers()["x-cache"], "HIT");
    assert_eq!(get(&p, "/fresh/t", &b).await.headers()["x-cache"], "MISS");
    // Without the header nothing is cached.
    get(&p, "/fresh/t", &[]).await;
    assert_eq!(get(&p, "/fresh/t", &[]).await.headers()["x-cache"], "MISS");
    assert_eq!(seen.of("/fresh/t"), 4);
    let keys = redis.command(&["KEYS", "*tenant_acme*"]).unwrap();
    assert!(
        !keys.trim().is_empty(),
        "acme's entries are under its tenant"
    );

    // An origin that is gone: a 502 with a message and request id, never the connection error's details.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = proxy(&redis, dead, &[]);
    let r = get(&p, "/fresh/1", &[]).await;
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "the origin could not be reached");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

/// A client whose body stops arriving is answered 408 and cut off after the body-read timeout, as by `serve`
/// (the proxy's own failed upstream request is not what the client is told), and the origin acts on nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_a_408_and_the_origin_acts_on_nothing() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let origin = format!("http://{addr}");
    let p = Server::spawn(
        &redis.url(),
        &["proxy", "--origin", &origin, "--bind", "127.0.0.1:0"],
        &[("FERNANDO_CACHE__SERVER__LIMITS__BODY_READ_TIMEOUT", "1s")],
    );
    let stalled = stalled_body(&p.base, "/echo/stalled", &[("Content-Type", "text/plain")]);
    assert_eq!(read_response(&stalled), "HTTP/1.1 408 Request Timeout");
    assert!(closed_within(&stalled, Duration::from_secs(10)));
    assert_eq!(seen.of("/echo/stalled"), 0);
    // A whole body still goes through.
    let r = p
        .client
        .post(format!("{}/echo/whole", p.base))
        .body("hello origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen.of("/echo/whole"), 1);
}

/// A request the origin takes longer to answer than `server.limits.request_timeout` is answered 408 like every
/// other refusal: a JSON body, its request id, and its access-log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_a_json_408_with_its_request_id() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let origin = format!("http://{addr}");
    let p = Server::spawn(
        &redis.url(),
        &["proxy", "--origin", &origin, "--bind", "127.0.0.1:0"],
        &[("FERNANDO_CACHE__SERVER__LIMITS__REQUEST_TIMEOUT", "1s")],
    );
    let r = get(&p, "/slow/1", &[]).await;
    assert_eq!(r.status(), 408);
    let id = r
        .headers()
        .get("x-request-id")
        .expect("a request id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("request timeout"),
        "{body}"
    );
    assert_eq!(seen.of("/slow/1"), 1);
    let logged = p
        .log_lines()
        .iter()
        .any(|l| l.contains(&id) && l.contains("408"));
    assert!(logged, "no access-log line for {id}: {:?}", p.log_lines());
}

/// Two proxies of different origins sharing one store and tenant keep their entries apart: the origin is part
/// of every key. Replicas of one proxy share theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_of_different_origins_never_answer_each_others_requests() {
    let redis = RedisServer::start();
    let (a, seen_a) = start_origin().await;
    let (b, seen_b) = start_origin().await;
    let proxy_a = proxy(&redis, a, &[]);
    let proxy_b = proxy(&redis, b, &[]);
    let replica_a = proxy(&redis, a, &[]);
    let r = get(&proxy_a, "/fresh/report", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(seen_a.of("/fresh/report"), 1);
    let r = get(&proxy_b, "/fresh/report", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen_b.of("/fresh/report"),
        1,
        "the second origin was asked, not answered from the first one's entry"
    );
    let r = get(&replica_a, "/fresh/report", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen_a.of("/fresh/report"),
        1,
        "a replica of the first proxy shares its entry"
    );
}

/// Sends `target` as the raw request target (no client normalises it) and returns the status line.
fn raw_get(base: &str, target: &str) -> String {
    raw(base, "GET", target)
}

/// Sends `method target` as written and returns the status line.
fn raw(base: &str, method: &str, target: &str) -> String {
    use std::io::Write as _;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_target_leaves_the_origins_base_path() {
    let redis = RedisServer::start();
    let (addr, seen) = start_origin().await;
    let origin = format!("http://{addr}/base");
    let p = Server::spawn(
        &redis.url(),
        &["proxy", "--origin", &origin, "--bind", "127.0.0.1:0"],
        &[],
    );
    for target in [
        "/../secret.txt",
        "/x/../../secret.txt",
        "/./../secret.txt",
        "/fresh/%2e%2e/%2e%2e/secret.txt",
    ] {
        let status = raw_get(&p.base, target);
        assert!(!status.starts_with("HTTP/1.1 5"), "{target}: {status}");
    }
    for encoded in [
        "/\\..\\secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..;/secret.txt",
        "/%252e%252e/secret.txt",
        "/%C0%AE%C0%AE/secret.txt",
        "*",
    ] {
        let status = raw_get(&p.base, encoded);
        assert!(status.starts_with("HTTP/1.1 400"), "{encoded}: {status}");
    }
    let status = raw(&p.base, "CONNECT", "127.0.0.1:9");
    assert!(status.starts_with("HTTP/1.1 405"), "CONNECT: {status}");
    let paths = seen.paths();
    assert!(
        !paths.is_empty(),
        "the dot segments are resolved, not everything refused"
    );
    for path in &paths {
        assert!(
            path.starts_with("/base/") && !path.split('/').any(|s| s == ".." || s == "."),
            "the origin was asked for {path}, outside /base/: {paths:?}"
        );
    }
    assert_eq!(seen.of("/base/secret.txt"), 3, "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_under_proxy_reads_the_proxys_own_traffic() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let (addr, seen) = start_origin().await;
    let origin = format!("http://{addr}");
    let statistics = [
        ("FERNANDO_CACHE__STATISTICS__ENABLED", "true"),
        ("FERNANDO_CACHE__STATISTICS__DATABASE_URL", pg.url()),
        ("FERNANDO_CACHE__STATISTICS__FLUSH_INTERVAL", "1s"),
    ];
    let args = [
        "proxy",
        "--origin",
        &origin,
        "--bind",
        "127.0.0.1:0",
        "--tenant",
        "shop",
    ];
    let p = Server::spawn(
        &redis.url(),
        &[&args[..], &["--dashboard", "127.0.0.1:0"]].concat(),
        &statistics,
    );
    let console = Console(p.announced.last().unwrap().clone(), p.client.clone());
    let admin = format!("Bearer {ADMIN}");
    for expected in ["MISS", "HIT", "HIT"] {
        assert_eq!(
            get(&p, "/fresh/console", &[]).await.headers()["x-cache"],
            expected
        );
    }
    // The console has a listener — a web origin — of its own, behind the admin token.
    let page = console
        .get("/dashboard", &[("authorization", &admin)])
        .await;
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>fernando-cache</title>")
    );
    assert_eq!(
        console.get("/v1/admin/series?range=1h", &[]).await.status(),
        401
    );
    // Its credentials never leave for the origin: a signed-in operator's cookie and the admin token are
    // withheld from proxied requests, and the proxy's own address serves the origin's pages, not the console.
    let signed_in = console.0.clone();
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{signed_in}/dashboard/login"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().unwrap().split(';').next().map(str::to_owned))
        .expect("a session cookie");
    let echoed = get(
        &p,
        "/hop/credentials",
        &[
            ("cookie", &format!("{cookie}; theme=dark")),
            ("authorization", &admin),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(echoed.contains("cookie=theme=dark"), "{echoed}");
    assert!(
        !echoed.contains("fc_dashboard") && !echoed.contains(ADMIN),
        "{echoed}"
    );
    assert_eq!(
        get(&p, "/dashboard", &[("authorization", &admin)])
            .await
            .status(),
        404
    );
    assert_eq!(seen.of("/dashboard"), 1);
    // The series hold the proxy's own traffic once the recorder has flushed it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = console
            .get(
                "/v1/admin/series?range=1h&tenant=shop",
                &[("authorization", &admin)],
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        let sum = |f: &str| -> u64 {
            body["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[f].as_u64().unwrap_or(0))
                .sum()
        };
        if sum("hits") >= 2 && sum("misses") >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no proxy traffic in the series: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Without --dashboard the same path is the origin's.
    let plain = Server::spawn(&redis.url(), &args, &statistics);
    let forwarded = get(&plain, "/dashboard", &[]).await;
    assert_eq!(seen.of("/dashboard"), 2);
    assert!(
        !forwarded
            .text()
            .await
            .unwrap()
            .contains("<title>fernando-cache")
    );
}

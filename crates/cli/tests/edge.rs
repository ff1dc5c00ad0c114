//! `serve` facing the network (issue 15, item 3), as a real process: slow-header clients cut off while others
//! are served, SIGTERM bounded while they hang, per-route body limits without buffering, a full engine queue,
//! engine slots held by abandoned work and each tenant's share of the queue,
//! per-tenant rates and request quotas (each tenant at its own plan's), development keys on a public address,
//! `/metrics` and `/health` details behind tokens, and error bodies with request ids that match the access log.

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use fernando_cache_testkit::{PostgresDb, RedisServer};
use serde_json::Value;
use support::{
    ACME, ADMIN, GLOBEX, Server, counting_llm, watched_llm,
    wire::{closed_within, read_response, stalled_body},
};

fn start(redis: &RedisServer, pg: &PostgresDb, env: &[(&str, &str)]) -> Server {
    Server::start_with(&redis.url(), pg.url(), env)
}

/// Opens a connection and sends half a request line: a client that never finishes its headers.
fn slow_client(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    s
}

/// The other two timeouts of a connection: one that is opened and never used, and a kept-alive one after its
/// response, are closed after the header-read timeout; a body that stops arriving is answered and closed after
/// the body-read timeout. A well-behaved client on a kept-alive connection is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_stalled_bodies_are_closed_after_their_timeouts() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__SERVER__LIMITS__HEADER_READ_TIMEOUT", "1s"),
            ("FERNANDO_CACHE__SERVER__LIMITS__BODY_READ_TIMEOUT", "1s"),
        ],
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    let never_used = TcpStream::connect(&addr).unwrap();

    let mut kept_alive = TcpStream::connect(&addr).unwrap();
    for _ in 0..3 {
        kept_alive
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&kept_alive), "HTTP/1.1 200 OK");
    }

    let stalled = stalled_body(
        &server.base,
        "/v1/events",
        &[
            ("Authorization", &format!("Bearer {ACME}")),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(
        read_response(&stalled),
        "HTTP/1.1 408 Request Timeout",
        "a stalled body is answered as a timeout, not as a malformed request"
    );

    for (what, s) in [
        ("never used", &never_used),
        ("idle after three requests", &kept_alive),
        ("stalled body", &stalled),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "{what}: the server kept the connection open"
        );
    }
    // The server itself is unaffected.
    assert_eq!(server.get("/health", None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_while_others_are_served_and_sigterm_still_drains() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__SERVER__LIMITS__HEADER_READ_TIMEOUT", "2s"),
            ("FERNANDO_CACHE__SERVER__LIMITS__DRAIN_TIMEOUT", "2s"),
            ("FERNANDO_CACHE__SERVER__LIMITS__MAX_CONNECTIONS", "700"),
        ],
    );
    let slow: Vec<TcpStream> = (0..500).map(|_| slow_client(&server.base)).collect();
    // Normal clients are served while the 500 hang.
    for _ in 0..20 {
        let r = server.get("/v1/cache/stats", Some(ACME)).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["tenant"], "acme");
    }
    // After the header timeout every slow one has been closed by the server.
    let still_open = slow
        .iter()
        .filter(|s| !closed_within(s, Duration::from_secs(10)))
        .count();
    assert_eq!(
        still_open, 0,
        "slow-header connections the server kept open"
    );

    // SIGTERM while a new batch of slow clients hangs: the server still stops, within the drain bound.
    let _hanging: Vec<TcpStream> = (0..100).map(|_| slow_client(&server.base)).collect();
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exit took {:?} with slow clients hanging",
        started.elapsed()
    );
}

/// Sends headers declaring a body of `declared` bytes and only 1 KiB of it; returns the status line the server
/// answered with, read before the rest was ever sent.
fn declared_body_status(base: &str, path: &str, declared: u64) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\nContent-Type: text/plain\r\n\
         Content-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[b'a'; 1024]).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_refused_per_route_before_they_are_read() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__PROCESSOR__MAX_DOCUMENT_BYTES", "1000000"),
            ("FERNANDO_CACHE__SERVER__LIMITS__JSON_BODY_BYTES", "4096"),
        ],
    );
    // 1 KiB sent of a declared 50 MB: the answer comes before the body, so nothing was buffered.
    let line = declared_body_status(&server.base, "/v1/documents", 50_000_000);
    assert!(line.contains("413"), "{line}");
    let line = declared_body_status(&server.base, "/v1/events", 100_000);
    assert!(line.contains("413"), "{line}");
    // A document between the JSON limit and the document limit is accepted on its own route.
    let text = "Rechnung Nr. RE-2026-7 ".repeat(400);
    let r = server.upload(ACME, "text/plain", text.into_bytes()).await;
    assert_eq!(r.status(), 200);
    // A JSON body over its route's limit, streamed without a length, is cut off at the limit.
    let big = format!(
        "{{\"event_type\":\"document.updated\",\"subject\":\"{}\"}}",
        "x".repeat(10_000)
    );
    let r = server
        .client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(ACME)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_queue_answers_503_with_retry_after_and_frees_up() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let (llm, calls) = counting_llm(Duration::from_secs(3)).await;
    let llm_url = format!("http://{llm}/v1");
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__TIMEOUT", "20s"),
            ("FERNANDO_CACHE__SERVER__LIMITS__ENGINE_CONCURRENCY", "1"),
            ("FERNANDO_CACHE__SERVER__LIMITS__ENGINE_QUEUE", "1"),
        ],
    );
    let upload = |n: usize| {
        let client = server.client.clone();
        let url = format!("{}/v1/documents", server.base);
        async move {
            client
                .post(url)
                .bearer_auth(ACME)
                .header("content-type", "text/plain")
                .body(format!("Rechnung Nr. RE-2026-{n}\nBetrag: {n},00 EUR"))
                .send()
                .await
                .unwrap()
        }
    };
    // One in an engine, one waiting; the third finds the queue full.
    let first = tokio::spawn(upload(1));
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = tokio::spawn(upload(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = upload(3).await;
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(second.await.unwrap().status(), 200);
    // The queue drained: the same document is accepted now.
    assert_eq!(upload(3).await.status(), 200);
}

/// Issue 28, item 18: an engine slot stays taken until the work it admitted has ended, however its request
/// ended — a client that hangs up does not free it while its extraction runs on — and one tenant cannot fill the
/// engine queue for all (at most half of it, rounded up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_outlives_a_client_that_hangs_up_and_no_tenant_fills_the_engine_queue() {
    let redis = RedisServer::start();
    let (llm, calls, most_at_once) = watched_llm(Duration::from_secs(1)).await;
    let llm_url = format!("http://{llm}/v1");
    let server = Server::spawn(
        &redis.url(),
        &["serve", "--bind", "127.0.0.1:0"],
        &[
            ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
            ("FERNANDO_CACHE__PROCESSOR__OPENAI__TIMEOUT", "20s"),
            ("FERNANDO_CACHE__SERVER__LIMITS__ENGINE_CONCURRENCY", "1"),
            ("FERNANDO_CACHE__SERVER__LIMITS__ENGINE_QUEUE", "4"),
        ],
    );
    let upload = |key: &'static str, n: usize| {
        let client = server.client.clone();
        let url = format!("{}/v1/documents", server.base);
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "text/plain")
                .body(format!("Rechnung Nr. RE-2026-{n}\nBetrag: {n},00 EUR"))
                .send()
                .await
                .unwrap()
        }
    };
    // A client that hangs up while its document's extraction runs.
    let hasty = tokio::spawn(upload(ACME, 100));
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hasty.abort();
    assert!(hasty.await.is_err(), "the client hung up");
    // Globex waits, then acme twice (its share of four places); acme's third is turned away, globex's second
    // is not.
    let mut waiting = vec![tokio::spawn(upload(GLOBEX, 1))];
    tokio::time::sleep(Duration::from_millis(100)).await;
    for n in [2, 3] {
        waiting.push(tokio::spawn(upload(ACME, n)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = upload(ACME, 4).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap_or_default().contains("share"),
        "{body}"
    );
    waiting.push(tokio::spawn(upload(GLOBEX, 5)));
    for w in waiting {
        assert_eq!(w.await.unwrap().status(), 200);
    }
    assert_eq!(
        most_at_once.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one engine slot: the abandoned extraction and the next one never ran at once"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_over_its_rate_is_limited_while_another_is_not() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_RATE", "1"),
            ("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_BURST", "5"),
        ],
    );
    let mut limited = None;
    for _ in 0..30 {
        let r = server.get("/v1/cache/stats", Some(ACME)).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let limited = limited.expect("acme was never limited");
    assert!(limited.headers().contains_key("retry-after"));
    // globex has its own bucket.
    for _ in 0..5 {
        assert_eq!(
            server.get("/v1/cache/stats", Some(GLOBEX)).await.status(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_over_its_request_quota_is_refused_while_another_is_not_and_stats_show_it() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__QUOTAS__SHARED_REQUESTS", "4"),
            ("FERNANDO_CACHE__QUOTAS__TENANT_BYTES", "1000000"),
        ],
    );
    let mut last = Value::Null;
    for _ in 0..4 {
        let r = server.get("/v1/cache/stats", Some(ACME)).await;
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
    }
    assert_eq!(last["quota"]["requests"], 4, "{last}");
    assert_eq!(last["quota"]["request_limit"], 4, "{last}");
    assert_eq!(last["quota"]["byte_limit"], 1_000_000, "{last}");
    assert_eq!(last["quota"]["request_window_seconds"], 3600, "{last}");

    let refused = server.get("/v1/cache/stats", Some(ACME)).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 3500 && wait <= 3600, "Retry-After {wait}");
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("quota"), "{body}");

    // globex has its own count.
    let r = server.get("/v1/cache/stats", Some(GLOBEX)).await;
    assert_eq!(r.status(), 200);
    let globex: Value = r.json().await.unwrap();
    assert_eq!(globex["quota"]["requests"], 1, "{globex}");

    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    for line in [
        "fernando_cache_requests_refused_total{tenant=\"acme\",cache_type=\"_all\"} 1",
        "fernando_cache_quota_requests{tenant=\"acme\"} 5",
        "fernando_cache_quota_request_limit{tenant=\"acme\"} 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

/// Issue 31, item 3: each tenant's plan gives it its own request quota — acme's own table four requests a
/// window, globex the deployment-wide two — each refused with 429 at its own bound; `/v1/cache/stats` shows the
/// caller's plan and `/metrics` every plan's bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_is_refused_at_its_own_request_quota_and_its_plan_is_shown() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__QUOTAS__SHARED_REQUESTS", "2"),
            ("FERNANDO_CACHE__TENANTS__ACME__SHARED_REQUESTS", "4"),
            ("FERNANDO_CACHE__TENANTS__ACME__MAX_TTL", "90s"),
        ],
    );
    let mut plans = Vec::new();
    for (key, quota) in [(ACME, 4u64), (GLOBEX, 2)] {
        let mut last = Value::Null;
        for i in 0..quota {
            let r = server.get("/v1/cache/stats", Some(key)).await;
            assert_eq!(r.status(), 200, "{key}: request {i}");
            last = r.json().await.unwrap();
        }
        assert_eq!(last["quota"]["request_limit"], quota, "{last}");
        assert_eq!(last["plan"]["request_limit"], quota, "{last}");
        let refused = server.get("/v1/cache/stats", Some(key)).await;
        assert_eq!(refused.status(), 429, "{key}: past {quota}");
        plans.push(last["plan"].clone());
    }
    assert_eq!(plans[0]["own"], true, "{}", plans[0]);
    assert_eq!(plans[0]["max_ttl_seconds"], 90.0, "{}", plans[0]);
    assert_eq!(plans[1]["own"], false, "{}", plans[1]);
    assert_eq!(plans[1]["max_ttl_seconds"], Value::Null, "{}", plans[1]);

    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    for line in [
        "fernando_cache_plan_request_limit{tenant=\"acme\"} 4",
        "fernando_cache_plan_request_limit{tenant=\"_default\"} 2",
        "fernando_cache_plan_max_ttl_seconds{tenant=\"acme\"} 90",
        "fernando_cache_quota_request_limit{tenant=\"acme\"} 4",
        "fernando_cache_quota_request_limit{tenant=\"globex\"} 2",
        "fernando_cache_requests_refused_total{tenant=\"globex\",cache_type=\"_all\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

/// Issue 31, item 3: a tenant's plan sets its own per-process rate: acme at the deployment's 1 a second (a
/// burst of 3) is limited, while globex, whose plan allows 1 000 a second, makes as many requests unrefused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_runs_at_its_own_plans_rate() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = start(
        &redis,
        &pg,
        &[
            ("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_RATE", "1"),
            ("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_BURST", "3"),
            ("FERNANDO_CACHE__TENANTS__GLOBEX__PER_PROCESS_RATE", "1000"),
            ("FERNANDO_CACHE__TENANTS__GLOBEX__PER_PROCESS_BURST", "1000"),
        ],
    );
    let mut acme_refused = false;
    for _ in 0..30 {
        let r = server.get("/v1/cache/stats", Some(ACME)).await;
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            acme_refused = true;
            break;
        }
        assert_eq!(r.status(), 200);
    }
    assert!(acme_refused, "acme was never limited");
    for i in 0..30 {
        let r = server.get("/v1/cache/stats", Some(GLOBEX)).await;
        assert_eq!(r.status(), 200, "globex, request {i}");
    }
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    for line in [
        "fernando_cache_plan_rate{tenant=\"_default\"} 1",
        "fernando_cache_plan_rate{tenant=\"globex\"} 1000",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

#[test]
fn development_keys_on_a_public_address_are_refused_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "serve", "--bind", "0.0.0.0:0"])
        .env_remove("FERNANDO_CACHE_ENV")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0") && stderr.contains("--allow-dev-keys"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_their_token_and_errors_carry_the_request_id_of_the_access_log() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    // sha256("metrics-secret")
    let server = start(
        &redis,
        &pg,
        &[(
            "FERNANDO_CACHE__SERVER__METRICS_TOKEN_SHA256",
            "d31c4153216654104062c2381a35a508ce65581c2abea7770a7cfd76c92e828e",
        )],
    );
    let r = server.get("/metrics", None).await;
    assert_eq!(r.status(), 401);
    let r = server.get("/metrics", Some(ACME)).await;
    assert_eq!(r.status(), 401, "a tenant key is not a metrics token");
    assert_eq!(server.get("/metrics", Some(ADMIN)).await.status(), 200);
    let r = server.get("/metrics", Some("metrics-secret")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("fernando_cache_hits_total")
    );

    let r = server
        .get("/v1/documents/not-a-fingerprint", Some(ACME))
        .await;
    assert_eq!(r.status(), 400);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str());
    assert!(body["error"].as_str().unwrap().contains("SHA-256"));
    // One access line per request, with the same id.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = server.log_lines();
        if let Some(line) = lines.iter().find(|l| l.contains(&id)) {
            assert!(
                line.contains("status=400") && line.contains("/v1/documents/not-a-fingerprint"),
                "{line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no access line for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

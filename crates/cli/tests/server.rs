//! `fernando-cache serve` as a real process over TCP, with a private redis-server and a throwaway PostgreSQL
//! database: uploads, authentication, tenant isolation, health through a Redis outage, Prometheus metrics,
//! and statistics flushed on SIGTERM.

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fernando_cache_models::{Db, list_events, run_pending, statistics_since, warmup_jobs};
use fernando_cache_testkit::{PostgresDb, RedisCluster, RedisServer};
use serde_json::{Value, json};
use support::{ACME, ADMIN, GLOBEX, Server, counting_llm, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_auth_isolation_and_invalidation() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());

    let first: Value = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    assert_eq!(first["stages"]["document"], "miss");
    assert_eq!(first["fields"]["invoice_number"], "INV-7781");
    let second: Value = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    for stage in ["document", "text", "extraction"] {
        assert_eq!(second["stages"][stage], "hit", "{second}");
    }
    let fp = first["fingerprint"].as_str().unwrap().to_owned();

    // Missing or wrong keys.
    let r = server.get(&format!("/v1/documents/{fp}"), None).await;
    assert_eq!(r.status(), 401);
    let r = server
        .get(&format!("/v1/documents/{fp}"), Some("not-a-key"))
        .await;
    assert_eq!(r.status(), 401);
    let r = server.upload("", "text/plain", b"x".to_vec()).await;
    assert_eq!(r.status(), 401);

    // The owner reads it (the second read comes from the response cache); another tenant cannot.
    let r = server.get(&format!("/v1/documents/{fp}"), Some(ACME)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    let r = server.get(&format!("/v1/documents/{fp}"), Some(ACME)).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["fields"]["total"], "1482.00 GBP");
    let r = server
        .get(&format!("/v1/documents/{fp}"), Some(GLOBEX))
        .await;
    assert_eq!(
        r.status(),
        404,
        "tenant globex must not see acme's document"
    );
    let r = server.get("/v1/documents/not-a-sha", Some(ACME)).await;
    assert_eq!(r.status(), 400);

    // Unsupported input is a clear error.
    let r = server
        .upload(ACME, "application/zip", b"PK..".to_vec())
        .await;
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/zip"));

    // Admin routes need the admin token, and invalidation makes the next upload compute again.
    let invalidate = |key: &'static str| {
        server
            .client
            .post(format!("{}/v1/cache/invalidate", server.base))
            .bearer_auth(key)
            .json(&serde_json::json!({"tenant": "acme", "strategy": "lazy"}))
            .send()
    };
    assert_eq!(invalidate(ACME).await.unwrap().status(), 403);
    assert_eq!(invalidate(ADMIN).await.unwrap().status(), 200);
    let third: Value = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    assert_eq!(third["stages"]["document"], "miss");

    // Events go through the invalidation rules of the database.
    let r = server
        .post_json(
            ACME,
            "/v1/events",
            serde_json::json!({"event_type": "document.updated", "subject": fp}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The scheduled warmup job loaded reference data at start and its run is on record.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = warmup_jobs(&mut Db::open(pg.url()).unwrap()).unwrap();
        let job = jobs
            .iter()
            .find(|j| j.name == "reference-data-at-start")
            .unwrap();
        if let Some(status) = &job.last_status {
            assert!(status.starts_with("ok"), "{status}");
            assert!(job.keys_warmed > 0 && job.next_run_at.is_some());
            break;
        }
        assert!(Instant::now() < deadline, "the warmup job never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis_and_metrics_parse_as_prometheus_text() {
    // A cache should evict rather than refuse writes; the health check says so otherwise.
    let mut redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());
    server
        .upload(
            ACME,
            "text/plain",
            sample("acme/letters/payment-reminder.txt"),
        )
        .await;

    // Details (backends, their messages) are for the admin; anyone else learns only the level.
    let public: Value = server.get("/health", None).await.json().await.unwrap();
    assert_eq!(public.as_object().unwrap().len(), 1, "{public}");
    assert_eq!(public["status"], "healthy");
    let health = |s: &Server| {
        let url = format!("{}/health", s.base);
        let client = s.client.clone();
        async move {
            let r = client.get(url).bearer_auth(ADMIN).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (
                status,
                body["status"].as_str().unwrap_or("?").to_owned(),
                body,
            )
        }
    };
    let (code, status, body) = health(&server).await;
    assert_eq!((code, status.as_str()), (200, "healthy"), "{body}");

    redis.kill();
    let (code, status, body) = health(&server).await;
    assert_eq!((code, status.as_str()), (200, "degraded"), "{body}");
    assert_eq!(body["cache"]["status"], "down");
    // Documents still process without the cache.
    let r = server
        .upload(ACME, "text/plain", sample("acme/invoices/RE-2026-0042.txt"))
        .await;
    assert_eq!(r.status(), 200);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, status, body) = health(&server).await;
        if status == "healthy" {
            assert_eq!(code, 200);
            break;
        }
        assert!(Instant::now() < deadline, "never healthy again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let text = server.get("/metrics", None).await.text().await.unwrap();
    let samples = parse_prometheus(&text);
    assert!(
        samples
            .iter()
            .any(|(name, labels, v)| name == "fernando_cache_stage_total"
                && labels.contains(&("stage".into(), "document".into()))
                && *v >= 1.0),
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|(n, _, _)| n == "fernando_cache_get_latency_seconds")
    );
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A strict reader of the text exposition format: every sample belongs to a family declared by `# TYPE`,
/// label values are quoted and escaped, values are floats.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types = std::collections::HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("metric name");
            assert!(matches!(kind, "HELP" | "TYPE"), "bad comment: {line}");
            if kind == "TYPE" {
                let t = parts.next().expect("type");
                assert!(
                    matches!(t, "counter" | "gauge" | "summary" | "histogram" | "untyped"),
                    "{line}"
                );
                types.insert(name.to_owned(), t.to_owned());
            }
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample without value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match head.split_once('{') {
            None => (head.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "unquoted label value: {line}");
                    let mut val = String::new();
                    loop {
                        match chars
                            .next()
                            .unwrap_or_else(|| panic!("unterminated label: {line}"))
                        {
                            '\\' => val.push(chars.next().unwrap()),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.push((key, val));
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_owned(), labels)
            }
        };
        let family = name
            .strip_suffix("_count")
            .filter(|f| types.contains_key(*f))
            .unwrap_or(&name);
        assert!(
            types.contains_key(family),
            "sample of an undeclared family: {line}"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        samples.push((name, labels, value));
    }
    assert!(!samples.is_empty());
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_statistics() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());
    for _ in 0..3 {
        server
            .upload(ACME, "text/plain", sample("acme/invoices/RE-2026-0042.txt"))
            .await;
    }
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let rows = statistics_since(
        &mut Db::open(pg.url()).unwrap(),
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
    )
    .unwrap();
    let doc = rows
        .iter()
        .find(|r| r.tenant_id == "acme" && r.cache_type == "doc_hash")
        .expect("doc_hash statistics of acme were flushed");
    // One miss (then computed), two hits — and nothing lost at shutdown.
    assert_eq!((doc.hits, doc.misses), (2, 1), "{doc:?}");
}

/// Issue 11's defect: an event about a document — and the admin route naming it — reaches every entry derived
/// from it (each stage, whatever the engine, and the HTTP copy), and global reference data can be invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_event_reaches_every_entry_derived_from_it() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());
    let text = b"Invoice INV-4242\nTotal: 99.00 EUR\nDue: 2026-12-31\n".to_vec();
    let other = b"Invoice INV-5151\nTotal: 10.00 EUR\n".to_vec();
    let stages = |v: &Value| {
        ["document", "text", "extraction"]
            .map(|s| v["stages"][s].as_str().unwrap_or("?").to_owned())
    };
    let upload = |body: &Vec<u8>| {
        let body = body.clone();
        let server = &server;
        async move {
            let r = server.upload(ACME, "text/plain", body).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = upload(&text).await;
    upload(&other).await;
    assert_eq!(stages(&upload(&text).await), ["hit", "hit", "hit"]);
    let fp = first["fingerprint"].as_str().unwrap().to_owned();
    let path = format!("/v1/documents/{fp}");
    let x_cache = |r: &reqwest::Response| r.headers()["x-cache"].to_str().unwrap().to_owned();
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "MISS");
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "HIT");

    // The event, through the API: every stage of that document and its HTTP copy are gone …
    let r = server
        .post_json(
            ACME,
            "/v1/events",
            serde_json::json!({"event_type": "document.updated", "subject": fp}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "MISS");
    assert_eq!(stages(&upload(&text).await), ["miss", "miss", "miss"]);
    // … and nothing of another document.
    assert_eq!(stages(&upload(&other).await), ["hit", "hit", "hit"]);

    // The admin route, naming the document: the same reach.
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "MISS");
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "HIT");
    let admin = |body: Value| server.post_json(ADMIN, "/v1/cache/invalidate", body);
    let r = admin(serde_json::json!({"tenant": "acme", "subject": fp})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    // doc_hash, ocr_result, llm_extraction, and the HTTP copy with its path epoch.
    assert!(body["deleted"].as_u64().unwrap() >= 4, "{body}");
    assert_eq!(x_cache(&server.get(&path, Some(ACME)).await), "MISS");
    assert_eq!(stages(&upload(&text).await), ["miss", "miss", "miss"]);
    assert_eq!(stages(&upload(&other).await), ["hit", "hit", "hit"]);

    // Global reference data (warmed at start) through the admin route: every entry removed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = warmup_jobs(&mut Db::open(pg.url()).unwrap()).unwrap();
        if jobs
            .iter()
            .any(|j| j.name == "reference-data-at-start" && j.last_status.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the warmup job never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = admin(
        serde_json::json!({"global": true, "cache_type": "reference_data", "strategy": "eager"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["deleted"].as_u64().unwrap() > 0, "{body}");
    let r = admin(serde_json::json!({"global": true, "tenant": "acme"})).await;
    assert_eq!(r.status(), 400, "a tenant and global at once is ambiguous");
}

/// Issue 12: a rule with a delay, triggered through the `event` command (a process that exits at once), is
/// applied after the delay by exactly one of two `serve` replicas sharing the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_rule_outlives_the_event_command_and_one_of_two_replicas_applies_it() {
    use diesel::{Connection, connection::SimpleConnection};
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    diesel::PgConnection::establish(pg.url())
        .unwrap()
        .batch_execute(
            "INSERT INTO cache_invalidation_rules \
             (name, event_type, tenant_id, cache_types, strategy, delay_seconds, enabled, created_at) \
             VALUES ('later', 'catalog.changed', NULL, 'reference_data', 'eager', 1, TRUE, NOW())",
        )
        .unwrap();
    let cli = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", &redis.url()])
            .args(args)
            .env_remove("FERNANDO_CACHE_ENV")
            .env("FERNANDO_CACHE__STATISTICS__ENABLED", "true")
            .env("FERNANDO_CACHE__STATISTICS__DATABASE_URL", pg.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let key = [
        "--tenant",
        "acme",
        "--type",
        "reference_data",
        "--key",
        "fx",
    ];
    let with_key = |cmd: &[&'static str]| {
        let mut v: Vec<&str> = cmd.to_vec();
        v.extend(key);
        v
    };
    assert!(cli(&with_key(&["cache", "set"]), b"1").status.success());
    let out = cli(&["event", "catalog.changed", "--tenant", "acme"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(delayed)"));
    assert!(
        cli(&with_key(&["cache", "get"]), b"").status.success(),
        "the entry is there until the delay is over"
    );

    // Both replicas at once: they also find the reference-data warmup job due together.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(&redis.url(), pg.url()));
        let b = s.spawn(|| Server::start(&redis.url(), pg.url()));
        (a.join().unwrap(), b.join().unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    // `cache get` exits 1 on a miss.
    while cli(&with_key(&["cache", "get"]), b"").status.success() {
        assert!(
            Instant::now() < deadline,
            "the delayed invalidation never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both replicas keep polling; the row stays applied once.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    drop((a, b));
    let log = list_events(
        &mut Db::open(pg.url()).unwrap(),
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
        Some("invalidation"),
    )
    .unwrap();
    let applied: Vec<_> = log
        .iter()
        .filter(|e| e.details.contains("via rule later"))
        .collect();
    assert_eq!(applied.len(), 1, "{log:?}");
    // The warmup job ran once for both replicas: its total is one run's keys.
    let jobs = warmup_jobs(&mut Db::open(pg.url()).unwrap()).unwrap();
    let job = jobs
        .iter()
        .find(|j| j.name == "reference-data-at-start")
        .unwrap();
    // "ok: N of M keys" — the total warmed is one run's N, not two runs' worth.
    let status = job.last_status.clone().unwrap_or_default();
    let one_run: i64 = status
        .strip_prefix("ok: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("status {status:?}"));
    assert!(one_run > 0);
    assert_eq!(job.keys_warmed, one_run, "{job:?}");
}

/// Issue 12: the HTTP layer's variant budget (256 per tenant and route) holds across replicas: two `serve`
/// processes flooded with distinct query strings store 256 variants between them, not 256 each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variant_budget_holds_across_two_replicas() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(&redis.url(), pg.url()));
        let b = s.spawn(|| Server::start(&redis.url(), pg.url()));
        (a.join().unwrap(), b.join().unwrap())
    });
    let doc: Value = a
        .upload(
            ACME,
            "text/plain",
            b"Invoice INV-9\nTotal: 1.00 EUR\n".to_vec(),
        )
        .await
        .json()
        .await
        .unwrap();
    let fp = doc["fingerprint"].as_str().unwrap().to_owned();
    for i in 0..200 {
        for (server, n) in [(&a, i), (&b, 200 + i)] {
            let r = server
                .get(&format!("/v1/documents/{fp}?v={n}"), Some(ACME))
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    let stored = redis
        .command(&[
            "EVAL",
            "return #redis.call('KEYS', ARGV[1])",
            "0",
            "*:api_response:*/http/*",
        ])
        .unwrap();
    assert_eq!(
        stored.trim(),
        ":256",
        "variants stored by both replicas together"
    );
}

/// Issue 12: two `serve` replicas on one Redis receive the same new scanned document at the same moment: OCR
/// (tesseract, counted by a wrapper) and the LLM extraction (a local endpoint that counts requests) each run
/// once, and both replicas answer the same fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_receiving_one_new_document_at_once_run_ocr_and_extraction_once() {
    use std::os::unix::fs::PermissionsExt;
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let (llm, llm_calls) = counting_llm(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("ocr-runs");
    let wrapper = dir.path().join("tesseract");
    std::fs::write(
        &wrapper,
        format!(
            // Each replica asks `--version` once at start; only recognitions are counted.
            "#!/bin/sh\n[ \"$1\" = --version ] || echo run >> '{}'\nexec tesseract \"$@\"\n",
            count.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let llm_url = format!("http://{llm}/v1");
    let env = [
        (
            "FERNANDO_CACHE__PROCESSOR__TESSERACT",
            wrapper.to_str().unwrap(),
        ),
        ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__TIMEOUT", "10s"),
    ];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start_with(&redis.url(), pg.url(), &env));
        let b = s.spawn(|| Server::start_with(&redis.url(), pg.url(), &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let scan = sample("acme/scans/RE-2026-0042-scan.png");
    let (ra, rb) = tokio::join!(
        a.upload(ACME, "image/png", scan.clone()),
        b.upload(ACME, "image/png", scan)
    );
    let (ra, rb) = (ra.text().await.unwrap(), rb.text().await.unwrap());
    let (da, db): (Value, Value) = (
        serde_json::from_str(&ra).unwrap_or_else(|_| panic!("{ra}")),
        serde_json::from_str(&rb).unwrap_or_else(|_| panic!("{rb}")),
    );
    assert_eq!(da["fields"]["invoice_number"], "RE-2026-0042", "{da}");
    assert_eq!(da["fields"], db["fields"]);
    let ocr_runs = std::fs::read_to_string(&count)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(
        ocr_runs, 1,
        "tesseract ran {ocr_runs} times for one document"
    );
    assert_eq!(
        llm_calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the LLM was asked more than once"
    );
}

/// Issue 14: what a model call cost is shown per cache type by `GET /v1/cache/stats` and by `/metrics`: spent
/// by the extraction that ran, saved by the document hit that followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics_show_tokens_and_money_spent_and_saved() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let (llm, llm_calls) = counting_llm(Duration::from_millis(300)).await;
    let llm_url = format!("http://{llm}/v1");
    let env = [
        ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
    ];
    let server = Server::start_with(&redis.url(), pg.url(), &env);
    let letter = sample("acme/letters/payment-reminder.txt");
    for _ in 0..2 {
        let r = server.upload(ACME, "text/plain", letter.clone()).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(llm_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The default price list: gpt-4o-mini at 0.00015 / 0.0006 USD per 1 000 tokens, so 120 prompt and 30
    // completion tokens cost 18 + 18 = 36 millionths of a dollar.
    let stats: Value = server
        .get("/v1/cache/stats", Some(ACME))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["currency"], "USD");
    let of = |t: &str| {
        stats["cache_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cache_type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {stats}"))
            .clone()
    };
    let extraction = of("llm_extraction");
    assert_eq!(
        (
            &extraction["tokens_spent"],
            &extraction["money_spent_micros"]
        ),
        (&json!(150), &json!(36)),
        "{stats}"
    );
    assert_eq!(extraction["tokens_saved"], 0, "{stats}");
    let document = of("doc_hash");
    assert_eq!(
        (&document["tokens_saved"], &document["money_saved_micros"]),
        (&json!(150), &json!(36)),
        "the second upload was a whole-document hit: {stats}"
    );
    assert_eq!(document["tokens_spent"], 0, "{stats}");

    let text = server.get("/metrics", None).await.text().await.unwrap();
    let samples = parse_prometheus(&text);
    let value = |name: &str, cache_type: &str| {
        samples
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && labels.contains(&("tenant".into(), "acme".into()))
                    && labels.contains(&("cache_type".into(), cache_type.into()))
            })
            .map(|(_, labels, v)| (labels.clone(), *v))
            .unwrap_or_else(|| panic!("no {name} for {cache_type} in\n{text}"))
    };
    assert_eq!(
        value("fernando_cache_tokens_spent_total", "llm_extraction").1,
        150.0
    );
    assert_eq!(
        value("fernando_cache_tokens_saved_total", "doc_hash").1,
        150.0
    );
    let (labels, saved) = value("fernando_cache_money_saved_total", "doc_hash");
    assert!((saved - 0.000036).abs() < 1e-12, "{saved}");
    assert!(labels.contains(&("currency".into(), "USD".into())));
    assert!(
        value(
            "fernando_cache_compute_spent_seconds_total",
            "llm_extraction"
        )
        .1 >= 0.3
    );
}

/// Issue 12: `serve` on a Redis Cluster — the pipeline's stages, the HTTP response cache and a document event
/// reaching every entry derived from the document all work the same as on one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_cluster_caches_documents_and_responses_and_events_reach_them() {
    let cluster = RedisCluster::start_with(3, 0);
    let urls = cluster.urls();
    let nodes = urls[1..].join(",");
    let pg = PostgresDb::create();
    let env = [
        ("FERNANDO_CACHE__REDIS__MODE", "cluster"),
        ("FERNANDO_CACHE__REDIS__NODES", nodes.as_str()),
    ];
    let server = Server::start_with(&urls[0], pg.url(), &env);
    let first = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    assert_eq!(first["stages"]["document"], "miss", "{first}");
    let second = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    for stage in ["document", "text", "extraction"] {
        assert_eq!(second["stages"][stage], "hit", "{second}");
    }
    let fp = first["fingerprint"].as_str().unwrap().to_owned();
    let path = format!("/v1/documents/{fp}");
    let r = server.get(&path, Some(ACME)).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    let r = server.get(&path, Some(ACME)).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["fields"]["total"], "1482.00 GBP");
    let r = server
        .post_json(
            ACME,
            "/v1/events",
            serde_json::json!({"event_type": "document.updated", "subject": fp}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = server.get(&path, Some(ACME)).await;
    assert_ne!(
        r.headers()["x-cache"],
        "HIT",
        "the event reached the HTTP copy"
    );
    let third = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    assert_eq!(third["stages"]["extraction"], "miss", "{third}");
}

/// Issue 14: `serve` checks health on `statistics.health_interval` by itself and records it, and removes rows
/// older than `statistics.retention` — here an event a day old goes, one from now stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_health_on_its_interval_and_prunes_old_rows() {
    // A cache's eviction policy (with the default `noeviction` the check reports `degraded`, naming it).
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let pg = PostgresDb::create();
    let now = chrono::Utc::now().naive_utc();
    {
        let mut db = Db::open(pg.url()).unwrap();
        run_pending(&mut db).unwrap();
        let event = |at: chrono::NaiveDateTime, details: &str| fernando_cache_models::EventRecord {
            occurred_at: at,
            event_type: "invalidation".to_owned(),
            severity: "info".to_owned(),
            tenant_id: None,
            cache_type: None,
            details: details.to_owned(),
        };
        fernando_cache_models::insert_event(
            &mut db,
            &[
                event(now - chrono::Duration::days(1), "a day old"),
                event(now, "recent"),
            ],
        )
        .unwrap();
    }
    let _server = Server::start_with(
        &redis.url(),
        pg.url(),
        &[
            ("FERNANDO_CACHE__STATISTICS__HEALTH_INTERVAL", "200ms"),
            ("FERNANDO_CACHE__STATISTICS__FLUSH_INTERVAL", "200ms"),
            ("FERNANDO_CACHE__STATISTICS__RETENTION__EVENTS", "1h"),
            ("FERNANDO_CACHE__STATISTICS__RETENTION__INTERVAL", "200ms"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut db = Db::open(pg.url()).unwrap();
        let checks = fernando_cache_models::health_rows(&mut db, "redis", 10).unwrap();
        let details: Vec<String> =
            list_events(&mut db, chrono::DateTime::UNIX_EPOCH.naive_utc(), None)
                .unwrap()
                .into_iter()
                .map(|e| e.details)
                .collect();
        if checks.len() >= 2 && !details.iter().any(|d| d == "a day old") {
            assert!(checks.iter().all(|c| c.status == "healthy"), "{checks:?}");
            assert!(
                details.iter().any(|d| d == "recent"),
                "a recent row stays: {details:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 15 s: {} health rows, events {details:?}",
            checks.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 14: the three kinds of warmup job each do what their name says, on their interval, across two
/// replicas: reads on either replica add up in the shared access history; `frequency_based` (for acme) and
/// `predictive` (for globex) recompute their tenant's documents from `warming.documents_dir` after their
/// results expire; `scheduled` loads reference data from `warming.reference_file`; every run is on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_warmup_job_runs_on_its_interval_and_reads_add_up_across_replicas() {
    use diesel::prelude::*;
    use fernando_cache_models::{access_history, schema::cache_warmup_jobs::dsl as w};
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("documents");
    std::fs::create_dir_all(docs.join("nested")).unwrap();
    let invoice = sample("acme/invoices/RE-2026-0042.txt");
    let letter = sample("globex/letters/payment-reminder.txt");
    std::fs::write(docs.join("nested/invoice.txt"), &invoice).unwrap();
    std::fs::write(docs.join("letter.txt"), &letter).unwrap();
    let reference = dir.path().join("reference.json");
    std::fs::write(
        &reference,
        r#"{"currency:XTS": {"name": "Testing", "minor_units": 2}}"#,
    )
    .unwrap();
    let env = [
        ("FERNANDO_CACHE__STATISTICS__FLUSH_INTERVAL", "1s"),
        ("FERNANDO_CACHE__WARMING__INTERVAL", "1s"),
        ("FERNANDO_CACHE__TYPES__DOC_HASH__TTL", "2s"),
        (
            "FERNANDO_CACHE__WARMING__DOCUMENTS_DIR",
            docs.to_str().unwrap(),
        ),
        (
            "FERNANDO_CACHE__WARMING__REFERENCE_FILE",
            reference.to_str().unwrap(),
        ),
        ("FERNANDO_CACHE__WARMING__HISTORY_BUCKET", "1s"),
        // Reads seconds ago should count: a short half-life makes the recent rate high.
        ("FERNANDO_CACHE__WARMING__HALF_LIFE", "30s"),
    ];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start_with(&redis.url(), pg.url(), &env));
        let b = s.spawn(|| Server::start_with(&redis.url(), pg.url(), &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Reads on both replicas: the invoice 3 + 2 times for acme, the letter 2 + 1 times for globex.
    for (server, n_invoice, n_letter) in [(&a, 3, 2), (&b, 2, 1)] {
        for _ in 0..n_invoice {
            assert_eq!(
                server
                    .upload(ACME, "text/plain", invoice.clone())
                    .await
                    .status(),
                200
            );
        }
        for _ in 0..n_letter {
            assert_eq!(
                server
                    .upload(GLOBEX, "text/plain", letter.clone())
                    .await
                    .status(),
                200
            );
        }
    }
    // One job per kind, every 2 s: the frequency job for acme, the predictive one for globex.
    let mut db = Db::open(pg.url()).unwrap();
    diesel::update(w::cache_warmup_jobs)
        .set((
            w::interval_seconds.eq(2),
            w::next_run_at.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(&mut db)
        .unwrap();
    diesel::update(w::cache_warmup_jobs.filter(w::strategy.eq("frequency_based")))
        .set(w::tenant_id.eq(Some("acme")))
        .execute(&mut db)
        .unwrap();
    diesel::update(w::cache_warmup_jobs.filter(w::strategy.eq("predictive")))
        .set(w::tenant_id.eq(Some("globex")))
        .execute(&mut db)
        .unwrap();
    let started = chrono::Utc::now().naive_utc();

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let jobs = warmup_jobs(&mut db).unwrap();
        let events = list_events(&mut db, started, Some("warmup.run")).unwrap();
        let runs = |kind: &str| {
            events
                .iter()
                .filter(|e| e.details.contains(&format!("({kind})")))
                .count()
        };
        let warmed = |kind: &str| {
            jobs.iter()
                .find(|j| j.strategy == kind)
                .unwrap()
                .keys_warmed
        };
        if ["scheduled", "frequency_based", "predictive"]
            .iter()
            .all(|k| runs(k) >= 3)
            && warmed("frequency_based") > 0
            && warmed("predictive") > 0
        {
            for j in &jobs {
                let status = j.last_status.as_deref().unwrap_or_default();
                assert!(status.starts_with("ok"), "{}: {status}", j.name);
            }
            // Runs of one job are at least its interval apart, whichever replica ran them.
            let mut at: Vec<_> = events
                .iter()
                .filter(|e| e.details.contains("(predictive)"))
                .map(|e| e.occurred_at)
                .collect();
            at.sort();
            for pair in at.windows(2) {
                assert!(
                    pair[1] - pair[0] >= chrono::Duration::milliseconds(1_500),
                    "{at:?}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the jobs did not all run and warm: {jobs:#?}\n{events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The scheduled job loaded the file's reference data.
    let keys = redis.command(&["KEYS", "*reference_data*XTS*"]).unwrap();
    assert!(keys.contains("XTS"), "{keys}");
    // Reads from both replicas added up exactly: the warmer's own recomputations are not demand.
    let history = access_history(&mut db, None, chrono::NaiveDateTime::default()).unwrap();
    let reads = |tenant: &str| -> i64 {
        history
            .iter()
            .filter(|r| r.tenant_id == tenant)
            .map(|r| r.reads)
            .sum()
    };
    assert_eq!(reads("acme"), 5, "{history:#?}");
    assert_eq!(reads("globex"), 3, "{history:#?}");
}

//! Issue 30, "typos succeed" and "summaries that say nothing happened when it did", through the real binary: an
//! unknown event, cache type or JSON field is an error that names it (exit 2, or 400/422 with a JSON body) and
//! suggests the name meant; an invalidation says which entries it hid, how many keys it deleted and whether
//! deletion goes on in the background; counts have their noun in the right number.

mod support;

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use fernando_cache_testkit::RedisServer;
use serde_json::{Value, json};
use support::{ACME, ADMIN, Server};

/// Runs the binary in the test profile against `redis_url`, with statistics in `db_url` (SQLite).
fn run(redis_url: &str, db_url: &str, env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", redis_url])
        .args(args)
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "200ms")
        .env("FERNANDO_CACHE__REDIS__CONNECT_TIMEOUT", "200ms")
        .env("FERNANDO_CACHE__STATISTICS__ENABLED", "true")
        .env("FERNANDO_CACHE__STATISTICS__DATABASE_URL", db_url)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fernando-cache");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code 2 and one error line on stderr (log lines aside) that contains every one of `needles`.
fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("fernando-cache: ") && !l.contains("note:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_owned()
}

fn sqlite(dir: &Path) -> (String, std::path::PathBuf) {
    let path = dir.join("stats.sqlite3");
    (format!("sqlite://{}", path.display()), path)
}

const KNOWN_EVENTS: &str =
    "known events: billing.changed, document.updated, reference_data.changed, user.logout";
const KNOWN_TYPES: &str = "known cache types: api_response, billing, dashboard, doc_hash, \
                           llm_extraction, ocr_result, reference_data, session";

/// `event document.updatd` was "no enabled rule matches" and exit 0: now an error naming the event meant. An
/// event some rule names is known, and a known event that no enabled rule matches still succeeds.
#[test]
fn an_unknown_event_is_an_error_that_suggests_the_one_meant() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = sqlite(dir.path());
    let event = |name: &str| {
        run(
            &redis.url(),
            &db,
            &[],
            &["event", name, "--tenant", "acme"],
            b"",
        )
    };

    let out = event("document.updatd");
    assert_one_line_error(
        &out,
        &[
            "unknown event \"document.updatd\" (did you mean \"document.updated\"?)",
            KNOWN_EVENTS,
        ],
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let out = event("invoice.paid");
    let line = assert_one_line_error(&out, &["unknown event \"invoice.paid\"", KNOWN_EVENTS]);
    assert!(!line.contains("did you mean"), "nothing is near: {line}");

    // A rule for every tenant makes its event known, even disabled; another tenant's rule does not (its event
    // names are that tenant's business: neither known nor suggested here).
    {
        use diesel::{Connection, connection::SimpleConnection};
        diesel::SqliteConnection::establish(path.to_str().unwrap())
            .unwrap()
            .batch_execute(
                "INSERT INTO cache_invalidation_rules \
                 (name, event_type, tenant_id, cache_types, strategy, delay_seconds, enabled, created_at) \
                 VALUES ('catalog', 'catalog.changed', NULL, 'reference_data', 'eager', 0, 0, \
                 CURRENT_TIMESTAMP), \
                 ('globex-merger', 'globex.merger_secret', 'globex', 'reference_data', 'eager', 0, 1, \
                 CURRENT_TIMESTAMP)",
            )
            .unwrap();
    }
    let out = event("globex.merger_secret");
    let line = assert_one_line_error(&out, &["unknown event \"globex.merger_secret\""]);
    assert!(!line.contains("did you mean"), "{line}");
    let out = event("globex.merger_secre");
    let line = assert_one_line_error(&out, &["unknown event"]);
    assert!(
        !line.contains("globex.merger_secret\"") && !line.contains(", globex.merger_secret"),
        "another tenant's event is neither suggested nor listed: {line}"
    );
    let out = event("catalog.changed");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).trim(),
        "no enabled rule matches catalog.changed for tenant \"acme\""
    );
    let out = event("catalog.chnged");
    assert_one_line_error(
        &out,
        &[
            "did you mean \"catalog.changed\"?",
            "catalog.changed, document.updated",
        ],
    );
}

/// `cache get --type sessoin` was a plain miss that left a `sessoin` row in `stats`; `set` suggested adding
/// `types.sessoin.ttl`; `cache invalidate --type doc_hsh` deleted 0 keys and exited 0.
#[test]
fn an_unknown_cache_type_is_an_error_that_suggests_the_one_meant_and_counts_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sqlite(dir.path());
    let cache = |env: &[(&str, &str)], args: &[&str], stdin: &[u8]| {
        let mut all = vec!["cache"];
        all.extend_from_slice(args);
        run(&redis.url(), &db, env, &all, stdin)
    };
    let entry = |ty: &'static str| ["--tenant", "acme", "--type", ty, "--key", "k"];

    let mut get = vec!["get"];
    get.extend(entry("sessoin"));
    let out = cache(&[], &get, b"");
    assert_one_line_error(
        &out,
        &[
            "--type: unknown cache type \"sessoin\" (did you mean \"session\"?)",
            KNOWN_TYPES,
        ],
    );
    let mut set = vec!["set"];
    set.extend(entry("sessoin"));
    let line = assert_one_line_error(&cache(&[], &set, b"v"), &["did you mean \"session\"?"]);
    assert!(!line.contains("types.sessoin.ttl"), "{line}");
    let out = cache(
        &[],
        &["invalidate", "--tenant", "acme", "--type", "doc_hsh"],
        b"",
    );
    assert_one_line_error(
        &out,
        &["unknown cache type \"doc_hsh\" (did you mean \"doc_hash\"?)"],
    );
    assert!(stdout(&out).is_empty(), "nothing was invalidated");

    // The type meant works, and is the only one `stats` has a row for.
    let mut get_session = vec!["get"];
    get_session.extend(entry("session"));
    assert_eq!(
        cache(&[], &get_session, b"").status.code(),
        Some(1),
        "a miss"
    );
    let out = run(&redis.url(), &db, &[], &["stats", "--json"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cache_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["session"], "{rows}");

    // A type of the configuration is known; one listed without a TTL says how to give it one.
    let invoice = [("FERNANDO_CACHE__TYPES__INVOICE__TTL", "1h")];
    let mut set_invoice = vec!["set"];
    set_invoice.extend(entry("invoice"));
    let out = cache(&invoice, &set_invoice, b"42");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut get_invoice = vec!["get"];
    get_invoice.extend(entry("invoice"));
    assert_eq!(cache(&invoice, &get_invoice, b"").stdout, b"42");
    let no_ttl = [("FERNANDO_CACHE__TYPES__INVOICE__SINGLE_FLIGHT", "process")];
    assert_one_line_error(&cache(&no_ttl, &set_invoice, b"42"), &["types.invoice.ttl"]);
    assert_one_line_error(
        &cache(&[], &get_invoice, b""),
        &["unknown cache type \"invoice\"", KNOWN_TYPES],
    );
}

/// `POST /v1/events` answered 200 `{"applied":[]}` to a typo and dropped unknown fields; an unknown
/// `cache_type` was `{"deleted":0}`. Now each is refused, naming what was wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_unknown_events_cache_types_and_fields() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sqlite(dir.path());
    let server = Server::start(&redis.url(), &db);
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON body");
        assert!(body["request_id"].is_string(), "{body}");
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    let r = server
        .post_json(ACME, "/v1/events", json!({"event_type": "document.updatd"}))
        .await;
    let (status, error) = answer(r).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("unknown event \"document.updatd\" (did you mean \"document.updated\"?)")
            && error.contains(KNOWN_EVENTS),
        "{error}"
    );

    // acme's key names acme: a "tenant" in the body is refused, not silently dropped.
    let r = server
        .post_json(
            ACME,
            "/v1/events",
            json!({"event_type": "document.updated", "tenant": "globex"}),
        )
        .await;
    let (status, error) = answer(r).await;
    assert_eq!(status, 422, "{error}");
    assert!(error.contains("unknown field `tenant`"), "{error}");

    let admin = |body: Value| server.post_json(ADMIN, "/v1/cache/invalidate", body);
    let (status, error) =
        answer(admin(json!({"tenant": "acme", "cache_type": "doc_hsh"})).await).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("cache_type: unknown cache type \"doc_hsh\" (did you mean \"doc_hash\"?)")
            && error.contains(KNOWN_TYPES),
        "{error}"
    );
    let (status, error) =
        answer(admin(json!({"tenant": "acme", "cache_typ": "doc_hash"})).await).await;
    assert_eq!(status, 422, "{error}");
    assert!(error.contains("unknown field `cache_typ`"), "{error}");

    // The names meant are accepted.
    let r = server
        .post_json(
            ACME,
            "/v1/events",
            json!({"event_type": "document.updated"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = admin(json!({"tenant": "acme", "cache_type": "doc_hash"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// `event document.updated` printed "hybrid, 0 keys deleted" for every rule although every entry was gone for
/// readers; `cache invalidate --strategy hybrid` said only "7 keys deleted". Now: what was hidden, what was
/// deleted now and what the background deletion (waited for by the command) deleted.
#[test]
fn event_and_invalidate_say_what_was_hidden_and_deleted() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sqlite(dir.path());
    let go = |args: &[&str], stdin: &[u8]| {
        let out = run(&redis.url(), &db, &[], args, stdin);
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let entry = |tenant: &'static str, ty: &'static str, key: &'static str| {
        ["--tenant", tenant, "--type", ty, "--key", key]
    };
    let set = |e: [&str; 6]| {
        let mut args = vec!["cache", "set"];
        args.extend(e);
        go(&args, b"v");
    };
    let get = |e: [&str; 6]| {
        let mut args = vec!["cache", "get"];
        args.extend(e);
        go(&args, b"").status.code()
    };

    for key in ["a", "b"] {
        set(entry("acme", "doc_hash", key));
    }
    set(entry("acme", "ocr_result", "a"));
    let out = go(&["event", "document.updated", "--tenant", "acme"], b"");
    let text = stdout(&out);
    for line in [
        "document-updated: doc_hash hybrid, all doc_hash entries of tenant \"acme\" hidden; 2 keys deleted in \
         the background",
        "document-updated: llm_extraction hybrid, all llm_extraction entries of tenant \"acme\" hidden; 0 keys \
         deleted in the background",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    assert!(
        text.contains("document-updated: ocr_result hybrid, all ocr_result entries of tenant \"acme\" hidden; "),
        "{text}"
    );
    assert!(!text.contains("hybrid, 0 keys deleted"), "{text}");
    assert_eq!(
        get(entry("acme", "doc_hash", "a")),
        Some(1),
        "hidden indeed"
    );
    assert_eq!(get(entry("acme", "ocr_result", "a")), Some(1));

    // An event about one subject deletes eagerly, and says so in the right number.
    set(entry("acme", "session", "s1"));
    let out = go(
        &[
            "event",
            "user.logout",
            "--tenant",
            "acme",
            "--subject",
            "s1",
        ],
        b"",
    );
    assert_eq!(
        stdout(&out).trim(),
        "user-logout: session eager, 1 key deleted"
    );

    for key in ["a", "b", "c"] {
        set(entry("initech", "billing", key));
    }
    let invalidate = |strategy: &str| {
        let out = go(
            &[
                "cache",
                "invalidate",
                "--tenant",
                "initech",
                "--type",
                "billing",
                "--strategy",
                strategy,
            ],
            b"",
        );
        stdout(&out).trim().to_owned()
    };
    assert_eq!(
        invalidate("hybrid"),
        "invalidated tenant \"initech\" type billing (hybrid): all billing entries of tenant \"initech\" \
         hidden; 3 keys deleted in the background"
    );
    set(entry("initech", "billing", "a"));
    assert_eq!(
        invalidate("lazy"),
        "invalidated tenant \"initech\" type billing (lazy): all billing entries of tenant \"initech\" \
         hidden; their storage is reclaimed as they expire"
    );
    assert_eq!(get(entry("initech", "billing", "a")), Some(1));
    assert_eq!(
        invalidate("eager"),
        "invalidated tenant \"initech\" type billing (eager): 1 key deleted",
        "the key of the entry the lazy step hid was still there"
    );
    assert_eq!(
        invalidate("eager"),
        "invalidated tenant \"initech\" type billing (eager): 0 keys deleted"
    );
}

/// `serve`'s answers say the same: hidden, deleted now, and a background deletion still going on (the server
/// keeps running, so it does not wait for it). The fields it answered before are still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_say_what_was_hidden_and_deleted() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sqlite(dir.path());
    let server = Server::start(&redis.url(), &db);
    let ok = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };

    let body = ok(server
        .post_json(
            ACME,
            "/v1/events",
            json!({"event_type": "document.updated"}),
        )
        .await)
    .await;
    let applied = body["applied"].as_array().expect("applied");
    assert_eq!(applied.len(), 4, "{body}");
    let doc = applied
        .iter()
        .find(|a| a["cache_type"] == "doc_hash")
        .expect("doc_hash");
    assert_eq!(doc["rule"], "document-updated");
    assert_eq!(doc["strategy"], "hybrid");
    assert_eq!(doc["hidden"], true);
    assert_eq!(doc["deleted"], 0);
    assert_eq!(doc["sweeping"], true);
    assert_eq!(doc["delayed"], false);
    assert_eq!(
        doc["summary"],
        "all doc_hash entries of tenant \"acme\" hidden; deletion continuing in the background"
    );

    let admin = |body: Value| server.post_json(ADMIN, "/v1/cache/invalidate", body);
    let body =
        ok(admin(json!({"tenant": "acme", "cache_type": "billing", "strategy": "lazy"})).await)
            .await;
    assert_eq!(
        body,
        json!({
            "scope": "acme",
            "strategy": "lazy",
            "hidden": true,
            "deleted": 0,
            "sweeping": false,
            "summary": "all billing entries of tenant \"acme\" hidden; their storage is reclaimed as they expire",
        })
    );
    let body = ok(admin(json!({"tenant": "acme"})).await).await;
    assert_eq!(body["strategy"], "hybrid", "the default");
    assert_eq!(body["sweeping"], true);
    assert_eq!(
        body["summary"],
        "all entries of tenant \"acme\" hidden; deletion continuing in the background"
    );
    let body = ok(admin(json!({"tenant": "acme", "strategy": "eager"})).await).await;
    assert_eq!(
        (body["hidden"].clone(), body["sweeping"].clone()),
        (json!(false), json!(false))
    );
    let n = body["deleted"].as_u64().unwrap();
    let keys = if n == 1 { "key" } else { "keys" };
    assert_eq!(body["summary"], format!("{n} {keys} deleted"));
}

/// `process` said "1 documents", "0 hits / 1 misses" and, for stages nothing read, "0 hits / 0 misses (0 %)".
#[test]
fn the_process_summary_counts_in_the_right_number() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sqlite(dir.path());
    let text = dir.path().join("one.txt");
    std::fs::write(&text, "Invoice INV-1\nTotal: 10.00 EUR\n").unwrap();
    let out = run(
        &redis.url(),
        &db,
        &[],
        &["process", "--tenant", "acme", text.to_str().unwrap()],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = stdout(&out);
    assert!(
        table.contains("document stage    0 hits / 1 miss (0 %)"),
        "{table}"
    );
    assert!(table.contains(" 1 document, 0 from cache"), "{table}");
    assert!(
        !table.contains("1 documents") && !table.contains("1 misses"),
        "{table}"
    );

    // A document that fails reads no stage.
    let bad = dir.path().join("bad.pdf");
    std::fs::write(&bad, "%PDF-1.4 garbage").unwrap();
    let out = run(
        &redis.url(),
        &db,
        &[],
        &["process", "--tenant", "acme", bad.to_str().unwrap()],
        b"",
    );
    let table = stdout(&out);
    assert!(table.contains("document stage    no reads yet"), "{table}");
    assert!(table.contains("extraction stage  no reads yet"), "{table}");
    assert!(!table.contains("0 hits / 0 misses"), "{table}");
}

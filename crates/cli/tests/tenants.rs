//! A tenant's data as a whole (issue 31, item 4), through the program as operators run it: `tenant erase` in a
//! process of its own leaves nothing of the tenant on the Redis server or in the statistics database, writes
//! one audit event with the counts it printed, leaves another tenant untouched, finds nothing the second time,
//! and a live `serve` process (with its in-process tier on) misses the tenant's document at once; the admin
//! route does the same behind the admin token, and what the serving process had not yet recorded of the tenant
//! never reaches the database — nor, when another process erased it, what a live server still held of it;
//! `tenant export` writes what is held as JSON lines, values only when asked and sealed values as stored.

mod support;

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use fernando_cache_config::{Environment, LoadOptions, Settings};
use fernando_cache_keys::{KeyBuilder, TenantId};
use fernando_cache_testkit::RedisServer;
use serde_json::Value;
use support::{ACME, ADMIN, GLOBEX, Server, sample};

/// Every table with a tenant column.
const TENANT_TABLES: [&str; 8] = [
    "cache_statistics",
    "cache_statistics_rollups",
    "cache_access_history",
    "cache_warmup_jobs",
    "cache_event_log",
    "cache_invalidation_rules",
    "cache_pending_invalidations",
    "cache_reference_data",
];

/// A statistics database in a folder of its own.
struct Stats {
    _dir: tempfile::TempDir,
    path: String,
    url: String,
}

impl Stats {
    fn new() -> Stats {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite3").display().to_string();
        let url = format!("sqlite://{path}");
        Stats {
            _dir: dir,
            path,
            url,
        }
    }

    fn conn(&self) -> diesel::SqliteConnection {
        use diesel::Connection;
        diesel::SqliteConnection::establish(&self.path).unwrap()
    }

    /// Rows naming `tenant`, per table.
    fn rows_of(&self, tenant: &str) -> Vec<(&'static str, i64)> {
        use diesel::{QueryableByName, RunQueryDsl, sql_types::BigInt, sql_types::Text};
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.conn();
        TENANT_TABLES
            .iter()
            .map(|table| {
                let count: Count = diesel::sql_query(format!(
                    "SELECT count(*) AS n FROM {table} WHERE tenant_id = ?"
                ))
                .bind::<Text, _>(tenant)
                .get_result(&mut conn)
                .unwrap();
                (*table, count.n)
            })
            .collect()
    }

    /// A row of `tenant` in each table the tests do not fill through the program.
    fn plant(&self, tenant: &str) {
        use diesel::connection::SimpleConnection;
        self.conn()
            .batch_execute(&format!(
                "INSERT INTO cache_statistics (tenant_id, cache_type, window_start, window_seconds, hits, updated_at) \
                 VALUES ('{tenant}', 'session', '2026-12-01 10:00:00', 60, 3, '2026-12-01 10:01:00'); \
                 INSERT INTO cache_event_log (occurred_at, event_type, severity, tenant_id, cache_type, details) \
                 VALUES ('2026-12-01 10:00:00', 'invalidation', 'info', '{tenant}', NULL, 'x'); \
                 INSERT INTO cache_warmup_jobs (name, tenant_id, cache_type, strategy, interval_seconds, priority, enabled) \
                 VALUES ('{tenant}-hot', '{tenant}', 'doc_hash', 'frequency_based', 300, 1, 1); \
                 INSERT INTO cache_access_history (tenant_id, doc_key, fingerprint, bucket_start, reads) \
                 VALUES ('{tenant}', 'd', 'fp', '2026-12-01 10:00:00', 2);"
            ))
            .unwrap();
    }

    /// The audit events of erasures, oldest first.
    fn audits(&self) -> Vec<fernando_cache_models::EventRecord> {
        let mut db = fernando_cache_models::Db::open(&self.url).unwrap();
        fernando_cache_models::list_events(
            &mut db,
            chrono::DateTime::UNIX_EPOCH.naive_utc(),
            Some(fernando_cache_ops::erasure::AUDIT_EVENT),
        )
        .unwrap()
    }
}

/// `fernando-cache --env test --redis-url … ARGS` with `stdin`, statistics in `stats` when given.
fn cli(
    redis: &RedisServer,
    stats: Option<&Stats>,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &[u8],
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fernando-cache"));
    command
        .args(["--env", "test", "--redis-url", &redis.url()])
        .args(args)
        .env_remove("FERNANDO_CACHE_ENV")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(stats) = stats {
        command
            .env("FERNANDO_CACHE__STATISTICS__ENABLED", "true")
            .env("FERNANDO_CACHE__STATISTICS__DATABASE_URL", &stats.url);
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Keys of `tenant` on `redis`, by every glob the key builder gives for it.
fn keys_of(redis: &RedisServer, tenant: &str) -> usize {
    let settings = Settings::load(LoadOptions::isolated(Environment::Test)).unwrap();
    let keys = KeyBuilder::new(
        &settings.namespace,
        settings.environment,
        settings.tenancy.max_tenant_id_len,
    );
    keys.tenant_globs(&TenantId::new(tenant).unwrap())
        .iter()
        .map(|glob| {
            let reply = redis
                .command(&[
                    "EVAL",
                    "return #redis.call('KEYS', ARGV[1])",
                    "0",
                    glob.as_str(),
                ])
                .unwrap();
            reply
                .trim()
                .trim_start_matches(':')
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

/// The serving process keeps documents and their HTTP copies in process too.
const L1: [(&str, &str); 2] = [
    ("FERNANDO_CACHE__TYPES__DOC_HASH__L1", "true"),
    ("FERNANDO_CACHE__TYPES__API_RESPONSE__L1", "true"),
];

/// Uploads acme's invoice and reads it twice (the second read from the response cache); returns its fingerprint.
async fn acme_document(server: &Server) -> String {
    let doc: Value = server
        .upload_sample("acme/invoices/RE-2026-0042.txt", "text/plain")
        .await;
    let fp = doc["fingerprint"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = server.get(&format!("/v1/documents/{fp}"), Some(ACME)).await;
        assert_eq!(r.status(), 200);
    }
    fp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_erase_leaves_nothing_of_the_tenant_and_a_live_server_misses_it_at_once() {
    let redis = RedisServer::start();
    let stats = Stats::new();
    let server = Server::start_with(&redis.url(), &stats.url, &L1);
    let fp = acme_document(&server).await;
    let globex = server
        .upload(
            GLOBEX,
            "text/plain",
            sample("globex/letters/payment-reminder.txt"),
        )
        .await;
    assert_eq!(globex.status(), 200);
    let entry = ["--type", "session", "--key", "user:1"];
    for tenant in ["acme", "globex"] {
        let mut args = vec!["cache", "set", "--tenant", tenant];
        args.extend(entry);
        ok(&cli(&redis, Some(&stats), &[], &args, b"hello"));
        stats.plant(tenant);
    }
    assert!(keys_of(&redis, "acme") > 0);
    let globex_keys = keys_of(&redis, "globex");
    let globex_rows = stats.rows_of("globex");

    let out = cli(
        &redis,
        Some(&stats),
        &[],
        &["tenant", "erase", "--tenant", "acme", "--json"],
        b"",
    );
    let erased: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(erased["tenant"], "acme", "{erased}");
    assert!(
        erased["cache"]["entries"].as_u64().unwrap() >= 4,
        "the document's stages, its HTTP copy and the session entry: {erased}"
    );
    for (table, at_least) in [
        ("cache_statistics", 1),
        ("cache_event_log", 1),
        ("cache_warmup_jobs", 1),
        ("cache_access_history", 1),
    ] {
        assert!(
            erased["database"][table].as_u64().unwrap() >= at_least,
            "{table}: {erased}"
        );
    }

    // Nothing of acme on the server, nor in any table that names a tenant.
    assert_eq!(keys_of(&redis, "acme"), 0);
    for (table, n) in stats.rows_of("acme") {
        assert_eq!(n, 0, "{table} still names acme");
    }
    // One audit event, naming no tenant in its tenant column, with the counts the command printed.
    let audits = stats.audits();
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].tenant_id, None);
    let details: Value = serde_json::from_str(&audits[0].details).unwrap();
    assert_eq!(details, erased);

    // globex is untouched.
    assert_eq!(keys_of(&redis, "globex"), globex_keys);
    assert_eq!(stats.rows_of("globex"), globex_rows);
    let mut get = vec!["cache", "get", "--tenant", "globex"];
    get.extend(entry);
    assert_eq!(ok(&cli(&redis, None, &[], &get, b"")), "hello");

    // Erasing again finds nothing, and says so in its own audit event.
    let again: Value = serde_json::from_str(&ok(&cli(
        &redis,
        Some(&stats),
        &[],
        &["tenant", "erase", "--tenant", "acme", "--json"],
        b"",
    )))
    .unwrap();
    for (place, counts) in [("cache", &again["cache"]), ("database", &again["database"])] {
        for (name, n) in counts.as_object().unwrap() {
            assert_eq!(n, 0, "{place} {name}: {again}");
        }
    }
    assert_eq!(stats.audits().len(), 2);

    // The live server misses acme's document, its in-process copies included, as soon as Redis told it.
    let erased_at = Instant::now();
    loop {
        let r = server.get(&format!("/v1/documents/{fp}"), Some(ACME)).await;
        if r.status() == 404 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            erased_at.elapsed() < Duration::from_secs(2),
            "the server still answers acme's erased document"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "the live server missed the document {:?} after the erasure",
        erased_at.elapsed()
    );
}

/// Finding F1: a live server has recorded acme's upload and reads but not written them yet (its recorder writes
/// once an hour here); another process erases acme; then the server stops, writing what it holds. Nothing it
/// had recorded of acme before the erasure reaches the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_live_server_recorded_of_a_tenant_before_another_process_erased_it_is_never_written()
{
    let redis = RedisServer::start();
    let stats = Stats::new();
    let server = Server::start_with(&redis.url(), &stats.url, &L1);
    let _ = acme_document(&server).await;
    ok(&cli(
        &redis,
        Some(&stats),
        &[],
        &["tenant", "erase", "--tenant", "acme", "--json"],
        b"",
    ));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    for (table, n) in stats.rows_of("acme") {
        assert_eq!(
            n, 0,
            "{table}: the server wrote back what it had recorded of acme before the erasure"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_erases_a_tenant_and_what_the_server_had_not_recorded_of_it() {
    let redis = RedisServer::start();
    let stats = Stats::new();
    let server = Server::start_with(&redis.url(), &stats.url, &L1);
    acme_document(&server).await;
    let r = server
        .upload(
            GLOBEX,
            "text/plain",
            sample("globex/letters/payment-reminder.txt"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let erase = |key: Option<&'static str>, tenant: &'static str| {
        let mut req = server
            .client
            .post(format!("{}/v1/admin/tenants/{tenant}/erase", server.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    assert_eq!(erase(None, "acme").await.unwrap().status(), 401);
    assert_eq!(erase(Some(ACME), "acme").await.unwrap().status(), 403);
    assert!(
        keys_of(&redis, "acme") > 0,
        "nothing was erased without the admin token"
    );
    // A tenant id no tenant can have is refused, never a panic.
    assert_eq!(erase(Some(ADMIN), "%01").await.unwrap().status(), 400);

    let r = erase(Some(ADMIN), "acme").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert!(body["cache"]["entries"].as_u64().unwrap() >= 3, "{body}");
    assert!(
        body["summary"].as_str().unwrap().contains("cache keys"),
        "{body}"
    );
    assert_eq!(keys_of(&redis, "acme"), 0);
    assert!(keys_of(&redis, "globex") > 0);

    // The server's recorder had acme's activity unwritten (it flushes at shutdown here): it forgot it, and
    // still writes globex's.
    assert!(server.terminate().success());
    for (table, n) in stats.rows_of("acme") {
        assert_eq!(n, 0, "{table} names acme after the shutdown flush");
    }
    assert!(
        stats
            .rows_of("globex")
            .iter()
            .any(|(table, n)| *table == "cache_statistics" && *n > 0),
        "the shutdown flush wrote globex's statistics"
    );
    let audits = stats.audits();
    assert_eq!(audits.len(), 1);
    let details: Value = serde_json::from_str(&audits[0].details).unwrap();
    assert_eq!(details["tenant"], "acme");
    assert_eq!(details["cache"], body["cache"]);
}

#[test]
fn tenant_export_writes_what_is_held_and_values_only_when_asked() {
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const SECRET: &str = "IBAN DE89 3704 0044 0532 0130 00";
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys");
    std::fs::write(&keys_file, format!("k1:{KEY}")).unwrap();
    let env = [
        ("FERNANDO_CACHE__TYPES__OCR_RESULT__SEALED", "true"),
        (
            "FERNANDO_CACHE__ENCRYPTION__KEYS_FILE",
            keys_file.to_str().unwrap(),
        ),
    ];
    let set = |tenant: &str, ty: &str, key: &str, value: &[u8]| {
        let args = [
            "cache", "set", "--tenant", tenant, "--type", ty, "--key", key,
        ];
        ok(&cli(&redis, None, &env, &args, value));
    };
    for i in 0..5 {
        set("acme", "session", &format!("user:{i}"), b"hello");
    }
    set("acme", "ocr_result", "doc:1", SECRET.as_bytes());
    set("acme2", "session", "user:0", b"not acme's");

    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let held = lines(&ok(&cli(
        &redis,
        None,
        &env,
        &["tenant", "export", "--tenant", "acme"],
        b"",
    )));
    assert_eq!(held.len(), 6, "{held:?}");
    let mut listed: Vec<(String, String)> = held
        .iter()
        .map(|e| {
            assert!(
                e.get("envelope_base64").is_none(),
                "no values unless asked: {e}"
            );
            assert!(e["size"].as_u64().unwrap() > 0, "{e}");
            assert!(e["age_ms"].as_u64().unwrap() < 60_000, "{e}");
            assert!(e["expires_in_ms"].as_u64().is_some(), "{e}");
            (
                e["cache_type"].as_str().unwrap().to_owned(),
                e["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed[0], ("ocr_result".to_owned(), "doc:1".to_owned()));
    assert_eq!(listed[1], ("session".to_owned(), "user:0".to_owned()));
    let doc = held.iter().find(|e| e["key"] == "doc:1").unwrap();
    assert_eq!(doc["sealed"], true);

    // With values, to a file only its owner reads: each envelope as stored, a sealed one still sealed.
    let out = dir.path().join("acme.jsonl");
    ok(&cli(
        &redis,
        None,
        &env,
        &[
            "tenant",
            "export",
            "--tenant",
            "acme",
            "--values",
            "--out",
            out.to_str().unwrap(),
        ],
        b"",
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over a file that exists, nor through a link: a file someone else made (readable by others, or a
    // link planted to where the export should not go) is left as it was, and the export refuses.
    for (name, plant) in [("existing.jsonl", false), ("link.jsonl", true)] {
        let path = dir.path().join(name);
        let victim = dir.path().join(format!("{name}.victim"));
        std::fs::write(&victim, "OLD").unwrap();
        if plant {
            #[cfg(unix)]
            std::os::unix::fs::symlink(&victim, &path).unwrap();
        } else {
            std::fs::copy(&victim, &path).unwrap();
        }
        let refused = cli(
            &redis,
            None,
            &env,
            &[
                "tenant",
                "export",
                "--tenant",
                "acme",
                "--values",
                "--out",
                path.to_str().unwrap(),
            ],
            b"",
        );
        assert!(!refused.status.success(), "{name}: the export refused");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("exists"), "{name}: {said}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "OLD", "{name}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "OLD", "{name}");
    }
    let with_values = lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(with_values.len(), 6);
    for e in &with_values {
        use base64::Engine as _;
        let envelope = base64::engine::general_purpose::STANDARD
            .decode(e["envelope_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(envelope.len() as u64, e["size"].as_u64().unwrap(), "{e}");
        assert!(
            !envelope
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "a sealed value was exported opened: {e}"
        );
    }

    // Bounded: --limit stops the export and says so.
    let out = cli(
        &redis,
        None,
        &env,
        &["tenant", "export", "--tenant", "acme", "--limit", "2"],
        b"",
    );
    assert_eq!(lines(&ok(&out)).len(), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--limit"));
}

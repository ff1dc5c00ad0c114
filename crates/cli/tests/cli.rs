//! The `fernando-cache` binary against a real redis-server: exit codes, stdin/stdout, one-line errors.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use fernando_cache_testkit::{RedisCluster, RedisServer};

fn run(server_url: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_env(server_url, &[], args, stdin)
}

/// Runs the binary in the test profile against `server_url`, with extra environment variables.
fn run_env(server_url: &str, env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", server_url])
        .args(args)
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "200ms")
        .env("FERNANDO_CACHE__REDIS__CONNECT_TIMEOUT", "200ms")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fernando-cache");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn entry(key: &str) -> Vec<&str> {
    vec!["--tenant", "acme:eu", "--type", "ocr_result", "--key", key]
}

fn args<'a>(cmd: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["cache", cmd];
    v.extend_from_slice(rest);
    v
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().filter(|l| !l.contains("note:")).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn set_get_ttl_del_round_trip_with_exit_codes() {
    let server = RedisServer::start();
    let url = server.url();
    let value = b"OCR text \x00 with binary \xff bytes".repeat(100);
    let out = run(
        &url,
        &args("set", &[entry("doc1"), vec!["--ttl", "10m"]].concat()),
        &value,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&url, &args("get", &entry("doc1")), b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, value);

    let out = run(&url, &args("ttl", &entry("doc1")), b"");
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.starts_with("9m") || shown.starts_with("10m"),
        "{shown}"
    );

    let out = run(&url, &args("del", &entry("doc1")), b"");
    assert_eq!(out.status.code(), Some(0));
    for cmd in ["get", "del", "ttl"] {
        let out = run(&url, &args(cmd, &entry("doc1")), b"");
        assert_eq!(out.status.code(), Some(1), "{cmd} of a missing key");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn invalidate_strategies_and_stats() {
    let server = RedisServer::start();
    let url = server.url();
    for key in ["a", "b", "c"] {
        assert!(run(&url, &args("set", &entry(key)), b"v").status.success());
    }
    let out = run(
        &url,
        &[
            "cache",
            "invalidate",
            "--tenant",
            "acme:eu",
            "--strategy",
            "lazy",
        ],
        b"",
    );
    assert!(out.status.success());
    assert_eq!(
        run(&url, &args("get", &entry("a")), b"").status.code(),
        Some(1),
        "hidden at once"
    );
    let out = run(
        &url,
        &[
            "cache",
            "invalidate",
            "--tenant",
            "acme:eu",
            "--type",
            "ocr_result",
        ],
        b"",
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 keys deleted"),
        "{:?}",
        out
    );

    let out = run(&url, &["cache", "stats"], b"");
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("backend") && table.contains("redis") && table.contains("eviction policy"),
        "{table}"
    );
    let out = run(&url, &["cache", "stats", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["backend"], "redis");
}

/// The operator command on a Redis Cluster, each step its own process: a write is read by the next process, a
/// lazy invalidation made by one process is seen by the very next read of another, an eager one deletes on
/// every primary, and `stats` shows each primary.
#[test]
fn every_step_on_a_cluster_is_seen_by_the_next_process() {
    let cluster = RedisCluster::start_with(3, 0);
    let urls = cluster.urls();
    let nodes = urls[1..].join(",");
    let env = [
        ("FERNANDO_CACHE__REDIS__MODE", "cluster"),
        ("FERNANDO_CACHE__REDIS__NODES", nodes.as_str()),
    ];
    let run = |args: &[&str], stdin: &[u8]| run_env(&urls[0], &env, args, stdin);
    // Tenants whose keys land on different primaries.
    let tenants = ["acme:eu", "globex", "initech", "umbrella", "hooli", "*"];
    for t in tenants {
        let e = ["--tenant", t, "--type", "ocr_result", "--key", "doc"];
        assert!(run(&args("set", &e), t.as_bytes()).status.success(), "{t}");
        let out = run(&args("get", &e), b"");
        assert_eq!(out.stdout, t.as_bytes(), "{t}: read by the next process");
    }
    let lazy = [
        "cache",
        "invalidate",
        "--tenant",
        "acme:eu",
        "--strategy",
        "lazy",
    ];
    assert!(run(&lazy, b"").status.success());
    let acme = [
        "--tenant",
        "acme:eu",
        "--type",
        "ocr_result",
        "--key",
        "doc",
    ];
    assert_eq!(
        run(&args("get", &acme), b"").status.code(),
        Some(1),
        "the next process misses at once"
    );
    let other = ["--tenant", "globex", "--type", "ocr_result", "--key", "doc"];
    assert!(
        run(&args("get", &other), b"").status.success(),
        "another tenant untouched"
    );
    let eager = [
        "cache",
        "invalidate",
        "--tenant",
        "globex",
        "--type",
        "ocr_result",
    ];
    let out = run(&eager, b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 key deleted"),
        "{out:?}"
    );
    let out = run(&["cache", "stats", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["backend"], "redis-cluster");
    let nodes = json["nodes"].as_array().expect("per-node facts");
    assert_eq!(nodes.len(), 3, "{json}");
    let keys: u64 = nodes.iter().map(|n| n["keys"].as_u64().unwrap()).sum();
    assert_eq!(json["keys"].as_u64(), Some(keys));
    assert!(keys >= 5, "{json}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    let server = RedisServer::start();
    let url = server.url();
    let out = run(
        &url,
        &[
            "cache",
            "get",
            "--tenant",
            "",
            "--type",
            "ocr_result",
            "--key",
            "k",
        ],
        b"",
    );
    assert_one_line_error(&out, "tenant id is empty");
    let out = run(
        &url,
        &[
            "cache", "get", "--tenant", "t", "--type", "Bad:Type", "--key", "k",
        ],
        b"",
    );
    assert_one_line_error(
        &out,
        "unknown cache type \"Bad:Type\"; known cache types: api_response",
    );
    let out = run(
        &url,
        &[
            "cache",
            "set",
            "--tenant",
            "t",
            "--type",
            "unknown_type",
            "--key",
            "k",
        ],
        b"v",
    );
    // Issue 30: a type neither built in nor configured is refused by name, not as one without a TTL.
    assert_one_line_error(&out, "unknown cache type \"unknown_type\"");
    let out = run(
        &url,
        &[
            "cache",
            "invalidate",
            "--tenant",
            "t",
            "--strategy",
            "sometimes",
        ],
        b"",
    );
    assert_one_line_error(&out, "unknown invalidation strategy");
    let out = run("http://not-redis", &args("get", &entry("k")), b"");
    assert_one_line_error(&out, "redis.url");
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "qa", "cache", "stats"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "unknown profile");
}

#[test]
fn redis_down_is_an_error_for_get_and_set_not_a_miss() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let out = run(&url, &args("get", &entry("k")), b"");
    assert_one_line_error(&out, "unavailable");
    let out = run(&url, &args("set", &entry("k")), b"v");
    assert_one_line_error(&out, "unavailable");
    let out = run(&url, &args("del", &entry("k")), b"");
    assert_one_line_error(&out, "unavailable");
}

fn run_with_stats(server_url: &str, db_url: &str, args: &[&str], stdin: &[u8]) -> Output {
    let env = [
        ("FERNANDO_CACHE__STATISTICS__ENABLED", "true"),
        ("FERNANDO_CACHE__STATISTICS__DATABASE_URL", db_url),
    ];
    run_env(server_url, &env, args, stdin)
}

#[test]
fn operator_traffic_is_recorded_and_stats_and_events_read_the_database() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stats.sqlite3").display());
    // Migrations run at start (statistics.run_migrations_at_start); each command flushes on exit.
    assert!(
        run_with_stats(&url, &db, &args("set", &entry("a")), b"v")
            .status
            .success()
    );
    assert_eq!(
        run_with_stats(&url, &db, &args("get", &entry("a")), b"")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run_with_stats(&url, &db, &args("get", &entry("zz")), b"")
            .status
            .code(),
        Some(1)
    );

    let out = run_with_stats(&url, &db, &["stats", "--json"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["tenant"], "acme:eu");
    assert_eq!(row["cache_type"], "ocr_result");
    assert_eq!(
        (
            row["hits"].as_i64(),
            row["misses"].as_i64(),
            row["sets"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let out = run_with_stats(&url, &db, &["stats"], b"");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().next().unwrap().starts_with("tenant"),
        "{table}"
    );
    assert!(table.contains("50.0 %"), "{table}");

    let out = run_with_stats(
        &url,
        &db,
        &[
            "event",
            "document.updated",
            "--tenant",
            "acme:eu",
            "--subject",
            "a",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("document-updated: ocr_result eager, 1 key deleted"),
        "{text}"
    );
    assert_eq!(
        run_with_stats(&url, &db, &args("get", &entry("a")), b"")
            .status
            .code(),
        Some(1)
    );

    let out = run_with_stats(
        &url,
        &db,
        &[
            "cache",
            "invalidate",
            "--tenant",
            "acme:eu",
            "--strategy",
            "lazy",
        ],
        b"",
    );
    assert!(out.status.success());
    let mut conn = fernando_cache_models::Db::open(&db).unwrap();
    let events = fernando_cache_models::list_events(
        &mut conn,
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
        Some("invalidation"),
    )
    .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.details.starts_with("operator invalidation (lazy)")),
        "{events:?}"
    );

    let out = run(&url, &["stats"], b"");
    assert_one_line_error(&out, "statistics are disabled");
}

#[test]
fn invalidate_tag_and_clear_hide_what_they_name() {
    let server = RedisServer::start();
    let url = server.url();
    let tagged = [
        "--tenant",
        "acme:eu",
        "--type",
        "billing",
        "--key",
        "inv-1",
        "--tag",
        "customer:42",
    ];
    let plain = ["--tenant", "acme:eu", "--type", "billing", "--key", "inv-2"];
    let other = [
        "--tenant",
        "globex",
        "--type",
        "billing",
        "--key",
        "inv-1",
        "--tag",
        "customer:42",
    ];
    for (e, v) in [(&tagged[..], "1"), (&plain[..], "2"), (&other[..], "3")] {
        assert!(run(&url, &args("set", e), v.as_bytes()).status.success());
    }
    let get = |e: &[&str]| run(&url, &args("get", &e[..6]), b"");
    let out = run(
        &url,
        &[
            "cache",
            "invalidate-tag",
            "--tenant",
            "acme:eu",
            "--tag",
            "customer:42",
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        get(&tagged).status.code(),
        Some(1),
        "the tagged entry is hidden"
    );
    assert_eq!(get(&plain).stdout, b"2", "an untagged entry is not");
    assert_eq!(
        get(&other).stdout,
        b"3",
        "nor another tenant's with the same tag"
    );

    let out = run(&url, &["cache", "clear", "--tenant", "acme:eu"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        get(&plain).status.code(),
        Some(1),
        "clear hides the whole tenant"
    );
    assert_eq!(get(&other).stdout, b"3");

    let bad = run(
        &url,
        &[
            "cache",
            "invalidate-tag",
            "--tenant",
            "acme:eu",
            "--tag",
            "",
        ],
        b"",
    );
    assert_one_line_error(&bad, "tag");
}

/// Keys from the environment seal `ocr_result`: the value is ciphertext in Redis and reads back; a wrong key is
/// a miss, a malformed one a clear error; no output or log line at trace level ever holds key material.
#[test]
fn sealed_values_use_keys_from_the_environment_and_never_print_them() {
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";
    let server = RedisServer::start();
    let url = server.url();
    let with_keys = |keys: &str| {
        vec![
            (
                "FERNANDO_CACHE__TYPES__OCR_RESULT__SEALED",
                "true".to_owned(),
            ),
            ("FERNANDO_CACHE_ENCRYPTION_KEYS", keys.to_owned()),
            ("FERNANDO_CACHE_LOG", "trace".to_owned()),
        ]
    };
    let mut outputs = Vec::new();
    let mut go = |keys: &str, cmd: &str, stdin: &[u8]| {
        let env = with_keys(keys);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = run_env(&url, &env, &args(cmd, &entry("scan")), stdin);
        outputs.push(out.clone());
        out
    };
    let secret = b"Jane Doe, IBAN DE89 3704 0044 0532 0130 00";
    let set = go(&format!("k1:{K1}"), "set", secret);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let raw = server.command(&["KEYS", "*ocr_result*"]).expect("KEYS");
    let key = raw
        .lines()
        .find(|l| l.contains("ocr_result:scan"))
        .expect("the entry's key")
        .to_owned();
    let stored = server.command(&["GET", &key]).expect("GET");
    assert!(!stored.contains("DE89"), "plaintext at rest: {stored}");

    let get = go(&format!("k1:{K1}"), "get", b"");
    assert_eq!(get.stdout, secret);
    // Same id, other material: the entry does not open — a miss (exit 1), not an error.
    let wrong = go(&format!("k1:{K2}"), "get", b"");
    assert_eq!(wrong.status.code(), Some(1));
    // Malformed: a clear error naming the key id.
    let short = &K1[..20];
    let bad = go(&format!("k1:{short}"), "get", b"");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("key \"k1\""));

    for out in &outputs {
        for text in [
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ] {
            for material in [K1, K2, short] {
                assert!(!text.contains(material), "key material in output:\n{text}");
            }
        }
    }
    assert!(
        outputs.iter().any(|o| !o.stderr.is_empty()),
        "trace logging produced nothing to search"
    );
}

/// `tenant acl` prints the Redis user of an `acl` tenant from the store's rules (its password a placeholder),
/// and `--apply` makes it with the password the store reads: the tenant is then served as that user, and the
/// password appears in no output. A tenant under another strategy is refused in one line; `cache stats` names
/// each tenant's strategy.
#[test]
fn tenant_acl_prints_and_applies_an_acl_tenants_redis_user() {
    let server = RedisServer::start();
    let url = server.url();
    let secret = "s3cret-of-acme";
    let env = [
        ("FERNANDO_CACHE__TENANTS__ACME__ISOLATION", "acl"),
        (
            "FERNANDO_CACHE__TENANTS__ACME__ACL_PASSWORD_ENV",
            "ACME_REDIS_PASSWORD",
        ),
        ("ACME_REDIS_PASSWORD", secret),
    ];
    let out = run_env(&url, &env, &["tenant", "acl", "--tenant", "acme"], b"");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = printed
        .lines()
        .find(|l| l.starts_with("ACL SETUSER "))
        .unwrap_or_else(|| panic!("no ACL SETUSER line: {printed}"));
    assert!(line.starts_with("ACL SETUSER fernando-acme on "), "{line}");
    assert!(line.ends_with(" >PASSWORD"), "{line}");
    for rule in [
        "resetkeys",
        "~fernando:test:{tenant_acme}:*",
        "resetchannels",
        "-@all",
        "+get",
    ] {
        assert!(line.split(' ').any(|w| w == rule), "{rule} in {line}");
    }
    assert!(
        printed.contains("ACME_REDIS_PASSWORD") && !printed.contains(secret),
        "{printed}"
    );

    let out = run_env(
        &url,
        &env,
        &["tenant", "acl", "--tenant", "acme", "--apply"],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("fernando-acme") && !said.contains(secret),
        "{said}"
    );
    let users = server.command(&["ACL", "LIST"]).unwrap();
    assert!(users.contains("user fernando-acme on"), "{users}");

    let entry = ["--tenant", "acme", "--type", "session", "--key", "k"];
    let out = run_env(
        &url,
        &env,
        &[&["cache", "set"][..], &entry[..]].concat(),
        b"value",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_env(
        &url,
        &env,
        &[&["cache", "get"][..], &entry[..]].concat(),
        b"",
    );
    assert_eq!(
        out.stdout,
        b"value",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run_env(&url, &env, &["cache", "stats", "--json"], b"");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["isolation"]["default"], "namespace");
    assert_eq!(stats["isolation"]["tenants"]["acme"], "acl");

    let out = run_env(&url, &env, &["tenant", "acl", "--tenant", "globex"], b"");
    assert_one_line_error(&out, "runs namespace isolation");
}

/// `cache train-dictionary` (issue 32, item 3): trained from the values other processes wrote, run by two
/// processes at once; a value written afterwards by another process is stored far smaller, and every value —
/// written before or after — reads back as written.
#[test]
fn train_dictionary_in_two_processes_at_once_then_later_values_are_smaller_and_all_read_back() {
    let server = RedisServer::start();
    let url = server.url();
    let answer = |i: u32| {
        format!(
            "{{\"status\":\"ok\",\"request_id\":\"req-{:08x}\",\"customer\":\"ACME Office Supplies GmbH\",\
             \"total\":{{\"amount\":\"{}.{:02}\",\"currency\":\"EUR\"}},\"terms\":\"Zahlbar innerhalb von 14 \
             Tagen ohne Abzug\",\"items\":[{{\"sku\":\"DP-A4-{}\",\"quantity\":{}}}]}}",
            i.wrapping_mul(2_654_435_761),
            100 + i % 900,
            i % 100,
            i % 7,
            i % 50 + 1
        )
    };
    fn at(key: &str) -> Vec<&str> {
        vec!["--tenant", "acme", "--type", "api_response", "--key", key]
    }
    for i in 0..40 {
        let out = run(
            &url,
            &args("set", &at(&format!("k-{i}"))),
            answer(i).as_bytes(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let train = || {
        Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", &url])
            .args([
                "cache",
                "train-dictionary",
                "--tenant",
                "acme",
                "--type",
                "api_response",
            ])
            .env_remove("FERNANDO_CACHE_ENV")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run fernando-cache")
    };
    let (first, second) = (train(), train());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("trained on 40 values"), "{said}");
        assert!(said.contains("current in 1 group"), "{said}");
    }
    // Too few values to learn from, and the store's own names: one clear line each, exit 2.
    let out = run(
        &url,
        &[
            "cache",
            "train-dictionary",
            "--tenant",
            "nobody",
            "--type",
            "api_response",
        ],
        b"",
    );
    assert_one_line_error(&out, "no compression dictionary was trained: 0 samples");
    let out = run(&url, &args("set", &at("fc.dictionary.current")), b"x");
    assert_one_line_error(&out, "is reserved");
    let out = run(&url, &args("set", &at("after")), answer(1_000).as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = |key: &str| -> usize {
        let found = server
            .cli(&[
                "SCAN",
                "0",
                "MATCH",
                &format!("*api_response:{key}"),
                "COUNT",
                "1000",
            ])
            .unwrap();
        let full = found.lines().nth(1).expect("the key is stored").to_owned();
        server
            .cli(&["STRLEN", &full])
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (before, after) = (stored("k-7"), stored("after"));
    assert!(
        after * 2 < before,
        "{after} bytes after training, {before} before"
    );
    for (key, i) in [("k-7", 7), ("k-39", 39), ("after", 1_000)] {
        let out = run(&url, &args("get", &at(key)), b"");
        assert_eq!(out.status.code(), Some(0), "{key}");
        assert_eq!(out.stdout, answer(i).as_bytes(), "{key}");
    }
}

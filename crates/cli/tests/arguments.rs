//! What the command line and the configuration say back to a newcomer (issue 30): a TTL out of bounds is refused
//! in the words it was typed, and `stats` says what `--redis-url` does for it. The test profile's in-process
//! backend and a SQLite file: no server needed.

use std::process::{Command, Output, Stdio};

/// Runs `fernando-cache --env test ARGS…` with `env`, an empty stdin, in a fresh folder.
fn run(env: &[(&str, &str)], args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test"])
        .args(args)
        .current_dir(dir.path())
        .env_remove("FERNANDO_CACHE_ENV")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run fernando-cache");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// `cache set --ttl` refuses a TTL out of bounds by what was typed (`0s`, `400d`), not by the parsed value
/// (`0ns`, `34560000s`), before anything is read or written.
#[test]
fn a_ttl_out_of_bounds_is_refused_as_typed_on_the_command_line() {
    for (typed, said) in [
        ("0s", "\"0s\" is zero"),
        ("400d", "\"400d\" is not between 1ms and 366d"),
        ("9600h", "\"9600h\" is not between 1ms and 366d"),
    ] {
        let entry = [
            "cache", "set", "--tenant", "acme", "--type", "session", "--key", "k", "--ttl", typed,
        ];
        let (out, stderr) = run(&[], &entry);
        assert_eq!(out.status.code(), Some(2), "{typed}: {stderr}");
        assert!(stderr.contains(said), "{typed}: {stderr}");
        assert!(
            !stderr.contains("0ns") && !stderr.contains("34560000s"),
            "{stderr}"
        );
    }
    let ok = [
        "cache", "set", "--tenant", "acme", "--type", "session", "--key", "k", "--ttl", "366d",
    ];
    let (out, stderr) = run(&[], &ok);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the longest TTL is fine: {stderr}"
    );
}

/// `proxy --ttl` is held to the same bounds, instead of starting with a TTL nothing can be stored under.
#[test]
fn proxy_refuses_a_ttl_out_of_bounds_as_typed() {
    let (out, stderr) = run(
        &[],
        &[
            "proxy",
            "--origin",
            "http://127.0.0.1:1",
            "--bind",
            "127.0.0.1:0",
            "--ttl",
            "0s",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"0s\" is zero"), "{stderr}");
}

/// A TTL in the configuration is refused by what was written too, with its key (not as
/// `1year 1month 4days 7h 26m 24s is not between 1ms and 1year 18h`).
#[test]
fn a_ttl_out_of_bounds_is_refused_as_typed_in_the_configuration() {
    let (out, stderr) = run(
        &[("FERNANDO_CACHE__TYPES__SESSION__TTL", "9600h")],
        &[
            "cache", "get", "--tenant", "acme", "--type", "session", "--key", "k",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("types.session.ttl"), "{stderr}");
    assert!(
        stderr.contains("\"9600h\" is not between 1ms and 366d"),
        "{stderr}"
    );
    assert!(!stderr.contains("1year"), "{stderr}");
}

/// `stats --help` says where its figures come from and what `--redis-url` changes there; passing it without
/// quotas is said to change nothing, and the statistics are still printed.
#[test]
fn stats_says_what_redis_url_changes_for_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["stats", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("statistics.database_url"), "{help}");
    assert!(
        help.contains("--redis-url matters here only for the tenant quota lines"),
        "{help}"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stats.sqlite3").display());
    let env = [
        ("FERNANDO_CACHE__STATISTICS__ENABLED", "true"),
        ("FERNANDO_CACHE__STATISTICS__DATABASE_URL", db.as_str()),
    ];
    let (out, stderr) = run(&env, &["--redis-url", "redis://127.0.0.1:1", "stats"]);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--redis-url changes nothing for stats without quotas or regions"),
        "{stderr}"
    );
    let (out, stderr) = run(&env, &["stats"]);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("--redis-url"), "no note unasked: {stderr}");
}

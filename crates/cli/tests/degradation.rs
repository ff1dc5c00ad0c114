//! Degradation nobody could miss (issue 30): with the Redis backend out of reach, `process` still answers every
//! document, and its summary — the table and `--json` — says that the cache was unavailable, for how many
//! documents, where it is and why; `cache get` and `cache set` name where and why too.

use std::{path::Path, process::Command};

use fernando_cache_testkit::RedisServer;
use serde_json::Value;

/// A Redis URL nothing answers at: a server started (so the port was free) and killed.
fn unreachable_redis() -> String {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    url
}

fn run(cwd: &Path, url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", url])
        .args(args)
        .current_dir(cwd)
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "200ms")
        .env("FERNANDO_CACHE__REDIS__CONNECT_TIMEOUT", "200ms")
        .output()
        .expect("run fernando-cache");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn process_says_the_cache_was_unavailable_for_how_many_documents_where_and_why() {
    let url = unreachable_redis();
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=2 {
        std::fs::write(
            dir.path().join(format!("invoice-{n}.txt")),
            format!("Invoice number: U-{n}\nTotal: 10.00 EUR\n"),
        )
        .unwrap();
    }
    let (code, stdout, stderr) = run(
        dir.path(),
        &url,
        &["process", "--json", "invoice-1.txt", "invoice-2.txt"],
    );
    assert_eq!(code, Some(0), "every document was still answered: {stderr}");
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    let down = &report["summary"]["cache_unavailable"];
    assert_eq!(down["documents"], 2, "{report}");
    let host_port = url.trim_start_matches("redis://");
    assert!(
        down["cache"]
            .as_str()
            .unwrap_or("")
            .contains(host_port.split('/').next().unwrap()),
        "where: {down}"
    );
    assert!(
        !down["cause"].as_str().unwrap_or("").is_empty(),
        "why: {down}"
    );
    for doc in report["documents"].as_array().unwrap() {
        assert_eq!(doc["fields"]["total"], "10.00 EUR", "{doc}");
    }

    let (code, stdout, _) = run(dir.path(), &url, &["process", "invoice-1.txt"]);
    assert_eq!(code, Some(0));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("cache unavailable for 1 document of 1"))
        .unwrap_or_else(|| panic!("no unavailability line: {stdout}"));
    assert!(
        line.contains(host_port.split('/').next().unwrap()) && line.contains("nothing was stored"),
        "{line}"
    );
}

#[test]
fn a_healthy_cache_adds_no_unavailability_to_the_summary() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.txt"), "Invoice number: H-1\n").unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &server.url(),
        &["process", "--json", "invoice.txt"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["summary"]["cache_unavailable"].is_null(), "{report}");
}

#[test]
fn cache_get_and_set_name_where_the_cache_is_and_why_it_was_not_reached() {
    let url = unreachable_redis();
    let dir = tempfile::tempdir().unwrap();
    let host_port = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for cmd in ["get", "set"] {
        let (code, _, stderr) = run(
            dir.path(),
            &url,
            &[
                "cache", cmd, "--tenant", "acme", "--type", "session", "--key", "k",
            ],
        );
        assert_ne!(code, Some(0), "{cmd}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("unavailable"))
            .unwrap_or_else(|| panic!("{cmd}: {stderr}"));
        assert!(line.contains(&host_port), "{cmd} names where: {line}");
        assert!(
            line.contains('(') && line.contains(')'),
            "{cmd} says why: {line}"
        );
    }
}

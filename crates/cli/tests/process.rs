//! `fernando-cache process` on the sample corpus against a real redis-server: repeated documents come from
//! the cache, a second run is all hits, another tenant shares nothing, and a bad file is one failed row.

use std::{path::PathBuf, process::Command};

use fernando_cache_testkit::{RedisCluster, RedisServer};
use serde_json::Value;

fn samples(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .join(rel)
        .display()
        .to_string()
}

fn process(url: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    process_env(url, &[], args)
}

/// [`process`] with extra environment variables (a cluster's mode and seed nodes).
fn process_env(url: &str, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", url, "process", "--json"])
        .args(args)
        .env_remove("FERNANDO_CACHE_ENV")
        .envs(env.iter().copied())
        .output()
        .expect("run fernando-cache");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code(), json, stderr)
}

fn stages(doc: &Value) -> (String, String, String) {
    let s = &doc["stages"];
    (
        s["document"].as_str().unwrap_or("?").to_owned(),
        s["ocr"].as_str().unwrap_or("?").to_owned(),
        s["extraction"].as_str().unwrap_or("?").to_owned(),
    )
}

#[test]
fn repeated_documents_come_from_the_cache_and_tenants_share_nothing() {
    let server = RedisServer::start();
    repeated_documents(&server.url(), &[]);
}

/// The same, each run its own process, on a Redis Cluster.
#[test]
fn repeated_documents_come_from_the_cache_on_a_cluster_too() {
    let cluster = RedisCluster::start_with(3, 0);
    let urls = cluster.urls();
    let nodes = urls[1..].join(",");
    repeated_documents(
        &urls[0],
        &[
            ("FERNANDO_CACHE__REDIS__MODE", "cluster"),
            ("FERNANDO_CACHE__REDIS__NODES", &nodes),
        ],
    );
}

fn repeated_documents(url: &str, env: &[(&str, &str)]) {
    let process = |url: &str, args: &[&str]| process_env(url, env, args);
    let url = url.to_owned();
    let (code, first, stderr) = process(&url, &["--tenant", "acme", &samples("acme/invoices")]);
    assert_eq!(code, Some(0), "{stderr}");
    let summary = &first["summary"];
    assert_eq!(summary["documents"], 4);
    // The resent invoice has the same bytes as the original: one of the two is answered from the cache.
    assert_eq!(summary["from_cache"], 1, "{summary}");
    assert_eq!(summary["processed"], 3);

    let (_, second, _) = process(&url, &["--tenant", "acme", &samples("acme/invoices")]);
    for doc in second["documents"].as_array().unwrap() {
        assert_eq!(
            stages(doc),
            ("hit".into(), "hit".into(), "hit".into()),
            "{doc}"
        );
    }
    assert_eq!(second["summary"]["from_cache"], 4);

    let (_, other, _) = process(&url, &["--tenant", "globex", &samples("globex/invoices")]);
    for doc in other["documents"].as_array().unwrap() {
        assert_eq!(
            stages(doc).0,
            "miss",
            "globex never sees acme's entries: {doc}"
        );
    }
    let invoice = other["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("INV-7781.pdf"))
        .unwrap();
    assert_eq!(invoice["fields"]["invoice_number"], "INV-7781");
    assert_eq!(invoice["fields"]["total"], "1482.00 GBP");
}

#[test]
fn an_unreadable_file_is_one_failed_row_and_exit_code_1() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.pdf"), b"%PDF-1.4 not really").unwrap();
    std::fs::write(
        dir.path().join("note.txt"),
        b"Invoice number: N-1001\nTotal: 10.00 EUR",
    )
    .unwrap();
    let (code, out, _) = process(&server.url(), &[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let docs = out["documents"].as_array().unwrap();
    assert!(
        docs[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a readable PDF"),
        "{out}"
    );
    assert_eq!(docs[1]["fields"]["invoice_number"], "N-1001");
    assert_eq!(out["summary"]["failed"], 1);
}

/// Issue 14: on a machine without tesseract the README's first command still succeeds — the scans are skipped
/// with the install hint, counted apart from failures — and `--strict` makes the skips fail the run.
#[test]
fn without_tesseract_scans_are_skipped_with_the_install_hint_and_strict_fails() {
    let server = RedisServer::start();
    let env = [(
        "FERNANDO_CACHE__PROCESSOR__TESSERACT",
        "/nonexistent/tesseract",
    )];
    let (code, out, stderr) =
        process_env(&server.url(), &env, &["--tenant", "acme", &samples("acme")]);
    assert_eq!(code, Some(0), "skips alone do not fail the run: {stderr}");
    let summary = &out["summary"];
    let docs = out["documents"].as_array().unwrap();
    let scans: Vec<&Value> = docs
        .iter()
        .filter(|d| d["path"].as_str().unwrap().ends_with(".png"))
        .collect();
    assert_eq!(scans.len(), 2);
    for scan in &scans {
        let why = scan["skipped"].as_str().unwrap_or_else(|| panic!("{scan}"));
        assert!(why.contains("apt-get install tesseract-ocr"), "{why}");
    }
    assert_eq!(summary["skipped"], 2, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(
        docs.iter()
            .filter(|d| d.get("result").is_some() || d.get("fields").is_some())
            .count()
            >= 4,
        "the other documents were processed: {out}"
    );

    let (code, out, _) = process_env(
        &server.url(),
        &env,
        &["--strict", "--tenant", "acme", &samples("acme")],
    );
    assert_eq!(code, Some(1), "--strict fails on skips: {}", out["summary"]);
    assert_eq!(out["summary"]["skipped"], 2);
}

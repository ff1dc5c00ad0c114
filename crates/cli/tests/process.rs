//! `fernando-cache process` on the sample corpus against a real redis-server: repeated documents come from
//! the cache, a second run is all hits, another tenant shares nothing, and a bad file is one failed row.

use std::{
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
};

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
        s["text"].as_str().unwrap_or("?").to_owned(),
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

/// What the local chat-completions endpoint answered: each call's usage and how many characters of document
/// text it was sent.
#[derive(Debug, Clone, Copy)]
struct Answered {
    prompt_tokens: u64,
    completion_tokens: u64,
    text_chars: usize,
}

/// A chat-completions endpoint standing in for the LLM (the only faked part: it is external): it answers
/// fields with a `usage` that differs per call — prompt tokens from the length of what it was sent,
/// completion tokens from the call's number — and keeps what it answered.
fn chat_server_with_usage() -> (String, Arc<Mutex<Vec<Answered>>>) {
    use axum::{Json, Router, routing::post};
    let answered = Arc::new(Mutex::new(Vec::new()));
    let log = answered.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(req): Json<Value>| {
            let log = log.clone();
            async move {
                let text = req["messages"][1]["content"].as_str().unwrap_or_default();
                let mut log = log.lock().unwrap();
                let a = Answered {
                    prompt_tokens: 40 + text.chars().count() as u64 / 4,
                    completion_tokens: 11 + log.len() as u64,
                    text_chars: text.chars().count(),
                };
                log.push(a);
                let content = serde_json::json!({"invoice_number": "X-1", "total": "1.00 EUR"});
                Json(serde_json::json!({
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}}],
                    "usage": {
                        "prompt_tokens": a.prompt_tokens,
                        "completion_tokens": a.completion_tokens,
                        "total_tokens": a.prompt_tokens + a.completion_tokens,
                    },
                }))
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await
        })
    });
    (url, answered)
}

fn sum(rows: &Value, column: &str) -> i64 {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[column].as_i64().unwrap())
        .sum()
}

/// Issue 14: the extractor's tokens and money, priced from `[[prices.models]]`, are recorded as spent on misses
/// and as saved on hits: the statistics database's totals equal the sum of the endpoint's `usage` answers, a
/// second run adds only to "saved", and a text over `processor.openai.max_input_chars` is cut and says so.
#[test]
fn tokens_and_money_are_spent_on_misses_and_saved_by_hits() {
    let server = RedisServer::start();
    let (llm_url, answered) = chat_server_with_usage();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stats.sqlite3").display());
    // Round prices, so the expected money is exact: 1.0 per 1 000 prompt tokens is 1 000 micro-units each.
    std::fs::write(
        dir.path().join("local.toml"),
        "[prices]\ncurrency = \"EUR\"\n\n[[prices.models]]\nmodel = \"test-model\"\ninput_per_1k = 1.0\noutput_per_1k = 2.0\n",
    )
    .unwrap();
    let env = [
        ("FERNANDO_CACHE__STATISTICS__ENABLED", "true"),
        ("FERNANDO_CACHE__STATISTICS__DATABASE_URL", db.as_str()),
        ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__MODEL", "test-model"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__MAX_INPUT_CHARS", "400"),
    ];
    // Distinct documents only (no copy of one another), so the first run has no hit at all.
    let files = [
        samples("acme/invoices/RE-2026-0042.txt"),
        samples("acme/invoices/INV-7781.pdf"),
        samples("acme/letters/payment-reminder.txt"),
    ];
    let mut args = vec![
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--tenant",
        "acme",
    ];
    args.extend(files.iter().map(String::as_str));

    let (code, first, stderr) = process_env(&server.url(), &env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    let calls: Vec<Answered> = answered.lock().unwrap().clone();
    assert_eq!(calls.len(), files.len(), "one model call per document");
    let tokens: u64 = calls
        .iter()
        .map(|a| a.prompt_tokens + a.completion_tokens)
        .sum();
    let money: u64 = calls
        .iter()
        .map(|a| a.prompt_tokens * 1_000 + a.completion_tokens * 2_000)
        .sum();
    let summary = &first["summary"];
    assert_eq!(summary["tokens_spent"], tokens, "{summary}");
    assert_eq!(summary["money_spent_micros"], money, "{summary}");
    assert_eq!(
        summary["tokens_saved"], 0,
        "no hit saves anything: {summary}"
    );
    assert_eq!(summary["money_saved_micros"], 0, "{summary}");
    assert_eq!(summary["currency"], "EUR");
    // Each document reports the usage of its own call, and the long invoice says where it was cut.
    let docs = first["documents"].as_array().unwrap();
    for doc in docs {
        let u = &doc["usage"];
        assert!(
            calls.iter().any(|a| u["prompt_tokens"] == a.prompt_tokens
                && u["completion_tokens"] == a.completion_tokens),
            "{doc}"
        );
    }
    assert!(calls.iter().all(|a| a.text_chars <= 400), "{calls:?}");
    let invoice = docs
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("RE-2026-0042.txt"))
        .unwrap();
    assert_eq!(invoice["truncated"]["sent_chars"], 400, "{invoice}");
    assert!(invoice["truncated"]["total_chars"].as_u64().unwrap() > 400);
    let reminder = docs
        .iter()
        .find(|d| {
            d["path"]
                .as_str()
                .unwrap()
                .ends_with("payment-reminder.txt")
        })
        .unwrap();
    assert!(
        reminder["truncated"].is_null(),
        "short texts are sent whole"
    );

    // The database holds exactly what the endpoint answered.
    let stats = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", &server.url()])
            .args(["--config-dir", dir.path().to_str().unwrap(), "stats"])
            .args(args)
            .env_remove("FERNANDO_CACHE_ENV")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: Value = serde_json::from_str(&stats(&["--json"])).unwrap();
    assert_eq!(sum(&rows, "tokens_spent"), tokens as i64, "{rows}");
    assert_eq!(sum(&rows, "money_spent_micros"), money as i64, "{rows}");
    assert_eq!(sum(&rows, "tokens_saved"), 0, "{rows}");

    // Again: every document comes from the cache; nothing is spent, the whole cost is saved.
    let (code, second, stderr) = process_env(&server.url(), &env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answered.lock().unwrap().len(), files.len(), "no new call");
    let summary = &second["summary"];
    assert_eq!(summary["from_cache"], files.len(), "{summary}");
    assert_eq!(summary["tokens_spent"], 0, "{summary}");
    assert_eq!(summary["money_spent_micros"], 0, "{summary}");
    assert_eq!(summary["tokens_saved"], tokens, "{summary}");
    assert_eq!(summary["money_saved_micros"], money, "{summary}");
    let rows: Value = serde_json::from_str(&stats(&["--json"])).unwrap();
    assert_eq!(
        sum(&rows, "tokens_spent"),
        tokens as i64,
        "hits never add to spent"
    );
    assert_eq!(sum(&rows, "money_spent_micros"), money as i64);
    assert_eq!(sum(&rows, "tokens_saved"), tokens as i64, "{rows}");
    assert_eq!(sum(&rows, "money_saved_micros"), money as i64, "{rows}");
    let table = stats(&[]);
    assert!(
        table.lines().next().unwrap().contains("saved EUR"),
        "{table}"
    );
    let saved = format!("{}.{:06}", money / 1_000_000, money % 1_000_000);
    assert!(table.contains(&saved), "{saved} in\n{table}");
}

/// A folder holding a symbolic link to itself is walked once: the loop is reported and skipped, the documents
/// are processed (the hand-written walk it replaced recursed forever).
#[test]
fn a_symlink_loop_in_a_folder_is_skipped_not_followed_forever() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("note.txt"),
        b"Invoice number: N-1007\nTotal: 1.00 EUR",
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let (code, out, stderr) = process(&server.url(), &[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = out["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{out}");
    assert_eq!(docs[0]["fields"]["invoice_number"], "N-1007");
    assert!(stderr.contains("loop"), "{stderr}");
}

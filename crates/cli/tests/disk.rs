//! The development profile's disk backend (`cache.sqlite3` in the user's data folder), each step its own
//! process, as a new user runs it: a second `process samples/` is answered from the cache; `serve` and
//! `process` use the file at the same time; a `process` SIGKILLed again and again mid-run never leaves an entry
//! that reads back wrong. Each test's home is its own temporary folder, never the real one.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

fn samples(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .join(rel)
}

/// The binary on the development profile, in `dir`, which is also its home: the cache and statistics files
/// are in `dir/data/fernando-cache` (`$XDG_DATA_HOME/fernando-cache`).
fn dev(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fernando-cache"));
    c.args(["--env", "development"])
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env_remove("FERNANDO_CACHE_ENV")
        .env_remove("FERNANDO_CACHE_CONFIG_DIR")
        .env_remove("FERNANDO_CACHE__DATA_DIR");
    c
}

/// `process --json` on the development profile in `dir`: exit code and report.
fn process(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = dev(dir)
        .args(["process", "--json"])
        .args(args)
        .output()
        .expect("run fernando-cache");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn documents(report: &Value) -> &Vec<Value> {
    report["documents"].as_array().expect("a documents array")
}

#[test]
fn a_second_process_run_is_answered_from_the_cache_the_first_one_left_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = samples("").display().to_string();
    let (code, first) = process(dir.path(), &[&inbox]);
    assert!(
        dir.path()
            .join("data/fernando-cache/cache.sqlite3")
            .is_file(),
        "the cache lives in the user's data folder"
    );
    let n = documents(&first).len();
    assert!(n >= 8, "the sample inbox: {first}");
    // Scans fail where tesseract is missing (that is another concern); whatever succeeded is cached.
    let answered = documents(&first)
        .iter()
        .filter(|d| d.get("error").is_none())
        .count();
    assert!(answered >= 8, "{}", first["summary"]);

    let (again, second) = process(dir.path(), &[&inbox]);
    assert_eq!(again, code, "{second}");
    assert_eq!(
        second["summary"]["from_cache"], answered,
        "{}",
        second["summary"]
    );
    for (a, b) in documents(&first).iter().zip(documents(&second)) {
        if a.get("error").is_none() {
            assert_eq!(b["stages"]["document"], "hit", "{b}");
            assert_eq!(
                a["fields"], b["fields"],
                "the cached answer is the computed one"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_process_share_the_cache_file_at_the_same_time() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut serve = dev(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start serve");
    let line = BufReader::new(serve.stdout.take().unwrap())
        .lines()
        .next()
        .expect("serve printed nothing")
        .unwrap();
    let base = line
        .strip_prefix("fernando-cache listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    let client = reqwest::Client::new();
    let upload = |rel: &str| {
        let (client, base, body) = (
            client.clone(),
            base.clone(),
            std::fs::read(samples(rel)).unwrap(),
        );
        async move {
            let r = client
                .post(format!("{base}/v1/documents"))
                .bearer_auth("dev-acme-key")
                .header("content-type", "text/plain")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };

    // While `serve` answers uploads, `process` runs on the same file in its own process.
    let inbox = samples("acme/letters").display().to_string();
    let root = dir.path().to_owned();
    let processing = std::thread::spawn(move || process(&root, &["--tenant", "acme", &inbox]));
    let letters: Vec<String> = std::fs::read_dir(samples("acme/letters"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| format!("acme/letters/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(!letters.is_empty(), "text letters in the samples");
    for rel in &letters {
        let answer = upload(rel).await;
        assert!(answer["fields"].is_object(), "{answer}");
    }
    let (code, report) = processing.join().unwrap();
    assert_eq!(code, Some(0), "process beside serve: {report}");

    // Each side now finds what the other stored: a new `process` run is all hits, and so is serve.
    let inbox = samples("acme/letters").display().to_string();
    let (_, again) = process(dir.path(), &["--tenant", "acme", &inbox]);
    for doc in documents(&again) {
        assert_eq!(doc["stages"]["document"], "hit", "{doc}");
    }
    for rel in &letters {
        assert_eq!(upload(rel).await["stages"]["document"], "hit", "{rel}");
    }
    let _ = serve.kill();
    let _ = serve.wait();
}

#[test]
fn a_process_killed_mid_write_again_and_again_leaves_no_entry_that_reads_back_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // Unique documents, each with its own number and total, long enough to be compressed.
    for i in 0..300 {
        let body = format!(
            "Invoice number: K-{i:05}\nTotal: {i}.50 EUR\n{}",
            format!("line {i} of the terms and conditions.\n").repeat(40)
        );
        std::fs::write(inbox.join(format!("doc-{i:05}.txt")), body).unwrap();
    }
    let folder = inbox.display().to_string();
    for round in 0..6u64 {
        let mut child = dev(dir.path())
            .args(["process", "--json", "--tenant", "acme", &folder])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    let (code, report) = process(dir.path(), &["--tenant", "acme", &folder]);
    assert_eq!(code, Some(0), "{}", report["summary"]);
    let docs = documents(&report);
    assert_eq!(docs.len(), 300);
    let mut hits = 0;
    for doc in docs {
        let path = doc["path"].as_str().unwrap();
        let i: usize = path
            .rsplit("doc-")
            .next()
            .and_then(|s| s.strip_suffix(".txt"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a document path: {path}"));
        assert_eq!(
            doc["fields"]["invoice_number"],
            format!("K-{i:05}"),
            "{doc}"
        );
        assert_eq!(doc["fields"]["total"], format!("{i}.50 EUR"), "{doc}");
        hits += usize::from(doc["stages"]["document"] == "hit");
    }
    assert!(hits > 0, "the killed runs stored some documents");
}

//! Project automation, run as `cargo xtask <command>`:
//!
//! - `test [args…]` — makes sure what the tests need is on this machine (installing `redis-server`, PostgreSQL,
//!   `tesseract-ocr` and `poppler-utils` from the
//!   distribution's packages when run as root), then runs the whole workspace's tests;
//! - `ci` — the gates in the order CI runs them: fmt, clippy `-D warnings`, rustdoc `-D warnings`, then `test`;
//! - `bench store|cluster|tiers|recorder|cached|http|pipeline` — benchmarks against a private redis-server, each reporting ratios
//!   against a baseline measured in the same run (see `docs/benchmarks.md`);
//! - `samples` — regenerates the sample documents in `samples/`;
//! - `migrate [run|status|revert] [--database-url URL]` — the statistics schema on PostgreSQL or SQLite;
//! - `conformance --suite DIR` — the public HTTP-cache conformance suite through `proxy` and with no cache.
//!
//! xtask only orchestrates commands; it must not be a dependency of any library crate.

mod conformance;
mod prerequisites;
mod samples;

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let (cmd, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "test" => test(rest),
        "ci" => ci(),
        "bench" => bench(rest),
        "samples" => samples::write(std::path::Path::new("samples")),
        "migrate" => migrate(rest),
        "conformance" => conformance::run(rest),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask test [cargo test args…] | ci | bench store|cluster|tiers|recorder|cached|http|pipeline | \
                 samples | migrate [run|status|revert] [--database-url URL] | \
                 conformance --suite DIR [--out FILE] [--redis-url URL]"
            );
            Ok(())
        }
        other => bail!("unknown command {other:?}; try `cargo xtask help`"),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(workspace_root());
    c
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn status(mut c: Command, what: &str) -> anyhow::Result<()> {
    eprintln!("xtask: {what}");
    let s = c
        .status()
        .with_context(|| format!("could not run {what}"))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    prerequisites::ensure_redis_server()?;
    prerequisites::ensure_postgres()?;
    prerequisites::ensure_tesseract()?;
    prerequisites::ensure_pdftoppm()?;
    prerequisites::ensure_chromium()?;
    // Doc tests are not among --all-targets; run them too, so README and crate examples stay true.
    let mut tally = Tally::default();
    let mut c = cargo();
    c.args(["test", "--workspace", "--doc"]);
    tally.run(c, "cargo test --workspace --doc")?;
    let mut c = cargo();
    // Libraries, binaries and integration tests; not the benches, which are measurements (`cargo xtask bench`)
    // and are compiled and linted by clippy `--all-targets`.
    c.args(["test", "--workspace", "--lib", "--bins", "--tests"])
        .args(extra);
    tally.run(c, "cargo test --workspace --lib --bins --tests")?;
    println!("tests: {} passed, {} failed", tally.passed, tally.failed);
    if tally.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// Adds up the `test result:` lines of cargo test runs, echoing their output as it comes.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn run(&mut self, mut c: Command, what: &str) -> anyhow::Result<()> {
        use std::io::BufRead;
        eprintln!("xtask: {what}");
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("could not run {what}"))?;
        let stdout = child.stdout.take().context("capturing cargo test output")?;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                self.passed += count_before(rest, " passed");
                self.failed += count_before(rest, " failed");
            }
        }
        let s = child
            .wait()
            .with_context(|| format!("waiting for {what}"))?;
        if !s.success() {
            println!(
                "tests: {} passed, {} failed",
                self.passed,
                self.failed.max(1)
            );
            bail!("{what} failed ({s})");
        }
        Ok(())
    }
}

/// The number just before `label` in `ok. 12 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text[..end].rsplit([' ', '.']).next()?.parse().ok())
        .unwrap_or(0)
}

fn ci() -> anyhow::Result<()> {
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    status(c, "cargo fmt --check")?;
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    status(c, "cargo clippy -D warnings")?;
    let mut c = cargo();
    c.args(["doc", "--workspace", "--no-deps"]).env(
        "RUSTDOCFLAGS",
        "-D warnings -D rustdoc::broken_intra_doc_links",
    );
    status(c, "cargo doc -D warnings")?;
    test(&[])
}

fn bench(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("store") | None => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args([
                "bench",
                "-p",
                "fernando-cache-store",
                "--bench",
                "store",
                "--",
            ])
            .args(&args[args.len().min(1)..]);
            status(c, "store benchmark")
        }
        Some("cluster") => {
            prerequisites::ensure_redis_server()?;
            // The cross-process part runs the binary's `cache probe`: build it first, in release like the bench.
            let mut c = cargo();
            c.args(["build", "--release", "-p", "fernando-cache"]);
            status(c, "build the fernando-cache binary")?;
            let bin = workspace_root().join("target/release/fernando-cache");
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache-store", "--bench", "cluster"])
                .env("FERNANDO_CACHE_BIN", bin);
            status(c, "cluster benchmark")
        }
        Some("tiers") => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache-store", "--bench", "tiers"]);
            status(c, "tiers benchmark")
        }
        Some("recorder") => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache-ops", "--bench", "recorder"]);
            status(c, "recorder benchmark")
        }
        Some("pipeline") => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache", "--bench", "pipeline"]);
            status(c, "pipeline benchmark")
        }
        Some("cached") => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args([
                "bench",
                "-p",
                "fernando-cache-decorators",
                "--bench",
                "cached",
            ]);
            status(c, "#[cached] benchmark")
        }
        Some("http") => {
            prerequisites::ensure_redis_server()?;
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache-http", "--bench", "http"]);
            status(c, "HTTP layer benchmark")?;
            // The proxy binary under attack, against a bare pass-through proxy, and sealed hits.
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache", "--bench", "edge"]);
            status(c, "edge benchmark")
        }
        Some("dashboard") => {
            prerequisites::ensure_redis_server()?;
            // The dashboard's endpoints on the 30-day data set (SQLite and PostgreSQL), then what OTLP export
            // costs a store hit.
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache", "--bench", "dashboard"]);
            status(c, "dashboard benchmark")?;
            let mut c = cargo();
            c.args(["bench", "-p", "fernando-cache-ops", "--bench", "telemetry"]);
            status(c, "telemetry benchmark")
        }
        Some(other) => {
            bail!(
                "unknown benchmark {other:?}; available: store, cluster, tiers, recorder, cached, http, pipeline, \
                 dashboard"
            )
        }
    }
}

/// `cargo xtask migrate [run|status|revert] [--database-url URL]`.
///
/// The URL comes from `--database-url`, else `DATABASE_URL`, else `FERNANDO_CACHE__STATISTICS__DATABASE_URL`,
/// else the development default `sqlite://var/fernando-cache.sqlite3`.
fn migrate(args: &[String]) -> anyhow::Result<()> {
    use fernando_cache_models::{Db, revert_last, run_pending, status};
    let mut action = "run";
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "run" | "status" | "revert" => action = a.as_str(),
            "--database-url" => {
                url = Some(it.next().context("--database-url needs a URL")?.clone())
            }
            other => bail!(
                "unknown migrate argument {other:?}; usage: migrate [run|status|revert] [--database-url URL]"
            ),
        }
    }
    let url = url
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .or_else(|| std::env::var("FERNANDO_CACHE__STATISTICS__DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite://var/fernando-cache.sqlite3".to_owned());
    let mut db = Db::open(&url)?;
    match action {
        "run" => {
            let applied = run_pending(&mut db)?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for v in applied {
                println!("applied {v}");
            }
        }
        "status" => {
            let st = status(&mut db)?;
            for v in &st.applied {
                println!("applied  {v}");
            }
            for v in &st.pending {
                println!("pending  {v}");
            }
        }
        _ => println!("reverted {}", revert_last(&mut db)?),
    }
    Ok(())
}

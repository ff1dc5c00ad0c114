//! Project automation, run as `cargo xtask <command>`:
//!
//! - `test [args…]` — makes sure what the tests need is on this machine (installing `redis-server`, PostgreSQL,
//!   `tesseract-ocr` and `poppler-utils` from the distribution's packages when run as root), runs the whole
//!   workspace's tests to the end whatever fails, then every bench in smoke mode (not when `args` narrow the
//!   run), and prints one summary of what failed (see `testing.rs`);
//! - `ci` — the gates in the order CI runs them: fmt, clippy `-D warnings`, rustdoc `-D warnings`, every example
//!   of `examples/` run to a clean exit (`EXAMPLES`), then `test`;
//! - `bench <name>|all [--smoke] [args…]` — benchmarks against a private redis-server, each reporting ratios
//!   against a baseline measured in the same run (see `docs/benchmarks.md`); `--smoke` runs them on a debug build,
//!   each row once in a short window, to prove they still run (see `bench.rs`);
//! - `samples` — regenerates the sample documents in `samples/`;
//! - `migrate [run|status|revert] [--database-url URL]` — the statistics schema on PostgreSQL or SQLite;
//! - `conformance --suite DIR` — the public HTTP-cache conformance suite through `proxy` and with no cache.
//!
//! xtask only orchestrates commands; it must not be a dependency of any library crate.

mod bench;
mod conformance;
mod prerequisites;
mod samples;
mod testing;

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command; `test` and `ci` say themselves whether the tests passed (their summary ends the output).
fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (cmd, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "test" => testing::run(rest),
        "ci" => ci(),
        "bench" => bench::run(rest).map(|()| ExitCode::SUCCESS),
        "samples" => samples::write(std::path::Path::new("samples")).map(|()| ExitCode::SUCCESS),
        "migrate" => migrate(rest).map(|()| ExitCode::SUCCESS),
        "conformance" => conformance::run(rest).map(|()| ExitCode::SUCCESS),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask test [cargo test args…] | ci | bench {}|all [--smoke] [args…] | samples | \
                 migrate [run|status|revert] [--database-url URL] | \
                 conformance --suite DIR [--out FILE] [--redis-url URL]",
                bench::names().join("|")
            );
            Ok(ExitCode::SUCCESS)
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

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the workspace), else `target/` in the workspace.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    )
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

fn ci() -> anyhow::Result<ExitCode> {
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
    for features in ["", "redis", "disk", "seal"] {
        let mut c = cargo();
        c.args([
            "check",
            "--package",
            "fernando-cache-store",
            "--no-default-features",
        ]);
        if !features.is_empty() {
            c.args(["--features", features]);
        }
        status(
            c,
            &format!("cargo check fernando-cache-store features [{features}]"),
        )?;
    }
    // The HTTP layer without its `server` feature (the workspace build always has it, through the binary).
    let mut c = cargo();
    c.args(["check", "--package", "fernando-cache-http"]);
    status(
        c,
        "cargo check fernando-cache-http without the server feature",
    )?;
    for example in EXAMPLES {
        let mut c = cargo();
        c.args([
            "run",
            "--quiet",
            "--package",
            "fernando-cache-examples",
            "--example",
            example,
        ]);
        status(c, &format!("cargo run --example {example}"))?;
    }
    testing::run(&[])
}

/// The examples of `examples/` (its `[[example]]` targets), which CI runs: each must exit 0 with no server.
const EXAMPLES: [&str; 4] = ["store", "cached", "axum_layer", "pipeline"];

/// `cargo xtask migrate [run|status|revert] [--database-url URL]`.
///
/// The URL comes from `--database-url`, else `DATABASE_URL`, else the program's own settings (the profile of
/// `FERNANDO_CACHE_ENV`, `FERNANDO_CACHE__STATISTICS__DATABASE_URL`, `FERNANDO_CACHE__DATA_DIR`, `./config`):
/// by default the SQLite file in the user's data folder that `fernando-cache process` and `stats` use.
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
    let url = match url.or_else(|| std::env::var("DATABASE_URL").ok()) {
        Some(url) => url,
        None => {
            use fernando_cache_config::{ExposeSecret, LoadOptions, Settings};
            let settings = Settings::load(LoadOptions::new())
                .context("the program's settings, for the statistics database's URL")?;
            settings.statistics.database_url.expose_secret().to_owned()
        }
    };
    println!(
        "statistics database: {}",
        fernando_cache_models::describe_url(&url)
    );
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

//! `cargo xtask bench <name>|all [--smoke] [args…]`: the benchmark binaries of the workspace, run measuring —
//! release builds through `cargo bench`, figures as docs/benchmarks.md reports them — or as a smoke test
//! (`--smoke`): debug builds through `cargo test` with `BENCH_SMOKE=1`, every row once in one short window and
//! counts cut down (the testkit's `bench` module), figures not judged; what `cargo xtask test` runs after the tests
//! so that no bench can rot unnoticed.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{cargo, prerequisites, status, target_dir};

/// One bench binary (a `[[bench]]` target) and what it needs.
struct Bench {
    /// The `cargo xtask bench` name that runs it (several binaries may share one).
    name: &'static str,
    package: &'static str,
    target: &'static str,
    /// It reads statistics from PostgreSQL.
    postgres: bool,
    /// It renders and reads scans (`pdftoppm`, `tesseract`).
    ocr: bool,
    /// It runs the `fernando-cache` binary found at `FERNANDO_CACHE_BIN`.
    binary: bool,
}

impl Bench {
    const fn new(name: &'static str, package: &'static str, target: &'static str) -> Bench {
        Bench {
            name,
            package,
            target,
            postgres: false,
            ocr: false,
            binary: false,
        }
    }
}

/// Every bench binary, in the order `all` runs them; `all` fails when a `[[bench]]` of the workspace is missing
/// here, so none is left out of the smoke run.
const BENCHES: &[Bench] = &[
    Bench::new("store", "fernando-cache-store", "store"),
    Bench {
        binary: true,
        ..Bench::new("cluster", "fernando-cache-store", "cluster")
    },
    Bench::new("tiers", "fernando-cache-store", "tiers"),
    Bench::new("regions", "fernando-cache-store", "regions"),
    Bench::new("recorder", "fernando-cache-ops", "recorder"),
    Bench::new("cached", "fernando-cache-decorators", "cached"),
    // The HTTP layer in process, then the proxy binary under attack, against a bare pass-through proxy, and
    // sealed hits.
    Bench::new("http", "fernando-cache-http", "http"),
    Bench::new("http", "fernando-cache", "edge"),
    Bench {
        ocr: true,
        binary: true,
        ..Bench::new("pipeline", "fernando-cache", "pipeline")
    },
    // The dashboard's endpoints on the 30-day data set (SQLite and PostgreSQL), then what OTLP export costs a
    // store hit.
    Bench {
        postgres: true,
        ..Bench::new("dashboard", "fernando-cache", "dashboard")
    },
    Bench::new("dashboard", "fernando-cache-ops", "telemetry"),
];

/// The package whose benches build the `fernando-cache` binary beside them (`CARGO_BIN_EXE_fernando-cache`).
const BINARY_PACKAGE: &str = "fernando-cache";

/// The `cargo xtask bench` names, in order.
pub(crate) fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for b in BENCHES {
        if !names.contains(&b.name) {
            names.push(b.name);
        }
    }
    names
}

/// `cargo xtask bench …`: `args` is a bench name (default `store`) or `all`, `--smoke` anywhere, and arguments
/// for the bench binaries.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut rest = args.iter().filter(|a| *a != "--smoke");
    let name = rest.next().map_or("store", String::as_str);
    let bench_args: Vec<String> = rest.cloned().collect();
    let selected: Vec<&Bench> = match name {
        "all" => {
            check_complete()?;
            BENCHES.iter().collect()
        }
        _ => BENCHES.iter().filter(|b| b.name == name).collect(),
    };
    if selected.is_empty() {
        bail!(
            "unknown benchmark {name:?}; available: {}, or all",
            names().join(", ")
        );
    }
    if smoke {
        let failed: Vec<&str> = run_smoke(&selected, &bench_args)?
            .into_iter()
            .filter(|r| !r.passed)
            .map(|r| r.target)
            .collect();
        if !failed.is_empty() {
            bail!("bench smoke run failed: {}", failed.join(", "));
        }
        return Ok(());
    }
    ensure_prerequisites(&selected)?;
    let binary = if selected.iter().any(|b| b.binary) {
        // Built in release like the benches, which run it.
        let mut c = cargo();
        c.args(["build", "--release", "-p", BINARY_PACKAGE]);
        status(c, "build the fernando-cache binary")?;
        // A copy: `cargo bench` of the binary's own package builds it again in the bench profile (with debug
        // info, five times the size, slower to start) at the same path.
        let built = target_dir().join("release/fernando-cache");
        let copy = target_dir().join("xtask-bench/fernando-cache");
        std::fs::create_dir_all(copy.parent().expect("a parent folder"))?;
        std::fs::copy(&built, &copy)
            .with_context(|| format!("copy {} to {}", built.display(), copy.display()))?;
        Some(copy)
    } else {
        None
    };
    for b in selected {
        let mut c = cargo();
        c.args(["bench", "-p", b.package, "--bench", b.target, "--"])
            .args(&bench_args);
        if let Some(bin) = binary.as_ref().filter(|_| b.binary) {
            c.env("FERNANDO_CACHE_BIN", bin);
        }
        status(c, &format!("{} benchmark", b.target))?;
    }
    Ok(())
}

/// How one bench's smoke run went.
pub(crate) struct SmokeResult {
    pub(crate) target: &'static str,
    pub(crate) passed: bool,
    pub(crate) took: Duration,
}

/// Every bench in smoke mode: `cargo xtask bench all --smoke`, as `cargo xtask test` runs it.
///
/// # Errors
/// When a prerequisite cannot be installed, a bench is missing from the table, or cargo cannot be run.
pub(crate) fn smoke_all() -> anyhow::Result<Vec<SmokeResult>> {
    check_complete()?;
    run_smoke(&BENCHES.iter().collect::<Vec<_>>(), &[])
}

/// Builds `selected` (debug, test profile: the tests' own build of every dependency) and runs each in smoke
/// mode to the end, whatever the others do; prints one line per bench and a summary.
fn run_smoke(selected: &[&Bench], bench_args: &[String]) -> anyhow::Result<Vec<SmokeResult>> {
    ensure_prerequisites(selected)?;
    // Every bench is built by one cargo run over the whole workspace, so dependencies are built with the same
    // features as for the tests and nothing is built twice. A bench that runs the binary needs it built beside
    // the benches of its package: add those.
    let mut build: Vec<&Bench> = selected.to_vec();
    if selected.iter().any(|b| b.binary) {
        build.extend(BENCHES.iter().filter(|b| {
            b.package == BINARY_PACKAGE && !selected.iter().any(|s| s.target == b.target)
        }));
    }
    let mut c = smoke_cargo();
    c.arg("--no-run");
    for b in &build {
        c.args(["--bench", b.target]);
    }
    status(c, "build the benches (debug) for a smoke run")?;
    let binary = target_dir().join("debug/fernando-cache");
    let mut results = Vec::new();
    for b in selected {
        let mut c = smoke_cargo();
        c.args(["--bench", b.target, "--"]).args(bench_args);
        if b.binary {
            c.env("FERNANDO_CACHE_BIN", &binary);
        }
        eprintln!("xtask: {} benchmark, smoke run", b.target);
        let started = Instant::now();
        let passed = c
            .status()
            .with_context(|| format!("could not run the {} benchmark", b.target))?
            .success();
        let took = started.elapsed();
        eprintln!(
            "xtask: {} benchmark (smoke) {} in {:.1} s",
            b.target,
            if passed { "ran to the end" } else { "FAILED" },
            took.as_secs_f64()
        );
        results.push(SmokeResult {
            target: b.target,
            passed,
            took,
        });
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.target)
        .collect();
    let total: Duration = results.iter().map(|r| r.took).sum();
    eprintln!(
        "xtask: bench smoke run: {} of {} ran to the end in {:.0} s{}",
        results.len() - failed.len(),
        results.len(),
        total.as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    );
    Ok(results)
}

/// `cargo test --workspace` with `BENCH_SMOKE=1`: a debug build run to completion, one bench at a time.
fn smoke_cargo() -> Command {
    let mut c = cargo();
    c.args(["test", "--workspace"]).env("BENCH_SMOKE", "1");
    c
}

fn ensure_prerequisites(selected: &[&Bench]) -> anyhow::Result<()> {
    prerequisites::ensure_redis_server()?;
    if selected.iter().any(|b| b.postgres) {
        prerequisites::ensure_postgres()?;
    }
    if selected.iter().any(|b| b.ocr) {
        prerequisites::ensure_tesseract()?;
        prerequisites::ensure_pdftoppm()?;
    }
    Ok(())
}

/// Fails unless every `[[bench]]` target of the workspace (from `cargo metadata`) is in [`BENCHES`], under its
/// own package.
fn check_complete() -> anyhow::Result<()> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let mut missing = Vec::new();
    for package in meta["packages"].as_array().context("metadata packages")? {
        let name = package["name"].as_str().unwrap_or_default();
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bench = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k.as_str() == Some("bench")));
            let target_name = target["name"].as_str().unwrap_or_default();
            if is_bench
                && !BENCHES
                    .iter()
                    .any(|b| b.package == name && b.target == target_name)
            {
                missing.push(format!(
                    "{name}: {}",
                    target["src_path"].as_str().unwrap_or(target_name)
                ));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "benches no `cargo xtask bench` name runs (add them to BENCHES in xtask/src/bench.rs, so that the \
             smoke run covers them): {}",
            missing.join(", ")
        );
    }
    Ok(())
}

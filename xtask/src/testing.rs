//! `cargo xtask test [args…]`: every test of the workspace run to the end — doc tests, then libraries, binaries and
//! integration tests, both with `--no-fail-fast` — then every bench in smoke mode (`cargo xtask bench all
//! --smoke`; skipped when `args` narrow the run). One summary at the end names every test binary and bench that
//! failed, so a newcomer learns everything that fails at once; its last line is `tests: N passed, M failed` (a
//! bench's smoke run counts as one test), and the exit code is failure when anything failed.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, ExitCode},
    sync::{Arc, Mutex, PoisonError, mpsc},
    time::Duration,
};

use anyhow::Context;

use crate::{bench, cargo, prerequisites};

/// How long to keep reading a run's output after cargo has exited: a process a test started and left running can
/// hold the output open, and must not hold the summary back.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn run(extra: &[String]) -> anyhow::Result<ExitCode> {
    prerequisites::ensure_redis_server()?;
    prerequisites::ensure_postgres()?;
    prerequisites::ensure_tesseract()?;
    prerequisites::ensure_pdftoppm()?;
    prerequisites::ensure_chromium()?;
    let mut tally = Tally::default();
    // Doc tests are not among --all-targets; run them too, so README and crate examples stay true.
    let mut c = cargo();
    c.args(["test", "--workspace", "--doc", "--no-fail-fast"]);
    tally.run(c, "cargo test --workspace --doc")?;
    let mut c = cargo();
    // Libraries, binaries and integration tests; the benches follow as smoke tests.
    c.args([
        "test",
        "--workspace",
        "--lib",
        "--bins",
        "--tests",
        "--no-fail-fast",
    ])
    .args(extra);
    tally.run(c, "cargo test --workspace --lib --bins --tests")?;
    if extra.is_empty() {
        match bench::smoke_all() {
            Ok(results) => {
                for r in results {
                    tally.bench(r.target, r.passed);
                }
            }
            Err(e) => tally.fail(format!("bench smoke run: {e:#}")),
        }
    } else {
        eprintln!(
            "xtask: bench smoke run skipped: test arguments narrow this run (`cargo xtask bench all --smoke` runs it)"
        );
    }
    Ok(tally.finish())
}

/// What the runs came to.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    /// Test binaries that reported.
    binaries: usize,
    /// Bench smoke runs.
    benches: usize,
    /// Every test binary, bench and run that failed, in the order they ran.
    failures: Vec<String>,
}

impl Tally {
    /// Runs a `cargo test` to its end, echoing its output (stdout and stderr, in the order written) and adding up
    /// its test binaries' results.
    fn run(&mut self, mut c: Command, what: &str) -> anyhow::Result<()> {
        eprintln!("xtask: {what}");
        // One pipe for both streams, so that a binary's `test result:` line follows the `Running` line cargo
        // printed for it.
        let (reader, writer) = std::io::pipe().context("a pipe for cargo's output")?;
        c.stdout(writer.try_clone().context("a pipe for cargo's output")?)
            .stderr(writer);
        let mut child = c.spawn().with_context(|| format!("could not run {what}"))?;
        // The command holds the pipe's write ends: let them go, so that reading ends when cargo and its tests do.
        drop(c);
        let parse = Arc::new(Mutex::new(Parse::default()));
        let (done, finished) = mpsc::channel();
        {
            let parse = parse.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut buf = Vec::new();
                // Read to the end whatever it holds (invalid UTF-8, a closed stdout): cargo must never block
                // on a full pipe.
                loop {
                    buf.clear();
                    if !reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']);
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                    parse
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .line(line);
                }
                let _ = done.send(());
            });
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for {what}"))?;
        if finished.recv_timeout(DRAIN_GRACE).is_err() {
            eprintln!(
                "xtask: {what} has exited, but a process it started still holds its output open; not waiting for it"
            );
        }
        let mut parse = std::mem::take(&mut *parse.lock().unwrap_or_else(PoisonError::into_inner));
        parse.close();
        self.passed += parse.passed;
        self.failed += parse.failed;
        self.binaries += parse.binaries;
        let none_named = parse.failures.is_empty();
        self.failures.extend(parse.failures);
        if !status.success() && none_named {
            self.fail(format!(
                "{what} failed ({status}) before any test binary reported a failure: see above"
            ));
        }
        Ok(())
    }

    /// A bench's smoke run: one test.
    fn bench(&mut self, target: &str, passed: bool) {
        self.benches += 1;
        if passed {
            self.passed += 1;
        } else {
            self.fail(format!(
                "bench smoke run: {target} (cargo xtask bench all --smoke)"
            ));
        }
    }

    /// A failure that no `test result:` line counted.
    fn fail(&mut self, what: String) {
        self.failed += 1;
        self.failures.push(what);
    }

    /// Prints the summary, ending with the closing line, and says how the whole run went.
    fn finish(mut self) -> ExitCode {
        if self.passed == 0 && self.failures.is_empty() {
            self.fail("no test ran".to_owned());
        }
        println!(
            "xtask: {} test binaries and {} bench smoke runs",
            self.binaries, self.benches
        );
        if !self.failures.is_empty() {
            println!("xtask: {} failed:", self.failures.len());
            for f in &self.failures {
                println!("    {f}");
            }
        }
        println!("tests: {} passed, {} failed", self.passed, self.failed);
        if self.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// One `cargo test` run's output, read line by line: each test binary cargo announces, and its `test result:`.
#[derive(Default)]
struct Parse {
    passed: u64,
    failed: u64,
    binaries: usize,
    failures: Vec<String>,
    /// The binary whose output is being read, and its result once it reported one (`true`: ok).
    current: Option<(String, Option<bool>)>,
}

impl Parse {
    fn line(&mut self, line: &str) {
        if let Some(binary) = announced_binary(line) {
            self.close();
            self.binaries += 1;
            self.current = Some((binary, None));
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            self.passed += count_before(rest, " passed");
            self.failed += count_before(rest, " failed");
            if let Some((_, result)) = &mut self.current {
                *result = Some(result.unwrap_or(true) && rest.starts_with("ok"));
            }
        }
    }

    /// Ends the current binary: failed if it said so, or if it ended without a result (it crashed or was killed).
    fn close(&mut self) {
        match self.current.take() {
            Some((_, Some(true))) | None => {}
            Some((binary, Some(false))) => self.failures.push(binary),
            Some((binary, None)) => {
                self.failed += 1;
                self.failures.push(format!(
                    "{binary}: ended without a test result (crashed or killed)"
                ));
            }
        }
    }
}

/// The test binary a line of cargo's announces, named for a reader: `     Running tests/server.rs
/// (target/debug/deps/server-1a2b3c)` → `tests/server.rs (server)`, `   Doc-tests fernando_cache_store` → `doc
/// tests of fernando_cache_store`. Cargo's status words are right-aligned, so its lines start with a space; a
/// verbose build's ``Running `rustc …` `` is no binary.
fn announced_binary(line: &str) -> Option<String> {
    if !line.starts_with(' ') {
        return None;
    }
    let line = line.trim_start();
    if let Some(rest) = line.strip_prefix("Running ") {
        let (what, path) = rest.rsplit_once(" (")?;
        let path = path.strip_suffix(')')?;
        let file = std::path::Path::new(path).file_name()?.to_str()?;
        let binary = file.rsplit_once('-').map_or(file, |(name, _hash)| name);
        return (!what.starts_with('`')).then(|| format!("{what} ({binary})"));
    }
    line.strip_prefix("Doc-tests ")
        .map(|krate| format!("doc tests of {krate}"))
}

/// The number just before `label` in `ok. 12 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text[..end].rsplit([' ', '.']).next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_binary_is_judged_by_its_own_result_line() {
        let mut p = Parse::default();
        for line in [
            "   Compiling fernando-cache-store v0.1.0",
            "     Running unittests src/lib.rs (target/debug/deps/fernando_cache_store-0a1b2c3d)",
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.2s",
            "     Running tests/server.rs (target/debug/deps/server-9f8e7d)",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s",
            "     Running tests/cli.rs (target/debug/deps/cli-1234)",
            "   Doc-tests fernando_cache_keys",
            "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s",
        ] {
            p.line(line);
        }
        p.close();
        assert_eq!((p.passed, p.failed, p.binaries), (19, 3, 4));
        assert_eq!(
            p.failures,
            [
                "tests/server.rs (server)".to_owned(),
                "tests/cli.rs (cli): ended without a test result (crashed or killed)".to_owned(),
            ]
        );
    }

    #[test]
    fn only_cargo_announces_binaries() {
        assert_eq!(
            announced_binary("Running tests/x.rs (target/debug/deps/x-1)"),
            None
        );
        assert_eq!(
            announced_binary("     Running `rustc --crate-name x (y)`"),
            None
        );
        assert_eq!(
            announced_binary("     Running tests/store/main.rs (target/debug/deps/store-77)")
                .as_deref(),
            Some("tests/store/main.rs (store)")
        );
    }
}

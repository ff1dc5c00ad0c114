//! `cargo xtask conformance --suite DIR [--out FILE] [--redis-url URL]`: the public HTTP-cache conformance
//! suite (the http-tests/cache-tests repository, as published; not its older npm package) run against
//! `fernando-cache proxy` and against its origin with no cache in between, scored as the suite scores
//! (`test-engine/lib/results.mjs`), with the tests that pass with no cache but fail through the proxy listed
//! as regressions. The per-test result file (`docs/conformance/results.tsv` by default) is kept in the
//! repository, so a regression shows in review.
//!
//! Only loopback addresses are used: the suite's origin is made to listen on 127.0.0.1 (`conformance/loopback.mjs`).

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, bail};
use serde_json::Value;

/// One test of the suite, as `conformance/meta.mjs` lists it.
struct Meta {
    id: String,
    kind: String,
    depends_on: Vec<String>,
}

struct Options {
    suite: PathBuf,
    out: PathBuf,
    redis_url: String,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut suite = None;
    let mut out = super::workspace_root().join("docs/conformance/results.tsv");
    let mut redis_url = "redis://127.0.0.1:6379/15".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--suite" => suite = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            "--redis-url" => redis_url = value()?.clone(),
            other => bail!(
                "unknown option {other:?}; usage: cargo xtask conformance --suite DIR [--out FILE] [--redis-url URL]"
            ),
        }
    }
    let suite =
        suite.context("--suite DIR: a checkout of the http-tests/cache-tests repository")?;
    let suite =
        std::fs::canonicalize(&suite).with_context(|| format!("--suite {}", suite.display()))?;
    if !suite.join("test-engine/cli.mjs").exists() {
        bail!(
            "{} is not the cache-tests repository (no test-engine/cli.mjs); the npm package is an older layout",
            suite.display()
        );
    }
    Ok(Options {
        suite,
        out,
        redis_url,
    })
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with stdout piped and returns the `http://…` address of the first stdout line naming one.
fn start_announcing(mut cmd: Command, what: &str) -> anyhow::Result<(Running, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("http://") {
            let addr = line[at..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(['/', ';', ','])
                .to_owned();
            std::thread::spawn(move || for _ in lines {});
            return Ok((running, addr));
        }
    }
    bail!("{what} ended before it said where it listens")
}

fn node(suite: &Path) -> Command {
    let mut c = Command::new("node");
    c.current_dir(suite);
    c
}

/// The suite's client against `base`: test id → `true` or `[error, message]`.
fn run_client(suite: &Path, base: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    eprintln!("xtask: running the suite against {base} (about a minute)");
    let out = node(suite)
        .args(["--no-warnings", "test-engine/cli.mjs"])
        .env("npm_config_base", base)
        // Both empty, or the client takes single-test mode.
        .env("npm_config_id", "")
        .env("npm_package_config_id", "")
        .stderr(Stdio::inherit())
        .output()
        .context("running the suite's client (node)")?;
    if !out.status.success() {
        bail!("the suite's client failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("the suite's client printed no JSON")
}

/// The suite's status of a test (`determineTestResult` with dependencies honoured).
fn status(
    id: &str,
    meta: &HashMap<&str, &Meta>,
    results: &BTreeMap<String, Value>,
    memo: &mut HashMap<String, &'static str>,
) -> &'static str {
    if let Some(s) = memo.get(id) {
        return s;
    }
    let s = match (meta.get(id), results.get(id)) {
        (_, None) | (None, _) => "untested",
        (Some(m), Some(r)) => {
            let deps_ok = m.depends_on.iter().all(|d| {
                let s = status(d, meta, results, memo);
                s == "pass" || s == "yes"
            });
            let error = r.as_array().and_then(|a| a.first()).and_then(Value::as_str);
            let message = r.as_array().and_then(|a| a.get(1)).and_then(Value::as_str);
            if !deps_ok {
                "dependency_fail"
            } else if error == Some("Setup") {
                if message == Some("retry") {
                    "retry"
                } else {
                    "setup_fail"
                }
            } else if error == Some("AbortError") {
                "harness_fail"
            } else {
                let passed = r == &Value::Bool(true);
                match (m.kind.as_str(), passed) {
                    ("optimal", true) => "pass",
                    ("optimal", false) => "optional_fail",
                    ("check", true) => "yes",
                    ("check", false) => "no",
                    (_, true) => "pass",
                    (_, false) => "fail",
                }
            }
        }
    };
    memo.insert(id.to_owned(), s);
    s
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let o = options(args)?;
    let root = super::workspace_root();
    if !o.suite.join("node_modules/undici").exists() {
        super::status(
            {
                let mut c = Command::new("npm");
                c.current_dir(&o.suite)
                    .args(["install", "--omit=dev", "--no-audit", "--no-fund"]);
                c
            },
            "npm install in the suite (its client's own dependencies)",
        )?;
    }
    super::status(
        {
            let mut c = super::cargo();
            c.args(["build", "--quiet", "-p", "fernando-cache"]);
            c
        },
        "cargo build -p fernando-cache",
    )?;
    let meta_out = node(&o.suite)
        .arg(root.join("xtask/conformance/meta.mjs"))
        .arg(&o.suite)
        .output()
        .context("reading the suite's tests (node)")?;
    let listed: Vec<Value> =
        serde_json::from_slice(&meta_out.stdout).context("the suite's test list")?;
    let tests: Vec<Meta> = listed
        .iter()
        .map(|t| Meta {
            id: t["id"].as_str().unwrap_or_default().to_owned(),
            kind: t["kind"].as_str().unwrap_or("required").to_owned(),
            depends_on: t["depends_on"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let meta: HashMap<&str, &Meta> = tests.iter().map(|t| (t.id.as_str(), t)).collect();

    // The suite's origin, on loopback only.
    let loopback = format!(
        "file://{}",
        root.join("xtask/conformance/loopback.mjs").display()
    );
    let mut origin_cmd = node(&o.suite);
    origin_cmd
        .args(["--import", &loopback, "test-engine/server/server.mjs"])
        .env("npm_config_protocol", "http")
        .env("npm_config_port", "0")
        .env(
            "npm_config_pidfile",
            std::env::temp_dir().join("fernando-cache-conformance-origin.pid"),
        );
    let (_origin, origin) = start_announcing(origin_cmd, "the suite's origin")?;
    let nocache = run_client(&o.suite, &origin)?;

    let flushed = Command::new("redis-cli")
        .args(["-u", &o.redis_url, "FLUSHDB"])
        .output()
        .context("redis-cli FLUSHDB")?;
    if !flushed.status.success() {
        bail!("redis-cli -u {} FLUSHDB failed", o.redis_url);
    }
    let mut proxy_cmd = Command::new(root.join("target/debug/fernando-cache"));
    proxy_cmd
        .args(["--env", "test", "--redis-url", &o.redis_url, "proxy"])
        .args([
            "--origin",
            &origin,
            "--bind",
            "127.0.0.1:0",
            "--tenant",
            "conformance",
        ])
        // The suite numbers its requests in a header its origin reads; it changes no response.
        .args(["--forward-header", "Req-Num"])
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_RATE", "0")
        .env("FERNANDO_CACHE_LOG", "warn");
    let (_proxy, proxy) = start_announcing(proxy_cmd, "fernando-cache proxy")?;
    let through = run_client(&o.suite, &proxy)?;

    let mut memo = HashMap::new();
    let mut lines = Vec::new();
    let (mut passed, mut required, mut required_passed) = (0, 0, 0);
    let mut regressions = Vec::new();
    let mut required_failures = Vec::new();
    for t in &tests {
        let s = status(&t.id, &meta, &through, &mut memo);
        let ok = through.get(&t.id) == Some(&Value::Bool(true));
        let ok_without = nocache.get(&t.id) == Some(&Value::Bool(true));
        passed += usize::from(ok);
        if t.kind == "required" {
            required += 1;
            required_passed += usize::from(ok);
            if !ok {
                required_failures.push(format!("{} ({s})", t.id));
            }
        }
        if ok_without && !ok {
            regressions.push(format!("{} ({s})", t.id));
        }
        lines.push(format!(
            "{}\t{}\t{s}\t{}",
            t.id,
            t.kind,
            if ok_without {
                "passes-without-cache"
            } else {
                "-"
            }
        ));
    }
    lines.sort();
    let nocache_passed = tests
        .iter()
        .filter(|t| nocache.get(&t.id) == Some(&Value::Bool(true)))
        .count();
    let mut summary = vec![
        format!("suite: {}", o.suite.display()),
        format!(
            "fernando-cache proxy: {passed} of {} passed; required {required_passed} of {required}",
            tests.len()
        ),
        format!("no cache: {nocache_passed} of {}", tests.len()),
        format!("regressions against no cache: {}", regressions.len()),
    ];
    summary.extend(regressions.iter().map(|r| format!("  {r}")));
    summary.push(format!(
        "required tests not passed: {}",
        required_failures.len()
    ));
    summary.extend(required_failures.iter().map(|r| format!("  {r}")));
    for (name, file) in [
        ("Squid", "squid.json"),
        ("nginx", "nginx.json"),
        ("Varnish", "varnish.json"),
    ] {
        if let Ok(text) = std::fs::read_to_string(o.suite.join("results").join(file))
            && let Ok(theirs) = serde_json::from_str::<BTreeMap<String, Value>>(&text)
        {
            let n = tests
                .iter()
                .filter(|t| theirs.get(&t.id) == Some(&Value::Bool(true)))
                .count();
            summary.push(format!(
                "{name} (the suite's published results): {n} of {}",
                tests.len()
            ));
        }
    }
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let header = "# id\tkind\tstatus through fernando-cache proxy\tpasses with no cache\n";
    std::fs::write(&o.out, format!("{header}{}\n", lines.join("\n")))
        .with_context(|| format!("writing {}", o.out.display()))?;
    let summary_file = o.out.with_extension("summary.txt");
    std::fs::write(&summary_file, format!("{}\n", summary.join("\n")))?;
    for l in &summary {
        println!("{l}");
    }
    println!("per-test results: {}", o.out.display());
    Ok(())
}

//! Single-flight across processes: 8 OS processes of the real binary (`cache probe`) miss one cold key at the
//! same moment, on a real redis-server — the computation runs once in all; a leader SIGKILLed mid-computation
//! is replaced by exactly one other process once its lease lapses; with Redis down each process computes once.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use fernando_cache_testkit::RedisServer;
use serde_json::Value;

const PROCESSES: usize = 8;
const CALLERS: &str = "32";

/// One probe process and what it printed.
struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// A line a probe printed: `(probe index, line)`.
type Line = (usize, String);

/// Starts `PROCESSES` probes against `redis_url` with extra environment, and returns them with a channel of
/// their stdout lines, once every one of them printed `ready`.
fn start(redis_url: &str, work: &str, env: &[(&str, &str)]) -> (Vec<Probe>, mpsc::Receiver<Line>) {
    let (tx, rx) = mpsc::channel();
    let mut probes = Vec::new();
    for i in 0..PROCESSES {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", redis_url])
            .args(["cache", "probe", "--tenant", "acme", "--type", "ocr_result"])
            .args([
                "--key",
                "cold-document",
                "--callers",
                CALLERS,
                "--work",
                work,
            ])
            .env_remove("FERNANDO_CACHE_ENV")
            .env("FERNANDO_CACHE__REDIS__CONNECT_TIMEOUT", "200ms")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run fernando-cache");
        let stdout = child.stdout.take().expect("stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        probes.push(Probe { child, stdin });
    }
    let mut ready = 0;
    while ready < PROCESSES {
        let (_, line) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every probe says ready");
        if line == "ready" {
            ready += 1;
        }
    }
    (probes, rx)
}

/// Lets every probe go at once.
fn go(probes: &mut [Probe]) {
    for p in probes.iter_mut() {
        let mut stdin = p.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("write go");
    }
}

/// Each live probe's report (its JSON line), by index; `computing` lines are counted per probe.
fn reports(
    rx: &mpsc::Receiver<Line>,
    live: &[usize],
    computing: &mut [usize],
) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < live.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, line) = rx
            .recv_timeout(left)
            .expect("every live probe reports within a minute");
        if line == "computing" {
            computing[i] += 1;
        } else if line.starts_with('{') {
            out.push((i, serde_json::from_str(&line).expect("a JSON report")));
        }
    }
    out
}

fn values(report: &Value) -> Vec<String> {
    report["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_str().expect("a value").to_owned())
        .collect()
}

#[test]
fn eight_processes_missing_one_cold_key_compute_it_once() {
    let server = RedisServer::start();
    let (mut probes, rx) = start(&server.url(), "300ms", &[]);
    go(&mut probes);
    let mut computing = vec![0; PROCESSES];
    let all: Vec<usize> = (0..PROCESSES).collect();
    let reports = reports(&rx, &all, &mut computing);
    let computed: u64 = reports
        .iter()
        .map(|(_, r)| r["computed"].as_u64().unwrap())
        .sum();
    assert_eq!(computed, 1, "computations across 8 processes: {reports:?}");
    let first = values(&reports[0].1);
    assert_eq!(first.len(), 1, "{reports:?}");
    for (i, r) in &reports {
        assert_eq!(values(r), first, "probe {i} got another value");
    }
    for p in &mut probes {
        assert!(p.child.wait().unwrap().success());
    }
}

#[test]
fn a_leader_killed_mid_computation_is_replaced_by_exactly_one_process() {
    let server = RedisServer::start();
    let env = [("FERNANDO_CACHE__TYPES__OCR_RESULT__LEASE_TTL", "600ms")];
    let (mut probes, rx) = start(&server.url(), "1500ms", &env);
    go(&mut probes);
    // The first probe to start computing holds the lease: kill it mid-computation.
    let (leader, line) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("someone computes");
    assert_eq!(line, "computing");
    std::thread::sleep(Duration::from_millis(200));
    probes[leader].child.kill().expect("SIGKILL the leader");
    let _ = probes[leader].child.wait();

    let survivors: Vec<usize> = (0..PROCESSES).filter(|&i| i != leader).collect();
    let mut computing = vec![0; PROCESSES];
    let reports = reports(&rx, &survivors, &mut computing);
    let computed: u64 = reports
        .iter()
        .map(|(_, r)| r["computed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        computed, 1,
        "exactly one survivor computes after the lease lapses: {reports:?}"
    );
    let first = values(&reports[0].1);
    assert_eq!(first.len(), 1);
    for (i, r) in &reports {
        assert_eq!(values(r), first, "survivor {i} got another value");
    }
}

#[test]
fn with_redis_down_each_process_computes_once() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let (mut probes, rx) = start(&url, "300ms", &[]);
    go(&mut probes);
    let mut computing = vec![0; PROCESSES];
    let all: Vec<usize> = (0..PROCESSES).collect();
    let reports = reports(&rx, &all, &mut computing);
    for (i, r) in &reports {
        assert_eq!(r["computed"].as_u64(), Some(1), "probe {i}: {r}");
        assert_eq!(values(r).len(), 1, "probe {i}'s callers share one value");
    }
}

//! A small benchmark harness shared by the workspace's bench binaries: throughput of an async operation run by
//! many tasks, and baseline/subject pairs measured in short alternating windows.
//!
//! On this 2-core machine shared by client and server, absolute figures drift by 10–30 % within a run, so a pair
//! is judged by the median of per-window ratios. Environment: `BENCH_SECS` (window, default 0.3 s) and
//! `BENCH_REPEATS` (window pairs, default 10).
//!
//! `BENCH_SMOKE=1` makes a smoke run ([`smoke`]), which `cargo xtask bench all --smoke` and `cargo xtask test` make
//! of every bench on a debug build: every row once, in one short window, with counts and data sets cut down
//! ([`scaled`]), to prove that each bench still runs to completion. Its figures mean nothing and no goal is judged.
//! Every bench takes its windows, repeats and warm-ups from [`secs_or`], [`repeats_or`] and [`warm_up`], so a
//! smoke run overrides them all.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The window of a smoke run, whatever `BENCH_SECS` says.
const SMOKE_WINDOW: Duration = Duration::from_millis(50);

/// Whether this is a smoke run: `BENCH_SMOKE` set to anything but empty or `0`.
pub fn smoke() -> bool {
    std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `full` in a measuring run, `small` in a smoke run: iteration counts, data-set sizes, run lengths.
pub fn scaled<T>(full: T, small: T) -> T {
    if smoke() { small } else { full }
}

/// The window length: `BENCH_SECS`, default 0.3 s.
pub fn secs() -> Duration {
    secs_or(0.3)
}

/// The window length: `BENCH_SECS`, else `default` seconds; one short window in a smoke run.
pub fn secs_or(default: f64) -> Duration {
    if smoke() {
        return SMOKE_WINDOW;
    }
    Duration::from_secs_f64(env_or("BENCH_SECS", default))
}

/// Window pairs: `BENCH_REPEATS`, default 10.
pub fn repeats() -> usize {
    repeats_or(10)
}

/// Window pairs: `BENCH_REPEATS`, else `default`; one in a smoke run.
pub fn repeats_or(default: usize) -> usize {
    if smoke() {
        return 1;
    }
    env_or("BENCH_REPEATS", default)
}

/// How long to warm a path before it is measured: `full`, or one smoke window.
pub fn warm_up(full: Duration) -> Duration {
    scaled(full, SMOKE_WINDOW)
}

/// Operations per second of `op` run by `concurrency` tasks for `dur`.
pub async fn throughput<F, Fut>(concurrency: usize, dur: Duration, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (done, took) = counted(concurrency, dur, op).await;
    done as f64 / took.as_secs_f64()
}

/// Operations of `op` run by `concurrency` tasks for `dur`, and how long they took.
async fn counted<F, Fut>(concurrency: usize, dur: Duration, op: F) -> (u64, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    // A smoke run checks the clock after every operation: on a debug build 16 of them can outlast its window.
    let every: u64 = scaled(16, 1);
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    op(i).await;
                    n += 1;
                    // In-process operations may complete without ever yielding; check the clock and let the
                    // scheduler run every few operations (the same for both sides of a pair).
                    if n.is_multiple_of(every) {
                        if Instant::now() >= deadline {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                }
                done.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed), start.elapsed())
}

/// The median (upper median for even lengths).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs baseline and subject in many short alternating windows (AB, BA, AB, …) and returns the medians of each
/// side and the median of the per-window ratios, which cancels slow drift of the shared machine.
pub async fn pair<B, BF, S, SF>(concurrency: usize, baseline: B, subject: S) -> (f64, f64, f64)
where
    B: Fn(usize) -> BF + Send + Sync + Clone + 'static,
    BF: Future<Output = ()> + Send,
    S: Fn(usize) -> SF + Send + Sync + Clone + 'static,
    SF: Future<Output = ()> + Send,
{
    // Warm both paths (connections, contexts, allocator).
    let warm = warm_up(Duration::from_millis(200));
    throughput(concurrency, warm, baseline.clone()).await;
    throughput(concurrency, warm, subject.clone()).await;
    let (mut b, mut s, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut b_cpu, mut s_cpu) = (Cpu::default(), Cpu::default());
    for i in 0..repeats() {
        let (x, y) = if i.is_multiple_of(2) {
            let x = b_cpu.window(concurrency, baseline.clone()).await;
            (x, s_cpu.window(concurrency, subject.clone()).await)
        } else {
            let y = s_cpu.window(concurrency, subject.clone()).await;
            (b_cpu.window(concurrency, baseline.clone()).await, y)
        };
        b.push(x);
        s.push(y);
        ratios.push(y / x);
    }
    if std::env::var_os("BENCH_CPU").is_some() {
        eprintln!(
            "cpu per op, {concurrency} tasks: baseline {} · subject {} · subject/baseline total {:.3}",
            b_cpu.per_op(),
            s_cpu.per_op(),
            s_cpu.total_per_op() / b_cpu.total_per_op()
        );
        let windows: Vec<String> = b
            .iter()
            .zip(&s)
            .map(|(x, y)| format!("{x:.0}/{y:.0}"))
            .collect();
        eprintln!("  windows (baseline/subject ops/s): {}", windows.join(" "));
    }
    (median(b), median(s), median(ratios))
}

/// CPU spent in one side's windows of a [`pair`]: by this process (client) and by its child processes (the
/// benches' redis-servers), and the operations done. Throughput on this shared machine is about the cores over
/// the CPU an operation costs both, and CPU time does not drift with what else the host runs as throughput does:
/// `BENCH_CPU=1` prints it beside each pair.
#[derive(Default)]
struct Cpu {
    client: f64,
    server: f64,
    ops: u64,
}

impl Cpu {
    /// Runs one window of `op`, adding its CPU and operations; its operations per second.
    async fn window<F, Fut>(&mut self, concurrency: usize, op: F) -> f64
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let before = cpu_seconds();
        let (done, took) = counted(concurrency, secs(), op).await;
        let after = cpu_seconds();
        self.client += after.0 - before.0;
        self.server += after.1 - before.1;
        self.ops += done;
        done as f64 / took.as_secs_f64()
    }

    fn total_per_op(&self) -> f64 {
        (self.client + self.server) / self.ops.max(1) as f64
    }

    fn per_op(&self) -> String {
        let ops = self.ops.max(1) as f64;
        format!(
            "client {:.2} µs + server {:.2} µs",
            self.client / ops * 1e6,
            self.server / ops * 1e6
        )
    }
}

/// CPU seconds (user + system) of this process and of its live child processes, read from `/proc`; zeros where
/// it cannot be read.
fn cpu_seconds() -> (f64, f64) {
    // `/proc` counts in USER_HZ, which Linux fixes at 100 for user space whatever the kernel's own tick.
    let ticks = 100.0;
    let of = |pid: &str| -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = &stat[stat.rfind(')')? + 1..];
                let fields: Vec<&str> = after.split_whitespace().collect();
                let user: f64 = fields.get(11)?.parse().ok()?;
                let system: f64 = fields.get(12)?.parse().ok()?;
                Some((user + system) / ticks)
            })
            .unwrap_or(0.0)
    };
    let mut children = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                children += list.split_whitespace().map(of).sum::<f64>();
            }
        }
    }
    (of("self"), children)
}

/// The setting that gives a bench's store in the production profile (which seals every type holding document
/// data) a sealing key: `("encryption.keys_file", path)` of a file holding one fixed key, written once
/// per process into the temporary folder. A bench key, never a secret.
pub fn sealing_keys() -> (&'static str, String) {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("fernando-cache-bench-keys-{}", std::process::id()));
        std::fs::write(
            &path,
            "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        )
        .expect("write the bench key file");
        path.display().to_string()
    });
    ("encryption.keys_file", path.clone())
}

/// `name` from the environment parsed as `T`, else `default` (the benches' `BENCH_*` knobs).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `q` quantile of sorted latencies, in milliseconds; NaN when there are none (a smoke run's window can end
/// before a slow debug build answers once).
pub fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}

/// `len` incompressible bytes from `seed` (xorshift64): values whose stored size is their own size.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

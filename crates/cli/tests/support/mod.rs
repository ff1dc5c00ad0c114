//! What the tests of the program share: `fernando-cache` started as a real process (`serve` or `proxy`) that
//! announces its address, the sample documents, and the development keys of the test profile.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod wire;

/// A running `fernando-cache` process and a client for it.
pub struct Server {
    pub(crate) base: String,
    /// Every address the process announced (`proxy --dashboard`: its console's last).
    pub(crate) announced: Vec<String>,
    pub(crate) client: reqwest::Client,
    child: Child,
    /// The process's stderr (its log), line by line.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(redis_url: &str, database_url: &str) -> Server {
        Self::start_with(redis_url, database_url, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with(redis_url: &str, database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut all = vec![
            ("FERNANDO_CACHE__STATISTICS__ENABLED", "true"),
            ("FERNANDO_CACHE__STATISTICS__DATABASE_URL", database_url),
            // Only the shutdown flush writes statistics, so the SIGTERM test sees that flush.
            ("FERNANDO_CACHE__STATISTICS__FLUSH_INTERVAL", "1h"),
        ];
        all.extend_from_slice(env);
        Self::spawn(redis_url, &["serve", "--bind", "127.0.0.1:0"], &all)
    }

    /// Runs `fernando-cache --env test --redis-url URL ARGS…` and waits for its `listening on http://…` line.
    pub fn spawn(redis_url: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_fernando-cache")),
            redis_url,
            args,
            env,
        )
    }

    /// [`Server::spawn`] with the whole program limited to `address_space` bytes (`ulimit -v`, inherited by
    /// its children): should anything a request makes it allocate go past that, an allocation fails and the
    /// server dies, which the test then sees.
    pub fn spawn_limited(
        redis_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        address_space: u64,
    ) -> Server {
        let mut bash = Command::new("bash");
        bash.arg("-c")
            .arg(format!(
                "ulimit -v {} && exec \"$0\" \"$@\"",
                address_space / 1024
            ))
            .arg(env!("CARGO_BIN_EXE_fernando-cache"));
        Self::launch(bash, redis_url, args, env)
    }

    fn launch(
        mut command: Command,
        redis_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = command
            .args(["--env", "test", "--redis-url", redis_url])
            .args(args)
            .env_remove("FERNANDO_CACHE_ENV")
            .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "200ms")
            .env("FERNANDO_CACHE__REDIS__CONNECT_TIMEOUT", "200ms")
            .env("FERNANDO_CACHE__DEGRADATION__BREAKER_OPEN_FOR", "300ms")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fernando-cache serve");
        let announced = fernando_cache_testkit::announced_addresses(&mut child);
        let base = announced[0].clone();
        // Every log line is kept for the test to search, and shown as the test's own output.
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            base,
            announced,
            client: reqwest::Client::new(),
            log,
        }
    }

    pub async fn upload(&self, key: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/documents", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a sample as acme and returns the JSON answer.
    pub async fn upload_sample(&self, rel: &str, content_type: &str) -> Value {
        self.upload(ACME, content_type, sample(rel))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.unwrap()
    }

    /// The log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fernando-cache proxy` in front of `origin`, on a free loopback port, with `extra` arguments.
pub fn proxy(
    redis: &fernando_cache_testkit::RedisServer,
    origin: std::net::SocketAddr,
    extra: &[&str],
) -> Server {
    let origin = format!("http://{origin}");
    let mut args = vec![
        "proxy",
        "--origin",
        origin.as_str(),
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::spawn(&redis.url(), &args, &[])
}

pub fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples")
            .join(rel),
    )
    .unwrap()
}

pub const ACME: &str = "dev-acme-key";
pub const GLOBEX: &str = "dev-globex-key";
pub const ADMIN: &str = "dev-admin-token";

/// A chat-completions endpoint standing in for the LLM: counts the requests, takes `delay`, answers fields and a
/// `usage` of 120 prompt and 30 completion tokens.
pub async fn counting_llm(
    delay: Duration,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let (addr, calls, _) = watched_llm(delay).await;
    (addr, calls)
}

/// [`counting_llm`] that also keeps the most requests it was answering at once.
pub async fn watched_llm(
    delay: Duration,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use axum::{Json, Router, routing::post};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let most = std::sync::Arc::new(AtomicUsize::new(0));
    let in_flight = std::sync::Arc::new(AtomicUsize::new(0));
    let (seen, most_seen) = (calls.clone(), most.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (seen, most_seen, in_flight) = (seen.clone(), most_seen.clone(), in_flight.clone());
            async move {
                seen.fetch_add(1, SeqCst);
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                most_seen.fetch_max(now, SeqCst);
                tokio::time::sleep(delay).await;
                in_flight.fetch_sub(1, SeqCst);
                let content = serde_json::json!({"invoice_number": "RE-2026-0042", "total": "99.00 EUR"});
                Json(serde_json::json!({
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}}],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls, most)
}

/// A statistics window as the recorder writes it: `hits` and `misses` with the bytes, engine time, tokens and
/// money they imply, and read latencies around `p99_us`.
pub fn stat_delta(
    tenant: &str,
    cache_type: &str,
    at: chrono::NaiveDateTime,
    hits: i64,
    misses: i64,
    p99_us: i64,
) -> fernando_cache_models::StatisticsDelta {
    fernando_cache_models::StatisticsDelta {
        tenant_id: tenant.to_owned(),
        cache_type: cache_type.to_owned(),
        window_start: at,
        window_seconds: 60,
        hits,
        misses,
        sets: misses,
        deletes: 0,
        errors: 0,
        degraded: 0,
        raw_bytes: 40_000 * misses,
        stored_bytes: 9_000 * misses,
        latency_p50_us: p99_us / 6,
        latency_p95_us: p99_us * 4 / 9,
        latency_p99_us: p99_us,
        updated_at: chrono::Utc::now().naive_utc(),
        compute_spent_ms: 40 * misses,
        compute_saved_ms: 40 * hits,
        tokens_spent: 700 * misses,
        tokens_saved: 700 * hits,
        money_spent_micros: 1_050 * misses,
        money_saved_micros: 1_050 * hits,
    }
}

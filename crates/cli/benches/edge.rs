//! `cargo xtask bench http` (second part): the real `fernando-cache proxy` binary facing the network, against a
//! private redis-server and an in-process origin whose handler takes 5 ms (`Cache-Control: public, max-age=3600`).
//!
//! 1. Isolation under attack: tenant `b`'s cached reads (8 clients paced to 500 req/s, within the per-tenant rate of
//!    1 000/s: without attack their p99 is the proxy's hit latency) with and without an attack — 500 connections
//!    that send half a request line and hold it, plus tenant `a` flooding with 32 unpaced clients on a runtime of
//!    their own — in alternating windows, b measured in the attack's steady state.
//!    Goal: `b`'s p99 under attack ≤ 2× its p99 without.
//! 2. The proxy's hit against the origin itself and against a bare pass-through proxy (hyper-util's client in
//!    an axum fallback, no cache, the same forwarding the proxy does on a miss): req/s and p99, 32 clients.
//! 3. Sealing: store hits (`get_bytes`) of 4 KB and 64 KB incompressible values of a sealed cache type, with
//!    each AEAD, against the same values unsealed, in alternating windows (testkit's `pair`). Goal: overhead
//!    ≤ 10 %.
//!
//! The proxy's limits are set for what each section means to measure: section 1 gives every tenant 1 000
//! requests a second (`server.limits.per_process_rate` and `per_process_burst`), section 2 a rate no load here
//! reaches; the request quota shared across replicas (`quotas.shared_requests`) is off in both. Section 3's stores
//! have `encryption.document_data` off, so that only `types.ocr_result.sealed` decides which side is sealed (the
//! production profile seals `ocr_result` otherwise, on both sides).
//!
//! Environment: `BENCH_SECS` (window, default 0.3 s; sections 1 and 2 use 2 s), `BENCH_REPEATS` (default 10;
//! sections 1 and 2 use 3), `BENCH_SMOKE` (see the testkit's `bench` module).

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{self, noise, pct, repeats_or, secs_or},
};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

async fn api() -> Response {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut r = "x".repeat(2_048).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

type Forwarder = (
    Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
    SocketAddr,
);

/// A bare pass-through proxy: what `proxy` does on a miss, without the cache, the edge or the access log.
async fn pass_through(State(fwd): State<Arc<Forwarder>>, req: Request) -> Response {
    let (client, origin) = &*fwd;
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{origin}{pq}").parse::<Uri>().unwrap();
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(Body::new),
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// The proxy binary in front of `origin`, the tenant from `x-tenant`; its access log goes nowhere.
fn start_proxy(redis: &RedisServer, origin: SocketAddr, rate: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", &redis.url()])
        .args(["proxy", "--origin", &format!("http://{origin}")])
        .args(["--bind", "127.0.0.1:0", "--tenant-header", "x-tenant"])
        .env_remove("FERNANDO_CACHE_ENV")
        // Tenant a's flood is held to its rate; b's paced 500 req/s stays within its own. Section 2's clients
        // (tenant c) run unpaced: they get a rate no load here reaches.
        .env("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_RATE", rate)
        .env("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_BURST", rate)
        // No request quota per window: a long run must not meet it.
        .env("FERNANDO_CACHE__QUOTAS__SHARED_REQUESTS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fernando-cache proxy");
    let base = fernando_cache_testkit::announced_address(&mut child);
    (child, base)
}

/// Per-request latencies of `clients` tasks reading `paths` (round robin) as `tenant` for `dur`, and req/s. With
/// `every`, each client sends one request per period (an open, paced load) instead of back to back.
async fn window(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    paths: usize,
    clients: usize,
    dur: Duration,
    every: Option<Duration>,
) -> (Vec<Duration>, f64) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, latencies) = (client.clone(), latencies.clone());
            let (base, tenant) = (base.to_owned(), tenant.to_owned());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = c;
                let mut tick = every.map(|p| {
                    let mut t = tokio::time::interval(p);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while Instant::now() < deadline {
                    if let Some(t) = &mut tick {
                        t.tick().await;
                    }
                    let t = Instant::now();
                    let resp = client
                        .get(format!("{base}/api/{}", i % paths))
                        .header("x-tenant", &tenant)
                        .send()
                        .await
                        .expect("request");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.expect("body");
                    mine.push(t.elapsed());
                    i += clients;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut v = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    v.sort();
    let rate = v.len() as f64 / start.elapsed().as_secs_f64();
    (v, rate)
}

/// The attack: 500 half-sent requests held open, and tenant `a` flooding with 32 clients until `stop`. The flood
/// runs on a runtime of its own, on its own thread: on the bench's runtime its 32 busy tasks would queue tenant
/// b's clients behind them, and b's latency would measure the load generator, not the proxy.
struct Attack {
    slow: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    flood: std::thread::JoinHandle<()>,
    answered: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Attack {
    fn start(base: &str) -> Attack {
        let addr = base.trim_start_matches("http://");
        let slow = (0..500)
            .filter_map(|_| {
                let mut s = TcpStream::connect(addr).ok()?;
                s.write_all(b"GET /api/0 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .ok()?;
                Some(s)
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let flood = {
            let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
            let base = base.to_owned();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the flood's runtime");
                rt.block_on(flood(base, stop, answered, refused));
            })
        };
        Attack {
            slow,
            stop,
            flood,
            answered,
            refused,
        }
    }

    fn stop(self) -> (usize, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.flood.join().expect("the flood's thread");
        let held = self.slow.len();
        drop(self.slow);
        (
            held,
            self.answered.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// Tenant a's 32 unpaced clients, until `stop`.
async fn flood(
    base: String,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (client, stop) = (client.clone(), stop.clone());
            let (answered, refused) = (answered.clone(), refused.clone());
            let base = base.clone();
            tokio::spawn(async move {
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(r) = client
                        .get(format!("{base}/api/flood-{n}"))
                        .header("x-tenant", "a")
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let counter = if r.status() == 429 {
                        &refused
                    } else {
                        &answered
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = r.bytes().await;
                    n += 32;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Tenant b's paced load: 8 clients × one request per 16 ms = 500 req/s, within its rate (1 000/s).
const PACE: Option<Duration> = Some(Duration::from_millis(16));

async fn isolation(redis: &RedisServer, origin: SocketAddr) {
    let (mut proxy, base) = start_proxy(redis, origin, "1000");
    let secs = secs_or(2.0);
    let repeats = repeats_or(3);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // Store b's 64 entries.
    window(&client, &base, "b", 64, 8, Duration::from_millis(500), PACE).await;
    let (mut calm, mut attacked) = (Vec::new(), Vec::new());
    let (mut held, mut answered, mut refused) = (0, 0, 0);
    for i in 0..repeats * 2 {
        let under_attack = (i % 4 == 1) || (i % 4 == 2);
        if under_attack {
            let attack = Attack::start(&base);
            // Measured in the attack's steady state: the 500 connections are open and the flood is running.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (v, _) = window(&client, &base, "b", 64, 8, secs, PACE).await;
            attacked.extend(v);
            let (h, a, r) = attack.stop();
            held = held.max(h);
            answered += a;
            refused += r;
        } else {
            calm.extend(window(&client, &base, "b", 64, 8, secs, PACE).await.0);
        }
    }
    calm.sort();
    attacked.sort();
    println!(
        "### 1. Another tenant's cached reads under attack (proxy binary, 8 clients of tenant b)\n"
    );
    println!(
        "attack: {held} connections holding half a request line + tenant a flooding with 32 clients \
         ({answered} answered, {refused} refused with 429)\n"
    );
    println!("| tenant b | requests | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [("without attack", &calm), ("under attack", &attacked)] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "\np99 under attack = {:.2}× p99 without (goal ≤ 2×)\n",
        pct(&attacked, 0.99) / pct(&calm, 0.99)
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
}

async fn proxy_vs_pass_through(redis: &RedisServer, origin: SocketAddr) {
    let (mut proxy, base) = start_proxy(redis, origin, "1000000");
    let forwarder: Arc<Forwarder> =
        Arc::new((Client::builder(TokioExecutor::new()).build_http(), origin));
    let bare = serve(Router::new().fallback(pass_through).with_state(forwarder)).await;
    let secs = secs_or(2.0);
    let repeats = repeats_or(3);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let sides = [
        ("origin (5 ms handler)", format!("http://{origin}")),
        ("bare pass-through proxy", format!("http://{bare}")),
        ("fernando-cache proxy, hits", base.clone()),
    ];
    // Store the proxy's entries; warm every side's connections.
    for (_, url) in &sides {
        window(&client, url, "c", 64, 32, Duration::from_millis(500), None).await;
    }
    let mut results: Vec<(Vec<Duration>, f64)> = vec![(Vec::new(), 0.0); sides.len()];
    for r in 0..repeats {
        for k in 0..sides.len() {
            // Rotate the order each round, so drift is shared.
            let s = (k + r) % sides.len();
            let (v, rate) = window(&client, &sides[s].1, "c", 64, 32, secs, None).await;
            results[s].0.extend(v);
            results[s].1 += rate / repeats as f64;
        }
    }
    println!(
        "### 2. The proxy's hits against the origin and a bare pass-through proxy (32 clients)\n"
    );
    println!("| side | req/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for ((name, _), (v, rate)) in sides.iter().zip(&mut results) {
        v.sort();
        println!(
            "| {name} | {rate:.0} | {:.2} ms | {:.2} ms |",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "\nproxy hits = {:.1}× the bare pass-through's req/s, {:.1}× the origin's\n",
        results[2].1 / results[1].1,
        results[2].1 / results[0].1
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
}

async fn sealing(redis: &RedisServer) {
    let store = |sealed: &str, algorithm: &str| {
        Store::from_settings(
            &Settings::load(
                LoadOptions::isolated(Environment::Production)
                    .set_all([bench::sealing_keys()])
                    .set_all(redis.overrides())
                    // Production seals every type holding document data, `ocr_result` included: off, so that
                    // the type's own `sealed` alone says which side is sealed.
                    .set("encryption.document_data", "false")
                    .set("types.ocr_result.sealed", sealed)
                    .set("encryption.algorithm", algorithm),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let tenant: fernando_cache_keys::TenantId = "bench".parse().unwrap();
    println!("### 3. Sealed hits against unsealed hits (store get_bytes, 16 tasks)\n");
    println!("| value | algorithm | unsealed hits/s | sealed hits/s | sealed / unsealed |");
    println!("|---|---|---:|---:|---:|");
    let read = |s: Store, key: String, tenant: fernando_cache_keys::TenantId| {
        move |_| {
            let (s, key, tenant) = (s.clone(), key.clone(), tenant.clone());
            async move {
                let v = s
                    .get_bytes(&tenant, &CacheType::OCR_RESULT, &key)
                    .await
                    .unwrap();
                assert!(v.is_some(), "a hit");
            }
        }
    };
    for size in [4 << 10, 64 << 10] {
        let value = noise(size as u64, size);
        for algorithm in ["aegis-256x4", "aes-256-gcm"] {
            // Both sides are built at the same point, each with its own fresh connections, so neither is
            // favoured by the state of a pool the other already wore in.
            let mut sides = Vec::new();
            for (sealed, key) in [
                ("false", format!("v{size}-{algorithm}-plain")),
                ("true", format!("v{size}-{algorithm}")),
            ] {
                let side = store(sealed, algorithm);
                let _ = side
                    .set_bytes(
                        &tenant,
                        &CacheType::OCR_RESULT,
                        &key,
                        &value,
                        fernando_cache_store::Write::default(),
                    )
                    .await
                    .unwrap();
                sides.push(read(side, key, tenant.clone()));
            }
            let [plain, sealed] =
                <[_; 2]>::try_from(sides).unwrap_or_else(|_| unreachable!("two sides"));
            let (b, x, ratio) = bench::pair(16, plain, sealed).await;
            println!(
                "| {} KB | {algorithm} | {b:.0} | {x:.0} | {ratio:.3} (overhead {:.1} %) |",
                size >> 10,
                (1.0 - ratio) * 100.0
            );
        }
    }
    println!("\ngoal: overhead ≤ 10 %");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start();
    let origin = serve(Router::new().route("/api/{id}", get(api))).await;
    // `BENCH_ONLY=isolation|proxy|sealing` runs one section.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    if run("isolation") {
        isolation(&redis, origin).await;
    }
    if run("proxy") {
        proxy_vs_pass_through(&redis, origin).await;
    }
    if run("sealing") {
        sealing(&redis).await;
    }
}

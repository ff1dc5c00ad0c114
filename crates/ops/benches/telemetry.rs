//! `cargo xtask bench dashboard` (its second part): what OpenTelemetry export costs a store hit. Store `get`
//! hits at 64 tasks over 20 tenants, in a process whose subscriber is the program's own
//! ([`install_subscriber`]) with export off, against one with export on to a local OTLP receiver (`sample_ratio`
//! 1, metrics every second): with the default `telemetry.spans`, and with the store's spans turned on — bare
//! hits, and hits each inside a `request` span as `serve` makes them. The global
//! subscriber cannot be swapped inside one process, so each window is a child process of this bench, the two
//! kinds alternating; both talk to the same `redis-server`.
//!
//! Environment: `BENCH_SECS` (window, default 3 s), `BENCH_REPEATS` (window pairs, default 6), `BENCH_SMOKE` (see
//! the testkit's `bench` module; the children inherit it).

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State};
use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_ops::telemetry::{export_metrics, install_subscriber};
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{median, repeats_or, secs_or, throughput, warm_up},
};
use tracing::Instrument as _;

const CHILD: &str = "FERNANDO_BENCH_TELEMETRY_CHILD";

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok(mode) => child(mode == "on"),
        Err(_) => parent(),
    }
}

fn settings(on: bool) -> Settings {
    let endpoint = if on {
        std::env::var("BENCH_OTLP").unwrap()
    } else {
        String::new()
    };
    Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set("backend", "redis")
            .set("redis.url", std::env::var("BENCH_REDIS").unwrap().as_str())
            .set("redis.multiplexed_connections", "2")
            .set("telemetry.otlp_endpoint", endpoint.as_str())
            .set("telemetry.metrics_interval", "1s")
            .set_all(
                [
                    ("BENCH_SPANS", "telemetry.spans"),
                    ("BENCH_RATIO", "telemetry.sample_ratio"),
                ]
                .into_iter()
                .filter_map(|(var, key)| Some((key, std::env::var(var).ok()?))),
            ),
    )
    .unwrap()
}

/// One window: prints `OPS <hits per second>`.
fn child(on: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = settings(on);
    let tracing = install_subscriber(
        tracing_subscriber::EnvFilter::new("warn"),
        &settings.telemetry,
        runtime.handle(),
    )
    .unwrap();
    assert_eq!(tracing.exporting(), on);
    let window = secs_or(3.0);
    let ops = runtime.block_on(async {
        let store = Store::from_settings(&settings).unwrap();
        let metrics = export_metrics(
            &settings.telemetry,
            &store,
            "EUR",
            &tokio::runtime::Handle::current(),
        )
        .unwrap();
        assert_eq!(metrics.is_some(), on);
        let tenants: Arc<Vec<TenantId>> = Arc::new(
            (0..20)
                .map(|i| TenantId::new(format!("t{i}")).unwrap())
                .collect(),
        );
        for t in tenants.iter() {
            let _ = store
                .set(t, &CacheType::SESSION, "k", &"x".repeat(100))
                .await
                .unwrap();
        }
        let traced = std::env::var("BENCH_TRACED").is_ok();
        let op = move |i: usize| {
            let (store, tenants) = (store.clone(), tenants.clone());
            async move {
                let t = &tenants[i % tenants.len()];
                let get = store.get::<String>(t, &CacheType::SESSION, "k");
                let found = if traced {
                    // As in `serve`: the hit is a child of the request's span.
                    get.instrument(tracing::info_span!("request", tenant = t.as_str()))
                        .await
                } else {
                    get.await
                };
                assert!(found.unwrap().is_some());
            }
        };
        throughput(64, warm_up(Duration::from_millis(300)), op.clone()).await;
        let ops = throughput(64, window, op).await;
        if let Some(m) = metrics {
            tokio::task::spawn_blocking(move || m.shutdown())
                .await
                .unwrap();
        }
        ops
    });
    tracing.shutdown();
    println!("OPS {ops}");
}

fn parent() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The receiver: a real OTLP/HTTP endpoint that takes every export and counts its bytes.
    let received = Arc::new(AtomicU64::new(0));
    let addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(|State(n): State<Arc<AtomicU64>>, body: Bytes| async move {
                n.fetch_add(body.len() as u64, Ordering::Relaxed);
                ""
            })
            .with_state(received.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let window = secs_or(3.0).as_secs_f64();
    let repeats = repeats_or(6);
    println!(
        "OpenTelemetry cost — store get hits (100 B), 64 tasks over 20 tenants, production profile; export on: \
         spans (sample_ratio 1) and metrics every 1s to a local OTLP receiver; {window}s windows, one process each, × {repeats} alternating pairs"
    );
    let run = |on: bool, spans: &str, traced: bool| -> f64 {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.env(CHILD, if on { "on" } else { "off" })
            .env("BENCH_SPANS", spans)
            .env("BENCH_REDIS", server.url())
            .env("BENCH_OTLP", format!("http://{addr}"))
            .env("BENCH_SECS", window.to_string());
        if traced {
            c.env("BENCH_TRACED", "1");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("OPS "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the child reports OPS")
    };
    println!("| hits | export off ops/s | export on ops/s | ratio (median of pairs) |");
    println!("|---|---:|---:|---:|");
    const STORE_SPANS: &str = "info,fernando_cache_store=debug";
    for (spans, traced, label) in [
        ("info", false, "`telemetry.spans = \"info\"` (the default)"),
        (
            STORE_SPANS,
            false,
            "store spans on, bare hits (a store span is never a root: nothing exported)",
        ),
        (
            STORE_SPANS,
            true,
            "store spans on, each hit inside a `request` span (2 spans exported per hit)",
        ),
    ] {
        let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..repeats {
            let (a, b) = if i % 2 == 0 {
                let a = run(false, spans, traced);
                (a, run(true, spans, traced))
            } else {
                let b = run(true, spans, traced);
                (run(false, spans, traced), b)
            };
            off.push(a);
            on.push(b);
            ratios.push(b / a);
        }
        println!(
            "| {label} | {:.0} | {:.0} | {:.3}× |",
            median(off),
            median(on),
            median(ratios)
        );
    }
    let bytes = received.load(Ordering::Relaxed);
    assert!(bytes > 0, "export on sent nothing to the receiver");
    println!("OTLP bytes the receiver got: {bytes}");
}

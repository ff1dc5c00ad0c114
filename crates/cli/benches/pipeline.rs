//! `cargo xtask bench pipeline`: the document pipeline in one run against a private redis-server.
//!
//! 1. Full-document hit latency through `DocumentProcessor` (one caller, sequential): p50 / p99 (goal p99 < 2 ms).
//! 2. `POST /v1/documents` on the real `fernando-cache serve` binary over TCP, 64 concurrent clients of one
//!    tenant, rule-based extractor: repeated documents (hits) vs first-time documents (misses), in alternating
//!    windows. The server's limits are set so that the load measures the server, not its limits: the per-tenant
//!    rate (`server.limits.per_process_rate`) and shared request quota (`quotas.shared_requests`) off, and an
//!    engine queue (`server.limits.engine_queue`) of 128, whose half — one tenant's share — holds all 64 clients
//!    (every upload, hit or miss, passes the engine gate).
//! 3. Warming: a Zipf-distributed workload over 300 documents whose entries live 2 s, for 12 s, with the
//!    frequency-based warmer (every 500 ms) vs without, run side by side under two tenants.
//! 4. Scanned PDFs (issue 14): a 10-page scan saved as a PDF through the configured pipeline (`pdftoppm` at
//!    300 dpi, then tesseract): the cost per page (rendering alone, and rendering + OCR), and the full-document
//!    hit's p50 / p99 (goal p99 < 2 ms, as for other documents).
//!
//! 5. Warming policies (issue 14): the daily Zipf trace of the warming test (300 documents, 14 days, entries
//!    living 2 h, 1.5 s of engine time per 15-minute run) replayed in virtual time with no warming, frequency-based
//!    and predictive warming: hit ratio, engine time on misses and on warming.
//!
//! 6. Start-up (issue 32, item 4): `fernando-cache process` (the release binary `cargo xtask bench` builds) of one
//!    text document already cached on the private redis-server, whole-process wall time over repeated runs (p50 / p90), with statistics on (a SQLite database
//!    in a fresh data folder) and off, against the floor `fernando-cache --version` (starting the binary at all).
//!    Goal: under 10 ms with statistics on.
//!
//! 7. The main job's all-hit path (issue 32, item 2): `fernando-cache process` of an inbox of 3 000 and of 30 000
//!    invoice texts already cached (statistics off, whole-process wall time), paired run by run with its floor —
//!    `sha256sum` of the same files plus as many `GET`s pipelined 100 at a time by `redis-benchmark`, of a value
//!    as long as a stored document entry — and the first-time path (every document a miss, a fresh tenant each
//!    run). Goal: all hits within 2× the floor. `BENCH_INBOX` (comma-separated sizes) changes the inboxes.
//!
//! Environment: `BENCH_SECS` (HTTP window, default 2), `BENCH_REPEATS` (window pairs, default 3), `BENCH_SMOKE`
//! (see the testkit's `bench` module: fewer calls, a 1 s warming run, a 2-page scan), `BENCH_ONLY`
//! (comma-separated sections: `hit`, `http`, `warming`, `scan`, `startup`, `policies`, `inbox`).

use std::{
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::{Environment, LoadOptions, Settings};
use fernando_cache_processor::{
    DocumentProcessor, ParserHost, RuleExtractor, StageOutcome, TextLayer, Warmer,
};
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{pct, repeats_or, scaled, secs_or},
    trace::Zipf,
};
use rand::{SeedableRng, rngs::StdRng};

fn settings(url: &str, ttl: Option<&str>) -> Settings {
    let mut o = LoadOptions::isolated(Environment::Production)
        .set_all([fernando_cache_testkit::bench::sealing_keys()])
        .set("redis.url", url)
        .set("statistics.enabled", "false");
    if let Some(t) = ttl {
        o = o
            .set("types.doc_hash.ttl", t)
            .set("types.ocr_result.ttl", t)
            .set("types.llm_extraction.ttl", t);
    }
    Settings::load(o).unwrap()
}

fn processor(store: Store, tenant: &str) -> DocumentProcessor {
    let mut p = DocumentProcessor::new(
        store,
        vec![Arc::new(TextLayer::in_process())],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context(tenant.parse().unwrap());
    p
}

fn invoice(n: u64) -> Vec<u8> {
    format!(
        "ACME Office Supplies GmbH\nUSt-IdNr. DE123456789\nRechnung Nr. RE-2026-{n:06}\n\
         Rechnungsdatum: 25.11.2026\nPos 1 Druckerpapier A4 10 x 4,99 EUR 49,90 EUR\n\
         Gesamtbetrag: {}.{:02} EUR\nIBAN DE89 3704 0044 0532 0130 00\nrechnungen@acme-office.example\n",
        100 + n % 900,
        n % 100
    )
    .into_bytes()
}

async fn hit_latency(url: &str) {
    let store = Store::from_settings(&settings(url, None)).unwrap();
    let p = processor(store, "bench");
    let doc = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples/acme/invoices/INV-7781.pdf"),
    )
    .unwrap();
    p.process(&doc, Some("application/pdf")).await.unwrap();
    for _ in 0..scaled(500, 5) {
        p.process(&doc, Some("application/pdf")).await.unwrap();
    }
    let calls = scaled(20_000, 50);
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let d = p.process(&doc, Some("application/pdf")).await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(d.stages.document, StageOutcome::Hit);
    }
    lat.sort();
    println!(
        "### Full-document hit through DocumentProcessor (PDF invoice, {calls} sequential calls)\n"
    );
    println!("| p50 | p99 | max |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.3} ms | {:.3} ms | {:.3} ms |\n",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
}

struct Window {
    requests: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn http_window(
    base: &str,
    clients: usize,
    dur: Duration,
    fresh: Option<Arc<AtomicU64>>,
) -> Window {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, base, latencies, fresh) = (
            client.clone(),
            base.to_owned(),
            latencies.clone(),
            fresh.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let n = fresh
                    .as_ref()
                    .map_or(0, |c| 1_000_000 + c.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/v1/documents"))
                    .bearer_auth("dev-acme-key")
                    .header("content-type", "text/plain")
                    .body(invoice(n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let body: serde_json::Value = r.json().await.unwrap();
                let expected = if fresh.is_some() { "miss" } else { "hit" };
                assert_eq!(body["stages"]["document"], expected);
                mine.push(t.elapsed());
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    Window {
        requests: latencies.len() as u64,
        latencies,
        elapsed: start.elapsed(),
    }
}

async fn http_throughput(url: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args([
            "--env",
            "test",
            "--redis-url",
            url,
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .env_remove("FERNANDO_CACHE_ENV")
        // The limits 64 clients of one tenant would meet (see the module's doc): 100 requests a second, and 32
        // uploads waiting at once (half the default queue of 64), beyond which the gate answers 503.
        .env("FERNANDO_CACHE__SERVER__LIMITS__PER_PROCESS_RATE", "0")
        .env("FERNANDO_CACHE__QUOTAS__SHARED_REQUESTS", "0")
        .env("FERNANDO_CACHE__SERVER__LIMITS__ENGINE_QUEUE", "128")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fernando-cache serve");
    let base = fernando_cache_testkit::announced_address(&mut child);
    let clients = 64;
    let secs = secs_or(2.0);
    let repeats = repeats_or(3);
    let counter = Arc::new(AtomicU64::new(0));
    // Store the repeated document and warm connections.
    http_window(
        &base,
        1,
        Duration::from_millis(50),
        Some(Arc::new(AtomicU64::new(u64::MAX / 2))),
    )
    .await;
    let warm = reqwest::Client::new();
    warm.post(format!("{base}/v1/documents"))
        .bearer_auth("dev-acme-key")
        .header("content-type", "text/plain")
        .body(invoice(0))
        .send()
        .await
        .unwrap();
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let (mut hit_t, mut miss_t, mut hit_n, mut miss_n) = (Duration::ZERO, Duration::ZERO, 0, 0);
    for i in 0..repeats {
        for fresh in if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            let w = http_window(&base, clients, secs, fresh.then(|| counter.clone())).await;
            if fresh {
                miss_t += w.elapsed;
                miss_n += w.requests;
                misses.extend(w.latencies);
            } else {
                hit_t += w.elapsed;
                hit_n += w.requests;
                hits.extend(w.latencies);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    hits.sort();
    misses.sort();
    println!(
        "### POST /v1/documents, {clients} concurrent clients, rule-based extractor ({repeats} × {:.1}s windows per side)\n",
        secs.as_secs_f64()
    );
    println!("| documents | requests | req/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    let hit_rate = hit_n as f64 / hit_t.as_secs_f64();
    let miss_rate = miss_n as f64 / miss_t.as_secs_f64();
    println!(
        "| first-time (every stage computed) | {miss_n} | {miss_rate:.0} | {:.2} ms | {:.2} ms |",
        pct(&misses, 0.5),
        pct(&misses, 0.99)
    );
    println!(
        "| repeated (every stage a hit) | {hit_n} | {hit_rate:.0} | {:.2} ms | {:.2} ms |",
        pct(&hits, 0.5),
        pct(&hits, 0.99)
    );
    println!(
        "\nrepeated / first-time throughput: {:.2}×\n",
        hit_rate / miss_rate
    );
}

async fn zipf_run(
    p: DocumentProcessor,
    docs: Arc<Vec<Vec<u8>>>,
    run: Duration,
    seed: u64,
) -> (u64, u64) {
    let zipf = Zipf::new(docs.len(), 1.1);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut hits, mut total) = (0, 0);
    let end = Instant::now() + run;
    while Instant::now() < end {
        let d = &docs[zipf.sample(&mut rng)];
        let r = p.process(d, Some("text/plain")).await.unwrap();
        total += 1;
        if r.stages.document == StageOutcome::Hit {
            hits += 1;
        }
        // About 400 documents a second per side.
        tokio::time::sleep(Duration::from_micros(2_500)).await;
    }
    (hits, total)
}

async fn warming_effect(url: &str) {
    let store = Store::from_settings(&settings(url, Some("2s"))).unwrap();
    let docs: Arc<Vec<Vec<u8>>> = Arc::new((0..300).map(|n| invoice(50_000 + n)).collect());
    let warmed = processor(store.clone(), "with-warming");
    let plain = processor(store, "without-warming");
    let warmer = Warmer::new(warmed.clone(), 2);
    let warming = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            warmer.warm_hot().await;
        }
    });
    let run = scaled(Duration::from_secs(12), Duration::from_secs(1));
    let (with, without) = tokio::join!(
        zipf_run(warmed, docs.clone(), run, 7),
        zipf_run(plain, docs, run, 7)
    );
    warming.abort();
    println!(
        "### Warming: Zipf(1.1) over 300 documents, entries live 2 s, {} s run, same request sequence\n",
        run.as_secs()
    );
    println!("| | documents | full hits | hit ratio |");
    println!("|---|---:|---:|---:|");
    for (name, (h, t)) in [
        ("without warming", without),
        ("with warming (every 500 ms, ≥ 2 reads)", with),
    ] {
        println!(
            "| {name} | {t} | {h} | {:.1} % |",
            h as f64 * 100.0 / t as f64
        );
    }
    println!();
}

async fn scanned_pdf(url: &str) {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/acme/scans");
    let (invoice, receipt) = (
        samples.join("RE-2026-0042-scan.png"),
        samples.join("receipt.png"),
    );
    // Scans alternate: a smoke run keeps one of each (the receipt's text is checked below).
    let page_count: usize = scaled(10, 2);
    let pages: Vec<fernando_cache_testkit::documents::PdfPage<'_>> = (0..page_count)
        .map(|i| {
            fernando_cache_testkit::documents::PdfPage::Scan(if i % 2 == 0 {
                &invoice
            } else {
                &receipt
            })
        })
        .collect();
    let pdf = fernando_cache_testkit::documents::pdf(&pages, None, None);
    let settings = settings(url, None);
    let render = |page: usize| {
        let t = Instant::now();
        let mut child = Command::new(&settings.processor.pdftoppm)
            .args(["-f", &page.to_string(), "-l", &page.to_string(), "-r"])
            .arg(settings.processor.pdf_dpi.to_string())
            .args(["-gray", "-png", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("pdftoppm (Debian package poppler-utils)");
        let mut stdin = child.stdin.take().unwrap();
        let input = pdf.clone();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty());
        t.elapsed()
    };
    let mut renders: Vec<Duration> = (1..=page_count).map(render).collect();
    renders.sort();

    let store = Store::from_settings(&settings).unwrap();
    // The PDF is read as `serve` reads it: the page tree in a parser child of the program.
    let parsers = ParserHost::child(env!("CARGO_BIN_EXE_fernando-cache"), ["__parse"]);
    let p = DocumentProcessor::from_settings(&settings, store, parsers)
        .await
        .for_tenant("bench-scans".parse().unwrap());
    let t = Instant::now();
    let first = p.process(&pdf, Some("application/pdf")).await.unwrap();
    let miss = t.elapsed();
    assert_eq!(first.stages.ocr, StageOutcome::Miss);
    assert!(
        first.result.text.contains("CITY CAFE"),
        "the scans were read"
    );
    for _ in 0..scaled(200, 5) {
        p.process(&pdf, Some("application/pdf")).await.unwrap();
    }
    let calls = scaled(5_000, 50);
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let d = p.process(&pdf, Some("application/pdf")).await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(d.stages.document, StageOutcome::Hit);
    }
    lat.sort();
    println!(
        "### Scanned PDF: {page_count} pages of scans, no text layer ({} KiB), `pdftoppm` at {} dpi + tesseract\n",
        pdf.len() / 1024,
        settings.processor.pdf_dpi
    );
    println!("| what | figure |");
    println!("|---|---:|");
    println!(
        "| render one page (pdftoppm, median of {page_count}) | {:.0} ms |",
        pct(&renders, 0.5)
    );
    println!(
        "| render + OCR per page (first processing / {page_count}) | {:.0} ms |",
        miss.as_secs_f64() * 1e3 / page_count as f64
    );
    println!(
        "| full-document hit p50 ({calls} sequential calls) | {:.3} ms |",
        pct(&lat, 0.5)
    );
    println!("| full-document hit p99 | {:.3} ms |", pct(&lat, 0.99));
    println!("| full-document hit max | {:.3} ms |\n", pct(&lat, 1.0));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    if enabled("hit") {
        hit_latency(&redis.url()).await;
    }
    if enabled("http") {
        http_throughput(&redis.url()).await;
    }
    if enabled("warming") {
        warming_effect(&redis.url()).await;
    }
    if enabled("scan") {
        scanned_pdf(&redis.url()).await;
    }
    if enabled("startup") {
        startup(&redis.url());
    }
    if enabled("policies") {
        warming_policies();
    }
    if enabled("inbox") {
        inbox(&redis);
    }
}

/// Whether `section` runs: every one, unless `BENCH_ONLY` (comma-separated: `hit`, `http`, `warming`, `scan`,
/// `startup`, `policies`, `inbox`) names others.
fn enabled(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

/// Section 6: what one `process` run costs from `exec` to exit, with and without the statistics database.
fn startup(url: &str) {
    let runs: usize = scaled(41, 3);
    let binary = release_binary();
    let home = tempfile::tempdir().unwrap();
    let doc = home.path().join("invoice.txt");
    std::fs::write(&doc, invoice(1)).unwrap();
    let data = home.path().join("data");
    let run = |args: &[&str], stats: bool| {
        let mut c = Command::new(&binary);
        c.args(args)
            .env("HOME", home.path())
            .env("FERNANDO_CACHE__STATISTICS__ENABLED", stats.to_string());
        timed(c)
    };
    let data_dir = data.display().to_string();
    let doc = doc.display().to_string();
    let process = [
        "--redis-url",
        url,
        "process",
        "--data-dir",
        &data_dir,
        doc.as_str(),
    ];
    let rows = [
        (
            "floor: `fernando-cache --version`",
            &["--version"][..],
            false,
        ),
        ("`process`, statistics off", &process[..], false),
        (
            "`process`, statistics on (SQLite) — goal p50 < 10 ms",
            &process[..],
            true,
        ),
    ];
    // The first runs cache the document and make the database; the rest are what a user repeats, the three
    // kinds taken in turn so that the machine's drift falls on all of them alike.
    for (_, args, stats) in rows {
        run(args, stats);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); rows.len()];
    for _ in 0..runs {
        for ((_, args, stats), t) in rows.iter().zip(&mut times) {
            t.push(run(args, *stats));
        }
    }
    println!(
        "## start-up: one cached document through `fernando-cache process` ({runs} runs each, in turn)\n"
    );
    println!("| run | p50 | p90 |\n|---|---|---|");
    for ((label, _, _), mut t) in rows.into_iter().zip(times) {
        t.sort();
        println!(
            "| {label} | {:.1} ms | {:.1} ms |",
            pct(&t, 0.5),
            pct(&t, 0.9)
        );
    }
    println!();
}

/// The release binary `cargo xtask bench` builds (what users run); the bench profile's own build carries debug
/// info, five times the size and slower to start.
fn release_binary() -> String {
    std::env::var("FERNANDO_CACHE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_fernando-cache").to_owned())
}

/// How long `command` takes from spawn to exit; it must succeed.
fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{command:?}: {status}");
    started.elapsed()
}

/// Section 7: `process` of an inbox already cached against its floor, and the same inbox's first time.
fn inbox(redis: &RedisServer) {
    let sizes: Vec<usize> = std::env::var("BENCH_INBOX").map_or_else(
        |_| scaled(vec![3_000, 30_000], vec![100]),
        |v| v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    );
    let runs = repeats_or(7);
    let binary = release_binary();
    let url = redis.url();
    println!(
        "## the main job: `process` of an inbox already cached vs its floor ({runs} paired runs)\n"
    );
    println!(
        "| documents | floor: sha256sum + pipelined GETs (p50) | `process`, all hits (p50) | ratio (median of pairs) \
         | first time, all misses (p50) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        let home = tempfile::tempdir().unwrap();
        let folder = home.path().join("inbox");
        std::fs::create_dir(&folder).unwrap();
        let names: Vec<String> = (0..n as u64)
            .map(|i| {
                let name = format!("invoice-{i:06}.txt");
                std::fs::write(folder.join(&name), invoice(i)).unwrap();
                name
            })
            .collect();
        let process = |tenant: &str| {
            let mut c = Command::new(&binary);
            c.args(["--redis-url", &url, "process", "--tenant", tenant])
                .arg(&folder)
                .env("HOME", home.path())
                .env("FERNANDO_CACHE__STATISTICS__ENABLED", "false");
            c
        };
        // The first time: every document a miss, under a tenant of its own each run; the first run's tenant
        // is the one whose cached inbox the hit runs read.
        let mut first: Vec<Duration> = (0..scaled(3, 1))
            .map(|r| timed(process(&format!("first-{n}-{r}"))))
            .collect();
        first.sort();
        let cached = format!("first-{n}-0");
        // The floor's GETs read a value as long as a stored document entry.
        let entry = redis
            .cli(&["SCAN", "0", "MATCH", "*doc_hash*", "COUNT", "1000000"])
            .unwrap();
        let key = entry
            .lines()
            .nth(1)
            .expect("a stored document entry")
            .to_owned();
        let len: usize = redis
            .cli(&["STRLEN", &key])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        redis
            .command(&["SET", "key:__rand_int__", &"x".repeat(len)])
            .unwrap();
        let floor = || {
            let mut hash = Command::new("sha256sum");
            hash.args(&names).current_dir(&folder);
            let mut gets = Command::new(fernando_cache_testkit::redis_benchmark_binary());
            gets.args(["-p", &redis.port().to_string(), "-n", &n.to_string()])
                .args(["-P", "100", "-c", "1", "-t", "get", "-q"]);
            timed(hash) + timed(gets)
        };
        let (mut floors, mut hits, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        timed(process(&cached));
        for _ in 0..runs {
            let (f, h) = (floor(), timed(process(&cached)));
            ratios.push(h.as_secs_f64() / f.as_secs_f64());
            floors.push(f);
            hits.push(h);
        }
        floors.sort();
        hits.sort();
        ratios.sort_by(f64::total_cmp);
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {:.2}× | {:.1} ms |",
            pct(&floors, 0.5),
            pct(&hits, 0.5),
            ratios[ratios.len() / 2],
            pct(&first, 0.5)
        );
    }
    println!();
}

#[path = "../../processor/tests/pipeline/daily_trace.rs"]
mod daily_trace;

fn warming_policies() {
    use fernando_cache_processor::WarmPolicy;
    let day = Duration::from_secs(86_400);
    println!("## warming policies: daily Zipf trace replayed (virtual time)\n");
    println!(
        "{:<12} {:>9} {:>14} {:>14} {:>10}",
        "policy", "hit ratio", "miss engine s", "warm engine s", "refreshed"
    );
    for (name, policy) in [
        ("none", WarmPolicy::None),
        ("frequency", WarmPolicy::FrequencyBased { half_life: day }),
        (
            "predictive",
            WarmPolicy::Predictive {
                half_life: day,
                periods: vec![day, 7 * day],
                min_probability: 0.3,
            },
        ),
    ] {
        let o = daily_trace::daily_replay(&policy);
        println!(
            "{name:<12} {:>8.1}% {:>14.0} {:>14.0} {:>10}",
            o.hit_ratio() * 100.0,
            o.miss_ms as f64 / 1e3,
            o.warm_ms as f64 / 1e3,
            o.refreshed
        );
    }
}

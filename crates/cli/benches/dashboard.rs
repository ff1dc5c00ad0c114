//! `cargo xtask bench dashboard` (its first part): the dashboard's JSON endpoints on 30 days × 100 tenants × 8
//! cache types of per-minute statistics (34.56 million rows and their hour/day rollups), on SQLite and on
//! PostgreSQL. The release binary serves them; each endpoint is read sequentially after two warm-up reads, and
//! its latency p50/p99 reported (goal: p99 < 300 ms).
//!
//! The data set is made by SQL in the database itself (the rollups by the rollup migrations' own backfill
//! statements) and kept between runs: `target/bench-data/dashboard-{scale}.sqlite3` and the PostgreSQL database
//! `fc_bench_dashboard_{scale}`. Its minutes end when it is made and the endpoints read ranges back from now,
//! down to one hour, so a kept set whose newest minute is over 30 minutes old is made again. The admin routes read
//! here are outside the per-tenant rate and quota, which no setting needs to lift.
//!
//! Environment: `BENCH_DAYS` (30), `BENCH_TENANTS` (100), `BENCH_TYPES` (8), `BENCH_READS` (reads per endpoint,
//! 40), `BENCH_ONLY` (`sqlite` or `postgres`), `BENCH_SMOKE` (see the testkit's `bench` module: 2 days × 2 tenants
//! × 2 types in a temporary SQLite file and a throwaway PostgreSQL database, made for the run and dropped after
//! it, and 2 reads per endpoint).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use diesel::{
    Connection, PgConnection, RunQueryDsl, SqliteConnection, connection::SimpleConnection,
};
use fernando_cache_models::{Db, run_pending};
use fernando_cache_testkit::{
    PostgresDb, RedisServer,
    bench::{env_or, pct, scaled, smoke},
};

const TYPES: [&str; 8] = [
    "ocr_result",
    "llm_extraction",
    "document_meta",
    "session",
    "http_response",
    "reference_data",
    "embedding",
    "classification",
];

struct Scale {
    days: u32,
    tenants: u32,
    types: usize,
}

impl Scale {
    fn tag(&self) -> String {
        format!("{}d_{}t_{}c", self.days, self.tenants, self.types)
    }

    fn rows(&self) -> u64 {
        u64::from(self.days) * 1440 * u64::from(self.tenants) * self.types as u64
    }

    fn types_sql(&self) -> String {
        TYPES[..self.types]
            .iter()
            .map(|t| format!("('{t}')"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The migrations' backfill statements: the rollups made exactly as the migrations make them (each tenant's,
/// then all tenants').
fn rollup_backfill(dialect: &str) -> String {
    [
        "2026-12-04-000001_statistics_rollups",
        "2026-12-05-000001_statistics_all_tenants",
    ]
    .iter()
    .map(|migration| {
        let path = format!(
            "{}/../../migrations/{dialect}/{migration}/up.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let sql = std::fs::read_to_string(&path).unwrap();
        let at = sql
            .find("INSERT INTO cache_statistics_rollups")
            .expect("the migration backfills the rollups");
        sql[at..].to_owned()
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// Per-minute values that vary by tenant, type and time (hit ratios between 50 % and 99 %).
const VALUES_PG: &str = "
    (50 + (t * 7 + c * 13 + m) % 400)::bigint,
    (5 + (t * 3 + c * 5 + m) % 60)::bigint,
    (5 + (t + c + m) % 30)::bigint, 0, 0, 0,
    (4000 * (1 + (t + m) % 9))::bigint, (1500 * (1 + (t + m) % 9))::bigint,
    (200 + (t * 11 + m) % 300)::bigint, (900 + (t * 13 + m) % 900)::bigint, (2000 + (t * 17 + m) % 3000)::bigint";
const VALUES_SQLITE: &str = "
    50 + (t * 7 + c * 13 + m) % 400,
    5 + (t * 3 + c * 5 + m) % 60,
    5 + (t + c + m) % 30, 0, 0, 0,
    4000 * (1 + (t + m) % 9), 1500 * (1 + (t + m) % 9),
    200 + (t * 11 + m) % 300, 900 + (t * 13 + m) % 900, 2000 + (t * 17 + m) % 3000";
const COLUMNS: &str = "tenant_id, cache_type, window_start, window_seconds, hits, misses, sets, deletes, errors, \
                       degraded, raw_bytes, stored_bytes, latency_p50_us, latency_p95_us, latency_p99_us, updated_at";

fn generate_postgres(url: &str, scale: &Scale) {
    let mut conn = PgConnection::establish(url).unwrap();
    let minutes = scale.days * 1440;
    let types = scale.types_sql();
    let (tenants, vals) = (scale.tenants, VALUES_PG);
    let started = Instant::now();
    conn.batch_execute(&format!(
        "SET synchronous_commit = off;
         INSERT INTO cache_statistics ({COLUMNS})
         SELECT 'tenant_' || t, ty.name, w, 60, {vals}, w
         FROM generate_series(0, {tenants} - 1) AS t
         CROSS JOIN (SELECT name, row_number() OVER () AS c FROM (VALUES {types}) AS v(name)) AS ty
         CROSS JOIN generate_series(0, {minutes} - 1) AS m
         CROSS JOIN LATERAL (SELECT date_trunc('minute', now() AT TIME ZONE 'UTC') - make_interval(mins => {minutes} - m) AS w) AS ws
         ORDER BY 1, 2, 3;"
    ))
    .unwrap();
    conn.batch_execute(&rollup_backfill("postgres")).unwrap();
    conn.batch_execute("ANALYZE").unwrap();
    eprintln!(
        "  PostgreSQL: {} rows and rollups made in {:.0} s",
        scale.rows(),
        started.elapsed().as_secs_f64()
    );
}

fn generate_sqlite(path: &str, scale: &Scale) {
    let mut conn = SqliteConnection::establish(path).unwrap();
    let minutes = scale.days * 1440;
    let types = scale.types_sql();
    let (tenants, vals) = (scale.tenants, VALUES_SQLITE);
    let started = Instant::now();
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000000;
         INSERT INTO cache_statistics ({COLUMNS})
         WITH RECURSIVE
           tn(t) AS (SELECT 0 UNION ALL SELECT t + 1 FROM tn WHERE t + 1 < {tenants}),
           mn(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM mn WHERE m + 1 < {minutes}),
           ty(name, c) AS (SELECT column1, row_number() OVER () FROM (VALUES {types}))
         SELECT 'tenant_' || t, name,
                strftime('%Y-%m-%d %H:%M:00', 'now', '-' || ({minutes} - m) || ' minutes') AS w,
                60, {vals}, strftime('%Y-%m-%d %H:%M:00', 'now')
         FROM tn CROSS JOIN ty CROSS JOIN mn
         ORDER BY 1, 2, 3;"
    ))
    .unwrap();
    conn.batch_execute(&rollup_backfill("sqlite")).unwrap();
    conn.batch_execute("ANALYZE; PRAGMA journal_mode = WAL;")
        .unwrap();
    eprintln!(
        "  SQLite: {} rows and rollups made in {:.0} s",
        scale.rows(),
        started.elapsed().as_secs_f64()
    );
}

/// Whether a kept data set still reaches the present: its newest minute is at most 30 minutes old. (Both
/// databases index `window_start`, so this reads a few rows whatever the scale.)
fn recent_sqlite(path: &str) -> bool {
    let mut conn = SqliteConnection::establish(path).unwrap();
    let found: Found = diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT 1 FROM cache_statistics \
         WHERE window_start >= strftime('%Y-%m-%d %H:%M:00', 'now', '-30 minutes') LIMIT 1) AS recent",
    )
    .get_result(&mut conn)
    .unwrap();
    found.n > 0
}

/// As [`recent_sqlite`], on PostgreSQL.
fn recent_postgres(url: &str) -> bool {
    let mut conn = PgConnection::establish(url).unwrap();
    let found: Found = diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT 1 FROM cache_statistics \
         WHERE window_start >= (now() AT TIME ZONE 'UTC') - interval '30 minutes' LIMIT 1) AS recent",
    )
    .get_result(&mut conn)
    .unwrap();
    found.n > 0
}

/// A count a query answers.
#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The database of `scale`, kept between runs and made again when missing or no longer recent: its URL.
fn database(kind: &str, scale: &Scale) -> String {
    let tag = scale.tag();
    match kind {
        "sqlite" => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("dashboard-{tag}.sqlite3"));
            let ready = dir.join(format!("dashboard-{tag}.ready"));
            let url = format!("sqlite://{}", file.display());
            if !ready.exists() || !recent_sqlite(&file.display().to_string()) {
                let _ = std::fs::remove_file(&ready);
                let _ = std::fs::remove_file(&file);
                run_pending(&mut Db::open(&url).unwrap()).unwrap();
                generate_sqlite(&file.display().to_string(), scale);
                std::fs::write(&ready, "").unwrap();
            }
            url
        }
        _ => {
            let admin = fernando_cache_testkit::admin_url();
            let name = format!("fc_bench_dashboard_{tag}");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            let mut conn = PgConnection::establish(&admin).unwrap();
            let found: Found = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}_ready'"
            ))
            .get_result(&mut conn)
            .unwrap();
            if found.n == 0 || !recent_postgres(&url) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}_ready"));
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                run_pending(&mut Db::open(&url).unwrap()).unwrap();
                generate_postgres(&url, scale);
                // The marker that the data set is whole: an empty database beside it.
                conn.batch_execute(&format!("CREATE DATABASE {name}_ready"))
                    .unwrap();
            }
            url
        }
    }
}

/// A smoke run's data set, made for this run alone and dropped with the value returned beside its URL: a SQLite
/// file in a temporary folder, or a throwaway PostgreSQL database (so that runs at once never share one).
fn throwaway_database(kind: &str, scale: &Scale) -> (String, Box<dyn std::any::Any>) {
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("dashboard.sqlite3").display().to_string();
            let url = format!("sqlite://{file}");
            run_pending(&mut Db::open(&url).unwrap()).unwrap();
            generate_sqlite(&file, scale);
            (url, Box::new(dir) as Box<dyn std::any::Any>)
        }
        _ => {
            let db = PostgresDb::create();
            let url = db.url().to_owned();
            run_pending(&mut Db::open(&url).unwrap()).unwrap();
            generate_postgres(&url, scale);
            (url, Box::new(db) as Box<dyn std::any::Any>)
        }
    }
}

fn serve(redis: &RedisServer, database_url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", &redis.url()])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__STATISTICS__ENABLED", "true")
        .env("FERNANDO_CACHE__STATISTICS__DATABASE_URL", database_url)
        .env("FERNANDO_CACHE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fernando-cache serve");
    let base = fernando_cache_testkit::announced_address(&mut child);
    (child, base)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = Scale {
        days: scaled(env_or("BENCH_DAYS", 30), 2),
        tenants: scaled(env_or("BENCH_TENANTS", 100), 2),
        types: scaled(env_or("BENCH_TYPES", 8usize), 2).min(TYPES.len()),
    };
    let reads: usize = scaled(env_or("BENCH_READS", 40), 2);
    let only = std::env::var("BENCH_ONLY").ok();
    println!(
        "dashboard endpoints — {} days × {} tenants × {} cache types of per-minute statistics ({} rows), \
         {} serve, {reads} sequential reads per endpoint after 2 warm-up reads",
        scale.days,
        scale.tenants,
        scale.types,
        scale.rows(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let redis = RedisServer::start();
    let client = reqwest::Client::new();
    let tenant = format!("tenant_{}", scale.tenants / 2);
    let endpoints: Vec<(String, String)> = [
        ("series, 1 h, all tenants", "series?range=1h".to_owned()),
        ("series, 6 h, all tenants", "series?range=6h".to_owned()),
        ("series, 24 h, all tenants", "series?range=24h".to_owned()),
        ("series, 7 d, all tenants", "series?range=7d".to_owned()),
        ("series, 30 d, all tenants", "series?range=30d".to_owned()),
        (
            "series, 6 h, one tenant",
            format!("series?range=6h&tenant={tenant}"),
        ),
        (
            "series, 30 d, one tenant",
            format!("series?range=30d&tenant={tenant}"),
        ),
        (
            "series, 24 h, one tenant and type",
            format!("series?range=24h&tenant={tenant}&cache_type=ocr_result"),
        ),
        ("overview, 24 h", "overview?range=24h".to_owned()),
        ("overview, 30 d", "overview?range=30d".to_owned()),
    ]
    .into_iter()
    .map(|(l, p)| (l.to_owned(), p))
    .collect();
    println!("| database | endpoint | resolution | points | p50 ms | p99 ms |");
    println!("|---|---|---|---:|---:|---:|");
    for kind in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        // Kept until the server below has stopped.
        let (url, _throwaway) = if smoke() {
            throwaway_database(kind, &scale)
        } else {
            (
                database(kind, &scale),
                Box::new(()) as Box<dyn std::any::Any>,
            )
        };
        let (mut child, base) = serve(&redis, &url);
        for (label, path) in &endpoints {
            let get = || {
                client
                    .get(format!("{base}/v1/admin/{path}"))
                    .bearer_auth("dev-admin-token")
                    .send()
            };
            let (mut points, mut resolution) = (0, String::from("-"));
            for _ in 0..2 {
                let resp = get().await.unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                let body: serde_json::Value = resp.json().await.unwrap();
                points = body["points"].as_array().map_or(0, Vec::len);
                if let Some(r) = body["resolution"].as_str() {
                    resolution = r.to_owned();
                }
                if path.starts_with("series") {
                    assert!(points > 0, "{path}: no points on the data set");
                }
            }
            let mut took = Vec::with_capacity(reads);
            for _ in 0..reads {
                let start = Instant::now();
                let resp = get().await.unwrap();
                let _ = resp.bytes().await.unwrap();
                took.push(start.elapsed());
            }
            took.sort();
            println!(
                "| {kind} | {label} | {resolution} | {points} | {:.1} | {:.1} |",
                pct(&took, 0.5),
                pct(&took, 0.99)
            );
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
    }
}

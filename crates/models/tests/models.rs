//! Migrations and repository functions on real PostgreSQL and real SQLite.

use chrono::{NaiveDateTime, Utc};
use fernando_cache_models::{
    AccessCount, Db, DbKind, EventRecord, FlushBatch, NewPendingInvalidation, PerformanceDelta,
    Pruned, Retention, StatisticsDelta, apply_flush, claim_due_invalidations, claim_warmup_run,
    finish_invalidation, health_rows, insert_event, insert_health, invalidation_rules, list_events,
    models::HealthRow, pending_invalidations, performance_since, prune, revert_last, run_pending,
    schedule_invalidation, statistics_since, status, upsert_performance, upsert_statistics,
    warmup_jobs,
};
use fernando_cache_models::{
    Resolution, SeriesQuery, access_history, record_accesses, reference_data, series,
};

/// Issue 14: retention removes only rows older than the configured age, per table, and a table without an age
/// keeps everything.
#[test]
fn retention_removes_only_rows_older_than_the_configured_age() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let now =
            NaiveDateTime::parse_from_str("2026-12-01 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let ago = |days: i64, secs: i64| {
            now - chrono::Duration::days(days) + chrono::Duration::seconds(secs)
        };
        // Windows 31 days old, exactly 30 days old (the cutoff: kept), and 1 day old.
        let windows = [ago(31, 0), ago(30, 0), ago(1, 0)];
        upsert_statistics(
            &mut db,
            &windows
                .iter()
                .map(|w| delta("acme", *w, 1, 10))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let event = |at: NaiveDateTime| EventRecord {
            occurred_at: at,
            event_type: "invalidation".to_owned(),
            severity: "info".to_owned(),
            tenant_id: None,
            cache_type: None,
            details: "x".to_owned(),
        };
        insert_event(&mut db, &[event(ago(8, 0)), event(ago(6, 0))]).unwrap();
        for at in [ago(8, 0), ago(7, 1), ago(0, -60)] {
            let row = HealthRow {
                id: 0,
                checked_at: at,
                component: "redis".to_owned(),
                status: "healthy".to_owned(),
                latency_us: Some(100),
                used_memory: None,
                max_memory: None,
                eviction_policy: None,
                evicted_keys: None,
                connected_clients: None,
                message: String::new(),
            };
            insert_health(&mut db, &row).unwrap();
        }

        let retention = Retention {
            statistics: Some(chrono::Duration::days(30)),
            performance: Some(chrono::Duration::days(30)),
            health: Some(chrono::Duration::days(7)),
            events: None,
        };
        let pruned = prune(&mut db, &retention, now).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                statistics: 1,
                // The 31-day-old window's hourly and daily buckets, for acme and for all tenants, and its
                // all-tenant window; the cutoff's stay.
                rollups: 5,
                access_history: 0,
                performance: 0,
                health: 1,
                events: 0
            },
            "{url}"
        );
        // One hit per window: what remains is the window at the cutoff and the recent one.
        let hits = |db: &mut Db, since| -> i64 {
            statistics_since(db, since)
                .unwrap()
                .iter()
                .map(|s| s.hits)
                .sum()
        };
        assert_eq!(hits(&mut db, epoch()), 2, "{url}");
        assert_eq!(
            hits(&mut db, ago(30, 0)),
            2,
            "{url}: the cutoff window stays"
        );
        assert_eq!(hits(&mut db, ago(30, 1)), 1, "{url}");
        let health: Vec<NaiveDateTime> = health_rows(&mut db, "redis", 10)
            .unwrap()
            .into_iter()
            .map(|r| r.checked_at)
            .collect();
        assert_eq!(health.len(), 2, "{url}: {health:?}");
        assert!(
            health.iter().all(|&at| at >= ago(7, 0)),
            "{url}: {health:?}"
        );
        assert_eq!(
            list_events(&mut db, epoch(), None).unwrap().len(),
            2,
            "no age: kept"
        );
        // Run again: nothing more to remove.
        assert_eq!(prune(&mut db, &retention, now).unwrap(), Pruned::default());
    });
}

use fernando_cache_testkit::PostgresDb;

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("stats.sqlite3").display())
}

fn each_backend(test: impl Fn(&str)) {
    let pg = PostgresDb::create();
    test(pg.url());
    let dir = tempfile::tempdir().unwrap();
    test(&sqlite_url(&dir));
}

fn epoch() -> NaiveDateTime {
    chrono::DateTime::UNIX_EPOCH.naive_utc()
}

fn delta(tenant: &str, window: NaiveDateTime, hits: i64, p99: i64) -> StatisticsDelta {
    StatisticsDelta {
        tenant_id: tenant.to_owned(),
        cache_type: "ocr_result".to_owned(),
        window_start: window,
        window_seconds: 60,
        hits,
        misses: 1,
        sets: 2,
        deletes: 3,
        errors: 0,
        degraded: 0,
        raw_bytes: 1000,
        stored_bytes: 300,
        latency_p50_us: p99 / 2,
        latency_p95_us: p99 - 1,
        latency_p99_us: p99,
        updated_at: Utc::now().naive_utc(),
        compute_spent_ms: 40,
        compute_saved_ms: hits * 40,
        tokens_spent: 700,
        tokens_saved: hits * 700,
        money_spent_micros: 1_050,
        money_saved_micros: hits * 1_050,
    }
}

#[test]
fn migrations_run_rerun_and_revert_on_both_backends() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        let before = status(&mut db).unwrap();
        assert!(before.applied.is_empty(), "{url}: a fresh database");
        let applied = run_pending(&mut db).unwrap();
        assert_eq!(applied, before.pending, "{url}: every migration, in order");
        assert!(applied.len() >= 5, "{url}: {applied:?}");
        assert!(
            run_pending(&mut db).unwrap().is_empty(),
            "{url}: a second run applies nothing"
        );
        let st = status(&mut db).unwrap();
        assert_eq!((st.applied.len(), st.pending.len()), (applied.len(), 0));

        let rules = invalidation_rules(&mut db, "document.updated", Some("any-tenant")).unwrap();
        assert_eq!(rules.len(), 1);
        let types: Vec<_> = rules[0].cache_type_list().collect();
        assert_eq!(
            types,
            ["ocr_result", "llm_extraction", "doc_hash", "api_response"]
        );
        assert!(
            invalidation_rules(&mut db, "document.updated", None)
                .unwrap()
                .iter()
                .all(|r| r.tenant_id.is_none()),
            "a global event applies only the rules for every tenant"
        );
        assert_eq!(
            invalidation_rules(&mut db, "user.logout", Some("t")).unwrap()[0].cache_types,
            "session"
        );
        assert_eq!(
            invalidation_rules(&mut db, "billing.changed", Some("t")).unwrap()[0].cache_types,
            "billing,dashboard"
        );
        let jobs = warmup_jobs(&mut db).unwrap();
        assert_eq!(jobs[0].name, "reference-data-at-start");
        assert!(
            jobs.iter()
                .any(|j| j.strategy == "frequency_based" && j.cache_type == "doc_hash")
        );

        // Newest first.
        for version in applied.iter().rev() {
            assert_eq!(&revert_last(&mut db).unwrap(), version);
        }
        let st = status(&mut db).unwrap();
        assert_eq!((st.applied.len(), st.pending.len()), (0, applied.len()));
        assert!(
            invalidation_rules(&mut db, "user.logout", Some("t")).is_err(),
            "tables are gone"
        );
        assert_eq!(
            run_pending(&mut db).unwrap(),
            applied,
            "and can be applied again"
        );
    });
}

#[test]
fn upserts_add_counts_and_keep_the_larger_percentiles() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let w1 = NaiveDateTime::parse_from_str("2026-11-25 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let w2 = NaiveDateTime::parse_from_str("2026-11-25 10:01:00", "%Y-%m-%d %H:%M:%S").unwrap();
        upsert_statistics(&mut db, &[delta("a", w1, 5, 900), delta("b", w1, 1, 10)]).unwrap();
        upsert_statistics(&mut db, &[delta("a", w1, 7, 400), delta("a", w2, 1, 2000)]).unwrap();
        let sums = statistics_since(&mut db, epoch()).unwrap();
        let a = sums.iter().find(|s| s.tenant_id == "a").unwrap();
        assert_eq!(
            (a.hits, a.misses, a.sets, a.deletes),
            (13, 3, 6, 9),
            "{url}"
        );
        assert_eq!((a.raw_bytes, a.stored_bytes), (3000, 900));
        assert_eq!(a.max_p99_us, 2000);
        assert_eq!(
            (
                a.compute_spent_ms,
                a.compute_saved_ms,
                a.tokens_spent,
                a.tokens_saved
            ),
            (120, 13 * 40, 2100, 13 * 700),
            "{url}: what was spent and saved adds up"
        );
        assert_eq!(
            (a.money_spent_micros, a.money_saved_micros),
            (3_150, 13 * 1_050)
        );
        let b = sums.iter().find(|s| s.tenant_id == "b").unwrap();
        assert_eq!(b.hits, 1);
        assert!((a.hit_ratio().unwrap() - 13.0 / 16.0).abs() < 1e-9);
        let later = statistics_since(&mut db, w2).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].hits, 1);
    });
}

#[test]
fn events_round_trip() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let now = Utc::now().naive_utc();
        let ev = |t: &str| EventRecord {
            occurred_at: now,
            event_type: t.to_owned(),
            severity: "info".to_owned(),
            tenant_id: Some("acme".to_owned()),
            cache_type: None,
            details: "x".to_owned(),
        };
        insert_event(&mut db, &[ev("invalidation"), ev("degradation.on")]).unwrap();
        assert_eq!(list_events(&mut db, epoch(), None).unwrap().len(), 2);
        assert_eq!(
            list_events(&mut db, epoch(), Some("invalidation"))
                .unwrap()
                .len(),
            1
        );
    });
}

#[test]
fn two_writers_on_one_postgres_database_add_up_exactly() {
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    let window = NaiveDateTime::parse_from_str("2026-11-25 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let url = pg.url().to_owned();
            std::thread::spawn(move || {
                let mut db = Db::open(&url).unwrap();
                for _ in 0..200 {
                    upsert_statistics(&mut db, &[delta("shared", window, 3, 1)]).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let sums = statistics_since(&mut Db::open(pg.url()).unwrap(), epoch()).unwrap();
    assert_eq!(sums[0].hits, 2 * 200 * 3);
    assert_eq!(sums[0].sets, 2 * 200 * 2);
}

/// Defect (CI, 2026-12-03): two replicas flushing read counts for the same documents wrote their rows in
/// whatever order their maps gave, so PostgreSQL found a deadlock and one flush lost its counts. Two writers
/// here upsert the same rows in opposite orders, read counts, statistics and latencies alike: every write succeeds and the
/// sums are exact.
#[test]
fn writers_upserting_the_same_rows_in_opposite_orders_never_deadlock() {
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    let hour = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    let counts: Vec<AccessCount> = (0..12)
        .map(|i| AccessCount {
            tenant_id: ["acme", "globex"][i % 2].to_owned(),
            doc_key: format!("doc-{i}"),
            fingerprint: format!("fp-{i}"),
            bucket_start: hour,
            reads: 1,
            cost_ms: 10,
            cost_micros: 100,
        })
        .collect();
    let deltas: Vec<StatisticsDelta> = (0..12)
        .map(|i| delta(&format!("tenant-{i}"), hour, 1, 5))
        .collect();
    let operations: Vec<PerformanceDelta> = (0..12)
        .map(|i| PerformanceDelta {
            window_start: hour,
            operation: ["get", "set"][i % 2].to_owned(),
            cache_type: format!("type-{i}"),
            count: 1,
            errors: 0,
            p50_us: 10,
            p95_us: 20,
            p99_us: 30,
            max_us: 40,
            updated_at: hour,
        })
        .collect();
    const ROUNDS: i64 = 60;
    let writers: Vec<_> = [false, true]
        .into_iter()
        .map(|reversed| {
            let url = pg.url().to_owned();
            let (mut counts, mut deltas, mut operations) =
                (counts.clone(), deltas.clone(), operations.clone());
            if reversed {
                counts.reverse();
                deltas.reverse();
                operations.reverse();
            }
            std::thread::spawn(move || {
                let mut db = Db::open(&url).unwrap();
                for round in 0..ROUNDS {
                    record_accesses(&mut db, &counts)
                        .unwrap_or_else(|e| panic!("read counts, round {round}: {e}"));
                    upsert_statistics(&mut db, &deltas)
                        .unwrap_or_else(|e| panic!("statistics, round {round}: {e}"));
                    upsert_performance(&mut db, &operations)
                        .unwrap_or_else(|e| panic!("operations, round {round}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut db = Db::open(pg.url()).unwrap();
    let history = access_history(&mut db, None, hour).unwrap();
    assert_eq!(history.len(), counts.len());
    assert!(history.iter().all(|c| c.reads == 2 * ROUNDS), "{history:?}");
    let sums = statistics_since(&mut db, epoch()).unwrap();
    assert_eq!(sums.len(), deltas.len());
    assert!(sums.iter().all(|s| s.hits == 2 * ROUNDS), "{sums:?}");
    let latencies = performance_since(&mut db, epoch()).unwrap();
    assert_eq!(latencies.len(), operations.len());
    assert!(
        latencies.iter().all(|p| p.count == 2 * ROUNDS),
        "{latencies:?}"
    );
}

/// Replicas starting together on a fresh database each run the migrations: every one succeeds, and the schema
/// is made once.
#[test]
fn concurrent_migrations_on_one_fresh_database_all_succeed() {
    each_backend(|url| {
        let results: Vec<_> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| run_pending(&mut Db::open(url).unwrap()).map(|v| v.len())))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for r in &results {
            assert!(r.is_ok(), "{url}: {results:?}");
        }
        let applied: usize = results.iter().map(|r| *r.as_ref().unwrap()).sum();
        assert_eq!(
            applied,
            status(&mut Db::open(url).unwrap()).unwrap().applied.len(),
            "{url}: each migration applied by exactly one runner"
        );
    });
}

#[test]
fn unknown_schemes_never_create_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oops");
    let err = Db::open(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("postgres://"), "{err}");
    assert!(!path.exists());
    assert!(DbKind::parse("mysql://x/y").is_err());
    let err = Db::open("postgres://nobody@127.0.0.1:1/none").unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[test]
fn a_flush_batch_is_applied_once_whatever_the_retries() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let w = NaiveDateTime::parse_from_str("2026-11-25 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let batch = FlushBatch {
            flush_id: "batch-1".into(),
            statistics: vec![delta("acme", w, 5, 900)],
            ..FlushBatch::default()
        };
        assert!(
            apply_flush(&mut db, &batch).unwrap(),
            "{url}: first attempt writes"
        );
        assert!(
            !apply_flush(&mut db, &batch).unwrap(),
            "{url}: a retry writes nothing"
        );
        let rows = statistics_since(&mut db, w).unwrap();
        assert_eq!(rows.iter().map(|r| r.hits).sum::<i64>(), 5, "{url}");
        let next = FlushBatch {
            flush_id: "batch-2".into(),
            ..batch
        };
        assert!(apply_flush(&mut db, &next).unwrap());
        let rows = statistics_since(&mut db, w).unwrap();
        assert_eq!(rows.iter().map(|r| r.hits).sum::<i64>(), 10, "{url}");
    });
}

#[test]
fn a_due_invalidation_is_claimed_by_one_replica_and_a_stale_claim_is_taken_over() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let t0 = chrono::Utc::now().naive_utc();
        let row = |due_in: i64| NewPendingInvalidation {
            rule_name: "r".into(),
            event_type: "e".into(),
            tenant_id: Some("acme".into()),
            subject: None,
            cache_type: "doc_hash".into(),
            strategy: "eager".into(),
            due_at: t0 + chrono::Duration::seconds(due_in),
            created_at: t0,
        };
        schedule_invalidation(&mut db, &row(0)).unwrap();
        schedule_invalidation(&mut db, &row(120)).unwrap();
        let stale = t0 - chrono::Duration::seconds(60);
        // Two replicas, each with its own connection: only one gets the due row; the later one is not due.
        let mut other = Db::open(url).unwrap();
        let a = claim_due_invalidations(&mut db, t0, stale, "a", 10).unwrap();
        let b = claim_due_invalidations(&mut other, t0, stale, "b", 10).unwrap();
        assert_eq!((a.len(), b.len()), (1, 0), "{url}");
        // Replica a dies without finishing; after the stale limit, b takes the claim over.
        let later = t0 + chrono::Duration::seconds(61);
        let minute = chrono::Duration::seconds(60);
        let b = claim_due_invalidations(&mut other, later, later - minute, "b", 10).unwrap();
        assert_eq!(
            b.len(),
            1,
            "{url}: a claim older than the stale limit is taken over"
        );
        assert!(
            !finish_invalidation(&mut db, a[0].id, "a", later).unwrap(),
            "a lost its claim"
        );
        assert!(finish_invalidation(&mut other, b[0].id, "b", later).unwrap());
        assert_eq!(
            pending_invalidations(&mut db).unwrap(),
            1,
            "{url}: the one not yet due"
        );
        let end = t0 + chrono::Duration::seconds(121);
        let due = claim_due_invalidations(&mut db, end, end - minute, "c", 10).unwrap();
        assert_eq!(due.len(), 1);
        assert!(finish_invalidation(&mut db, due[0].id, "c", later).unwrap());
        assert_eq!(pending_invalidations(&mut db).unwrap(), 0);
    });
}

#[test]
fn of_replicas_finding_a_warmup_job_due_together_one_claims_the_run() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let job = warmup_jobs(&mut db).unwrap().remove(0);
        let next = Utc::now().naive_utc() + chrono::Duration::seconds(60);
        let mut other = Db::open(url).unwrap();
        let first = claim_warmup_run(&mut db, job.id, job.next_run_at, next).unwrap();
        let second = claim_warmup_run(&mut other, job.id, job.next_run_at, next).unwrap();
        assert_eq!((first, second), (true, false), "{url}");
        let again = claim_warmup_run(&mut other, job.id, Some(next), next).unwrap();
        assert!(
            again,
            "{url}: the next run is claimable once it is the one seen"
        );
    });
}

/// Replicas share one SQLite file: connections opened at the same moment (each runs SQLite's WAL recovery and
/// the journal-mode pragma) wait for each other, because the busy timeout is set before anything that takes a
/// lock, instead of failing with "database is locked".
#[test]
fn a_sqlite_file_opens_from_many_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Db::open(&url)
                        .and_then(|mut db| warmup_jobs(&mut db))
                        .map(|_| ())
                })
            })
            .collect();
        for t in opened {
            let r = t.join().unwrap();
            assert!(r.is_ok(), "round {round}: {:?}", r.err());
        }
    }
}

/// Issue 14: two replicas counting reads of the same document in the same bucket add up; the history is read
/// back per tenant and from a time on; the reference data is rows an operator edits, seeded by the migration.
#[test]
fn read_counts_from_replicas_add_up_and_reference_data_is_rows() {
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let hour = |h: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        };
        let count = |tenant: &str, key: &str, h: u32, reads: i64, cost_ms: i64| AccessCount {
            tenant_id: tenant.to_owned(),
            doc_key: key.to_owned(),
            fingerprint: format!("fp-{key}"),
            bucket_start: hour(h),
            reads,
            cost_ms,
            cost_micros: cost_ms * 10,
        };
        let mut other = Db::open(url).unwrap();
        record_accesses(
            &mut db,
            &[count("acme", "a", 9, 3, 200), count("acme", "b", 9, 1, 50)],
        )
        .unwrap();
        record_accesses(
            &mut other,
            &[count("acme", "a", 9, 4, 120), count("acme", "a", 10, 2, 0)],
        )
        .unwrap();
        record_accesses(&mut other, &[count("globex", "a", 9, 5, 1)]).unwrap();
        let acme = access_history(&mut db, Some("acme"), hour(0)).unwrap();
        let summary: Vec<(&str, u32, i64, i64)> = acme
            .iter()
            .map(|c| {
                (
                    c.doc_key.as_str(),
                    chrono::Timelike::hour(&c.bucket_start),
                    c.reads,
                    c.cost_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("a", 9, 7, 200), ("a", 10, 2, 0), ("b", 9, 1, 50)],
            "{url}"
        );
        assert_eq!(
            access_history(&mut db, Some("acme"), hour(10))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(access_history(&mut db, None, hour(0)).unwrap().len(), 4);

        let global = reference_data(&mut db, None).unwrap();
        assert!(
            global
                .iter()
                .any(|(k, v)| k == "currency:EUR" && v.contains("Euro")),
            "{global:?}"
        );
        assert!(reference_data(&mut db, Some("acme")).unwrap().is_empty());
    });
}

/// Issue 16 item 2: a generated 30-day data set (3 tenants × 2 types, a window every 37 minutes) read back at
/// each resolution: every bucket equals the sum of the windows it covers, totals equal a direct SQL sum over
/// `cache_statistics`, ranges are half-open on bucket starts, and the resolution follows the range's length.
#[test]
fn series_at_every_resolution_sum_to_the_recorded_windows() {
    use chrono::{DurationRound, TimeDelta};
    assert_eq!(
        Resolution::for_range(TimeDelta::hours(6)),
        Resolution::Window
    );
    assert_eq!(
        Resolution::for_range(TimeDelta::hours(6) + TimeDelta::seconds(1)),
        Resolution::Hour
    );
    assert_eq!(Resolution::for_range(TimeDelta::days(14)), Resolution::Hour);
    assert_eq!(
        Resolution::for_range(TimeDelta::days(14) + TimeDelta::seconds(1)),
        Resolution::Day
    );

    let start = NaiveDateTime::parse_from_str("2026-10-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    let mut deltas = Vec::new();
    let mut at = start;
    let mut i = 0i64;
    while at < start + TimeDelta::days(30) {
        for (t, tenant) in ["acme", "globex", "<b>x</b>"].iter().enumerate() {
            for (k, ty) in ["ocr_result", "llm_extraction"].iter().enumerate() {
                let mut d = delta(
                    tenant,
                    at,
                    1 + (i + t as i64 * 7 + k as i64 * 3) % 11,
                    100 + i % 900,
                );
                d.cache_type = (*ty).to_owned();
                d.misses = (i + k as i64) % 5;
                deltas.push(d);
            }
        }
        at += TimeDelta::minutes(37);
        i += 1;
    }
    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        for chunk in deltas.chunks(2_000) {
            upsert_statistics(&mut db, chunk).unwrap();
        }
        let expected =
            |from: NaiveDateTime, to: NaiveDateTime, tenant: Option<&str>, step: TimeDelta| {
                let mut by: std::collections::BTreeMap<NaiveDateTime, (i64, i64, i64)> =
                    Default::default();
                for d in deltas.iter().filter(|d| {
                    d.window_start >= from
                        && d.window_start < to
                        && tenant.is_none_or(|t| d.tenant_id == t)
                }) {
                    let b = if step == TimeDelta::minutes(1) {
                        d.window_start
                    } else {
                        d.window_start.duration_trunc(step).unwrap()
                    };
                    let e = by.entry(b).or_default();
                    e.0 += d.hits;
                    e.1 += d.misses;
                    e.2 = e.2.max(d.latency_p99_us);
                }
                by.into_iter().collect::<Vec<_>>()
            };
        let cases = [
            (
                start + TimeDelta::days(3),
                start + TimeDelta::days(3) + TimeDelta::hours(6),
                Resolution::Window,
                TimeDelta::minutes(1),
            ),
            (
                start + TimeDelta::days(10),
                start + TimeDelta::days(17),
                Resolution::Hour,
                TimeDelta::hours(1),
            ),
            (
                start,
                start + TimeDelta::days(30),
                Resolution::Day,
                TimeDelta::days(1),
            ),
        ];
        for (from, to, resolution, step) in cases {
            for tenant in [None, Some("globex"), Some("<b>x</b>")] {
                let got = series(
                    &mut db,
                    &SeriesQuery {
                        from,
                        to,
                        tenant: tenant.map(str::to_owned),
                        cache_type: None,
                        resolution: None,
                    },
                )
                .unwrap();
                assert_eq!(got.resolution, resolution, "{url}");
                let got: Vec<_> = got
                    .points
                    .iter()
                    .map(|p| (p.bucket_start, (p.hits, p.misses, p.latency_p99_us)))
                    .collect();
                assert_eq!(
                    got,
                    expected(from, to, tenant, step),
                    "{url} {resolution:?} {tenant:?}"
                );
            }
        }
        // One type over the whole range against a direct SQL sum of the recorded windows.
        let daily = series(
            &mut db,
            &SeriesQuery {
                from: start,
                to: start + TimeDelta::days(30),
                tenant: Some("acme".into()),
                cache_type: Some("llm_extraction".into()),
                resolution: Some(Resolution::Day),
            },
        )
        .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Sum {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            hits: i64,
        }
        use diesel::RunQueryDsl;
        let direct: Sum = diesel::sql_query(
            "SELECT CAST(SUM(hits) AS BIGINT) AS hits FROM cache_statistics \
             WHERE tenant_id = 'acme' AND cache_type = 'llm_extraction'",
        )
        .get_result(&mut db)
        .unwrap();
        assert_eq!(
            daily.points.iter().map(|p| p.hits).sum::<i64>(),
            direct.hits,
            "{url}"
        );
        assert_eq!(daily.points.len(), 30, "{url}");
        // Half-open: a range starting at a bucket's start includes it; one ending there leaves it out.
        let mut one_hour = |from: NaiveDateTime| {
            series(
                &mut db,
                &SeriesQuery {
                    from,
                    to: from + TimeDelta::hours(1),
                    tenant: None,
                    cache_type: None,
                    resolution: Some(Resolution::Hour),
                },
            )
            .unwrap()
            .points
            .into_iter()
            .map(|p| p.bucket_start)
            .collect::<Vec<_>>()
        };
        let h = start + TimeDelta::hours(5);
        assert_eq!(one_hour(h), vec![h], "{url}");
        assert_eq!(
            one_hour(h + TimeDelta::seconds(1)),
            vec![h + TimeDelta::hours(1)],
            "{url}"
        );
    });
}

/// Issue 31, item 4 (finding F1): another process — a replica's recorder, its read history — still holds what it
/// recorded of a tenant before the tenant was erased, and writes it afterwards. Those rows are not written; what
/// it recorded of the tenant after the erasure, and of every other tenant, is.
#[test]
fn rows_recorded_of_a_tenant_before_its_erasure_are_not_written_after_it() {
    use chrono::TimeDelta;
    use fernando_cache_models::{TenantRows, erase_tenant};

    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        // Whole seconds: PostgreSQL keeps microseconds, the comparisons below are of values read back.
        let second = |t: NaiveDateTime| chrono::Timelike::with_nanosecond(&t, 0).unwrap();
        let before = second(Utc::now().naive_utc() - TimeDelta::minutes(1));
        let audit = |_: &TenantRows| EventRecord {
            occurred_at: Utc::now().naive_utc(),
            event_type: "tenant.erased".to_owned(),
            severity: "info".to_owned(),
            tenant_id: None,
            cache_type: None,
            details: "acme".to_owned(),
        };
        erase_tenant(&mut db, "acme", audit).unwrap();
        let after = second(Utc::now().naive_utc() + TimeDelta::minutes(1));
        let event = |t: &str, at: NaiveDateTime| EventRecord {
            occurred_at: at,
            event_type: "invalidation".to_owned(),
            severity: "info".to_owned(),
            tenant_id: Some(t.to_owned()),
            cache_type: None,
            details: "x".to_owned(),
        };
        let reads = |t: &str, at: NaiveDateTime| AccessCount {
            tenant_id: t.to_owned(),
            doc_key: "d".to_owned(),
            fingerprint: "fp".to_owned(),
            bucket_start: at,
            reads: 1,
            cost_ms: 1,
            cost_micros: 1,
        };

        // The replica's flush, after the erasure: a window and an event from before it, and from after.
        apply_flush(
            &mut db,
            &FlushBatch {
                flush_id: "replica-1".to_owned(),
                statistics: vec![
                    delta("acme", before, 5, 10),
                    delta("globex", before, 7, 10),
                    delta("acme", after, 1, 10),
                ],
                performance: vec![],
                events: vec![
                    event("acme", before),
                    event("globex", before),
                    event("acme", after),
                ],
                health: vec![],
            },
        )
        .unwrap();
        record_accesses(
            &mut db,
            &[
                reads("acme", before),
                reads("globex", before),
                reads("acme", after),
            ],
        )
        .unwrap();

        let stats = statistics_since(&mut db, epoch()).unwrap();
        // Summed over windows: acme's 5 hits from before the erasure are not there, its 1 from after is.
        let hits = |t: &str| -> i64 {
            stats
                .iter()
                .filter(|r| r.tenant_id == t)
                .map(|r| r.hits)
                .sum()
        };
        assert_eq!(
            hits("acme"),
            1,
            "{url}: acme's window from before the erasure"
        );
        assert_eq!(hits("globex"), 7, "{url}");
        let events = list_events(&mut db, epoch(), Some("invalidation")).unwrap();
        let moments = |t: &str| -> Vec<NaiveDateTime> {
            events
                .iter()
                .filter(|e| e.tenant_id.as_deref() == Some(t))
                .map(|e| e.occurred_at)
                .collect()
        };
        assert_eq!(moments("acme"), vec![after], "{url}");
        assert_eq!(moments("globex"), vec![before], "{url}");
        let history = |t: &str| -> Vec<NaiveDateTime> {
            access_history(&mut Db::open(url).unwrap(), Some(t), epoch())
                .unwrap()
                .iter()
                .map(|a| a.bucket_start)
                .collect()
        };
        assert_eq!(history("acme"), vec![after], "{url}");
        assert_eq!(history("globex"), vec![before], "{url}");
    });
}

/// Issue 31, item 4: a tenant's rows leave every table that names it, in one transaction with the audit event
/// that counts them; another tenant's rows and the shared rows stay, the audit names no tenant in its tenant
/// column (so erasing again does not erase it), and a second erasure finds nothing.
#[test]
fn erasing_a_tenant_removes_its_rows_from_every_table_and_records_the_counts() {
    use diesel::RunQueryDsl as _;
    use fernando_cache_models::{TenantRows, erase_tenant};

    each_backend(|url| {
        let mut db = Db::open(url).unwrap();
        run_pending(&mut db).unwrap();
        let now = Utc::now().naive_utc();
        for t in ["acme", "globex"] {
            upsert_statistics(&mut db, &[delta(t, epoch(), 2, 10)]).unwrap();
            record_accesses(
                &mut db,
                &[AccessCount {
                    tenant_id: t.to_owned(),
                    doc_key: "d".to_owned(),
                    fingerprint: "fp".to_owned(),
                    bucket_start: epoch(),
                    reads: 1,
                    cost_ms: 1,
                    cost_micros: 1,
                }],
            )
            .unwrap();
            insert_event(
                &mut db,
                &[EventRecord {
                    occurred_at: now,
                    event_type: "invalidation".to_owned(),
                    severity: "info".to_owned(),
                    tenant_id: Some(t.to_owned()),
                    cache_type: None,
                    details: "x".to_owned(),
                }],
            )
            .unwrap();
            schedule_invalidation(
                &mut db,
                &NewPendingInvalidation {
                    rule_name: format!("{t}-rule"),
                    event_type: "document.updated".to_owned(),
                    tenant_id: Some(t.to_owned()),
                    subject: None,
                    cache_type: "session".to_owned(),
                    strategy: "eager".to_owned(),
                    due_at: now,
                    created_at: now,
                },
            )
            .unwrap();
            for sql in [
                format!(
                    "INSERT INTO cache_invalidation_rules (name, event_type, tenant_id, cache_types, strategy, \
                     delay_seconds, enabled, created_at) \
                     VALUES ('{t}-rule', 'document.updated', '{t}', 'session', 'eager', 0, TRUE, CURRENT_TIMESTAMP)"
                ),
                format!(
                    "INSERT INTO cache_warmup_jobs (name, tenant_id, cache_type, strategy, interval_seconds, \
                     priority, enabled) VALUES ('{t}-job', '{t}', 'doc_hash', 'frequency_based', 300, 1, TRUE)"
                ),
                format!(
                    "INSERT INTO cache_reference_data (tenant_id, key, value) VALUES ('{t}', 'plan', 'gold')"
                ),
            ] {
                diesel::sql_query(sql).execute(&mut db).unwrap();
            }
        }
        let audit = |rows: &TenantRows| EventRecord {
            occurred_at: now,
            event_type: "tenant.erased".to_owned(),
            severity: "info".to_owned(),
            tenant_id: None,
            cache_type: None,
            details: format!("acme: {} rows", rows.total()),
        };

        let rows = erase_tenant(&mut db, "acme", audit).unwrap();
        let by_table = rows.by_table();
        for (table, n) in by_table {
            match table {
                "cache_statistics_rollups" => assert!(n >= 1, "{url}: {table}: {n}"),
                _ => assert_eq!(n, 1, "{url}: {table}"),
            }
        }
        let audits = list_events(&mut db, epoch(), Some("tenant.erased")).unwrap();
        assert_eq!(audits.len(), 1, "{url}");
        assert_eq!(audits[0].tenant_id, None);
        assert_eq!(audits[0].details, format!("acme: {} rows", rows.total()));

        // Nothing of acme is left: erasing again finds nothing (and records that too).
        assert_eq!(
            erase_tenant(&mut db, "acme", audit).unwrap(),
            TenantRows::default(),
            "{url}"
        );
        assert_eq!(
            list_events(&mut db, epoch(), Some("tenant.erased"))
                .unwrap()
                .len(),
            2
        );
        let stats = statistics_since(&mut db, epoch()).unwrap();
        assert!(stats.iter().all(|r| r.tenant_id != "acme"), "{url}");
        assert!(stats.iter().any(|r| r.tenant_id == "globex"), "{url}");
        assert!(
            access_history(&mut db, Some("acme"), epoch())
                .unwrap()
                .is_empty()
        );
        assert!(reference_data(&mut db, Some("acme")).unwrap().is_empty());

        // globex's rows and the shared ones stay.
        assert_eq!(
            access_history(&mut db, Some("globex"), epoch())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(reference_data(&mut db, Some("globex")).unwrap().len(), 1);
        assert!(!reference_data(&mut db, None).unwrap().is_empty());
        assert_eq!(
            pending_invalidations(&mut db).unwrap(),
            1,
            "{url}: globex's"
        );
        assert!(
            invalidation_rules(&mut db, "document.updated", Some("globex"))
                .unwrap()
                .iter()
                .any(|r| r.name == "globex-rule")
        );
    });
}

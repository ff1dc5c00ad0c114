//! The in-process tier (L1, design 0013): hits that never reach the backend, another process's changes seen
//! as soon as Redis announces them (and, across two OS processes, never an older value afterwards), this
//! process's own changes seen at once on every backend, and copies that live only `l1.untracked_ttl` where
//! the backend announces nothing.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::{InvalidationStrategy, Store, Target};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

use crate::support::{Deployment, calls, contract, tenant};

/// Settings of a store that keeps `session` values in process.
fn l1_settings(d: &Deployment, extra: &[(&str, &str)]) -> Settings {
    let mut overrides = vec![("types.session.l1", "true")];
    overrides.extend_from_slice(extra);
    d.settings_with(&overrides)
}

/// The L1 hits counted for `(tenant, session)`.
fn l1_hits(store: &Store, tenant: &str) -> u64 {
    store
        .metrics()
        .series
        .iter()
        .find(|s| s.tenant == tenant && s.cache_type == "session")
        .map_or(0, |s| s.counters.l1_hits)
}

/// Reads `key` until a read is answered in process (tracking starts in the background).
async fn until_held(store: &Store, tenant: &TenantId, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = l1_hits(store, tenant.as_str());
        let _ = store
            .get::<u64>(tenant, &CacheType::SESSION, key)
            .await
            .unwrap();
        let _ = store
            .get::<u64>(tenant, &CacheType::SESSION, key)
            .await
            .unwrap();
        if l1_hits(store, tenant.as_str()) > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no read was answered in process after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the store answers `want`, within a liveness bound (not a performance one).
async fn until_reads(store: &Store, tenant: &TenantId, key: &str, want: Option<u64>) -> Duration {
    let start = Instant::now();
    loop {
        let got = store
            .get::<u64>(tenant, &CacheType::SESSION, key)
            .await
            .unwrap();
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still read {got:?} instead of {want:?} 3 s after the change was acknowledged"
        );
        tokio::task::yield_now().await;
    }
}

contract! {
    async fn hits_spare_the_backend_and_follow_another_process(d, _store) {
        let reader = Store::from_settings(&l1_settings(d, &[])).unwrap();
        let writer = d.store();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set(&acme, &ty, "k", &0u64).await.unwrap();
        until_held(&reader, &acme, "k").await;

        let (gets, mgets) = (calls(d, "get"), calls(d, "mget"));
        for _ in 0..200 {
            assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(0));
        }
        assert_eq!((calls(d, "get"), calls(d, "mget")), (gets, mgets), "hits in process reach no server");

        // Another process overwrites, deletes and invalidates (every strategy); the reader follows each as soon
        // as Redis announces it, and its copies are in use between the changes.
        let held_before = l1_hits(&reader, "acme");
        for round in 1..=40u64 {
            let _ = writer.set(&acme, &ty, "k", &round).await.unwrap();
            until_reads(&reader, &acme, "k", Some(round)).await;
            for _ in 0..5 {
                assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(round));
            }
            match round % 4 {
                0 => {
                    assert!(writer.delete(&acme, &ty, "k").await.unwrap());
                }
                1 => {
                    let _ = writer.invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy).await.unwrap();
                }
                2 => {
                    let _ = writer.invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy).await.unwrap();
                }
                _ => {
                    let _ = writer.invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Eager).await.unwrap();
                }
            }
            until_reads(&reader, &acme, "k", None).await;
        }
        assert!(
            l1_hits(&reader, "acme") >= held_before + 40 * 3,
            "the reader's copies were in use between the changes"
        );
    }
    on [standalone, cluster, sentinel]
}

contract! {
    async fn own_changes_are_read_at_once(d, _store) {
        let store = Store::from_settings(&l1_settings(d, &[])).unwrap();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = store.set(&acme, &ty, "k", &1u64).await.unwrap();
        until_held(&store, &acme, "k").await;

        // No waiting for an announcement: the process's own acknowledged change retires its copy.
        let _ = store.set(&acme, &ty, "k", &2u64).await.unwrap();
        assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(2));
        until_held(&store, &acme, "k").await;
        assert!(store.delete(&acme, &ty, "k").await.unwrap());
        assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), None);

        for strategy in [InvalidationStrategy::Lazy, InvalidationStrategy::Eager, InvalidationStrategy::Hybrid] {
            let _ = store.set(&acme, &ty, "k", &3u64).await.unwrap();
            until_held(&store, &acme, "k").await;
            let done = store.invalidate(Target::entries(&acme, None), strategy).await.unwrap();
            assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), None, "{strategy:?}");
            if let Some(sweep) = done.sweep {
                let _ = sweep.await.unwrap().unwrap();
            }
        }

        // A compressed value is kept decompressed and reads back whole, from the backend and then in process.
        let text = "line item: 12 x widget at 3.50 EUR\n".repeat(200);
        let _ = store.set(&acme, &ty, "big", &text).await.unwrap();
        let before = l1_hits(&store, "acme");
        let deadline = Instant::now() + Duration::from_secs(5);
        while l1_hits(&store, "acme") == before {
            let got = store.get::<String>(&acme, &ty, "big").await.unwrap();
            assert!(got.as_deref() == Some(text.as_str()), "the compressed value reads back whole");
            assert!(Instant::now() < deadline, "the compressed value was never answered in process");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = store.get::<String>(&acme, &ty, "big").await.unwrap();
        assert!(got.as_deref() == Some(text.as_str()), "and whole from the copy in process");
    }
    on [memory, disk, standalone, cluster, acl]
}

contract! {
    async fn where_nothing_is_announced_a_copy_lives_the_short_ttl(d, _store) {
        // The disk backend announces nothing; neither does Redis without RESP3 tracking.
        let extra = [("l1.untracked_ttl", "300ms"), ("redis.track_generations", "false")];
        let reader = Store::from_settings(&l1_settings(d, &extra)).unwrap();
        let writer = d.store();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set(&acme, &ty, "k", &1u64).await.unwrap();
        until_held(&reader, &acme, "k").await;

        let _ = writer.set(&acme, &ty, "k", &2u64).await.unwrap();
        let acknowledged = Instant::now();
        // The copy may still answer 1 until it expires, never anything else; then the new value.
        loop {
            match reader.get::<u64>(&acme, &ty, "k").await.unwrap() {
                Some(2) => break,
                Some(1) => {}
                other => panic!("read {other:?}"),
            }
            assert!(acknowledged.elapsed() < Duration::from_secs(3), "the copy outlived its life");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("untracked copy replaced {:?} after the other write", acknowledged.elapsed());
    }
    on [disk, standalone, acl]
}

/// Set in the child process of [`coherence_across_two_processes`]: the Redis URL to read from.
const CHILD_ENV: &str = "FERNANDO_TEST_L1_READER_REDIS";

/// Nanoseconds since the Unix epoch: comparable between two processes of one machine.
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos()
}

fn child_settings(url: &str) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all([
                ("backend", "redis".to_owned()),
                ("redis.url", url.to_owned()),
            ])
            .set_all(FAST_FAILURE.iter().copied())
            .set("types.session.l1", "true"),
    )
    .expect("child settings")
}

/// Process B reads `k` in a loop and prints every change it sees; process A (this test) overwrites, deletes and
/// invalidates `k` and waits for B to see each change. B must see exactly A's sequence of states — never an
/// older value after a newer one — and after Redis is SIGKILLed and restarted B must read the restarted
/// server's (empty) state, not its copy. Prints the staleness window (A's acknowledgement to B's first read of
/// the new state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coherence_across_two_processes() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return reader_process(&url).await;
    }
    let mut server = RedisServer::start();
    let a = Store::from_settings(&child_settings(&server.url())).unwrap();
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    let _ = a.set(&acme, &ty, "k", &0u64).await.unwrap();

    let mut b = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "l1::coherence_across_two_processes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // B holds `k` in process before the changes start: it says READY after its first L1 hit, then reports.
    let stdout = b.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Every state B reports, in order, with when it first read it.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("B never got ready");
        // The harness prints `test … ` without a newline before the test's own output.
        if line.ends_with("READY") {
            break;
        }
    }
    let mut seen: Vec<(Option<u64>, u128)> = Vec::new();
    let mut wait_for = |want: Option<u64>| -> u128 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(&(state, at)) = seen.last()
                && state == want
            {
                return at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("B never read {want:?}; it read {seen:?}"));
            if let Some(rest) = line.find("SAW ").map(|i| &line[i + 4..]) {
                let (state, at) = rest.split_once(' ').expect("SAW state ns");
                let state = (state != "none").then(|| state.parse().expect("a value"));
                seen.push((state, at.parse().expect("ns")));
            }
        }
    };
    let _ = wait_for(Some(0));

    let mut expected = vec![Some(0)];
    let mut windows = Vec::new();
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < Duration::from_secs(4) || round < 100 {
        round += 1;
        let _ = a.set(&acme, &ty, "k", &round).await.unwrap();
        let acked = now_ns();
        windows.push(wait_for(Some(round)).saturating_sub(acked));
        expected.push(Some(round));
        match round % 3 {
            0 => {
                let _ = a.delete(&acme, &ty, "k").await.unwrap();
            }
            1 => {
                let _ = a
                    .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
                    .await
                    .unwrap();
            }
            _ => {
                let _ = a
                    .invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy)
                    .await
                    .unwrap();
            }
        }
        let acked = now_ns();
        windows.push(wait_for(None).saturating_sub(acked));
        expected.push(None);
    }

    // Redis dies and comes back empty: B's copy must not outlive the connection that announced changes.
    let _ = a.set(&acme, &ty, "k", &1_000_000u64).await.unwrap();
    let _ = wait_for(Some(1_000_000));
    expected.push(Some(1_000_000));
    server.kill();
    server.restart();
    let _ = wait_for(None);
    expected.push(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.set(&acme, &ty, "k", &2_000_000u64).await.unwrap()
        != fernando_cache_store::WriteOutcome::Stored
    {
        assert!(
            Instant::now() < deadline,
            "A never wrote to the restarted server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = wait_for(Some(2_000_000));
    expected.push(Some(2_000_000));

    drop(b.stdin.take());
    let status = b.wait().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "B failed: {rest:?}");
    let hits: u64 = rest
        .iter()
        .find_map(|l| l.find("L1_HITS ").map(|i| &l[i + 8..]))
        .expect("B reports its L1 hits")
        .parse()
        .unwrap();
    let states: Vec<Option<u64>> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        states, expected,
        "B read exactly A's states, in order, never an older one after a newer"
    );
    assert!(
        hits > round,
        "B's reads were answered in process between the changes ({hits} L1 hits)"
    );

    windows.sort_unstable();
    let q = |p: f64| windows[((windows.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    println!(
        "L1 staleness window over {} changes: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; B's L1 hits: {hits}",
        windows.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}

/// Process B: reads `k` until stdin closes, printing each change of what it reads.
async fn reader_process(url: &str) {
    let b = Store::from_settings(&child_settings(url)).unwrap();
    let acme = tenant("acme");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_eof = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        stop_on_eof.store(true, Ordering::SeqCst);
    });
    let mut out = std::io::stdout();
    until_held(&b, &acme, "k").await;
    writeln!(out, "READY").unwrap();
    let mut last: Option<Option<u64>> = None;
    while !stop.load(Ordering::SeqCst) {
        let got = b.get::<u64>(&acme, &CacheType::SESSION, "k").await.unwrap();
        if last != Some(got) {
            let shown = got.map_or_else(|| "none".to_owned(), |v| v.to_string());
            writeln!(out, "SAW {shown} {}", now_ns()).unwrap();
            out.flush().unwrap();
            last = Some(got);
        }
        tokio::task::yield_now().await;
    }
    writeln!(out, "L1_HITS {}", l1_hits(&b, "acme")).unwrap();
}

//! Where entries live: derived keys include the function's path and version, skip what is asked, templates
//! render arguments, and a second process derives the same key.

use std::{collections::HashMap, process::Command};

use fernando_cache_decorators::cached;
use fernando_cache_store::Store;
use serde::Serialize;

use crate::support::{Calls, entry_keys, redis_settings, redis_store};

#[cached(store = store, cache_type = "dashboard")]
async fn revenue(store: &Store, tenant_id: &str, year: u16) -> u64 {
    u64::from(year) * 10
}

#[cached(store = store, cache_type = "dashboard")]
async fn costs(store: &Store, tenant_id: &str, year: u16) -> u64 {
    u64::from(year) * 3
}

#[cached(store = store, cache_type = "dashboard", version = 2)]
async fn costs_v2(store: &Store, tenant_id: &str, year: u16) -> u64 {
    u64::from(year) * 4
}

#[tokio::test]
async fn two_functions_with_the_same_arguments_never_share_a_key() {
    let (server, store) = redis_store();
    for _ in 0..2 {
        assert_eq!(revenue(&store, "acme", 2026).await, 20_260);
        assert_eq!(costs(&store, "acme", 2026).await, 6_078);
        assert_eq!(costs_v2(&store, "acme", 2026).await, 8_104);
    }
    let keys = entry_keys(&server);
    assert_eq!(keys.len(), 3, "{keys:?}");
    let prefix = "fernando:test:{tenant_acme}:dashboard:cached.keys.";
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}revenue/v0/"))),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}costs/v0/"))),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}costs_v2/v2/"))),
        "{keys:?}"
    );
}

static SKIP_CALLS: Calls = Calls::new();

#[derive(Debug)]
struct Connection(u32);

#[cached(store = store, cache_type = "reference_data", tenant = "ref", skip(conn, _trace_id))]
async fn country(store: &Store, conn: &Connection, code: &str, _trace_id: u64) -> String {
    SKIP_CALLS.hit();
    format!("{code} via {}", conn.0)
}

#[tokio::test]
async fn skipped_arguments_do_not_split_entries() {
    let (server, store) = redis_store();
    assert_eq!(country(&store, &Connection(1), "DE", 1).await, "DE via 1");
    assert_eq!(country(&store, &Connection(2), "DE", 2).await, "DE via 1");
    assert_eq!(SKIP_CALLS.get(), 1);
    assert_eq!(country(&store, &Connection(2), "FR", 3).await, "FR via 2");
    assert_eq!(entry_keys(&server).len(), 2);
}

#[derive(Serialize)]
struct Filter {
    status: String,
    labels: HashMap<String, String>,
}

/// The function both processes call; its body reports which process computed the value.
#[cached(store = store, cache_type = "api_response", name = "cross_process::search")]
async fn search(store: &Store, tenant_id: &str, filter: &Filter, page: u32) -> String {
    format!("computed by {}", std::process::id())
}

fn filter() -> Filter {
    // Many labels, so a HashMap's per-process random order would show if keys depended on it.
    Filter {
        status: "open".into(),
        labels: (0..32)
            .map(|i| (format!("l{i}"), format!("v{i}")))
            .collect(),
    }
}

const CHILD_ENV: &str = "FERNANDO_TEST_KEY_PROBE_REDIS";

/// Run twice: by the test harness (parent), and by the parent as a separate process (child, with
/// `FERNANDO_TEST_KEY_PROBE_REDIS` set), which must find the parent's entry under the key it derives itself.
#[tokio::test]
async fn a_second_process_derives_the_same_key() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        let store = Store::from_settings(&redis_settings(&url)).unwrap();
        let got = search(&store, "acme", &filter(), 3).await;
        println!("CHILD-SAW: {got}");
        return;
    }
    let (server, store) = redis_store();
    let mine = search(&store, "acme", &filter(), 3).await;
    assert_eq!(mine, format!("computed by {}", std::process::id()));
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "keys::a_second_process_derives_the_same_key",
            "--nocapture",
        ])
        .env(CHILD_ENV, server.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("CHILD-SAW: {mine}")),
        "the child computed its own value, so its key differed: {stdout}"
    );
    let keys = entry_keys(&server);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("fernando:test:{tenant_acme}:api_response:cross_process.search/v0/")
    );
}

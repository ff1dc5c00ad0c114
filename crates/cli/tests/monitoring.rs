//! The Grafana board and the alerts of `docs/monitoring.md` read only metrics a running `serve` exposes, and
//! `/metrics` exposes every counter the store keeps.

mod support;

use std::collections::BTreeSet;

use fernando_cache_testkit::{PostgresDb, RedisServer};
use serde_json::Value;
use support::{ACME, Server};

/// Every `fernando_cache_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("fernando_cache_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => {
                        out.push_str(e);
                        out.push('\n');
                    }
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_and_the_alerts_read_only_exposed_metrics() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start_with(
        &redis.url(),
        pg.url(),
        &[("FERNANDO_CACHE__QUOTAS__TENANT_BYTES", "1000000")],
    );
    assert_eq!(
        server.get("/v1/cache/stats", Some(ACME)).await.status(),
        200
    );
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    let exposed: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(exposed.len() > 20, "{metrics}");
    let known = |name: &str| {
        exposed.contains(name)
            || ["_count", "_sum"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| exposed.contains(base))
            })
    };

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let board: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/docs/grafana/fernando-cache.json")).unwrap(),
    )
    .expect("the board is JSON");
    let mut queries = String::new();
    exprs(&board, &mut queries);
    let used = metric_names(&queries);
    assert!(used.len() >= 15, "the board reads {used:?}");
    let alerts =
        metric_names(&std::fs::read_to_string(format!("{root}/docs/monitoring.md")).unwrap());
    let unknown: Vec<_> = used.union(&alerts).filter(|n| !known(n)).collect();
    assert!(
        unknown.is_empty(),
        "read but not exposed: {unknown:?}\nexposed: {exposed:?}"
    );

    // Issue 28, item 13: a hand-kept table once left six of the store's counters off this page. Every counter
    // of the store's own list is a counter family here, under the name the OTLP export shares.
    let families = fernando_cache_ops::telemetry::counter_families();
    for counter in fernando_cache_store::COUNTERS {
        let family = families
            .iter()
            .find(|f| f.counter.name == counter.name)
            .unwrap_or_else(|| panic!("the store's counter {} has no family", counter.name));
        let name = format!("{}_total", family.name);
        assert!(
            metrics.contains(&format!("# TYPE {name} counter\n")),
            "the store's counter {} is not on /metrics as {name}:\n{metrics}",
            counter.name
        );
    }
}

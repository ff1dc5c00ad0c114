//! OpenTelemetry export, seen by a real OTLP/HTTP receiver: an HTTP server in the test that keeps every request
//! the program sends and decodes it with the OTLP protobuf definitions. With an endpoint set, the spans of a
//! request carry its tenant, cache type and request id and join the caller's `traceparent`, and every one of the
//! store's counters arrives as a metric; without one, nothing is sent — even with the SDK's own environment set.

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::Uri, routing::post};
use fernando_cache_testkit::{PostgresDb, RedisServer};
use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::metric,
    trace::v1::Span,
};
use prost::Message as _;
use support::{ACME, Server};

/// Every request the receiver got: (path, body).
type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A local OTLP/HTTP receiver answering 200 to every export.
async fn receiver() -> (SocketAddr, Received) {
    let got: Received = Arc::default();
    async fn keep(State(got): State<Received>, uri: Uri, body: Bytes) -> &'static str {
        got.lock().unwrap().push((uri.path().to_owned(), body));
        ""
    }
    let app = Router::new()
        .route("/v1/traces", post(keep))
        .route("/v1/metrics", post(keep))
        .fallback(keep)
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

fn text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| text(&a.value))
}

fn spans(got: &Received) -> Vec<Span> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/v1/traces")
        .flat_map(|(_, body)| {
            ExportTraceServiceRequest::decode(body.clone())
                .expect("a trace export is OTLP protobuf")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

/// The data points of a metric: (attributes, value).
fn points(got: &Received, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/v1/metrics")
        .flat_map(|(_, body)| {
            ExportMetricsServiceRequest::decode(body.clone())
                .expect("a metrics export is OTLP protobuf")
                .resource_metrics
        })
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .filter(|m| m.name == name)
        .flat_map(|m| match m.data {
            Some(metric::Data::Sum(s)) => {
                assert!(s.is_monotonic, "{name} is a counter");
                s.data_points
            }
            Some(metric::Data::Gauge(g)) => g.data_points,
            other => panic!("{name}: unexpected data {other:?}"),
        })
        .map(|p| {
            let v = match p.value {
                Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d),
                ) => d,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    i,
                )) => i as f64,
                None => f64::NAN,
            };
            (p.attributes, v)
        })
        .collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Uploads one text document twice (the second from the cache): the last request id and the fingerprint.
async fn upload_twice(server: &Server) -> (String, String) {
    let (mut request_id, mut fingerprint) = (String::new(), String::new());
    for _ in 0..2 {
        let resp = server
            .client
            .post(format!("{}/v1/documents", server.base))
            .bearer_auth(ACME)
            .header("content-type", "text/plain")
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
            .body("Invoice INV-1 total 12.50 EUR, contact billing@example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: serde_json::Value = resp.json().await.unwrap();
        fingerprint = body["fingerprint"].as_str().unwrap().to_owned();
    }
    (request_id, fingerprint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_a_local_otlp_receiver() {
    let (addr, got) = receiver().await;
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let endpoint = format!("http://{addr}");
    let server = Server::start_with(
        &redis.url(),
        pg.url(),
        &[
            (
                "FERNANDO_CACHE__TELEMETRY__OTLP_ENDPOINT",
                endpoint.as_str(),
            ),
            ("FERNANDO_CACHE__TELEMETRY__METRICS_INTERVAL", "1s"),
            // The store's own spans too (off by default).
            (
                "FERNANDO_CACHE__TELEMETRY__SPANS",
                "info,fernando_cache_store=debug",
            ),
        ],
    );
    let (request_id, fingerprint) = upload_twice(&server).await;
    // A cached route, read twice: its request spans name the cache type and the cache's answer.
    for expected in ["MISS", "HIT"] {
        let r = server
            .get(&format!("/v1/documents/{fingerprint}"), Some(ACME))
            .await;
        assert_eq!(r.headers()["x-cache"], expected);
    }
    // A periodic export while the server runs, not only the one at exit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while points(&got, "fernando_cache_hits").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metrics export within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.terminate().success());

    let spans = spans(&got);
    let trace_id = hex(TRACE_ID);
    let request = spans
        .iter()
        .find(|s| {
            s.name == "request" && attr(&s.attributes, "request_id").as_deref() == Some(&request_id)
        })
        .unwrap_or_else(|| panic!("no request span for {request_id} among {:?}", names(&spans)));
    assert_eq!(request.trace_id, trace_id, "the caller's trace is followed");
    assert_eq!(attr(&request.attributes, "tenant").as_deref(), Some("acme"));
    assert_eq!(
        attr(&request.attributes, "http.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(&request.attributes, "http.status").as_deref(),
        Some("200")
    );
    let reads: Vec<(Option<String>, Option<String>)> = spans
        .iter()
        .filter(|s| {
            s.name == "request"
                && attr(&s.attributes, "http.path").as_deref()
                    == Some(&format!("/v1/documents/{fingerprint}"))
        })
        .map(|s| {
            assert_eq!(attr(&s.attributes, "tenant").as_deref(), Some("acme"));
            (
                attr(&s.attributes, "cache_type"),
                attr(&s.attributes, "cache.status"),
            )
        })
        .collect();
    for status in ["MISS", "HIT"] {
        assert!(
            reads.contains(&(Some("api_response".into()), Some(status.into()))),
            "{reads:?}"
        );
    }
    // The store's spans of that request: same trace, tenant and cache type as attributes.
    let store_reads: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("cache.get") && s.trace_id == trace_id)
        .collect();
    assert!(
        !store_reads.is_empty(),
        "no cache.get span in {:?}",
        names(&spans)
    );
    for s in &store_reads {
        assert_eq!(attr(&s.attributes, "tenant").as_deref(), Some("acme"));
        assert!(attr(&s.attributes, "cache_type").is_some_and(|t| !t.is_empty()));
    }
    assert!(
        spans.iter().any(|s| s.name == "document"
            && s.trace_id == trace_id
            && attr(&s.attributes, "tenant").as_deref() == Some("acme")),
        "no document span in {:?}",
        names(&spans)
    );

    // The second upload was answered from the cache: its hits are exported, per tenant and cache type.
    let hits = points(&got, "fernando_cache_hits");
    assert!(
        hits.iter()
            .any(|(a, v)| attr(a, "tenant").as_deref() == Some("acme")
                && attr(a, "cache_type").is_some()
                && *v >= 1.0),
        "{hits:?}"
    );
    let sets = points(&got, "fernando_cache_sets");
    assert!(
        sets.iter()
            .any(|(a, v)| attr(a, "tenant").as_deref() == Some("acme") && *v >= 1.0)
    );
    // Issue 28, item 13: every counter of the store's own list is exported, per tenant and cache type — none
    // is left out by a second, hand-kept table.
    for counter in fernando_cache_store::COUNTERS {
        let family = fernando_cache_ops::telemetry::counter_families()
            .iter()
            .find(|f| f.counter.name == counter.name)
            .unwrap_or_else(|| panic!("the store's counter {} has no family", counter.name));
        assert!(
            points(&got, &family.name)
                .iter()
                .any(|(a, _)| attr(a, "tenant").as_deref() == Some("acme")),
            "the store's counter {} is not exported over OTLP as {}",
            counter.name,
            family.name
        );
    }
    assert!(!points(&got, "fernando_cache_get_latency_seconds").is_empty());
    assert_eq!(
        points(&got, "fernando_cache_breaker_open")
            .last()
            .map(|p| p.1),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_an_endpoint() {
    let (addr, got) = receiver().await;
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let endpoint = format!("http://{addr}");
    // The SDK's own variables point at the receiver; only telemetry.otlp_endpoint turns export on.
    let server = Server::start_with(
        &redis.url(),
        pg.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("FERNANDO_CACHE__TELEMETRY__METRICS_INTERVAL", "1s"),
        ],
    );
    upload_twice(&server).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.terminate().success());
    // The exit would have flushed anything buffered.
    assert!(
        got.lock().unwrap().is_empty(),
        "sent without an endpoint: {:?}",
        got.lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

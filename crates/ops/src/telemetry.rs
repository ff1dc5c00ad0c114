//! OpenTelemetry: the program's log subscriber, and — only when `telemetry.otlp_endpoint` is set — traces and
//! metrics exported over OTLP/HTTP.
//!
//! - **Traces** are the spans the crates already make (`request` in `serve`/`proxy`, `document` in the
//!   pipeline, `cache.get`, `cache.set`, … in the store, each with its tenant and cache type), filtered by
//!   `telemetry.spans` and sampled parent-based by `telemetry.sample_ratio`. Store spans are exported only inside
//!   another exported span (a request's, a document's), never as roots: measured, a span per hit of a bare hit
//!   loop halves its rate (`cargo xtask bench dashboard`). A request's W3C `traceparent` is
//!   followed ([`follow_remote_parent`]) and passed on to an origin ([`inject_context`]).
//! - **Metrics** are the store's own counters and gauges, read when the exporter collects them (observable
//!   instruments): the hot path records nothing extra for them. Names and meanings are those of `/metrics`:
//!   both iterate [`counter_families`], made from the store's own counter table.
//!
//! Off, nothing of this is built: the subscriber is the log formatter alone, so a span no log filter enables
//! stays a disabled callsite, exactly as without this module.
//!
//! Exports run on the SDK's own threads; their HTTP requests are sent by the program's reqwest client on the
//! program's runtime ([`RuntimeClient`]), so there is one HTTP stack, one TLS setup and one reqwest in the tree.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fernando_cache_config::TelemetrySettings;
use fernando_cache_store::{COUNTERS, CounterInfo, CounterUnit, Counters, MetricsSnapshot, Store};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::subscriber::Interest;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{FilterExt as _, dynamic_filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The tracing target of the store's spans.
const STORE_TARGET: &str = "fernando_cache_store";

fn is_store_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target().starts_with(STORE_TARGET)
}

/// Whether spans are exported (so request code can skip `traceparent` work when they are not).
static TRACING: AtomicBool = AtomicBool::new(false);

/// Why telemetry could not be started. The messages name the setting, never a header value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `telemetry.spans` is not a tracing filter.
    #[error("invalid configuration `telemetry.spans`: {0}")]
    SpanFilter(String),
    /// The OTLP exporter could not be built.
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("the log subscriber could not be installed: {0}")]
    Subscriber(String),
}

/// The tracer provider, while spans are exported. [`Tracing::shutdown`] sends what is still buffered.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Tracing {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops. Call it from outside the runtime (it blocks until the
    /// export ends or `telemetry.export_timeout` passes), while the runtime still runs (the export is sent on
    /// it).
    pub fn shutdown(self) {
        TRACING.store(false, Ordering::Relaxed);
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("fernando-cache: the last spans could not be exported: {e}");
        }
    }
}

/// Installs the program's subscriber: log lines on stderr filtered by `log_filter`, and, when `telemetry` has
/// an endpoint, an OpenTelemetry layer with its own filter (`telemetry.spans`) that exports spans through
/// `runtime`.
///
/// # Errors
/// An invalid `telemetry.spans`, an exporter that cannot be built, or a subscriber already installed.
pub fn install_subscriber(
    log_filter: EnvFilter,
    telemetry: &TelemetrySettings,
    runtime: &tokio::runtime::Handle,
) -> Result<Tracing, TelemetryError> {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colours only for a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter);
    let provider = tracer_provider(telemetry, runtime)?;
    let otel = match &provider {
        Some(p) => {
            let filter = EnvFilter::try_new(&telemetry.spans)
                .map_err(|e| TelemetryError::SpanFilter(e.to_string()))?
                .and(
                    dynamic_filter_fn(|meta, cx| {
                        // A store operation is traced as part of something traced (a request, a document),
                        // never as a root of its own: a loop of cache hits outside any request — a background
                        // job, a library user's hot path — exports nothing and pays only this check.
                        !is_store_span(meta) || cx.lookup_current().is_some()
                    })
                    // Only the store's span callsites need the check; every other callsite keeps the static
                    // answer of the `telemetry.spans` filter.
                    .with_callsite_filter(|meta| {
                        if is_store_span(meta) {
                            Interest::sometimes()
                        } else {
                            Interest::always()
                        }
                    }),
                );
            let layer = tracing_opentelemetry::layer()
                .with_tracer(p.tracer("fernando-cache"))
                // Our spans carry what matters as fields; thread and code locations are noise per span.
                .with_location(false)
                .with_threads(false);
            Some(layer.with_filter(filter))
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    TRACING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Tracing { provider })
}

fn resource(telemetry: &TelemetrySettings) -> Resource {
    Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build()
}

fn tracer_provider(
    telemetry: &TelemetrySettings,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(endpoint) = telemetry.signal_endpoint("traces") else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient::new(telemetry, runtime)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(telemetry.export_timeout)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let sampler =
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio)));
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource(telemetry))
            .build(),
    ))
}

/// Makes `span` a child of the trace a request's `traceparent` names, when spans are exported and the header
/// is valid; otherwise `span` starts its own trace.
pub fn follow_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !TRACING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // A span the filter disabled has no context to set: nothing to do.
    let _ = span.set_parent(cx);
}

/// Writes `span`'s trace context as `traceparent`/`tracestate` into `headers` (a request to an origin), when
/// spans are exported.
pub fn inject_context(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !TRACING.load(Ordering::Relaxed) {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The store's metrics, exported every `telemetry.metrics_interval` while this lives.
#[must_use = "shut it down at exit, or the last interval is lost"]
pub struct MetricsExport {
    provider: SdkMeterProvider,
}

impl fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsExport").finish_non_exhaustive()
    }
}

impl MetricsExport {
    /// Exports the last figures and stops. It blocks (call it from a blocking thread) and needs the runtime
    /// running (the export is sent on it).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last metrics could not be exported");
        }
    }
}

/// Starts exporting `store`'s metrics when `telemetry` has an endpoint (`None` otherwise). `currency` labels
/// the money counters, as on `/metrics`.
///
/// # Errors
/// An exporter that cannot be built.
pub fn export_metrics(
    telemetry: &TelemetrySettings,
    store: &Store,
    currency: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<MetricsExport>, TelemetryError> {
    let Some(endpoint) = telemetry.signal_endpoint("metrics") else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient::new(telemetry, runtime)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(telemetry.export_timeout)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(telemetry.metrics_interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource(telemetry))
        .build();
    register_instruments(&provider, store, currency);
    Ok(Some(MetricsExport { provider }))
}

/// One counter of the store as `/metrics` and OTLP both name it: `{name}_total` in Prometheus' exposition,
/// `{name}` as an OTLP monotonic sum (which a Prometheus receiver turns into `{name}_total`). Made from the
/// store's own table, [`fernando_cache_store::COUNTERS`], by [`counter_families`]; never listed by hand, so no
/// counter of the store can be left out of either export.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CounterFamily {
    /// The metric's name without `_total`: `fernando_cache_` and the counter's name, a unit suffix replaced by
    /// the exported unit's (`compute_spent_ms` → `fernando_cache_compute_spent_seconds`, `money_spent_micros` →
    /// `fernando_cache_money_spent`).
    pub name: String,
    /// What it counts, with the exported unit when it has one.
    pub help: String,
    /// The store's counter.
    pub counter: CounterInfo,
}

impl CounterFamily {
    fn of(counter: CounterInfo) -> CounterFamily {
        let (base, unit) = match counter.unit {
            CounterUnit::Milliseconds => (
                format!(
                    "{}_seconds",
                    counter.name.strip_suffix("_ms").unwrap_or(counter.name)
                ),
                " In seconds.",
            ),
            CounterUnit::MoneyMicros => (
                counter
                    .name
                    .strip_suffix("_micros")
                    .unwrap_or(counter.name)
                    .to_owned(),
                " In the currency unit (prices.currency).",
            ),
            _ => (counter.name.to_owned(), ""),
        };
        CounterFamily {
            name: format!("fernando_cache_{base}"),
            help: format!("{}{unit}", counter.help),
            counter,
        }
    }

    /// Its figure in one series' counters, in the exported unit (seconds, the currency unit).
    pub fn value(&self, counters: &Counters) -> f64 {
        in_exported_unit(self.counter.unit, (self.counter.value)(counters))
    }

    /// Whether the figure is money, labelled with its currency.
    pub fn money(&self) -> bool {
        self.counter.unit == CounterUnit::MoneyMicros
    }
}

/// A figure of the store in the unit the exports state: seconds for milliseconds, the currency unit for its
/// millionths.
fn in_exported_unit(unit: CounterUnit, raw: u64) -> f64 {
    match unit {
        CounterUnit::Milliseconds => raw as f64 / 1e3,
        CounterUnit::MoneyMicros => raw as f64 / 1e6,
        _ => raw as f64,
    }
}

/// Every counter family of the store, per (tenant, cache type): one per entry of the store's
/// [`fernando_cache_store::COUNTERS`], in its order. `/metrics` and the OTLP export both iterate this.
pub fn counter_families() -> &'static [CounterFamily] {
    static FAMILIES: LazyLock<Vec<CounterFamily>> =
        LazyLock::new(|| COUNTERS.iter().copied().map(CounterFamily::of).collect());
    &FAMILIES
}

/// The quantiles of the read latency exported as gauges.
pub const LATENCY_QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// One snapshot of the store's metrics for all the instruments of a collection: the SDK calls each
/// instrument's callback in turn, and without this each would take its own snapshot of every series (one per
/// instrument and export), with figures from slightly different instants.
#[derive(Debug)]
struct SharedSnapshot {
    store: Store,
    last: Mutex<Option<(Instant, Arc<MetricsSnapshot>)>>,
}

impl SharedSnapshot {
    /// How long one snapshot serves: far longer than a collection's callbacks take, far shorter than any export
    /// interval.
    const REUSE: Duration = Duration::from_millis(500);

    fn get(&self) -> Arc<MetricsSnapshot> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some((at, snapshot)) if at.elapsed() < Self::REUSE => Arc::clone(snapshot),
            _ => {
                let snapshot = Arc::new(self.store.metrics());
                *last = Some((Instant::now(), Arc::clone(&snapshot)));
                snapshot
            }
        }
    }
}

fn register_instruments(provider: &SdkMeterProvider, store: &Store, currency: &str) {
    let meter = provider.meter("fernando-cache");
    let shared = Arc::new(SharedSnapshot {
        store: store.clone(),
        last: Mutex::new(None),
    });
    for f in counter_families() {
        let (shared, currency) = (Arc::clone(&shared), currency.to_owned());
        // Kept by the provider; the handle itself is not needed.
        let _ = meter
            .f64_observable_counter(f.name.clone())
            .with_description(f.help.clone())
            .with_callback(move |observer| {
                for s in &shared.get().series {
                    let mut attrs = vec![
                        KeyValue::new("tenant", s.tenant.clone()),
                        KeyValue::new("cache_type", s.cache_type.clone()),
                    ];
                    if f.money() {
                        attrs.push(KeyValue::new("currency", currency.clone()));
                    }
                    observer.observe(f.value(&s.counters), &attrs);
                }
            })
            .build();
    }
    let latency = Arc::clone(&shared);
    let _ = meter
        .f64_observable_gauge("fernando_cache_get_latency_seconds")
        .with_description("Latency of cache reads, by quantile.")
        .with_unit("s")
        .with_callback(move |observer| {
            for s in &latency.get().series {
                for q in LATENCY_QUANTILES {
                    observer.observe(
                        s.get_latency.quantile(q).as_secs_f64(),
                        &[
                            KeyValue::new("tenant", s.tenant.clone()),
                            KeyValue::new("cache_type", s.cache_type.clone()),
                            KeyValue::new("quantile", q),
                        ],
                    );
                }
            }
        })
        .build();
    let _ = meter
        .u64_observable_gauge("fernando_cache_breaker_open")
        .with_description("1 while the circuit breaker keeps calls away from the backend.")
        .with_callback(move |observer| {
            let open = shared.get().breaker.as_str() != "closed";
            observer.observe(u64::from(open), &[]);
        })
        .build();
}

/// Sends the exporter's requests with the program's reqwest client on the program's runtime. The SDK exports
/// from its own threads, outside any runtime; the request is spawned onto `runtime` and awaited there.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// A collector's answer is a small protobuf; a larger one is cut off, never buffered whole.
const MAX_COLLECTOR_RESPONSE: usize = 1 << 20;

impl RuntimeClient {
    fn new(
        telemetry: &TelemetrySettings,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, TelemetryError> {
        let client = reqwest::Client::builder()
            .timeout(telemetry.export_timeout)
            .connect_timeout(telemetry.export_timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(Self {
            client,
            runtime: runtime.clone(),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let send = async move {
            let mut resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                let room = MAX_COLLECTOR_RESPONSE.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok::<_, HttpError>(out.body(Bytes::from(body))?)
        };
        self.runtime.spawn(send).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 28, item 13: the exporters' table once re-typed the store's list and left six counters out. Every
    /// counter of the store is now a family, once, under a name of its own, with help text.
    #[test]
    fn every_counter_of_the_store_is_exported_once() {
        let families = counter_families();
        assert_eq!(families.len(), COUNTERS.len());
        for (info, f) in COUNTERS.iter().zip(families) {
            assert_eq!(f.counter.name, info.name);
            assert!(f.name.starts_with("fernando_cache_"), "{}", f.name);
            assert!(f.help.starts_with(info.help), "{}", f.name);
        }
        let names: std::collections::BTreeSet<&str> =
            families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), families.len(), "names are unique: {names:?}");
        // The ones the hand-kept table had lost, and names dashboards read, which must not move.
        for name in [
            "stale",
            "stale_served",
            "refreshes",
            "l1_hits",
            "read_errors",
            "write_errors",
            "hits",
            "compute_saved_seconds",
            "money_saved",
            "tokens_saved",
        ] {
            assert!(
                names.contains(format!("fernando_cache_{name}").as_str()),
                "{name} is not exported: {names:?}"
            );
        }
        let money: Vec<&str> = families
            .iter()
            .filter(|f| f.money())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            money,
            ["fernando_cache_money_spent", "fernando_cache_money_saved"]
        );
    }

    #[test]
    fn figures_are_exported_in_seconds_and_currency_units() {
        assert_eq!(in_exported_unit(CounterUnit::Milliseconds, 1_500), 1.5);
        assert_eq!(in_exported_unit(CounterUnit::MoneyMicros, 2_500_000), 2.5);
        assert_eq!(in_exported_unit(CounterUnit::Count, 7), 7.0);
        let c = Counters::default();
        assert!(counter_families().iter().all(|f| f.value(&c) == 0.0));
    }
}

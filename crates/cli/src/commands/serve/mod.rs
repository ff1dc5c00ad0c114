//! `fernando-cache serve`: the document API over HTTP (axum), with tenant authentication, the response cache
//! layer on read routes, health, Prometheus metrics, warming, and a graceful shutdown that flushes statistics.

mod admin;
mod auth;
mod console;
mod credentials;
mod dashboard;
mod engines;
mod prometheus;
mod routes;
mod tenants;
mod throttle;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    middleware,
    routing::{get, post},
};
use fernando_cache_config::{CacheType, Settings};
// `edge`: the hardened listener `serve` and `proxy` share (the network edge).
use fernando_cache_http::{
    HttpCacheLayer, Route,
    server::{self as edge, TenantRates},
    tenant_from_extension,
};
use fernando_cache_processor::DocumentProcessor;
use fernando_cache_store::Store;

use crate::output::outln;

pub(crate) use self::auth::{Keys, tenant as tenant_auth};
pub(crate) use self::console::{ConsoleState, routes as console_routes};
pub(crate) use self::dashboard::Sessions;
use self::engines::EngineGate;
pub(crate) use self::routes::canonical_subject;
pub(crate) use fernando_cache_http::server::{error, internal_error};

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) processor: DocumentProcessor,
    pub(crate) keys: Arc<auth::Keys>,
    /// The statistics database, when statistics are on.
    pub(crate) database_url: Option<String>,
    /// The currency money figures are counted in (`prices.currency`).
    pub(crate) currency: Arc<str>,
    /// The queue in front of the engines.
    pub(crate) engine: Arc<EngineGate>,
    /// Per-tenant request rates.
    pub(crate) rates: Arc<TenantRates>,
    /// Listening on a loopback address (`/metrics` is then open without a metrics token).
    pub(crate) loopback: bool,
    /// The dashboard's sign-in sessions.
    pub(crate) sessions: Arc<dashboard::Sessions>,
    /// The configured cache types: a request naming another is refused with the known ones.
    pub(crate) types: Arc<fernando_cache_config::TypeTable>,
    /// The statistics recorder, whose unwritten rows of an erased tenant are dropped. Weak: the server's
    /// shutdown takes the recorder back whole to flush it.
    pub(crate) recorder: std::sync::Weak<fernando_cache_ops::recorder::Recorder>,
}

/// `serve --help`'s closing text: the routes [`app`] wires, and who may call each. Kept beside it: a route added
/// there is added here.
pub(crate) const ROUTES_HELP: &str = "\
Routes (tenant: `Authorization: Bearer <API key>`, server.api_keys; admin: the admin token,
server.admin_token_sha256):
  POST /v1/documents              tenant  a document's bytes (Content-Type: its MIME type): fingerprint,
                                          text, fields and each stage's hit/miss
  GET  /v1/documents/{sha256}     tenant  the stored result of one of the tenant's documents
  POST /v1/events                 tenant  {\"event_type\": \"document.updated\", \"subject\": …}: the matching
                                          invalidation rules applied
  GET  /v1/cache/stats            tenant  the tenant's cache figures and quota use
  POST /v1/cache/invalidate       admin   a tenant's entries, one cache type's, one document's, or the
                                          global scope's
  GET  /health                    anyone  healthy | degraded (200) or down (503); details with the admin token
  GET  /metrics                   open on loopback, else the metrics token (server.metrics_token_sha256) or
                                          the admin token: Prometheus text
  GET  /dashboard                 anyone  the operators' console; sign in with the admin token
  GET  /v1/admin/series, /v1/admin/overview
                                  admin   the console's figures as JSON
  POST /v1/admin/tenants/{id}/erase
                                  admin   every trace of a tenant removed (cache keys, statistics rows),
                                          with counts, and one audit event
Errors are JSON: {\"error\": message, \"request_id\": id}. Examples: README.md, \"The HTTP API\".";

/// The application: routes, authentication, rates, body limits, the response cache and the access log.
pub(crate) fn app(state: AppState, settings: &Settings) -> anyhow::Result<Router> {
    let limits = &settings.server.limits;
    let cache = HttpCacheLayer::builder(state.store.clone(), tenant_from_extension())
        .route(
            // The segment is the document's fingerprint: an event about the document reaches this copy too.
            // Kept for `types.api_response.ttl`, the type's own TTL.
            Route::new("/v1/documents/{subject}").cache_type(CacheType::API_RESPONSE),
        )
        .max_body_bytes(limits.max_cached_response_bytes)
        .build()
        .context("HTTP cache layer")?;
    // Bodies are limited per route: a declared length over the limit is refused before any of it is read, and
    // a streamed body is cut off at the limit. Documents up to processor.max_document_bytes, JSON far less.
    let document_limit =
        usize::try_from(settings.processor.max_document_bytes).unwrap_or(usize::MAX);
    let json_limit = limits.json_body_bytes;
    let limited = |limit: usize| {
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(limit, edge::declared_length))
            .layer(DefaultBodyLimit::max(limit))
    };
    let tenant_routes = Router::new()
        .route(
            "/v1/documents",
            post(routes::upload).layer(limited(document_limit)),
        )
        .route(
            "/v1/documents/{sha256}",
            get(routes::document).layer(limited(json_limit)),
        )
        .route("/v1/events", post(routes::event).layer(limited(json_limit)))
        .route(
            "/v1/cache/stats",
            get(routes::stats).layer(limited(json_limit)),
        )
        // Route layers: they wrap these routes only, never the fallback, so a path no route serves is a 404 for
        // everyone and never asks for a credential; a known route still asks first (401 before 404 or 405).
        .route_layer(cache)
        .route_layer(middleware::from_fn(routes::canonical_fingerprint))
        .route_layer(middleware::from_fn_with_state(
            state.rates.clone(),
            edge::rate_limit,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.keys.clone(),
            auth::tenant,
        ));
    let console = ConsoleState::from_ref(&state);
    let admin_routes = Router::new()
        .route(
            "/v1/cache/invalidate",
            post(routes::invalidate).layer(limited(json_limit)),
        )
        .route(
            "/v1/admin/tenants/{id}/erase",
            post(tenants::erase).layer(limited(json_limit)),
        )
        .route_layer(middleware::from_fn_with_state(console.clone(), auth::admin));
    let app = Router::new()
        .merge(tenant_routes)
        .merge(admin_routes)
        .merge(console::routes(console, json_limit))
        .route("/", get(routes::index).layer(limited(json_limit)))
        .route("/health", get(routes::health).layer(limited(json_limit)))
        .route(
            "/metrics",
            get(prometheus::metrics).layer(limited(json_limit)),
        )
        .fallback(routes::not_found)
        .with_state(state)
        .layer(middleware::from_fn(edge::json_errors));
    Ok(edge::request_edge(
        app,
        limits,
        fernando_cache_ops::telemetry::follow_remote_parent,
    ))
}

/// Applies delayed invalidations as they fall due, every `interval`, for as long as the server runs (several
/// replicas may poll one database: each due row is claimed by one of them).
fn pending_invalidations(
    store: Store,
    database_url: String,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match fernando_cache_ops::events::run_due(&store, &database_url).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(applied = n, "delayed invalidations applied"),
                Err(e) => tracing::warn!(error = %e, "delayed invalidations not applied this time"),
            }
        }
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(
    settings: &Settings,
    bind: Option<String>,
    allow_dev_keys: bool,
) -> anyhow::Result<std::process::ExitCode> {
    credentials::check(settings)?;
    let addr = edge::bind_address(
        bind.as_deref().unwrap_or(&settings.server.bind),
        &settings.server,
        allow_dev_keys,
    )?;
    let store = Store::from_settings(settings)?;
    let otlp = crate::wiring::start_metrics_export(settings, &store)?;
    let recorder = crate::wiring::start_serving_recorder(settings, &store)
        .await
        .map(Arc::new);
    let database_url = if recorder.is_some() {
        Some(crate::wiring::database_url(settings)?)
    } else {
        None
    };
    let processor =
        DocumentProcessor::from_settings(settings, store.clone(), crate::wiring::parser_host()?)
            .await;
    let keys = Arc::new(auth::Keys::from_settings(&settings.server)?);
    let state = AppState {
        store: store.clone(),
        processor: processor.clone(),
        keys,
        database_url: database_url.clone(),
        currency: settings.prices.currency.as_str().into(),
        engine: Arc::new(EngineGate::new(&settings.server.limits)),
        rates: Arc::new(TenantRates::new(store.clone())),
        loopback: addr.ip().is_loopback(),
        sessions: Arc::default(),
        types: Arc::new(settings.types.clone()),
        recorder: recorder
            .as_ref()
            .map_or_else(std::sync::Weak::new, Arc::downgrade),
    };
    let app = app(state, settings)?;
    let pending = database_url.clone().map(|url| {
        pending_invalidations(
            store.clone(),
            url,
            settings.invalidation.pending_poll_interval,
        )
    });
    let warming =
        fernando_cache_ops::warming::start(settings, processor, database_url, recorder.clone());
    let (stop_replicating, stopped) = tokio::sync::oneshot::channel::<()>();
    let replicating = crate::commands::replicate::serve_replicators(settings, &store, async {
        let _ = stopped.await;
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // The one line a supervisor (or a test) waits for.
    outln!(
        "fernando-cache listening on http://{}",
        listener.local_addr()?
    );
    edge::serve(listener, app, &settings.server.limits).await;
    store.flush_replication().await;
    // Replicators acknowledge what they applied before they stop.
    let _ = stop_replicating.send(());
    if let Some(replicating) = replicating {
        let _ = replicating.await;
    }
    warming.abort();
    if let Some(p) = pending {
        p.abort();
    }
    // The warming task holds the recorder too; wait until it is gone.
    let _ = warming.await;
    if let Some(recorder) = recorder {
        match Arc::try_unwrap(recorder) {
            Ok(r) => {
                let report = r.shutdown(Duration::from_secs(10)).await;
                outln!("statistics flushed: {} flushes", report.flushes);
            }
            Err(_) => tracing::warn!("statistics recorder still in use at shutdown"),
        }
    }
    crate::wiring::stop_metrics_export(otlp).await;
    Ok(std::process::ExitCode::SUCCESS)
}

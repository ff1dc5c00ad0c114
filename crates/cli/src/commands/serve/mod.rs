//! `fernando-cache serve`: the document API over HTTP (axum), with tenant authentication, the response cache
//! layer on read routes, health, Prometheus metrics, warming, and a graceful shutdown that flushes statistics.

mod auth;
mod prometheus;
mod routes;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use fernando_cache_config::{CacheType, Settings};
use fernando_cache_http::{HttpCacheLayer, Route, tenant_from_extension};
use fernando_cache_processor::DocumentProcessor;
use fernando_cache_store::Store;
use serde_json::json;

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
}

/// A JSON error body with a status.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The application: routes, authentication and the response cache.
pub(crate) fn app(state: AppState, settings: &Settings) -> anyhow::Result<Router> {
    let cache = HttpCacheLayer::builder(state.store.clone(), tenant_from_extension())
        .route(
            // The segment is the document's fingerprint: an event about the document reaches this copy too.
            Route::new("/v1/documents/{subject}")
                .cache_type(CacheType::API_RESPONSE)
                .ttl(settings.server.response_ttl),
        )
        .build()
        .context("HTTP cache layer")?;
    let body_limit = usize::try_from(settings.processor.max_document_bytes).unwrap_or(usize::MAX);
    let tenant_routes = Router::new()
        .route("/v1/documents", post(routes::upload))
        .route("/v1/documents/{sha256}", get(routes::document))
        .route("/v1/events", post(routes::event))
        .route("/v1/cache/stats", get(routes::stats))
        .layer(cache)
        .layer(middleware::from_fn_with_state(state.clone(), auth::tenant));
    let admin_routes = Router::new()
        .route("/v1/cache/invalidate", post(routes::invalidate))
        .layer(middleware::from_fn_with_state(state.clone(), auth::admin));
    Ok(Router::new()
        .merge(tenant_routes)
        .merge(admin_routes)
        .route("/health", get(routes::health))
        .route("/metrics", get(prometheus::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: draining requests, then flushing statistics");
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
) -> anyhow::Result<std::process::ExitCode> {
    let addr: SocketAddr = bind
        .as_deref()
        .unwrap_or(&settings.server.bind)
        .parse()
        .context("--bind")?;
    let store = Store::from_settings(settings)?;
    let recorder = crate::wiring::start_serving_recorder(settings, &store)
        .await
        .map(Arc::new);
    let database_url = if recorder.is_some() {
        Some(crate::wiring::database_url(settings)?)
    } else {
        None
    };
    let processor = DocumentProcessor::from_settings(settings, store.clone()).await;
    let keys = Arc::new(auth::Keys::from_settings(&settings.server)?);
    let state = AppState {
        store: store.clone(),
        processor: processor.clone(),
        keys,
        database_url: database_url.clone(),
        currency: settings.prices.currency.as_str().into(),
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
        crate::commands::warming::start(settings, processor, database_url, recorder.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // The one line a supervisor (or a test) waits for.
    println!(
        "fernando-cache listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
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
                println!("statistics flushed: {} flushes", report.flushes);
            }
            Err(_) => tracing::warn!("statistics recorder still in use at shutdown"),
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

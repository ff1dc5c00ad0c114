//! The hardened listener (feature `server`), which the program's `serve` and `proxy` share: a listener that
//! bounds connections and slow clients and drains at SIGTERM within a bound ([`serve`]), request ids and the
//! access log, body deadlines and body limits ([`request_edge`], [`declared_length`]), error bodies that
//! never leak internals ([`error`], [`json_errors`]), the refusal to expose development keys
//! ([`bind_address`]), and per-tenant request rates ([`TenantRates`], [`rate_limit`]). It builds on axum and
//! hyper-util, which is why it is a feature: the tower layer alone needs neither. What a route does with a
//! request — authentication, the engine queue, the document API — is the program's (design 0016).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use fernando_cache_config::ServerLimits;
use http_body_util::BodyExt as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use serde_json::json;
use tokio::sync::Semaphore;
use tower::Layer as _;
use tower_http::timeout::{TimeoutBody, TimeoutError};
use tracing::Instrument as _;

use crate::ConfigError;

tokio::task_local! {
    /// The id of the request the current task serves (set by [`access_log`]).
    static REQUEST_ID: Arc<str>;
}

/// The response header carrying the request id.
const X_REQUEST_ID: &str = "x-request-id";

/// Makes a request's span a child of the trace its headers name (a W3C `traceparent`) before the request runs
/// in it. This crate exports no traces: the program passes its exporter's function (ops'
/// `telemetry::follow_remote_parent`), or `|_, _| {}` for none.
pub type FollowParent = fn(&tracing::Span, &http::HeaderMap);

/// The current request's id, or `-` outside a request.
fn request_id() -> Arc<str> {
    REQUEST_ID
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from("-"))
}

/// A JSON error body, `{"error": message, "request_id": id}`: a message for the client and the request id that
/// finds the details in the log. The message must be written for clients — never an engine's stderr, SQL or an
/// upstream body.
pub fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": message, "request_id": &*request_id() })),
    )
        .into_response()
}

/// An error whose cause stays in the log (with the request id), and a plain message for the client.
pub fn internal_error(
    status: StatusCode,
    message: &str,
    cause: &dyn std::fmt::Display,
) -> Response {
    tracing::warn!(request_id = &*request_id(), error = %cause, "{message}");
    error(status, message)
}

/// A client's `X-Request-Id` is kept when it is short and plain; otherwise one is made.
fn chosen_request_id(req: &Request) -> Arc<str> {
    req.headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map_or_else(
            || Arc::from(format!("{:016x}", rand::random::<u64>())),
            Arc::from,
        )
}

/// Gives every request an id (in the task, the response's `X-Request-Id` and every error body) and writes one
/// access log line per request: method, path, status, time taken, id. The request's span follows the trace its
/// headers name through `follow`.
async fn access_log(State(follow): State<FollowParent>, req: Request, next: Next) -> Response {
    let id = chosen_request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    // The request's span, exported when telemetry is on: the tenant is recorded once it is known, the cache
    // type by the response cache layer when a cached route matches, the cache's answer (`X-Cache`) at the end.
    // With no subscriber for it, it is a disabled callsite and costs nothing.
    let span = tracing::info_span!(
        "request",
        request_id = &*id,
        http.method = %method,
        http.path = path.as_str(),
        tenant = tracing::field::Empty,
        cache_type = tracing::field::Empty,
        cache.status = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    follow(&span, req.headers());
    let mut resp = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    span.record("http.status", resp.status().as_u16());
    if let Some(x) = resp.headers().get("x-cache").and_then(|v| v.to_str().ok()) {
        span.record("cache.status", x);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    tracing::info!(
        target: "access",
        request_id = &*id,
        method = %method,
        path,
        status = resp.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    resp
}

/// The layers every request passes first, around `router`: the request id, its span (made a child of the
/// caller's trace by `follow`) and the access log line; then a deadline on each part of the body
/// (`limits.body_read_timeout`: a body that stops arriving is answered 408 and its connection closed).
/// [`serve`] expects every app it is given to carry them.
pub fn request_edge(router: Router, limits: &ServerLimits, follow: FollowParent) -> Router {
    router
        .layer(middleware::from_fn_with_state(
            limits.body_read_timeout,
            body_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            request_deadline,
        ))
        .layer(middleware::from_fn_with_state(follow, access_log))
}

/// Answers a request that is not done within `timeout` (`limits.request_timeout`, end to end) with a JSON 408,
/// inside the access log, so the refusal has a body, a request id and its log line like every other answer.
async fn request_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "the request was not completed within the server's request timeout",
        ),
    }
}

/// Bounds the wait for each part of a request's body by `timeout`: a body that stops arriving fails the read
/// where it stalls, and the client is answered 408 Request Timeout and the connection closed, whatever the
/// handler made of the failed read (a framework rejection would say 400, a proxy 502).
async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let stalled = Arc::new(AtomicBool::new(false));
    let seen = stalled.clone();
    let req = req.map(|body| {
        axum::body::Body::new(TimeoutBody::new(timeout, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let resp = next.run(req).await;
    if !stalled.load(Ordering::Relaxed) {
        return resp;
    }
    let mut out = error(
        StatusCode::REQUEST_TIMEOUT,
        &format!(
            "the request body stopped arriving for {} ms",
            timeout.as_millis()
        ),
    );
    out.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    out
}

/// Bounds a request body by `limit` bytes, with one answer however the body comes: a declared `Content-Length`
/// over it is refused before any of it is read, and a body without one (chunked) is counted as it streams — past
/// the limit its read fails, and the client gets the same 413 and its connection is closed, whatever the handler
/// or an extractor made of the failed read (axum would say "Failed to buffer the request body").
/// A route layer: `middleware::from_fn_with_state(limit, declared_length)`, with `DefaultBodyLimit::max(limit)`
/// for the extractors.
pub async fn declared_length(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let over = Arc::new(AtomicBool::new(false));
    let seen = over.clone();
    let req = req.map(|body| {
        axum::body::Body::new(http_body_util::Limited::new(body, limit).map_err(move |e| {
            if e.is::<http_body_util::LengthLimitError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let resp = next.run(req).await;
    if !over.load(Ordering::Relaxed) {
        return resp;
    }
    // The rest of the body is never read: the connection cannot carry another request.
    let mut out = too_large(limit);
    out.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    out
}

/// The 413 of a body over `limit` bytes.
fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body is larger than this route accepts ({limit} bytes)"),
    )
}

/// Gives every error the server produces without a JSON body of its own (extractor rejections, timeouts) the
/// JSON shape of [`error`], so every error a client sees has a message and a request id.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // JSON errors, and the dashboard's own pages (its sign-in form answers a wrong token with 401), stay.
    let ours = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if !(status.is_client_error() || status.is_server_error()) || ours {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // The framework's own messages are short and about the request; anything long is cut.
    let text = match axum::body::to_bytes(body, 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let mut out = error(status, &text);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The keys this project ships for development and tests (`config/development.toml`, `config/test.toml`): known
/// to anyone who reads the repository.
const DEVELOPMENT_KEY_HASHES: &[&str] = &[
    "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd",
    "62c2fc277ab4261d4243be7b5cf49bdab2c39fed01ae2d4ce1cf9a38ec4e793c",
    "4763e480ccf7dc583baddba37894eb1dc1fabf79bfc9d82a4a8b00710e18f124",
];

/// Where to listen: an IP address and port, or `localhost:PORT` for 127.0.0.1
/// ([`fernando_cache_config::listen_address`]). A non-loopback address with the development keys configured is
/// refused unless `allow_dev_keys`: those keys are public.
///
/// # Errors
/// [`ConfigError::Address`] when `bind` is not such an address;
/// [`ConfigError::DevelopmentKeys`] for the development keys on a non-loopback address.
pub fn bind_address(
    bind: &str,
    server: &fernando_cache_config::ServerSettings,
    allow_dev_keys: bool,
) -> Result<SocketAddr, ConfigError> {
    let addr =
        fernando_cache_config::listen_address(bind).map_err(|source| ConfigError::Address {
            given: bind.to_owned(),
            source,
        })?;
    let dev_keys = server
        .api_keys
        .iter()
        .map(|k| k.key_sha256.as_str())
        .chain(std::iter::once(server.admin_token_sha256.as_str()))
        .filter(|h| DEVELOPMENT_KEY_HASHES.contains(&h.to_ascii_lowercase().as_str()))
        .count();
    if dev_keys > 0 && !addr.ip().is_loopback() && !allow_dev_keys {
        return Err(ConfigError::DevelopmentKeys {
            addr,
            count: dev_keys,
        });
    }
    Ok(addr)
}

/// Serves `app` on `listener` until SIGINT or SIGTERM, bounded by `limits`: at most `max_connections` open
/// (further ones are closed at once), headers (and idle keep-alive) within `header_read_timeout`, each request
/// within `request_timeout` (bodies are bounded by [`request_edge`], which `app` must carry); at the signal the
/// listener closes and requests in flight get `drain_timeout` to finish. Each request carries its connection's
/// [`Peer`] in its extensions. Never fails: a connection that cannot be accepted is logged and the next one
/// awaited.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: &ServerLimits) {
    // The request timeout is [`request_edge`]'s, inside the access log; this one only bounds an app that does
    // not carry it, a little later.
    let service = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits
                .request_timeout
                .saturating_add(Duration::from_secs(1)),
        ))
        .service(app);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let builder = builder.http1_only();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!("connection limit reached; connection closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer's address travels with each of its requests (per-client limits, trusted fronts).
        let service = axum::Extension(Peer(peer.ip())).layer(service.clone());
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing the connections still open");
        }
    }
}

/// Ends at SIGTERM or SIGINT (never, if SIGTERM cannot be listened for).
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

/// The address of the connection a request came on, put in its extensions by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

mod rates;

pub use self::rates::{RateKey, TenantRates, rate_limit, too_many};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_keys_are_refused_on_a_public_address_only() {
        let settings = fernando_cache_config::Settings::load(
            fernando_cache_config::LoadOptions::isolated(fernando_cache_config::Environment::Test),
        )
        .unwrap();
        let server = &settings.server;
        assert!(bind_address("127.0.0.1:0", server, false).is_ok());
        assert!(bind_address("[::1]:0", server, false).is_ok());
        let refused = bind_address("0.0.0.0:8080", server, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("development keys"), "{refused}");
        assert!(bind_address("0.0.0.0:8080", server, true).is_ok());
        assert!(bind_address("localhost", server, false).is_err());
    }

    #[test]
    fn localhost_is_the_ipv4_loopback_address_and_other_names_are_refused() {
        let settings = fernando_cache_config::Settings::load(
            fernando_cache_config::LoadOptions::isolated(fernando_cache_config::Environment::Test),
        )
        .unwrap();
        let server = &settings.server;
        assert_eq!(
            bind_address("localhost:8080", server, false).unwrap(),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            bind_address("LocalHost:0", server, false).unwrap().port(),
            0
        );
        let refused = bind_address("example.com:8080", server, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("\"example.com:8080\""), "{refused}");
        assert!(refused.contains("localhost:8080"), "{refused}");
        assert!(bind_address("localhost:http", server, false).is_err());
    }
}

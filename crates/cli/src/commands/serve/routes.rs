//! The API's handlers. Every JSON body is read strictly: an unknown field is refused (422, naming the field), and
//! so is an unknown event or cache type (400, listing the known ones and suggesting the nearest). An
//! invalidation's answer says what it did: entries hidden, keys deleted now, deletion continuing in the
//! background.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use fernando_cache_config::CacheType;
use fernando_cache_keys::{DocumentFingerprint, Scope, TenantId};
use fernando_cache_ops::{
    events::{self, CacheEvent},
    health,
    summary::{self, Sweep},
};
use fernando_cache_processor::{DocumentKind, EngineError, ProcessError};
use fernando_cache_store::{InvalidationStrategy, StoreError, Target};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, EngineGate, error, internal_error};

/// The client's answer to a failed document: what it can act on. Engine output (stderr, an upstream's body,
/// store errors) goes to the log under the request id, never into the response.
fn process_error(e: &ProcessError) -> Response {
    let (status, message) = match e {
        // Our own messages, about the client's input.
        ProcessError::TooLarge { .. } => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string());
        }
        ProcessError::UnknownKind(_) | ProcessError::Mislabelled { .. } => {
            return unsupported_type(e);
        }
        ProcessError::NoEngine(_) => {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e.to_string());
        }
        // A bound the document is over: the engine's reason is ours and names the setting, never its output.
        ProcessError::Engine(EngineError::OverBudget { .. }) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
        }
        ProcessError::Engine(EngineError::Missing { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "an engine this document needs is not installed on the server",
        ),
        ProcessError::Engine(EngineError::Timeout { .. }) | ProcessError::TimedOut(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "processing the document took longer than allowed",
        ),
        ProcessError::Engine(EngineError::Upstream { .. }) => (
            StatusCode::BAD_GATEWAY,
            "the extraction service failed on this document",
        ),
        ProcessError::Engine(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the document could not be read",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the document could not be processed",
        ),
    };
    internal_error(status, message, e)
}

/// The MIME types a document may be sent as, comma-separated: `text/plain, text/markdown, …`.
fn document_types() -> String {
    DocumentKind::MIME_TYPES
        .iter()
        .map(|(mime, _)| *mime)
        .collect::<Vec<_>>()
        .join(", ")
}

/// 415 for a document of no readable type: what was wrong, the types to send (in the message, and as
/// `Accept-Post` for programs), and that `application/octet-stream` lets the bytes tell.
fn unsupported_type(e: &ProcessError) -> Response {
    let types = document_types();
    let mut r = error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &format!(
            "{e}. Send the document with Content-Type one of: {types} \
             (or application/octet-stream to have its bytes tell)"
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&types) {
        r.headers_mut().insert("accept-post", v);
    }
    r
}

/// `POST /v1/documents`: the raw document as the body; `Content-Type` tells its kind, unless the bytes plainly
/// say otherwise (the answer then names the type used: `detected_type`, `warnings`).
pub(crate) async fn upload(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Before any queue: there is nothing to process, and nothing an engine could say about it.
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the document is empty: send its bytes as the request body",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Engine work waits in a bounded queue, of which one tenant holds at most half; a full one turns the upload
    // away instead of holding it.
    let slot = match state.engine.enter(&tenant).await {
        Ok(slot) => slot,
        Err(why) => return EngineGate::busy(why),
    };
    // The slot goes with the work: the stages this upload starts keep it until they end, even if the client
    // hangs up meanwhile (they run on, for the cache).
    match state
        .processor
        .for_tenant(tenant)
        .process_holding(&body, content_type, slot)
        .await
    {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => process_error(&e),
    }
}

/// Writes the fingerprint of `/v1/documents/{sha256}` in lowercase before the response cache keys the request:
/// one document is one identifier and one cache key, so invalidating the document reaches every copy of it,
/// whatever case a client spelled its fingerprint in.
pub(crate) async fn canonical_fingerprint(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = req.uri();
    if let Some(raw) = uri.path().strip_prefix("/v1/documents/")
        && let fp = canonical_subject(raw)
        && fp != raw
    {
        let target = match uri.query() {
            Some(q) => format!("/v1/documents/{fp}?{q}"),
            None => format!("/v1/documents/{fp}"),
        };
        if let Ok(lower) = target.parse() {
            *req.uri_mut() = lower;
        }
    }
    next.run(req).await
}

/// A subject as the cache keys it: a document fingerprint (64 hexadecimal digits, however spelled — capitals,
/// percent-encodings) in lowercase; anything else as given. Every way a request names a document goes through
/// here — reads, invalidations, events — so one document is one subject.
pub(crate) fn canonical_subject(subject: &str) -> std::borrow::Cow<'_, str> {
    match percent_decoded(subject) {
        Some(fp) if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let lower = fp.to_ascii_lowercase();
            if lower == subject {
                std::borrow::Cow::Borrowed(subject)
            } else {
                std::borrow::Cow::Owned(lower)
            }
        }
        _ => std::borrow::Cow::Borrowed(subject),
    }
}

/// `segment` with its percent-encodings decoded (`%45` is `E`), if they decode to ASCII.
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| s.is_ascii())
}

/// `GET /v1/documents/{sha256}`: the tenant's stored result for a fingerprint.
pub(crate) async fn document(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(sha256): Path<String>,
) -> Response {
    let Ok(fp) = sha256.parse::<DocumentFingerprint>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "not a SHA-256 fingerprint (64 hexadecimal digits)",
        );
    };
    match state.processor.for_tenant(tenant).cached(&fp).await {
        Ok(Some(doc)) => Json(doc).into_response(),
        Ok(None) => {
            // A 404 must not be kept by the response cache: the document may be uploaded a moment later.
            let mut r = error(StatusCode::NOT_FOUND, "no such document for this tenant");
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => process_error(&e),
    }
}

/// A tenant's event; the tenant is the caller's, so a body cannot name one (a `"tenant"` field is refused like
/// any other unknown field, rather than silently ignored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    event_type: String,
    subject: Option<String>,
}

/// `POST /v1/events`: an event for the caller's tenant, applied by the invalidation rules.
pub(crate) async fn event(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Json(body): Json<EventBody>,
) -> Response {
    let Some(url) = &state.database_url else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "events need the statistics database (statistics.enabled), which holds the invalidation rules",
        );
    };
    let mut ev = CacheEvent::new(body.event_type, tenant);
    if let Some(s) = body.subject {
        ev = ev.subject(canonical_subject(&s).into_owned());
    }
    match events::apply(&state.store, url, &ev).await {
        // The server keeps running, so a hybrid rule's background deletion goes on after the answer.
        Ok(applied) => Json(json!({
            "applied": applied.iter().map(|a| json!({
                "rule": a.rule,
                "cache_type": a.cache_type,
                "strategy": a.strategy.as_str(),
                "hidden": a.hidden,
                "deleted": a.deleted,
                "sweeping": a.sweeping(),
                "delayed": a.delayed,
                "summary": a.summary(),
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(events::EventError::Unknown(e)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(events::EventError::Invalid(why)) => error(StatusCode::BAD_REQUEST, &why),
        // The subject is the client's: one the cache cannot key (reserved, too long) is its mistake, said as such.
        Err(events::EventError::Store(StoreError::Key(e))) => error(
            StatusCode::BAD_REQUEST,
            &format!("the event's subject cannot name cache entries: {e}"),
        ),
        Err(e @ events::EventError::Store(_)) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event could not be applied; the cache did not answer",
            &e,
        ),
        Err(e) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event could not be applied; the rules database is unavailable",
            &e,
        ),
    }
}

/// `GET /v1/cache/stats`: the caller's own cache figures, per cache type, its quota use and its plan.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
) -> Response {
    let snapshot = state.store.metrics();
    let types: Vec<_> = snapshot
        .series
        .iter()
        .filter(|s| s.tenant == tenant.as_str())
        .map(|s| {
            let c = &s.counters;
            json!({
                "cache_type": s.cache_type,
                "hits": c.hits,
                "l1_hits": c.l1_hits,
                "misses": c.misses,
                "hit_ratio": c.hit_ratio(),
                "sets": c.sets,
                "corrupt": c.corrupt,
                "unopened": c.unopened,
                "quota_refused": c.quota_refused,
                "requests_refused": c.requests_refused,
                "errors": c.errors,
                "degraded": c.degraded,
                "raw_bytes": c.raw_bytes,
                "stored_bytes": c.stored_bytes,
                "p50_ms": s.get_latency.quantile(0.5).as_secs_f64() * 1e3,
                "p99_ms": s.get_latency.quantile(0.99).as_secs_f64() * 1e3,
                "compute_spent_ms": c.compute_spent_ms,
                "compute_saved_ms": c.compute_saved_ms,
                "tokens_spent": c.tokens_spent,
                "tokens_saved": c.tokens_saved,
                "money_spent_micros": c.money_spent_micros,
                "money_saved_micros": c.money_saved_micros,
            })
        })
        .collect();
    // The quotas as the backend's ledgers say now (null while it cannot answer).
    let quota = state
        .store
        .admin()
        .quota_usage(&tenant)
        .await
        .ok()
        .map(|q| {
            json!({
                "stored_bytes": q.stored_bytes,
                "byte_limit": q.byte_limit,
                "requests": q.requests,
                "request_limit": q.request_limit,
                "request_window_seconds": q.request_window.as_secs(),
            })
        });
    // Live figures: never answered from the response cache.
    let mut r = Json(json!({
        "tenant": tenant.as_str(),
        "currency": &*state.currency,
        "quota": quota,
        "plan": crate::commands::stats::plan_json(state.store.admin().plans(), tenant.as_str()),
        "cache_types": types,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateBody {
    tenant: Option<String>,
    #[serde(default)]
    global: bool,
    cache_type: Option<String>,
    strategy: Option<String>,
    subject: Option<String>,
}

/// `POST /v1/cache/invalidate` (admin): a tenant's entries (`tenant`) or the global reference data
/// (`"global": true`); all cache types or one (`cache_type`); everything, or only what is about one `subject`
/// (a document fingerprint: every stage for every engine, and its HTTP copies — always eager).
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    Json(body): Json<InvalidateBody>,
) -> Response {
    let scope = match (body.tenant.as_deref(), body.global) {
        (Some(t), false) => match TenantId::new(t) {
            Ok(t) => Scope::Tenant(t),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("tenant: {e}")),
        },
        (None, true) => Scope::Global,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "name exactly one of \"tenant\" and \"global\": true",
            );
        }
    };
    let cache_type = match body
        .cache_type
        .as_deref()
        .map(|t| state.types.resolve(t))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cache_type: {e}")),
    };
    let strategy: InvalidationStrategy = match body.strategy.as_deref().unwrap_or("hybrid").parse()
    {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let subject = body.subject.as_deref().map(canonical_subject);
    // A subject's entries are always deleted eagerly; the outcome says which strategy was applied.
    let target = match &subject {
        Some(subject) => Target::subject(&scope, cache_type.as_ref(), subject),
        None => Target::entries(&scope, cache_type.as_ref()),
    };
    match state.store.invalidate(target, strategy).await {
        // The server keeps running, so a hybrid sweep goes on after the answer (its handle is let go).
        Ok(done) => {
            let sweep = if done.sweep.is_some() {
                Sweep::Running
            } else {
                Sweep::None
            };
            let entries = summary::entries(&scope, cache_type.as_ref().map(CacheType::as_str));
            Json(json!({
                "scope": scope.label(),
                "strategy": done.strategy.as_str(),
                "hidden": done.hidden(),
                "deleted": done.deleted,
                "sweeping": sweep == Sweep::Running,
                "summary": summary::invalidation(&entries, done.hidden(), done.deleted, sweep),
            }))
            .into_response()
        }
        // The subject is the caller's: one the cache cannot key is its mistake.
        Err(StoreError::Key(e)) => error(
            StatusCode::BAD_REQUEST,
            &format!("the subject cannot name cache entries: {e}"),
        ),
        Err(e) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cache did not answer; nothing was invalidated",
            &e,
        ),
    }
}

/// `GET /`: what this server answers, for whoever finds its address — the document API, health, metrics and
/// the console, with the credential each needs and the document types to send. The README lists the same
/// routes; nothing here is secret, and nothing else (the console's own data routes) is listed.
pub(crate) async fn index() -> Response {
    const TENANT: &str = "tenant API key (Authorization: Bearer <key>)";
    const ADMIN: &str = "admin token (Authorization: Bearer <token>)";
    // (method, path, credential, what it does)
    const ROUTES: [(&str, &str, &str, &str); 8] = [
        (
            "POST",
            "/v1/documents",
            TENANT,
            "process a document: its bytes as the body, its type as Content-Type (one of document_types)",
        ),
        (
            "GET",
            "/v1/documents/{sha256}",
            TENANT,
            "a processed document's result, by fingerprint",
        ),
        (
            "POST",
            "/v1/events",
            TENANT,
            "an event (event_type, subject) applied by the invalidation rules",
        ),
        (
            "GET",
            "/v1/cache/stats",
            TENANT,
            "the tenant's own cache figures",
        ),
        (
            "POST",
            "/v1/cache/invalidate",
            ADMIN,
            "invalidate a tenant's or the global entries",
        ),
        (
            "GET",
            "/health",
            "none (the details need the admin token)",
            "healthy, degraded or down",
        ),
        (
            "GET",
            "/metrics",
            "none on a loopback address; elsewhere the metrics or admin token",
            "Prometheus text",
        ),
        (
            "GET",
            "/dashboard",
            "the admin token, at its sign-in form",
            "the operators' console",
        ),
    ];
    let routes: Vec<_> = ROUTES
        .iter()
        .map(|(method, path, auth, about)| {
            json!({"method": method, "path": path, "auth": auth, "about": about})
        })
        .collect();
    let types: Vec<&str> = DocumentKind::MIME_TYPES.iter().map(|(m, _)| *m).collect();
    let mut r = Json(json!({
        "service": "fernando-cache",
        "console": "/dashboard",
        "document_types": types,
        "routes": routes,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Any path no route serves: 404 for everyone, before any credential is asked for, so an unknown path never
/// reads as "sign in first".
pub(crate) async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; GET / lists the routes this server answers",
    )
}

/// `GET /health`: the cache backend, the statistics database and the breaker. `healthy` when all are well,
/// `degraded` (still 200: documents process without the cache or without statistics) when one is down,
/// `down` (503) when both are. Without the admin token only that level is said; the details (backends, their
/// messages) need it.
pub(crate) async fn health(
    State(state): State<AppState>,
    peer: Option<axum::Extension<fernando_cache_http::server::Peer>>,
    headers: HeaderMap,
) -> Response {
    // A token on /health is judged like any other credential: a wrong one spends the address's budget, and past
    // the budget none is looked at (the public answer), so /health cannot test guesses for free.
    let client = peer.map(|p| p.0.0);
    let admin = super::auth::presented(&headers) && state.keys.throttle.wait(client).is_none() && {
        let admin = state.keys.is_admin(&headers);
        if !admin {
            state.keys.throttle.failed(client, "admin token");
        }
        admin
    };
    let (cache, _) =
        health::check_backend(&state.store, &health::AlertThresholds::new(0.0, 1.0)).await;
    let database = match &state.database_url {
        None => json!({"status": "disabled"}),
        Some(url) => {
            let url = url.clone();
            let row =
                tokio::task::spawn_blocking(move || match fernando_cache_models::Db::open(&url) {
                    Ok(mut db) => health::check_database(&mut db),
                    Err(e) => health::database_down(&e.to_string()),
                })
                .await
                .unwrap_or_else(|e| health::database_down(&e.to_string()));
            json!({"status": row.status, "message": row.message})
        }
    };
    let cache_down = cache.status == "down";
    let db_down = database["status"] == "down";
    let breaker = state.store.metrics().breaker;
    let overall = if cache_down && db_down {
        "down"
    } else if cache.status != "healthy" || db_down || breaker.as_str() != "closed" {
        "degraded"
    } else {
        "healthy"
    };
    let status = if overall == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = if admin {
        json!({
            "status": overall,
            "cache": {"backend": cache.component, "status": cache.status, "latency_us": cache.latency_us, "message": cache.message},
            "database": database,
            "breaker": breaker.as_str(),
        })
    } else {
        json!({ "status": overall })
    };
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

//! [`HttpCache`]: the service that answers from the cache, stores what RFC 9111 allows, and invalidates
//! a path after a successful unsafe request.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Instant, SystemTime},
};

use bytes::Bytes;
use fernando_cache_keys::Scope;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower_service::Service;

use crate::{
    CacheBody,
    freshness::{self, Judgement},
    key::{epoch_key, header_values, normalise_query, primary_key, variant_key},
    layer::{CompiledRoute, Config},
    policy::{self, RequestUse},
};

/// The `X-Cache` response header.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The future of [`HttpCache`].
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send + 'static>>;

/// The service built by [`crate::HttpCacheLayer`] around an inner service.
pub struct HttpCache<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: Clone> Clone for HttpCache<S> {
    fn clone(&self) -> Self {
        HttpCache {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for HttpCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> HttpCache<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        HttpCache { inner, config }
    }
}

/// What the primary key of a request holds.
#[derive(Serialize, Deserialize)]
enum Stored {
    /// The response itself (it does not vary).
    Response(CachedResponse),
    /// The response varies by these request headers; each variant lives under its own key.
    Vary(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct CachedResponse {
    status: u16,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
    body: serde_bytes::ByteBuf,
    /// Explicitly public (`public`, `s-maxage`, `must-revalidate`): may answer requests with `Authorization`.
    for_authorized: bool,
    /// What judging its freshness again at each lookup needs.
    judgement: Judgement,
}

impl CachedResponse {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
    }

    fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(n, v);
            }
        }
        headers
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpCache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The ready service handles this request; its clone takes its place for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(handle(inner, config, req))
    }
}

async fn handle<S, ReqB, ResB>(
    mut inner: S,
    config: Arc<Config>,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let Some(route) = config.route(&path) else {
        let resp = inner.call(Request::from_parts(parts, body)).await?;
        return Ok(resp.map(CacheBody::inner));
    };
    let Some(scope) = config.tenant.scope(&parts) else {
        return miss(inner.call(Request::from_parts(parts, body)).await?);
    };

    if !parts.method.is_safe() {
        let method = parts.method.clone();
        let resp = inner.call(Request::from_parts(parts, body)).await?;
        if policy::invalidates(&method, resp.status()) {
            invalidate_path(&config, &scope, route, &path).await;
            for h in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(target) = resp.headers().get(h).and_then(|v| v.to_str().ok())
                    && target.starts_with('/')
                {
                    let target = target.split(['?', '#']).next().unwrap_or(target);
                    if let Some(r) = config.route(target) {
                        invalidate_path(&config, &scope, r, target).await;
                    }
                }
            }
        }
        return miss(resp);
    }

    let usage = policy::request_use(&parts.method, &parts.headers);
    if usage == RequestUse::Bypass {
        return miss(inner.call(Request::from_parts(parts, body)).await?);
    }
    // Headers that are not part of the key must not reach a service whose response may be shared.
    for h in &config.stripped_headers {
        parts.headers.remove(h);
    }
    let had_authorization = parts.headers.contains_key(header::AUTHORIZATION);
    let query = normalise_query(parts.uri.query(), &config.ignored_query);
    let epoch = current_epoch(&config, &scope, route, &path).await;
    let keyed = header_values(&parts.headers, &config.keyed_headers);
    let primary = primary_key(
        route.pattern.subject_of(&path),
        &path,
        &query,
        epoch,
        &keyed,
    );

    if matches!(usage, RequestUse::LookupAndStore | RequestUse::CacheOnly)
        && let Some(hit) = lookup(&config, &scope, route, &primary, &parts.headers).await
        && (hit.for_authorized || !had_authorization)
    {
        let headers = hit.header_map();
        let now = SystemTime::now();
        if let Some(age) =
            freshness::fresh_age(hit.status(), &headers, &hit.judgement, &parts.headers, now)
        {
            if hit.status() == StatusCode::OK && policy::not_modified(&parts.headers, &headers) {
                return Ok(respond_not_modified(&headers, age));
            }
            return Ok(respond_from_cache(hit.status(), headers, hit.body, age));
        }
    }
    if usage == RequestUse::CacheOnly {
        // RFC 9111 §5.2.1.7: nothing suitable stored, and the origin must not be asked.
        let mut resp = Response::new(CacheBody::full(Bytes::new()));
        *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        resp.headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        return Ok(resp);
    }

    // What the freshness rules judge the response against: the request as it reaches the service.
    let request = {
        let mut r = Request::new(());
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = parts.uri.clone();
        *r.headers_mut() = parts.headers.clone();
        r.into_parts().0
    };
    let resp = inner.call(Request::from_parts(parts, body)).await?;
    let storable = match freshness::storable(
        &request,
        resp.status(),
        resp.headers(),
        route.ttl,
        route.heuristic,
        SystemTime::now(),
    ) {
        Ok(s) => s,
        Err(why) => {
            tracing::debug!(path, reason = ?why, "response not stored");
            return miss(resp);
        }
    };
    let fits = resp
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= config.max_body_bytes);
    if !fits {
        tracing::debug!(path, "response body unsized or too large; not stored");
        return miss(resp);
    }
    let (resp_parts, resp_body) = resp.into_parts();
    let bytes = match resp_body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let mut resp = Response::from_parts(resp_parts, CacheBody::failed(e));
            resp.headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("MISS"));
            return Ok(resp);
        }
    };
    store_response(
        &config,
        &scope,
        route,
        &primary,
        &request.headers,
        &resp_parts,
        &bytes,
        storable,
    )
    .await;
    let mut resp = Response::from_parts(resp_parts, CacheBody::full(bytes));
    resp.headers_mut()
        .insert(X_CACHE, HeaderValue::from_static("MISS"));
    Ok(resp)
}

fn miss<B: Body, E>(resp: Response<B>) -> Result<Response<CacheBody<B>>, E> {
    let mut resp = resp.map(CacheBody::inner);
    resp.headers_mut()
        .insert(X_CACHE, HeaderValue::from_static("MISS"));
    Ok(resp)
}

/// The path's epoch: read, or created when absent (or unreadable), so entries are only ever written under an
/// epoch that an invalidation replaces.
async fn current_epoch(config: &Config, scope: &Scope, route: &CompiledRoute, path: &str) -> u64 {
    let key = epoch_key(route.pattern.subject_of(path), path);
    match config
        .store
        .get::<u64>(scope.clone(), &route.cache_type, &key)
        .await
    {
        Ok(Some(e)) => e,
        _ => new_epoch(config, scope, route, &key).await,
    }
}

async fn new_epoch(config: &Config, scope: &Scope, route: &CompiledRoute, key: &str) -> u64 {
    let epoch = rand::random::<u64>() | 1;
    let _ = config
        .store
        .set_with_ttl(
            scope.clone(),
            &route.cache_type,
            key,
            &epoch,
            Some(config.epoch_ttl),
        )
        .await;
    epoch
}

async fn invalidate_path(config: &Config, scope: &Scope, route: &CompiledRoute, path: &str) {
    let key = epoch_key(route.pattern.subject_of(path), path);
    new_epoch(config, scope, route, &key).await;
    tracing::debug!(path, "cached responses of the path invalidated");
}

async fn lookup(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    primary: &str,
    request_headers: &HeaderMap,
) -> Option<CachedResponse> {
    let stored = config
        .store
        .get::<Stored>(scope.clone(), &route.cache_type, primary)
        .await
        .ok()??;
    match stored {
        Stored::Response(r) => Some(r),
        Stored::Vary(names) => {
            let variant = variant_key(primary, &header_values(request_headers, &names));
            config
                .store
                .get::<CachedResponse>(scope.clone(), &route.cache_type, &variant)
                .await
                .ok()?
        }
    }
}

/// A hit: the stored response with its accumulated `Age` (upstream and here, RFC 9111 §4.2.3).
fn respond_from_cache<B: Body>(
    status: StatusCode,
    headers: HeaderMap,
    body: serde_bytes::ByteBuf,
    age: u64,
) -> Response<CacheBody<B>> {
    let mut resp = Response::new(CacheBody::full(Bytes::from(body.into_vec())));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    let headers = resp.headers_mut();
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
    resp
}

/// A client's conditional request answered from a fresh entry (RFC 9110 §15.4.5): 304, no body, and the fields
/// a 200 would have carried that describe the representation's caching.
fn respond_not_modified<B: Body>(stored: &HeaderMap, age: u64) -> Response<CacheBody<B>> {
    let mut resp = Response::new(CacheBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = resp.headers_mut();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::VARY,
    ] {
        for v in stored.get_all(&name) {
            headers.append(name.clone(), v.clone());
        }
    }
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
    resp
}

/// The `Vary` field names of a response, lowercased (a `*` was refused before).
fn vary_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Admits a new variant for (tenant, route) if the per-process bound allows it.
fn admit_variant(config: &Config, scope: &Scope, route: &CompiledRoute, key: &str) -> bool {
    let set = config
        .variants
        .get_with((scope.label().to_owned(), route.index), Default::default);
    let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let ttl = route.ttl;
    set.keys.retain(|_, at| now.duration_since(*at) < ttl);
    if set.keys.contains_key(key) {
        set.keys.insert(key.to_owned(), now);
        return true;
    }
    if set.keys.len() >= config.max_variants {
        return false;
    }
    set.keys.insert(key.to_owned(), now);
    true
}

#[allow(clippy::too_many_arguments)]
async fn store_response(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    primary: &str,
    request_headers: &HeaderMap,
    resp: &http::response::Parts,
    body: &Bytes,
    storable: freshness::Storable,
) {
    let ttl = storable.ttl;
    let names = vary_names(&resp.headers);
    let entry_key = if names.is_empty() {
        primary.to_owned()
    } else {
        variant_key(primary, &header_values(request_headers, &names))
    };
    if !admit_variant(config, scope, route, &entry_key) {
        tracing::debug!(
            tenant = scope.label(),
            "variant limit of the route reached; response not stored"
        );
        return;
    }
    // The same bound across replicas. Without an answer (backend down, or in process) the per-process bound
    // above is the bound.
    let limit = u64::try_from(config.max_variants).unwrap_or(u64::MAX);
    let shared = config
        .store
        .admit(
            scope.clone(),
            &route.cache_type,
            &route.budget_key,
            entry_key.as_bytes(),
            limit,
            route.ttl,
        )
        .await;
    if matches!(shared, Ok(false)) {
        tracing::debug!(
            tenant = scope.label(),
            "variant limit of the route reached across replicas; response not stored"
        );
        return;
    }
    let cached = CachedResponse {
        status: resp.status.as_u16(),
        headers: resp
            .headers
            .iter()
            .filter(|(n, _)| policy::stored_header(n))
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    serde_bytes::ByteBuf::from(v.as_bytes()),
                )
            })
            .collect(),
        body: serde_bytes::ByteBuf::from(body.to_vec()),
        for_authorized: storable.for_authorized,
        judgement: storable.judgement,
    };
    let store = &config.store;
    let t = &route.cache_type;
    if names.is_empty() {
        let _ = store
            .set_with_ttl(
                scope.clone(),
                t,
                primary,
                &Stored::Response(cached),
                Some(ttl),
            )
            .await;
    } else {
        let _ = store
            .set_with_ttl(scope.clone(), t, primary, &Stored::Vary(names), Some(ttl))
            .await;
        let _ = store
            .set_with_ttl(scope.clone(), t, &entry_key, &cached, Some(ttl))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_names_are_lowercased_split_and_deduplicated() {
        let mut h = HeaderMap::new();
        h.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, accept"),
        );
        h.append(header::VARY, HeaderValue::from_static("ACCEPT"));
        assert_eq!(vary_names(&h), ["accept", "accept-language"]);
    }
}

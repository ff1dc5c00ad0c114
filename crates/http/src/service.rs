//! [`HttpCache`]: the service that answers from the cache, stores what RFC 9111 allows, and invalidates
//! a path after a successful unsafe request.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use crate::{
    CacheBody,
    body::{Buffered, buffer_bounded},
    entries::{self, CachedResponse, Target},
    forward::{canonical_target, withheld_but_varied, withhold_unkeyed},
    freshness::{self, Verdict},
    key::{header_values, normalise_query, primary_key},
    layer::Config,
    policy::{self, RequestUse},
    revalidate::{self, Claim, RefreshGuard},
};

/// The `X-Cache` response header: `HIT` (answered from a fresh entry), `MISS` (by the service),
/// `REVALIDATED` (from an entry the service confirmed with a 304) or `STALE` (from a stale entry, as RFC 5861's
/// `stale-while-revalidate` or `stale-if-error` allow).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

pub(crate) const HIT: HeaderValue = HeaderValue::from_static("HIT");
pub(crate) const MISS: HeaderValue = HeaderValue::from_static("MISS");
const REVALIDATED: HeaderValue = HeaderValue::from_static("REVALIDATED");
const STALE: HeaderValue = HeaderValue::from_static("STALE");

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

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpCache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Default + Send + 'static,
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
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Default + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send,
{
    let (mut parts, body) = req.into_parts();
    // One form for what RFC 3986 says is one resource: what is keyed is exactly what the service is sent.
    canonical_target(&mut parts.uri);
    let path = parts.uri.path().to_owned();
    let Some(route) = config.route(&path) else {
        let resp = inner.call(Request::from_parts(parts, body)).await?;
        return Ok(resp.map(CacheBody::inner));
    };
    // The enclosing request span (if it has the field) names the cache type this route is cached under.
    tracing::Span::current().record("cache_type", route.cache_type.as_str());
    let Some(scope) = config.tenant.scope(&parts) else {
        return miss(inner.call(Request::from_parts(parts, body)).await?);
    };

    if !parts.method.is_safe() {
        let method = parts.method.clone();
        let resp = inner.call(Request::from_parts(parts, body)).await?;
        if policy::invalidates(&method, resp.status()) {
            entries::invalidate_path(&config, &scope, route, &path).await;
            for h in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(target) = resp.headers().get(h).and_then(|v| v.to_str().ok())
                    && target.starts_with('/')
                {
                    let target = target.split(['?', '#']).next().unwrap_or(target);
                    if let Some(r) = config.route(target) {
                        entries::invalidate_path(&config, &scope, r, target).await;
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
    let had_authorization = parts.headers.contains_key(header::AUTHORIZATION);
    let query = normalise_query(parts.uri.query(), &config.ignored_query);
    // A path without an epoch holds nothing: no lookup, and it is opened (taking a slot of the route's path
    // budget) only when a response is stored.
    let epoch = entries::existing_epoch(&config, &scope, route, &path).await;
    let keyed = header_values(&parts.headers, &config.keyed_headers);
    let primary = primary_key(
        route.pattern.subject_of(&path),
        &config.keyed_path(&path),
        &query,
        epoch.unwrap_or(0),
        &keyed,
    );
    let target = Target {
        scope,
        route: route.index,
        path,
        primary,
        unopened: epoch
            .is_none()
            .then_some(entries::KeyParts { query, keyed }),
    };

    let (varied, found) = match epoch {
        Some(_) => entries::lookup_varied(&config, &target, &parts.headers).await,
        None => (None, None),
    };
    if parts.method == Method::HEAD {
        return crate::head::answer_head(inner, parts, body, found.map(|(_, r)| r), usage).await;
    }
    let client = parts.headers.clone();
    // Headers that are not part of the key must not reach a service whose response may be shared. While nothing
    // of the URL is stored its `Vary` is not known: the request goes as sent, and an answer that depends on
    // a header outside the key without naming it in `Vary` is not shared (`entries::store_response`).
    if let Some(varied) = &varied {
        withhold_unkeyed(&mut parts.headers, &config, varied);
    }
    let mut stale = None;
    if let Some((key, hit)) = found
        && (hit.for_authorized || !had_authorization)
    {
        let headers = hit.header_map();
        let now = SystemTime::now();
        let verdict =
            match freshness::judge(hit.status(), &headers, &hit.judgement, &parts.headers, now) {
                // `no-cache` or `max-age=0` asks the origin even about a fresh entry (which it may revalidate).
                Verdict::Fresh(age) if usage == RequestUse::StoreOnly => Verdict::Stale {
                    age,
                    overdue: Duration::ZERO,
                },
                v => v,
            };
        match verdict {
            Verdict::Fresh(age) => {
                let status = hit.status();
                let body = Bytes::from(hit.body.into_vec());
                return Ok(answer(&parts.headers, status, headers, body, age, HIT));
            }
            Verdict::Stale { age, overdue } => {
                let entry = StaleEntry {
                    key,
                    response: hit,
                    headers,
                    age,
                    overdue,
                };
                if usage == RequestUse::LookupAndStore
                    && entry.response.judgement.serves_while_revalidating(
                        age,
                        overdue,
                        &parts.headers,
                    )
                {
                    match RefreshGuard::claim(&config, &target, &entry.key) {
                        // RFC 5861 §3: answer with the stale response now, revalidate behind it.
                        Claim::Claimed(guard) => {
                            let answered = answer(
                                &parts.headers,
                                entry.response.status(),
                                entry.headers.clone(),
                                Bytes::copy_from_slice(&entry.response.body),
                                age,
                                STALE,
                            );
                            tokio::spawn(async move {
                                let _guard = guard;
                                refresh_behind_once(inner, &config, &target, parts, body, entry)
                                    .await;
                            });
                            return Ok(answered);
                        }
                        // One revalidation is already running behind a stale answer: the same answer, no second.
                        Claim::Running => return Ok(entry.answer(&parts.headers, STALE)),
                        // No runtime to revalidate behind: revalidate now.
                        Claim::NoRuntime => {}
                    }
                }
                stale = Some(entry);
            }
        }
    }
    if usage == RequestUse::CacheOnly {
        return Ok(only_if_cached_miss());
    }

    let mut request = request_view(&parts);
    let revalidating = stale
        .as_ref()
        .is_some_and(|s| revalidate::has_validators(&s.headers));
    if let Some(s) = stale.as_ref().filter(|_| revalidating) {
        revalidate::make_conditional(&mut parts.headers, &s.headers);
    }
    let resp = match inner.call(Request::from_parts(parts, body)).await {
        Ok(resp) => resp,
        Err(e) => {
            return match stale {
                // RFC 5861 §4: the origin could not be reached; a stale response may stand in.
                Some(s) if s.serves_on_error(&client) => Ok(s.answer(&client, STALE)),
                _ => Err(e),
            };
        }
    };
    if let Some(s) = stale {
        if revalidating && resp.status() == StatusCode::NOT_MODIFIED {
            if let Some((status, headers, body, age)) =
                refresh(&config, &target, &request, s, resp.headers()).await
            {
                return Ok(answer(&client, status, headers, body, age, REVALIDATED));
            }
            tracing::debug!("a 304 that matches no stored response; passed on");
            return miss(resp);
        }
        if resp.status().is_server_error() && s.serves_on_error(&client) {
            return Ok(s.answer(&client, STALE));
        }
    }
    // The origin says its answer depends on a header the client sent and this layer withheld: that answer is
    // not the client's. Ask again with those headers — named by `Vary`, they are part of the key now.
    let withheld = withheld_but_varied(&client, &request.headers, resp.headers());
    let resp = if withheld.is_empty() {
        resp
    } else {
        for name in withheld {
            for v in client.get_all(&name) {
                request.headers.append(name.clone(), v.clone());
            }
        }
        let mut again = Request::new(ReqB::default());
        *again.method_mut() = request.method.clone();
        *again.uri_mut() = request.uri.clone();
        *again.headers_mut() = request.headers.clone();
        inner.call(again).await?
    };
    let resp = keep(&config, &target, &request, resp).await;
    if resp.status() == StatusCode::OK && policy::not_modified(&client, resp.headers()) {
        return Ok(respond_not_modified(resp.headers(), None));
    }
    Ok(resp)
}

/// A stored response past its freshness, and how far past.
struct StaleEntry {
    /// The key it lives under (its primary key, or its variant's).
    key: String,
    response: CachedResponse,
    headers: HeaderMap,
    age: u64,
    overdue: Duration,
}

impl StaleEntry {
    fn serves_on_error(&self, client: &HeaderMap) -> bool {
        self.response
            .judgement
            .serves_on_error(self.overdue, client)
    }

    fn parts(self) -> (StatusCode, HeaderMap, Bytes, u64) {
        let status = self.response.status();
        (
            status,
            self.headers,
            Bytes::from(self.response.body.into_vec()),
            self.age,
        )
    }

    fn answer<B: Body>(self, client: &HeaderMap, x_cache: HeaderValue) -> Response<CacheBody<B>> {
        let (status, headers, body, age) = self.parts();
        answer(client, status, headers, body, age, x_cache)
    }
}

/// How long a process's claim on an entry's revalidation lasts if it dies while holding it (renewed while it
/// lives).
const REFRESH_CLAIM: Duration = Duration::from_secs(10);

/// [`refresh_behind`], once for every process on the store's backend: the entry's refresh claim is taken first
/// (another process holding it is revalidating already), and the entry is looked at again under it — a process
/// that revalidated it a moment ago has left it fresh, and then there is nothing to do.
async fn refresh_behind_once<S, ReqB, ResB>(
    inner: S,
    config: &Config,
    target: &Target,
    parts: http::request::Parts,
    body: ReqB,
    stale: StaleEntry,
) where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    let cache_type = &target.route(config).cache_type;
    let claim = match config
        .store
        .coordinator()
        .claim_refresh(target.scope.clone(), cache_type, &stale.key, REFRESH_CLAIM)
        .await
    {
        Ok(Some(claim)) => claim,
        // Another process revalidates it; a key the store cannot build was not stored either.
        Ok(None) | Err(_) => return,
    };
    let fresh_now = match entries::lookup(config, target, &parts.headers).await {
        Some((_, hit)) => matches!(
            freshness::judge(
                hit.status(),
                &hit.header_map(),
                &hit.judgement,
                &parts.headers,
                SystemTime::now()
            ),
            Verdict::Fresh(_)
        ),
        None => false,
    };
    if !fresh_now {
        refresh_behind(inner, config, target, parts, body, stale).await;
    }
    claim.release().await;
}

/// Asks the service about a stale entry behind the stale answer already sent, and stores what it says.
async fn refresh_behind<S, ReqB, ResB>(
    mut inner: S,
    config: &Config,
    target: &Target,
    mut parts: http::request::Parts,
    body: ReqB,
    stale: StaleEntry,
) where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    let request = request_view(&parts);
    let revalidating = revalidate::has_validators(&stale.headers);
    if revalidating {
        revalidate::make_conditional(&mut parts.headers, &stale.headers);
    }
    let Ok(resp) = inner.call(Request::from_parts(parts, body)).await else {
        tracing::debug!("revalidation behind a stale answer failed");
        return;
    };
    if revalidating && resp.status() == StatusCode::NOT_MODIFIED {
        refresh(config, target, &request, stale, resp.headers()).await;
    } else {
        keep(config, target, &request, resp).await;
    }
}

/// Refreshes a stale entry with the headers of the 304 that confirmed it (RFC 9111 §4.3.4), stores it again,
/// and returns what answers the request; `None` when the 304 selects a different response.
async fn refresh(
    config: &Config,
    target: &Target,
    request: &http::request::Parts,
    stale: StaleEntry,
    not_modified: &HeaderMap,
) -> Option<(StatusCode, HeaderMap, Bytes, u64)> {
    let merged = revalidate::refreshed(&stale.headers, not_modified)?;
    let route = target.route(config);
    let now = SystemTime::now();
    let status = stale.response.status();
    let key = stale.key.clone();
    let (_, _, body, _) = stale.parts();
    let age = match freshness::storable(request, status, &merged, route.ttl, route.heuristic, now) {
        Ok(storable) => {
            let age = match freshness::judge(
                status,
                &merged,
                &storable.judgement,
                &HeaderMap::new(),
                now,
            ) {
                Verdict::Fresh(age) | Verdict::Stale { age, .. } => age,
            };
            let cached = CachedResponse::new(
                status,
                &merged,
                serde_bytes::ByteBuf::from(body.to_vec()),
                &storable,
            );
            entries::replace(config, target, &key, cached, storable.ttl).await;
            age
        }
        Err(why) => {
            tracing::debug!(reason = ?why, "revalidated response no longer stored");
            0
        }
    };
    Some((status, merged, body, age))
}

/// Stores the service's response when RFC 9111 allows it (buffering a body of known size under the limit),
/// and returns it as a miss.
async fn keep<ResB>(
    config: &Config,
    target: &Target,
    request: &http::request::Parts,
    resp: Response<ResB>,
) -> Response<CacheBody<ResB>>
where
    ResB: Body<Data = Bytes>,
{
    let route = target.route(config);
    let storable = match freshness::storable(
        request,
        resp.status(),
        resp.headers(),
        route.ttl,
        route.heuristic,
        SystemTime::now(),
    ) {
        Ok(s) => s,
        Err(why) => {
            tracing::debug!(path = target.path, reason = ?why, "response not stored");
            return with_x_cache(resp.map(CacheBody::inner), MISS);
        }
    };
    if resp.body().size_hint().lower() > config.max_body_bytes {
        tracing::debug!(path = target.path, "response body too large; not stored");
        return with_x_cache(resp.map(CacheBody::inner), MISS);
    }
    let (resp_parts, resp_body) = resp.into_parts();
    // A body of unknown length (chunked) is read up to the bound: one that ends within it is stored like any
    // other; one that does not is passed on as read so far, then streamed, and not stored.
    let bytes = match buffer_bounded(resp_body, config.max_body_bytes).await {
        Buffered::Whole(bytes) => bytes,
        Buffered::Partial(body) => {
            tracing::debug!(
                path = target.path,
                "response body too large or with trailers; not stored"
            );
            return with_x_cache(Response::from_parts(resp_parts, body), MISS);
        }
    };
    let Some(target) = entries::open(config, target).await else {
        // The route's path budget is spent: served, not stored.
        return with_x_cache(
            Response::from_parts(resp_parts, CacheBody::full(bytes)),
            MISS,
        );
    };
    let target = &*target;
    entries::store_response(
        config,
        target,
        &request.headers,
        &resp_parts,
        &bytes,
        &storable,
    )
    .await;
    with_x_cache(
        Response::from_parts(resp_parts, CacheBody::full(bytes)),
        MISS,
    )
}

/// The request as the freshness rules judge a response to it: method, URI and headers, without the body.
fn request_view(parts: &http::request::Parts) -> http::request::Parts {
    let mut r = Request::new(());
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = parts.uri.clone();
    *r.headers_mut() = parts.headers.clone();
    r.into_parts().0
}

pub(crate) fn with_x_cache<B>(mut resp: Response<B>, x_cache: HeaderValue) -> Response<B> {
    resp.headers_mut().insert(X_CACHE, x_cache);
    resp
}

fn miss<B: Body, E>(resp: Response<B>) -> Result<Response<CacheBody<B>>, E> {
    Ok(with_x_cache(resp.map(CacheBody::inner), MISS))
}

/// RFC 9111 §5.2.1.7: nothing suitable is stored, and `only-if-cached` forbids asking the origin.
pub(crate) fn only_if_cached_miss<B: Body>() -> Response<CacheBody<B>> {
    let mut resp = Response::new(CacheBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    with_x_cache(resp, MISS)
}

/// A response from the cache, with its accumulated `Age` (upstream and here, RFC 9111 §4.2.3) — or a 304 when
/// the client's conditional request matches it.
pub(crate) fn answer<B: Body>(
    client: &HeaderMap,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    age: u64,
    x_cache: HeaderValue,
) -> Response<CacheBody<B>> {
    if status == StatusCode::OK && policy::not_modified(client, &headers) {
        return with_x_cache(respond_not_modified(&headers, Some(age)), x_cache);
    }
    let mut resp = Response::new(CacheBody::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp.headers_mut()
        .insert(header::AGE, HeaderValue::from(age));
    with_x_cache(resp, x_cache)
}

/// A client's conditional request answered (RFC 9110 §15.4.5): 304, no body, and the fields a 200 would have
/// carried that describe the representation's caching.
fn respond_not_modified<B: Body>(stored: &HeaderMap, age: Option<u64>) -> Response<CacheBody<B>> {
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
        X_CACHE,
    ] {
        for v in stored.get_all(&name) {
            headers.append(name.clone(), v.clone());
        }
    }
    if let Some(age) = age {
        headers.insert(header::AGE, HeaderValue::from(age));
    }
    resp
}

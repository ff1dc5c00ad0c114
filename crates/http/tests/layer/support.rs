//! A real axum app behind the cache layer, served over TCP, whose handler counts its calls per path.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use fernando_cache_http::{HttpCacheLayer, HttpCacheLayerBuilder, Route, tenant_from_header};
use fernando_cache_store::{
    Store,
    config::{CacheType, Environment, LoadOptions, Settings},
};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

/// Handler calls per request path.
#[derive(Clone, Default)]
pub(crate) struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    pub(crate) fn of(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn hit(&self, path: &str) -> usize {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(path.to_owned()).or_default();
        *n += 1;
        *n
    }
}

/// Responds as the scenario (first path segment after `/c/`) says. Unsafe methods answer with the status in
/// `x-status` (default 200) and an optional `location`.
async fn scenario(
    State(calls): State<Calls>,
    method: Method,
    uri: Uri,
    Path((name, _id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let n = calls.hit(&path);
    if !method.is_safe() {
        let status = headers
            .get("x-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(200);
        let mut r = (StatusCode::from_u16(status).unwrap(), "changed").into_response();
        if let Some(loc) = headers.get("x-location") {
            r.headers_mut().insert(header::LOCATION, loc.clone());
        }
        return r;
    }
    let body = format!("{path} call {n}");
    let mut r = body.clone().into_response();
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    match name.as_str() {
        "plain" | "excluded" => {}
        "no-store" => set(h, header::CACHE_CONTROL, "no-store"),
        "private" => set(h, header::CACHE_CONTROL, "private, max-age=60"),
        "no-cache" => set(h, header::CACHE_CONTROL, "no-cache"),
        "public" => set(h, header::CACHE_CONTROL, "public, max-age=60"),
        "s-maxage" => set(h, header::CACHE_CONTROL, "s-maxage=60"),
        "cookie" => set(h, header::SET_COOKIE, "sid=secret"),
        "public-cookie" => {
            set(h, header::SET_COOKIE, "sid=secret");
            set(h, header::CACHE_CONTROL, "public");
        }
        "vary-star" => set(h, header::VARY, "*"),
        "vary-lang" => {
            set(h, header::VARY, "Accept-Language");
            let lang = headers
                .get(header::ACCEPT_LANGUAGE)
                .map_or("absent".to_owned(), |v| format!("{v:?}"));
            return (
                [(header::VARY, "Accept-Language")],
                format!("{body} lang {lang}"),
            )
                .into_response();
        }
        "partial" => {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_static("bytes 0-9/100"),
            );
        }
        "error" => *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
        "not-found" => *r.status_mut() = StatusCode::NOT_FOUND,
        "short" => set(h, header::CACHE_CONTROL, "max-age=1"),
        // RFC 9111 freshness as an arbitrary origin sets it (issue 15's defect).
        "long" => set(h, header::CACHE_CONTROL, "max-age=3600"),
        "validated" => {
            set(h, header::CACHE_CONTROL, "max-age=3600");
            set(h, header::ETAG, "\"v1\"");
            set(h, header::LAST_MODIFIED, "Sun, 01 Nov 2026 10:00:00 GMT");
        }
        "expires-past" => set(h, header::EXPIRES, "Thu, 01 Jan 1970 00:00:00 GMT"),
        "expires-invalid" => set(h, header::EXPIRES, "0"),
        "expires-future" => {
            let at = SystemTime::now() + Duration::from_secs(600);
            h.insert(header::EXPIRES, http_date(at));
            h.insert(header::DATE, http_date(SystemTime::now()));
        }
        "dated-old" => {
            // Fresh for a minute from its Date, which was an hour ago: stale on arrival.
            let date = SystemTime::now() - Duration::from_secs(3600);
            h.insert(header::DATE, http_date(date));
            h.insert(header::EXPIRES, http_date(date + Duration::from_secs(60)));
        }
        "aged-stale" => {
            set(h, header::CACHE_CONTROL, "max-age=3600");
            set(h, header::AGE, "7200");
        }
        "aged-fresh" => {
            set(h, header::CACHE_CONTROL, "max-age=3600");
            set(h, header::AGE, "100");
        }
        "s-maxage-zero" => set(h, header::CACHE_CONTROL, "max-age=600, s-maxage=0"),
        "cdn-no-store" => {
            set(h, header::CACHE_CONTROL, "max-age=600");
            h.insert("cdn-cache-control", HeaderValue::from_static("no-store"));
        }
        "cdn-max-age" => {
            set(h, header::CACHE_CONTROL, "no-store");
            h.insert("cdn-cache-control", HeaderValue::from_static("max-age=600"));
        }
        "zero" => set(h, header::CACHE_CONTROL, "max-age=0"),
        "echo-host" => {
            let host = headers
                .get("x-forwarded-host")
                .map_or("none".to_owned(), |v| v.to_str().unwrap_or("?").to_owned());
            return format!("{body} link https://{host}/next").into_response();
        }
        // Revalidation (issue 15, item 1): validators on responses that must be revalidated at every use.
        "etag" | "etag-changing" | "last-modified" => {
            let etag = if name == "etag-changing" {
                format!("\"v{n}\"")
            } else {
                "\"v1\"".to_owned()
            };
            let asked = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
            let unchanged = match name.as_str() {
                "last-modified" => asked(header::IF_MODIFIED_SINCE) == Some(LAST_MODIFIED),
                _ => asked(header::IF_NONE_MATCH) == Some(etag.as_str()),
            };
            let mut r = if unchanged {
                calls.hit(&format!("{path} 304"));
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                r
            };
            let h = r.headers_mut();
            set(h, header::CACHE_CONTROL, "no-cache");
            h.insert("x-served", HeaderValue::from(n));
            if name == "last-modified" {
                set(h, header::LAST_MODIFIED, LAST_MODIFIED);
            } else {
                h.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            }
            return r;
        }
        "swr" => set(
            h,
            header::CACHE_CONTROL,
            "max-age=0, stale-while-revalidate=600",
        ),
        "sie" | "sie-must-revalidate" => {
            if n > 1 {
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            let cc = if name == "sie" {
                "max-age=0, stale-if-error=600"
            } else {
                "max-age=0, must-revalidate, stale-if-error=600"
            };
            set(r.headers_mut(), header::CACHE_CONTROL, cc);
        }
        "stream" => return Response::new(axum::body::Body::new(Unsized(vec![body.into()]))),
        // Past the layer's default bound (1 MiB), in frames, size unannounced.
        "stream-large" => {
            let frames = (0..5)
                .map(|i| bytes::Bytes::from(vec![b'a' + i; 256 * 1024]))
                .collect();
            return Response::new(axum::body::Body::new(Unsized(frames)));
        }
        "error-fresh" => {
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            set(r.headers_mut(), header::CACHE_CONTROL, "max-age=60");
        }
        other => panic!("unknown scenario {other}"),
    }
    r
}

const LAST_MODIFIED: &str = "Sun, 01 Nov 2026 10:00:00 GMT";

/// An HTTP date (IMF-fixdate).
fn http_date(at: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap()
}

/// A body that does not announce its size, like a stream: these frames, in order.
struct Unsized(Vec<bytes::Bytes>);

impl http_body::Body for Unsized {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = (!self.0.is_empty()).then(|| self.0.remove(0));
        std::task::Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A running app: its address, call counts, the Redis behind it, and an HTTP client.
pub(crate) struct App {
    pub(crate) addr: SocketAddr,
    pub(crate) calls: Calls,
    pub(crate) redis: RedisServer,
    pub(crate) client: reqwest::Client,
}

fn settings(server: &RedisServer) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied()),
    )
    .expect("settings")
}

/// The default layer: `/c/**` cached for a minute, `/c/excluded/**` excluded, tenant from `x-tenant-id`.
pub(crate) fn layer(store: Store) -> HttpCacheLayerBuilder {
    HttpCacheLayer::builder(store, tenant_from_header("x-tenant-id".parse().unwrap()))
        .route(
            Route::new("/c/**")
                .cache_type(CacheType::API_RESPONSE)
                .ttl(Duration::from_secs(60)),
        )
        .exclude("/c/excluded/**")
        .ignore_query_param("utm_source")
}

pub(crate) async fn start(
    configure: impl FnOnce(HttpCacheLayerBuilder) -> HttpCacheLayerBuilder,
) -> App {
    let redis = RedisServer::start();
    let store = Store::from_settings(&settings(&redis)).expect("store");
    let calls = Calls::default();
    let app = Router::new()
        .route("/c/{name}/{id}", any(scenario))
        .route("/u/{name}/{id}", any(scenario))
        .with_state(calls.clone())
        .layer(configure(layer(store)).build().expect("layer"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    App {
        addr,
        calls,
        redis,
        client: reqwest::Client::new(),
    }
}

impl App {
    /// A request for tenant `acme` unless the headers name another.
    pub(crate) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("http://{}{path_and_query}", self.addr));
        if !headers.iter().any(|(n, _)| *n == "x-tenant-id") {
            req = req.header("x-tenant-id", "acme");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send().await.expect("request")
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.send(Method::GET, path, headers).await
    }
}

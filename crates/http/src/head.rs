//! `HEAD` answered from a stored `GET` (RFC 9111 §4; RFC 9110 §9.3.2): a fresh stored response answers a `HEAD`
//! of the same target with its status and header fields and no content — a hit like any other. A `HEAD` never
//! stores anything (its response has no content; kept under the `GET`'s key it would answer the next `GET` with
//! an empty body) and never revalidates: what a fresh entry cannot answer goes to the service as a `HEAD`, and
//! its answer is passed on unstored.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use crate::{
    CacheBody,
    entries::CachedResponse,
    freshness::{self, Verdict},
    policy::RequestUse,
    service::{HIT, MISS, answer, only_if_cached_miss, with_x_cache},
};

/// Answers a `HEAD` from `found` — the stored response its `GET` would be answered with — when that is fresh
/// for this request (and may answer it: an `Authorization` request only from an explicitly public one), else
/// sends it on to the service as it came.
pub(crate) async fn answer_head<S, ReqB, ResB>(
    mut inner: S,
    parts: http::request::Parts,
    body: ReqB,
    found: Option<CachedResponse>,
    usage: RequestUse,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    // `no-cache` or `max-age=0` ask the origin, which for a `GET` means revalidating and storing; a `HEAD` does
    // neither, so it simply goes there.
    let may_answer = matches!(usage, RequestUse::LookupAndStore | RequestUse::CacheOnly);
    let authorized = parts.headers.contains_key(header::AUTHORIZATION);
    if let Some(hit) = found.filter(|hit| may_answer && (hit.for_authorized || !authorized)) {
        let status = hit.status();
        let headers = hit.header_map();
        let now = SystemTime::now();
        if let Verdict::Fresh(age) =
            freshness::judge(status, &headers, &hit.judgement, &parts.headers, now)
        {
            let length = hit.body.len();
            let mut resp = answer(&parts.headers, status, headers, Bytes::new(), age, HIT);
            // The length the `GET` answer has (RFC 9110 §8.6), where an answer has a length at all.
            if !(resp.status().is_informational()
                || matches!(
                    resp.status(),
                    StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
                ))
            {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            return Ok(resp);
        }
    }
    if usage == RequestUse::CacheOnly {
        return Ok(only_if_cached_miss());
    }
    let resp = inner.call(Request::from_parts(parts, body)).await?;
    Ok(with_x_cache(resp.map(CacheBody::inner), MISS))
}

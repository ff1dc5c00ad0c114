//! What of a request reaches the service behind the cache: its target in one RFC 3986 form, and only the
//! headers that are part of its key or allowed to pass (design 0005, "Poisoning").

use http::{HeaderMap, HeaderName};

use crate::{
    key::{remove_dot_segments, rfc3986_normalise},
    layer::Config,
    policy,
};

/// `uri` with its path and query in RFC 3986's normal form ([`rfc3986_normalise`]), and its path without dot
/// segments ([`remove_dot_segments`]).
pub(crate) fn canonical_target(uri: &mut http::Uri) {
    let Some(pq) = uri.path_and_query() else {
        return;
    };
    let path = match rfc3986_normalise(pq.path()) {
        std::borrow::Cow::Borrowed(p) => remove_dot_segments(p),
        std::borrow::Cow::Owned(p) => std::borrow::Cow::Owned(remove_dot_segments(&p).into_owned()),
    };
    let query = pq.query().map(rfc3986_normalise);
    if matches!(path, std::borrow::Cow::Borrowed(_))
        && query
            .as_ref()
            .is_none_or(|q| matches!(q, std::borrow::Cow::Borrowed(_)))
    {
        return;
    }
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(target)
        && {
            parts.path_and_query = Some(pq);
            true
        }
        && let Ok(normal) = http::Uri::from_parts(parts)
    {
        *uri = normal;
    }
}

/// The headers of a request that are not forwarded by configuration (the allow-list, keyed headers, the tenant
/// header): what the layer cannot vouch for, so they are part of any answer's key that they reach.
pub(crate) fn unlisted<'a>(
    config: &'a Config,
    headers: &'a HeaderMap,
) -> impl Iterator<Item = &'a HeaderName> + 'a {
    headers
        .keys()
        .filter(|n| !config.forwarded_headers.contains(n))
}

/// Removes every header that is neither forwarded by configuration nor named by the stored responses' `Vary`.
pub(crate) fn withhold_unkeyed(headers: &mut HeaderMap, config: &Config, varied: &[String]) {
    let withheld: Vec<HeaderName> = unlisted(config, headers)
        .filter(|n| !varied.iter().any(|v| v == n.as_str()))
        .cloned()
        .collect();
    for name in withheld {
        headers.remove(name);
    }
}

/// The headers a response's `Vary` names that the client sent but the service was not sent.
pub(crate) fn withheld_but_varied(
    client: &HeaderMap,
    sent: &HeaderMap,
    response: &HeaderMap,
) -> Vec<HeaderName> {
    policy::vary_names(response)
        .into_iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .filter(|n| client.contains_key(n) && !sent.contains_key(n))
        .collect()
}

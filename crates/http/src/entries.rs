//! What the layer keeps in the store: stored responses (a response, or the request headers it varies by),
//! the per-path epochs that an invalidation replaces, and the bounded sets that cap, for each tenant, the
//! paths of a route and the variants of a path — in each process, and across replicas where the backend keeps
//! shared sets.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use fernando_cache_keys::Scope;
use fernando_cache_store::Write;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::{
    freshness::{Judgement, Storable},
    key::{epoch_key, header_values, path_member, variant_key, variants_budget_key},
    layer::{CompiledRoute, Config},
    policy,
};

/// What the primary key of a request holds.
#[derive(Serialize, Deserialize)]
enum Stored {
    /// The response itself (it does not vary).
    Response(CachedResponse),
    /// The response varies by these request headers; each variant lives under its own key.
    Vary(Vec<String>),
}

/// A stored response.
#[derive(Serialize, Deserialize)]
pub(crate) struct CachedResponse {
    status: u16,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
    pub(crate) body: serde_bytes::ByteBuf,
    /// Explicitly public (`public`, `s-maxage`, `must-revalidate`): may answer requests with `Authorization`.
    pub(crate) for_authorized: bool,
    /// What judging its freshness again at each lookup needs.
    pub(crate) judgement: Judgement,
}

impl CachedResponse {
    /// The response to keep: its storable headers (never hop-by-hop fields, `Set-Cookie` or `Age`).
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: serde_bytes::ByteBuf,
        storable: &Storable,
    ) -> CachedResponse {
        CachedResponse {
            status: status.as_u16(),
            headers: headers
                .iter()
                .filter(|(n, _)| policy::stored_header(n))
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        serde_bytes::ByteBuf::from(v.as_bytes()),
                    )
                })
                .collect(),
            body,
            for_authorized: storable.for_authorized,
            judgement: storable.judgement,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
    }

    pub(crate) fn header_map(&self) -> HeaderMap {
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

/// Where one request's responses live: its tenant, route, path and primary key.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) scope: Scope,
    pub(crate) route: usize,
    pub(crate) path: String,
    pub(crate) primary: String,
    /// Set while the path has no epoch yet (nothing of it is stored): what its primary key is made of once a
    /// response is stored and the path takes its slot of the route's budget — not before, so requests whose
    /// responses are never stored cannot use the budget up.
    pub(crate) unopened: Option<KeyParts>,
}

/// What a primary key is made of besides the path and its epoch.
#[derive(Clone)]
pub(crate) struct KeyParts {
    pub(crate) query: String,
    pub(crate) keyed: Vec<(String, Option<Vec<u8>>)>,
}

/// `target` ready to store under: as it is when its path has an epoch, otherwise with the path opened now —
/// admitted into the route's path budget, its epoch created — and its primary key made under that epoch.
/// `None` when the budget is spent.
pub(crate) async fn open<'t>(
    config: &Config,
    target: &'t Target,
) -> Option<std::borrow::Cow<'t, Target>> {
    let Some(parts) = &target.unopened else {
        return Some(std::borrow::Cow::Borrowed(target));
    };
    let route = target.route(config);
    let epoch = current_epoch(config, &target.scope, route, &target.path).await?;
    Some(std::borrow::Cow::Owned(Target {
        primary: crate::key::primary_key(
            route.pattern.subject_of(&target.path),
            &config.keyed_path(&target.path),
            &parts.query,
            epoch,
            &parts.keyed,
        ),
        unopened: None,
        ..target.clone()
    }))
}

/// The path's epoch if it has one (something of it may be stored); reads only.
pub(crate) async fn existing_epoch(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    path: &str,
) -> Option<u64> {
    let key = epoch_key(route.pattern.subject_of(path), &config.keyed_path(path));
    config
        .store
        .get::<u64>(scope.clone(), &route.cache_type, &key)
        .await
        .ok()
        .flatten()
}

impl Target {
    pub(crate) fn route<'c>(&self, config: &'c Config) -> &'c CompiledRoute {
        &config.routes[self.route]
    }
}

/// The path's epoch: read, or — for a path the tenant may still add to the route — created, so entries are
/// only ever written under an epoch that an invalidation replaces. `None` when the tenant already holds as many
/// paths of the route as allowed: the request is then served without the cache and leaves nothing behind.
pub(crate) async fn current_epoch(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    path: &str,
) -> Option<u64> {
    if let Some(e) = existing_epoch(config, scope, route, path).await {
        return Some(e);
    }
    let key = epoch_key(route.pattern.subject_of(path), &config.keyed_path(path));
    let member = path_member(&config.keyed_path(path));
    let admitted = admit(
        config,
        scope,
        route,
        &route.paths_key,
        &member,
        config.max_paths,
        config.epoch_ttl,
    )
    .await;
    if !admitted {
        tracing::debug!(
            tenant = scope.label(),
            "path limit of the route reached; path not cached"
        );
        return None;
    }
    Some(new_epoch(config, scope, route, &key).await)
}

async fn new_epoch(config: &Config, scope: &Scope, route: &CompiledRoute, key: &str) -> u64 {
    let epoch = rand::random::<u64>() | 1;
    let _ = config
        .store
        .set_with(
            scope.clone(),
            &route.cache_type,
            key,
            &epoch,
            Write::default().ttl(config.epoch_ttl),
        )
        .await;
    epoch
}

/// Makes every cached variant of a path unreachable at once by replacing its epoch. A path without an epoch
/// has nothing cached, and gets none (so unsafe requests to unique paths write nothing).
pub(crate) async fn invalidate_path(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    path: &str,
) {
    let key = epoch_key(route.pattern.subject_of(path), &config.keyed_path(path));
    let current = config
        .store
        .get::<u64>(scope.clone(), &route.cache_type, &key)
        .await;
    if matches!(current, Ok(None)) {
        return;
    }
    new_epoch(config, scope, route, &key).await;
    tracing::debug!(path, "cached responses of the path invalidated");
}

/// The stored response for a request, with the key it lives under.
pub(crate) async fn lookup(
    config: &Config,
    target: &Target,
    request_headers: &HeaderMap,
) -> Option<(String, CachedResponse)> {
    lookup_varied(config, target, request_headers).await.1
}

/// [`lookup`], with the header names the stored responses of the URL vary on — empty when the stored one does
/// not vary, `None` when nothing of the URL is stored (its `Vary` is not known): they are part of the key, so
/// they may reach the service.
pub(crate) async fn lookup_varied(
    config: &Config,
    target: &Target,
    request_headers: &HeaderMap,
) -> (Option<Vec<String>>, Option<(String, CachedResponse)>) {
    let route = target.route(config);
    let Ok(Some(stored)) = config
        .store
        .get::<Stored>(target.scope.clone(), &route.cache_type, &target.primary)
        .await
    else {
        return (None, None);
    };
    match stored {
        Stored::Response(r) => (Some(Vec::new()), Some((target.primary.clone(), r))),
        Stored::Vary(names) => {
            let variant = variant_key(&target.primary, &header_values(request_headers, &names));
            let r = config
                .store
                .get::<CachedResponse>(target.scope.clone(), &route.cache_type, &variant)
                .await
                .ok()
                .flatten()
                .map(|r| (variant, r));
            (Some(names), r)
        }
    }
}

/// Admits `member` into a tenant's bounded set: in this process first, then across replicas. Without a shared
/// answer (backend down, or a backend without shared sets) the process's own bound is the bound.
async fn admit(
    config: &Config,
    scope: &Scope,
    route: &CompiledRoute,
    set_key: &str,
    member: &str,
    limit: usize,
    ttl: Duration,
) -> bool {
    if !admit_here(config, scope, set_key, member, limit, ttl) {
        return false;
    }
    let shared = config
        .store
        .coordinator()
        .admit(
            scope.clone(),
            &route.cache_type,
            set_key,
            member.as_bytes(),
            u64::try_from(limit).unwrap_or(u64::MAX),
            ttl,
        )
        .await;
    !matches!(shared, Ok(false))
}

fn admit_here(
    config: &Config,
    scope: &Scope,
    set_key: &str,
    member: &str,
    limit: usize,
    ttl: Duration,
) -> bool {
    let set = config
        .admitted
        .get_with((scope.label().to_owned(), set_key.to_owned()), Arc::default);
    let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    set.members.retain(|_, at| now.duration_since(*at) < ttl);
    if !set.members.contains_key(member) && set.members.len() >= limit {
        return false;
    }
    set.members.insert(member.to_owned(), now);
    true
}

/// Stores a response the service just gave, within the path's variant budget.
pub(crate) async fn store_response(
    config: &Config,
    target: &Target,
    request_headers: &HeaderMap,
    resp: &http::response::Parts,
    body: &Bytes,
    storable: &Storable,
) {
    let route = target.route(config);
    // Every header the service was sent outside the allow-list is part of the answer's key, as if its `Vary`
    // named it: whatever such a header changed reaches only requests that carry the same value (design 0005,
    // "Poisoning"). An answer to a request without them varies on nothing unsaid, and replaces the URL's
    // record, so from then on those headers are withheld and every client shares it.
    let mut names = policy::vary_names(&resp.headers);
    names.extend(crate::forward::unlisted(config, request_headers).map(|n| n.as_str().to_owned()));
    names.sort();
    names.dedup();
    let entry_key = if names.is_empty() {
        target.primary.clone()
    } else {
        variant_key(&target.primary, &header_values(request_headers, &names))
    };
    let budget = variants_budget_key(&route.source, &config.keyed_path(&target.path));
    if !admit(
        config,
        &target.scope,
        route,
        &budget,
        &entry_key,
        config.max_variants,
        route.ttl,
    )
    .await
    {
        tracing::debug!(
            tenant = target.scope.label(),
            "variant limit of the path reached; response not stored"
        );
        return;
    }
    let cached = CachedResponse::new(
        resp.status,
        &resp.headers,
        serde_bytes::ByteBuf::from(body.to_vec()),
        storable,
    );
    if !names.is_empty() {
        let _ = config
            .store
            .set_with(
                target.scope.clone(),
                &route.cache_type,
                &target.primary,
                &Stored::Vary(names),
                Write::default().ttl(storable.ttl),
            )
            .await;
        put(config, target, &entry_key, &cached, storable.ttl).await;
    } else {
        let _ = config
            .store
            .set_with(
                target.scope.clone(),
                &route.cache_type,
                &entry_key,
                &Stored::Response(cached),
                Write::default().ttl(storable.ttl),
            )
            .await;
    }
}

/// Replaces a stored response in place (after a revalidation refreshed it): under its primary key when it
/// does not vary, else under its variant key.
pub(crate) async fn replace(
    config: &Config,
    target: &Target,
    entry_key: &str,
    cached: CachedResponse,
    ttl: Duration,
) {
    if entry_key == target.primary {
        let route = target.route(config);
        let _ = config
            .store
            .set_with(
                target.scope.clone(),
                &route.cache_type,
                entry_key,
                &Stored::Response(cached),
                Write::default().ttl(ttl),
            )
            .await;
    } else {
        put(config, target, entry_key, &cached, ttl).await;
    }
}

async fn put(
    config: &Config,
    target: &Target,
    entry_key: &str,
    cached: &CachedResponse,
    ttl: Duration,
) {
    let route = target.route(config);
    let _ = config
        .store
        .set_with(
            target.scope.clone(),
            &route.cache_type,
            entry_key,
            cached,
            Write::default().ttl(ttl),
        )
        .await;
}

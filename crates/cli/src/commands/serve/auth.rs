//! Bearer authentication: tenant API keys and the admin token, configured as SHA-256 hashes.

use std::collections::HashMap;

use std::sync::Arc;

use axum::{
    extract::{FromRef, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use fernando_cache_config::ServerSettings;
use fernando_cache_http::server::{Peer, too_many};
use fernando_cache_keys::TenantId;
use sha2::{Digest, Sha256};

use super::{AppState, ConsoleState, error, throttle::Throttle};

impl FromRef<AppState> for Arc<Keys> {
    fn from_ref(state: &AppState) -> Arc<Keys> {
        state.keys.clone()
    }
}

/// Who a request is, once authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Tenant(TenantId),
    Admin,
}

/// Keys by hash; the keys themselves are never held.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    tenants: HashMap<[u8; 32], TenantId>,
    admin: Option<[u8; 32]>,
    metrics: Option<[u8; 32]>,
    /// Failed credentials per client address.
    pub(crate) throttle: Throttle,
}

/// The address a request came from (put there by the listener).
pub(crate) fn client_of(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<Peer>().map(|p| p.0)
}

/// Whether a request presents a credential at all: only a presented credential that is refused spends the
/// address's budget ([`super::throttle`]).
pub(crate) fn presented(headers: &HeaderMap) -> bool {
    headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        let v = v.as_bytes().trim_ascii();
        // `Bearer` alone (or any scheme with nothing after it) presents nothing to guess with.
        v.split(|b| b.is_ascii_whitespace())
            .filter(|part| !part.is_empty())
            .nth(1)
            .is_some()
    })
}

/// 429 for an address that presented too many wrong credentials.
pub(crate) fn throttled(wait: std::time::Duration) -> Response {
    too_many(
        "too many failed credentials from this address; retry later",
        wait,
    )
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Keys {
    /// The configured keys; invalid tenant ids are a configuration error.
    pub(crate) fn from_settings(s: &ServerSettings) -> anyhow::Result<Keys> {
        let mut keys = Keys::default();
        for k in &s.api_keys {
            let tenant = TenantId::new(&k.tenant)
                .map_err(|e| anyhow::anyhow!("server.api_keys: tenant {:?}: {e}", k.tenant))?;
            let hash = parse_hash(&k.key_sha256)
                .ok_or_else(|| anyhow::anyhow!("server.api_keys: bad key_sha256"))?;
            keys.tenants.insert(hash, tenant);
        }
        keys.admin = parse_hash(&s.admin_token_sha256);
        keys.metrics = parse_hash(&s.metrics_token_sha256);
        if !s.metrics_token_sha256.is_empty() && keys.metrics.is_none() {
            anyhow::bail!("server.metrics_token_sha256: not a SHA-256 (64 hexadecimal digits)");
        }
        Ok(keys)
    }

    fn token_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
        Self::bearer_hash(headers.get(header::AUTHORIZATION)?)
    }

    /// The hash of a `Bearer` credential (the scheme is case-insensitive, RFC 9110 §11.1).
    fn bearer_hash(value: &header::HeaderValue) -> Option<[u8; 32]> {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        Some(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether any `Authorization` field of the request carries the admin token, however it is written: any
    /// word of the field — split at white space and commas (`Bearer <token>, Bearer x`), or finer at anything a
    /// token is not made of (`Bearer <token>;`, `Bearer="<token>"`) — or any part of a word that decodes as
    /// Base64 (`Basic` credentials, `user:<token>`).
    pub(crate) fn carries_admin(&self, headers: &HeaderMap) -> bool {
        use base64::Engine as _;
        let Some(admin) = self.admin else {
            return false;
        };
        let is_admin = |candidate: &[u8]| -> bool {
            let candidate = candidate.trim_ascii();
            !candidate.is_empty() && <[u8; 32]>::from(Sha256::digest(candidate)) == admin
        };
        let coarse = |b: &u8| b.is_ascii_whitespace() || *b == b',';
        let fine = |b: &u8| !(b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
        headers.get_all(header::AUTHORIZATION).iter().any(|v| {
            let v = v.as_bytes();
            v.split(coarse).chain(v.split(fine)).any(|word| {
                is_admin(word)
                    || base64::engine::general_purpose::STANDARD
                        .decode(word)
                        .is_ok_and(|d| is_admin(&d) || d.split(|b| *b == b':').any(is_admin))
            })
        })
    }

    /// Whether an admin token is configured at all (`server.admin_token_sha256`): without one the console says
    /// that admin sign-in is not configured rather than refusing a token.
    pub(crate) fn admin_configured(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether `token` is the admin token (the dashboard's sign-in form).
    pub(crate) fn is_admin_token(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        !token.is_empty() && self.admin == Some(hash)
    }

    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        self.admin.is_some() && Self::token_hash(headers) == self.admin
    }

    /// Whether the request may read `/metrics`: the metrics token (or the admin token) when one is configured;
    /// without a metrics token, anyone on a loopback listener and the admin on any other.
    pub(crate) fn may_read_metrics(&self, headers: &HeaderMap, loopback: bool) -> bool {
        match self.metrics {
            Some(m) => Self::token_hash(headers) == Some(m) || self.is_admin(headers),
            None => loopback || self.is_admin(headers),
        }
    }

    fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let hash = Self::token_hash(headers)?;
        if self.admin == Some(hash) {
            return Some(Caller::Admin);
        }
        self.tenants.get(&hash).cloned().map(Caller::Tenant)
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Tenant routes: a tenant key is required. The tenant goes into the request extensions and the
/// `Authorization` header is removed, so the HTTP cache layer keys by tenant and never sees the credential.
pub(crate) async fn tenant(
    State(keys): State<Arc<Keys>>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = client_of(&req);
    if let Some(wait) = keys.throttle.wait(client) {
        return throttled(wait);
    }
    match keys.caller(req.headers()) {
        Some(Caller::Tenant(t)) => {
            req.headers_mut().remove(header::AUTHORIZATION);
            req.extensions_mut().insert(t);
            next.run(req).await
        }
        Some(Caller::Admin) => error(
            StatusCode::FORBIDDEN,
            "the admin token cannot act as a tenant; use a tenant API key",
        ),
        None => {
            if presented(req.headers()) {
                keys.throttle.failed(client, "tenant API key");
            }
            unauthorized("a valid tenant API key is required: Authorization: Bearer <key>")
        }
    }
}

/// Admin routes: the admin token is required.
pub(crate) async fn admin(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    // The dashboard's session cookie reads (GET) admin routes; anything that changes state needs the token
    // itself, so a forged cross-site request cannot ride on the cookie.
    if req.method() == axum::http::Method::GET && state.sessions.holds(req.headers()) {
        return next.run(req).await;
    }
    let client = client_of(&req);
    if let Some(wait) = state.keys.throttle.wait(client) {
        return throttled(wait);
    }
    match state.keys.caller(req.headers()) {
        Some(Caller::Admin) => next.run(req).await,
        Some(Caller::Tenant(_)) => error(StatusCode::FORBIDDEN, "this route needs the admin token"),
        None => {
            if presented(req.headers()) {
                state.keys.throttle.failed(client, "admin token");
            }
            unauthorized("the admin token is required: Authorization: Bearer <token>")
                .into_response()
        }
    }
}

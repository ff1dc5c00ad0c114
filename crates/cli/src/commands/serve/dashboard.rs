//! `/dashboard`: the operators' page (issue 16), embedded in the binary with its assets — no CDN, works with no
//! internet. It reads the `/v1/admin/…` JSON endpoints; charts are drawn by uPlot (MIT, vendored with its
//! licence in `dashboard/vendor/`). Sign-in: a form posting the admin token, which sets a session cookie
//! (`HttpOnly`, `Secure`, `SameSite=Strict`, 12 hours) that reads admin GET routes; `Authorization: Bearer` works
//! too. Sessions live in this process (bounded); a replica behind a load balancer without affinity asks again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use rand::RngCore as _;

use super::ConsoleState;

const COOKIE: &str = "fc_dashboard";
const LIFE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 1_000;
/// No inline script or style, nothing from elsewhere: a value that slipped into markup could not run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

const INDEX: &str = include_str!("dashboard/index.html");
const LOGIN: &str = include_str!("dashboard/login.html");
/// What the sign-in page says when no admin token is configured: no token could be accepted, so none is asked
/// for (and a failed sign-in never blames the token).
const NO_ADMIN: &str = include_str!("dashboard/no_admin.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("dashboard/vendor/uPlot.LICENSE"),
    ),
];

/// The dashboard's sign-in sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    fn open(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), now + LIFE);
        id
    }

    /// Removes the console's session cookie from a request bound elsewhere (`proxy`'s origin): a session
    /// replayed there reads every tenant's counters.
    pub(crate) fn withhold_cookie(headers: &mut HeaderMap) {
        let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
        if values.is_empty() {
            return;
        }
        headers.remove(header::COOKIE);
        for v in values {
            let Ok(text) = v.to_str() else {
                // Not text: passed on only when it cannot hold the session.
                if !String::from_utf8_lossy(v.as_bytes())
                    .to_ascii_lowercase()
                    .contains(COOKIE)
                {
                    headers.append(header::COOKIE, v);
                }
                continue;
            };
            // Pairs split at `;` and at `,` (the older separator some clients still send), names compared
            // trimmed and without case: no spelling carries the session past this point.
            let kept: Vec<&str> = text
                .split([';', ','])
                .map(str::trim)
                .filter(|c| {
                    !c.is_empty()
                        && !c
                            .split('=')
                            .next()
                            .is_some_and(|n| n.trim().eq_ignore_ascii_case(COOKIE))
                })
                .collect();
            if !kept.is_empty()
                && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
            {
                headers.append(header::COOKIE, v);
            }
        }
    }

    fn cookie(headers: &HeaderMap) -> Option<&str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
    }

    /// Whether the request carries a live session cookie.
    pub(crate) fn holds(&self, headers: &HeaderMap) -> bool {
        let Some(id) = Self::cookie(headers) else {
            return false;
        };
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).is_some_and(|e| *e > Instant::now())
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = Self::cookie(headers) {
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
    }
}

fn page(status: StatusCode, html: &'static str) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /dashboard`: the page for a signed-in operator (cookie or bearer), the sign-in form otherwise — or,
/// when no admin token is configured, a page that says so and how to set one.
pub(crate) async fn index(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if !state.keys.admin_configured() {
        page(StatusCode::OK, NO_ADMIN)
    } else if state.sessions.holds(&headers) || state.keys.is_admin(&headers) {
        page(StatusCode::OK, INDEX)
    } else {
        page(StatusCode::OK, LOGIN)
    }
}

/// `POST /dashboard/login` (form `token=…`): a session cookie and back to the page, or the form again with 401;
/// 403 and the page saying admin sign-in is not configured when the server has no admin token.
pub(crate) async fn login(
    State(state): State<ConsoleState>,
    peer: Option<axum::Extension<fernando_cache_http::server::Peer>>,
    body: Bytes,
) -> Response {
    if !state.keys.admin_configured() {
        return page(StatusCode::FORBIDDEN, NO_ADMIN);
    }
    let client = peer.map(|p| p.0.0);
    if let Some(wait) = state.keys.throttle.wait(client) {
        return super::auth::throttled(wait);
    }
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !state.keys.is_admin_token(&token) {
        state.keys.throttle.failed(client, "console sign-in");
        let html: &'static str = LOGIN_FAILED.get_or_init(|| {
            LOGIN.replace(
                r#"<p class="error" id="login-error" hidden>"#,
                r#"<p class="error" id="login-error">"#,
            )
        });
        return page(StatusCode::UNAUTHORIZED, html);
    }
    let id = state.sessions.open();
    let mut r = Redirect::to("/dashboard").into_response();
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        LIFE.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

static LOGIN_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `POST /dashboard/logout`: the session ends.
pub(crate) async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    state.sessions.close(&headers);
    let mut r = Redirect::to("/dashboard").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "fc_dashboard=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

/// `GET /dashboard/assets/{name}`: the embedded scripts and styles (no data in them: no sign-in needed).
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut r = (*body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

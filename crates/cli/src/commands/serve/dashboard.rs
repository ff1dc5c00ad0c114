//! `/dashboard`: the operators' page (issue 16), embedded in the binary with its assets — no CDN, works with no
//! internet. It reads the `/v1/admin/…` JSON endpoints; charts are drawn by uPlot (MIT, vendored with its
//! licence in `dashboard/vendor/`). Sign-in: a form posting the admin token, which sets a session cookie
//! (`HttpOnly`, `SameSite=Strict`, 12 hours; `Secure` when the browser came over HTTPS, see `over_https`) that
//! reads admin GET routes; `Authorization: Bearer` works too. Sign-out ends the session on the server and clears
//! the cookie. Both are form posts the console's own pages make; another site's are refused (`from_own_pages`).
//! Sessions live in this process (bounded); a replica behind a load balancer without affinity asks again.

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

/// Whether the browser reached the console over HTTPS, which decides the cookie's `Secure`. `serve` speaks plain
/// HTTP, so TLS is a proxy's in front of it, which says so (`X-Forwarded-Proto: https`, `Forwarded:
/// proto=https`), as does the browser itself in the `Origin` of a form post (`https://…`, whatever the proxy
/// forwards). Believed from anyone, with no setting naming trusted proxies, because each can only add `Secure`:
/// a client claiming HTTPS falsely gets a cookie its own browser keeps off plain HTTP. Without them the cookie is
/// not `Secure`, so a console on a LAN address over plain HTTP can be signed into: browsers drop a `Secure`
/// cookie set over plain HTTP — Safari even on `localhost` (WebKit bug 281149).
fn over_https(headers: &HeaderMap) -> bool {
    let values = |name: &'static str| {
        headers
            .get_all(name)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
    };
    let https = |v: &str| v.trim().trim_matches('"').eq_ignore_ascii_case("https");
    values("origin").any(|o| {
        o.trim()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }) || values("x-forwarded-proto").any(|v| v.split(',').any(https))
        || values("forwarded").any(|v| {
            v.split([',', ';']).any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("proto") && https(v))
            })
        })
}

/// Whether a sign-in or sign-out form post comes from the console's own pages. Browsers say where a request
/// comes from: `Sec-Fetch-Site` (sent to HTTPS and loopback origins) must be `same-origin` (or `none`, typed by
/// the user); without it, the `Origin` must name the host the request was sent to (`Host`, or the
/// `X-Forwarded-Host` of a proxy that rewrote it). A request with neither is no browser's, so no other site's
/// page can have made it: programs sign in with `Authorization: Bearer` anyway.
fn from_own_pages(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some((_, origin_host)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false; // `null`, or not a URL
    };
    ["host", "x-forwarded-host"]
        .into_iter()
        .filter_map(|name| headers.get(name)?.to_str().ok())
        .any(|host| host.trim().eq_ignore_ascii_case(origin_host.trim()))
}

/// The session cookie's `Set-Cookie` value; `Max-Age=0` with an empty id clears it.
fn session_cookie(id: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { " Secure;" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly;{secure} SameSite=Strict; Max-Age={max_age}")
}

/// 403 for a sign-in or sign-out another site's page posted.
fn cross_site() -> Response {
    super::error(
        StatusCode::FORBIDDEN,
        "sign-in and sign-out are posted from the console's own page (/dashboard), not from another site",
    )
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !from_own_pages(&headers) {
        return cross_site();
    }
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
        // An empty form is no guess: it spends nothing.
        if !token.trim().is_empty() {
            state.keys.throttle.failed(client, "console sign-in");
        }
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
    let cookie = session_cookie(&id, LIFE.as_secs(), over_https(&headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

static LOGIN_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `POST /dashboard/logout` (the page's "Sign out"): the session ends on the server — its cookie, wherever it
/// was copied, reads nothing more — and the browser is told to drop the cookie; back to the sign-in form.
pub(crate) async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if !from_own_pages(&headers) {
        return cross_site();
    }
    state.sessions.close(&headers);
    let mut r = Redirect::to("/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie("", 0, over_https(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_cookie_is_secure_only_when_someone_says_https() {
        for said in [
            &[("origin", "https://console.example")][..],
            &[("x-forwarded-proto", "HTTPS")],
            &[("x-forwarded-proto", "http, https")],
            &[(
                "forwarded",
                "for=192.0.2.1;proto=https;host=console.example",
            )],
            &[(
                "forwarded",
                "for=192.0.2.1, for=198.51.100.7; Proto=\"https\"",
            )],
        ] {
            assert!(over_https(&headers(said)), "{said:?}");
        }
        for plain in [
            &[("origin", "http://192.168.1.20:8080")][..],
            &[],
            &[("x-forwarded-proto", "http")],
            &[("forwarded", "for=192.0.2.1;proto=http")],
            &[("origin", "null")],
        ] {
            assert!(!over_https(&headers(plain)), "{plain:?}");
        }
        assert_eq!(
            session_cookie("ab", 60, true),
            "fc_dashboard=ab; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=60"
        );
        assert_eq!(
            session_cookie("", 0, false),
            "fc_dashboard=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn only_the_consoles_own_pages_post_sign_in_and_sign_out() {
        for own in [
            &[("sec-fetch-site", "same-origin")][..],
            &[],
            &[
                ("origin", "http://192.168.1.20:8080"),
                ("host", "192.168.1.20:8080"),
            ],
            &[
                ("origin", "https://console.example"),
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-host", "console.example"),
            ],
        ] {
            assert!(from_own_pages(&headers(own)), "{own:?}");
        }
        for other in [
            &[("sec-fetch-site", "cross-site")][..],
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://a.example"),
                ("host", "a.example"),
            ],
            &[
                ("origin", "https://evil.example"),
                ("host", "192.168.1.20:8080"),
            ],
            &[("origin", "null"), ("host", "192.168.1.20:8080")],
        ] {
            assert!(!from_own_pages(&headers(other)), "{other:?}");
        }
    }
}

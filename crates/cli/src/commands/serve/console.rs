//! The operators' console both `serve` and `proxy` offer: `/dashboard` (the page, its sign-in and assets) and the
//! admin read routes it draws from (`/v1/admin/series`, `/v1/admin/overview`), over [`ConsoleState`] — the store,
//! the keys, the sign-in sessions and the statistics database, nothing of the document API.

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    middleware,
    routing::{get, post},
};
use fernando_cache_store::Store;

use super::{AppState, admin, auth, dashboard, edge};

/// What the console reads.
#[derive(Clone)]
pub(crate) struct ConsoleState {
    pub(crate) store: Store,
    pub(crate) keys: Arc<auth::Keys>,
    /// The statistics database, when statistics are on.
    pub(crate) database_url: Option<String>,
    /// The currency money figures are counted in (`prices.currency`).
    pub(crate) currency: Arc<str>,
    /// The dashboard's sign-in sessions.
    pub(crate) sessions: Arc<dashboard::Sessions>,
}

impl FromRef<AppState> for ConsoleState {
    fn from_ref(s: &AppState) -> Self {
        ConsoleState {
            store: s.store.clone(),
            keys: s.keys.clone(),
            database_url: s.database_url.clone(),
            currency: s.currency.clone(),
            sessions: s.sessions.clone(),
        }
    }
}

/// The console's routes, for a router whose state gives a [`ConsoleState`]; JSON bodies up to `json_limit`.
pub(crate) fn routes<S>(console: ConsoleState, json_limit: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ConsoleState: FromRef<S>,
{
    let limited = || {
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(
                json_limit,
                edge::declared_length,
            ))
            .layer(DefaultBodyLimit::max(json_limit))
    };
    let reads = Router::new()
        .route(
            "/v1/admin/series",
            get(admin::series_route).layer(limited()),
        )
        .route(
            "/v1/admin/overview",
            get(admin::overview_route).layer(limited()),
        )
        // Only these routes: an unknown path stays a 404 rather than asking for the admin token.
        .route_layer(middleware::from_fn_with_state(console, auth::admin));
    Router::new()
        .merge(reads)
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/login", post(dashboard::login).layer(limited()))
        .route(
            "/dashboard/logout",
            post(dashboard::logout).layer(limited()),
        )
        .route("/dashboard/assets/{name}", get(dashboard::asset))
}

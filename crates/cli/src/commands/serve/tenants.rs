//! `POST /v1/admin/tenants/{id}/erase` (admin): a tenant erased in one step — its keys on the cache backend,
//! its rows in the statistics database, what this server still holds of it unwritten (its recorder's rows, its
//! pipeline's reads) — with one audit event in the event log: `fernando-cache tenant erase` as a route. A
//! failure says what was and was not erased; the backend's or the database's own words go to the log under the
//! request id, never to the client.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use fernando_cache_keys::TenantId;
use fernando_cache_ops::erasure::{EraseOptions, ErasureError, erase_tenant};
use fernando_cache_store::StoreError;

use super::{AppState, error, internal_error};

/// Erases tenant `id` and answers what was removed, with counts per place.
pub(crate) async fn erase(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let tenant = match TenantId::new(&id) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("tenant: {e}")),
    };
    let recorder = state.recorder.upgrade();
    let mut options = EraseOptions::default().processor(&state.processor);
    if let Some(url) = state.database_url.as_deref() {
        options = options.database(url);
    }
    if let Some(recorder) = recorder.as_deref() {
        options = options.recorder(recorder);
    }
    match erase_tenant(&state.store, &tenant, options).await {
        Ok(erased) => {
            let mut body = erased.json(&tenant);
            body["summary"] = erased.summary().into();
            let mut r = Json(body).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        // A tenant id longer than `tenancy.max_tenant_id_len`: no such tenant can have data.
        Err(ErasureError::Cache(StoreError::Key(e))) => {
            error(StatusCode::BAD_REQUEST, &format!("tenant: {e}"))
        }
        Err(e @ ErasureError::Cache(_)) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cache did not answer; the tenant was not erased (erasing again is safe)",
            &e,
        ),
        Err(e) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the tenant's cache data was erased but its statistics rows were not: the database did not \
             answer (erasing again is safe)",
            &e,
        ),
    }
}

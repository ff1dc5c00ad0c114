//! `GET /metrics`: the store's and the pipeline's figures in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use fernando_cache_store::QuotaUsage;

use super::{AppState, error};

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family's `# HELP` and `# TYPE` lines; in the help text, `\` and newlines are escaped as the format requires.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) async fn metrics(
    State(state): State<AppState>,
    peer: Option<axum::Extension<fernando_cache_http::server::Peer>>,
    headers: HeaderMap,
) -> Response {
    let client = peer.map(|p| p.0.0);
    if let Some(wait) = state.keys.throttle.wait(client) {
        return super::auth::throttled(wait);
    }
    // Every tenant's figures: not for whoever can reach the port.
    if !state.keys.may_read_metrics(&headers, state.loopback) {
        if super::auth::presented(&headers) {
            state.keys.throttle.failed(client, "metrics token");
        }
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "/metrics needs the metrics token (server.metrics_token_sha256) or the admin token",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let snapshot = state.store.metrics();
    let mut out = String::new();
    let throttle = &state.keys.throttle;
    for (name, help, value) in [
        (
            "fernando_cache_auth_failures_total",
            "Credentials refused (API keys, admin and metrics tokens, console sign-in).",
            throttle.failures.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "fernando_cache_auth_throttled_total",
            "Requests refused because their address presented too many wrong credentials.",
            throttle.refused.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    // One table of families for this page and the OTLP export, made from the store's own list of counters.
    let currency = format!(",currency=\"{}\"", label(&state.currency));
    for f in fernando_cache_ops::telemetry::counter_families() {
        let name = format!("{}_total", f.name);
        let extra = if f.money() { currency.as_str() } else { "" };
        family(&mut out, &name, "counter", &f.help);
        for s in &snapshot.series {
            let _ = writeln!(
                out,
                "{name}{{tenant=\"{}\",cache_type=\"{}\"{extra}}} {}",
                label(&s.tenant),
                label(&s.cache_type),
                f.value(&s.counters)
            );
        }
    }
    quota_gauges(&state, &snapshot, &mut out).await;
    region_gauges(&state, &mut out).await;
    isolation_gauges(&state, &snapshot, &mut out);
    plan_gauges(&state, &mut out);
    family(
        &mut out,
        "fernando_cache_get_latency_seconds",
        "summary",
        "Latency of cache reads.",
    );
    for s in &snapshot.series {
        let (t, c) = (label(&s.tenant), label(&s.cache_type));
        for q in fernando_cache_ops::telemetry::LATENCY_QUANTILES {
            let _ = writeln!(
                out,
                "fernando_cache_get_latency_seconds{{tenant=\"{t}\",cache_type=\"{c}\",quantile=\"{q}\"}} {}",
                s.get_latency.quantile(q).as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "fernando_cache_get_latency_seconds_count{{tenant=\"{t}\",cache_type=\"{c}\"}} {}",
            s.get_latency.count()
        );
    }
    family(
        &mut out,
        "fernando_cache_breaker_open",
        "gauge",
        "1 while the circuit breaker keeps calls away from the backend.",
    );
    let _ = writeln!(
        out,
        "fernando_cache_breaker_open {}",
        u8::from(snapshot.breaker.as_str() != "closed")
    );
    let t = state.processor.telemetry();
    family(
        &mut out,
        "fernando_cache_stage_total",
        "counter",
        "Document pipeline stages by outcome.",
    );
    for (stage, f) in [
        ("document", t.document),
        ("ocr", t.ocr),
        ("extraction", t.extraction),
    ] {
        let _ = writeln!(
            out,
            "fernando_cache_stage_total{{stage=\"{stage}\",outcome=\"hit\"}} {}",
            f.hits
        );
        let _ = writeln!(
            out,
            "fernando_cache_stage_total{{stage=\"{stage}\",outcome=\"miss\"}} {}",
            f.misses
        );
    }
    family(
        &mut out,
        "fernando_cache_time_saved_seconds_total",
        "counter",
        "Engine time the cache saved.",
    );
    let _ = writeln!(
        out,
        "fernando_cache_time_saved_seconds_total {}",
        t.time_saved.as_secs_f64()
    );
    family(
        &mut out,
        "fernando_cache_bytes_not_reprocessed_total",
        "counter",
        "Bytes of documents answered entirely from the cache.",
    );
    let _ = writeln!(
        out,
        "fernando_cache_bytes_not_reprocessed_total {}",
        t.bytes_not_reprocessed
    );
    family(
        &mut out,
        "fernando_cache_documents_total",
        "counter",
        "Documents by kind and whether they came entirely from the cache.",
    );
    for (kind, k) in &t.by_kind {
        let _ = writeln!(
            out,
            "fernando_cache_documents_total{{kind=\"{}\",cached=\"true\"}} {}",
            kind.as_str(),
            k.cached
        );
        let _ = writeln!(
            out,
            "fernando_cache_documents_total{{kind=\"{}\",cached=\"false\"}} {}",
            kind.as_str(),
            k.documents - k.cached
        );
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// How far behind each region of `regions.from` this one is (design 0026), as its replicators noted it: in
/// entries and seconds, the losses met, and how long ago a replicator last noted anything. A region nothing was
/// noted of yet has no samples but `fernando_cache_region_noted` 0; a backend that cannot answer leaves the
/// families out (the scrape still works).
async fn region_gauges(state: &AppState, out: &mut String) {
    family(
        out,
        "fernando_cache_region_values_dropped_total",
        "counter",
        "Values written here whose entries never reached this region's replication stream (its queue was full, or the stream could not be reached): other regions compute them themselves.",
    );
    let _ = writeln!(
        out,
        "fernando_cache_region_values_dropped_total {}",
        state.store.replication_dropped()
    );
    let Ok(statuses) = state.store.admin().regions().await else {
        return;
    };
    if statuses.is_empty() {
        return;
    }
    // Every region of `regions.from`, noted or not: one whose replicator never noted anything (never started,
    // never reached it) is 0 here, where the other families have no sample of it.
    family(
        out,
        "fernando_cache_region_noted",
        "gauge",
        "1 when a replicator of another region's stream has noted its progress here (on every shard of it), 0 when none has.",
    );
    for status in &statuses {
        let _ = writeln!(
            out,
            "fernando_cache_region_noted{{region=\"{}\"}} {}",
            label(&status.name),
            u8::from(status.progress.is_some())
        );
    }
    for (name, kind, help) in [
        (
            "fernando_cache_region_behind_seconds",
            "gauge",
            "How far behind another region's replication stream this region is, in time (rises while no replicator runs).",
        ),
        (
            "fernando_cache_region_behind_entries",
            "gauge",
            "Entries of another region's replication stream not yet applied here, when its server can tell.",
        ),
        (
            "fernando_cache_region_losses_total",
            "counter",
            "Losses met (entries of another region's stream gone before they were applied here), each answered by invalidating the replicated types here of every tenant whose entries went to the stream (or its shard) that lost them.",
        ),
        (
            "fernando_cache_region_noted_age_seconds",
            "gauge",
            "How long ago a replicator of another region's stream last noted its progress here.",
        ),
    ] {
        family(out, name, kind, help);
        for status in &statuses {
            let (Some(p), Some(lag), Some(age)) = (&status.progress, status.lag, status.noted_age)
            else {
                continue;
            };
            let value = match name {
                "fernando_cache_region_behind_seconds" => lag.as_secs_f64().to_string(),
                "fernando_cache_region_behind_entries" => match p.behind {
                    Some(n) => n.to_string(),
                    None => continue,
                },
                "fernando_cache_region_losses_total" => p.gaps.to_string(),
                _ => age.as_secs_f64().to_string(),
            };
            let _ = writeln!(out, "{name}{{region=\"{}\"}} {value}", label(&status.name));
        }
    }
}

/// Which isolation strategy each tenant runs (design 0023), as gauges of 1 labelled with its name: every tenant
/// with a plan of its own and every tenant with series (bounded by `metrics.max_series`), and the default, for
/// `* on (tenant) group_left (isolation)` joins.
fn isolation_gauges(
    state: &AppState,
    snapshot: &fernando_cache_store::MetricsSnapshot,
    out: &mut String,
) {
    let isolations = state.store.admin().isolations();
    family(
        out,
        "fernando_cache_default_isolation",
        "gauge",
        "1, labelled with the isolation strategy of every tenant without a [tenants.<id>] table.",
    );
    let _ = writeln!(
        out,
        "fernando_cache_default_isolation{{isolation=\"{}\"}} 1",
        label(isolations.default)
    );
    family(
        out,
        "fernando_cache_tenant_isolation",
        "gauge",
        "1, labelled with the isolation strategy the tenant runs: namespace, acl or dedicated.",
    );
    let mut tenants: std::collections::BTreeSet<&str> =
        isolations.listed.iter().map(|(t, _)| t.as_str()).collect();
    tenants.extend(
        snapshot
            .series
            .iter()
            .map(|s| s.tenant.as_str())
            .filter(|t| !t.starts_with('_')),
    );
    for t in tenants {
        let _ = writeln!(
            out,
            "fernando_cache_tenant_isolation{{tenant=\"{}\",isolation=\"{}\"}} 1",
            label(t),
            label(isolations.of_tenant(t))
        );
    }
}

/// Each tenant's quota use now, from the backend's ledgers, when a quota is set for it (tenants are those with
/// series, bounded by `metrics.max_series`).
async fn quota_gauges(
    state: &AppState,
    snapshot: &fernando_cache_store::MetricsSnapshot,
    out: &mut String,
) {
    let plans = state.store.admin().plans();
    let quota_somewhere = std::iter::once(plans.default_plan())
        .chain(plans.listed().map(|(_, p)| p))
        .any(|p| p.tenant_bytes > 0 || p.shared_requests > 0);
    if !quota_somewhere {
        return;
    }
    let mut tenants: Vec<&str> = snapshot
        .series
        .iter()
        .map(|s| s.tenant.as_str())
        .filter(|t| !t.starts_with('_'))
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut rows = Vec::new();
    for t in tenants {
        let Ok(tenant) = fernando_cache_keys::TenantId::new(t) else {
            continue;
        };
        match state.store.admin().quota_usage(&tenant).await {
            Ok(q) if q.byte_limit > 0 || q.request_limit > 0 => rows.push((t, q)),
            // A tenant whose plan sets no quota has no gauges.
            Ok(_) => {}
            // The backend is down: the gauges are absent rather than wrong.
            Err(_) => return,
        }
    }
    type Gauge = (&'static str, &'static str, fn(&QuotaUsage) -> u64);
    let gauges: [Gauge; 4] = [
        (
            "fernando_cache_quota_stored_bytes",
            "Bytes of the tenant's live entries, as its quota ledger counts them.",
            |q| q.stored_bytes,
        ),
        (
            "fernando_cache_quota_byte_limit",
            "The tenant byte quota (quotas.tenant_bytes; 0: none).",
            |q| q.byte_limit,
        ),
        (
            "fernando_cache_quota_requests",
            "The tenant's requests in the current quota window.",
            |q| q.requests,
        ),
        (
            "fernando_cache_quota_request_limit",
            "The tenant request quota per window (quotas.shared_requests; 0: none).",
            |q| q.request_limit,
        ),
    ];
    for (name, help, get) in gauges {
        family(out, name, "gauge", help);
        for (t, q) in &rows {
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {}", label(t), get(q));
        }
    }
}

/// The label of the plan of every tenant without a table of its own: `_`-names are never a series' tenant
/// (`_global`, `_overflow`), as here.
const DEFAULT_PLAN: &str = "_default";

/// Each plan's bounds (issue 31): one series per listed tenant (`[tenants.<id>]`) and one for every other
/// tenant (`tenant="_default"`). Read from the settings, so no backend call; bounded by the settings' tenants.
fn plan_gauges(state: &AppState, out: &mut String) {
    use fernando_cache_config::TenantPlan;
    let plans = state.store.admin().plans();
    let all: Vec<(&str, &TenantPlan)> = std::iter::once((DEFAULT_PLAN, plans.default_plan()))
        .chain(plans.listed())
        .collect();
    type Gauge = (&'static str, &'static str, fn(&TenantPlan) -> Option<f64>);
    let gauges: [Gauge; 5] = [
        (
            "fernando_cache_plan_byte_limit",
            "The byte quota of the tenant's plan (tenants.<id>.tenant_bytes, else quotas.tenant_bytes; 0: none).",
            |p| Some(p.tenant_bytes as f64),
        ),
        (
            "fernando_cache_plan_request_limit",
            "The request quota per window of the tenant's plan (tenants.<id>.shared_requests, else quotas.shared_requests; 0: none).",
            |p| Some(p.shared_requests as f64),
        ),
        (
            "fernando_cache_plan_rate",
            "Requests per second the tenant's plan allows in each process (0: no limit).",
            |p| Some(f64::from(p.per_process_rate)),
        ),
        (
            "fernando_cache_plan_burst",
            "The tenant's token bucket size in each process.",
            |p| Some(f64::from(p.per_process_burst)),
        ),
        (
            "fernando_cache_plan_max_ttl_seconds",
            "The longest TTL the tenant's entries get (absent: each cache type's own).",
            |p| p.max_ttl.map(|d| d.as_secs_f64()),
        ),
    ];
    for (name, help, get) in gauges {
        family(out, name, "gauge", help);
        for (tenant, plan) in &all {
            if let Some(v) = get(plan) {
                let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {v}", label(tenant));
            }
        }
    }
}

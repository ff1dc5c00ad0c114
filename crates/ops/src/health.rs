//! Health checks of the cache backend and the statistics database, as `cache_health_status` rows, plus the
//! alert events the seed asks for (low hit ratio, high memory use, a `noeviction` policy).

use std::time::Instant;

use chrono::Utc;
use fernando_cache_models::{Db, EventRecord, Severity, models::HealthRow};
use fernando_cache_store::{BackendInfo, Store};

/// Thresholds for alerts.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AlertThresholds {
    /// Alert when a window's hit ratio is below this.
    pub hit_ratio: f64,
    /// Alert when used memory exceeds this share of `maxmemory`.
    pub memory_ratio: f64,
    /// Reads a window needs before its hit ratio is judged.
    pub min_reads: u64,
    /// Alert when this region is further behind another region's stream (`regions.from`) than this, or no
    /// replicator noted anything of it (`None`: no such alert).
    pub region_lag: Option<std::time::Duration>,
}

impl AlertThresholds {
    /// The seed's targets: 80 % hit ratio, 90 % memory.
    pub fn new(hit_ratio: f64, memory_ratio: f64) -> Self {
        AlertThresholds {
            hit_ratio,
            memory_ratio,
            min_reads: 20,
            region_lag: None,
        }
    }

    /// These thresholds, and an alert when this region falls behind another's stream by more than `max`.
    #[must_use]
    pub fn region_lag(mut self, max: std::time::Duration) -> Self {
        self.region_lag = Some(max);
        self
    }
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Checks the cache backend: `PING` round trip and server facts. Returns the row and any alert events.
pub async fn check_backend(
    store: &Store,
    thresholds: &AlertThresholds,
) -> (HealthRow, Vec<EventRecord>) {
    let now = Utc::now().naive_utc();
    let admin = store.admin();
    let component = admin.backend_kind().to_owned();
    let mut events = Vec::new();
    let ping = admin.ping().await;
    let info = match &ping {
        Ok(_) => admin.backend_info().await.ok(),
        Err(_) => None,
    };
    let info = info.unwrap_or_default();
    let mut warnings = Vec::new();
    if info.eviction_policy.as_deref() == Some("noeviction") {
        let text = "maxmemory-policy is noeviction: writes fail when memory is full; use allkeys-lru for a cache";
        events.push(event(
            "alert.noeviction",
            Severity::Warning,
            None,
            None,
            text,
        ));
        warnings.push(text.to_owned());
    }
    if let Some(ratio) = memory_ratio(&info)
        && ratio > thresholds.memory_ratio
    {
        let text = format!(
            "memory use {:.0} % of maxmemory exceeds {:.0} %",
            ratio * 100.0,
            thresholds.memory_ratio * 100.0
        );
        events.push(event("alert.memory", Severity::Warning, None, None, &text));
        warnings.push(text);
    }
    if let (Some(max), true) = (thresholds.region_lag, ping.is_ok())
        && let Some(text) = region_lag(store, max).await
    {
        events.push(event(
            "alert.region_lag",
            Severity::Warning,
            None,
            None,
            &text,
        ));
        warnings.push(text);
    }
    let (status, latency, message) = match ping {
        Ok(rtt) => (
            if warnings.is_empty() && store.metrics().breaker.as_str() == "closed" {
                "healthy"
            } else {
                "degraded"
            },
            Some(i64::try_from(rtt.as_micros()).unwrap_or(i64::MAX)),
            warnings.join("; "),
        ),
        Err(e) => {
            events.push(event(
                "alert.backend_down",
                Severity::Error,
                None,
                None,
                &format!("the cache backend does not answer: {e}"),
            ));
            ("down", None, e.to_string())
        }
    };
    let row = HealthRow {
        id: 0,
        checked_at: now,
        component,
        status: status.to_owned(),
        latency_us: latency,
        used_memory: to_i64(info.used_memory),
        max_memory: to_i64(info.max_memory),
        eviction_policy: info.eviction_policy.clone(),
        evicted_keys: to_i64(info.evicted_keys),
        connected_clients: to_i64(info.connected_clients),
        message,
    };
    (row, events)
}

/// What is wrong with this region's replication from others, past `max` (design 0026): the regions it is
/// further behind than that, and those no replicator noted anything of; `None` when all is well.
async fn region_lag(store: &Store, max: std::time::Duration) -> Option<String> {
    let statuses = store.admin().regions().await.ok()?;
    let behind: Vec<String> = statuses
        .iter()
        .filter_map(|s| match s.lag {
            Some(lag) if lag > max => Some(format!("{} by {} s", s.name, lag.as_secs())),
            Some(_) => None,
            None => Some(format!("{} (no replicator has noted anything)", s.name)),
        })
        .collect();
    (!behind.is_empty()).then(|| {
        format!(
            "this region is behind other regions' replication streams past regions.max_lag ({} s): {}",
            max.as_secs_f64(),
            behind.join(", ")
        )
    })
}

fn memory_ratio(info: &BackendInfo) -> Option<f64> {
    match (info.used_memory, info.max_memory) {
        (Some(used), Some(max)) if max > 0 => Some(used as f64 / max as f64),
        _ => None,
    }
}

/// The row for a database that could not be opened.
pub fn database_down(message: &str) -> HealthRow {
    HealthRow {
        id: 0,
        checked_at: Utc::now().naive_utc(),
        component: "database".to_owned(),
        status: "down".to_owned(),
        latency_us: None,
        used_memory: None,
        max_memory: None,
        eviction_policy: None,
        evicted_keys: None,
        connected_clients: None,
        message: message.to_owned(),
    }
}

/// Checks the statistics database (reads its migration state). Blocking: call it off the async runtime.
pub fn check_database(db: &mut Db) -> HealthRow {
    let start = Instant::now();
    let result = fernando_cache_models::status(db);
    let (status, message) = match &result {
        Ok(st) if st.pending.is_empty() => ("healthy", String::new()),
        Ok(st) => (
            "degraded",
            format!("{} migrations pending", st.pending.len()),
        ),
        Err(e) => ("down", e.to_string()),
    };
    HealthRow {
        id: 0,
        checked_at: Utc::now().naive_utc(),
        component: "database".to_owned(),
        status: status.to_owned(),
        latency_us: Some(i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX)),
        used_memory: None,
        max_memory: None,
        eviction_policy: None,
        evicted_keys: None,
        connected_clients: None,
        message,
    }
}

/// An alert event when a window's hit ratio is below the threshold (and enough reads happened to judge).
pub fn hit_ratio_alert(
    tenant: &str,
    cache_type: &str,
    hits: u64,
    misses: u64,
    thresholds: &AlertThresholds,
) -> Option<EventRecord> {
    let reads = hits + misses;
    if reads < thresholds.min_reads {
        return None;
    }
    let ratio = hits as f64 / reads as f64;
    (ratio < thresholds.hit_ratio).then(|| {
        event(
            "alert.hit_ratio",
            Severity::Warning,
            Some(tenant),
            Some(cache_type),
            &format!(
                "hit ratio {:.1} % over {reads} reads is below the {:.0} % target",
                ratio * 100.0,
                thresholds.hit_ratio * 100.0
            ),
        )
    })
}

/// An event record stamped now.
pub fn event(
    event_type: &str,
    severity: Severity,
    tenant: Option<&str>,
    cache_type: Option<&str>,
    details: &str,
) -> EventRecord {
    EventRecord {
        occurred_at: Utc::now().naive_utc(),
        event_type: event_type.to_owned(),
        severity: severity.as_str().to_owned(),
        tenant_id: tenant.map(str::to_owned),
        cache_type: cache_type.map(str::to_owned),
        details: details.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_alerts_need_enough_reads_and_a_low_ratio() {
        let t = AlertThresholds::new(0.8, 0.9);
        assert!(
            hit_ratio_alert("a", "session", 1, 5, &t).is_none(),
            "too few reads"
        );
        assert!(hit_ratio_alert("a", "session", 90, 10, &t).is_none());
        let e = hit_ratio_alert("a", "session", 50, 50, &t).unwrap();
        assert_eq!(e.event_type, "alert.hit_ratio");
        assert!(e.details.contains("50.0 %"), "{}", e.details);
    }
}

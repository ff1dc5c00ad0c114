//! Alert conditions announced once: an alert is logged, recorded in the event log and sent to the configured
//! webhook when its condition *starts*, not at every check while it lasts; when the condition clears, an
//! `alert.resolved` event is recorded and logged (issue 14: memory above threshold, `noeviction`, Redis or the
//! database down, a hit ratio below target over a window).

use std::{collections::HashMap, time::Duration};

use fernando_cache_models::{EventRecord, Severity};

use crate::health;

/// Where alerts are posted: a URL that receives one JSON object per alert that starts.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    /// Posts to `url`, each request bounded by `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Webhook {
            url: url.into(),
            client: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }

    /// Sends `alert` in the background; a failure is logged (the alert is in the event log either way).
    fn send(&self, alert: &EventRecord) {
        let body = serde_json::json!({
            "alert": alert.event_type,
            "severity": alert.severity,
            "tenant": alert.tenant_id,
            "cache_type": alert.cache_type,
            "details": alert.details,
            "at": alert.occurred_at.and_utc().to_rfc3339(),
        });
        let (client, url) = (self.client.clone(), self.url.clone());
        tokio::spawn(async move {
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), "the alert webhook refused an alert"),
                Err(e) => tracing::warn!(error = %e, "the alert webhook could not be reached"),
            }
        });
    }
}

/// The alert conditions active now, each keyed by its type, tenant and cache type.
#[derive(Debug, Default)]
pub struct AlertGate {
    active: HashMap<String, EventRecord>,
    webhook: Option<Webhook>,
}

fn key(event_type: &str, tenant: Option<&str>, cache_type: Option<&str>) -> String {
    format!(
        "{event_type}\u{1f}{}\u{1f}{}",
        tenant.unwrap_or(""),
        cache_type.unwrap_or("")
    )
}

impl AlertGate {
    /// A gate that also posts each alert that starts to `webhook`.
    pub fn new(webhook: Option<Webhook>) -> Self {
        AlertGate {
            active: HashMap::new(),
            webhook,
        }
    }

    /// The condition of `alert` holds now. Returns the event to record if it has just started (it is also
    /// logged and sent to the webhook); `None` while it lasts.
    pub fn raise(&mut self, alert: EventRecord) -> Option<EventRecord> {
        let k = key(
            &alert.event_type,
            alert.tenant_id.as_deref(),
            alert.cache_type.as_deref(),
        );
        if self.active.contains_key(&k) {
            return None;
        }
        tracing::warn!(
            alert = alert.event_type,
            tenant = alert.tenant_id.as_deref().unwrap_or(""),
            cache_type = alert.cache_type.as_deref().unwrap_or(""),
            details = alert.details,
            "alert"
        );
        if let Some(w) = &self.webhook {
            w.send(&alert);
        }
        self.active.insert(k, alert.clone());
        Some(alert)
    }

    /// The condition `event_type` (of `tenant` and `cache_type`) does not hold now. Returns an
    /// `alert.resolved` event to record if it was active.
    pub fn clear(
        &mut self,
        event_type: &str,
        tenant: Option<&str>,
        cache_type: Option<&str>,
    ) -> Option<EventRecord> {
        let started = self.active.remove(&key(event_type, tenant, cache_type))?;
        tracing::info!(alert = event_type, "alert resolved");
        Some(health::event(
            "alert.resolved",
            Severity::Info,
            tenant,
            cache_type,
            &format!(
                "{event_type} resolved (since {})",
                started.occurred_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ))
    }
}

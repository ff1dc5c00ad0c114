//! The recorder's upkeep between flushes: health checks with their alerts, and pruning by age.

use chrono::Utc;
use fernando_cache_models::{Db, Severity};

use super::{State, queue_event};
use crate::{health, health::AlertThresholds};

/// Health rows kept while the database is unreachable.
const MAX_HEALTH_ROWS: usize = 1_000;

impl State {
    /// Removes rows past their retention age (the seed's background cleanup); a failure is logged and retried at
    /// the next tick.
    pub(super) async fn prune(&mut self) {
        let Some((retention, _)) = self.options.retention else {
            return;
        };
        let url = self.options.database_url.clone();
        let now = Utc::now().naive_utc();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut db = Db::open(&url)?;
            fernando_cache_models::prune(&mut db, &retention, now)
        })
        .await;
        match outcome {
            Ok(Ok(p)) => tracing::info!(
                statistics = p.statistics,
                performance = p.performance,
                health = p.health,
                events = p.events,
                "old statistics rows removed"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "statistics retention failed; retried at the next tick")
            }
            Err(e) => tracing::warn!(error = %e, "statistics retention task failed"),
        }
    }

    /// Checks the backend and the database; the rows are written with the next flush.
    pub(super) async fn check_health(&mut self) {
        let thresholds = self
            .options
            .alerts
            .unwrap_or_else(|| AlertThresholds::new(0.0, 1.0));
        let (row, mut events) = health::check_backend(&self.store, &thresholds).await;
        self.health.push(row);
        let url = self.options.database_url.clone();
        let db_row = tokio::task::spawn_blocking(move || match Db::open(&url) {
            Ok(mut db) => health::check_database(&mut db),
            Err(e) => health::database_down(&e.to_string()),
        })
        .await;
        if let Ok(row) = db_row {
            if row.status == "down" {
                events.push(health::event(
                    "alert.database_down",
                    Severity::Error,
                    None,
                    None,
                    &format!("the statistics database does not answer: {}", row.message),
                ));
            }
            self.health.push(row);
        }
        // Each condition is announced when it starts and resolved when a check no longer sees it.
        for kind in [
            "alert.memory",
            "alert.noeviction",
            "alert.backend_down",
            "alert.database_down",
        ] {
            let announced = match events.iter().position(|e| e.event_type == kind) {
                Some(i) => self.alerts.raise(events.swap_remove(i)),
                None => self.alerts.clear(kind, None, None),
            };
            if let Some(event) = announced {
                queue_event(&self.shared, event);
            }
        }
        for other in events {
            queue_event(&self.shared, other);
        }
        if self.health.len() > MAX_HEALTH_ROWS {
            let excess = self.health.len() - MAX_HEALTH_ROWS;
            self.health.drain(..excess);
        }
    }
}

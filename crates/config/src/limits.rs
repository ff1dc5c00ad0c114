//! `[server.limits]`: what bounds `serve` and `proxy` when they face the open network — timeouts, connections,
//! bodies, engine work and the per-tenant request rate each process enforces on its own. (The request budget
//! every replica shares is `quotas.shared_requests`, in `protection.rs`.)

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, duration};

/// `[server.limits]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Longest a client may take to send a request's headers; also how long an idle keep-alive connection is
    /// held waiting for its next request (hyper's header timer covers both). Slow clients are disconnected.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// Longest a request may take end to end (a 408 or 504 after it).
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// At SIGTERM, how long requests in flight may still finish before the server exits anyway.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Most connections open at once; further ones are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Largest body of a JSON route (events, invalidations), in bytes. Documents are bounded by
    /// `processor.max_document_bytes`.
    pub json_body_bytes: usize,
    /// Largest response the HTTP cache layer stores, in bytes; larger ones stream through unstored.
    pub max_cached_response_bytes: u64,
    /// Documents processed (OCR, extraction) at once. A slot is held until the work it admitted has ended, even
    /// when the client hangs up.
    pub engine_concurrency: usize,
    /// Documents waiting for an engine slot, of which one tenant's at most half (rounded up); beyond either, an
    /// upload is answered 503 with `Retry-After`.
    pub engine_queue: usize,
    /// Requests per second each tenant may make to this process (a token bucket in memory: every replica
    /// counts on its own, and no backend call is spent on it); 0 turns the limit off. In a fixed-tenant `proxy`
    /// the bucket is per client address.
    pub per_process_rate: u32,
    /// How many requests a tenant may make at once above `per_process_rate` (the bucket's size); at least 1
    /// while the rate is on.
    pub per_process_burst: u32,
}

impl ServerLimits {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        for (key, d, most) in [
            (
                "server.limits.header_read_timeout",
                self.header_read_timeout,
                10 * MINUTE,
            ),
            (
                "server.limits.body_read_timeout",
                self.body_read_timeout,
                HOUR,
            ),
            (
                "server.limits.request_timeout",
                self.request_timeout,
                24 * HOUR,
            ),
            ("server.limits.drain_timeout", self.drain_timeout, HOUR),
        ] {
            if d.is_zero() || d > most {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{} is outside what it may be: longer than zero, at most {}",
                        duration::format(d),
                        duration::format(most)
                    ),
                ));
            }
        }
        for (key, n, most) in [
            (
                "server.limits.max_connections",
                self.max_connections,
                1 << 20,
            ),
            (
                "server.limits.json_body_bytes",
                self.json_body_bytes,
                64 << 20,
            ),
            (
                "server.limits.engine_concurrency",
                self.engine_concurrency,
                1024,
            ),
            ("server.limits.engine_queue", self.engine_queue, 1 << 20),
        ] {
            if n == 0 && key != "server.limits.engine_queue" {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
            if n > most {
                return Err(ConfigError::invalid(
                    key,
                    format!("{n} is more than the {most} it may be"),
                ));
            }
        }
        if self.max_cached_response_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.limits.max_cached_response_bytes",
                "must be greater than zero",
            ));
        }
        if self.per_process_rate > 0 && self.per_process_burst == 0 {
            return Err(ConfigError::invalid(
                "server.limits.per_process_burst",
                "must be at least 1 when per_process_rate is set",
            ));
        }
        Ok(())
    }
}

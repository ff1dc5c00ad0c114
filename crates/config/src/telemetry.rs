//! `[telemetry]`: OpenTelemetry export over OTLP/HTTP. Off unless `otlp_endpoint` is set — and then only this
//! setting turns it on: the SDK's own `OTEL_EXPORTER_OTLP_ENDPOINT` alone never starts an export.

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, duration};

/// `[telemetry]`: where traces and metrics go, and how much of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base address, for example `http://127.0.0.1:4318`; traces go to
    /// `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics` (protobuf). Empty: nothing is exported and
    /// nothing of the exporter is built.
    pub otlp_endpoint: String,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Which spans are exported, as a tracing filter (`info`, `info,fernando_cache_store=debug`). The request
    /// spans of `serve`/`proxy` and the document spans are at `info`; the store's per-operation spans, with
    /// tenant and cache type, at `debug` under `fernando_cache_store` (exported only inside another exported
    /// span, never as roots).
    pub spans: String,
    /// The fraction of new traces recorded, 0 to 1. A request that arrives with a sampled `traceparent` is
    /// recorded whatever the ratio (parent-based), so a caller's trace is never cut.
    pub sample_ratio: f64,
    /// How often the metrics are exported.
    #[serde(with = "duration")]
    pub metrics_interval: Duration,
    /// How long one export may take before it is given up (the batch is dropped, never retried forever).
    #[serde(with = "duration")]
    pub export_timeout: Duration,
}

impl TelemetrySettings {
    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }

    /// The endpoint of one signal (`traces`, `metrics`), when export is on.
    pub fn signal_endpoint(&self, signal: &str) -> Option<String> {
        self.enabled().then(|| {
            format!(
                "{}/v1/{signal}",
                self.otlp_endpoint.trim().trim_end_matches('/')
            )
        })
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled() && !crate::http_url(self.otlp_endpoint.trim()) {
            return Err(ConfigError::invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// address with a host",
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::invalid(
                "telemetry.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        if self.metrics_interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "telemetry.metrics_interval",
                "must be at least 1s",
            ));
        }
        if self.export_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "telemetry.export_timeout",
                "must be more than 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Environment, LoadOptions, Settings};

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, crate::ConfigError> {
        Settings::load(
            LoadOptions::isolated(Environment::Test).set_all(pairs.iter().map(|(k, v)| (*k, *v))),
        )
    }

    #[test]
    fn off_by_default_and_each_signal_under_the_base_address() {
        let s = load(&[]).unwrap();
        assert!(!s.telemetry.enabled());
        assert_eq!(s.telemetry.signal_endpoint("traces"), None);
        let s = load(&[("telemetry.otlp_endpoint", "http://collector:4318/")]).unwrap();
        assert_eq!(
            s.telemetry.signal_endpoint("traces").as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(s.telemetry.spans, "info");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("telemetry.otlp_endpoint", "collector:4318"),
            ("telemetry.otlp_endpoint", "ftp://collector"),
            ("telemetry.sample_ratio", "1.5"),
            ("telemetry.metrics_interval", "100ms"),
            ("telemetry.export_timeout", "0s"),
            ("telemetry.service_name", " "),
        ] {
            let e = load(&[(key, value)]).unwrap_err().to_string();
            assert!(e.contains(key), "{key}={value}: {e}");
        }
    }
}

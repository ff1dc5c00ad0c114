//! Every key that moved is refused with its new name — as an override, a file's key or an environment variable —
//! never ignored and never reported as merely unknown.

use fernando_cache_config::{ConfigError, Environment, Settings};

use crate::{load, options, with_variables};

/// `(old key, a value, new key)` for every setting that moved.
const MOVED: &[(&str, &str, &str)] = &[
    ("ttl.ocr_result", "3d", "types.ocr_result.ttl"),
    ("ttl.invoice", "1h", "types.invoice.ttl"),
    (
        "single_flight.ocr_result.mode",
        "process",
        "types.ocr_result.single_flight",
    ),
    (
        "single_flight.default.mode",
        "process",
        "types.default.single_flight",
    ),
    (
        "single_flight.ocr_result.lease_ttl",
        "5s",
        "types.ocr_result.lease_ttl",
    ),
    (
        "single_flight.default.max_wait",
        "1m",
        "types.default.max_wait",
    ),
    ("tiers.session.l1", "true", "types.session.l1"),
    ("tiers.session.l1_max_ttl", "1m", "types.session.l1_max_ttl"),
    ("tiers.default.max_stale", "1h", "types.default.max_stale"),
    (
        "tiers.session.fail_safe_throttle",
        "1s",
        "types.session.fail_safe_throttle",
    ),
    (
        "tiers.session.soft_timeout",
        "1s",
        "types.session.soft_timeout",
    ),
    (
        "tiers.session.hard_timeout",
        "2s",
        "types.session.hard_timeout",
    ),
    (
        "tiers.session.refresh_ahead",
        "0.5",
        "types.session.refresh_ahead",
    ),
    (
        "encryption.cache_types",
        "ocr_result",
        "types.ocr_result.sealed = true",
    ),
    ("server.response_ttl", "5m", "types.api_response.ttl"),
    ("processor.warm_min_hits", "3", "warming.min_hits"),
    ("processor.warm_interval", "1m", "warming.interval"),
    (
        "server.limits.tenant_requests_per_second",
        "10",
        "server.limits.per_process_rate",
    ),
    (
        "server.limits.tenant_burst",
        "10",
        "server.limits.per_process_burst",
    ),
    ("quotas.tenant_requests", "10", "quotas.shared_requests"),
    ("quotas.request_window", "1h", "quotas.shared_window"),
    ("redis.command_timeout", "200ms", "command_timeout"),
];

#[test]
fn every_old_key_names_its_new_key() {
    for (old, value, new) in MOVED {
        let err = load(Environment::Test, &[(*old, *value)]).expect_err(old);
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("`{old}` is now `{new}`")),
            "{old}: {shown}"
        );
        assert!(
            matches!(&err, ConfigError::Moved { key, now, .. } if key == old && now == new),
            "{old}: {err:?}"
        );
    }
}

#[test]
fn several_sealed_types_are_each_named() {
    let e = load(
        Environment::Test,
        &[("encryption.cache_types", "ocr_result,llm_extraction")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("types.ocr_result.sealed = true, types.llm_extraction.sealed = true"),
        "{e}"
    );
}

#[test]
fn an_old_environment_variable_names_the_one_to_set() {
    for (var, value, new, new_var) in [
        (
            "FERNANDO_CACHE__TTL__OCR_RESULT",
            "3d",
            "`ttl.ocr_result` is now `types.ocr_result.ttl`",
            "FERNANDO_CACHE__TYPES__OCR_RESULT__TTL",
        ),
        (
            "FERNANDO_CACHE__SINGLE_FLIGHT__OCR_RESULT__LEASE_TTL",
            "5s",
            "`single_flight.ocr_result.lease_ttl` is now `types.ocr_result.lease_ttl`",
            "FERNANDO_CACHE__TYPES__OCR_RESULT__LEASE_TTL",
        ),
        (
            "FERNANDO_CACHE__ENCRYPTION__CACHE_TYPES",
            "session",
            "`encryption.cache_types` is now `types.session.sealed = true`",
            "FERNANDO_CACHE__TYPES__SESSION__SEALED=true",
        ),
        (
            "FERNANDO_CACHE__REDIS__COMMAND_TIMEOUT",
            "200ms",
            "`redis.command_timeout` is now `command_timeout`",
            "FERNANDO_CACHE__COMMAND_TIMEOUT",
        ),
        (
            "FERNANDO_CACHE__PROCESSOR__WARM_INTERVAL",
            "1s",
            "`processor.warm_interval` is now `warming.interval`",
            "FERNANDO_CACHE__WARMING__INTERVAL",
        ),
    ] {
        let e = with_variables(Environment::Test, &[(var, value)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(new), "{var}: {e}");
        assert!(e.contains(var) && e.contains(new_var), "{var}: {e}");
    }
}

#[test]
fn an_old_key_in_a_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.toml"),
        "[tiers.session]\nl1 = true\n",
    )
    .unwrap();
    let e = Settings::load(options(Environment::Test).config_dir(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`tiers.session.l1` is now `types.session.l1`") && e.contains("local.toml"),
        "{e}"
    );
    // A field misspelt under a table that moved whole is still sent to the new table.
    std::fs::write(
        dir.path().join("local.toml"),
        "[tiers.session]\nl2 = true\n",
    )
    .unwrap();
    let e = Settings::load(options(Environment::Test).config_dir(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`tiers.session.l2` is now `types.session`"),
        "{e}"
    );
}

//! Settings that moved (issue 29): a setting given under its old name — in a file, as a `FERNANDO_CACHE__…`
//! variable or as an override — is refused with its new name, rather than failing as an unknown key or, worse,
//! being taken somewhere it no longer means anything. The list is the one record of every rename; a test gives
//! each old key and expects its new one.

use config::{Map, Value, ValueKind};

use crate::{
    ConfigError,
    origin::{ENV_ORIGIN, env_var},
};

/// `(old, new)` keys; `*` stands for one segment — a cache type's name, or `default` — the same in both.
const MOVED: &[(&str, &str)] = &[
    ("ttl.*", "types.*.ttl"),
    ("single_flight.*.mode", "types.*.single_flight"),
    ("single_flight.*.lease_ttl", "types.*.lease_ttl"),
    ("single_flight.*.max_wait", "types.*.max_wait"),
    ("tiers.*.l1", "types.*.l1"),
    ("tiers.*.l1_max_ttl", "types.*.l1_max_ttl"),
    ("tiers.*.max_stale", "types.*.max_stale"),
    ("tiers.*.fail_safe_throttle", "types.*.fail_safe_throttle"),
    ("tiers.*.soft_timeout", "types.*.soft_timeout"),
    ("tiers.*.hard_timeout", "types.*.hard_timeout"),
    ("tiers.*.refresh_ahead", "types.*.refresh_ahead"),
    // The field kept its name in the table but not in `[types]`.
    ("types.*.mode", "types.*.single_flight"),
    ("server.response_ttl", "types.api_response.ttl"),
    ("processor.warm_min_hits", "warming.min_hits"),
    ("processor.warm_interval", "warming.interval"),
    (
        "server.limits.tenant_requests_per_second",
        "server.limits.per_process_rate",
    ),
    (
        "server.limits.tenant_burst",
        "server.limits.per_process_burst",
    ),
    ("quotas.tenant_requests", "quotas.shared_requests"),
    ("quotas.request_window", "quotas.shared_window"),
    ("redis.command_timeout", "command_timeout"),
];

/// Tables that moved whole: a key under one of them that [`MOVED`] does not name (a misspelt field) is still
/// sent to the table's new home. `<name>` is the key's second segment.
const MOVED_TABLES: &[(&str, &str)] = &[
    ("ttl", "types.<name>.ttl"),
    ("single_flight", "types.<name>"),
    ("tiers", "types.<name>"),
];

/// The list of sealed types that became a field of each type's table.
const CACHE_TYPES: &str = "encryption.cache_types";

/// Refuses the first moved key of the merged tree (in key order), naming its new key and where it was given.
pub(crate) fn check(tree: &Map<String, Value>) -> Result<(), ConfigError> {
    let mut all = Vec::new();
    leaves("", tree, &mut all);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in all {
        if let Some(now) = new_home(&key, value) {
            let detail = detail(&key, &now, value);
            return Err(ConfigError::Moved { key, now, detail });
        }
    }
    Ok(())
}

/// Every value that is not a table (and every empty table), with its dotted key.
fn leaves<'a>(prefix: &str, table: &'a Map<String, Value>, out: &mut Vec<(String, &'a Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match &v.kind {
            ValueKind::Table(t) if !t.is_empty() => leaves(&key, t, out),
            _ => out.push((key, v)),
        }
    }
}

/// Where `key` lives now, if it moved.
fn new_home(key: &str, value: &Value) -> Option<String> {
    if key == CACHE_TYPES {
        let sealed: Vec<String> = type_names(value)
            .iter()
            .map(|n| format!("types.{n}.sealed = true"))
            .collect();
        return Some(if sealed.is_empty() {
            "types.<name>.sealed = true".to_owned()
        } else {
            sealed.join(", ")
        });
    }
    let segments: Vec<&str> = key.split('.').collect();
    for (old, new) in MOVED {
        let pattern: Vec<&str> = old.split('.').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut name = None;
        let matches = pattern.iter().zip(&segments).all(|(p, s)| {
            if *p == "*" {
                name = Some(*s);
                true
            } else {
                p == s
            }
        });
        if matches {
            return Some(match name {
                Some(n) => new.replace('*', n),
                None => (*new).to_owned(),
            });
        }
    }
    let (first, name) = (segments[0], segments.get(1));
    MOVED_TABLES
        .iter()
        .find(|(table, _)| *table == first)
        .map(|(_, new)| match name {
            Some(n) => new.replace("<name>", n),
            None => (*new).to_owned(),
        })
}

/// The cache type names of an `encryption.cache_types` value: a list, or one comma-separated string.
fn type_names(value: &Value) -> Vec<String> {
    match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .filter_map(|v| v.clone().into_string().ok())
            .collect(),
        ValueKind::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Where the old key was given: for an environment variable, the variable and the one to set instead; for a
/// file, its path. Empty for the embedded profiles and explicit overrides, whose key the message names already.
fn detail(key: &str, now: &str, value: &Value) -> String {
    match value.origin() {
        Some(ENV_ORIGIN) => {
            let instead: Vec<String> = now
                .split(", ")
                .map(|part| match part.split_once(" = ") {
                    Some((k, v)) => format!("{}={v}", env_var(k)),
                    None => env_var(part),
                })
                .collect();
            format!(
                " (given as {}; set {} instead)",
                env_var(key),
                instead.join(" and ")
            )
        }
        Some(file) => format!(" (in {file})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_names_a_new_key_per_segment() {
        assert_eq!(
            new_home("ttl.ocr_result", &Value::from("1h")).as_deref(),
            Some("types.ocr_result.ttl")
        );
        assert_eq!(
            new_home("single_flight.default.mode", &Value::from("process")).as_deref(),
            Some("types.default.single_flight")
        );
        assert_eq!(
            new_home("tiers.session.nonsense", &Value::from(true)).as_deref(),
            Some("types.session")
        );
        assert_eq!(new_home("types.session.ttl", &Value::from("1h")), None);
        assert_eq!(
            new_home(CACHE_TYPES, &Value::from("ocr_result, session")).as_deref(),
            Some("types.ocr_result.sealed = true, types.session.sealed = true")
        );
        assert_eq!(
            env_var("types.ocr_result.ttl"),
            "FERNANDO_CACHE__TYPES__OCR_RESULT__TTL"
        );
    }
}

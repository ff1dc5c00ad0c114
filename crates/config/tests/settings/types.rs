//! `[types.<name>]`: each field overrides `types.default` for one type, `types.default` fills in the rest and the
//! types not listed; `ttl` and `sealed` are never inherited; every field is checked under its own key.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, FlightMode};

use crate::{load, with_variables};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_listed_type_overrides_default_field_by_field() {
    let s = load(Environment::Production, &[]).unwrap();
    let ocr = s.types.get(&CacheType::OCR_RESULT);
    assert_eq!(ocr.ttl, Some(secs(7 * 24 * 3600)));
    assert_eq!(ocr.flight.mode, FlightMode::Distributed);
    assert_eq!(ocr.tier.max_stale, secs(7 * 24 * 3600));
    // Not in its table: from `types.default`.
    assert_eq!(ocr.flight.lease_ttl, secs(10));
    assert_eq!(ocr.flight.max_wait, secs(120));
    assert_eq!(ocr.tier.fail_safe_throttle, secs(30));
    assert_eq!(ocr.tier.soft_timeout, None);
    assert!(!ocr.tier.l1);
    let llm = s.types.get(&CacheType::LLM_EXTRACTION);
    assert_eq!(llm.tier.soft_timeout, Some(secs(20)));
    let session = s.types.get(&CacheType::SESSION);
    assert_eq!(session.flight.mode, FlightMode::Process);
    assert_eq!(session.tier.max_stale, Duration::ZERO);
}

#[test]
fn default_fills_in_what_a_type_leaves_out_and_the_types_not_listed() {
    let s = load(
        Environment::Test,
        &[
            ("types.default.max_stale", "1h"),
            ("types.default.lease_ttl", "5s"),
            ("types.invoice.ttl", "2h"),
            ("types.invoice.l1", "true"),
        ],
    )
    .unwrap();
    // A listed type without its own max_stale takes the new default; ocr_result keeps its own.
    assert_eq!(s.types.get(&CacheType::SESSION).tier.max_stale, secs(3600));
    assert_eq!(
        s.types.get(&CacheType::OCR_RESULT).tier.max_stale,
        secs(7 * 24 * 3600)
    );
    let invoice = CacheType::new("invoice").unwrap();
    let p = s.types.get(&invoice);
    assert_eq!(p.ttl, Some(secs(2 * 3600)));
    assert!(p.tier.l1);
    assert_eq!(p.flight.lease_ttl, secs(5));
    assert!(s.types.listed().any(|t| *t == invoice));
    assert!(s.types.tiers().any_l1());
    // Not listed: every field from `default`, and no TTL.
    let other = s.types.get(&CacheType::new("unlisted").unwrap());
    assert_eq!(other.ttl, None);
    assert_eq!(other.tier.max_stale, secs(3600));
    assert_eq!(other.flight.mode, FlightMode::Process);
    assert!(!other.sealed);
    // The views the store keeps say the same.
    assert_eq!(s.types.ttl().get(&invoice), Some(secs(2 * 3600)));
    assert_eq!(s.types.single_flight().get(&invoice).lease_ttl, secs(5));
}

#[test]
fn an_environment_variable_sets_one_field_of_one_type() {
    let s = with_variables(
        Environment::Test,
        &[
            ("FERNANDO_CACHE__TYPES__SESSION__TTL", "2h"),
            (
                "FERNANDO_CACHE__TYPES__SESSION__SINGLE_FLIGHT",
                "distributed",
            ),
            ("FERNANDO_CACHE__TYPES__SESSION__REFRESH_AHEAD", "0.5"),
        ],
    )
    .unwrap();
    let session = s.types.get(&CacheType::SESSION);
    assert_eq!(session.ttl, Some(secs(2 * 3600)));
    assert_eq!(session.flight.mode, FlightMode::Distributed);
    assert_eq!(session.tier.refresh_ahead, Some(0.5));
}

#[test]
fn a_type_is_sealed_by_its_own_table_or_as_document_data() {
    let s = load(Environment::Test, &[("types.session.sealed", "true")]).unwrap();
    assert!(s.seals(&CacheType::SESSION));
    assert!(s.types.get(&CacheType::SESSION).sealed);
    assert!(!s.seals(&CacheType::OCR_RESULT));
    assert_eq!(s.sealed_types(), vec![CacheType::SESSION]);
    let s = load(
        Environment::Test,
        &[
            ("types.session.sealed", "true"),
            ("encryption.document_data", "true"),
        ],
    )
    .unwrap();
    let mut expected = CacheType::DOCUMENT_DATA.to_vec();
    expected.push(CacheType::SESSION);
    expected.sort();
    assert_eq!(s.sealed_types(), expected);
    let e = load(
        Environment::Test,
        &[
            ("types.session.sealed", "true"),
            ("encryption.keys_env", ""),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("encryption.keys_env"), "{e}");
}

#[test]
fn ttl_and_sealed_are_never_inherited() {
    for (key, value) in [
        ("types.default.ttl", "1h"),
        ("types.default.sealed", "true"),
    ] {
        let e = load(Environment::Test, &[(key, value)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn bad_fields_name_their_type_and_field() {
    for (key, value, needle) in [
        ("types.session.ttl", "0s", "types.session.ttl"),
        ("types.session.ttl", "400d", "types.session.ttl"),
        ("types.invoice.ttl", "soon", "types.invoice.ttl"),
        (
            "types.ocr_result.lease_ttl",
            "10ms",
            "types.ocr_result.lease_ttl",
        ),
        ("types.default.max_wait", "2d", "types.default.max_wait"),
        ("types.session.l1_max_ttl", "0s", "types.session.l1_max_ttl"),
        ("types.session.max_stale", "400d", "types.session.max_stale"),
        (
            "types.session.fail_safe_throttle",
            "0s",
            "types.session.fail_safe_throttle",
        ),
        (
            "types.session.hard_timeout",
            "2d",
            "types.session.hard_timeout",
        ),
        (
            "types.session.refresh_ahead",
            "1.5",
            "types.session.refresh_ahead",
        ),
        ("types.session.single_flight", "everywhere", "everywhere"),
        ("types.Bad-Name.ttl", "1h", "Bad-Name"),
        ("types.session.colour", "blue", "colour"),
    ] {
        let e = load(Environment::Test, &[(key, value)])
            .expect_err(key)
            .to_string();
        assert!(e.contains(needle), "{key}={value}: {e}");
    }
    // soft_timeout must be shorter than hard_timeout, wherever either is set.
    let e = load(
        Environment::Test,
        &[
            ("types.default.hard_timeout", "2s"),
            ("types.llm_extraction.hard_timeout", "10s"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("types.llm_extraction.soft_timeout"), "{e}");
}

/// Issue 30: the names a user may type are the built-in types and the listed ones; any other is refused with the
/// known ones and the nearest.
#[test]
fn only_built_in_and_listed_types_resolve() {
    let s = load(Environment::Test, &[("types.invoice_v2.ttl", "1h")]).unwrap();
    assert_eq!(
        s.types.resolve("session").unwrap(),
        CacheType::SESSION,
        "a built-in type"
    );
    assert_eq!(
        s.types.resolve("invoice_v2").unwrap().as_str(),
        "invoice_v2"
    );
    let known: Vec<String> = s.types.known().iter().map(ToString::to_string).collect();
    assert_eq!(known.len(), 9, "{known:?}");
    assert!(known.windows(2).all(|w| w[0] < w[1]), "sorted: {known:?}");
    let e = s.types.resolve("invoice_2").unwrap_err();
    assert_eq!(e.suggestion(), Some("invoice_v2"));
    assert_eq!(e.known(), known.as_slice());
    let e = s.types.resolve("sessoin").unwrap_err();
    assert_eq!(e.suggestion(), Some("session"));
    assert!(
        e.to_string().starts_with(
            "unknown cache type \"sessoin\" (did you mean \"session\"?); known cache types: api_response, \
             billing,"
        ),
        "{e}"
    );
    // Not configured here: unknown, even though it is a valid name.
    let plain = load(Environment::Test, &[]).unwrap();
    assert!(plain.types.resolve("invoice_v2").is_err());
}

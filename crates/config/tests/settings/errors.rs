//! Settings errors in our own words (issue 30): every error names the key; a value from an environment variable
//! is named with the variable and the value given (never a secret's); a name that is not one of a setting's
//! values lists the valid ones and suggests the nearest; a misspelt key suggests the setting meant.

use fernando_cache_config::{ConfigError, Environment, Settings};

use crate::{load, options, with_variables};

/// The error of loading the development profile with `vars` as its only environment variables.
fn from_variables(vars: &[(&str, &str)]) -> String {
    with_variables(Environment::Development, vars)
        .expect_err("an invalid variable")
        .to_string()
}

fn assert_says(error: &str, needles: &[&str]) {
    for needle in needles {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    // Nothing as Rust sees it: no type names, no serde wording.
    for internal in [
        "enum ",
        "variant constructor",
        "BackendKind",
        "invalid type",
        "unknown field",
    ] {
        assert!(
            !error.contains(internal),
            "{internal:?} leaked into: {error}"
        );
    }
}

#[test]
fn a_misspelt_backend_names_the_variable_the_value_the_valid_ones_and_the_nearest() {
    let e = from_variables(&[("FERNANDO_CACHE__BACKEND", "reddis")]);
    assert_says(
        &e,
        &[
            "`backend`",
            "FERNANDO_CACHE__BACKEND=reddis",
            "memory, disk, redis",
            r#"did you mean "redis"?"#,
        ],
    );
}

#[test]
fn every_named_value_lists_its_names_and_suggests_the_nearest() {
    for (var, value, names, nearest) in [
        (
            "FERNANDO_CACHE__REDIS__MODE",
            "clustr",
            "standalone, cluster, sentinel",
            "cluster",
        ),
        (
            "FERNANDO_CACHE__TYPES__SESSION__SINGLE_FLIGHT",
            "proces",
            "process, distributed",
            "process",
        ),
        (
            "FERNANDO_CACHE__PROCESSOR__EXTRACTOR",
            "openia",
            "rules, openai",
            "openai",
        ),
        (
            "FERNANDO_CACHE__ENCRYPTION__ALGORITHM",
            "aes-256-gmc",
            "aegis-256x4, aes-256-gcm",
            "aes-256-gcm",
        ),
    ] {
        let e = from_variables(&[(var, value)]);
        let (given, hint) = (
            format!("{var}={value}"),
            format!("did you mean {nearest:?}?"),
        );
        assert_says(&e, &[given.as_str(), names, hint.as_str()]);
    }
    // A name far from every valid one gets the list and no guess.
    let e = from_variables(&[("FERNANDO_CACHE__BACKEND", "memcached")]);
    assert_says(&e, &["memory, disk, redis"]);
    assert!(!e.contains("did you mean"), "{e}");
    // Case is not a mistake.
    let s = with_variables(
        Environment::Development,
        &[("FERNANDO_CACHE__BACKEND", "Memory")],
    )
    .unwrap();
    assert_eq!(s.backend, fernando_cache_config::BackendKind::Memory);
}

#[test]
fn a_value_of_the_wrong_kind_names_the_variable_and_what_the_setting_takes() {
    let e = from_variables(&[("FERNANDO_CACHE__COMMAND_TIMEOUT", "abc")]);
    assert_says(
        &e,
        &[
            "`command_timeout`",
            "FERNANDO_CACHE__COMMAND_TIMEOUT=abc",
            "250ms",
        ],
    );
    let e = from_variables(&[("FERNANDO_CACHE__COMPRESSION__LEVEL", "abc")]);
    assert_says(
        &e,
        &[
            "`compression.level`",
            "must be a whole number",
            "FERNANDO_CACHE__COMPRESSION__LEVEL=abc",
        ],
    );
    let e = from_variables(&[("FERNANDO_CACHE__REDIS__TLS", "maybe")]);
    assert_says(
        &e,
        &[
            "`redis.tls`",
            "true or false",
            "FERNANDO_CACHE__REDIS__TLS=maybe",
        ],
    );
}

#[test]
fn a_value_out_of_range_names_the_variable_too() {
    let e = from_variables(&[("FERNANDO_CACHE__COMPRESSION__LEVEL", "42")]);
    assert_says(
        &e,
        &[
            "`compression.level`",
            "1..=19",
            "FERNANDO_CACHE__COMPRESSION__LEVEL=42",
        ],
    );
    let e = from_variables(&[("FERNANDO_CACHE__TYPES__SESSION__TTL", "0s")]);
    assert_says(
        &e,
        &[
            "types.session.ttl",
            "FERNANDO_CACHE__TYPES__SESSION__TTL=0s",
        ],
    );
}

#[test]
fn a_misspelt_variable_suggests_the_setting_meant() {
    let e = from_variables(&[("FERNANDO_CACHE__BAKEND", "redis")]);
    assert_says(
        &e,
        &[
            "`bakend`",
            "is not a setting",
            "did you mean `backend`?",
            "(given as FERNANDO_CACHE__BAKEND)",
        ],
    );
    // A misspelt name says nothing of what its value is: never echoed (`REDIS__PASSWOR` holds a password).
    let e = from_variables(&[("FERNANDO_CACHE__REDIS__PASSWOR", "S3CRETv")]);
    assert_says(&e, &["`redis.passwor`", "did you mean `redis.password`?"]);
    assert!(!e.contains("S3CRETv"), "{e}");
    let e = from_variables(&[("FERNANDO_CACHE__REDIS__POOLSIZE", "4")]);
    assert_says(
        &e,
        &[
            "`redis.poolsize`",
            "of [redis]",
            "did you mean `redis.pool_size`?",
            "(given as FERNANDO_CACHE__REDIS__POOLSIZE)",
        ],
    );
}

#[test]
fn a_secret_is_named_by_its_variable_never_by_its_value() {
    let e = from_variables(&[("FERNANDO_CACHE__SERVER__ADMIN_TOKEN_SHA256", "hunter2")]);
    assert_says(
        &e,
        &[
            "`server.admin_token_sha256`",
            "(given as FERNANDO_CACHE__SERVER__ADMIN_TOKEN_SHA256)",
        ],
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = from_variables(&[(
        "FERNANDO_CACHE__REDIS__URLL",
        "redis://user:hunter2@cache:6379",
    )]);
    assert_says(
        &e,
        &[
            "`redis.urll`",
            "did you mean `redis.url`?",
            "FERNANDO_CACHE__REDIS__URLL",
        ],
    );
    assert!(!e.contains("hunter2"), "{e}");
    // Another region's Redis: whatever is wrong with it, its URL is not repeated.
    for bad in [
        "redis://:hunter2@127.0.0.1:99999",
        "http://:hunter2@cache:6379",
        " redis://:hunter2@cache:6379",
    ] {
        let e = from_variables(&[
            ("FERNANDO_CACHE__REGIONS__NAME", "eu"),
            ("FERNANDO_CACHE__REGIONS__FROM__US", bad),
        ]);
        assert_says(
            &e,
            &[
                "`regions.from.us`",
                "(given as FERNANDO_CACHE__REGIONS__FROM__US)",
            ],
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains("untagged"), "{e}");
    }
}

#[test]
fn a_value_in_a_file_names_the_file_and_an_override_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.toml"), "backend = \"reddis\"\n").unwrap();
    let e = Settings::load(options(Environment::Test).config_dir(dir.path()))
        .unwrap_err()
        .to_string();
    assert_says(&e, &["`backend`", r#"did you mean "redis"?"#, "local.toml"]);
    let e = load(Environment::Test, &[("redis.mode", "sentinal")])
        .unwrap_err()
        .to_string();
    assert_says(&e, &["`redis.mode`", r#"did you mean "sentinel"?"#]);
}

#[test]
fn errors_are_invalid_values_that_keep_their_key() {
    let err = with_variables(
        Environment::Development,
        &[("FERNANDO_CACHE__BACKEND", "reddis")],
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, detail, .. }
            if key == "backend" && detail.contains("FERNANDO_CACHE__BACKEND")),
        "{err:?}"
    );
}

#[test]
fn profiles_have_two_short_forms_and_nothing_else_is_guessed() {
    for (name, env) in [
        ("dev", Environment::Development),
        ("prod", Environment::Production),
        ("Production", Environment::Production),
    ] {
        assert_eq!(name.parse::<Environment>().unwrap(), env, "{name}");
    }
    for (name, nearest) in [
        ("prodution", Some("production")),
        ("stagin", Some("staging")),
        ("qa", None),
    ] {
        let e = name.parse::<Environment>().unwrap_err().to_string();
        assert!(
            e.contains("unknown profile") && e.contains("(or prod)"),
            "{e}"
        );
        match nearest {
            Some(n) => assert!(e.contains(&format!("did you mean {n:?}?")), "{e}"),
            None => assert!(!e.contains("did you mean"), "{e}"),
        }
    }
}

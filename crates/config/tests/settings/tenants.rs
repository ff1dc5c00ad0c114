//! `[tenants.<id>]`: a tenant's plan overrides `[tenants.default]`, which overrides the deployment-wide quotas and
//! rates; isolation is chosen per tenant; every field is checked under its own key and no secret is a setting.

use std::{path::PathBuf, time::Duration};

use fernando_cache_config::{ConfigError, Environment, Isolation, RedisMode, SecretSource};

use crate::load;

fn key_of(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected an invalid key, got {other}"),
    }
}

#[test]
fn an_unlisted_tenant_gets_the_deployment_wide_plan() {
    let s = load(
        Environment::Test,
        &[
            ("quotas.tenant_bytes", "1000"),
            ("quotas.shared_requests", "50"),
        ],
    )
    .unwrap();
    let plans = s.tenant_plans().unwrap();
    assert!(plans.all_plain());
    let plan = plans.get("anyone");
    assert!(matches!(plan.isolation, Isolation::Namespace));
    assert_eq!(plan.shards, 1);
    assert_eq!(plan.tenant_bytes, 1000);
    assert_eq!(plan.shared_requests, 50);
    assert_eq!(plan.per_process_rate, s.server.limits.per_process_rate);
    assert_eq!(plan.max_ttl, None);
}

#[test]
fn a_listed_tenant_overrides_default_which_overrides_the_deployment() {
    let s = load(
        Environment::Test,
        &[
            ("quotas.tenant_bytes", "1000"),
            ("tenants.default.tenant_bytes", "2000"),
            ("tenants.default.max_ttl", "1h"),
            ("tenants.big.tenant_bytes", "9000000"),
            ("tenants.big.shards", "8"),
            ("tenants.big.per_process_rate", "500"),
            ("tenants.big.per_process_burst", "50"),
        ],
    )
    .unwrap();
    let plans = s.tenant_plans().unwrap();
    assert!(!plans.all_plain());
    let big = plans.get("big");
    assert_eq!(
        (
            big.tenant_bytes,
            big.shards,
            big.per_process_rate,
            big.per_process_burst
        ),
        (9_000_000, 8, 500, 50)
    );
    // Inherited from the default table.
    assert_eq!(big.max_ttl, Some(Duration::from_secs(3600)));
    let small = plans.get("small");
    assert_eq!((small.tenant_bytes, small.shards), (2000, 1));
    assert_eq!(
        plans.listed().map(|(id, _)| id).collect::<Vec<_>>(),
        ["big"]
    );
}

#[test]
fn acl_isolation_names_a_user_and_where_its_password_is() {
    let s = load(
        Environment::Test,
        &[
            ("tenants.default.isolation", "acl"),
            (
                "tenants.default.acl_password_file",
                "/run/secrets/redis-{tenant}",
            ),
            ("tenants.acme.acl_user", "acme-cache"),
            ("tenants.acme.acl_password_env", "ACME_REDIS_PASSWORD"),
            ("tenants.acme.acl_password_file", ""),
        ],
    );
    // Both sources for acme (its env and the default's file): refused, naming the tenant.
    assert_eq!(key_of(s.unwrap_err()), "tenants.acme.isolation");
    let s = load(
        Environment::Test,
        &[
            ("tenants.default.isolation", "acl"),
            (
                "tenants.default.acl_password_file",
                "/run/secrets/redis-{tenant}",
            ),
            ("tenants.acme.acl_user", "acme-cache"),
        ],
    )
    .unwrap();
    let plans = s.tenant_plans().unwrap();
    assert!(!plans.all_plain());
    match plans.get("acme").isolation {
        Isolation::Acl { user, password } => {
            assert_eq!(user, "acme-cache");
            assert_eq!(
                password,
                SecretSource::File(PathBuf::from("/run/secrets/redis-acme"))
            );
        }
        other => panic!("acme is acl, got {other:?}"),
    }
    // A tenant not listed: the default's templates, made for it.
    match plans.get("globex").isolation {
        Isolation::Acl { user, password } => {
            assert_eq!(user, "fernando-globex");
            assert_eq!(
                password,
                SecretSource::File(PathBuf::from("/run/secrets/redis-globex"))
            );
        }
        other => panic!("globex is acl by default, got {other:?}"),
    }
}

#[test]
fn a_dedicated_tenant_has_its_own_deployment_and_never_the_shared_password() {
    let s = load(
        Environment::Test,
        &[
            ("redis.password", "shared-secret"),
            ("tenants.vip.isolation", "dedicated"),
            ("tenants.vip.redis.url", "redis://10.0.0.9:6380/2"),
        ],
    )
    .unwrap();
    match s.tenant_plans().unwrap().get("vip").isolation {
        Isolation::Dedicated(redis) => {
            assert_eq!(redis.url.expose(), "redis://10.0.0.9:6380/2");
            assert_eq!(redis.mode, RedisMode::Standalone);
            assert!(redis.password.is_none());
            assert!(!redis.connection_url().contains("shared-secret"));
        }
        other => panic!("vip is dedicated, got {other:?}"),
    }
}

#[test]
fn bad_tenant_fields_name_their_tenant_and_field() {
    for (pairs, key) in [
        (vec![("tenants.acme.shards", "0")], "tenants.acme.shards"),
        (vec![("tenants.acme.shards", "65")], "tenants.acme.shards"),
        (
            vec![("tenants.acme.isolation", "acls")],
            "tenants.acme.isolation",
        ),
        (
            vec![("tenants.acme.max_ttl", "400d")],
            "tenants.acme.max_ttl",
        ),
        (
            vec![("tenants.acme.isolation", "dedicated")],
            "tenants.acme.redis",
        ),
        (
            vec![("tenants.default.isolation", "dedicated")],
            "tenants.default.isolation",
        ),
        (
            vec![
                ("tenants.acme.isolation", "dedicated"),
                ("tenants.acme.redis.url", "http://x"),
            ],
            "tenants.acme.redis.url",
        ),
        (
            vec![
                ("tenants.acme.isolation", "dedicated"),
                ("tenants.acme.redis.url", "redis://x:1"),
                ("tenants.acme.redis.mode", "sentinel"),
            ],
            "tenants.acme.redis.sentinels",
        ),
        (
            vec![("tenants.acme.redis.url", "redis://x:1")],
            "tenants.acme.redis",
        ),
        (
            vec![
                ("tenants.acme.per_process_rate", "10"),
                ("tenants.acme.per_process_burst", "0"),
            ],
            "tenants.acme.per_process_burst",
        ),
    ] {
        let e = load(Environment::Test, &pairs).expect_err(key);
        assert_eq!(key_of(e), key, "{pairs:?}");
    }
}

#[test]
fn an_unknown_tenant_field_is_refused() {
    let e = load(Environment::Test, &[("tenants.acme.shard", "4")]).unwrap_err();
    assert!(e.to_string().contains("shard"), "{e}");
}

#[test]
fn acl_users_never_clash_with_redis_own_users_or_each_other() {
    for (pairs, key) in [
        // Redis's own `default` user: rewriting it would lock every client out.
        (
            vec![
                ("tenants.evil.isolation", "acl"),
                ("tenants.evil.acl_user", "default"),
                ("tenants.evil.acl_password_env", "P"),
            ],
            "tenants.evil.acl_user",
        ),
        // The shared connection's own user.
        (
            vec![
                ("redis.url", "redis://cache:pw@127.0.0.1:6379/0"),
                ("tenants.evil.isolation", "acl"),
                ("tenants.evil.acl_user", "cache"),
                ("tenants.evil.acl_password_env", "P"),
            ],
            "tenants.evil.acl_user",
        ),
        // The same user spelt percent-encoded in the URL, as the client decodes it (an outside review).
        (
            vec![
                ("redis.url", "redis://fernando%2Dsvc:pw@127.0.0.1:6379/0"),
                ("tenants.svc.isolation", "acl"),
                ("tenants.svc.acl_user", "fernando-svc"),
                ("tenants.svc.acl_password_env", "P"),
            ],
            "tenants.svc.acl_user",
        ),
        // The default template that would name it for the tenant "svc".
        (
            vec![
                ("redis.url", "redis://fernando%2dsvc:pw@127.0.0.1:6379/0"),
                ("tenants.default.isolation", "acl"),
                ("tenants.default.acl_password_env", "P_{tenant}"),
            ],
            "tenants.default.acl_user",
        ),
        // A socket URL names its user in the query.
        (
            vec![
                (
                    "redis.url",
                    "redis+unix:///run/redis.sock?user=cache&pass=pw",
                ),
                ("tenants.evil.isolation", "acl"),
                ("tenants.evil.acl_user", "cache"),
                ("tenants.evil.acl_password_env", "P"),
            ],
            "tenants.evil.acl_user",
        ),
        // Two tenants, one user: each would get the other's keys and password.
        (
            vec![
                ("tenants.t1.isolation", "acl"),
                ("tenants.t1.acl_user", "same"),
                ("tenants.t1.acl_password_env", "P1"),
                ("tenants.t2.isolation", "acl"),
                ("tenants.t2.acl_user", "same"),
                ("tenants.t2.acl_password_env", "P2"),
            ],
            "tenants.t2.acl_user",
        ),
        // A default user without `{tenant}`: every tenant not listed would share it.
        (
            vec![
                ("tenants.default.isolation", "acl"),
                ("tenants.default.acl_user", "everyone"),
                ("tenants.default.acl_password_env", "P"),
            ],
            "tenants.default.acl_user",
        ),
        // A listed tenant's user that is another tenant's default one.
        (
            vec![
                ("tenants.default.isolation", "acl"),
                ("tenants.default.acl_password_env", "P_{tenant}"),
                ("tenants.acme.acl_user", "fernando-globex"),
            ],
            "tenants.acme.acl_user",
        ),
    ] {
        let e = load(Environment::Test, &pairs).expect_err(key);
        assert_eq!(key_of(e), key, "{pairs:?}");
    }
}

#[test]
fn a_tenant_id_is_one_file_name_in_a_password_file_template() {
    let s = load(
        Environment::Test,
        &[
            ("tenants.default.isolation", "acl"),
            (
                "tenants.default.acl_password_file",
                "/run/secrets/{tenant}.pw",
            ),
        ],
    )
    .unwrap();
    match s.tenant_plans().unwrap().get("sub/../b").isolation {
        Isolation::Acl { password, .. } => assert_eq!(
            password,
            SecretSource::File(PathBuf::from("/run/secrets/sub%2F..%2Fb.pw"))
        ),
        other => panic!("acl by default, got {other:?}"),
    }
}

#[test]
fn a_sharded_byte_quota_too_small_per_shard_is_refused() {
    let e = load(
        Environment::Test,
        &[
            ("tenants.big.shards", "64"),
            ("tenants.big.tenant_bytes", "5000"),
        ],
    )
    .unwrap_err();
    assert_eq!(key_of(e), "tenants.big.tenant_bytes");
}

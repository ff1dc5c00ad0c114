//! Isolation strategies (design 0023) beyond the behaviour suite every strategy runs (the `acl` and `dedicated`
//! deployments of the `contract!` tests): an `acl` tenant's credentials, used directly, cannot read or write
//! another tenant's keys — Redis answers `NOPERM` — nor list key names; a `dedicated` tenant's data is only on
//! its own server, whose death opens no breaker of the shared one; a missing password is an error naming the
//! tenant and its source while the other tenants are served; and a user made by `Admin::apply_acl` serves its
//! tenant.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, LoadOptions, SecretSource, Settings};
use fernando_cache_store::{BreakerState, Store, Target, WriteOutcome};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

use crate::support::{Deployment, password_file, password_of, tenant};

/// How many keys matching `glob` `server` holds.
fn count(server: &RedisServer, glob: &str) -> usize {
    let reply = server
        .command(&["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", glob])
        .expect("count keys");
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .expect("a count")
}

/// How many keys of `t` (every glob its Redis user may touch) `server` holds.
fn keys_of(store: &Store, server: &RedisServer, t: &str) -> usize {
    store
        .admin()
        .keys()
        .tenant_globs(&tenant(t))
        .iter()
        .map(|g| count(server, g))
        .sum()
}

/// A connection to `server` as `t`'s Redis user, as someone holding its credentials would make one.
fn connect_as(server: &RedisServer, t: &str) -> redis::Connection {
    let url = format!(
        "redis://fernando-{t}:{}@127.0.0.1:{}/0",
        password_of(t),
        server.port()
    );
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("the tenant's user authenticates")
}

/// Runs `cmd` and asserts Redis refused it for lack of permission.
fn refused(conn: &mut redis::Connection, cmd: &redis::Cmd, what: &str) {
    match cmd.query::<redis::Value>(conn) {
        Ok(v) => panic!("{what}: answered {v:?} instead of refusing"),
        Err(e) => assert!(
            e.code() == Some("NOPERM") || e.to_string().contains("can't access"),
            "{what}: {e}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_tenants_credentials_cannot_touch_another_tenants_keys() {
    let d = Deployment::acl();
    let Deployment::Acl { server, .. } = &d else {
        unreachable!()
    };
    let store = d.store();
    let (acme, globex, ty) = (tenant("acme"), tenant("globex"), CacheType::SESSION);
    let _ = store.set(&acme, &ty, "k", &1u64).await.unwrap();
    let _ = store.set(&globex, &ty, "k", &2u64).await.unwrap();
    let _ = store
        .set(&fernando_cache_keys::Scope::Global, &ty, "k", &3u64)
        .await
        .unwrap();
    assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(1));
    assert_eq!(store.get::<u64>(&globex, &ty, "k").await.unwrap(), Some(2));

    let keys = store.admin().keys();
    let own = keys.key(&acme, &ty, "k").unwrap().into_string();
    let theirs = keys.key(&globex, &ty, "k").unwrap().into_string();
    let global = keys
        .key(&fernando_cache_keys::Scope::Global, &ty, "k")
        .unwrap()
        .into_string();
    let their_generations = keys.generation_keys(&globex, &ty).unwrap();
    let mut conn = connect_as(server, "acme");

    // Its own keys: yes.
    let mine: Option<Vec<u8>> = redis::cmd("GET").arg(&own).query(&mut conn).unwrap();
    assert!(mine.is_some(), "acme reads its own entry");

    // Another tenant's, or the global scope's: Redis refuses, whatever the command.
    for key in [&theirs, &global, &their_generations.scope().to_owned()] {
        refused(&mut conn, redis::cmd("GET").arg(key), "GET");
        refused(&mut conn, redis::cmd("SET").arg(key).arg("x"), "SET");
        refused(&mut conn, redis::cmd("UNLINK").arg(key), "UNLINK");
        refused(
            &mut conn,
            redis::cmd("MGET").arg(&own).arg(key),
            "MGET with one foreign key",
        );
        refused(
            &mut conn,
            redis::cmd("EVAL")
                .arg("return redis.call('GET', ARGV[1])")
                .arg(1)
                .arg(&own)
                .arg(key),
            "a script reaching past its declared keys",
        );
    }
    // Nothing that shows other tenants' key names or their changes.
    refused(&mut conn, redis::cmd("SCAN").arg(0), "SCAN");
    refused(&mut conn, redis::cmd("KEYS").arg("*"), "KEYS");
    refused(
        &mut conn,
        redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST"),
        "CLIENT TRACKING",
    );
    refused(
        &mut conn,
        redis::cmd("PUBLISH").arg(keys.lease_channel()).arg("x"),
        "PUBLISH on the lease channel",
    );
    refused(&mut conn, &redis::cmd("FLUSHALL"), "FLUSHALL");
    refused(&mut conn, redis::cmd("ACL").arg("LIST"), "ACL LIST");

    // And the other tenant's value is still there, untouched.
    assert_eq!(store.get::<u64>(&globex, &ty, "k").await.unwrap(), Some(2));

    // The store's own connection for acme's hits tracks (OPTIN, turned on before it became acme's user) and
    // runs as acme's user; the user itself could only opt in.
    let clients = server.command(&["CLIENT", "LIST"]).unwrap();
    assert!(
        clients.lines().any(|l| l.contains(" user=fernando-acme ")
            && l.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))),
        "no tracking connection of acme's user:\n{clients}"
    );
    let opted: redis::RedisResult<redis::Value> = redis::cmd("CLIENT")
        .arg("CACHING")
        .arg("YES")
        .query(&mut conn);
    assert!(
        opted.as_ref().is_err_and(|e| e.code() != Some("NOPERM")),
        "CLIENT CACHING on a connection that does not track is an error, not a way in: {opted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_tenants_data_is_only_on_its_own_server() {
    let d = Deployment::dedicated();
    let Deployment::Dedicated { shared, own, .. } = &d else {
        unreachable!()
    };
    // Quotas on, so the byte ledgers are written too; ocr_result computes under a lease.
    let store = d.store_with(&[("quotas.tenant_bytes", "10000000")]);
    for t in ["acme", "globex"] {
        let t = tenant(t);
        for i in 0..20 {
            let outcome = store
                .set(&t, &CacheType::SESSION, &format!("k{i}"), &i)
                .await
                .unwrap();
            assert_eq!(outcome, WriteOutcome::Stored);
        }
        let v = store
            .get_or_compute(&t, &CacheType::OCR_RESULT, "doc", || async {
                Ok::<_, std::io::Error>("text".to_owned())
            })
            .await
            .unwrap();
        assert_eq!(v, "text");
        store
            .invalidate(
                Target::tag(&t, "customer:42"),
                fernando_cache_store::InvalidationStrategy::Lazy,
            )
            .await
            .unwrap();
    }
    // acme is dedicated (support::DEDICATED), globex is not.
    let (acme_own, acme_shared) = (
        keys_of(&store, own, "acme"),
        keys_of(&store, shared, "acme"),
    );
    let (globex_own, globex_shared) = (
        keys_of(&store, own, "globex"),
        keys_of(&store, shared, "globex"),
    );
    assert!(
        acme_own >= 22,
        "entries, ledger and generation on its own server: {acme_own}"
    );
    assert_eq!(
        acme_shared, 0,
        "nothing of the dedicated tenant on the shared server"
    );
    assert!(globex_shared >= 22, "{globex_shared}");
    assert_eq!(
        globex_own, 0,
        "nothing of another tenant on the dedicated server"
    );

    // Deleting and sweeping reach the dedicated server.
    let swept = store
        .invalidate(
            Target::entries(&tenant("acme"), &CacheType::SESSION),
            fernando_cache_store::InvalidationStrategy::Eager,
        )
        .await
        .unwrap();
    assert_eq!(swept.deleted, 20);
    assert_eq!(
        count(
            own,
            &store
                .admin()
                .keys()
                .scan_pattern(&tenant("acme").into(), Some(&CacheType::SESSION))
        ),
        0
    );
    assert_eq!(
        count(
            shared,
            &store
                .admin()
                .keys()
                .scan_pattern(&tenant("globex").into(), Some(&CacheType::SESSION))
        ),
        20
    );
    let isolations = store.admin().isolations();
    assert_eq!(isolations.default, "namespace");
    assert_eq!(isolations.of_tenant("acme"), "dedicated");
    assert_eq!(store.admin().isolation(&tenant("globex")), "namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_tenants_dead_server_opens_no_breaker_of_the_shared_one() {
    let mut d = Deployment::dedicated();
    let store = d.store();
    let (acme, globex, ty) = (tenant("acme"), tenant("globex"), CacheType::SESSION);
    assert_eq!(
        store.set(&acme, &ty, "k", &1u64).await.unwrap(),
        WriteOutcome::Stored
    );
    let Deployment::Dedicated { own, .. } = &mut d else {
        unreachable!()
    };
    own.kill();
    // Well past the breaker's threshold (3 in the test settings).
    for _ in 0..10 {
        let got = tokio::time::timeout(Duration::from_secs(2), store.get::<u64>(&acme, &ty, "k"))
            .await
            .expect("a read of a dead server is bounded");
        assert_eq!(got.unwrap(), None, "a miss");
    }
    assert!(
        store.delete(&acme, &ty, "k").await.is_err(),
        "a delete says it failed"
    );
    assert_eq!(
        store.metrics().breaker,
        BreakerState::Closed,
        "the shared breaker"
    );
    for i in 0..10u64 {
        let key = format!("k{i}");
        assert_eq!(
            store.set(&globex, &ty, &key, &i).await.unwrap(),
            WriteOutcome::Stored
        );
        assert_eq!(store.get::<u64>(&globex, &ty, &key).await.unwrap(), Some(i));
    }
    let why = store.admin().last_unavailable().unwrap_or_default();
    assert!(why.contains("dedicated"), "{why}");
}

/// A password rotated while the store runs (outside review): the store's connection, cut, comes back with the
/// old password and is refused. The refusal counts as the lane's unavailability, the lane stops trying (a few
/// refused `AUTH`s, not one per call) and, within `RETRY_OPEN_AFTER` (5 s), opens again with the password read
/// anew — the tenant is served again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_acl_password_is_picked_up_without_a_restart_and_refusals_are_bounded() {
    let d = Deployment::acl();
    let Deployment::Acl { server, secrets } = &d else {
        unreachable!()
    };
    let store = d.store();
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    assert_eq!(
        store.set(&acme, &ty, "k", &1u64).await.unwrap(),
        WriteOutcome::Stored
    );

    // The operator rotates: a new password in the file and on the server; the old connections are cut.
    let file = password_file(secrets.path(), "acme");
    std::fs::write(&file, "rotated-acme-password\n").unwrap();
    let (user, source) = store.admin().acl_user(&acme).unwrap();
    store
        .admin()
        .apply_acl(&acme, &user, &source)
        .await
        .unwrap();
    // The store's running connection still holds the old identity until it is cut; then the old password is
    // what it would reconnect with. Ask Redis to forget the refusals seen so far.
    server.command(&["ACL", "LOG", "RESET"]).unwrap();
    server
        .command(&["CLIENT", "KILL", "USER", "fernando-acme"])
        .unwrap();

    let started = std::time::Instant::now();
    let mut calls = 0u32;
    loop {
        calls += 1;
        if store.set(&acme, &ty, "k", &2u64).await.unwrap() == WriteOutcome::Stored {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rotated password was never picked up: {:?}",
            store.admin().last_unavailable()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(2));
    let refusals = server.command(&["ACL", "LOG"]).unwrap();
    let entries = refusals.matches("reason").count();
    println!(
        "served again after {:?} and {calls} calls; {entries} refused AUTHs",
        started.elapsed()
    );
    assert!(
        calls > 20,
        "the old password was refused for a while ({calls} calls)"
    );
    assert!(
        entries <= 12,
        "refused AUTHs are bounded by the breaker and the pause, not one per call: {entries} for {calls} calls"
    );
}

/// `Admin::apply_acl` asks Redis who the store's own connections are (`ACL WHOAMI`) and refuses to make that
/// user — or Redis's `default` — a tenant's: restricted to one tenant's keys, it would cut every other tenant off
/// (an outside review did it through a percent-encoded user name in the URL, which the settings now decode too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_acl_never_restricts_the_stores_own_user() {
    let server = RedisServer::start();
    server
        .command(&[
            "ACL",
            "SETUSER",
            "fcdeploy",
            "on",
            ">deploy-pw",
            "~*",
            "&*",
            "+@all",
        ])
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let path = secrets.path().join("svc.pw");
    std::fs::write(&path, "svc-password\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set(
                "redis.url",
                format!("redis://fcdeploy:deploy-pw@127.0.0.1:{}/0", server.port()),
            )
            .set_all(FAST_FAILURE.iter().copied())
            .set("tenants.svc.isolation", "acl")
            .set("tenants.svc.acl_password_file", path.display().to_string()),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let svc = tenant("svc");
    let source = SecretSource::File(path.clone());
    for user in ["fcdeploy", "default"] {
        let err = store
            .admin()
            .apply_acl(&svc, user, &source)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("user of its own"), "{user}: {err}");
    }
    let listed = server.command(&["ACL", "LIST"]).unwrap();
    assert!(
        listed.contains("user fcdeploy on") && listed.contains("~* &* +@all"),
        "the store's own user is untouched: {listed}"
    );
    // Every tenant is still served through it.
    let ty = CacheType::SESSION;
    assert_eq!(
        store.set(&tenant("globex"), &ty, "k", &1u64).await.unwrap(),
        WriteOutcome::Stored
    );
}

/// The tenant's hot connection opens as the deployment's user and becomes the tenant's only when its `AUTH`
/// succeeds (design 0023). With a wrong password the switch fails: the tenant's reads and writes fail as on an
/// unavailable backend — none of them runs as the deployment's user, whose connection it was a moment before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_acl_password_never_leaves_the_tenant_on_the_deployments_connection() {
    let d = Deployment::acl();
    let Deployment::Acl { server, secrets } = &d else {
        unreachable!()
    };
    std::fs::write(password_file(secrets.path(), "b"), "not-bs-password\n").unwrap();
    let store = d.store();
    let (b, ty) = (tenant("b"), CacheType::SESSION);
    for i in 0..5u64 {
        assert_eq!(
            store.set(&b, &ty, "k", &i).await.unwrap(),
            WriteOutcome::Dropped,
            "write {i}"
        );
        assert_eq!(store.get::<u64>(&b, &ty, "k").await.unwrap(), None);
    }
    assert_eq!(keys_of(&store, server, "b"), 0, "nothing of b was written");
    let why = store.admin().last_unavailable().unwrap_or_default();
    assert!(!why.contains("not-bs-password"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_acl_password_is_an_error_naming_the_tenant_and_its_source_and_the_others_are_served()
 {
    let d = Deployment::acl();
    let Deployment::Acl { server, secrets } = &d else {
        unreachable!()
    };
    let gone = password_file(secrets.path(), "b");
    std::fs::remove_file(&gone).unwrap();
    let store = d.store();
    let (acme, b, ty) = (tenant("acme"), tenant("b"), CacheType::SESSION);

    let err = store.delete(&b, &ty, "k").await.unwrap_err().to_string();
    assert!(err.contains("\"b\""), "names the tenant: {err}");
    assert!(
        err.contains(&gone.display().to_string()),
        "names the source: {err}"
    );
    assert!(!err.contains(&password_of("b")), "{err}");
    // Reads miss and writes are dropped, as on an unavailable backend.
    assert_eq!(store.get::<u64>(&b, &ty, "k").await.unwrap(), None);
    assert_eq!(
        store.set(&b, &ty, "k", &1u64).await.unwrap(),
        WriteOutcome::Dropped
    );
    let why = store.admin().last_unavailable().unwrap_or_default();
    assert!(why.contains("b.pw"), "{why}");

    // Every other tenant is served.
    assert_eq!(
        store.set(&acme, &ty, "k", &7u64).await.unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(7));
    assert_eq!(store.metrics().breaker, BreakerState::Closed);

    // An environment variable that is not set is named too.
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set("tenants.default.isolation", "acl")
            .set(
                "tenants.default.acl_password_env",
                "FERNANDO_TEST_31_UNSET_{tenant}",
            ),
    )
    .unwrap();
    let env_store = Store::from_settings(&settings).unwrap();
    let err = env_store
        .delete(&acme, &ty, "k")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("FERNANDO_TEST_31_UNSET_acme") && err.contains("not set"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_made_by_apply_acl_serves_its_tenant() {
    let server = RedisServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let path = password_file(secrets.path(), "acme");
    std::fs::write(&path, format!("{}\n", password_of("acme"))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set("tenants.acme.isolation", "acl")
            .set("tenants.acme.acl_password_file", path.display().to_string()),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let acme = tenant("acme");
    let (user, source) = store.admin().acl_user(&acme).expect("acme runs acl");
    assert_eq!(user, "fernando-acme");
    assert_eq!(source, SecretSource::File(path.clone()));
    assert_eq!(store.admin().acl_user(&tenant("globex")), None);
    store
        .admin()
        .apply_acl(&acme, &user, &source)
        .await
        .unwrap();
    // Twice: applying again leaves the user as it was.
    store
        .admin()
        .apply_acl(&acme, &user, &source)
        .await
        .unwrap();
    let listed = server.command(&["ACL", "LIST"]).unwrap();
    assert!(listed.contains("user fernando-acme on"), "{listed}");
    assert!(
        !listed.contains(&password_of("acme")),
        "ACL LIST shows hashes only"
    );

    assert_eq!(
        store
            .set(&acme, &CacheType::SESSION, "k", &1u64)
            .await
            .unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store
            .get::<u64>(&acme, &CacheType::SESSION, "k")
            .await
            .unwrap(),
        Some(1)
    );
    let mut conn = connect_as(&server, "acme");
    refused(&mut conn, redis::cmd("SCAN").arg(0), "SCAN");

    // A new password, applied: the old one no longer opens the user (a rotation revokes).
    std::fs::write(&path, "rotated-password\n").unwrap();
    store
        .admin()
        .apply_acl(&acme, &user, &source)
        .await
        .unwrap();
    let old = format!(
        "redis://fernando-acme:{}@127.0.0.1:{}/0",
        password_of("acme"),
        server.port()
    );
    assert!(
        redis::Client::open(old)
            .and_then(|c| c.get_connection())
            .is_err(),
        "the old password is refused after a rotation"
    );
    let new = format!(
        "redis://fernando-acme:rotated-password@127.0.0.1:{}/0",
        server.port()
    );
    redis::Client::open(new)
        .and_then(|c| c.get_connection())
        .expect("the new password opens the user");
}

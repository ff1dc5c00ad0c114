//! Cache poisoning through unkeyed headers, and flooding a route with variants.

use crate::support::start;

#[tokio::test]
async fn unkeyed_forwarding_headers_can_never_poison_an_entry() {
    let app = start(|b| b).await;
    let attack = app
        .get(
            "/c/echo-host/1",
            &[
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "host=evil.example"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    // Nothing of the URL is stored yet, so the request went as sent: the attacker sees what it asked for, and
    // that answer — which depends on a header outside the key without saying so — is not shared.
    assert!(attack.contains("https://evil.example/next"), "{attack}");
    let victim = app.get("/c/echo-host/1", &[]).await;
    assert_eq!(victim.headers()["x-cache"], "MISS");
    assert!(victim.text().await.unwrap().contains("https://none/next"));
    let victim = app.get("/c/echo-host/1", &[]).await;
    assert_eq!(victim.headers()["x-cache"], "HIT");
    assert!(victim.text().await.unwrap().contains("https://none/next"));
    // Now the URL's key is known: the headers no longer reach the handler, even when the client makes the
    // layer ask again.
    let again = app
        .get(
            "/c/echo-host/1",
            &[
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "host=evil.example"),
                ("cache-control", "no-cache"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !again.contains("evil"),
        "the handler never saw the header: {again}"
    );
    let victim = app.get("/c/echo-host/1", &[]).await;
    assert_eq!(victim.headers()["x-cache"], "HIT");
    assert!(victim.text().await.unwrap().contains("https://none/next"));

    // Method overrides cannot turn a cached GET into something else either.
    let r = app
        .get("/c/plain/1", &[("x-http-method-override", "DELETE")])
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_keyed_forwarding_header_reaches_the_handler_and_splits_entries() {
    let app = start(|b| b.key_header("x-forwarded-host")).await;
    let evil = app
        .get("/c/echo-host/2", &[("x-forwarded-host", "evil.example")])
        .await;
    assert!(
        evil.text()
            .await
            .unwrap()
            .contains("https://evil.example/next")
    );
    let plain = app.get("/c/echo-host/2", &[]).await;
    assert_eq!(
        plain.headers()["x-cache"],
        "MISS",
        "another key, another entry"
    );
    assert!(plain.text().await.unwrap().contains("https://none/next"));
}

#[tokio::test]
async fn variant_flooding_is_bounded_per_path_and_tenant() {
    let app = start(|b| b.max_variants(10)).await;
    for i in 0..100 {
        app.get(&format!("/c/plain/1?flood={i}"), &[]).await;
    }
    assert_eq!(app.calls.of("/c/plain/1"), 100);
    let keys = app.redis.command(&["DBSIZE"]).unwrap();
    let stored: usize = keys.trim_start_matches(':').trim().parse().unwrap();
    // Ten responses, the path's epoch, and the store's generation keys at most.
    assert!(stored <= 14, "flooding filled Redis: {stored} keys");
    for i in 0..10 {
        let r = app.get(&format!("/c/plain/1?flood={i}"), &[]).await;
        assert_eq!(r.headers()["x-cache"], "HIT", "admitted variant {i}");
    }
    let r = app.get("/c/plain/1?flood=50", &[]).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    // Another tenant has its own budget.
    let other = app
        .get("/c/plain/1?flood=99", &[("x-tenant-id", "globex")])
        .await;
    assert_eq!(other.headers()["x-cache"], "MISS");
    let again = app
        .get("/c/plain/1?flood=99", &[("x-tenant-id", "globex")])
        .await;
    assert_eq!(again.headers()["x-cache"], "HIT");
}

#[tokio::test]
async fn responses_never_stored_take_no_slot_of_the_path_budget() {
    let app = start(|b| b.max_paths(3)).await;
    // A flood of paths whose responses are never stored (no-store, errors) leaves the budget untouched.
    for i in 0..20 {
        app.get(&format!("/c/no-store/{i}"), &[]).await;
        app.get(&format!("/c/error/{i}"), &[]).await;
    }
    for i in 0..3 {
        app.get(&format!("/c/plain/{i}"), &[]).await;
        let r = app.get(&format!("/c/plain/{i}"), &[]).await;
        assert_eq!(r.headers()["x-cache"], "HIT", "path {i} after the flood");
    }
    // The budget still holds for what is stored.
    app.get("/c/plain/99", &[]).await;
    assert_eq!(
        app.get("/c/plain/99", &[]).await.headers()["x-cache"],
        "MISS"
    );
}

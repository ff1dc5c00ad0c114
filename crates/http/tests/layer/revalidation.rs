//! Revalidation with ETag and Last-Modified, RFC 5861's stale-while-revalidate and stale-if-error, and the
//! bounds on paths per route and variants per path (issue 15, item 1).

use std::time::Duration;

use axum::http::Method;

use crate::support::start;

#[tokio::test]
async fn a_stale_entry_is_revalidated_with_its_etag_and_a_304_refreshes_it() {
    let app = start(|b| b).await;
    let first = app.get("/c/etag/1", &[]).await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let body = first.text().await.unwrap();
    assert_eq!(body, "/c/etag/1 call 1");

    // `no-cache`: stored, but never used without asking the origin, which answers 304 to our validator.
    let second = app.get("/c/etag/1", &[]).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-cache"], "REVALIDATED");
    assert_eq!(
        second.headers()["x-served"],
        "2",
        "the 304's headers refreshed the entry"
    );
    assert_eq!(
        second.text().await.unwrap(),
        body,
        "the stored body, not a new one"
    );
    assert_eq!(app.calls.of("/c/etag/1 304"), 1);

    // A client's own conditional request is answered 304 after the revalidation.
    let conditional = app.get("/c/etag/1", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(conditional.status(), 304);
    assert_eq!(conditional.headers()["x-cache"], "REVALIDATED");
    assert_eq!(app.calls.of("/c/etag/1 304"), 2);
    assert_eq!(app.calls.of("/c/etag/1"), 3, "every use asked the origin");
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_with_its_last_modified_date() {
    let app = start(|b| b).await;
    let body = app
        .get("/c/last-modified/1", &[])
        .await
        .text()
        .await
        .unwrap();
    let second = app.get("/c/last-modified/1", &[]).await;
    assert_eq!(second.headers()["x-cache"], "REVALIDATED");
    assert_eq!(second.text().await.unwrap(), body);
    assert_eq!(app.calls.of("/c/last-modified/1 304"), 1);
}

#[tokio::test]
async fn a_changed_resource_replaces_the_entry_it_revalidated() {
    let app = start(|b| b).await;
    app.get("/c/etag-changing/1", &[]).await;
    let second = app.get("/c/etag-changing/1", &[]).await;
    assert_eq!(second.headers()["x-cache"], "MISS");
    assert_eq!(second.headers()["etag"], "\"v2\"");
    assert_eq!(second.text().await.unwrap(), "/c/etag-changing/1 call 2");
    assert_eq!(app.calls.of("/c/etag-changing/1 304"), 0);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let app = start(|b| b).await;
    let first = app.get("/c/swr/1", &[]).await.text().await.unwrap();
    assert_eq!(first, "/c/swr/1 call 1");
    let stale = app.get("/c/swr/1", &[]).await;
    assert_eq!(stale.headers()["x-cache"], "STALE");
    assert_eq!(stale.text().await.unwrap(), first);
    // The refresh runs behind the answer; wait for it, then the next answer carries its body.
    for _ in 0..200 {
        if app.calls.of("/c/swr/1") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.calls.of("/c/swr/1"),
        2,
        "one refresh behind the stale answer"
    );
    let mut refreshed = String::new();
    for _ in 0..200 {
        refreshed = app.get("/c/swr/1", &[]).await.text().await.unwrap();
        if refreshed != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refreshed, "/c/swr/1 call 2");
    // A client that refuses stale responses is not given one.
    let strict = app.get("/c/swr/1", &[("cache-control", "max-age=0")]).await;
    assert_eq!(strict.headers()["x-cache"], "MISS");
}

#[tokio::test]
async fn stale_if_error_stands_in_for_a_failing_origin_unless_must_revalidate() {
    let app = start(|b| b).await;
    let first = app.get("/c/sie/1", &[]).await.text().await.unwrap();
    let failed = app.get("/c/sie/1", &[]).await;
    assert_eq!(failed.status(), 200, "the origin's 500 is not served");
    assert_eq!(failed.headers()["x-cache"], "STALE");
    assert_eq!(failed.text().await.unwrap(), first);
    assert_eq!(app.calls.of("/c/sie/1"), 2, "the origin was asked");

    app.get("/c/sie-must-revalidate/1", &[]).await;
    let failed = app.get("/c/sie-must-revalidate/1", &[]).await;
    assert_eq!(
        failed.status(),
        500,
        "must-revalidate forbids the stale answer"
    );
}

fn dbsize(app: &crate::support::App) -> usize {
    let out = app.redis.command(&["DBSIZE"]).unwrap();
    out.trim_start_matches(':').trim().parse().unwrap()
}

#[tokio::test]
async fn a_tenant_caches_a_bounded_number_of_paths_and_unknown_paths_take_no_epoch() {
    let app = start(|b| b.max_paths(5)).await;
    for i in 0..60 {
        app.get(&format!("/c/plain/{i}"), &[]).await;
    }
    // Five paths: each an epoch and an entry and a variant set, the route's path set, generation keys.
    let stored = dbsize(&app);
    assert!(stored <= 20, "unique paths filled Redis: {stored} keys");
    for i in 0..5 {
        let r = app.get(&format!("/c/plain/{i}"), &[]).await;
        assert_eq!(r.headers()["x-cache"], "HIT", "admitted path {i}");
    }
    assert_eq!(
        app.get("/c/plain/50", &[]).await.headers()["x-cache"],
        "MISS"
    );
    // Another tenant has its own paths.
    let other = [("x-tenant-id", "globex")];
    app.get("/c/plain/50", &other).await;
    assert_eq!(
        app.get("/c/plain/50", &other).await.headers()["x-cache"],
        "HIT"
    );

    // Unsafe requests to paths that hold nothing write nothing.
    let before = dbsize(&app);
    for i in 0..50 {
        app.send(Method::POST, &format!("/c/plain/new-{i}"), &[])
            .await;
    }
    assert_eq!(dbsize(&app), before);
    // ...while one to a cached path still invalidates it.
    app.send(Method::POST, "/c/plain/1", &[]).await;
    assert_eq!(
        app.get("/c/plain/1", &[]).await.headers()["x-cache"],
        "MISS"
    );
}

#[tokio::test]
async fn the_variant_budget_is_per_path_not_per_route() {
    let app = start(|b| b.max_variants(3)).await;
    for path in ["/c/plain/a", "/c/plain/b"] {
        for q in 0..3 {
            app.get(&format!("{path}?q={q}"), &[]).await;
        }
    }
    for path in ["/c/plain/a", "/c/plain/b"] {
        for q in 0..3 {
            let r = app.get(&format!("{path}?q={q}"), &[]).await;
            assert_eq!(r.headers()["x-cache"], "HIT", "{path}?q={q}");
        }
        app.get(&format!("{path}?q=9"), &[]).await;
        let r = app.get(&format!("{path}?q=9"), &[]).await;
        assert_eq!(r.headers()["x-cache"], "MISS", "{path}: a fourth variant");
    }
}

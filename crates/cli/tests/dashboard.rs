//! The dashboard's JSON endpoints on a real `serve` (issue 16): `GET /v1/admin/series` behind the admin token,
//! its shape, filters and downsampling against rows written with the recorder's own upsert.

mod support;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use fernando_cache_models::{
    Db, EventRecord, insert_event, insert_health, models::HealthRow, run_pending, upsert_statistics,
};
use fernando_cache_testkit::{PostgresDb, RedisServer};
use serde_json::Value;
use support::{ACME, ADMIN, Server, stat_delta};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_endpoint_downsamples_filters_and_needs_the_admin_token() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let start = NaiveDateTime::parse_from_str("2026-11-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    {
        let mut db = Db::open(pg.url()).unwrap();
        run_pending(&mut db).unwrap();
        let mut rows = Vec::new();
        for m in (0..20 * 24 * 60).step_by(90) {
            let at = start + TimeDelta::minutes(m);
            rows.push(stat_delta("acme", "ocr_result", at, 8, 2, 900));
            rows.push(stat_delta(
                "<script>x</script>",
                "llm_extraction",
                at,
                1,
                3,
                900,
            ));
        }
        upsert_statistics(&mut db, &rows).unwrap();
    }
    let server = Server::start(&redis.url(), pg.url());
    let get = |q: &str, key: Option<&'static str>| {
        let path = format!("/v1/admin/series?{q}");
        let server = &server;
        async move { server.get(&path, key).await }
    };

    // Twenty days: daily points; one tenant and type, 16 windows a day of 8 hits and 2 misses.
    let r = get(
        "from=2026-11-01T00:00:00Z&to=2026-11-21T00:00:00Z&tenant=acme&cache_type=ocr_result",
        Some(ADMIN),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resolution"], "day", "{body}");
    assert_eq!(body["resolution_seconds"], 86_400);
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 20);
    assert_eq!(points[0]["t"], "2026-11-01T00:00:00Z");
    assert_eq!(points[0]["hits"], 16 * 8, "{}", points[0]);
    assert_eq!(points[0]["misses"], 16 * 2);
    assert_eq!(points[0]["hit_ratio"], 0.8);
    assert_eq!(points[0]["tokens_saved"], 16 * 8 * 700);
    assert_eq!(points[0]["p99_ms"], 0.9);

    // Two days: hourly points over both tenants (a window every 90 minutes: 16 of 48 hours have two).
    let body: Value = get(
        "from=2026-11-02T00:00:00Z&to=2026-11-04T00:00:00Z",
        Some(ADMIN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["resolution"], "hour");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 32, "{body}");
    let hits: i64 = points.iter().map(|p| p["hits"].as_i64().unwrap()).sum();
    assert_eq!(hits, 32 * (8 + 1));

    // Three hours of the recorded windows, for the tenant whose name is markup: it is only data here.
    let body: Value = get(
        "from=2026-11-05T00:00:00Z&to=2026-11-05T03:00:00Z&tenant=%3Cscript%3Ex%3C%2Fscript%3E",
        Some(ADMIN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["resolution"], "window");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{body}");
    assert_eq!(points[0]["t"], "2026-11-05T00:00:00Z");
    assert_eq!(points[0]["misses"], 3);

    // A range near now, by length: recent rows only (none were written for it).
    let body: Value = get("range=6h", Some(ADMIN)).await.json().await.unwrap();
    assert_eq!(body["points"].as_array().unwrap().len(), 0, "{body}");

    // No token, a tenant's key, and bad parameters.
    assert_eq!(get("range=6h", None).await.status(), 401);
    assert_eq!(get("range=6h", Some(ACME)).await.status(), 403);
    for (q, says) in [
        ("range=forever", "range"),
        ("from=yesterday", "RFC 3339"),
        (
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "before",
        ),
        ("range=500d", "at most"),
        ("resolution=minute", "resolution"),
        ("tenant=", "tenant"),
        ("unknown=1", ""),
    ] {
        let r = get(q, Some(ADMIN)).await;
        assert_eq!(r.status(), 400, "{q}");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let text = body["error"].as_str().unwrap_or_default().to_owned();
        assert!(text.contains(says), "{q}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_has_health_events_jobs_and_live_counters() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let now = Utc::now().naive_utc();
    {
        let mut db = Db::open(pg.url()).unwrap();
        run_pending(&mut db).unwrap();
        let event = |minutes: i64, kind: &str, severity: &str| EventRecord {
            occurred_at: now - TimeDelta::minutes(minutes),
            event_type: kind.to_owned(),
            severity: severity.to_owned(),
            tenant_id: Some("<img src=x onerror=alert(1)>".to_owned()),
            cache_type: None,
            details: "d".to_owned(),
        };
        insert_event(
            &mut db,
            &[
                event(120, "invalidation", "info"),
                event(5, "alert.hit_ratio", "warning"),
                event(60 * 48, "old", "info"),
            ],
        )
        .unwrap();
        insert_health(
            &mut db,
            &HealthRow {
                id: 0,
                checked_at: now - TimeDelta::minutes(1),
                component: "redis".to_owned(),
                status: "healthy".to_owned(),
                latency_us: Some(250),
                used_memory: Some(1 << 20),
                max_memory: Some(0),
                eviction_policy: None,
                evicted_keys: None,
                connected_clients: None,
                message: String::new(),
            },
        )
        .unwrap();
    }
    let server = Server::start(&redis.url(), pg.url());
    // Live counters come from this process's traffic.
    let _ = server
        .get(
            "/v1/documents/0000000000000000000000000000000000000000000000000000000000000000",
            Some(ACME),
        )
        .await;
    let r = server
        .get("/v1/admin/overview?range=24h", Some(ADMIN))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    // The server's own health checker may log events and health rows of its own meanwhile: look at ours.
    let events = body["events"].as_array().unwrap();
    let times: Vec<&str> = events.iter().map(|e| e["t"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {body}"
    );
    let seeded: Vec<&Value> = events
        .iter()
        .filter(|e| {
            ["alert.hit_ratio", "invalidation", "old"].contains(&e["event_type"].as_str().unwrap())
        })
        .collect();
    let kinds: Vec<&str> = seeded
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["alert.hit_ratio", "invalidation"],
        "the old one out: {body}"
    );
    assert_eq!(seeded[0]["tenant"], "<img src=x onerror=alert(1)>");
    let ours = body["health"]["redis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["latency_us"] == 250)
        .unwrap_or_else(|| panic!("the seeded health row: {body}"));
    assert_eq!(ours["status"], "healthy", "{body}");
    assert!(body["warmup_jobs"].is_array(), "{body}");
    let live = body["live"].as_array().unwrap();
    assert!(
        live.iter()
            .any(|s| s["tenant"] == "acme" && s["misses"].as_u64() >= Some(1)),
        "the document lookup's miss is live: {body}"
    );

    assert_eq!(server.get("/v1/admin/overview", None).await.status(), 401);
    assert_eq!(
        server
            .get("/v1/admin/overview?range=soon", Some(ADMIN))
            .await
            .status(),
        400
    );
}

/// Sign-in sets a strict session cookie that reads the admin GET routes and nothing that changes state; the page
/// and its assets are embedded and served with a CSP that forbids inline script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_with_a_strict_cookie_that_only_reads() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", server.base);

    let anonymous = client.get(url("/dashboard")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    let html = anonymous.text().await.unwrap();
    assert!(
        html.contains(r#"name="token""#) && !html.contains("chart-hit-ratio"),
        "{html}"
    );

    let login = |token: &str| {
        client
            .post(url("/dashboard/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let refused = login("wrong").await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains(r#"<p class="error" id="login-error">"#)
    );

    let signed_in = login(ADMIN).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    // `Secure` only over HTTPS (the_cookie_is_secure_over_https_only_and_sign_out_ends_the_session).
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let page = client
        .get(url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"id="chart-hit-ratio""#) && !html.contains("<script>"),
        "{html}"
    );

    let series = client
        .get(url("/v1/admin/series?range=6h"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(series.status(), 200);
    // The cookie never changes state: an invalidation needs the token itself.
    let invalidate = client
        .post(url("/v1/cache/invalidate"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"tenant": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalidate.status(), 401);

    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.LICENSE", "text/plain"),
    ] {
        let r = client
            .get(url(&format!("/dashboard/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    assert_eq!(
        client
            .get(url("/dashboard/assets/secret"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let out = client
        .post(url("/dashboard/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = client
        .get(url("/v1/admin/series?range=6h"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

/// Sign-in over plain HTTP — a console on a LAN address — gets a cookie without `Secure`, which browsers would
/// drop there; over HTTPS (the browser's `Origin`, a TLS proxy's `X-Forwarded-Proto` or `Forwarded`) it is
/// `Secure`. The page offers sign-out, which ends the session on the server: the old cookie reads nothing more.
/// Another site's page can neither sign in nor sign out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_over_https_only_and_sign_out_ends_the_session() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let server = Server::start(&redis.url(), pg.url());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", server.base);
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let mut req = client
            .post(url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let token = format!("token={ADMIN}");
    let set_cookie = |r: &reqwest::Response| {
        r.headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let reads = |cookie: String| {
        let req = client
            .get(url("/v1/admin/series?range=6h"))
            .header("cookie", cookie);
        async move { req.send().await.unwrap().status().as_u16() }
    };

    // Plain HTTP: every attribute but `Secure`.
    let plain = post("/dashboard/login", &[], &token).await.unwrap();
    assert_eq!(plain.status(), 303);
    let cookie_line = set_cookie(&plain);
    assert!(
        cookie_line.starts_with("fc_dashboard=")
            && cookie_line.contains("HttpOnly")
            && cookie_line.contains("SameSite=Strict")
            && cookie_line.contains("Path=/")
            && cookie_line.contains("Max-Age=43200")
            && !cookie_line.contains("Secure"),
        "{cookie_line}"
    );
    let cookie = cookie_line.split(';').next().unwrap().to_owned();
    assert_eq!(reads(cookie.clone()).await, 200);

    // Over HTTPS, however it is said.
    for https in [
        &[("x-forwarded-proto", "https")][..],
        &[("forwarded", "for=192.0.2.7;proto=https")],
        &[
            ("origin", "https://console.example"),
            ("sec-fetch-site", "same-origin"),
        ],
    ] {
        let r = post("/dashboard/login", https, &token).await.unwrap();
        assert_eq!(r.status(), 303, "{https:?}");
        let line = set_cookie(&r);
        assert!(
            line.contains("; Secure;") && line.contains("HttpOnly"),
            "{https:?}: {line}"
        );
    }

    // The signed-in page offers sign-out, a form posting to the console itself.
    let page = client
        .get(url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<form method="post" action="/dashboard/logout""#),
        "{page}"
    );

    // Another site's page can neither sign out a session nor sign in.
    for (headers, what) in [
        (&[("sec-fetch-site", "cross-site")][..], "Sec-Fetch-Site"),
        (
            &[("origin", "https://elsewhere.example")][..],
            "a foreign Origin",
        ),
    ] {
        let mut with_cookie = headers.to_vec();
        with_cookie.push(("cookie", cookie.as_str()));
        let r = post("/dashboard/logout", &with_cookie, "").await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("console's own page"),
            "{body}"
        );
        assert_eq!(reads(cookie.clone()).await, 200, "{what}: still signed in");
        let r = post("/dashboard/login", headers, &token).await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        assert!(r.headers().get("set-cookie").is_none());
    }

    // Sign-out from the page: the session ends on the server and the browser is told to drop the cookie.
    let out = post(
        "/dashboard/logout",
        &[
            ("cookie", cookie.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/dashboard");
    let cleared = set_cookie(&out);
    assert!(
        cleared.starts_with("fc_dashboard=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // The old cookie, replayed, reads nothing and gets the sign-in form.
    assert_eq!(reads(cookie.clone()).await, 401);
    let again = client
        .get(url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains(r#"name="token""#), "{again}");
}

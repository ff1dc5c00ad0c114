//! The dashboard in a real headless browser (issue 16): Debian's Chromium driven through ChromeDriver's
//! WebDriver HTTP API. Sign in, see every chart drawn from seeded statistics, change the range and a filter, see
//! the live view update after new traffic, find a tenant name with markup shown as text, sign out, and get
//! nothing without the token. A screenshot is saved as a test artefact (`target/dashboard.png`; set
//! `FERNANDO_CACHE_SCREENSHOT` to write it elsewhere, e.g. `docs/dashboard.png`).

mod support;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use chrono::{TimeDelta, Utc};
use fernando_cache_models::{Db, EventRecord, insert_event, run_pending, upsert_statistics};
use fernando_cache_testkit::{PostgresDb, RedisServer};
use serde_json::{Value, json};
use support::{ACME, ADMIN, Server, stat_delta};

/// A ChromeDriver process on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is not installed: `cargo xtask test` installs Debian's chromium and chromium-driver",
            );
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn session(&self) -> Browser<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1700"]
            }
        }}});
        let r: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_owned();
        Browser {
            driver: self,
            session,
        }
    }
}

impl Browser<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        let mut req = self.driver.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until `js` (an expression) is true.
    async fn until(&self, js: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.script(&format!("return !!({js});")).await == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_seeded_data_filters_updates_and_shows_nothing_without_the_token() {
    let redis = RedisServer::start();
    let pg = PostgresDb::create();
    let now = Utc::now().naive_utc();
    let markup = "<img src=x onerror=document.title='pwned'>";
    {
        let mut db = Db::open(pg.url()).unwrap();
        run_pending(&mut db).unwrap();
        let mut rows = Vec::new();
        // Eight days of windows every 10 minutes for two tenants and two types.
        for i in 0..(8 * 24 * 6) {
            let at = now - TimeDelta::minutes(10 * i);
            let at = at - TimeDelta::seconds(i64::from(chrono::Timelike::second(&at)));
            for (tenant, ty) in [
                ("acme", "ocr_result"),
                ("acme", "llm_extraction"),
                ("globex", "ocr_result"),
            ] {
                rows.push(stat_delta(
                    tenant,
                    ty,
                    at,
                    6 + i % 5,
                    1 + i % 3,
                    1_400 + i % 600,
                ));
            }
        }
        upsert_statistics(&mut db, &rows).unwrap();
        insert_event(
            &mut db,
            &[EventRecord {
                occurred_at: now - TimeDelta::minutes(3),
                event_type: "alert.hit_ratio".to_owned(),
                severity: "warning".to_owned(),
                tenant_id: Some(markup.to_owned()),
                cache_type: Some("ocr_result".to_owned()),
                details: "hit ratio 0.62 below 0.8".to_owned(),
            }],
        )
        .unwrap();
    }
    let server = Server::start(&redis.url(), pg.url());
    let driver = Driver::start().await;
    let browser = driver.session().await;

    // Sign in through the form.
    browser.go(&format!("{}/dashboard", server.base)).await;
    browser.type_into("#token", ADMIN).await;
    browser.click("button[type=submit]").await;
    browser
        .until("document.body.dataset.refreshes >= 1", "the first refresh")
        .await;

    // Every chart is drawn from the seeded data (24 hours: hourly points, 24 or 25 of them — 23 when the data was
    // seeded just before an hour began and the page asked just after: the hour just begun holds no row yet, and
    // the first hour of the range starts after the last seeded row of its hour).
    // (Until session 38 the server's start-up flush always put a row in the current hour; it flushes after its
    // first interval now, and a fresh-clone run at 05:00:00 drew 23.)
    for chart in [
        "chart-hit-ratio",
        "chart-latency",
        "chart-traffic",
        "chart-bytes",
        "chart-saved",
    ] {
        let drawn = browser
            .script(&format!(
                "const el = document.getElementById('{chart}'); \
                 return [Number(el.dataset.points), el.querySelectorAll('canvas').length, \
                         el.querySelectorAll('.u-legend .u-series').length];"
            ))
            .await;
        assert!(
            (23..=25).contains(&drawn[0].as_u64().unwrap()) && drawn[1].as_u64().unwrap() >= 1,
            "{chart}: {drawn}"
        );
        assert!(drawn[2].as_u64().unwrap() >= 2, "{chart} legend: {drawn}");
    }
    let tile = browser
        .script("return document.getElementById('tile-hit-ratio').textContent;")
        .await;
    assert!(tile.as_str().unwrap().ends_with(" %"), "{tile}");

    // The tenant with markup is text in the event log, and nothing it says ran.
    let events = browser
        .script(
            "const t = document.getElementById('events'); \
             return [t.querySelector('tbody').textContent, t.querySelectorAll('img').length, document.title];",
        )
        .await;
    assert!(events[0].as_str().unwrap().contains(markup), "{events}");
    assert_eq!(events[1], 0, "{events}");
    assert_eq!(events[2], "fernando-cache", "{events}");

    // One hour: the recorded windows (one every 10 minutes); seven days: hourly points.
    for (range, points) in [("1h", "[6, 7]"), ("7d", "[168, 169]")] {
        browser
            .script(&format!(
                "const r = document.getElementById('range'); r.value = '{range}'; \
                 r.dispatchEvent(new Event('change'));"
            ))
            .await;
        browser
            .until(
                &format!("{points}.includes(Number(document.getElementById('chart-traffic').dataset.points))"),
                &format!("the {range} range's points"),
            )
            .await;
    }
    let before = browser
        .script("return document.body.dataset.refreshes;")
        .await;
    browser
        .script(
            "const t = document.getElementById('tenant'); \
             if (![...t.options].some(o => o.value === 'globex')) { const o = document.createElement('option'); \
             o.value = 'globex'; o.textContent = 'globex'; t.appendChild(o); } \
             t.value = 'globex'; t.dispatchEvent(new Event('change'));",
        )
        .await;
    browser
        .until(
            &format!("document.body.dataset.refreshes > {before}"),
            "the filtered refresh",
        )
        .await;

    // Live view: new traffic from acme shows in the tiers table at the next refresh.
    let doc = "0".repeat(64);
    let _ = server
        .get(&format!("/v1/documents/{doc}"), Some(ACME))
        .await;
    browser
        .until(
            "[...document.querySelectorAll('#live tbody tr')].some(r => r.textContent.startsWith('acme'))",
            "acme's live counters",
        )
        .await;

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = std::env::var("FERNANDO_CACHE_SCREENSHOT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/dashboard.png").to_owned()
    });
    // The workspace's target folder may live elsewhere (CARGO_TARGET_DIR): make sure the folder exists.
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, &png).unwrap();

    // Sign out from the page: back at the sign-in form, and the data endpoints refuse this browser.
    browser.click("#sign-out button").await;
    browser
        .until(
            "!!document.getElementById('token') && !document.getElementById('chart-traffic')",
            "the sign-in form after signing out",
        )
        .await;
    let status = browser
        .call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({
                "script": "const done = arguments[0]; fetch('/v1/admin/series?range=24h').then(r => done(r.status));",
                "args": []
            })),
        )
        .await;
    assert_eq!(status, 401, "signed out");

    // Without the token: the sign-in form, and the data endpoints refuse the page.
    let anonymous = driver.session().await;
    anonymous.go(&format!("{}/dashboard", server.base)).await;
    let form = anonymous
        .script("return [!!document.getElementById('token'), !!document.getElementById('chart-traffic')];")
        .await;
    assert_eq!(form, json!([true, false]));
    let status = anonymous
        .call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({
                "script": "const done = arguments[0]; fetch('/v1/admin/series?range=24h').then(r => done(r.status));",
                "args": []
            })),
        )
        .await;
    assert_eq!(status, 401);
}

//! What a newcomer meets before anything runs (issue 30): a production `serve` that could serve nobody refuses
//! to start and says what to set, one missing half of its credentials is a loud warning, and the console says
//! that admin sign-in is not configured rather than blaming a token; a misspelt setting is answered in our own
//! words — the variable, the value, the valid ones, the nearest — and the profile's short forms are accepted.

mod support;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use fernando_cache_testkit::RedisServer;
use support::{ACME, Server};

/// The program with a home of its own and no settings of ours from the test run's environment.
fn program(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fernando-cache"));
    c.env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("FERNANDO_CACHE_ENV")
        .env_remove("FERNANDO_CACHE_CONFIG_DIR")
        .env_remove("FERNANDO_CACHE__DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `command` to its end, killing it after 30 s (a server that started when it should not have).
fn run(mut command: Command) -> Output {
    let mut child = command.spawn().expect("start fernando-cache");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Exit code 2 and one line on stderr, which is returned.
fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("fernando-cache: "), "{stderr}");
    stderr
}

/// A config folder whose `local.toml` is `toml`.
fn config_dir(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.toml"), toml).unwrap();
    dir
}

#[test]
fn a_production_server_without_keys_or_admin_token_refuses_to_start_and_says_what_to_set() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut c = program(home.path());
    c.args(["--env", "production", "--config-dir"])
        .arg(empty.path())
        .args(["--redis-url", "redis://127.0.0.1:9/0"])
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = run(c);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it started"
    );
    let e = one_line_error(&out);
    for needle in [
        "server.api_keys",
        "server.admin_token_sha256",
        "FERNANDO_CACHE__SERVER__ADMIN_TOKEN_SHA256",
        "sha256sum",
    ] {
        assert!(e.contains(needle), "{needle:?} missing: {e}");
    }
}

/// `serve` on the test profile with `local.toml` layered on it, until its first WARN naming `needle` is logged.
async fn serve_warning(
    redis: &RedisServer,
    toml: &str,
    needle: &str,
) -> (Server, tempfile::TempDir) {
    let dir = config_dir(toml);
    let server = Server::spawn(
        &redis.url(),
        &[
            "--config-dir",
            dir.path().to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server
        .log_lines()
        .iter()
        .any(|l| l.contains("WARN") && l.contains(needle))
    {
        assert!(
            Instant::now() < deadline,
            "no warning naming {needle}: {:?}",
            server.log_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_serve_warns_and_the_console_says_sign_in_is_not_configured() {
    let redis = RedisServer::start();
    let (server, _dir) = serve_warning(
        &redis,
        "[server]\nadmin_token_sha256 = \"\"\n",
        "server.admin_token_sha256",
    )
    .await;
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("NO ADMIN TOKEN")),
        "{:?}",
        server.log_lines()
    );
    // Tenants are still served.
    assert_eq!(
        server.get("/v1/cache/stats", Some(ACME)).await.status(),
        200
    );

    let page = server.get("/dashboard", None).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Admin sign-in is not configured")
            && body.contains("server.admin_token_sha256"),
        "{body}"
    );
    assert!(!body.contains("That token was not accepted"), "{body}");

    let r = server
        .client
        .post(format!("{}/dashboard/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("Admin sign-in is not configured"), "{body}");
    assert!(!body.contains("That token was not accepted"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tenant_keys_serve_warns_that_every_tenant_route_answers_401() {
    let redis = RedisServer::start();
    let (server, _dir) =
        serve_warning(&redis, "[server]\napi_keys = []\n", "server.api_keys").await;
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("NO TENANT API KEYS") && l.contains("401")),
        "{:?}",
        server.log_lines()
    );
    assert_eq!(
        server.get("/v1/cache/stats", Some(ACME)).await.status(),
        401
    );
}

#[test]
fn a_misspelt_variable_names_itself_its_value_the_valid_ones_and_the_nearest() {
    let home = tempfile::tempdir().unwrap();
    for (var, value, needles) in [
        (
            "FERNANDO_CACHE__BACKEND",
            "reddis",
            &[
                "`backend`",
                "FERNANDO_CACHE__BACKEND=reddis",
                "memory, disk, redis",
                r#"did you mean "redis"?"#,
            ][..],
        ),
        (
            "FERNANDO_CACHE__COMMAND_TIMEOUT",
            "abc",
            &[
                "`command_timeout`",
                "FERNANDO_CACHE__COMMAND_TIMEOUT=abc",
                "250ms",
            ][..],
        ),
    ] {
        let mut c = program(home.path());
        c.args(["stats", "--json"]).env(var, value);
        let e = one_line_error(&run(c));
        for needle in needles {
            assert!(e.contains(needle), "{needle:?} missing: {e}");
        }
        assert!(
            !e.contains("variant constructor") && !e.contains("BackendKind"),
            "{e}"
        );
    }
}

#[test]
fn the_profiles_short_forms_are_accepted_and_a_misspelt_profile_gets_the_nearest() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("stats-here");
    // `prod` is production: its statistics default to SQLite in the data folder, which holds nothing yet.
    let mut c = program(home.path());
    c.args(["--env", "prod", "--data-dir"])
        .arg(&data)
        .args(["stats", "--json"]);
    let out = run(c);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = program(home.path());
    c.args(["stats", "--json"]).env("FERNANDO_CACHE_ENV", "dev");
    assert_eq!(run(c).status.code(), Some(0));

    let mut c = program(home.path());
    c.args(["--env", "prodution", "stats"]);
    let e = one_line_error(&run(c));
    assert!(
        e.contains("--env") && e.contains(r#"did you mean "production"?"#),
        "{e}"
    );
    let mut c = program(home.path());
    c.args(["stats"]).env("FERNANDO_CACHE_ENV", "qa");
    let e = one_line_error(&run(c));
    assert!(
        e.contains("FERNANDO_CACHE_ENV=qa") && e.contains("(or prod)"),
        "{e}"
    );

    let mut c = program(home.path());
    c.arg("--help");
    let help = String::from_utf8_lossy(&run(c).stdout).into_owned();
    assert!(
        help.contains("development (or dev)") && help.contains("production (or prod)"),
        "{help}"
    );
}

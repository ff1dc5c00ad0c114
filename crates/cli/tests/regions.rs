//! Replication between regions (issue 33, design 0026), with processes: each region its own redis-server, the
//! writers and readers separate runs of the real binary, and `fernando-cache replicate` a process of its own
//! that reaches the other region through a TCP relay adding latency, which a test can cut.

use std::{
    io::Write,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use fernando_cache_testkit::{RedisCluster, RedisServer, SentinelGroup, TcpProxy};
use serde_json::Value;
use support::Server;

mod support;

/// The writing region and the applying one.
const EU: &str = "eu";
const US: &str = "us";
/// The stream EU appends to (US's group on it is its only one).
const STREAM: &str = "fernando:test:_repl:eu";
/// The link's latency, each way.
const LINK: Duration = Duration::from_millis(20);
/// Longest a test waits for replication to show (bounded waits, not timings).
const PATIENCE: Duration = Duration::from_secs(30);

/// One run of the binary against `url` as region `region`, with `stdin`.
fn cli(url: &str, region: &str, args: &[&str], stdin: &[u8]) -> Output {
    cli_with(url, region, args, stdin, &[])
}

/// [`cli`] with more of the environment.
fn cli_with(url: &str, region: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", url])
        .args(args)
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__REGIONS__NAME", region)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fernando-cache");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `out`, once it is known to have succeeded (else its stderr is the failure).
fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tenant erase` of `tenant` in `region`.
fn erase(url: &str, region: &str, tenant: &str) {
    succeeded(cli(
        url,
        region,
        &["tenant", "erase", "--tenant", tenant],
        b"",
    ));
}

fn set(url: &str, region: &str, tenant: &str, key: &str, value: &str) {
    set_typed(url, region, tenant, "ocr_result", key, value);
}

fn set_typed(url: &str, region: &str, tenant: &str, cache_type: &str, key: &str, value: &str) {
    succeeded(cli(
        url,
        region,
        &entry_args("set", tenant, cache_type, key),
        value.as_bytes(),
    ));
}

/// `cache set` or `cache get` of one entry.
fn entry_args<'a>(
    verb: &'a str,
    tenant: &'a str,
    cache_type: &'a str,
    key: &'a str,
) -> [&'a str; 8] {
    [
        "cache", verb, "--tenant", tenant, "--type", cache_type, "--key", key,
    ]
}

/// `cache invalidate` of acme's `ocr_result` entries with `strategy`.
fn invalidate_args(strategy: &str) -> [&str; 8] {
    [
        "cache",
        "invalidate",
        "--tenant",
        "acme",
        "--type",
        "ocr_result",
        "--strategy",
        strategy,
    ]
}

/// Invalidates acme's `ocr_result` entries in EU with `strategy`.
fn invalidate(url: &str, strategy: &str) {
    succeeded(cli(url, EU, &invalidate_args(strategy), b""));
}

/// The value region `region` holds for `key`, if any.
fn get(url: &str, region: &str, tenant: &str, key: &str) -> Option<String> {
    get_typed(url, region, tenant, "ocr_result", key)
}

fn get_typed(url: &str, region: &str, tenant: &str, cache_type: &str, key: &str) -> Option<String> {
    let out = cli(
        url,
        region,
        &entry_args("get", tenant, cache_type, key),
        b"",
    );
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).unwrap()),
        Some(1) => None,
        _ => panic!("cache get failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// `fernando-cache replicate`; killed on drop.
struct Replicating(Child);

impl Replicating {
    /// EU's stream (reached at `from`) applied to US (at `local`), as `consumer`.
    fn start(local: &str, from: &str, consumer: &str) -> Replicating {
        Replicating::between(local, US, from, EU, consumer)
    }

    /// Region `from_region`'s stream (reached at `from`) applied to region `here` (at `local`).
    fn between(
        local: &str,
        here: &str,
        from: &str,
        from_region: &str,
        consumer: &str,
    ) -> Replicating {
        Replicating::spawn(local, here, from, from_region, consumer, Stdio::null())
    }

    /// [`Replicating::between`] with more of the environment.
    fn between_with(
        local: &str,
        here: &str,
        from: &str,
        from_region: &str,
        env: &[(&str, &str)],
    ) -> Replicating {
        Replicating::spawn_with(local, here, from, from_region, "r1", Stdio::null(), env)
    }

    /// [`Replicating::start`], what it logs written to `log`.
    fn logged(local: &str, from: &str, consumer: &str, log: &std::path::Path) -> Replicating {
        let log = std::fs::File::create(log).unwrap();
        Replicating::spawn(local, US, from, EU, consumer, Stdio::from(log))
    }

    fn spawn(
        local: &str,
        here: &str,
        from: &str,
        from_region: &str,
        consumer: &str,
        log: Stdio,
    ) -> Replicating {
        Replicating::spawn_with(local, here, from, from_region, consumer, log, &[])
    }

    fn spawn_with(
        local: &str,
        here: &str,
        from: &str,
        from_region: &str,
        consumer: &str,
        log: Stdio,
        env: &[(&str, &str)],
    ) -> Replicating {
        let child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", local, "replicate"])
            .args([
                "--from",
                from,
                "--region",
                from_region,
                "--consumer",
                consumer,
            ])
            .env_remove("FERNANDO_CACHE_ENV")
            .env("FERNANDO_CACHE__REGIONS__NAME", here)
            .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "2s")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run fernando-cache replicate");
        Replicating(child)
    }

    /// SIGKILL: no chance to acknowledge anything more.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Replicating {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done` holds, at most [`PATIENCE`]; `what` says what did not happen.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one group on EU's stream (US's): `(entries not yet delivered, delivered but not acknowledged)`.
fn behind(eu: &RedisServer) -> (Option<u64>, u64) {
    eu.stream_group_behind(STREAM)
}

fn caught_up(eu: &RedisServer) {
    wait_until("US caught up with EU's stream", || {
        behind(eu) == (Some(0), 0)
    });
}

/// Two regions, US reaching EU through a relay with [`LINK`] latency.
fn regions() -> (RedisServer, RedisServer, TcpProxy) {
    let (eu, us) = (RedisServer::start(), RedisServer::start());
    let link = TcpProxy::start_with_latency(&format!("127.0.0.1:{}", eu.port()), LINK);
    (eu, us, link)
}

/// [`regions`] with US replicating EU, and acme's `key` written in EU with `value` and seen in US.
fn replicating_with(key: &str, value: &str) -> (RedisServer, RedisServer, TcpProxy, Replicating) {
    let (eu, us, link) = regions();
    let replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", key, value);
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", key).is_some()
    });
    (eu, us, link, replicating)
}

/// The keys of `tenant` left in `region` other than its replicated types' invalidation marks, which an erasure
/// leaves (a version each, no data: design 0026) — and there must be: one for `ocr_result` at least.
fn erased_but_marks(region: &RedisServer, tenant: &str) -> Vec<String> {
    let keys = region
        .cli(&["KEYS", &format!("*tenant_{tenant}*")])
        .unwrap();
    let (marks, left): (Vec<String>, Vec<String>) = keys
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .partition(|k| k.contains(":_mark:"));
    assert!(
        marks.iter().any(|m| m.ends_with(":_mark:ocr_result")),
        "the erasure left no mark of {tenant}'s replicated types: {marks:?}"
    );
    left
}

fn url_of(link: &TcpProxy) -> String {
    format!("redis://{}", link.addr())
}

#[test]
fn a_value_written_in_one_region_is_read_in_the_other_and_its_invalidation_and_erasure_follow() {
    let (eu, us, link) = regions();
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", "doc-1", "text of doc 1");
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", "doc-1").as_deref() == Some("text of doc 1")
    });
    // Applied entries are never appended to US's own stream (no echo).
    assert_eq!(
        us.cli(&["EXISTS", "fernando:test:_repl:us"])
            .unwrap()
            .trim(),
        "0"
    );

    invalidate(&eu.url(), "lazy");
    wait_until("EU's invalidation in US", || {
        get(&us.url(), US, "acme", "doc-1").is_none()
    });

    set(&eu.url(), EU, "acme", "doc-2", "text of doc 2");
    set(&eu.url(), EU, "globex", "doc-2", "globex's own");
    wait_until("EU's second values in US", || {
        get(&us.url(), US, "acme", "doc-2").is_some()
            && get(&us.url(), US, "globex", "doc-2").is_some()
    });
    erase(&eu.url(), EU, "acme");
    caught_up(&eu);
    let left = erased_but_marks(&us, "acme");
    assert!(left.is_empty(), "acme erased in EU left in US: {left:?}");
    assert_eq!(
        get(&us.url(), US, "globex", "doc-2").as_deref(),
        Some("globex's own"),
        "another tenant is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_processed_in_one_region_are_answered_from_the_other_regions_cache() {
    // The LLM is a local endpoint that counts its calls; scans are read by the real tesseract (`--strict`: a
    // machine without it fails the test, saying so, rather than skip the scans).
    let (llm, calls) = support::counting_llm(Duration::ZERO).await;
    let llm_url = format!("http://{llm}/v1");
    let env = [
        ("FERNANDO_CACHE__PROCESSOR__EXTRACTOR", "openai"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__URL", llm_url.as_str()),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__MODEL", "test-model"),
        ("FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY", "sk-test"),
    ];
    let (eu, us, link) = regions();
    let acme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/acme");
    let process = |url: &str, region: &str| -> Value {
        let out = succeeded(cli_with(
            url,
            region,
            &["process", "--json", "--strict", "--tenant", "acme", acme],
            b"",
            &env,
        ));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = process(&eu.url(), EU);
    let docs = first["documents"].as_array().unwrap();
    let scans = docs
        .iter()
        .filter(|d| d["path"].as_str().unwrap().ends_with(".png"))
        .count();
    assert_eq!(scans, 2, "{first}");
    let paid = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(paid >= 5, "EU's extractions called the LLM {paid} times");
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    caught_up(&eu);
    let there = process(&us.url(), US);
    assert_eq!(there["documents"].as_array().unwrap().len(), docs.len());
    for doc in there["documents"].as_array().unwrap() {
        let stages = &doc["stages"];
        // OCR text and extraction are the replicated types: neither tesseract nor the LLM ran in US.
        assert_eq!(stages["text"], "hit", "{doc}");
        assert_eq!(stages["extraction"], "hit", "{doc}");
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        paid,
        "US called the LLM for what EU paid for"
    );
}

#[test]
fn an_invalidation_made_while_the_link_is_cut_is_applied_once_it_heals() {
    let (eu, us, link, _replicating) = replicating_with("doc-1", "before");
    link.block();
    invalidate(&eu.url(), "eager");
    // Cut off, US cannot know yet: the invalidation waits in EU's stream.
    assert_eq!(
        behind(&eu).0,
        Some(1),
        "the invalidation is kept in EU's stream while the link is down"
    );
    link.unblock();
    wait_until(
        "the invalidation applied in US once the link healed",
        || get(&us.url(), US, "acme", "doc-1").is_none(),
    );
    caught_up(&eu);
}

#[test]
fn a_replicator_killed_mid_stream_leaves_nothing_behind_when_it_comes_back() {
    let (eu, us, link) = regions();
    const VALUES: usize = 40;
    for i in 0..VALUES {
        set(
            &eu.url(),
            EU,
            "acme",
            &format!("doc-{i}"),
            &format!("text {i}"),
        );
    }
    let first = Replicating::start(&us.url(), &url_of(&link), "r1");
    wait_until("the first values in US", || {
        get(&us.url(), US, "acme", "doc-0").is_some()
    });
    first.kill();
    let (_, pending) = behind(&eu);
    // Started again under its name, it takes back what it was given and never acknowledged, then goes on.
    let _again = Replicating::start(&us.url(), &url_of(&link), "r1");
    caught_up(&eu);
    for i in 0..VALUES {
        assert_eq!(
            get(&us.url(), US, "acme", &format!("doc-{i}")).as_deref(),
            Some(format!("text {i}").as_str()),
            "value {i} lost (the killed replicator left {pending} pending)"
        );
    }
}

#[test]
fn two_regions_writing_one_key_end_with_the_same_value() {
    let (eu, us, link) = regions();
    for round in 0..5 {
        let key = format!("doc-{round}");
        // Written in both at once, neither region having seen the other's: each value then reaches the other
        // region while that region's own is there.
        std::thread::scope(|s| {
            s.spawn(|| set(&eu.url(), EU, "acme", &key, &format!("eu's {round}")));
            s.spawn(|| set(&us.url(), US, "acme", &key, &format!("us's {round}")));
        });
        // Each region replicates the other: US reads EU's stream through the relay, EU reads US's directly.
        let into_us = Replicating::start(&us.url(), &url_of(&link), "r1");
        let into_eu = Replicating::between(&eu.url(), EU, &us.url(), US, "r1");
        caught_up(&eu);
        wait_until("US's stream applied in EU", || {
            us.stream_group_behind("fernando:test:_repl:us") == (Some(0), 0)
        });
        into_us.kill();
        into_eu.kill();
        let (in_eu, in_us) = (
            get(&eu.url(), EU, "acme", &key),
            get(&us.url(), US, "acme", &key),
        );
        assert!(in_eu.is_some(), "round {round}: EU lost the key");
        assert_eq!(in_eu, in_us, "round {round}: the regions disagree");
    }
}

#[test]
fn a_write_older_than_a_value_already_applied_gives_way_to_it_in_both_regions() {
    let (eu, us, link) = regions();
    let _into_us = Replicating::start(&us.url(), &url_of(&link), "r1");
    let _into_eu = Replicating::between(&eu.url(), EU, &us.url(), US, "r1");
    set(&eu.url(), EU, "acme", "doc", "eu's");
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", "doc").as_deref() == Some("eu's")
    });
    // US writes the key after it applied EU's value, from a process whose clock runs 10 s behind: US's write
    // lands over the newer value, which EU keeps (US's is older). Neither region may keep disagreeing.
    let args = entry_args("set", "acme", "ocr_result", "doc");
    succeeded(cli_with(
        &us.url(),
        US,
        &args,
        b"us's",
        &[("FERNANDO_CACHE_FAULT_CLOCK_SKEW_MS", "-10000")],
    ));
    wait_until("both regions holding EU's newer value", || {
        let (in_eu, in_us) = (
            get(&eu.url(), EU, "acme", "doc"),
            get(&us.url(), US, "acme", "doc"),
        );
        in_eu.as_deref() == Some("eu's") && in_us.as_deref() == Some("eu's")
    });
}

#[test]
fn sealed_values_cross_regions_sealed_and_an_older_write_gives_way_to_a_newer_one() {
    // Both regions seal document data with the same key ring (the key id travels, never the key).
    const SEALED: [(&str, &str); 3] = [
        ("FERNANDO_CACHE__ENCRYPTION__DOCUMENT_DATA", "true"),
        (
            "FERNANDO_CACHE_ENCRYPTION_KEYS",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("FERNANDO_CACHE__COMPRESSION__ENABLED", "false"),
    ];
    let (eu, us, link) = regions();
    let _into_us = Replicating::between_with(&us.url(), US, &url_of(&link), EU, &SEALED);
    let _into_eu = Replicating::between_with(&eu.url(), EU, &us.url(), US, &SEALED);
    let run = |url: &str, region: &str, verb: &str, value: &str, skew: &str| {
        let mut env = SEALED.to_vec();
        env.push(("FERNANDO_CACHE_FAULT_CLOCK_SKEW_MS", skew));
        cli_with(
            url,
            region,
            &entry_args(verb, "acme", "ocr_result", "doc"),
            value.as_bytes(),
            &env,
        )
    };
    let held = |url: &str, region: &str| {
        let out = run(url, region, "get", "", "0");
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    };
    assert!(
        run(&eu.url(), EU, "set", "IBAN DE89 of EU", "0")
            .status
            .success()
    );
    wait_until("EU's sealed value in US", || {
        held(&us.url(), US).as_deref() == Some("IBAN DE89 of EU")
    });
    let key = us.cli(&["KEYS", "*tenant_acme*:ocr_result:doc"]).unwrap();
    assert_eq!(key.lines().count(), 1, "{key}");
    let raw = us.cli(&["GET", key.trim()]).unwrap();
    assert!(
        raw.contains("FC") && !raw.contains("DE89"),
        "US holds EU's value in clear: {raw}"
    );
    // US writes after, its clock behind: EU's sealed copy is the newer, and both regions end with it.
    assert!(
        run(&us.url(), US, "set", "IBAN DE89 of US", "-10000")
            .status
            .success()
    );
    wait_until("both regions holding EU's newer sealed value", || {
        held(&eu.url(), EU).as_deref() == Some("IBAN DE89 of EU")
            && held(&us.url(), US).as_deref() == Some("IBAN DE89 of EU")
    });
}

#[test]
fn a_value_written_before_an_invalidation_or_erasure_in_the_applying_region_is_not_applied_after_it()
 {
    let (eu, us, link) = regions();
    // Written in EU while US does not read EU yet: its entries wait in EU's stream.
    set(
        &eu.url(),
        EU,
        "acme",
        "doc-1",
        "computed before US invalidated",
    );
    set(
        &eu.url(),
        EU,
        "globex",
        "doc-1",
        "computed before US erased",
    );
    set(
        &eu.url(),
        EU,
        "initech",
        "doc-1",
        "nothing happened to initech",
    );
    // Then US invalidates acme's OCR results (a document of acme changed there) and erases globex.
    succeeded(cli(&us.url(), US, &invalidate_args("lazy"), b""));
    erase(&us.url(), US, "globex");
    // EU's older values reach US after: neither comes back there; the untouched tenant's does.
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    caught_up(&eu);
    assert_eq!(
        get(&us.url(), US, "initech", "doc-1").as_deref(),
        Some("nothing happened to initech")
    );
    assert_eq!(
        get(&us.url(), US, "acme", "doc-1"),
        None,
        "a value older than US's invalidation was applied after it"
    );
    assert_eq!(
        get(&us.url(), US, "globex", "doc-1"),
        None,
        "a value older than US's erasure was applied after it"
    );
    // What EU writes after is newer, and is applied.
    set(&eu.url(), EU, "acme", "doc-1", "computed after");
    wait_until("EU's newer value in US", || {
        get(&us.url(), US, "acme", "doc-1").as_deref() == Some("computed after")
    });
}

/// `cache set` of acme's `ocr_result` `key` in `region`, by a process whose clock is shifted by `skew_ms`.
fn set_skewed(url: &str, region: &str, tenant: &str, key: &str, value: &str, skew_ms: &str) {
    succeeded(cli_with(
        url,
        region,
        &entry_args("set", tenant, "ocr_result", key),
        value.as_bytes(),
        &[("FERNANDO_CACHE_FAULT_CLOCK_SKEW_MS", skew_ms)],
    ));
}

#[test]
fn a_value_stamped_by_a_clock_ahead_before_an_erasure_elsewhere_does_not_bring_the_tenant_back() {
    let (eu, us, _link) = regions();
    // US's clock runs 10 s ahead; it writes a tenant's data, then EU erases the tenant — before either region
    // applied anything of the other's.
    set_skewed(&us.url(), US, "gdpr", "p2", "personal data", "10000");
    erase(&eu.url(), EU, "gdpr");
    // EU applies US's stream first: the value's version is after the erasure by US's clock, not by EU's.
    let _into_eu = Replicating::between(&eu.url(), EU, &us.url(), US, "r1");
    wait_until("EU applied US's stream", || {
        us.stream_group_behind("fernando:test:_repl:us") == (Some(0), 0)
    });
    assert_eq!(
        get(&eu.url(), EU, "gdpr", "p2"),
        None,
        "the erased tenant's data came back in EU"
    );
    let _into_us = Replicating::start(&us.url(), &eu.url(), "r1");
    caught_up(&eu);
    assert_eq!(get(&us.url(), US, "gdpr", "p2"), None);
}

#[test]
fn a_value_older_than_the_stream_keeps_entries_is_not_applied() {
    let (eu, us, link) = regions();
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    // Versioned two hours ago (past the stream's 1 h): the marks of anything invalidated in US since may be gone,
    // so it is not known to be newer than what US invalidated.
    set_skewed(
        &eu.url(),
        EU,
        "acme",
        "old",
        "versioned 2 h ago",
        "-7200000",
    );
    set(&eu.url(), EU, "acme", "new", "versioned now");
    wait_until("EU's recent value in US", || {
        get(&us.url(), US, "acme", "new").is_some()
    });
    caught_up(&eu);
    assert_eq!(get(&us.url(), US, "acme", "old"), None);
    assert!(get(&eu.url(), EU, "acme", "old").is_some());
}

#[test]
fn an_invalidation_of_another_key_does_not_keep_a_newer_value_out() {
    let (eu, us, link) = regions();
    let into_us = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", "k5", "old, from EU");
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", "k5").is_some()
    });
    drop(into_us);
    // US writes a newer value of k5; then EU invalidates another document of acme — its mark is per tenant and
    // type, and newer than US's value.
    set(&us.url(), US, "acme", "k5", "new, from US");
    let data = tempfile::tempdir().unwrap();
    succeeded(cli_with(
        &eu.url(),
        EU,
        &[
            "--data-dir",
            data.path().to_str().unwrap(),
            "event",
            "document.updated",
            "--tenant",
            "acme",
            "--subject",
            "doc-9",
        ],
        b"",
        &[("FERNANDO_CACHE__STATISTICS__ENABLED", "true")],
    ));
    let _into_eu = Replicating::between(&eu.url(), EU, &us.url(), US, "r1");
    let _into_us = Replicating::start(&us.url(), &url_of(&link), "r1");
    wait_until("both regions holding US's newer value", || {
        get(&eu.url(), EU, "acme", "k5").as_deref() == Some("new, from US")
            && get(&us.url(), US, "acme", "k5").as_deref() == Some("new, from US")
    });
}

#[test]
fn a_value_left_pending_by_a_replicator_that_died_is_applied_by_the_one_that_claims_it() {
    let (eu, us, link) = regions();
    let first = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", "cl2", "before");
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", "cl2").is_some()
    });
    first.kill();
    set(&eu.url(), EU, "acme", "cl2", "after");
    // A replicator of US takes the entry and dies before it applies it: it stays pending under its name.
    eu.cli(&[
        "XREADGROUP",
        "GROUP",
        "to-us",
        "dead",
        "COUNT",
        "10",
        "STREAMS",
        STREAM,
        ">",
    ])
    .unwrap();
    // Another, under another name, claims it once it was left idle long enough (10 s), and applies its value.
    let _second = Replicating::start(&us.url(), &url_of(&link), "r2");
    wait_until("the claimed value in US", || {
        get(&us.url(), US, "acme", "cl2").as_deref() == Some("after")
    });
}

#[test]
fn entries_the_region_could_not_take_are_applied_in_their_order_once_it_can() {
    let (eu, us, _link, _replicating) = replicating_with("warm", "first");
    // US's Redis stops answering while a value comes: delivered to the replicator, not applied (its command
    // timeout is 2 s). Then US answers again, and the value's invalidation comes.
    us.pause();
    set(&eu.url(), EU, "acme", "doc-1", "invalidated in EU");
    std::thread::sleep(Duration::from_secs(3));
    us.resume();
    invalidate(&eu.url(), "lazy");
    caught_up(&eu);
    assert_eq!(
        get(&us.url(), US, "acme", "doc-1"),
        None,
        "the value was applied after the invalidation that followed it in EU"
    );
}

#[test]
fn entries_no_region_wrote_are_skipped_and_what_follows_them_is_applied() {
    let (eu, us, link) = regions();
    set(&eu.url(), EU, "acme", "doc-1", "erased in EU");
    // Entries someone with write access to EU's Redis added by hand: too many fields, a field name that is not
    // text, an erasure of a tenant no region can hold.
    let mut many: Vec<Vec<u8>> = vec![b"XADD".to_vec(), STREAM.into(), b"*".to_vec()];
    for i in 0..33 {
        many.push(format!("f{i}").into_bytes());
        many.push(b"v".to_vec());
    }
    eu.command(&many).unwrap();
    eu.command(&[&b"XADD"[..], STREAM.as_bytes(), b"*", b"\xff\xfe", b"v"])
        .unwrap();
    set(&eu.url(), EU, "globex", "kept", "globex's own");
    // An erasure that says it was made in US, in EU's stream.
    eu.cli(&[
        "XADD", STREAM, "*", "op", "erase", "from", "us", "arg", "", "tenant", "globex",
    ])
    .unwrap();
    let long = "l".repeat(200);
    eu.cli(&[
        "XADD", STREAM, "*", "op", "erase", "from", "eu", "arg", "", "tenant", &long,
    ])
    .unwrap();
    erase(&eu.url(), EU, "acme");
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    caught_up(&eu);
    let left = erased_but_marks(&us, "acme");
    assert!(
        left.is_empty(),
        "the erasure behind the bad entries was not applied: {left:?}"
    );
    assert_eq!(
        get(&us.url(), US, "globex", "kept").as_deref(),
        Some("globex's own"),
        "an entry naming another region than the stream's was applied"
    );
}

#[test]
fn a_value_the_other_region_cannot_read_is_left_and_what_follows_it_is_applied() {
    let (eu, us, link) = regions();
    // A value EU wrote, whose key someone with write access to EU's Redis then turned into a hash: reading it
    // fails every time. Then the same key named 256 times in one entry, and a value written after both.
    set(&eu.url(), EU, "acme", "doc-1", "first");
    let keys = eu.cli(&["--scan", "--pattern", "*acme*doc-1*"]).unwrap();
    let key = keys
        .lines()
        .next()
        .expect("doc-1 is stored in EU")
        .to_owned();
    eu.cli(&["DEL", &key]).unwrap();
    eu.cli(&["HSET", &key, "f", "v"]).unwrap();
    let mut named: Vec<u8> = b"\x02eu\x2d\x04acme\x0aocr_result\x05doc-1".to_vec();
    for _ in 0..255 {
        named.extend_from_slice(b"\x7d\x05doc-1");
    }
    eu.command(&[&b"XADD"[..], STREAM.as_bytes(), b"*", b"ops2", &named])
        .unwrap();
    set(&eu.url(), EU, "globex", "after", "written after it");
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    caught_up(&eu);
    assert_eq!(
        get(&us.url(), US, "globex", "after").as_deref(),
        Some("written after it"),
        "a value behind one that cannot be read was not applied"
    );
    assert_eq!(get(&us.url(), US, "acme", "doc-1"), None);
}

#[test]
fn a_replication_group_that_was_lost_is_made_again_and_what_follows_is_applied() {
    let (eu, us, _link, _replicating) = replicating_with("doc-1", "first");
    set(&us.url(), US, "globex", "own", "computed in us");
    // Deleted by hand here; evicted, or lost with a server that keeps nothing, as well.
    eu.cli(&["XGROUP", "DESTROY", STREAM, "to-us"]).unwrap();
    invalidate(&eu.url(), "lazy");
    wait_until(
        "the invalidation made after the group was lost, applied in US",
        || get(&us.url(), US, "acme", "doc-1").is_none(),
    );
    // What EU's stream held before is not known: a loss, answered as one.
    assert_eq!(
        get(&us.url(), US, "globex", "own"),
        None,
        "a lost group is a loss: every tenant's replicated types are invalidated"
    );
    let noted = us.cli(&["GET", "fernando:test:_repl_applied:eu"]).unwrap();
    assert!(noted.contains("gaps=1"), "{noted}");
}

#[test]
fn entries_trimmed_before_a_region_read_them_invalidate_its_replicated_types_and_it_says_so() {
    let (eu, us, link, replicating) = replicating_with("doc-1", "from eu");
    // US's own values: of a replicated type, of a tenant EU never spoke of; and of a type no region replicates.
    set(&us.url(), US, "globex", "own", "computed in us");
    set_typed(&us.url(), US, "globex", "doc_hash", "h", "kept");
    // US stops reading; EU invalidates acme, then its writers append far more than its stream keeps (bounded
    // to about 100 entries here, as `XADD … MAXLEN ~` does): the invalidation is trimmed before US saw it.
    replicating.kill();
    invalidate(&eu.url(), "lazy");
    eu.cli(&[
        "EVAL",
        "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], 'MAXLEN', '~', '100', '*', 'op', \
         'entries', 'from', 'eu', 'arg', 'lazy', 'tenant', 'filler' .. i, 'type', 'ocr_result') end",
        "1",
        STREAM,
        "1000",
    ])
    .unwrap();
    assert_eq!(
        get(&us.url(), US, "acme", "doc-1").as_deref(),
        Some("from eu"),
        "US cannot know yet"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("replicate.log");
    let _again = Replicating::logged(&us.url(), &url_of(&link), "r1", &log);
    caught_up(&eu);
    assert_eq!(
        get(&us.url(), US, "acme", "doc-1"),
        None,
        "a value EU invalidated is served in US after the invalidation was trimmed unread"
    );
    assert_eq!(
        get(&us.url(), US, "globex", "own"),
        None,
        "not knowing what was lost, every tenant's replicated types are invalidated"
    );
    assert_eq!(
        get_typed(&us.url(), US, "globex", "doc_hash", "h").as_deref(),
        Some("kept"),
        "a type no region replicates is left"
    );
    // Said: in the log, and in the progress US notes on its own Redis.
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("lost before they were applied here"),
        "{said}"
    );
    let noted = us.cli(&["GET", "fernando:test:_repl_applied:eu"]).unwrap();
    assert!(noted.contains("gaps=1"), "{noted}");
    // What came after the loss is applied as usual.
    set(&eu.url(), EU, "acme", "doc-2", "after the loss");
    wait_until("a value written after the loss, in US", || {
        get(&us.url(), US, "acme", "doc-2").is_some()
    });
    assert!(
        us.cli(&["GET", "fernando:test:_repl_applied:eu"])
            .unwrap()
            .contains("gaps=1"),
        "one loss, counted once"
    );
}

/// The value of the sample `name{region="eu"}` in a `/metrics` page.
fn eu_sample(metrics: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{region=\"eu\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_the_regions_it_is_told_of_and_says_how_far_behind_it_is() {
    let (eu, us, link) = regions();
    let from = url_of(&link);
    // A second region, AP, whose Redis never answers: it is reported as never noted, not left out.
    let env = [
        ("FERNANDO_CACHE__REGIONS__NAME", US),
        ("FERNANDO_CACHE__REGIONS__FROM__EU", from.as_str()),
        (
            "FERNANDO_CACHE__REGIONS__FROM__AP",
            "redis://ap-user:ap-secret@127.0.0.1:1",
        ),
    ];
    let server = Server::spawn(&us.url(), &["serve", "--bind", "127.0.0.1:0"], &env);
    tokio::task::block_in_place(|| {
        set(&eu.url(), EU, "acme", "doc-1", "from eu");
        wait_until("EU's value in US, applied by serve", || {
            get(&us.url(), US, "acme", "doc-1").is_some()
        });
        caught_up(&eu);
    });
    // The next note (every second) says it is caught up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(
        eu_sample(&metrics, "fernando_cache_region_behind_entries"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        eu_sample(&metrics, "fernando_cache_region_losses_total"),
        Some(0.0)
    );
    let behind = eu_sample(&metrics, "fernando_cache_region_behind_seconds").unwrap();
    assert!(behind < 5.0, "caught up, yet {behind} s behind");
    assert_eq!(
        eu_sample(&metrics, "fernando_cache_region_noted"),
        Some(1.0)
    );
    assert!(
        metrics.contains("fernando_cache_region_noted{region=\"ap\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("ap-secret"), "AP's password is shown");
    let port = link.port().to_string();
    assert!(!metrics.contains(&port), "the other region's URL is shown");
    // The dashboard's overview: the same, by name.
    let overview: Value = server
        .get("/v1/admin/overview?range=1h", Some(support::ADMIN))
        .await
        .json()
        .await
        .unwrap();
    let region = overview["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "eu")
        .unwrap_or_else(|| panic!("EU is not in {overview}"));
    assert_eq!(region["losses"], 0, "{overview}");
    assert_eq!(region["behind_entries"], 0, "{overview}");
    assert!(!overview.to_string().contains(&port));
    let stats = tokio::task::block_in_place(|| cli_with(&us.url(), US, &["stats"], b"", &env[1..]));
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(
        text.contains("regions applied here") && text.contains("eu  behind"),
        "{text}{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    assert!(!text.contains(&port), "{text}");

    // Cut off from EU, US falls behind, and says so while it lasts.
    link.block();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    let behind = eu_sample(&metrics, "fernando_cache_region_behind_seconds").unwrap();
    assert!(behind >= 2.0, "cut off for 4 s, yet {behind} s behind");
    link.unblock();
    tokio::task::block_in_place(|| {
        invalidate(&eu.url(), "lazy");
        wait_until(
            "the invalidation made after the cut, applied by serve",
            || get(&us.url(), US, "acme", "doc-1").is_none(),
        );
    });
    drop(server);
}

/// A region's Redis in one of the topologies: how the binary reaches it as its own (`--redis-url` and the
/// environment), and how another region names it in `[regions.from.<name>]`.
struct Deployment {
    url: String,
    env: Vec<(String, String)>,
    /// `(key under regions.from.<name>, value)`.
    as_from: Vec<(String, String)>,
    _keep: Box<dyn std::any::Any>,
}

impl Deployment {
    fn standalone() -> Deployment {
        let server = RedisServer::start();
        Deployment {
            url: server.url(),
            env: Vec::new(),
            as_from: vec![("URL".into(), server.url())],
            _keep: Box::new(server),
        }
    }

    fn cluster() -> Deployment {
        let cluster = RedisCluster::start_with(3, 0);
        let urls = cluster.urls();
        let nodes = urls[1..].join(",");
        Deployment {
            url: urls[0].clone(),
            env: vec![
                ("FERNANDO_CACHE__REDIS__MODE".into(), "cluster".into()),
                ("FERNANDO_CACHE__REDIS__NODES".into(), nodes.clone()),
            ],
            as_from: vec![
                ("URL".into(), urls[0].clone()),
                ("MODE".into(), "cluster".into()),
                ("NODES".into(), nodes),
            ],
            _keep: Box::new(cluster),
        }
    }

    fn sentinel() -> Deployment {
        let group = SentinelGroup::start();
        let sentinels = group.sentinel_urls().join(",");
        let master = group.master_name().to_owned();
        Deployment {
            // Only its scheme is used: the sentinels name the primary.
            url: "redis://127.0.0.1:1".into(),
            env: vec![
                ("FERNANDO_CACHE__REDIS__MODE".into(), "sentinel".into()),
                ("FERNANDO_CACHE__REDIS__SENTINELS".into(), sentinels.clone()),
                (
                    "FERNANDO_CACHE__REDIS__SENTINEL_MASTER".into(),
                    master.clone(),
                ),
            ],
            as_from: vec![
                ("URL".into(), "redis://127.0.0.1:1".into()),
                ("MODE".into(), "sentinel".into()),
                ("SENTINELS".into(), sentinels),
                ("SENTINEL_MASTER".into(), master),
            ],
            _keep: Box::new(group),
        }
    }

    fn run(&self, region: &str, args: &[&str], stdin: &[u8]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cli_with(&self.url, region, args, stdin, &env)
    }

    fn get(&self, region: &str, tenant: &str, key: &str) -> Option<String> {
        let out = self.run(region, &entry_args("get", tenant, "ocr_result", key), b"");
        match out.status.code() {
            Some(0) => Some(String::from_utf8(out.stdout).unwrap()),
            Some(1) => None,
            _ => panic!("cache get failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    fn ok(&self, region: &str, args: &[&str], stdin: &[u8]) {
        succeeded(self.run(region, args, stdin));
    }

    /// `fernando-cache replicate` (no `--from`) here, as region `here`, applying `from` named `from_name`.
    fn replicate_from(&self, here: &str, from: &Deployment, from_name: &str) -> Replicating {
        let prefix = format!(
            "FERNANDO_CACHE__REGIONS__FROM__{}__",
            from_name.to_uppercase()
        );
        let child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "--redis-url", &self.url, "replicate"])
            .env_remove("FERNANDO_CACHE_ENV")
            .env("FERNANDO_CACHE__REGIONS__NAME", here)
            .env("FERNANDO_CACHE__COMMAND_TIMEOUT", "2s")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(
                from.as_from
                    .iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run fernando-cache replicate");
        Replicating(child)
    }
}

/// The behaviour every pair of topologies shares: a value crosses, its invalidation and its tenant's erasure
/// follow, another tenant is untouched.
fn crosses_topologies(eu: &Deployment, us: &Deployment) {
    let _replicating = us.replicate_from(US, eu, EU);
    let set = |tenant: &str, key: &str, value: &str| {
        eu.ok(
            EU,
            &entry_args("set", tenant, "ocr_result", key),
            value.as_bytes(),
        );
    };
    set("acme", "doc-1", "text of doc 1");
    set("globex", "doc-1", "globex's own");
    wait_until("EU's values in US", || {
        us.get(US, "acme", "doc-1").as_deref() == Some("text of doc 1")
            && us.get(US, "globex", "doc-1").is_some()
    });
    eu.ok(EU, &invalidate_args("lazy"), b"");
    wait_until("EU's invalidation in US", || {
        us.get(US, "acme", "doc-1").is_none()
    });
    set("acme", "doc-2", "text of doc 2");
    wait_until("EU's second value in US", || {
        us.get(US, "acme", "doc-2").is_some()
    });
    eu.ok(EU, &["tenant", "erase", "--tenant", "acme"], b"");
    wait_until("EU's erasure in US", || {
        us.get(US, "acme", "doc-2").is_none()
    });
    assert_eq!(
        us.get(US, "globex", "doc-1").as_deref(),
        Some("globex's own"),
        "another tenant is untouched"
    );
}

#[test]
fn a_sentinel_region_replicates_into_a_cluster_region() {
    crosses_topologies(&Deployment::sentinel(), &Deployment::cluster());
}

#[test]
fn a_cluster_region_replicates_into_a_standalone_region() {
    crosses_topologies(&Deployment::cluster(), &Deployment::standalone());
}

#[test]
fn a_standalone_region_replicates_into_a_sentinel_region() {
    crosses_topologies(&Deployment::standalone(), &Deployment::sentinel());
}

#[test]
fn a_cluster_regions_stream_is_spread_over_its_primaries_by_tenant_and_every_shard_is_applied() {
    let (eu, us) = (Deployment::cluster(), Deployment::standalone());
    let cluster = eu
        ._keep
        .downcast_ref::<RedisCluster>()
        .expect("a cluster deployment keeps its cluster");
    let tenants: Vec<String> = (0..12).map(|i| format!("tenant-{i}")).collect();
    for t in &tenants {
        eu.ok(
            EU,
            &entry_args("set", t, "ocr_result", "doc"),
            format!("{t}'s text").as_bytes(),
        );
    }
    // The entries are on more than one shard, and the shards on more than one primary.
    let mut holding = Vec::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let streams = node.cli(&["KEYS", "fernando:test:_repl:eu*"]).unwrap();
        let streams: Vec<&str> = streams.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            streams
                .iter()
                .all(|s| s.starts_with("fernando:test:_repl:eu:{s")),
            "{streams:?}"
        );
        if !streams.is_empty() {
            holding.push((i, streams.len()));
        }
    }
    assert!(
        holding.len() >= 2,
        "one primary carries the whole stream: {holding:?}"
    );
    let _replicating = us.replicate_from(US, &eu, EU);
    wait_until("every tenant's value in US", || {
        tenants
            .iter()
            .all(|t| us.get(US, t, "doc").as_deref() == Some(format!("{t}'s text").as_str()))
    });
    // One note a shard of the stream, on US's own Redis.
    let us_redis = us
        ._keep
        .downcast_ref::<RedisServer>()
        .expect("a standalone deployment keeps its server");
    wait_until("a note of each of the 16 shards in US", || {
        let notes = us_redis
            .cli(&["KEYS", "fernando:test:_repl_applied:eu:*"])
            .unwrap();
        notes
            .lines()
            .filter(|l| !l.contains(":loss:") && !l.is_empty())
            .count()
            == 16
    });
}

#[test]
fn a_loss_on_one_shard_invalidates_only_the_tenants_whose_entries_go_there() {
    let (eu, us) = (Deployment::cluster(), Deployment::standalone());
    let cluster = eu
        ._keep
        .downcast_ref::<RedisCluster>()
        .expect("a cluster deployment keeps its cluster");
    // Names of one length, so none is found inside another in a stream's bytes.
    let tenants: Vec<String> = (0..12).map(|i| format!("tenant-{i:02}")).collect();
    let set = |t: &str, value: &str| {
        eu.ok(
            EU,
            &entry_args("set", t, "ocr_result", "doc"),
            value.as_bytes(),
        );
    };
    for t in &tenants {
        set(t, "first");
    }
    let replicating = us.replicate_from(US, &eu, EU);
    wait_until("every tenant's value in US", || {
        tenants
            .iter()
            .all(|t| us.get(US, t, "doc").as_deref() == Some("first"))
    });
    drop(replicating);
    // Which stream shard (and node) each tenant's entries went to.
    let shard_of = |tenant: &str| -> (usize, String) {
        for (i, node) in cluster.nodes().iter().enumerate() {
            let streams = node.cli(&["KEYS", "fernando:test:_repl:eu:*"]).unwrap();
            for stream in streams.lines().filter(|l| !l.is_empty()) {
                if node
                    .cli(&["XRANGE", stream, "-", "+"])
                    .unwrap()
                    .contains(tenant)
                {
                    return (i, stream.to_owned());
                }
            }
        }
        panic!("no stream shard holds {tenant}'s entries");
    };
    let (node, lost) = shard_of(&tenants[0]);
    let on_lost: Vec<&String> = tenants.iter().filter(|t| shard_of(t).1 == lost).collect();
    assert!(on_lost.len() < tenants.len(), "every tenant on one shard");
    // tenant-00 writes again while US does not read, and that shard is trimmed before US reads it.
    set(&tenants[0], "second");
    cluster.nodes()[node]
        .cli(&["XTRIM", &lost, "MAXLEN", "0"])
        .unwrap();
    let _again = us.replicate_from(US, &eu, EU);
    // The loss is answered for the tenants of that shard only: their values are invalidated in US (EU's
    // second value of tenant-00 was lost with the shard's entries), the other tenants' values stay.
    wait_until("the lost shard's tenants invalidated in US", || {
        on_lost.iter().all(|t| us.get(US, t, "doc").is_none())
    });
    for t in tenants.iter().filter(|t| !on_lost.contains(t)) {
        assert_eq!(
            us.get(US, t, "doc").as_deref(),
            Some("first"),
            "{t}, on another shard, was invalidated"
        );
    }
}

#[test]
fn a_region_reads_another_with_that_regions_password_never_its_own() {
    let (eu, us) = (RedisServer::start(), RedisServer::start());
    eu.cli(&["CONFIG", "SET", "requirepass", "eu-secret"])
        .unwrap();
    us.cli(&["CONFIG", "SET", "requirepass", "us-secret"])
        .unwrap();
    let us_env = [("FERNANDO_CACHE__REDIS__PASSWORD", "us-secret")];
    let eu_url = format!("redis://:eu-secret@127.0.0.1:{}", eu.port());
    succeeded(cli_with(
        &eu_url,
        EU,
        &entry_args("set", "acme", "ocr_result", "doc-1"),
        b"from eu",
        &[],
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "--redis-url", &us.url(), "replicate"])
        .env_remove("FERNANDO_CACHE_ENV")
        .env("FERNANDO_CACHE__REGIONS__NAME", US)
        .env("FERNANDO_CACHE__REGIONS__FROM__EU", &eu_url)
        .envs(us_env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _replicating = Replicating(child);
    wait_until("EU's value in US, read with EU's password", || {
        let out = cli_with(
            &us.url(),
            US,
            &entry_args("get", "acme", "ocr_result", "doc-1"),
            b"",
            &us_env,
        );
        out.status.success()
    });
}

/// What US noted of EU's stream.
fn noted(us: &RedisServer) -> String {
    us.cli(&["GET", "fernando:test:_repl_applied:eu"]).unwrap()
}

#[test]
fn a_loss_is_counted_once_however_often_replicators_restart_and_however_many_meet_it() {
    let (eu, us, link, replicating) = replicating_with("doc-1", "first");
    replicating.kill();
    // EU's server loses its data (a restart without persistence): what US was given is unknown now.
    eu.cli(&["FLUSHALL"]).unwrap();
    for round in 0..3 {
        let again = Replicating::start(&us.url(), &url_of(&link), "r1");
        wait_until("the loss noted", || noted(&us).contains("gaps=1"));
        // A note is written every second: long enough for a second one.
        std::thread::sleep(Duration::from_millis(1500));
        again.kill();
        assert!(
            noted(&us).contains("gaps=1"),
            "restart {round}: {}",
            noted(&us)
        );
    }
    // A second loss, met by two replicas of US at once: answered by both, counted once.
    let one = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", "doc-2", "second");
    wait_until("EU's second value in US", || {
        get(&us.url(), US, "acme", "doc-2").is_some()
    });
    std::thread::sleep(Duration::from_millis(1500));
    one.kill();
    eu.cli(&["FLUSHALL"]).unwrap();
    let (a, b) = (
        Replicating::start(&us.url(), &url_of(&link), "r1"),
        Replicating::start(&us.url(), &url_of(&link), "r2"),
    );
    wait_until("the second loss noted", || noted(&us).contains("gaps=2"));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(noted(&us).contains("gaps=2"), "{}", noted(&us));
    assert_eq!(get(&us.url(), US, "acme", "doc-2"), None);
    drop((a, b));
}

#[test]
fn a_note_that_is_not_one_is_started_anew_and_replication_goes_on() {
    let (eu, us, link) = regions();
    us.cli(&["HSET", "fernando:test:_repl_applied:eu", "a", "b"])
        .unwrap();
    let _replicating = Replicating::start(&us.url(), &url_of(&link), "r1");
    set(&eu.url(), EU, "acme", "doc-1", "from eu");
    wait_until("EU's value in US", || {
        get(&us.url(), US, "acme", "doc-1").is_some()
    });
    wait_until("a note written over the hash", || {
        noted(&us).contains("applied=")
    });
}

#[test]
fn a_group_moved_past_the_streams_end_is_a_loss_and_delivery_goes_on() {
    let (eu, us, link, _replicating) = replicating_with("doc-1", "first");
    // Someone with access to EU's Redis moves US's group far past anything EU wrote: nothing would be
    // delivered until EU's stream caught up with it.
    eu.cli(&["XGROUP", "SETID", STREAM, "to-us", "9999999999999-0"])
        .unwrap();
    let _ = link;
    wait_until("the loss noted", || noted(&us).contains("gaps=1"));
    assert_eq!(
        get(&us.url(), US, "acme", "doc-1"),
        None,
        "answered as a loss"
    );
    set(&eu.url(), EU, "acme", "doc-2", "after it");
    wait_until("a value written after it, in US", || {
        get(&us.url(), US, "acme", "doc-2").is_some()
    });
}

#[test]
fn an_entry_deleted_unread_is_a_loss_and_leaves_no_lag_behind() {
    let (eu, us, link, replicating) = replicating_with("doc-1", "first");
    replicating.kill();
    set(
        &eu.url(),
        EU,
        "globex",
        "doc-1",
        "deleted before US read it",
    );
    let last = eu
        .cli(&["XREVRANGE", STREAM, "+", "-", "COUNT", "1"])
        .unwrap();
    let id = last.lines().next().unwrap().trim().to_owned();
    eu.cli(&["XDEL", STREAM, &id]).unwrap();
    let _again = Replicating::start(&us.url(), &url_of(&link), "r1");
    wait_until("the loss noted", || noted(&us).contains("gaps=1"));
    set(&eu.url(), EU, "acme", "doc-2", "after it");
    wait_until("a value written after it, in US", || {
        get(&us.url(), US, "acme", "doc-2").is_some()
    });
    // Caught up: nothing shown behind, whatever Redis's count says after the XDEL.
    wait_until("no entries behind", || {
        noted(&us).contains("behind=0 behind_ms=0")
    });
}

//! Shared helpers: settings pointing at a private redis-server, and a tenant constructor.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::{Backend, MemoryBackend, Storage, Store};
use fernando_cache_testkit::{FAST_FAILURE, RedisCluster, RedisServer, SentinelGroup};

/// The command timeout the fault tests use.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);

/// What the `*_sharded` deployments add to their settings: every tenant spread over four hash tags (design 0024).
pub(crate) const SHARDED: &[(&str, &str)] = &[("tenants.default.shards", "4")];

/// Test-profile settings on the Redis backend at `server`.
pub(crate) fn redis_settings(server: &RedisServer) -> Settings {
    redis_settings_with(server, &[])
}

/// [`redis_settings`] with `overrides` (`(key, value)` pairs) applied last.
pub(crate) fn redis_settings_with(server: &RedisServer, overrides: &[(&str, &str)]) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set_all(overrides.iter().copied()),
    )
    .expect("test settings load")
}

/// A store on a fresh private redis-server.
pub(crate) fn redis_store() -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings(&server)).expect("store");
    (server, store)
}

/// Where a contract test's store runs: the one behaviour suite (the `contract!` tests) runs against each.
pub(crate) enum Deployment {
    /// The in-process backend.
    Memory,
    /// A user's own backend that implements [`Storage`] alone, without coordination: the in-process backend
    /// handed to the store as an `Arc<dyn Storage>` (`Backend::custom(storage, None)`).
    StorageOnly,
    /// The SQLite file in a folder of its own.
    Disk(tempfile::TempDir),
    /// One `redis-server`.
    Standalone(RedisServer),
    /// A Redis Cluster of three primaries.
    Cluster(RedisCluster),
    /// A master and a replica watched by three sentinels.
    Sentinel(Box<SentinelGroup>),
    /// Another deployment whose stores' settings carry these overrides (before a test's own): the same
    /// servers, configured otherwise — every tenant sharded, say.
    Configured(Box<Deployment>, &'static [(&'static str, &'static str)]),
    /// One `redis-server` where every tenant runs `acl` isolation (design 0023): each of [`TENANTS`] as its
    /// own Redis user, made from `Admin::acl_rules` with a password in a file of its own
    /// (`tenants.default.acl_password_file = "<dir>/{tenant}.pw"`).
    Acl {
        server: RedisServer,
        secrets: tempfile::TempDir,
    },
    /// Two `redis-server`s: [`DEDICATED`] tenants run `dedicated` isolation on the second (`own`), every other
    /// tenant and the global scope on the first (`shared`); the plans in a `local.toml` of their own.
    Dedicated {
        shared: RedisServer,
        own: RedisServer,
        config: tempfile::TempDir,
    },
}

/// Every tenant the contract tests that run on [`Deployment::Acl`] use: each gets its Redis user and password.
pub(crate) const TENANTS: &[&str] = &[
    "acme", "globex", "user123", "a", "b", "c", "a:b", "*", "a%3Ab",
];

/// The tenants [`Deployment::Dedicated`] puts on their own server; the others stay on the shared one, so a
/// test of several tenants spans both.
pub(crate) const DEDICATED: &[&str] = &["acme", "user123", "a", "c", "*", "a%3Ab"];

/// The password file of `tenant`'s Redis user in `dir` (the `{tenant}` template of [`Deployment::Acl`]): the id
/// as the settings put it in a file name, `%`, `/` and `\` percent-encoded.
pub(crate) fn password_file(dir: &std::path::Path, tenant: &str) -> std::path::PathBuf {
    let name = tenant
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\\', "%5C");
    dir.join(format!("{name}.pw"))
}

/// The password of `tenant`'s Redis user in [`Deployment::Acl`].
pub(crate) fn password_of(tenant: &str) -> String {
    format!(
        "pw-{:016x}",
        tenant
            .bytes()
            .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b))
                .wrapping_mul(0x100000001b3))
    )
}

impl Deployment {
    pub(crate) fn memory() -> Self {
        Deployment::Memory
    }

    pub(crate) fn storage_only() -> Self {
        Deployment::StorageOnly
    }

    pub(crate) fn disk() -> Self {
        Deployment::Disk(tempfile::tempdir().expect("a temporary folder"))
    }

    pub(crate) fn standalone() -> Self {
        Deployment::Standalone(RedisServer::start())
    }

    pub(crate) fn cluster() -> Self {
        Deployment::Cluster(RedisCluster::start_with(3, 0))
    }

    pub(crate) fn sentinel() -> Self {
        Deployment::Sentinel(Box::new(SentinelGroup::start()))
    }

    /// The in-process backend, every tenant on four shards.
    pub(crate) fn memory_sharded() -> Self {
        Deployment::Configured(Box::new(Self::memory()), SHARDED)
    }

    /// The SQLite file, every tenant on four shards.
    pub(crate) fn disk_sharded() -> Self {
        Deployment::Configured(Box::new(Self::disk()), SHARDED)
    }

    /// One `redis-server`, every tenant on four shards.
    pub(crate) fn standalone_sharded() -> Self {
        Deployment::Configured(Box::new(Self::standalone()), SHARDED)
    }

    /// A Redis Cluster of three primaries, every tenant on four shards: its entries on up to four slots.
    pub(crate) fn cluster_sharded() -> Self {
        Deployment::Configured(Box::new(Self::cluster()), SHARDED)
    }

    /// The overrides of a configured deployment, then `overrides`.
    fn configured<'a>(
        extra: &[(&'a str, &'a str)],
        overrides: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        extra.iter().chain(overrides).copied().collect()
    }

    /// [`Deployment::Acl`], its users made on the server before any store uses them.
    pub(crate) fn acl() -> Self {
        let server = RedisServer::start();
        let secrets = tempfile::tempdir().expect("a folder for the passwords");
        for t in TENANTS {
            let path = password_file(secrets.path(), t);
            std::fs::write(&path, format!("{}\n", password_of(t))).expect("a password file");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod 600");
            }
        }
        let d = Deployment::Acl { server, secrets };
        let Deployment::Acl { server, .. } = &d else {
            unreachable!()
        };
        // The rules are the store's own; the password is the operator's.
        let store = d.store();
        for t in TENANTS {
            let tenant = tenant(t);
            let (user, _) = store.admin().acl_user(&tenant).expect("an acl tenant");
            let mut args = vec!["ACL".to_owned(), "SETUSER".to_owned(), user];
            args.extend(store.admin().acl_rules(&tenant));
            args.push(format!(">{}", password_of(t)));
            let reply = server.command(&args).expect("ACL SETUSER");
            assert!(reply.starts_with("+OK"), "ACL SETUSER for {t}: {reply}");
        }
        d
    }

    /// [`Deployment::Dedicated`].
    pub(crate) fn dedicated() -> Self {
        let (shared, own) = (RedisServer::start(), RedisServer::start());
        let config = tempfile::tempdir().expect("a config folder");
        let mut plans = String::new();
        for t in DEDICATED {
            plans.push_str(&format!(
                "[tenants.{t:?}]\nisolation = \"dedicated\"\n[tenants.{t:?}.redis]\nurl = {:?}\n\n",
                own.url()
            ));
        }
        std::fs::write(config.path().join("local.toml"), plans).expect("local.toml");
        Deployment::Dedicated {
            shared,
            own,
            config,
        }
    }

    /// Test-profile settings for this deployment, with `overrides` applied last.
    pub(crate) fn settings_with(&self, overrides: &[(&str, &str)]) -> Settings {
        if let Deployment::Configured(inner, extra) = self {
            return inner.settings_with(&Self::configured(extra, overrides));
        }
        let mut options = LoadOptions::isolated(Environment::Test);
        let target = match self {
            Deployment::Memory | Deployment::StorageOnly => vec![("backend", "memory".to_owned())],
            Deployment::Disk(dir) => vec![
                ("backend", "disk".to_owned()),
                (
                    "disk.path",
                    dir.path().join("cache.sqlite3").display().to_string(),
                ),
            ],
            Deployment::Standalone(s) => s.overrides(),
            Deployment::Cluster(c) => c.overrides(),
            Deployment::Sentinel(g) => g.overrides(),
            Deployment::Configured(..) => unreachable!("answered above"),
            Deployment::Acl { server, secrets } => {
                let mut target = server.overrides();
                target.push(("tenants.default.isolation", "acl".to_owned()));
                target.push((
                    "tenants.default.acl_password_file",
                    password_file(secrets.path(), "{tenant}")
                        .display()
                        .to_string(),
                ));
                target
            }
            Deployment::Dedicated { shared, config, .. } => {
                options = options.config_dir(config.path());
                shared.overrides()
            }
        };
        Settings::load(
            options
                .set_all(target)
                .set_all(FAST_FAILURE.iter().copied())
                .set_all(overrides.iter().copied()),
        )
        .expect("test settings load")
    }

    /// A store on this deployment. Two stores on one deployment stand for two processes (except in memory,
    /// where each store has its own entries).
    pub(crate) fn store(&self) -> Store {
        self.store_with(&[])
    }

    /// [`Deployment::store`] with `overrides` applied to its settings.
    pub(crate) fn store_with(&self, overrides: &[(&str, &str)]) -> Store {
        if let Deployment::Configured(inner, extra) = self {
            return inner.store_with(&Self::configured(extra, overrides));
        }
        let settings = self.settings_with(overrides);
        match self {
            Deployment::StorageOnly => {
                let storage: Arc<dyn Storage> =
                    Arc::new(MemoryBackend::new(settings.memory.max_bytes));
                Store::with_backend(&settings, Backend::from(storage)).expect("store")
            }
            _ => Store::from_settings(&settings).expect("store"),
        }
    }

    /// How many keys matching a glob the servers hold, summed over every primary; `None` in memory, which has
    /// no server to ask.
    pub(crate) fn stored(&self, pattern: &str) -> Option<usize> {
        let count = |server: &RedisServer| -> usize {
            let reply = server
                .command(&["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern])
                .expect("count keys");
            reply
                .trim()
                .trim_start_matches(':')
                .parse()
                .expect("a count")
        };
        match self {
            Deployment::Memory | Deployment::StorageOnly => None,
            Deployment::Disk(dir) => {
                // Redis's `\x` escapes become GLOB classes `[x]`; both tables hold keys, and the quota tables
                // hold ledgers (one each, whatever its members) and request windows under keys too.
                let mut glob = String::new();
                let mut chars = pattern.chars();
                while let Some(c) = chars.next() {
                    match (c, c == '\\') {
                        (_, true) => glob.push_str(&format!("[{}]", chars.next().unwrap_or('\\'))),
                        (c, false) => glob.push(c),
                    }
                }
                let db =
                    rusqlite::Connection::open(dir.path().join("cache.sqlite3")).expect("open");
                let n: i64 = db
                    .query_row(
                        "SELECT (SELECT count(*) FROM entries WHERE key GLOB ?1) \
                         + (SELECT count(*) FROM generations WHERE key GLOB ?1) \
                         + (SELECT count(DISTINCT ledger) FROM quota_ledger WHERE ledger GLOB ?1) \
                         + (SELECT count(*) FROM quota_windows WHERE key GLOB ?1)",
                        [&glob],
                        |r| r.get(0),
                    )
                    .expect("count keys");
                Some(usize::try_from(n).expect("a count"))
            }
            Deployment::Standalone(s) | Deployment::Acl { server: s, .. } => Some(count(s)),
            Deployment::Dedicated { shared, own, .. } => Some(count(shared) + count(own)),
            Deployment::Sentinel(g) => Some(count(g.servers().0)),
            Deployment::Cluster(c) => Some(
                c.primaries()
                    .into_iter()
                    .map(|i| count(&c.nodes()[i]))
                    .sum(),
            ),
            Deployment::Configured(inner, _) => inner.stored(pattern),
        }
    }
}

impl Deployment {
    /// Closes every client connection on every primary (`CLIENT KILL TYPE normal`).
    pub(crate) fn kill_clients(&self) {
        let kill = |server: &RedisServer| {
            let killed = server
                .command(&["CLIENT", "KILL", "TYPE", "normal"])
                .expect("CLIENT KILL");
            assert!(killed.starts_with(':'), "CLIENT KILL answered {killed:?}");
        };
        match self {
            Deployment::Memory | Deployment::StorageOnly | Deployment::Disk(_) => {
                panic!("an embedded backend has no connections")
            }
            Deployment::Standalone(s) | Deployment::Acl { server: s, .. } => kill(s),
            Deployment::Dedicated { shared, own, .. } => {
                kill(shared);
                kill(own);
            }
            Deployment::Sentinel(g) => kill(g.servers().0),
            Deployment::Cluster(c) => {
                for i in c.primaries() {
                    kill(&c.nodes()[i]);
                }
            }
            Deployment::Configured(inner, _) => inner.kill_clients(),
        }
    }
}

/// Raw access to what a deployment stores, beside the store: hostile bytes written under a key, read back,
/// checked for. Only deployments with storage outside the process have it.
impl Deployment {
    /// The server that holds `key` (on a cluster, the primary of its slot).
    fn server_of(&self, key: &str) -> &RedisServer {
        match self {
            Deployment::Standalone(s) | Deployment::Acl { server: s, .. } => s,
            Deployment::Dedicated { shared, own, .. } => {
                // The key's hash tag names its tenant; a dedicated one's keys are on its own server.
                let keys = fernando_cache_keys::KeyBuilder::new("fernando", Environment::Test, 128);
                let tag_of = |t: &str| {
                    let k = keys
                        .key(&tenant(t), &CacheType::SESSION, "x")
                        .expect("a key");
                    let k = k.as_str();
                    let start = k.find('{').expect("a tag");
                    let end = start + k[start..].find("}:").expect("a tag") + 1;
                    k[start..end].to_owned()
                };
                if DEDICATED.iter().any(|t| key.contains(&tag_of(t))) {
                    own
                } else {
                    shared
                }
            }
            Deployment::Sentinel(g) => g.servers().0,
            Deployment::Cluster(c) => &c.nodes()[c.primary_of_slot(c.slot_of(key))],
            Deployment::Configured(inner, _) => inner.server_of(key),
            Deployment::Memory | Deployment::StorageOnly | Deployment::Disk(_) => {
                unreachable!("no server")
            }
        }
    }

    fn disk_file(&self) -> Option<rusqlite::Connection> {
        match self {
            Deployment::Disk(dir) => {
                Some(rusqlite::Connection::open(dir.path().join("cache.sqlite3")).expect("open"))
            }
            Deployment::Configured(inner, _) => inner.disk_file(),
            _ => None,
        }
    }

    /// Stores `bytes` under `key` for an hour, bypassing the store.
    pub(crate) fn put_raw(&self, key: &str, bytes: &[u8]) {
        if let Some(db) = self.disk_file() {
            let expires = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                + 3_600_000;
            db.execute(
                "INSERT INTO entries (key, value, expires_at, size) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rusqlite::params![key, bytes, expires, bytes.len() as i64],
            )
            .expect("raw insert");
            return;
        }
        assert!(
            !matches!(self, Deployment::Memory | Deployment::StorageOnly),
            "no raw access in memory"
        );
        self.server_of(key)
            .command(&[b"SET".as_slice(), key.as_bytes(), bytes, b"PX", b"3600000"])
            .expect("raw SET");
    }

    /// The bytes stored under `key`, bypassing the store.
    pub(crate) fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(db) = self.disk_file() {
            return db
                .query_row("SELECT value FROM entries WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .ok();
        }
        let server = self.server_of(key);
        let mut conn = redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .expect("a raw connection");
        redis::cmd("GET")
            .arg(key)
            .query(&mut conn)
            .expect("raw GET")
    }

    /// Copies `from` to `to` without its last `cut` bytes (keys of one scope and type: one slot).
    pub(crate) fn truncated_copy(&self, from: &str, to: &str, cut: usize) {
        if let Some(db) = self.disk_file() {
            db.execute(
                "INSERT INTO entries (key, value, expires_at, size) \
                 SELECT ?2, substr(value, 1, length(value) - ?3), expires_at, size FROM entries WHERE key = ?1",
                rusqlite::params![from, to, cut as i64],
            )
            .expect("raw copy");
            return;
        }
        self.server_of(from)
            .command(&[
                "EVAL",
                "local v = redis.call('GET', KEYS[1]); \
                 redis.call('SET', KEYS[2], string.sub(v, 1, #v - tonumber(ARGV[1]))); return 1",
                "2",
                from,
                to,
                &cut.to_string(),
            ])
            .expect("raw copy");
    }

    /// Deletes `key` (an entry, or on disk a generation row too), bypassing the store: what an expiry or an
    /// eviction does.
    pub(crate) fn delete_raw(&self, key: &str) {
        if let Some(db) = self.disk_file() {
            for table in ["entries", "generations"] {
                db.execute(&format!("DELETE FROM {table} WHERE key = ?1"), [key])
                    .expect("raw delete");
            }
            return;
        }
        self.server_of(key).command(&["DEL", key]).expect("raw DEL");
    }

    /// How long `key` has left on the server (`PTTL`), bypassing the store; `None` when it is missing or kept
    /// forever.
    pub(crate) fn ttl_raw(&self, key: &str) -> Option<std::time::Duration> {
        let reply = self.server_of(key).command(&["PTTL", key]).expect("PTTL");
        let ms: i64 = reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .expect("a PTTL reply");
        u64::try_from(ms).ok().map(std::time::Duration::from_millis)
    }

    /// Whether `key` is stored, bypassing the store.
    pub(crate) fn exists_raw(&self, key: &str) -> bool {
        if let Some(db) = self.disk_file() {
            let n: i64 = db
                .query_row("SELECT count(*) FROM entries WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .expect("raw exists");
            return n > 0;
        }
        self.server_of(key)
            .command(&["EXISTS", key])
            .expect("EXISTS")
            .starts_with(":1")
    }
}

/// One behaviour, one body, run against every deployment named: `contract! { async fn name(d, store) { … }
/// on [memory, disk, standalone, cluster] }` makes a module `name` with one test per deployment
/// (`storage_only` is the store on a backend with [`Storage`] and no coordination).
macro_rules! contract {
    ($(#[$attr:meta])* async fn $name:ident($d:ident, $store:ident) $body:block on [$($dep:ident),+ $(,)?]) => {
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            async fn run($d: &crate::support::Deployment, $store: &fernando_cache_store::Store) $body

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $dep() {
                    let d = crate::support::Deployment::$dep();
                    let store = d.store();
                    run(&d, &store).await;
                }
            )+
        }
    };
}
pub(crate) use contract;

/// A store on the in-process backend (test profile).
pub(crate) fn memory_store() -> Store {
    let settings = Settings::embedded(Environment::Test).expect("test profile");
    Store::from_settings(&settings).expect("memory store")
}

pub(crate) fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("valid tenant")
}

/// Servers whose command counts a test reads: one server, or every live primary of a cluster.
pub(crate) trait Servers {
    /// How many times the servers have run `command`, summed (from `INFO commandstats`).
    fn calls(&self, command: &str) -> u64;
}

impl Servers for RedisServer {
    fn calls(&self, command: &str) -> u64 {
        let info = self
            .command(&["INFO", "commandstats"])
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }
}

impl Servers for RedisCluster {
    fn calls(&self, command: &str) -> u64 {
        self.primaries()
            .into_iter()
            .map(|i| self.nodes()[i].calls(command))
            .sum()
    }
}

impl Servers for Deployment {
    fn calls(&self, command: &str) -> u64 {
        match self {
            Deployment::Memory | Deployment::StorageOnly | Deployment::Disk(_) => {
                panic!("an embedded backend has no server to count calls on")
            }
            Deployment::Standalone(s) | Deployment::Acl { server: s, .. } => s.calls(command),
            Deployment::Dedicated { shared, own, .. } => shared.calls(command) + own.calls(command),
            Deployment::Cluster(c) => c.calls(command),
            Deployment::Sentinel(g) => g.servers().0.calls(command),
            Deployment::Configured(inner, _) => inner.calls(command),
        }
    }
}

/// How many times `servers` have run `command`.
pub(crate) fn calls(servers: &impl Servers, command: &str) -> u64 {
    servers.calls(command)
}

/// Reads `key` until the store reads it without fetching the generations: tracking has started on every hot
/// connection (it starts in the background) and the generations of `(tenant, cache_type)` are remembered.
pub(crate) async fn until_tracked(
    server: &impl Servers,
    store: &Store,
    tenant: &TenantId,
    cache_type: &CacheType,
    key: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = calls(server, "mget");
        for _ in 0..20 {
            let _ = store.get::<u64>(tenant, cache_type, key).await.unwrap();
        }
        if calls(server, "mget") == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hits still read the generations with MGET after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

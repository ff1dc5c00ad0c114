//! A real Sentinel group for tests: a master, a replica of it, and three `redis-server --sentinel` processes
//! monitoring it (quorum 2, down after one second), all on free ports (chosen again for a process that loses one
//! while it starts); and the fault Sentinel exists for — the master SIGKILLed, the replica promoted, the
//! sentinels announcing the new address.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    Recipe, RedisServer, cli,
    launch::{self, StartError},
    owned, redis_server_binary,
};

/// The name the sentinels monitor the master under.
const MASTER_NAME: &str = "fernando";

/// How long a failover may take (down-after 1 s, then election and promotion).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// One `redis-server --sentinel` process.
struct Sentinel {
    /// In clear, for the testkit.
    port: u16,
    /// TLS, for clients, in a TLS group.
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sentinel {
    /// A sentinel monitoring the master at `master_port`; `tls` (a folder from `self_signed_certs`) makes it
    /// answer clients on a TLS port too, and with `data_tls` reach the master, the replicas and the other
    /// sentinels over TLS. Started on free ports, and on new ones while an attempt loses a port.
    ///
    /// # Panics
    /// When it does not come up (its log is printed).
    fn start(master_port: u16, tls: Option<&std::path::Path>, data_tls: bool) -> Sentinel {
        launch::on_free_ports("a sentinel", 1 + usize::from(tls.is_some()), |ports| {
            Sentinel::try_start(ports, master_port, tls, data_tls)
        })
    }

    /// One attempt of [`Sentinel::start`] on `ports` (the port in clear, then the TLS port if `tls`).
    fn try_start(
        ports: &[u16],
        master_port: u16,
        tls: Option<&std::path::Path>,
        data_tls: bool,
    ) -> Result<Sentinel, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("fernando-sentinel-")
            .tempdir()
            .expect("create a temporary folder for a sentinel");
        let port = ports[0];
        let tls_port = tls.and(ports.get(1).copied());
        let conf = dir.path().join("sentinel.conf");
        // Sentinel rewrites its file as it learns; it must be writable and its own.
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n{tls}",
                dir = dir.path().display(),
                log = dir.path().join("sentinel.log").display(),
                tls = tls.map_or_else(String::new, |certs| {
                    let cert = certs.join("cert.pem").display().to_string();
                    format!(
                        "tls-port {}\ntls-replication {}\ntls-cert-file {cert}\n\
                         tls-ca-cert-file {cert}\ntls-key-file {}\ntls-auth-clients no\n",
                        tls_port.unwrap_or_default(),
                        if data_tls { "yes" } else { "no" },
                        certs.join("key.pem").display()
                    )
                }),
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new(redis_server_binary())
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                StartError::Failed(format!("could not run redis-server --sentinel: {e}"))
            })?;
        let mut sentinel = Sentinel {
            port,
            tls_port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(child) = sentinel.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                sentinel.child = None;
                return Err(StartError::classify(
                    true,
                    format!(
                        "the sentinel on port {port} exited with {status}; log:\n{}",
                        sentinel.log()
                    ),
                ));
            }
            if sentinel.master_port() == Some(master_port) {
                return Ok(sentinel);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Dropping it kills it.
        Err(StartError::classify(
            false,
            format!(
                "the sentinel on port {port} did not announce its master within 15 s; log:\n{}",
                sentinel.log()
            ),
        ))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The master's port as this sentinel announces it.
    fn master_port(&self) -> Option<u16> {
        cli(
            self.port,
            &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
        )
        .ok()?
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("--- sentinel on port {} log ---\n{}", self.port, self.log());
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A master, its replica and three sentinels, owned by a test.
pub struct SentinelGroup {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
    /// The certificate the processes present to TLS clients (see [`SentinelGroup::start_tls`]).
    certs: Option<tempfile::TempDir>,
    /// Whether master and replica speak TLS (and only TLS) too, or only the sentinels do.
    data_tls: bool,
}

impl std::fmt::Debug for SentinelGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelGroup")
            .field("master", &self.master.port())
            .field("replica", &self.replica.port())
            .field(
                "sentinels",
                &self.sentinels.iter().map(|s| s.port).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SentinelGroup {
    /// Starts the master, the replica (waited for until it is in sync) and three sentinels.
    ///
    /// # Panics
    /// When a process does not come up.
    pub fn start() -> SentinelGroup {
        Self::form(None, false)
    }

    /// As [`SentinelGroup::start`], with every process presenting one fresh self-signed certificate: master and
    /// replica are reached over TLS only — by clients, by each other and by the sentinels — and the sentinels
    /// answer clients over TLS (see [`SentinelGroup::tls_overrides`]); each keeps a port in clear for the testkit.
    ///
    /// # Panics
    /// As [`SentinelGroup::start`].
    pub fn start_tls() -> SentinelGroup {
        Self::form(Some(crate::self_signed_certs()), true)
    }

    /// As [`SentinelGroup::start`], with only the sentinels answering clients over TLS (a fresh self-signed
    /// certificate); master and replica speak in clear.
    ///
    /// # Panics
    /// As [`SentinelGroup::start`].
    pub fn start_tls_sentinels() -> SentinelGroup {
        Self::form(Some(crate::self_signed_certs()), false)
    }

    fn form(certs: Option<tempfile::TempDir>, data_tls: bool) -> SentinelGroup {
        // Master and replica speak TLS too (and replicate over it) only in a group whose data is over TLS.
        let start = |args: &[&str]| {
            RedisServer::from_recipe(Recipe {
                args: owned(args),
                tls: certs
                    .as_ref()
                    .filter(|_| data_tls)
                    .map(|c| (c.path().to_owned(), owned(&["--tls-replication", "yes"]))),
                cluster_bus: false,
            })
        };
        let master = start(&[]);
        let master_port = master.tls_port.unwrap_or(master.port());
        let replica = start(&["--replicaof", "127.0.0.1", &master_port.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !replica
            .command(&["INFO", "replication"])
            .is_ok_and(|i| i.contains("master_link_status:up"))
        {
            assert!(Instant::now() < deadline, "the replica never synced");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sentinels = (0..3)
            .map(|_| {
                Sentinel::start(
                    master_port,
                    certs.as_ref().map(tempfile::TempDir::path),
                    data_tls,
                )
            })
            .collect();
        SentinelGroup {
            master,
            replica,
            sentinels,
            certs,
            data_tls,
        }
    }

    /// The settings overrides that put a store on a group from [`SentinelGroup::start_tls`] or
    /// [`SentinelGroup::start_tls_sentinels`]: the sentinels' TLS ports as `rediss://` URLs, the certificate to
    /// trust as `redis.tls_ca_file`, and when master and replica speak TLS, `rediss://` in `redis.url` (which,
    /// with sentinels, gives only credentials, database and the TLS choice).
    ///
    /// # Panics
    /// When the group was not started with TLS.
    pub fn tls_overrides(&self) -> Vec<(&'static str, String)> {
        let certs = self.certs.as_ref().expect("a TLS group");
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("rediss://127.0.0.1:{}", s.tls_port.expect("a TLS sentinel")))
            .collect();
        let mut overrides = self.overrides();
        for (key, value) in &mut overrides {
            if *key == "redis.sentinels" {
                *value = sentinels.join(",");
            }
        }
        if self.data_tls {
            overrides.push(("redis.url", "rediss://127.0.0.1/0".to_owned()));
        }
        overrides.push((
            "redis.tls_ca_file",
            certs.path().join("cert.pem").display().to_string(),
        ));
        overrides
    }

    /// The sentinels' addresses, `redis://127.0.0.1:{port}`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The settings overrides that put a store on this group (`backend`, `redis.mode`, the sentinels, the
    /// master's name), as plain pairs: `LoadOptions::isolated(env).set_all(group.overrides())`.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        vec![
            ("backend", "redis".to_owned()),
            ("redis.mode", "sentinel".to_owned()),
            ("redis.sentinels", self.sentinel_urls().join(",")),
            ("redis.sentinel_master", MASTER_NAME.to_owned()),
        ]
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// The master (before a failover) and the replica.
    pub fn servers(&self) -> (&RedisServer, &RedisServer) {
        (&self.master, &self.replica)
    }

    /// The master's port as the first sentinel that answers announces it.
    pub fn announced_master(&self) -> Option<u16> {
        self.sentinels.iter().find_map(Sentinel::master_port)
    }

    /// SIGKILLs the master and waits until the sentinels announce the promoted replica.
    ///
    /// # Panics
    /// When no failover happens in time (every sentinel's log is printed).
    pub fn kill_master_and_wait_for_failover(&mut self) {
        self.master.kill();
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while Instant::now() < deadline {
            if self.announced_master() == Some(self.replica.tls_port.unwrap_or(self.replica.port()))
                && self
                    .replica
                    .command(&["ROLE"])
                    .is_ok_and(|r| r.contains("master"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: String = self.sentinels.iter().map(Sentinel::log).collect();
        panic!("no failover within {FAILOVER_TIMEOUT:?}; sentinel logs:\n{logs}");
    }

    /// Where the sentinels keep their files (for a test that wants to read them).
    pub fn sentinel_dirs(&self) -> Vec<PathBuf> {
        self.sentinels
            .iter()
            .map(|s| s.dir.path().to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinels_replace_a_killed_master_with_its_replica() {
        let mut group = SentinelGroup::start();
        let (master, replica) = group.servers();
        let (master_port, replica_port) = (master.port(), replica.port());
        assert_eq!(group.announced_master(), Some(master_port));
        assert!(
            master
                .command(&["SET", "k", "v"])
                .unwrap()
                .starts_with("+OK")
        );
        group.kill_master_and_wait_for_failover();
        assert_eq!(group.announced_master(), Some(replica_port));
        let (_, promoted) = group.servers();
        assert!(
            promoted.command(&["GET", "k"]).unwrap().contains('v'),
            "the replicated write survived the failover"
        );
        assert!(
            promoted
                .command(&["SET", "k2", "v"])
                .unwrap()
                .starts_with("+OK"),
            "the promoted replica accepts writes"
        );
        assert_eq!(group.sentinel_urls().len(), 3);
    }
}

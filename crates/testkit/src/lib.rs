//! Test support for fernando-cache: real `redis-server` processes on free ports, with the faults tests need
//! (SIGKILL, SIGSTOP / SIGCONT, restart on the same port); a real Redis Cluster ([`RedisCluster`]: slot
//! migration, failover, a killed primary) and a Sentinel group ([`SentinelGroup`]: a killed master replaced);
//! throwaway PostgreSQL databases; a TCP proxy that can refuse connections, to make a real server
//! unreachable for a while; and the documents tests process, sample-based ([`documents`]) and hostile
//! ([`hostile`]: small files that parse into huge things).
//!
//! Each server runs in its own temporary folder with persistence off, is waited for until it answers (itself, not
//! another process that took its port), and is killed when dropped; if the test is failing, its log is printed.
//! Every server — standalone, cluster node, sentinel, with its TLS and bus ports — is started one way: on ports
//! found free, and again on new ones when a port was taken before the server bound it. A missing `redis-server`
//! is a loud failure that says how to install it — never a silent skip.
//!
//! This crate is for tests only (`publish = false`): it must not depend on any fernando-cache crate, and no
//! library crate may depend on it outside `[dev-dependencies]`.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal, unistd::Pid};

pub use announce::{announced_address, announced_addresses};

mod announce;
pub mod bench;
mod cluster;
mod deflate;
pub mod documents;
pub mod hostile;
mod launch;
mod postgres;
mod proxy;
mod sentinel;
pub mod trace;

pub use cluster::{ClusterNode, RedisCluster, served_slots};
pub use postgres::{PostgresDb, admin_url};
pub use proxy::TcpProxy;
pub use sentinel::SentinelGroup;

/// How long a server may take to answer once started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` process owned by a test.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// What it is started with besides its ports; kept for restarts.
    recipe: Recipe,
    /// Its TLS port, when the recipe asks for TLS.
    tls_port: Option<u16>,
    /// Its cluster bus port, when the recipe makes a cluster node.
    bus_port: Option<u16>,
    /// Certificate and key of a server from [`RedisServer::start_tls`]; kept for restarts.
    certs: Option<tempfile::TempDir>,
}

/// What a `redis-server` is started with besides the ports the testkit picks for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recipe {
    /// `--name value` arguments.
    pub(crate) args: Vec<String>,
    /// Accept TLS on a port of its own too, presenting the certificate in this folder (see
    /// [`self_signed_certs`]), with these arguments that only apply with TLS.
    pub(crate) tls: Option<(PathBuf, Vec<String>)>,
    /// A cluster node: it needs a bus port (`--cluster-port`).
    pub(crate) cluster_bus: bool,
}

/// Arguments as owned strings.
pub(crate) fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish()
    }
}

fn redis_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
    {
        let candidate = dir.join("redis-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "redis-server was not found on PATH; these tests need a real Redis. Install the Debian/Ubuntu package \
         `redis-server` (`cargo xtask test` does that when run as root), or set REDIS_SERVER_BIN."
    );
}

/// `redis-cli` beside `redis-server` (both come with Redis), else from PATH.
pub(crate) fn redis_cli_binary() -> PathBuf {
    let beside = redis_server_binary().with_file_name("redis-cli");
    if beside.is_file() {
        return beside;
    }
    PathBuf::from("redis-cli")
}

/// `redis-benchmark` beside `redis-server` (both come with Redis), else from PATH: a bench's floor of pipelined
/// commands.
pub fn redis_benchmark_binary() -> PathBuf {
    let beside = redis_server_binary().with_file_name("redis-benchmark");
    if beside.is_file() {
        return beside;
    }
    PathBuf::from("redis-benchmark")
}

/// Runs one command through `redis-cli --raw` against a node (which prints arrays one element a line).
pub(crate) fn cli(port: u16, args: &[&str]) -> std::io::Result<String> {
    let out = Command::new(redis_cli_binary())
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.starts_with("Could not connect") {
        return Err(std::io::Error::other(format!(
            "redis-cli on port {port}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(text)
}

/// A temporary folder holding `cert.pem`, a fresh self-signed certificate for `localhost` and `127.0.0.1`, and
/// its `key.pem`: what a TLS server presents and what its clients trust.
///
/// # Panics
/// When the certificate cannot be generated or written.
fn self_signed_certs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fernando-redis-tls-")
        .tempdir()
        .expect("create a temporary folder for certificates");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("generate a self-signed certificate");
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("write cert.pem");
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .expect("write key.pem");
    dir
}

/// The `redis-server` arguments that add a TLS port presenting the certificate in `certs` (see
/// [`self_signed_certs`]); clients are not asked for certificates of their own.
fn tls_args(certs: &std::path::Path, tls_port: u16) -> Vec<String> {
    let cert = certs.join("cert.pem").display().to_string();
    let key = certs.join("key.pem").display().to_string();
    [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Settings overrides for tests that kill, pause or cut off servers: short command and connect timeouts, and a
/// breaker that opens after three failures for 300 ms, so a fault shows within a test's patience.
pub const FAST_FAILURE: &[(&str, &str)] = &[
    ("command_timeout", "200ms"),
    ("redis.connect_timeout", "200ms"),
    ("degradation.breaker_failure_threshold", "3"),
    ("degradation.breaker_open_for", "300ms"),
];

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not come up (its log is printed).
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `--name value` arguments, e.g. `["--maxmemory", "1mb"]`.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        Self::from_recipe(Recipe {
            args: owned(extra_args),
            ..Recipe::default()
        })
    }

    /// Starts a server that also accepts TLS on a second port, with a fresh self-signed certificate for
    /// `localhost` and `127.0.0.1` (see [`RedisServer::tls_url`] and [`RedisServer::ca_file`]).
    ///
    /// # Panics
    /// As [`RedisServer::start`], or when the certificate cannot be generated.
    pub fn start_tls() -> RedisServer {
        let certs = self_signed_certs();
        let mut server = Self::from_recipe(Recipe {
            tls: Some((certs.path().to_owned(), Vec::new())),
            ..Recipe::default()
        });
        server.certs = Some(certs);
        server
    }

    /// Starts a server as `recipe` says, on free ports — its data port, and its TLS and bus ports when it has
    /// them — in a fresh folder, again on new ports (and a new folder) while an attempt loses a port.
    ///
    /// # Panics
    /// When it does not come up (its log is printed).
    pub(crate) fn from_recipe(recipe: Recipe) -> RedisServer {
        let count = 1 + usize::from(recipe.tls.is_some()) + usize::from(recipe.cluster_bus);
        launch::on_free_ports("redis-server", count, |ports| {
            let mut ports = ports.iter().copied();
            let port = ports.next().expect("a data port");
            let tls_port = if recipe.tls.is_some() {
                ports.next()
            } else {
                None
            };
            let bus_port = if recipe.cluster_bus {
                ports.next()
            } else {
                None
            };
            let mut server = RedisServer {
                port,
                dir: tempfile::Builder::new()
                    .prefix("fernando-redis-")
                    .tempdir()
                    .expect("create a temporary folder for redis-server"),
                child: None,
                recipe: recipe.clone(),
                tls_port,
                bus_port,
                certs: None,
            };
            server.spawn()?;
            Ok(server)
        })
    }

    /// `rediss://localhost:{tls port}/0`, for a server from [`RedisServer::start_tls`].
    ///
    /// # Panics
    /// When the server was not started with TLS.
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://localhost:{}/0",
            self.tls_port.expect("a TLS server")
        )
    }

    /// The PEM file of the certificate authority clients should trust (the self-signed certificate).
    ///
    /// # Panics
    /// When the server was not started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.certs
            .as_ref()
            .expect("a TLS server")
            .path()
            .join("cert.pem")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Runs `redis-server` on the server's ports and waits until it answers.
    fn spawn(&mut self) -> Result<(), launch::StartError> {
        let mut cmd = Command::new(redis_server_binary());
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.recipe.args);
        if let Some(bus) = self.bus_port {
            cmd.arg("--cluster-port").arg(bus.to_string());
        }
        if let (Some((certs, tls_only)), Some(tls_port)) = (&self.recipe.tls, self.tls_port) {
            cmd.args(tls_args(certs, tls_port)).args(tls_only);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| launch::StartError::Failed(format!("could not run redis-server: {e}")))?;
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(launch::StartError::classify(
                    true,
                    format!(
                        "redis-server on port {} exited with {status}; log:\n{}",
                        self.port,
                        self.log()
                    ),
                ));
            }
            if self.answers_as(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(launch::StartError::classify(
            false,
            format!(
                "redis-server on port {} did not answer within {READY_TIMEOUT:?}; log:\n{}",
                self.port,
                self.log()
            ),
        ))
    }

    /// Whether the process `pid` answers on the port — not another server that took the port first: `INFO
    /// server` names its process id.
    fn answers_as(&self, pid: u32) -> bool {
        self.command(&["INFO", "server"])
            .is_ok_and(|info| info.contains(&format!("process_id:{pid}\r\n")))
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The settings overrides that put a store on this server (`backend`, `redis.url`), as plain pairs so the
    /// testkit depends on no crate of ours: `LoadOptions::isolated(env).set_all(server.overrides())`.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        vec![("backend", "redis".to_owned()), ("redis.url", self.url())]
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("the server is not running");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"))
    }

    /// Whether the process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server with SIGSTOP: connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal::kill(self.pid(), signal::Signal::SIGSTOP).expect("SIGSTOP redis-server");
    }

    /// Thaws a paused server with SIGCONT.
    pub fn resume(&self) {
        signal::kill(self.pid(), signal::Signal::SIGCONT).expect("SIGCONT redis-server");
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]); its data is gone.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("redis-server did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// How far behind the one consumer group of `stream` is: `(entries not yet delivered, entries delivered and
    /// not acknowledged)` from `XINFO GROUPS`. The first is `None` when the server cannot tell (entries the group
    /// never read were trimmed) or there is no group yet; the second is `u64::MAX` when there is no group.
    pub fn stream_group_behind(&self, stream: &str) -> (Option<u64>, u64) {
        let text = self.cli(&["XINFO", "GROUPS", stream]).unwrap_or_default();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let field = |name: &str| {
            lines
                .iter()
                .position(|l| *l == name)
                .and_then(|i| lines.get(i + 1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        (field("lag"), field("pending").unwrap_or(u64::MAX))
    }

    /// Runs one command through `redis-cli --raw`: the reply as text, an array one element a line.
    ///
    /// # Errors
    /// When `redis-cli` cannot be run or reports an error.
    pub fn cli(&self, args: &[&str]) -> std::io::Result<String> {
        cli(self.port, args)
    }

    /// Sends one command in RESP and returns the raw reply text (enough for tests and setup).
    ///
    /// # Errors
    /// When the server cannot be reached or does not answer within two seconds.
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        stream.write_all(&req)?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = stream.read(&mut buf)?;
        let _ = stream.shutdown(Shutdown::Both);
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server on port {} log ---\n{}",
                self.port,
                self.log()
            );
        }
        if let Some(child) = &self.child {
            // A paused server must be thawed to die promptly and let its port go.
            let _ = signal::kill(
                Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
                signal::Signal::SIGCONT,
            );
        }
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start();
        assert!(
            server
                .command(&["SET", "k", "v"])
                .unwrap()
                .starts_with("+OK")
        );
        let port = server.port();
        server.kill();
        assert!(server.command(&["PING"]).is_err());
        server.restart();
        assert_eq!(server.port(), port);
        assert!(
            server.command(&["GET", "k"]).unwrap().starts_with("$-1"),
            "data is gone after a restart"
        );
    }

    #[test]
    fn pause_freezes_and_resume_thaws() {
        let server = RedisServer::start();
        server.pause();
        assert!(
            server.command(&["PING"]).is_err(),
            "a paused server does not answer"
        );
        server.resume();
        assert!(server.command(&["PING"]).unwrap().starts_with("+PONG"));
    }
}

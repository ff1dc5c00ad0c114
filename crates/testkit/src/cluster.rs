//! A real local Redis Cluster for tests: `redis-server --cluster-enabled yes` nodes on free ports (data and bus
//! ports both chosen free, and chosen again if one is lost while the node starts), joined by `redis-cli --cluster create … --cluster-yes` and waited for until every
//! node says `cluster_state:ok` and every replica is attached; and the faults cluster tests need — a slot range
//! migrated between primaries (keys included) while traffic runs, a manual `CLUSTER FAILOVER`, and a primary
//! SIGKILLed so that its replica is promoted.

use std::{
    ops::Range,
    process::Command,
    time::{Duration, Instant},
};

use crate::{Recipe, RedisServer, cli, owned, redis_cli_binary};

/// How long a cluster may take to form, or to settle after a fault.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Node timeout: how long a primary may be unreachable before its replica is promoted (short, for tests).
const NODE_TIMEOUT_MS: &str = "1000";

/// The node that owns the hash slots of a cluster's keys, as `CLUSTER NODES` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node id.
    pub id: String,
    /// Its data port on 127.0.0.1.
    pub port: u16,
    /// A primary (else a replica).
    pub primary: bool,
    /// For a replica, the id of its primary.
    pub primary_id: Option<String>,
    /// The slot ranges it serves (primaries), as `(first, last)` inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Flagged `fail` or `fail?` by the node asked.
    pub failing: bool,
}

/// How many hash slots the live primaries of a topology serve (16 384 when every slot has one).
pub fn served_slots(topology: &[ClusterNode]) -> usize {
    topology
        .iter()
        .filter(|n| n.primary && !n.failing)
        .flat_map(|n| &n.slots)
        .map(|&(a, b)| usize::from(b - a) + 1)
        .sum()
}

/// A running Redis Cluster owned by a test; every node is killed when it is dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The certificate every node of a TLS cluster presents (see [`RedisCluster::start_tls`]).
    certs: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field(
                "ports",
                &self.nodes.iter().map(RedisServer::port).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RedisCluster {
    /// Three primaries with one replica each, formed and settled.
    ///
    /// # Panics
    /// When the servers do not start or the cluster does not form (every node's log is printed).
    pub fn start() -> RedisCluster {
        Self::start_with(3, 1)
    }

    /// `primaries` primaries with `replicas` replicas each.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    pub fn start_with(primaries: usize, replicas: usize) -> RedisCluster {
        Self::form(primaries, replicas, None)
    }

    /// Three primaries without replicas that clients reach over TLS only — data ports, replication and the
    /// cluster bus — each presenting one fresh self-signed certificate (see [`RedisCluster::tls_overrides`]).
    /// Each node keeps a plain port on 127.0.0.1 for the testkit's own administration.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    pub fn start_tls() -> RedisCluster {
        Self::form(3, 0, Some(crate::self_signed_certs()))
    }

    fn form(primaries: usize, replicas: usize, certs: Option<tempfile::TempDir>) -> RedisCluster {
        assert!(
            primaries >= 3,
            "redis-cli creates clusters of 3 primaries or more"
        );
        // Each node on free ports — data, bus and (TLS) client ports — chosen again if one is lost while it starts.
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                RedisServer::from_recipe(Recipe {
                    args: owned(&[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        NODE_TIMEOUT_MS,
                        // Slots whose primary is gone fail alone; the rest of the cluster keeps serving.
                        "--cluster-require-full-coverage",
                        "no",
                        // A replica may take over however long it was cut off from its primary (a loaded
                        // test machine can delay the first sync past the default validity window).
                        "--cluster-replica-validity-factor",
                        "0",
                    ]),
                    tls: certs.as_ref().map(|c| {
                        (
                            c.path().to_owned(),
                            owned(&["--tls-cluster", "yes", "--tls-replication", "yes"]),
                        )
                    }),
                    cluster_bus: true,
                })
            })
            .collect();
        let cluster = RedisCluster { nodes, certs };
        let mut create = Command::new(redis_cli_binary());
        if let Some(ca) = cluster.certs.as_ref().map(|c| c.path().join("cert.pem")) {
            create.arg("--tls").arg("--cacert").arg(ca);
        }
        create.arg("--cluster").arg("create");
        for n in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", n.tls_port.unwrap_or(n.port())));
        }
        create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(std::process::Stdio::null());
        let out = create
            .output()
            .expect("run redis-cli (from the redis-tools package, beside redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_settled(primaries * replicas);
        cluster
    }

    /// The settings overrides that put a store on a cluster from [`RedisCluster::start_tls`]: `rediss://` seed
    /// nodes and the certificate to trust as `redis.tls_ca_file`.
    ///
    /// # Panics
    /// When the cluster was not started with TLS.
    pub fn tls_overrides(&self) -> Vec<(&'static str, String)> {
        let certs = self.certs.as_ref().expect("a TLS cluster");
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("rediss://127.0.0.1:{}", n.tls_port.expect("a TLS node")))
            .collect();
        vec![
            ("backend", "redis".to_owned()),
            ("redis.mode", "cluster".to_owned()),
            ("redis.url", urls[0].clone()),
            ("redis.nodes", urls[1..].join(",")),
            (
                "redis.tls_ca_file",
                certs.path().join("cert.pem").display().to_string(),
            ),
        ]
    }

    /// Every node, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `redis://127.0.0.1:{port}` of every node: the seed list a cluster client starts from.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The settings overrides that put a store on this cluster (`backend`, `redis.mode`, the seed nodes), as
    /// plain pairs: `LoadOptions::isolated(env).set_all(cluster.overrides())`.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let urls = self.urls();
        vec![
            ("backend", "redis".to_owned()),
            ("redis.mode", "cluster".to_owned()),
            ("redis.url", urls[0].clone()),
            ("redis.nodes", urls[1..].join(",")),
        ]
    }

    /// The hash slot of a key, as the cluster computes it (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    /// When no node answers.
    pub fn slot_of(&self, key: &str) -> u16 {
        for n in &self.nodes {
            if let Ok(text) = cli(n.port(), &["CLUSTER", "KEYSLOT", key]) {
                return text.trim().parse().expect("a slot number");
            }
        }
        panic!("no cluster node answers CLUSTER KEYSLOT");
    }

    /// The live primaries, as indexes into [`RedisCluster::nodes`].
    pub fn primaries(&self) -> Vec<usize> {
        self.topology()
            .into_iter()
            .filter(|n| n.primary && !n.failing)
            .map(|n| self.index_of(n.port))
            .collect()
    }

    /// The topology as the first running node sees it.
    ///
    /// # Panics
    /// When no node answers.
    pub fn topology(&self) -> Vec<ClusterNode> {
        for n in &self.nodes {
            if let Ok(text) = cli(n.port(), &["CLUSTER", "NODES"]) {
                return parse_nodes(&text);
            }
        }
        panic!("no cluster node answers CLUSTER NODES");
    }

    /// The index (in [`RedisCluster::nodes`]) of the node with this port.
    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a node of this cluster")
    }

    /// The index of the primary serving `slot`.
    ///
    /// # Panics
    /// When no live primary serves it.
    pub fn primary_of_slot(&self, slot: u16) -> usize {
        let owner = self
            .topology()
            .into_iter()
            .find(|n| {
                n.primary && !n.failing && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"));
        self.index_of(owner.port)
    }

    /// The index of a replica of the primary at `primary`.
    ///
    /// # Panics
    /// When it has none.
    pub fn replica_of(&self, primary: usize) -> usize {
        let topology = self.topology();
        let id = &topology
            .iter()
            .find(|n| n.port == self.nodes[primary].port())
            .expect("the primary is known")
            .id;
        let replica = topology
            .iter()
            .find(|n| n.primary_id.as_ref() == Some(id) && !n.failing)
            .expect("the primary has a replica");
        self.index_of(replica.port)
    }

    /// SIGKILLs the node at `i` (its replica, if it was a primary, is promoted after the node timeout).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// A manual failover: the replica at `replica` takes over from its primary (`CLUSTER FAILOVER`), and the
    /// call returns once it says it is a primary and the cluster is settled.
    ///
    /// # Panics
    /// When it does not take over in time.
    pub fn failover(&self, replica: usize) {
        let port = self.nodes[replica].port();
        let reply = cli(port, &["CLUSTER", "FAILOVER"]).expect("CLUSTER FAILOVER");
        assert!(reply.contains("OK"), "CLUSTER FAILOVER answered {reply}");
        // It says so itself, and every live node's view (gossip) agrees, so the topology callers read next is
        // the new one.
        self.wait_until("the replica to become a primary everywhere", || {
            cli(port, &["ROLE"]).is_ok_and(|r| r.starts_with("master"))
                && self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                    cli(n.port(), &["CLUSTER", "NODES"]).is_ok_and(|text| {
                        parse_nodes(&text)
                            .iter()
                            .any(|c| c.port == port && c.primary && !c.slots.is_empty())
                    })
                })
        });
    }

    /// Waits until the replica of a killed primary is promoted and every live node says `cluster_state:ok`.
    ///
    /// # Panics
    /// When that does not happen in time.
    pub fn wait_for_promotion(&self, killed: usize) {
        let killed_port = self.nodes[killed].port();
        self.wait_until("a replica to take over the killed primary's slots", || {
            let topology = self.topology();
            topology.iter().any(|n| n.port == killed_port && n.failing)
                && served_slots(&topology) == 16_384
        });
        self.wait_state_ok();
    }

    /// Moves the hash slots `slots` (and their keys) from the primary at `from` to the primary at `to`, the
    /// way `redis-cli --cluster reshard` does: importing/migrating states, `MIGRATE` in batches, then the new
    /// owner announced to every node. Clients see `ASK` / `MOVED` meanwhile.
    ///
    /// # Panics
    /// When a step fails.
    pub fn migrate_slots(&self, slots: Range<u16>, from: usize, to: usize) {
        let topology = self.topology();
        let id_of = |i: usize| {
            topology
                .iter()
                .find(|n| n.port == self.nodes[i].port())
                .expect("a known node")
                .id
                .clone()
        };
        let (from_id, to_id) = (id_of(from), id_of(to));
        let (from_port, to_port) = (self.nodes[from].port(), self.nodes[to].port());
        for slot in slots {
            let s = slot.to_string();
            expect_ok(cli(
                to_port,
                &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id],
            ));
            expect_ok(cli(
                from_port,
                &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id],
            ));
            loop {
                let keys = cli(from_port, &["CLUSTER", "GETKEYSINSLOT", &s, "100"])
                    .expect("CLUSTER GETKEYSINSLOT");
                let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
                if keys.is_empty() {
                    break;
                }
                let to_port_s = to_port.to_string();
                let mut args = vec![
                    "MIGRATE",
                    "127.0.0.1",
                    &to_port_s,
                    "",
                    "0",
                    "5000",
                    "REPLACE",
                    "KEYS",
                ];
                args.extend(keys.iter().copied());
                expect_ok(cli(from_port, &args));
            }
            for n in &self.nodes {
                // Every node learns the new owner; a dead node is skipped.
                let _ = cli(n.port(), &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
            }
        }
        self.wait_state_ok();
    }

    fn wait_state_ok(&self) {
        self.wait_until("cluster_state:ok on every live node", || {
            self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                cli(n.port(), &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
            })
        });
    }

    fn wait_settled(&self, replicas: usize) {
        self.wait_state_ok();
        self.wait_until("every replica attached and every node agreeing", || {
            self.nodes.iter().all(|n| {
                cli(n.port(), &["CLUSTER", "NODES"]).is_ok_and(|text| {
                    let t = parse_nodes(&text);
                    t.len() == self.nodes.len()
                        && t.iter().filter(|n| !n.primary).count() == replicas
                        && !t.iter().any(|n| n.failing)
                })
            })
        });
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while Instant::now() < deadline {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: String = self
            .nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}\n", n.port(), n.log()))
            .collect();
        panic!("the cluster did not settle: waited {SETTLE_TIMEOUT:?} for {what}\n{logs}");
    }
}

fn expect_ok(reply: std::io::Result<String>) {
    let reply = reply.expect("a cluster command");
    assert!(
        reply.trim() == "OK" || reply.trim() == "NOKEY",
        "unexpected reply: {reply}"
    );
}

/// Parses `CLUSTER NODES` (one node a line: id, ip:port@bus, flags, primary id, …, slots).
fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_owned(),
                port,
                primary: flags.contains("master"),
                primary_id: (f[3] != "-").then(|| f[3].to_owned()),
                slots,
                failing: flags.contains("fail"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash slot of a key (CRC16/XMODEM mod 16384, no hash tag), to find keys of a given slot.
    fn slot(key: &str) -> u16 {
        let mut crc: u16 = 0;
        for b in key.bytes() {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16_384
    }

    #[test]
    fn a_cluster_forms_migrates_fails_over_and_survives_a_killed_primary() {
        let mut cluster = RedisCluster::start();
        let t = cluster.topology();
        assert_eq!(t.iter().filter(|n| n.primary).count(), 3);
        assert_eq!(t.iter().filter(|n| !n.primary).count(), 3);
        assert_eq!(served_slots(&t), 16_384);

        // Keys of slot 0 move with their slot; a hash tag puts them all there.
        let owner = cluster.primary_of_slot(0);
        let port = cluster.nodes()[owner].port();
        let tag = (0..)
            .map(|i| format!("t{i}"))
            .find(|t| slot(t) == 0)
            .unwrap();
        assert_eq!(
            cli(port, &["CLUSTER", "KEYSLOT", &tag]).unwrap().trim(),
            "0"
        );
        for i in 0..20 {
            let key = format!("{{{tag}}}:{i}");
            assert_eq!(cli(port, &["SET", &key, "v"]).unwrap().trim(), "OK");
        }
        let target = (0..cluster.nodes().len())
            .find(|&i| {
                i != owner
                    && cluster
                        .topology()
                        .iter()
                        .any(|n| n.primary && n.port == cluster.nodes()[i].port())
            })
            .unwrap();
        cluster.migrate_slots(0..5, owner, target);
        assert_eq!(cluster.primary_of_slot(0), target);
        let moved = cli(
            cluster.nodes()[target].port(),
            &["CLUSTER", "COUNTKEYSINSLOT", "0"],
        )
        .unwrap();
        assert_eq!(moved.trim(), "20", "the keys moved with their slot");

        // A manual failover swaps roles.
        let replica = cluster.replica_of(target);
        cluster.failover(replica);
        assert_eq!(cluster.primary_of_slot(0), replica);

        // SIGKILL of a primary: its replica takes over every slot it served.
        let victim = cluster.primary_of_slot(10_000);
        cluster.kill(victim);
        cluster.wait_for_promotion(victim);
        assert_ne!(cluster.primary_of_slot(10_000), victim);
        assert_eq!(served_slots(&cluster.topology()), 16_384);
    }

    #[test]
    fn cluster_nodes_lines_parse() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b2]\n\
                    b2 127.0.0.1:7001@17001 slave a1 0 0 1 connected\n\
                    c3 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected 7000\n";
        let t = parse_nodes(text);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].port, t[0].primary, t[0].slots.clone()),
            (7000, true, vec![(0, 5460)])
        );
        assert_eq!(t[1].primary_id.as_deref(), Some("a1"));
        assert!(!t[1].primary && t[2].failing && t[2].slots == vec![(7000, 7000)]);
    }
}

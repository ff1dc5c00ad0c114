//! A cluster's hot read, sent straight to the primary of the key's slot over that primary's own hot
//! connections — the one-server hot read of `read.rs`, once per primary: generation tracking (design 0007) and
//! auto-pipelining (design 0008) per node, so a hit is one `GET`.
//!
//! redis-rs's cluster client gives no hook to run `CLIENT TRACKING` on the node connections it makes, and
//! every request through it crosses a channel to its routing task; here the slot map is ours (`CLUSTER SLOTS`,
//! refreshed in the background) and each primary has a [`HotPath`].
//!
//! Why tracking stays exact per node (design 0010): an entry and both generation keys guarding it share one
//! hash tag, so they live on one node, and that node's tracking connection carries every invalidation of
//! those generations in order with the reply to the `GET`. When a generation key leaves a node (slot
//! migration), that node's `MIGRATE` deletes it and pushes an invalidation; a primary replaced in a failover is
//! a new address with new connections that track from scratch; a node that no longer serves the slot answers
//! `MOVED`. Every refresh of the slot map also retires everything remembered, on every node.
//!
//! A read that finds no slot map yet, or whose node redirects or cannot be reached, asks for a refresh and is
//! sent through the cluster client instead, which follows `MOVED` / `ASK` itself.

use std::{
    borrow::Borrow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use fernando_cache_config::RedisSettings;
use fernando_cache_keys::GenerationKeys;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    ProtocolVersion,
};

use super::super::{
    commands,
    endpoint::Endpoint,
    hot::SwitchUser,
    read::{HotPath, HotSettings},
    tracking::TrackedKeys,
};
use super::Primary;
use crate::backend::{BackendError, Fetched};

/// Slots in a Redis Cluster.
const SLOTS: usize = 16_384;
/// A slot no primary serves, in [`Table::slots`].
const NO_NODE: u16 = u16::MAX;
/// Least time between two refreshes of the slot map.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// The slot map and the hot read of each primary.
pub(super) struct Direct {
    table: ArcSwapOption<Table>,
    /// The seed's connection settings (credentials; RESP3 when tracking), given each primary's address.
    node: ConnectionInfo,
    /// `Some(private CA or none)` when the cluster speaks TLS.
    tls: Option<Option<Vec<u8>>>,
    config: AsyncConnectionConfig,
    hot: HotSettings,
    /// When the slot map was last asked for (ms since `started`, plus one).
    asked_at: AtomicU64,
    started: Instant,
}

/// The slot map of one moment.
struct Table {
    /// Each slot's index into `nodes`, or [`NO_NODE`].
    slots: Box<[u16]>,
    nodes: Vec<(Primary, Arc<HotPath>)>,
}

/// The slot of `key`: CRC16 (XMODEM) of its hash tag, modulo 16 384, as the server computes it.
pub(super) fn slot(key: &str) -> usize {
    usize::from(crc16::State::<crc16::XMODEM>::calculate(
        commands::hash_tag(key).as_bytes(),
    )) % SLOTS
}

impl Direct {
    /// Prepared from the settings, without contacting any node; `tls` as
    /// [`tls_roots`](super::super::connect::tls_roots) read it for the cluster client.
    pub(super) fn new(
        settings: &RedisSettings,
        tracked: &TrackedKeys,
        tls: Option<Option<Vec<u8>>>,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, BackendError> {
        let seed = settings
            .seed_urls()
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::Other("redis cluster: no seed node".into()))?;
        let info = seed
            .as_str()
            .into_connection_info()
            .map_err(|e| BackendError::Other(format!("redis cluster seed: {e}")))?;
        let mut hot = HotSettings::from_settings(settings, tracked);
        let mut redis = info.redis_settings().clone();
        match credentials {
            // A tenant's tracking connections open as the deployment's user and then become the tenant's
            // (`SwitchUser`, design 0023).
            Some((user, password)) if hot.track.is_some() => {
                hot.switch = Some(Arc::new(SwitchUser::new(user, password)));
            }
            Some((user, password)) => redis = redis.set_username(user).set_password(password),
            None => {}
        }
        if hot.track.is_some() {
            // Push messages need RESP3.
            redis = redis.set_protocol(ProtocolVersion::RESP3);
        }
        Ok(Direct {
            table: ArcSwapOption::empty(),
            node: info.set_redis_settings(redis),
            tls,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                // The store bounds every call with its own timeout.
                .set_response_timeout(None),
            hot,
            asked_at: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// The hot read of the primary serving `key`'s slot, if the slot map names one.
    fn path(&self, key: &str) -> Option<Arc<HotPath>> {
        let table = self.table.load();
        let table = table.as_ref()?;
        let node = *table.slots.get(slot(key))?;
        table.nodes.get(usize::from(node)).map(|(_, p)| p.clone())
    }

    /// How a copy of `key`'s value would learn of its change: through the tracker of the primary serving its
    /// slot (a slot that moves retires every watch: [`Direct::install`] moves each tracker's epoch).
    pub(super) fn watch(&self, key: &str) -> crate::backend::Coherence {
        match self.path(key) {
            Some(p) => p.watch(key),
            None if self.hot.track.as_ref().is_some_and(|t| t.entries.is_some()) => {
                crate::backend::Coherence::Unavailable
            }
            None => crate::backend::Coherence::Untracked,
        }
    }

    /// Reads `key` on its primary. `None`: there is no slot map yet, or the node redirected or could not be
    /// reached; the caller asks for a refresh ([`Direct::due`]) and reads through the cluster client.
    pub(super) async fn fetch<G: Borrow<GenerationKeys>>(
        &self,
        key: &str,
        generations: impl Fn() -> Result<G, BackendError>,
    ) -> Option<Result<Fetched, BackendError>> {
        let path = self.path(key)?;
        match path.fetch(key, &generations).await {
            // MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a refused or broken connection: the slot map may be out of date.
            Err(BackendError::Connection(cause)) => {
                tracing::debug!(error = %cause, "direct cluster read failed; through the cluster client");
                None
            }
            other => Some(other),
        }
    }

    /// [`HotPath::fetch_many`] on the primary of the keys' slot (they share their generations' hash tag);
    /// `None` when the slot map names none or the read failed as a stale map would (the caller reads through the
    /// cluster client).
    pub(super) async fn fetch_many(
        &self,
        keys: &[&str],
        generations: &GenerationKeys,
    ) -> Option<Result<Vec<Fetched>, BackendError>> {
        let path = self.path(keys.first()?)?;
        match path.fetch_many(keys, generations).await {
            Err(BackendError::Connection(cause)) => {
                tracing::debug!(error = %cause, "direct cluster read failed; through the cluster client");
                None
            }
            other => Some(other),
        }
    }

    /// The generations of `key` remembered on this thread by its primary's hot path, current as of now.
    pub(super) fn known(&self, key: &str) -> Option<[u64; 2]> {
        self.path(key)?.known(key)
    }

    /// One `SET` on `key`'s primary if `stamp` is still its known generations (see `HotPath::set_known`).
    pub(super) async fn set_known(
        &self,
        key: &str,
        value: &bytes::Bytes,
        ttl: Duration,
        stamp: [u64; 2],
    ) -> Result<bool, BackendError> {
        match self.path(key) {
            Some(path) => path.set_known(key, value, ttl, stamp).await,
            None => Ok(false),
        }
    }

    /// Writes `key` on its primary with the generations read in the same round trip (remembered, so the next
    /// write of the scope can be one `SET`). `None` as for [`Direct::fetch`]: the caller writes through the
    /// cluster client.
    pub(super) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Option<Result<[u64; 2], BackendError>> {
        let path = self.path(key)?;
        match path.set(key, value, ttl, generations).await {
            Err(BackendError::Connection(cause)) => {
                tracing::debug!(error = %cause, "direct cluster write failed; through the cluster client");
                None
            }
            other => Some(other),
        }
    }

    /// Whether a refresh of the slot map may start now (at most one per [`REFRESH_AT_MOST_EVERY`]); a `true`
    /// answer reserves it.
    pub(super) fn due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.asked_at.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= REFRESH_AT_MOST_EVERY.as_millis() as u64)
            && self
                .asked_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Installs the slot map of a `CLUSTER SLOTS` reply. A primary that stays keeps its connections; every
    /// remembered generation is retired.
    pub(super) fn install(&self, ranges: &[(u16, u16, Primary)]) -> Result<(), BackendError> {
        let old = self.table.load_full();
        let mut primaries: Vec<&Primary> = ranges.iter().map(|(_, _, p)| p).collect();
        primaries.sort();
        primaries.dedup();
        // `redis.multiplexed_connections` is the hot path's total, spread over the primaries: fewer, fuller
        // connections batch more GETs per system call (one per primary measured 1.2× a raw cluster GET at
        // 64 tasks, four per primary 0.67×; docs/benchmarks.md).
        let per_node = HotSettings {
            connections: (self.hot.connections / primaries.len().max(1)).max(1),
            ..self.hot.clone()
        };
        let mut slots = vec![NO_NODE; SLOTS].into_boxed_slice();
        let mut nodes: Vec<(Primary, Arc<HotPath>)> = Vec::new();
        for (first, last, primary) in ranges {
            let index = match nodes.iter().position(|(p, _)| p == primary) {
                Some(i) => i,
                None => {
                    let kept = old
                        .as_ref()
                        .and_then(|t| t.nodes.iter().find(|(p, _)| p == primary))
                        .map(|(_, path)| path.clone());
                    let path = match kept {
                        Some(path) => path,
                        None => Arc::new(HotPath::new(
                            Arc::new(Endpoint::Fixed(Box::new(self.client(primary)?))),
                            &self.config,
                            &per_node,
                        )),
                    };
                    nodes.push((primary.clone(), path));
                    nodes.len() - 1
                }
            };
            let index = u16::try_from(index)
                .map_err(|_| BackendError::Other("CLUSTER SLOTS: too many primaries".into()))?;
            let range = usize::from(*first)..=usize::from(*last);
            let Some(cells) = slots.get_mut(range) else {
                return Err(BackendError::Other(format!(
                    "CLUSTER SLOTS: range {first}-{last} is out of bounds"
                )));
            };
            cells.fill(index);
        }
        for (_, path) in &nodes {
            path.forget_generations();
        }
        tracing::debug!(primaries = nodes.len(), "cluster slot map installed");
        self.table.store(Some(Arc::new(Table { slots, nodes })));
        Ok(())
    }

    /// How many primaries the slot map names (0 before the first refresh).
    pub(super) fn primaries(&self) -> usize {
        self.table.load().as_ref().map_or(0, |t| t.nodes.len())
    }

    /// A client for one primary, with the seed's credentials and TLS choice.
    fn client(&self, primary: &Primary) -> Result<Client, BackendError> {
        let (host, port) = (primary.host.clone(), primary.port);
        let bad =
            |e: redis::RedisError| BackendError::Other(format!("redis node {host}:{port}: {e}"));
        match &self.tls {
            None => Client::open(
                self.node
                    .clone()
                    .set_addr(ConnectionAddr::Tcp(primary.host.clone(), primary.port)),
            ),
            Some(ca) => {
                let info = self.node.clone().set_addr(ConnectionAddr::TcpTls {
                    host: primary.host.clone(),
                    port: primary.port,
                    insecure: false,
                    tls_params: None,
                });
                match ca {
                    Some(root) => Client::build_with_tls(
                        info,
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(root.clone()),
                        },
                    ),
                    None => Client::open(info),
                }
            }
        }
        .map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_match_the_servers_hash() {
        // Each pair from `CLUSTER KEYSLOT` on redis-server 7.
        for (key, expected) in [
            ("foo", 12_182),
            ("bar", 5_061),
            ("{user1000}.following", 3_443),
            ("{}foo", 9_500),
            ("a{b}c{d}", 3_300),
            ("x{}{y}", 14_166),
        ] {
            assert_eq!(slot(key), expected, "{key}");
        }
    }
}

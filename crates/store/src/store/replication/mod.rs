//! Replication between regions (design 0026). A store whose deployment is a region (`regions.name`) appends
//! what other regions must apply to its stream on its own backend (`{ns}:{env}:_repl:{region}`): every
//! invalidation and erasure — refused as unavailable if it cannot be appended, so none is lost silently — and
//! every value written of a type with `types.<name>.replicate` (a lost one costs a recomputation elsewhere, no
//! more: it is logged and dropped). A [`Replicator`] reads another region's stream through a consumer group
//! and applies it here (`apply.rs`), never appending what it applies again (no echo).
//!
//! A value does not travel in the stream: its entry names it, and the applying region reads it from the writing
//! region's backend as it is then — sealed when its type is, so the key id travels and never the key — unless an
//! invalidation hid it since. It keeps the freshness it was written with, and is applied only if newer than the
//! copy the applying region holds.

mod appender;
mod apply;
mod clock;
mod entry;
mod gap;
mod packing;
mod progress;
mod replicator;

use std::collections::BTreeSet;

use fernando_cache_config::{CacheType, Settings};
use fernando_cache_keys::{CacheKey, KeyBuilder, RESERVED_KEY_PREFIX, Scope};

pub use progress::{Progress, RegionStatus};
pub use replicator::{Replicator, Round};

use self::entry::Op;
use super::{Store, Target};
use crate::{BackendError, InvalidationStrategy, StoreError, codec::Version};

tokio::task_local! {
    /// Set while a replicator applies another region's entry: what it does is not appended again, and an
    /// invalidation it makes marks its scope's replicated types with the version given — the entry's, as its
    /// stream id dates it — or, with none, this process's next.
    static APPLYING: Option<Version>;
}

/// What a region's note of another's stream holds.
pub(super) enum Note {
    /// Nothing.
    Missing,
    /// Something no build of ours wrote (text it cannot read, another Redis type).
    Foreign,
    /// A note.
    Kept(Progress),
}

/// The region a store's deployment is, and what it replicates.
#[derive(Debug)]
pub(super) struct Region {
    name: String,
    /// Its stream's shards on the shared backend (one, or [`CLUSTER_STREAM_SHARDS`] on a cluster).
    streams: Vec<String>,
    max_len: u64,
    /// How long the stream keeps an entry, in ms.
    max_age_ms: u64,
    /// When the stream was last trimmed by age (ms since the Unix epoch).
    trimmed_at: std::sync::atomic::AtomicU64,
    /// Types whose values are appended.
    replicated: BTreeSet<CacheType>,
    /// The regions whose streams this one applies, each with its stream's shards.
    from: Vec<(String, u16)>,
    /// The queue of entries to append.
    appender: appender::Appender,
    /// Who this process's writes are by, in their versions: the region's id (16 bits of a hash of its name)
    /// over 48 random bits.
    origin: u64,
}

impl Region {
    /// The region `settings` name, if they name one.
    pub(super) fn from_settings(settings: &Settings, keys: &KeyBuilder) -> Option<Region> {
        let name = settings.regions.region()?;
        Some(Region {
            name: name.to_owned(),
            streams: {
                let shards = stream_shards(settings.redis.mode);
                (0..shards)
                    .map(|s| keys.replication_stream(name, s, shards))
                    .collect()
            },
            max_len: settings.regions.stream_max_entries,
            max_age_ms: u64::try_from(settings.regions.stream_max_age.as_millis())
                .unwrap_or(u64::MAX),
            trimmed_at: std::sync::atomic::AtomicU64::new(0),
            replicated: settings
                .types
                .known()
                .into_iter()
                .filter(|t| settings.types.get(t).replicate)
                .collect(),
            from: settings
                .regions
                .from
                .iter()
                .map(|(name, redis)| (name.clone(), stream_shards(redis.mode)))
                .collect(),
            appender: appender::Appender::default(),
            origin: (u64::from(region_id(name)) << 48) | (rand::random::<u64>() >> 16),
        })
    }
}

impl Region {
    /// The shard of the stream a scope's operations go to: by its tenant (or other scope) label, so one
    /// scope's operations keep their order.
    fn place(&self, scope: &Scope) -> appender::Place<'_> {
        appender::Place {
            from: &self.name,
            shard: shard_of(scope, self.streams.len()),
            shards: self.streams.len(),
        }
    }
}

/// Shards of a region's stream on a cluster: enough that no one primary carries every tenant's entries.
pub(crate) const CLUSTER_STREAM_SHARDS: u16 = 16;

/// The shards of a region's stream on a deployment of `mode`: one, or [`CLUSTER_STREAM_SHARDS`] on a cluster
/// (design 0026, decision 2) — a rule, not a setting, so every region knows another's from its topology.
pub(crate) fn stream_shards(mode: fernando_cache_config::RedisMode) -> u16 {
    if mode == fernando_cache_config::RedisMode::Cluster {
        CLUSTER_STREAM_SHARDS
    } else {
        1
    }
}

/// The shard of `shards` a scope's operations go to.
fn shard_of(scope: &Scope, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    (crate::hash::fnv1a(scope.label().as_bytes()) % shards as u64) as usize
}

/// A region's id in the versions of its writes: 16 bits of a hash of its name.
pub(crate) fn region_id(name: &str) -> u16 {
    (crate::hash::fnv1a(name.as_bytes()) >> 48) as u16
}

impl Store {
    /// How far behind each region of `regions.from` this one is, from what its replicators noted here.
    pub(super) async fn regions(&self) -> Result<Vec<RegionStatus>, StoreError> {
        let Some(region) = &self.inner.region else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(region.from.len());
        for (from, shards) in &region.from {
            // One note a shard of its stream; a shard noted by none (or by no build of ours) leaves the region
            // unnoted — which the alert says.
            let mut noted = Vec::with_capacity(usize::from(*shards));
            for shard in 0..*shards {
                let note = self
                    .region_note(&self.inner.keys.replication_progress(from, shard, *shards))
                    .await
                    .map_err(|source| StoreError::Unavailable {
                        op: "regions",
                        source,
                    })?;
                noted.push(match note {
                    Note::Kept(p) => Some(p),
                    Note::Missing | Note::Foreign => None,
                });
            }
            let progress = noted
                .into_iter()
                .collect::<Option<Vec<Progress>>>()
                .map(|shards| Progress::combined(&shards));
            out.push(RegionStatus::of(
                from.clone(),
                progress,
                crate::codec::now_ms(),
            ));
        }
        Ok(out)
    }

    /// What this region noted under `key` of applying a shard of another region's stream, on its shared
    /// backend.
    pub(super) async fn region_note(&self, key: &str) -> Result<Note, BackendError> {
        let lane = self.shared_lane();
        let streams = lane.backend.streams()?;
        Ok(match self.call(lane, streams.recorded(key)).await {
            Ok(None) => Note::Missing,
            Ok(Some(text)) => Progress::parse(&text).map_or(Note::Foreign, Note::Kept),
            // Not a note at all (a hash, a list).
            Err(BackendError::WrongType) => Note::Foreign,
            Err(e) => return Err(e),
        })
    }

    /// Writes this region's note under `key` of applying a shard of another region's stream, kept
    /// [`progress::KEPT`].
    pub(super) async fn write_region_note(
        &self,
        key: &str,
        note: &Progress,
    ) -> Result<(), BackendError> {
        let lane = self.shared_lane();
        let streams = lane.backend.streams()?;
        let text = note.to_text();
        self.call(lane, streams.record(key, text.as_bytes(), progress::KEPT))
            .await
    }

    /// The version of a value of a replicated type written by this process now (design 0026); `None` when the
    /// deployment is no region.
    pub(super) fn next_version(&self) -> Option<crate::codec::Version> {
        let region = self.inner.region.as_ref()?;
        Some(crate::codec::Version {
            hlc: clock::tick(),
            origin: region.origin,
        })
    }

    /// Marks `scope`'s replicated types (`cache_type`'s, or all of them) as invalidated now, on every shard: a
    /// value another region wrote before it is not applied after it (design 0026, decision 4). Nothing when
    /// the deployment is no region or replicates none of them.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when a mark cannot be written: the invalidation is then run again.
    pub(super) async fn mark_invalidated(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
    ) -> Result<(), StoreError> {
        self.mark(scope, cache_type, false).await
    }

    /// Marks a tenant's replicated types as erased: as [`Self::mark_invalidated`], the mark set
    /// [`clock::MAX_AHEAD_MS`] ahead, so that a value another region stamped with a clock running ahead of this
    /// one's — as far as a value is ever believed — is not taken for one written after the erasure. The cost is
    /// a minute in which the tenant's new values are computed here rather than taken from another region.
    pub(super) async fn mark_erased(&self, scope: &Scope) -> Result<(), StoreError> {
        self.mark(scope, None, true).await
    }

    async fn mark(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        ahead: bool,
    ) -> Result<(), StoreError> {
        let Some(region) = &self.inner.region else {
            return Ok(());
        };
        let types: Vec<&CacheType> = match cache_type {
            Some(t) => region.replicated.get(t).into_iter().collect(),
            None => region.replicated.iter().collect(),
        };
        if types.is_empty() {
            return Ok(());
        }
        let mut version = APPLYING
            .try_with(|v| *v)
            .ok()
            .flatten()
            .unwrap_or_else(|| Version {
                hlc: clock::tick(),
                origin: region.origin,
            });
        if ahead {
            version = Version {
                hlc: ((version.hlc >> 16).saturating_add(clock::MAX_AHEAD_MS) << 16) | 0xFFFF,
                origin: u64::MAX,
            };
        }
        let lane = self.lane(scope.into());
        // Only a backend with streams can hold another region's values at all.
        let Ok(streams) = lane.backend.streams() else {
            return Ok(());
        };
        let mut marks = Vec::new();
        for t in types {
            for g in self.inner.keys.generation_keys_per_shard(scope, t)? {
                marks.push(g.invalidation_mark());
            }
        }
        // As long as another region's entry can come late: its stream's bound in time, and the clocks' skew.
        let ttl =
            std::time::Duration::from_millis(region.max_age_ms.saturating_add(clock::MAX_AHEAD_MS));
        let bytes = version.to_bytes();
        futures_util::future::try_join_all(
            marks
                .iter()
                .map(|m| self.call(&lane, streams.mark(m, &bytes, ttl))),
        )
        .await
        .map_err(|source| StoreError::Unavailable {
            op: "invalidate",
            source,
        })?;
        Ok(())
    }

    /// Whether a value of `cache_type` written now goes to other regions.
    pub(super) fn replicates(&self, cache_type: &CacheType) -> bool {
        self.replicates_here(cache_type) && APPLYING.try_with(|_| ()).is_err()
    }

    /// Whether this region replicates `cache_type` (applying another region's values of it included).
    pub(super) fn replicates_here(&self, cache_type: &CacheType) -> bool {
        self.inner
            .region
            .as_ref()
            .is_some_and(|r| r.replicated.contains(cache_type))
    }

    /// Queues `op` of `scope` (and `cache_type`) for this region's stream, behind everything this store queued
    /// before, and waits until it is on the stream (an invalidation, an erasure); nothing when the deployment is
    /// no region, or when the operation is another region's being applied.
    async fn append(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
        op: Op,
    ) -> Result<(), BackendError> {
        let Some(region) = &self.inner.region else {
            return Ok(());
        };
        if APPLYING.try_with(|_| ()).is_ok() {
            return Ok(());
        }
        let appended = region
            .appender
            .push_waited(
                self,
                &region.place(scope),
                scope,
                cache_type.map(CacheType::as_str),
                &op,
            )
            .await?;
        appended.await.unwrap_or_else(|_| {
            Err(BackendError::Other(
                "the replication queue stopped before the entry was appended".into(),
            ))
        })
    }

    /// Queues that a value of `cache_type` was written under the specific key `key`, not waiting for it to
    /// reach the stream: one that finds the queue full is counted and logged.
    fn queue_value(&self, region: &Region, scope: &Scope, cache_type: &CacheType, key: &str) {
        let place = region.place(scope);
        if !region
            .appender
            .push_value(self, &place, scope, cache_type.as_str(), key)
        {
            self.count_dropped(1);
            tracing::warn!("a value's entry found the replication queue full; dropped");
        }
    }

    /// Appends one packed entry to shard `shard` of this region's stream now (the queue's task): one `XADD` of
    /// one field, trimming the stream by age too at most once a second.
    pub(super) async fn append_entry(
        &self,
        shard: usize,
        packed: Vec<u8>,
    ) -> Result<(), BackendError> {
        let Some(region) = &self.inner.region else {
            return Ok(());
        };
        let now = crate::codec::now_ms();
        let last = region.trimmed_at.load(std::sync::atomic::Ordering::Relaxed);
        let min_ms = (now.saturating_sub(last) >= 1_000).then(|| {
            region
                .trimmed_at
                .store(now, std::sync::atomic::Ordering::Relaxed);
            now.saturating_sub(region.max_age_ms)
        });
        let lane = &self.inner.shared;
        let streams = lane.backend.streams()?;
        self.call(
            lane,
            streams.append(
                &region.streams[shard],
                &[(packing::PACKED_FIELD, &packed)],
                region.max_len,
                min_ms,
            ),
        )
        .await
    }

    /// Appends an invalidation that was done here, for other regions; an invalidation that cannot be appended
    /// is reported as unavailable (the caller tries again, which is harmless).
    pub(super) async fn replicate_invalidation(
        &self,
        target: &Target<'_>,
        strategy: InvalidationStrategy,
    ) -> Result<(), StoreError> {
        if self.inner.region.is_none() {
            return Ok(());
        }
        let (scope, cache_type, op) = match *target {
            Target::Entries { scope, cache_type } => (scope, cache_type, Op::Entries { strategy }),
            Target::Pattern {
                scope,
                cache_type,
                glob,
            } => (scope, cache_type, Op::Pattern(glob.to_owned())),
            Target::Subject {
                scope,
                cache_type,
                subject,
            } => (scope, cache_type, Op::Subject(subject.to_owned())),
            Target::Tag { scope, tag } => (scope, None, Op::Tag(tag.to_owned())),
        };
        self.append(&scope.to_scope(), cache_type, op)
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "replicate",
                source,
            })
    }

    /// Appends a tenant's erasure that was done here, for other regions.
    pub(super) async fn replicate_erasure(&self, scope: &Scope) -> Result<(), StoreError> {
        self.append(scope, None, Op::Erase)
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "replicate",
                source,
            })
    }

    /// Queues that a value of a replicated type was written here under `key`, after the write landed (so that
    /// another region reading it finds it), without waiting for the entry to reach the stream. The other
    /// regions read it from this region's backend; one that cannot be appended is counted and logged: they
    /// compute it again.
    pub(super) fn replicate_value(&self, scope: &Scope, cache_type: &CacheType, key: &CacheKey) {
        let Some(region) = &self.inner.region else {
            return;
        };
        if APPLYING.try_with(|_| ()).is_ok() {
            return;
        }
        match KeyBuilder::specific_of(key.as_str()) {
            // The store's own entries (a group's dictionary) stay in their region.
            Ok(s) if s.starts_with(RESERVED_KEY_PREFIX) => {}
            // Never waits, never fails: a value's entry is left to the queue.
            Ok(s) => self.queue_value(region, scope, cache_type, &s),
            Err(_) => {}
        }
    }

    /// Tells other regions again of the value this region holds under `specific`, newer than one another
    /// region sent it: that region holds an older one (a write of its own that landed after it applied this
    /// one, or its clock behind), and would keep it (design 0026). Each region then holds the newer.
    pub(super) fn announce_again(&self, scope: &Scope, cache_type: &CacheType, specific: &str) {
        let Some(region) = &self.inner.region else {
            return;
        };
        self.queue_value(region, scope, cache_type, specific);
    }
}

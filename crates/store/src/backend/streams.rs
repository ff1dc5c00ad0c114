//! [`Streams`], the capability of a backend whose processes share append-only streams read by consumer groups —
//! Redis, in every topology — which carries replication between regions (design 0026). Reached through
//! [`Coordination::streams`](crate::Coordination::streams); the disk and in-process backends have none.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use fernando_cache_keys::GenerationKeys;

use super::BackendError;

/// One entry of a stream: its id (`ms-seq`) and its fields, in the order they were appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry's id.
    pub id: String,
    /// Its fields.
    pub fields: Vec<(String, Bytes)>,
    /// The entry was given to the consumer but is gone from the stream since (trimmed, deleted) before it was
    /// acknowledged: what it said is lost (it has no fields).
    pub deleted: bool,
}

/// What a read of a group's new entries found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEntries {
    /// The entries, in the stream's order.
    pub entries: Vec<StreamEntry>,
    /// Entries the group was never given are gone from the stream (trimmed unread, or deleted), or it was made
    /// again: the last id the group was given, and the id the loss is known by (to be passed back as accepted
    /// once answered). Nothing was read then: the caller answers the loss first, then reads again.
    pub lost: Option<(String, String)>,
    /// Entries still waiting for the group after this read, when the server can tell.
    pub behind: Option<u64>,
}

impl StreamEntry {
    /// The value of the first field named `name`.
    pub fn field(&self, name: &str) -> Option<&Bytes> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// What a versioned write ([`Streams::put_newer`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versioned {
    /// The value is stored.
    Stored,
    /// The copy held (one no invalidation hid) is as new or newer: its version, as the envelope says it.
    Held([u8; 16]),
    /// An invalidation of the entry's scope and type made or applied here is as new or newer: its version.
    Marked([u8; 16]),
    /// The generations are not the ones the value was stamped for: their stored values (empty for none), to
    /// stamp it again.
    Generations([Vec<u8>; 2]),
}

/// Append-only streams shared by every process on the backend, each read through consumer groups: every
/// entry goes to one consumer of a group, stays pending until that consumer acknowledges it, and can be
/// claimed by another when it was left pending too long (a consumer that died).
#[async_trait]
pub trait Streams: Send + Sync {
    /// Appends an entry of `fields` to `stream`, trimming it to about `max_len` entries and, when `min_ms` is
    /// given, dropping entries made before that time (ms since the Unix epoch) — in one round trip.
    async fn append(
        &self,
        stream: &str,
        fields: &[(&str, &[u8])],
        max_len: u64,
        min_ms: Option<u64>,
    ) -> Result<(), BackendError>;

    /// Makes the consumer group `group` of `stream` (and the stream) unless it exists; a new group reads from
    /// the first entry kept. `Ok(true)` when it was made now.
    async fn join_group(&self, stream: &str, group: &str) -> Result<bool, BackendError>;

    /// Up to `count` entries `consumer` of `group` was given and has not acknowledged, those gone from the
    /// stream since marked [`StreamEntry::deleted`].
    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError>;

    /// Up to `count` entries no consumer of `group` was given yet, now `consumer`'s — unless entries the group
    /// was never given are gone from the stream (trimmed unread, deleted), or the group was given less than
    /// `applied` (the last id the caller knows was applied: the group was made again since): then nothing is
    /// read and [`NewEntries::lost`] says so, checked in the same step as the read, so no loss goes unseen. A
    /// loss known by an id up to `accepted` (an id, or `0-0`) is one the caller answered already, and not
    /// reported again. Never waits for entries to come.
    async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        accepted: &str,
        applied: &str,
    ) -> Result<NewEntries, BackendError>;

    /// Writes the envelope `value` (stamped with the generations `stamped`, whose stored values the caller
    /// expects are `expected`) under `key` for `ttl` only if it is newer, by `version` (16 bytes, compared byte
    /// by byte), than the copy held there that its generations still show, and than the invalidation mark
    /// `mark` — in one step: another region's value applied here (design 0026).
    #[allow(clippy::too_many_arguments)]
    async fn put_newer(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        generations: &GenerationKeys,
        mark: &str,
        expected: [&[u8]; 2],
        stamped: [u64; 2],
        version: &[u8; 16],
    ) -> Result<Versioned, BackendError>;

    /// Sets the invalidation mark `mark` to `version` for `ttl`, unless it holds a version as new or newer:
    /// what [`Streams::put_newer`] checks.
    async fn mark(&self, mark: &str, version: &[u8; 16], ttl: Duration)
    -> Result<(), BackendError>;

    /// Keeps `value` under `key` for `ttl`: what a reader of streams notes of its progress, on its own backend.
    async fn record(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), BackendError>;

    /// What [`Streams::record`] kept under `key`, if anything.
    async fn recorded(&self, key: &str) -> Result<Option<Bytes>, BackendError>;

    /// Acknowledges entries `consumer`s of `group` were given: they are done.
    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), BackendError>;

    /// Up to `count` entries other consumers of `group` were given and left unacknowledged for `min_idle`, now
    /// `consumer`'s; those gone from the stream since marked [`StreamEntry::deleted`].
    async fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError>;
}

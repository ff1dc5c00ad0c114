//! [`Streams`], the capability of a backend whose processes share append-only streams read by consumer groups —
//! Redis, in every topology — which carries replication between regions (design 0026). Reached through
//! [`Coordination::streams`](crate::Coordination::streams); the disk and in-process backends have none.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::BackendError;

/// One entry of a stream: its id (`ms-seq`) and its fields, in the order they were appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry's id.
    pub id: String,
    /// Its fields.
    pub fields: Vec<(String, Bytes)>,
}

impl StreamEntry {
    /// The value of the first field named `name`.
    pub fn field(&self, name: &str) -> Option<&Bytes> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Append-only streams shared by every process on the backend, each read through consumer groups: every
/// entry goes to one consumer of a group, stays pending until that consumer acknowledges it, and can be
/// claimed by another when it was left pending too long (a consumer that died).
#[async_trait]
pub trait Streams: Send + Sync {
    /// Appends an entry of `fields` to `stream`, trimming it to about `max_len` entries; the entry's id.
    async fn append(
        &self,
        stream: &str,
        fields: &[(&str, &[u8])],
        max_len: u64,
    ) -> Result<String, BackendError>;

    /// Makes the consumer group `group` of `stream` (and the stream) unless it exists; a new group reads from
    /// the first entry kept. `Ok(true)` when it was made now.
    async fn join_group(&self, stream: &str, group: &str) -> Result<bool, BackendError>;

    /// Up to `count` entries for `consumer` of `group`: new ones, or (`own_pending`) those it was given and has
    /// not acknowledged. Never waits for entries to come.
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        own_pending: bool,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError>;

    /// Acknowledges entries `consumer`s of `group` were given: they are done.
    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), BackendError>;

    /// Up to `count` entries other consumers of `group` were given and left unacknowledged for `min_idle`, now
    /// `consumer`'s.
    async fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError>;
}

//! How a replicator applies what it read of a shard: each entry's operations read and checked, the values they name read
//! from the other region a chunk at a time, one scope's operations in their order and scopes side by side, and
//! the entries done kept to be acknowledged.

use fernando_cache_keys::Scope;

use super::{Round, Shard, lock};
use crate::{
    StoreError, StreamEntry,
    store::replication::{
        apply::Applied,
        entry::{Op, Replicated},
    },
};

/// Operations whose values are read from the other region at once (one read a distinct key: an entry may name
/// one key many times).
const APPLY_AT_ONCE: usize = 64;

/// One operation taken off the stream: its entry's id, the operation as read, and the value it names as read
/// from the other region (none: nothing to apply).
type Taken<'a> = (&'a str, Result<Replicated, String>, Option<bytes::Bytes>);

impl Shard {
    /// Applies `entries` in their order (claimed ones may come after newer entries were applied), keeping the ids of
    /// those done to be acknowledged; stops at the first this region could not take.
    pub(super) async fn apply_all(
        &self,
        entries: Vec<StreamEntry>,
        round: &mut Round,
    ) -> Result<(), StoreError> {
        // Entries given to this region and gone before they were applied: what they said is lost. Answered
        // before the rest is applied (a value after them is read as it is now, so applying it later is sound).
        let gone: Vec<&str> = entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.id.as_str())
            .collect();
        if let Some(last) = gone.last() {
            self.answer_loss(
                &format!(
                    "{} entries given to this region were trimmed before they were applied",
                    gone.len()
                ),
                last,
                round,
            )
            .await?;
        }
        let entries: Vec<_> = entries.into_iter().filter(|e| !e.deleted).collect();
        let max_tenant = self.local.inner.keys.max_tenant_len();
        // Each entry's operations (a writer packs several into one); only those that say they were made in the
        // region whose stream this is.
        let read: Vec<Vec<Result<Replicated, String>>> = entries
            .iter()
            .map(|e| {
                Replicated::read_all(e, max_tenant)
                    .into_iter()
                    .map(|r| {
                        r.and_then(|r| {
                            if r.from == self.from {
                                Ok(r)
                            } else {
                                Err("made in another region than the stream's".to_owned())
                            }
                        })
                    })
                    .collect()
            })
            .collect();
        // Operations in order, each with the entry it came in and whether it is that entry's last.
        let mut ops = Vec::new();
        for (entry, read) in entries.iter().zip(read) {
            let last = read.len().saturating_sub(1);
            ops.extend(
                read.into_iter()
                    .enumerate()
                    .map(|(i, r)| (entry.id.as_str(), r, i == last)),
            );
        }
        for chunk in ops.chunks_mut(APPLY_AT_ONCE) {
            // The values the chunk names, read from the other region at once (one pipeline), each as it is now —
            // each key once, however many operations name it (they would all read the same bytes).
            let first: Vec<Option<usize>> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, r, _))| match r {
                    Ok(r) if matches!(r.op, Op::Value { .. }) => chunk[..i]
                        .iter()
                        .position(|(_, earlier, _)| earlier.as_ref().is_ok_and(|e| e == r))
                        .or(Some(i)),
                    _ => None,
                })
                .collect();
            let read =
                futures_util::future::join_all(chunk.iter().enumerate().map(|(i, (_, r, _))| {
                    let first = &first;
                    async move {
                        match r {
                            Ok(r) if first[i] == Some(i) => self.value_of(r).await,
                            _ => None,
                        }
                    }
                }))
                .await;
            let values: Vec<Option<bytes::Bytes>> = first
                .iter()
                .map(|first| first.and_then(|at| read[at].clone()))
                .collect();
            // One scope's operations in their order, scopes side by side: no operation reaches past its scope,
            // so this is the stream's order wherever it matters, in a fraction of the time.
            let mut by_scope: Vec<(Option<Scope>, Vec<Taken<'_>>)> = Vec::new();
            for ((id, read, _), value) in chunk.iter_mut().zip(values) {
                let read = std::mem::replace(read, Err(String::new()));
                let scope = read.as_ref().ok().map(|r| r.scope.clone());
                // Operations that cannot be read go together: they change nothing.
                match by_scope.iter_mut().find(|(s, _)| *s == scope) {
                    Some((_, ops)) => ops.push((id, read, value)),
                    None => by_scope.push((scope, vec![(id, read, value)])),
                }
            }
            let tallies = futures_util::future::join_all(
                by_scope
                    .into_iter()
                    .map(|(_, ops)| self.apply_in_order(ops)),
            )
            .await;
            for tally in tallies {
                let tally = tally?;
                round.applied += tally.applied;
                round.skipped += tally.skipped;
                round.widened += tally.widened;
                round.rejected += tally.rejected;
            }
            // Every operation of the chunk applied: the entries that ended in it are done.
            let mut unacked = lock(&self.unacked);
            unacked.extend(
                chunk
                    .iter()
                    .filter(|(_, _, last)| *last)
                    .map(|(id, _, _)| (*id).to_owned()),
            );
        }
        Ok(())
    }

    /// Applies one scope's operations in their order; stops at the first this region could not take.
    pub(super) async fn apply_in_order(&self, ops: Vec<Taken<'_>>) -> Result<Round, StoreError> {
        let mut tally = Round::default();
        let mut warned = None;
        for (id, read, value) in ops {
            match read {
                Err(why) => {
                    // One warning an entry, however many of its operations are wrong.
                    if warned != Some(id) {
                        tracing::warn!(id, why, "a replication entry that is not ours; skipped");
                        warned = Some(id);
                    }
                    tally.rejected += 1;
                }
                Ok(r) => match self.local.apply(id, r, value).await? {
                    Applied::Done => tally.applied += 1,
                    Applied::Skipped => tally.skipped += 1,
                    Applied::Widened => tally.widened += 1,
                    Applied::Refused => tally.rejected += 1,
                },
            }
        }
        Ok(tally)
    }

    /// What a value entry's key holds in the other region now, unless an invalidation there hid it (its
    /// generations are not the current ones): `None` for nothing to apply.
    pub(super) async fn value_of(&self, r: &Replicated) -> Option<bytes::Bytes> {
        let (Op::Value { key }, Some(cache_type)) = (&r.op, &r.cache_type) else {
            return None;
        };
        let Ok(cache_type) = fernando_cache_config::CacheType::new(cache_type.as_str()) else {
            return None;
        };
        let keys = &self.remote.inner.keys;
        let Ok(key) = keys.key(&r.scope, &cache_type, key) else {
            return None;
        };
        let generations = keys.generation_keys_of(&key);
        let lane = &self.remote.inner.shared;
        // A value that cannot be read (one too large to arrive in time, a key holding another kind of value) is
        // left to be computed here: reading it again would stop every entry behind it, and not applying a value
        // never serves what was invalidated.
        let fetched = match self
            .remote
            .call(lane, lane.storage().fetch(key.as_str(), &generations))
            .await
        {
            Ok(fetched) => fetched,
            Err(e) => {
                tracing::warn!(error = %e, "a replicated value could not be read from its region; left to be computed here");
                return None;
            }
        };
        fetched.value.filter(|bytes| {
            crate::codec::read_header(bytes).is_ok_and(|h| h.generations == fetched.generations)
        })
    }
}

//! Batches of one scope and cache type: `get_many` reads its keys with one backend call per generation group —
//! one `MGET` on Redis (per primary of a cluster), the generations tracked or read in the same round trip —
//! after the in-process tier, and judges each answer as a single read does (`Store::settle`), counting each key
//! once; `set_many` writes its entries concurrently, which the hot path's auto-pipelining sends together.

use std::time::Instant;

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, GenerationKeys, KeyBuilder};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{Instrument, debug_span};

use super::{Store, read::Gens, settle::Judged, tally::Tally, write::Write};
use crate::{StoreError, WriteOutcome, codec};

/// Writes of one `set_many` in flight at once: enough to fill a pipeline, few enough that none waits past its
/// command timeout behind the others.
const SET_MANY_IN_FLIGHT: usize = 32;

impl Store {
    /// Reads the values of `keys` (one scope, one cache type) in one round trip per connection — per primary
    /// on a cluster, per shard of a sharded tenant — answering in the order of `keys`. Each key is judged and
    /// counted as [`Store::get`] would (absent, invalidated, expired, corrupt or undecodable: `None`), values
    /// kept in process are answered first, and an unavailable backend makes the keys it was asked for misses.
    ///
    /// # Errors
    /// Only for an invalid tenant or key (then nothing is read).
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        keys: &[&str],
    ) -> Result<Vec<Option<T>>, StoreError> {
        let scope = scope.as_scope();
        let span = debug_span!(
            "cache.get_many",
            tenant = scope.label(),
            cache_type = cache_type.as_str(),
            keys = keys.len()
        );
        let batch = async move {
            let decode = codec::typed_decoder::<T>();
            let lane = self.lane(scope);
            let storage = lane.storage();
            let series = self
                .inner
                .metrics
                .series(scope.label(), cache_type.as_str());
            let l1 = self
                .inner
                .l1
                .as_ref()
                .and_then(|l1| Some((l1, l1.life_of(cache_type)?)));
            let generations_in_use = storage.generations_in_use();
            // A tenant spread over shards has a group per shard; any other scope's keys are all one group.
            let spread = self.inner.keys.shards(scope) > 1;
            let mut answers: Vec<Option<T>> =
                std::iter::repeat_with(|| None).take(keys.len()).collect();
            // Grouped by generation keys: one backend call a group, which holds where its keys are in the batch.
            // A group is told by its keys' common part, so its generation keys are built once.
            let mut groups: Vec<(String, GenerationKeys, Vec<usize>)> = Vec::new();
            // What each key read from the backend took before the read, when the type keeps copies in process.
            let mut pendings: Vec<Option<(&super::l1::L1, super::l1::Pending)>> = Vec::new();
            // One buffer for the batch's keys, their shared part built once.
            let built = self.inner.keys.keys_in(scope, cache_type, keys)?;
            for (at, key) in built.iter().enumerate() {
                if let Some((l1, life)) = l1 {
                    if let Some((value, _)) = self.l1_hit(l1, key, &decode, &series, Instant::now())
                    {
                        answers[at] = Some(value);
                        continue;
                    }
                    pendings.resize_with(keys.len(), || None);
                    pendings[at] = Some((l1, l1.before_read(key, storage.watch(key), life)));
                }
                let known = if spread || groups.is_empty() {
                    let common = KeyBuilder::group_of(key);
                    groups.iter().position(|(known, _, _)| known == common)
                } else {
                    Some(0)
                };
                match known {
                    Some(i) => groups[i].2.push(at),
                    None => {
                        let g = match built.key(at) {
                            Some(key) if generations_in_use => {
                                self.inner.keys.generation_keys_of(&key)
                            }
                            _ => GenerationKeys::unused(),
                        };
                        let mut wanted = Vec::with_capacity(keys.len() - at);
                        wanted.push(at);
                        groups.push((KeyBuilder::group_of(key).to_owned(), g, wanted));
                    }
                }
            }
            let mut tally = Tally::default();
            let started = Instant::now();
            let tally_keys: usize = groups.iter().map(|(_, _, group)| group.len()).sum();
            for (_, g, group) in groups {
                let start = Instant::now();
                let refs: Vec<&str> = group.iter().filter_map(|at| built.get(*at)).collect();
                let fetched = self
                    .call_from(&lane, start, storage.fetch_many(&refs, &g))
                    .await;
                // One clock read for the group: its answers arrived together.
                let now_ms = codec::now_ms();
                let generations = Gens::Built(g);
                let mut fetched = match fetched {
                    Ok(all) if all.len() == group.len() => Ok(all.into_iter()),
                    Ok(all) => Err(crate::BackendError::Other(format!(
                        "{} keys read, {} answered",
                        group.len(),
                        all.len()
                    ))),
                    Err(e) => Err(e),
                };
                for (at, key) in group.into_iter().zip(refs) {
                    let one = match &mut fetched {
                        Ok(answers) => Ok(answers.next().expect("one answer a key")),
                        Err(e) => Err(e.clone()),
                    };
                    // Judged without waiting where it can be: only an entry with tags or a dictionary, or one
                    // to remove, waits on the backend again (with a key of its own).
                    let (lookup, found) = match self.judge(
                        key,
                        &series,
                        &decode,
                        pendings.get_mut(at).and_then(Option::take),
                        one,
                        now_ms,
                    ) {
                        Judged::Settled(lookup, found) => (lookup, found),
                        later => {
                            let key = built.key(at).expect("a key of the batch");
                            self.judged(&lane, &key, &generations, &series, &decode, later, now_ms)
                                .await
                        }
                    };
                    tally.add(&found, false);
                    answers[at] = lookup.value;
                }
            }
            // Each key counted; one latency sample for the batch (its round trips), when it went to the backend.
            if tally_keys > 0 {
                tally.apply(&series, Some(started.elapsed()));
            }
            Ok(answers)
        };
        // As `get`: without a subscriber for the span, no `Instrumented` wrapper entering it at every poll.
        if span.is_disabled() {
            batch.await
        } else {
            batch.instrument(span).await
        }
    }

    /// Stores `entries` (one scope, one cache type) with the type's TTL, concurrently (32 at a time): on Redis
    /// the hot path's auto-pipelining sends writes that are ready together as one pipeline. Each entry is written — and
    /// refused, quota-checked and counted — as [`Store::set`] writes it; the outcomes come in the order of
    /// `entries`.
    ///
    /// # Errors
    /// As [`Store::set`], for the first entry that fails that way (an invalid tenant or key).
    pub async fn set_many<T: Serialize>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        entries: &[(&str, &T)],
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        use futures_util::StreamExt;
        let scope = scope.as_scope();
        let writes = entries
            .iter()
            .map(|(key, value)| self.set_with(scope, cache_type, key, *value, Write::default()));
        // At most `SET_MANY_IN_FLIGHT` at once: a batch of thousands is not thousands of writes racing one
        // command timeout.
        let outcomes: Vec<Result<WriteOutcome, StoreError>> = futures_util::stream::iter(writes)
            .buffered(SET_MANY_IN_FLIGHT)
            .collect()
            .await;
        outcomes.into_iter().collect()
    }
}

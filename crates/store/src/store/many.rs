//! Batches of one scope and cache type: `get_many` reads its keys with one backend call per generation group —
//! one `MGET` on Redis (per primary of a cluster), the generations tracked or read in the same round trip —
//! after the in-process tier, and judges each answer as a single read does (`Store::settle`), counting each key
//! once; `set_many` writes its entries concurrently, which the hot path's auto-pipelining sends together.

use std::time::Instant;

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, GenerationKeys, KeyBuilder};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{Instrument, debug_span};

use super::{
    Store,
    read::{Gens, key_buffer},
    tally::Tally,
    write::Write,
};
use crate::{StoreError, WriteOutcome, codec};

/// Writes of one `set_many` in flight at once: enough to fill a pipeline, few enough that none waits past its
/// command timeout behind the others.
const SET_MANY_IN_FLIGHT: usize = 32;

/// One key of a batch still to be read from the backend.
struct Wanted<'l> {
    /// Its place in the answer.
    at: usize,
    key: CacheKey,
    /// Taken before the read when the type keeps copies in process.
    pending: Option<(&'l super::l1::L1, super::l1::Pending)>,
}

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
        async move {
            let decode = codec::decode_typed::<T>;
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
            let mut answers: Vec<Option<T>> =
                std::iter::repeat_with(|| None).take(keys.len()).collect();
            // Grouped by generation keys (a sharded tenant's keys fall on several shards): one backend call a
            // group. A group is told by its keys' common part, so its generation keys are built once.
            let mut groups: Vec<(String, GenerationKeys, Vec<Wanted<'_>>)> = Vec::new();
            for (at, key) in keys.iter().enumerate() {
                let key = self
                    .inner
                    .keys
                    .key_in(key_buffer::take(), scope, cache_type, key)?;
                let pending = match l1 {
                    Some((l1, life)) => {
                        if let Some((value, _)) =
                            self.l1_hit(l1, &key, &decode, &series, Instant::now())
                        {
                            answers[at] = Some(value);
                            continue;
                        }
                        Some((
                            l1,
                            l1.before_read(key.as_str(), storage.watch(key.as_str()), life),
                        ))
                    }
                    None => None,
                };
                let common = KeyBuilder::group_of(key.as_str());
                match groups.iter().position(|(known, _, _)| known == common) {
                    Some(i) => groups[i].2.push(Wanted { at, key, pending }),
                    None => {
                        let g = if generations_in_use {
                            self.inner.keys.generation_keys_of(&key)
                        } else {
                            GenerationKeys::unused()
                        };
                        groups.push((common.to_owned(), g, vec![Wanted { at, key, pending }]));
                    }
                }
            }
            let mut tally = Tally::default();
            let started = Instant::now();
            let tally_keys: usize = groups.iter().map(|(_, _, group)| group.len()).sum();
            for (_, g, group) in groups {
                let start = Instant::now();
                let refs: Vec<&str> = group.iter().map(|w| w.key.as_str()).collect();
                let fetched = self
                    .call_from(&lane, start, storage.fetch_many(&refs, &g))
                    .await;
                let generations = Gens::Built(g);
                let mut fetched = match fetched {
                    Ok(all) if all.len() == group.len() => {
                        all.into_iter().map(Ok).collect::<Vec<_>>()
                    }
                    Ok(all) => {
                        let e = crate::BackendError::Other(format!(
                            "{} keys read, {} answered",
                            group.len(),
                            all.len()
                        ));
                        std::iter::repeat_n(Err(e), group.len()).collect()
                    }
                    Err(e) => std::iter::repeat_n(Err(e), group.len()).collect(),
                }
                .into_iter();
                for w in group {
                    let one = fetched.next().expect("one answer a key");
                    let lookup = self
                        .settle(
                            &lane,
                            &w.key,
                            &generations,
                            &series,
                            &decode,
                            false,
                            w.pending,
                            one,
                            &mut tally,
                        )
                        .await;
                    answers[w.at] = lookup.value;
                    key_buffer::give_back(w.key);
                }
            }
            // Each key counted; one latency sample for the batch (its round trips), when it went to the backend.
            if tally_keys > 0 {
                tally.apply(&series, Some(started.elapsed()));
            }
            Ok(answers)
        }
        .instrument(span)
        .await
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

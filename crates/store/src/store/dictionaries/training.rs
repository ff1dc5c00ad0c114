//! Training a group's dictionary (design 0025): sampled after the deployment's erasures were counted, leased so
//! that one process trains a group at a time, and stored fenced by that lease, under its samples' generations
//! and while that count holds — so that an invalidation or an erasure, by any process, before or while it is
//! trained leaves no dictionary made of what they removed.

use std::sync::{Arc, atomic::Ordering};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, KeyBuilder, Scope};

use super::{CURRENT, ERASURES_KEPT, TRAINING_LEASE, dictionary_key};
use crate::{
    WriteOutcome,
    codec::{
        self, CompressionPolicy,
        dictionary::{self, Dictionary},
    },
    store::{
        Store,
        lease::{Attempt, HeldLease},
        write::Stamp,
    },
};

impl Store {
    /// Stores `dictionary` in `key`'s group and makes it the group's current one; whether both were stored.
    pub(super) async fn store_dictionary(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        dictionary: &Arc<Dictionary>,
        generations: [u64; 2],
        training: Option<&HeldLease>,
    ) -> bool {
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        // Stored as they are: a dictionary is what compresses, not what is compressed.
        let policy = CompressionPolicy {
            enabled: false,
            ..self.inner.policy
        };
        let ttl = Some(self.dictionary_ttl(cache_type));
        let current = format!("{} {}", dictionary.id(), codec::now_ms());
        for (specific, bytes) in [
            (dictionary_key(dictionary.id()), dictionary.bytes()),
            (CURRENT.to_owned(), current.as_bytes()),
        ] {
            let Ok(entry) = codec::encode_raw(bytes, [0, 0], &policy) else {
                return false;
            };
            let stored = self
                .write_key(
                    scope,
                    cache_type,
                    &key.sibling(&specific),
                    entry,
                    ttl,
                    // Under the generations of the values it was made from, or not at all: a dictionary
                    // trained while its group was invalidated or its tenant erased must not outlive them.
                    // And only while the lease on the group's training is held: an erasure deletes it with
                    // the tenant's keys (and leaves the generations as they were before any bump).
                    Stamp {
                        generations: Some(generations),
                        exact: true,
                        fence: training.map(|l| (l.key.as_str(), l.token.as_str())),
                        ..Stamp::default()
                    },
                    &series,
                )
                .await;
            if !matches!(stored, Ok(WriteOutcome::Stored)) {
                return false;
            }
        }
        let dictionaries = &self.inner.dictionaries;
        let group = KeyBuilder::group_of(key.as_str()).to_owned();
        dictionaries
            .by_id
            .insert((group, dictionary.id()), dictionary.clone());
        true
    }

    /// Counts the deployment's erasures for `key`'s group in the background; the group's samples are kept
    /// once they are counted.
    pub(super) fn count_erasures_in_background(&self, scope: Scope, key: CacheKey) {
        let store = self.clone();
        tokio::spawn(async move {
            let erasures = store.count_erasures(&scope).await;
            let group = KeyBuilder::group_of(key.as_str());
            store.inner.dictionaries.counted(group, erasures);
        });
    }

    /// The deployment's erasure count to sample under: as read, or — where there is none (never made, expired,
    /// evicted: it reads as 0) — a fresh one, made now in one step with every process that finds it missing.
    /// Never 0, so that a count that goes missing later cannot read as the one the samples were taken under.
    /// `None` when the backend does not answer.
    pub(super) async fn count_erasures(&self, scope: &Scope) -> Option<u64> {
        let lane = self.lane(scope.as_scope());
        let lane = self.own_users_lane(&lane);
        let key = self.inner.keys.erasures_key();
        self.call(lane, lane.storage().generation_or_new(&key, ERASURES_KEPT))
            .await
            .ok()
            .filter(|n| *n != 0)
    }

    /// The deployment's erasure count ([`KeyBuilder::erasures_key`], read by the store's own user): 0 where it
    /// has none; `None` when it does not answer.
    pub(in crate::store) async fn erasures(&self, scope: &Scope) -> Option<u64> {
        let lane = self.lane(scope.as_scope());
        let lane = self.own_users_lane(&lane);
        let key = self.inner.keys.erasures_key();
        let read = self
            .call(lane, lane.storage().read_generations(&[key.as_str()]))
            .await
            .ok()?;
        read.first().copied()
    }

    /// Trains `key`'s group's dictionary from `samples` (written under `sampled_under`, after `erasures` tenant
    /// erasures) on a blocking thread, then stores it and makes it current — leased, so that one process trains
    /// a group at a time, and refused when the group was invalidated, or a tenant erased, since the first sample.
    pub(super) fn train_in_background(
        &self,
        scope: Scope,
        cache_type: CacheType,
        key: CacheKey,
        (samples, sampled_under, erasures): (Vec<Vec<u8>>, [u64; 2], u64),
    ) {
        let store = self.clone();
        tokio::spawn(async move {
            let group = KeyBuilder::group_of(key.as_str()).to_owned();
            let dictionaries = &store.inner.dictionaries;
            let forgotten = dictionaries.forgotten.load(Ordering::Acquire);
            // The group's training is leased, so that another process does not train it at once and an erasure
            // (which deletes the lease) refuses what was trained from the erased values.
            let training = match store.lease_training(&scope, &key).await {
                (Attempt::Held(lease), _) => Some(lease),
                (Attempt::Busy, wake) => {
                    // Another process trains it: once it is done, its dictionary is read as the group's current
                    // (and should it have made none, this process samples again).
                    crate::store::lease::wait(wake, TRAINING_LEASE).await;
                    dictionaries.current.invalidate(group.as_str());
                    dictionaries.trained(&group);
                    return;
                }
                (Attempt::Unavailable, _) => None,
            };
            // Samples of values an invalidation has since hidden make no dictionary, nor samples taken before an
            // erasure, by whichever process (an erasure deletes the generations too: they read as never bumped).
            // Checked under the lease: an erasure from now on deletes the lease, and the dictionary is written
            // fenced by it. The group is sampled again.
            let unchanged = store.group_generations(&scope, &key).await == Some(sampled_under)
                && store.erasures(&scope).await == Some(erasures);
            if !unchanged {
                dictionaries.trained(&group);
                if let Some(lease) = training {
                    store.release(lease).await;
                }
                return;
            }
            let level = store.inner.policy.level;
            let trained =
                tokio::task::spawn_blocking(move || dictionary::train_better(&samples, level))
                    .await;
            match trained {
                Ok(Ok(trial)) => {
                    let dictionary = trial.dictionary;
                    // Without a lease (the disk and memory backends have none), an erasure by this process is
                    // seen by its forgetting; one by another, by the erasure count read after the write.
                    let erased = training.is_none()
                        && dictionaries.forgotten.load(Ordering::Acquire) != forgotten;
                    let stored = !erased
                        && store
                            .store_dictionary(
                                &scope,
                                &cache_type,
                                &key,
                                &dictionary,
                                sampled_under,
                                training.as_ref(),
                            )
                            .await
                        && store
                            .kept_unless_erased(&scope, &key, &dictionary, erasures)
                            .await;
                    if !stored {
                        // Refused (the group was invalidated or erased meanwhile): sampled again.
                        dictionaries.trained(&group);
                    } else {
                        dictionaries
                            .current
                            .insert(group.clone(), Some(dictionary.clone()));
                        dictionaries.trained(&group);
                        tracing::info!(
                            tenant = scope.label(),
                            cache_type = cache_type.as_str(),
                            id = dictionary.id(),
                            "compression dictionary trained"
                        );
                    }
                }
                // The group stays unsampled in this process: its values do not make a dictionary.
                Ok(Err(e)) => tracing::debug!(
                    tenant = scope.label(),
                    cache_type = cache_type.as_str(),
                    error = %e,
                    "no compression dictionary trained"
                ),
                Err(e) => tracing::debug!(error = %e, "dictionary training did not finish"),
            }
            if let Some(lease) = training {
                store.release(lease).await;
            }
        });
    }

    /// Whether `dictionary`, just stored in `key`'s group, may stay: a tenant erased since its samples' count of
    /// `erasures` (a backend without leases has no fence to refuse the write, and an erasure may have passed
    /// between the checks and the write) takes it away again.
    pub(super) async fn kept_unless_erased(
        &self,
        scope: &Scope,
        key: &CacheKey,
        dictionary: &Dictionary,
        erasures: u64,
    ) -> bool {
        if self.erasures(scope).await == Some(erasures) {
            return true;
        }
        let lane = self.lane(scope.as_scope());
        let stored = [
            key.sibling(&dictionary_key(dictionary.id())),
            key.sibling(CURRENT),
        ];
        let stored: Vec<&str> = stored.iter().map(CacheKey::as_str).collect();
        // Tried a few times: a dictionary left here holds what the erasure removed (until its TTL).
        for attempt in 1..=3 {
            match self.call(&lane, lane.storage().delete(&stored)).await {
                Ok(_) => break,
                Err(e) if attempt == 3 => tracing::warn!(
                    error = %e,
                    key = stored[0],
                    "a dictionary trained across an erasure was not deleted; erase the tenant again"
                ),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        let group = KeyBuilder::group_of(key.as_str()).to_owned();
        self.inner
            .dictionaries
            .by_id
            .invalidate(&(group, dictionary.id()));
        false
    }

    /// A lease on the training of `key`'s group's dictionary (beside its current-dictionary key, in its slot),
    /// and when another process holds it, what wakes when it is released.
    pub(super) async fn lease_training(
        &self,
        scope: &Scope,
        key: &CacheKey,
    ) -> (Attempt, Option<Arc<tokio::sync::Notify>>) {
        let lane = self.lane(scope.as_scope());
        let lease_key = self.inner.keys.lease_key(&key.sibling(CURRENT));
        self.try_lease(&lane, scope, &lease_key, TRAINING_LEASE)
            .await
    }
}

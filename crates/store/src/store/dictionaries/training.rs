//! Training a group's dictionary (design 0025): sampled under a mark on the backend, leased so that one process
//! trains a group at a time, and stored fenced by that lease and under its samples' generations — so that an
//! invalidation or an erasure, by any process, before or while it is trained leaves no dictionary made of what
//! they removed.

use std::sync::{Arc, atomic::Ordering};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, KeyBuilder, Scope};

use super::{CURRENT, SAMPLING, SAMPLING_MARK, SamplingMark, TRAINING_LEASE, dictionary_key};
use crate::{
    WriteOutcome,
    codec::{
        self, CompressionPolicy,
        dictionary::{self, Dictionary},
    },
    store::{
        Store,
        lease::{Attempt, HeldLease, new_token},
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

    /// Writes the sampling mark of `key`'s group in the background; the group's samples are kept once it is
    /// there.
    pub(super) fn mark_in_background(&self, scope: Scope, key: CacheKey) {
        let store = self.clone();
        tokio::spawn(async move {
            let group = KeyBuilder::group_of(key.as_str());
            let mark = store.mark_sampling(&scope, &key).await;
            store.inner.dictionaries.marked(group, mark);
        });
    }

    /// A new sampling mark of `key`'s group: `Some(None)` where the backend shares no leases, `None` when it
    /// could not be written.
    async fn mark_sampling(&self, scope: &Scope, key: &CacheKey) -> Option<Option<SamplingMark>> {
        let lane = self.lane(scope.as_scope());
        let Some(leases) = lane.leases() else {
            return Some(None);
        };
        let token = new_token();
        let mark_key = self
            .inner
            .keys
            .lease_key(&key.sibling(&format!("{SAMPLING}{token}")));
        match self
            .call(
                &lane,
                leases.acquire_lease(&mark_key, &token, SAMPLING_MARK),
            )
            .await
        {
            Ok(true) => Some(Some(SamplingMark {
                key: mark_key,
                token,
            })),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(error = %e, "dictionary sampling not marked; asked again later");
                None
            }
        }
    }

    /// Whether `mark` is still on the backend (kept for another [`SAMPLING_MARK`] if so).
    async fn mark_holds(&self, scope: &Scope, mark: &SamplingMark) -> bool {
        let lane = self.lane(scope.as_scope());
        let Some(leases) = lane.leases() else {
            return false;
        };
        self.call(
            &lane,
            leases.renew_lease(&mark.key, &mark.token, SAMPLING_MARK),
        )
        .await
        .unwrap_or(false)
    }

    /// Trains `key`'s group's dictionary from `samples` (written under `sampled_under`, kept under `mark`) on a
    /// blocking thread, then stores it and makes it current — leased, so that one process trains a group at a
    /// time, and refused when the group was invalidated, or its tenant erased, since the first sample.
    pub(super) fn train_in_background(
        &self,
        scope: Scope,
        cache_type: CacheType,
        key: CacheKey,
        (samples, sampled_under, mark): (Vec<Vec<u8>>, [u64; 2], Option<SamplingMark>),
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
                    store.end_training(&scope, None, mark).await;
                    return;
                }
                (Attempt::Unavailable, _) => None,
            };
            // Samples of values an invalidation has since hidden make no dictionary, nor samples whose mark is
            // gone — their tenant was erased, by whichever process, since the first was kept (an erasure deletes
            // the generations too: they read as never bumped). Checked under the lease: an erasure from now on
            // deletes the lease, and the dictionary is written fenced by it. The group is sampled again.
            let unchanged = store.group_generations(&scope, &key).await == Some(sampled_under);
            let marked = match &mark {
                None => true,
                Some(mark) => training.is_some() && store.mark_holds(&scope, mark).await,
            };
            if !unchanged || !marked {
                dictionaries.trained(&group);
                store.end_training(&scope, training, mark).await;
                return;
            }
            let level = store.inner.policy.level;
            let trained =
                tokio::task::spawn_blocking(move || dictionary::train_better(&samples, level))
                    .await;
            match trained {
                Ok(Ok(trial)) => {
                    let dictionary = trial.dictionary;
                    // Without a lease (a backend of one process), an erasure here is seen by its forgetting.
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
            store.end_training(&scope, training, mark).await;
        });
    }

    /// Releases what a group's training held: its lease, and the sampling mark of its samples.
    async fn end_training(
        &self,
        scope: &Scope,
        training: Option<HeldLease>,
        mark: Option<SamplingMark>,
    ) {
        if let Some(lease) = training {
            self.release(lease).await;
        }
        if let Some(mark) = mark {
            self.release_key(scope, &mark.key, &mark.token).await;
        }
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

//! An operator's training of a scope's cache type (`Admin::train_dictionary`, `cache train-dictionary`): its
//! small values read — what their headers say before anything is unpacked, bounded in count and bytes — a
//! dictionary trained on them and judged on a part held out, then stored and made current in each of the type's
//! groups.

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, KeyBuilder, Scope, unescape_segment};

use super::{OPERATOR_SAMPLE_BYTES, OPERATOR_SAMPLES};
use crate::{
    StoreError,
    codec::{self, dictionary},
    store::{
        Store,
        lease::{Attempt, HeldLease},
    },
};

/// What an operator's training did (`Admin::train_dictionary`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrainedDictionary {
    /// The new current dictionary's id, as values made with it name it.
    pub id: u32,
    /// Its size in bytes.
    pub bytes: usize,
    /// Values read: four in five trained it, the fifth judged it.
    pub samples: usize,
    /// The judging values' payloads' bytes, as they are.
    pub sample_bytes: u64,
    /// The same payloads compressed with zstd alone (at the configured level).
    pub plain_bytes: u64,
    /// The same payloads compressed with the new dictionary.
    pub dictionary_bytes: u64,
    /// Groups (one per shard of a sharded tenant) it was made current for.
    pub groups: usize,
}

impl Store {
    /// An operator's training of the dictionary of `scope`'s `cache_type`: up to 2 000 of its values read, a
    /// dictionary trained on them, stored and made current in each of its groups; values made with an earlier
    /// one stay readable. Public as [`super::Admin::train_dictionary`].
    pub(in crate::store) async fn train_dictionary(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
    ) -> Result<TrainedDictionary, StoreError> {
        // The groups' training leases are released however the training ends: one left to lapse would keep
        // every other training of the group waiting.
        let mut leases = Vec::new();
        let trained = self.train_leased(scope, cache_type, &mut leases).await;
        for lease in leases {
            self.release(lease).await;
        }
        trained
    }

    /// [`Store::train_dictionary`], the leases it takes kept in `leases`.
    async fn train_leased(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        leases: &mut Vec<HeldLease>,
    ) -> Result<TrainedDictionary, StoreError> {
        let keys = &self.inner.keys;
        // An over-long tenant is refused as every call refuses it.
        keys.quota_keys(scope)?;
        let lane = self.lane(scope.as_scope());
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let unavailable = |source| StoreError::Unavailable {
            op: "train_dictionary",
            source,
        };
        // The deployment's erasures, counted before any value is read: an erasure from now on, by any process,
        // takes away what is stored below (on a backend without leases, nothing else would: design 0025).
        let erasures = self.count_erasures(scope).await.ok_or_else(|| {
            unavailable(crate::BackendError::Other(
                "the deployment's erasure count could not be read".into(),
            ))
        })?;
        // Listed by the shared user for an `acl` tenant, whose own user may not SCAN (as an export is).
        let listing = self.own_users_lane(&lane);
        let (mut samples, mut sampled): (Vec<Vec<u8>>, usize) = (Vec::new(), 0);
        // One entry of each group found (a sharded tenant's type has one group a shard), with the group's
        // generations before any of its values was read: the dictionary is stored under them or not at all.
        // (Their leases by place in `leases`.)
        let mut groups: Vec<(CacheKey, [u64; 2], Option<usize>)> = Vec::new();
        for pattern in keys.scan_patterns(scope, Some(cache_type)) {
            let mut cursor = crate::ScanCursor::default();
            loop {
                let page = self
                    .call(
                        listing,
                        listing
                            .storage()
                            .scan(&pattern, &cursor, 200, codec::HEADER_LEN),
                    )
                    .await
                    .map_err(unavailable)?;
                for listed in page.keys {
                    let Some(entry) = self.entry_of(scope, cache_type, &listed.key) else {
                        continue;
                    };
                    let group = KeyBuilder::group_of(entry.as_str());
                    if !groups
                        .iter()
                        .any(|(g, _, _)| KeyBuilder::group_of(g.as_str()) == group)
                    {
                        // Leased before its values are read, as a background training is (see there); another
                        // training of the group under way is waited for (its lease renewed while it runs).
                        let mut training = None;
                        for _ in 0..4 {
                            match self.lease_training(scope, &entry).await {
                                (Attempt::Held(lease), _) => {
                                    leases.push(lease);
                                    training = Some(Some(leases.len() - 1));
                                    break;
                                }
                                (Attempt::Busy, wake) => {
                                    crate::store::lease::wait(wake, super::TRAINING_LEASE).await;
                                }
                                (Attempt::Unavailable, _) => {
                                    training = Some(None);
                                    break;
                                }
                            }
                        }
                        let Some(training) = training else {
                            return Err(StoreError::Training(
                                "another training of this type's dictionary is still under way; try again later"
                                    .into(),
                            ));
                        };
                        let generations =
                            self.group_generations(scope, &entry).await.ok_or_else(|| {
                                unavailable(crate::BackendError::Other(
                                    "the group's generations could not be read".into(),
                                ))
                            })?;
                        groups.push((entry.clone(), generations, training));
                    }
                    // Values a dictionary would compress, as their headers say before anything is read (a
                    // small entry may unpack to megabytes), up to a bound in count and in bytes read.
                    let small = listed
                        .value
                        .as_deref()
                        .and_then(|head| codec::read_header(head).ok())
                        .is_some_and(|h| {
                            (dictionary::MIN_DICTIONARY_VALUE..=dictionary::MAX_DICTIONARY_VALUE)
                                .contains(&(h.decoded_len as usize))
                        });
                    if small
                        && samples.len() < OPERATOR_SAMPLES
                        && sampled < OPERATOR_SAMPLE_BYTES
                        && let Some(payload) = self
                            .read_uncounted(
                                &lane,
                                entry.clone(),
                                &series,
                                dictionary::MAX_DICTIONARY_VALUE,
                            )
                            .await
                    {
                        sampled += payload.len();
                        if payload.len() >= dictionary::MIN_DICTIONARY_VALUE {
                            samples.push(payload);
                        }
                    }
                }
                match page.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
        let level = self.inner.policy.level;
        let trial = tokio::task::spawn_blocking(move || dictionary::train_better(&samples, level))
            .await
            .map_err(|e| StoreError::Training(format!("training did not finish: {e}")))?
            .map_err(StoreError::Training)?;
        let dictionary = trial.dictionary;
        for (group, generations, training) in &groups {
            let stored = self
                .store_dictionary(
                    scope,
                    cache_type,
                    group,
                    &dictionary,
                    *generations,
                    training.map(|at| &leases[at]),
                )
                .await
                && self
                    .kept_unless_erased(scope, group, &dictionary, erasures)
                    .await;
            if !stored {
                return Err(StoreError::Training(
                    "nothing was stored: the type was invalidated or a tenant erased while the dictionary was \
                     trained, or the cache did not answer"
                        .into(),
                ));
            }
            let at = KeyBuilder::group_of(group.as_str()).to_owned();
            self.inner
                .dictionaries
                .current
                .insert(at, Some(dictionary.clone()));
        }
        Ok(TrainedDictionary {
            id: dictionary.id(),
            bytes: dictionary.bytes().len(),
            samples: trial.samples,
            sample_bytes: trial.sample_bytes,
            plain_bytes: trial.plain_bytes,
            dictionary_bytes: trial.dictionary_bytes,
            groups: groups.len(),
        })
    }

    /// The entry key `full` of `scope`'s `cache_type` as the store builds it, unless it is not one (or is one
    /// of the group's dictionaries).
    fn entry_of(&self, scope: &Scope, cache_type: &CacheType, full: &str) -> Option<CacheKey> {
        let specific = unescape_segment(full.rsplit_once(':')?.1).ok()?;
        if specific.starts_with("fc.dictionary.") {
            return None;
        }
        let entry = self.inner.keys.key(scope, cache_type, &specific).ok()?;
        (entry.as_str() == full).then_some(entry)
    }
}

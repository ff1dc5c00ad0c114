//! What this process read, recorded by the pipeline on every read it counts and taken by the warmer: the hot
//! set (documents read recently, with how often, per tenant, for `warm_hot`) and the access journal (each
//! document's reads with their time, drained into the shared history — the statistics database — where every
//! replica's reads add up, for the warmup jobs); both forget an erased tenant. The journal is bounded: past
//! [`MAX_PENDING_READS`] reads between two drains, further reads are counted as dropped, not kept.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use fernando_cache_keys::{DocumentFingerprint, TenantId};
use fernando_cache_store::Cost;

/// Documents read recently, with how often, per tenant.
pub(crate) struct HotSet {
    reads: moka::sync::Cache<(TenantId, String), Arc<AtomicU32>>,
}

impl HotSet {
    pub(crate) fn new() -> Self {
        HotSet {
            reads: moka::sync::Cache::builder().max_capacity(100_000).build(),
        }
    }

    pub(crate) fn touch(&self, tenant: &TenantId, doc_key: &str) {
        self.reads
            .get_with((tenant.clone(), doc_key.to_owned()), Default::default)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets `tenant`'s documents (its erasure).
    pub(crate) fn forget(&self, tenant: &TenantId) {
        let doomed: Vec<(TenantId, String)> = self
            .reads
            .iter()
            .filter(|(k, _)| k.0 == *tenant)
            .map(|(k, _)| (*k).clone())
            .collect();
        for key in doomed {
            self.reads.invalidate(&key);
        }
    }

    /// The documents read at least `min` times since the last call; counts start again.
    pub(crate) fn take_hot(&self, min: u32) -> Vec<(TenantId, String)> {
        let mut hot = Vec::new();
        for (k, v) in &self.reads {
            if v.swap(0, Ordering::Relaxed) >= min {
                hot.push(((*k).clone().0, (*k).clone().1));
            }
        }
        hot
    }
}

/// Most reads kept between two drains.
pub const MAX_PENDING_READS: usize = 1_000_000;

/// One document's reads in one history bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The document's result key (`doc_hash`).
    pub doc_key: String,
    /// The document's fingerprint.
    pub fingerprint: DocumentFingerprint,
    /// Start of the bucket, seconds since the epoch.
    pub bucket_start: u64,
    /// Reads in the bucket.
    pub reads: u32,
    /// What computing the document cost, as its result says.
    pub cost: Cost,
}

#[derive(Default)]
struct Pending {
    fingerprint: Option<DocumentFingerprint>,
    /// Second → reads.
    reads: BTreeMap<u64, u32>,
    cost: Cost,
}

/// Pending reads per (tenant, document key), and how many reads they hold together.
type PendingReads = (HashMap<(TenantId, String), Pending>, usize);

#[derive(Default)]
pub(crate) struct AccessJournal {
    pending: Mutex<PendingReads>,
    dropped: AtomicU64,
}

impl AccessJournal {
    pub(crate) fn record(
        &self,
        tenant: &TenantId,
        doc_key: &str,
        fingerprint: &DocumentFingerprint,
        cost: Cost,
    ) {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let Ok(mut guard) = self.pending.lock() else {
            return;
        };
        let (map, count) = &mut *guard;
        if *count >= MAX_PENDING_READS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *count += 1;
        let p = map.entry((tenant.clone(), doc_key.to_owned())).or_default();
        p.fingerprint.get_or_insert(*fingerprint);
        *p.reads.entry(at).or_default() += 1;
        // A hit's result carries what it cost when it was computed: the largest figure seen is kept.
        p.cost = p.cost.largest(cost);
    }

    /// Everything recorded since the last drain, summed per `bucket`.
    pub(crate) fn drain(&self, bucket: Duration) -> Vec<AccessRecord> {
        let b = bucket.as_secs().max(1);
        let taken = match self.pending.lock() {
            Ok(mut guard) => {
                guard.1 = 0;
                std::mem::take(&mut guard.0)
            }
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for ((tenant, doc_key), p) in taken {
            let Some(fingerprint) = p.fingerprint else {
                continue;
            };
            let mut by_bucket: BTreeMap<u64, u32> = BTreeMap::new();
            for (at, n) in p.reads {
                *by_bucket.entry(at / b * b).or_default() += n;
            }
            for (bucket_start, reads) in by_bucket {
                out.push(AccessRecord {
                    tenant: tenant.clone(),
                    doc_key: doc_key.clone(),
                    fingerprint,
                    bucket_start,
                    reads,
                    cost: p.cost,
                });
            }
        }
        out
    }

    /// Puts drained records back, each in its bucket, for the next drain: a history write that failed loses no
    /// reads. Bounded like [`record`](Self::record): reads past [`MAX_PENDING_READS`] are counted as dropped.
    pub(crate) fn restore(&self, records: Vec<AccessRecord>) {
        let Ok(mut guard) = self.pending.lock() else {
            return;
        };
        let (map, count) = &mut *guard;
        for r in records {
            let reads = usize::try_from(r.reads).unwrap_or(usize::MAX);
            if reads > MAX_PENDING_READS.saturating_sub(*count) {
                self.dropped
                    .fetch_add(u64::from(r.reads), Ordering::Relaxed);
                continue;
            }
            *count += reads;
            let p = map.entry((r.tenant, r.doc_key)).or_default();
            p.fingerprint.get_or_insert(r.fingerprint);
            *p.reads.entry(r.bucket_start).or_default() += r.reads;
            p.cost = p.cost.largest(r.cost);
        }
    }

    /// Forgets `tenant`'s reads not drained yet (its erasure): none of them reaches the history afterwards.
    pub(crate) fn forget(&self, tenant: &TenantId) {
        let Ok(mut guard) = self.pending.lock() else {
            return;
        };
        let (map, count) = &mut *guard;
        map.retain(|(t, _), p| {
            if t != tenant {
                return true;
            }
            let reads: usize = p.reads.values().map(|n| *n as usize).sum();
            *count = count.saturating_sub(reads);
            false
        });
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl crate::DocumentProcessor {
    /// Forgets what this process recorded of `tenant`'s reads and has not written yet — the hot set the warmer
    /// keeps alive, the reads not yet added to the shared access history — so that nothing of an erased tenant
    /// is written after its erasure (issue 31). A drain already under way may still write what it took.
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.shared.hot.forget(tenant);
        self.shared.access.forget(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(n: u8) -> DocumentFingerprint {
        DocumentFingerprint::of_bytes(&[n])
    }

    /// A history write that failed puts its records back: the next drain holds them, added to the reads made
    /// since, in the buckets they were made in.
    #[test]
    fn restored_records_come_back_in_their_buckets_and_add_to_new_reads() {
        let journal = AccessJournal::default();
        let acme = TenantId::new("acme").unwrap();
        let cost = Cost {
            compute_ms: 120,
            tokens: 7,
            money_micros: 3,
        };
        for _ in 0..3 {
            journal.record(&acme, "doc-a", &fingerprint(1), cost);
        }
        journal.record(&acme, "doc-b", &fingerprint(2), Cost::default());
        let bucket = Duration::from_secs(3600);
        let mut first = journal.drain(bucket);
        first.sort_by(|a, b| a.doc_key.cmp(&b.doc_key));
        assert_eq!(first.iter().map(|r| r.reads).collect::<Vec<_>>(), [3, 1]);

        journal.restore(first.clone());
        journal.record(&acme, "doc-a", &fingerprint(1), Cost::default());
        let mut second = journal.drain(bucket);
        second.sort_by(|a, b| a.doc_key.cmp(&b.doc_key));
        // The new read may fall in the next bucket if the hour turned between the drains.
        let reads_of = |key: &str| -> u32 {
            second
                .iter()
                .filter(|r| r.doc_key == key)
                .map(|r| r.reads)
                .sum()
        };
        assert_eq!((reads_of("doc-a"), reads_of("doc-b")), (4, 1));
        let a = second.iter().find(|r| r.doc_key == "doc-a").unwrap();
        assert_eq!(a.bucket_start, first[0].bucket_start);
        assert_eq!(a.cost, cost, "the larger cost is kept");
        assert_eq!(journal.dropped(), 0);
        assert!(journal.drain(bucket).is_empty());
    }

    /// Restoring is bounded like recording: reads past the cap are counted as dropped, not kept.
    #[test]
    fn restoring_past_the_cap_counts_the_reads_as_dropped() {
        let journal = AccessJournal::default();
        let acme = TenantId::new("acme").unwrap();
        let record = |reads: u32| AccessRecord {
            tenant: acme.clone(),
            doc_key: "doc".to_owned(),
            fingerprint: fingerprint(1),
            bucket_start: 3600,
            reads,
            cost: Cost::default(),
        };
        let cap = u32::try_from(MAX_PENDING_READS).unwrap();
        journal.restore(vec![record(cap - 1), record(2), record(1)]);
        assert_eq!(journal.dropped(), 2);
        let kept = journal.drain(Duration::from_secs(3600));
        assert_eq!(kept.iter().map(|r| r.reads).sum::<u32>(), cap);
    }
}

//! What this process read, for the warmup jobs: each document's reads with their time, drained into the
//! shared history (the statistics database) where every replica's reads add up. Bounded: past
//! [`MAX_PENDING_READS`] reads between two drains, further reads are counted as dropped, not kept.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use fernando_cache_keys::{DocumentFingerprint, TenantId};
use fernando_cache_store::Cost;

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
        p.cost = Cost {
            compute_ms: p.cost.compute_ms.max(cost.compute_ms),
            tokens: p.cost.tokens.max(cost.tokens),
            money_micros: p.cost.money_micros.max(cost.money_micros),
        };
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

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

//! Judging what the backend answered for one key — the step every read shares, one key at a time or a batch
//! of them: the envelope opened, its generations, tags and freshness checked, the value decoded (and kept in
//! process when asked), an unusable entry removed, the outcome counted.
//!
//! Most answers are judged without waiting on anything ([`Store::judge`]); an entry with tags or a dictionary,
//! and one to remove, need the backend again ([`Store::judged`]). A batch judges its keys synchronously and
//! waits only for those.

use bytes::Bytes;
use fernando_cache_keys::CacheKey;

use super::{
    Store, l1,
    read::{Gens, Lookup},
    route::Lane,
    tally::{Found, Tally},
};
use crate::{
    BackendError,
    codec::{self, DecodeError, Header},
    metrics::SeriesRef,
};

/// What one backend answer makes of a read before anything else is read or removed.
pub(super) enum Judged<'l, T> {
    /// The read's outcome.
    Settled(Lookup<T>, Found),
    /// An entry with tags or a dictionary: its tags' generations, or its dictionary, are read first.
    Later {
        generations: [u64; 2],
        bytes: Bytes,
        header: Header,
        pending: Option<(&'l l1::L1, l1::Pending)>,
    },
    /// An entry that cannot be used: it is removed and counted as corrupt.
    Unusable {
        generations: Option<[u64; 2]>,
        why: String,
    },
}

/// Why an envelope read from the backend cannot be used (it is removed and counted as corrupt).
pub(super) struct Unopened {
    pub(super) why: String,
    /// It failed to open (counted as `unopened` too).
    sealed: bool,
}

impl Store {
    /// What one backend answer for `key` (`fetched`, which arrived at `now_ms`) makes of the read: the envelope
    /// opened, its generations and tags checked, its freshness judged at `now_ms`, the value decoded (and kept
    /// in process when `pending` says so), a corrupt entry removed (counted in `series`) — and the outcome added
    /// to `tally`. [`Store::lookup`] of one key shares it with `get_many`, which calls its two halves.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle<T>(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        series: &SeriesRef<'_>,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        checked: bool,
        pending: Option<(&l1::L1, l1::Pending)>,
        fetched: Result<crate::Fetched, BackendError>,
        now_ms: u64,
        tally: &mut Tally,
    ) -> Lookup<T> {
        let judged = self.judge(key.as_str(), series, decode, pending, fetched, now_ms);
        let (lookup, found) = self
            .judged(lane, key, generations, series, decode, judged, now_ms)
            .await;
        tally.add(&found, checked);
        lookup
    }

    /// [`Store::settle`] as far as it goes without waiting: an answer that needs the backend again comes back
    /// as [`Judged::Later`] or [`Judged::Unusable`], for [`Store::judged`].
    pub(super) fn judge<'l, T>(
        &self,
        key: &str,
        series: &SeriesRef<'_>,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        pending: Option<(&'l l1::L1, l1::Pending)>,
        fetched: Result<crate::Fetched, BackendError>,
        now_ms: u64,
    ) -> Judged<'l, T> {
        let f = match fetched {
            Ok(f) => f,
            Err(BackendError::WrongType) => {
                return Judged::Unusable {
                    generations: None,
                    why: "the key holds a non-string Redis value".into(),
                };
            }
            Err(e) => {
                let refused = matches!(e, BackendError::CircuitOpen);
                if !refused {
                    tracing::debug!(error = %e, "cache read failed; treating as a miss");
                }
                return Judged::Settled(Lookup::nothing(None), Found::Unavailable { refused });
            }
        };
        let Some(bytes) = f.value else {
            return Judged::Settled(Lookup::nothing(Some(f.generations)), Found::Absent);
        };
        match self.opened(key, bytes) {
            Ok((_, h)) if h.generations != f.generations => {
                Judged::Settled(Lookup::nothing(Some(f.generations)), Found::Stale)
            }
            Ok((bytes, header)) if header.tags_at != 0 => Judged::Later {
                generations: f.generations,
                bytes,
                header,
                pending,
            },
            // A value compressed with its group's dictionary is opened with it first — here when the dictionary
            // is in process; one whose dictionary is gone is unusable (design 0025).
            Ok((bytes, header)) if header.dictionary => {
                match self.undictionaried_in_process(key, &bytes, &header) {
                    Some(Ok((bytes, h))) => judgement(
                        self.judge_value(key, bytes, h, decode, pending, now_ms, f.generations),
                        f.generations,
                    ),
                    Some(Err(why)) => Judged::Unusable {
                        generations: Some(f.generations),
                        why,
                    },
                    None => Judged::Later {
                        generations: f.generations,
                        bytes,
                        header,
                        pending,
                    },
                }
            }
            Ok((bytes, h)) => judgement(
                self.judge_value(key, bytes, h, decode, pending, now_ms, f.generations),
                f.generations,
            ),
            Err(e) => {
                if e.sealed {
                    series.add(|c| &c.unopened, 1);
                }
                Judged::Unusable {
                    generations: Some(f.generations),
                    why: e.why,
                }
            }
        }
    }

    /// The rest of [`Store::settle`] for what [`Store::judge`] left: tags checked (an invalidated tag hides the
    /// entry; an unanswered tag read is a miss too), a value compressed with its group's dictionary opened with
    /// it (one whose dictionary is gone is unusable: design 0025), an unusable entry removed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn judged<T>(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        series: &SeriesRef<'_>,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        judged: Judged<'_, T>,
        now_ms: u64,
    ) -> (Lookup<T>, Found) {
        let (gens, why) = match judged {
            Judged::Settled(lookup, found) => return (lookup, found),
            Judged::Unusable { generations, why } => (generations, why),
            Judged::Later {
                generations: seen,
                bytes,
                header,
                pending,
            } => 'later: {
                // Boxed, as the removal below: the future of a read stays small.
                if header.tags_at != 0
                    && !matches!(
                        Box::pin(self.tags_current(lane, key, generations, &bytes, &header)).await,
                        Ok(true)
                    )
                {
                    return (Lookup::nothing(Some(seen)), Found::Stale);
                }
                let (bytes, header) = if header.dictionary {
                    match Box::pin(self.undictionaried(lane, key, series, bytes, &header)).await {
                        Ok(opened) => opened,
                        Err(why) => break 'later (Some(seen), why),
                    }
                } else {
                    (bytes, header)
                };
                match self.judge_value(key.as_str(), bytes, header, decode, pending, now_ms, seen) {
                    Ok(settled) => return settled,
                    Err(why) => (Some(seen), why),
                }
            }
        };
        Box::pin(self.discard_corrupt(lane, key, &why)).await;
        (Lookup::nothing(gens), Found::Corrupt)
    }

    /// A usable envelope's value, fresh or expired at `now_ms` (only fresh values are kept in process); `Err`
    /// says why it does not decode.
    #[allow(clippy::too_many_arguments)]
    fn judge_value<T>(
        &self,
        key: &str,
        bytes: Bytes,
        header: Header,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        pending: Option<(&l1::L1, l1::Pending)>,
        now_ms: u64,
        generations: [u64; 2],
    ) -> Result<(Lookup<T>, Found), String> {
        let fresh = header.is_fresh(now_ms);
        let pending = pending.filter(|_| fresh);
        let value = self
            .decode_and_keep(key, bytes, &header, decode, pending)
            .map_err(|e| e.to_string())?;
        let mut lookup = Lookup::nothing(Some(generations));
        Ok(if fresh {
            lookup.value = Some(value);
            lookup.header = Some(header);
            (lookup, Found::Value)
        } else {
            lookup.stale = Some(value);
            (lookup, Found::Expired)
        })
    }

    /// Whether every tag of a tagged envelope still has the generation it was written with (the tags of the
    /// entry's scope, or of its shard: they share the entry's slot).
    async fn tags_current(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        bytes: &[u8],
        header: &Header,
    ) -> Result<bool, BackendError> {
        let g = generations.build(&self.inner.keys, key)?;
        let tags = codec::tags(bytes, header);
        let keys = tags
            .iter()
            .map(|(t, _)| g.tag(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let current = self
            .call(lane, lane.storage().read_generations(&refs))
            .await?;
        Ok(tags.iter().map(|(_, g)| *g).eq(current))
    }

    /// An envelope read from the backend and its header, opened first when its type is sealed (design 0018).
    pub(super) fn opened(
        &self,
        key: &str,
        bytes: bytes::Bytes,
    ) -> Result<(bytes::Bytes, Header), Unopened> {
        let header = codec::read_header(&bytes).map_err(|e| Unopened {
            why: e.to_string(),
            sealed: false,
        })?;
        match &self.inner.sealer {
            Some(sealer) if header.sealed || sealer.seals_key(key) => {
                sealer.open(key, bytes, header).map_err(|e| Unopened {
                    why: e.to_string(),
                    sealed: true,
                })
            }
            // A sealed entry and no keys to open it: unusable, like any envelope this store cannot read.
            None if header.sealed => Err(Unopened {
                why: "the entry is sealed and no encryption keys are configured".into(),
                sealed: true,
            }),
            _ => Ok((bytes, header)),
        }
    }

    /// Decodes an envelope read from the backend, first keeping an uncompressed copy in process when asked.
    fn decode_and_keep<T>(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        header: &Header,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        pending: Option<(&l1::L1, l1::Pending)>,
    ) -> Result<T, DecodeError> {
        let max = self.inner.policy.max_decoded;
        let Some((l1, pending)) = pending else {
            return decode(&bytes, header, max);
        };
        let copy = codec::uncompressed(bytes, header, max)?;
        let copy_header = codec::read_header(&copy)?;
        let value = decode(&copy, &copy_header, max)?;
        l1.keep(key, copy, pending);
        Ok(value)
    }

    pub(super) async fn discard_corrupt(&self, lane: &Lane, key: &CacheKey, why: &str) {
        tracing::warn!(key = key.as_str(), why, "unusable cache entry removed");
        self.changed_here(key.as_str());
        if let Err(e) = self
            .call(lane, lane.storage().delete(&[key.as_str()]))
            .await
        {
            tracing::debug!(error = %e, "could not remove the unusable entry; its TTL will");
        }
    }
}

/// A value's judgement from what [`Store::judge_value`] made of it.
fn judgement<'l, T>(
    judged: Result<(Lookup<T>, Found), String>,
    generations: [u64; 2],
) -> Judged<'l, T> {
    match judged {
        Ok((lookup, found)) => Judged::Settled(lookup, found),
        Err(why) => Judged::Unusable {
            generations: Some(generations),
            why,
        },
    }
}

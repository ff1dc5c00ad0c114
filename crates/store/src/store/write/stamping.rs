//! The write's last step: an envelope stamped with the current generations — a guess first, stamped again if
//! an invalidation raced it — and sealed after every stamp; another region's value written only if newer
//! (design 0026).

use std::time::Duration;

use bytes::Bytes;
use fernando_cache_keys::CacheKey;

use super::super::{Store, route::Lane};
use super::{Stamp, Superseded};
use crate::{BackendError, Versioned, backend::parse_generation, codec, seal::Sealer};

impl Store {
    /// Writes another region's envelope to `lane` with its `version`, stamped with the current generations,
    /// only if it is newer than the copy held and this region's last invalidation of its scope and type
    /// (design 0026). `Ok(Err)`: not written, and why.
    pub(super) async fn put_newer(
        &self,
        lane: &Lane,
        key: &CacheKey,
        mut outgoing: Outgoing<'_>,
        ttl: Duration,
        guess: Option<[u64; 2]>,
        version: codec::Version,
    ) -> Result<Result<u64, Superseded>, BackendError> {
        let streams = lane.backend.streams()?;
        let g = self.inner.keys.generation_keys_of(key);
        let mark = g.invalidation_mark();
        let mut stamp = guess
            .or_else(|| self.inner.generations.get(g.cache_type()))
            .unwrap_or([0, 0]);
        // What the generation keys are expected to hold: their text as written, none for 0.
        let text = |g: u64| {
            if g == 0 {
                Vec::new()
            } else {
                g.to_string().into_bytes()
            }
        };
        let mut expected = [text(stamp[0]), text(stamp[1])];
        let version_bytes = version.to_bytes();
        // Each retry means an invalidation landed between two of our writes (see `stamp_and_set`).
        for _ in 0..3 {
            let value = outgoing.stamped(key.as_str(), stamp)?;
            let put = streams.put_newer(
                key.as_str(),
                &value,
                ttl,
                &g,
                &mark,
                [&expected[0], &expected[1]],
                stamp,
                &version_bytes,
            );
            match self.call(lane, put).await? {
                Versioned::Stored => return Ok(Ok(value.len() as u64)),
                Versioned::Held(held) => {
                    return Ok(Err(Superseded::Held(codec::Version::from_bytes(&held))));
                }
                Versioned::Marked(mark) => {
                    return Ok(Err(Superseded::Marked(codec::Version::from_bytes(&mark))));
                }
                Versioned::Generations([scope, cache_type]) => {
                    // Stored values as the script read them: empty for none.
                    let parse = |b: &Vec<u8>| {
                        parse_generation(Some(b.as_slice()).filter(|b| !b.is_empty()))
                    };
                    stamp = [parse(&scope), parse(&cache_type)];
                    expected = [scope, cache_type];
                    outgoing.take_back(&value);
                }
            }
        }
        // Invalidated again and again meanwhile: not written (a miss, never stale data).
        Err(BackendError::Other(
            "the entry's generations kept changing while another region's value was applied".into(),
        ))
    }

    /// Writes an envelope to `lane`, stamped with the current generations: a guess first (the caller's, or the
    /// last seen), corrected from what the write's own round trip read if an invalidation changed them. Returns
    /// the bytes stored.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn stamp_and_set(
        &self,
        lane: &Lane,
        key: &CacheKey,
        mut outgoing: Outgoing<'_>,
        ttl: Duration,
        Stamp {
            generations: guess,
            fence,
            exact,
            ..
        }: Stamp<'_>,
    ) -> Result<u64, BackendError> {
        let backend = &lane.backend;
        let storage = backend.storage();
        // Generations known current without a round trip (tracked): one plain SET.
        let mut known = None;
        if fence.is_none()
            && !exact
            && let Some(current) = storage.known_generations(key.as_str())
        {
            let value = outgoing.stamped(key.as_str(), current)?;
            if self
                .call(
                    lane,
                    storage.set_known(key.as_str(), value.clone(), ttl, current),
                )
                .await?
            {
                return Ok(value.len() as u64);
            }
            known = Some(current);
            outgoing.take_back(&value);
        }
        // The entry's own generations: its scope's, or its shard's (design 0024).
        let g = self.inner.keys.generation_keys_of(key);
        let mut stamp = known
            .or(guess)
            .or_else(|| self.inner.generations.get(g.cache_type()))
            .unwrap_or([0, 0]);
        // Each retry means an invalidation landed between two of our writes; after three in a row the last
        // write simply stays invisible (a miss, never stale data).
        let mut len = 0;
        for _ in 0..3 {
            let value = outgoing.stamped(key.as_str(), stamp)?;
            len = value.len() as u64;
            let current = match fence {
                None => {
                    self.call(lane, storage.set(key.as_str(), value.clone(), ttl, &g))
                        .await?
                }
                // A fence is a lease this process holds, so the backend has leases.
                Some(lease) => self
                    .call(lane, async {
                        let leases = backend
                            .leases()
                            .ok_or_else(|| backend.lacks("shared leases"))?;
                        leases
                            .set_fenced(key.as_str(), value.clone(), ttl, &g, lease)
                            .await
                    })
                    .await?
                    .ok_or(BackendError::LeaseLost)?,
            };
            if current == stamp {
                return Ok(len);
            }
            if exact {
                // Made from values of generations that are gone: not kept, even for a moment of its TTL.
                self.call(lane, storage.delete(&[key.as_str()])).await?;
                return Err(BackendError::Other(
                    "the group was invalidated or erased meanwhile".into(),
                ));
            }
            self.inner
                .generations
                .insert(g.cache_type().to_owned(), current);
            stamp = current;
            outgoing.take_back(&value);
        }
        Ok(len)
    }
}

/// An envelope on its way to the backend. A sealed type's envelope is sealed after every stamp of its
/// generations, because the seal authenticates the header as written (design 0018): a sealed envelope stamped
/// again would not open.
pub(super) struct Outgoing<'a> {
    /// The unsealed envelope: given to the write itself when nothing is sealed, and taken back for a re-stamp.
    pub(super) plain: Vec<u8>,
    pub(super) sealer: Option<&'a Sealer>,
}

impl Outgoing<'_> {
    /// The bytes to write under `key`: the envelope stamped with `generations`, sealed when its type is.
    fn stamped(&mut self, key: &str, generations: [u64; 2]) -> Result<Bytes, BackendError> {
        codec::set_generations(&mut self.plain, generations);
        match self.sealer {
            None => Ok(Bytes::from(std::mem::take(&mut self.plain))),
            // Not expected to fail: the envelope is the store's own and far below the AEADs' length limits.
            Some(sealer) => sealer
                .seal(key, &self.plain)
                .map(Bytes::from)
                .map_err(|why| {
                    BackendError::Other(format!("the value could not be sealed: {why}"))
                }),
        }
    }

    /// Takes back the unsealed envelope given to a write that must be stamped again.
    fn take_back(&mut self, sent: &Bytes) {
        if self.sealer.is_none() {
            self.plain = sent.to_vec();
        }
    }
}

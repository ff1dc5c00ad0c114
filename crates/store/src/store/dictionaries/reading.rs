//! Reading a value's dictionary (design 0025): the one its frame names, found among the thread's recent ones,
//! the process's, or read from the backend beside the values (bounded before it is unpacked) — and the value
//! opened with it.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
};

use fernando_cache_keys::{CacheKey, GenerationKeys, KeyBuilder};

use super::dictionary_key;
use crate::{
    codec::{
        self, Header,
        dictionary::{self, Dictionary},
    },
    metrics::SeriesRef,
    store::{
        Store,
        read::{Gens, Lookup},
        route::Lane,
        tally::Tally,
    },
};

impl Store {
    /// The dictionary `id` of `key`'s group: loaded once per process, read from the backend otherwise.
    pub(super) async fn dictionary_by_id(
        &self,
        lane: &Lane,
        key: &CacheKey,
        series: &SeriesRef<'_>,
        id: u32,
    ) -> Option<Arc<Dictionary>> {
        let dictionaries = &self.inner.dictionaries;
        let group = KeyBuilder::group_of(key.as_str());
        if let Some(found) = dictionaries.loaded(group, id) {
            return Some(found);
        }
        let at = (group.to_owned(), id);
        // A forgetting while the backend is read may be of this group: what it answers is then not kept.
        let forgotten = dictionaries.forgotten.load(Ordering::Acquire);
        if dictionaries.missing.contains_key(&at) {
            return None;
        }
        let found = self
            .read_sibling(
                lane,
                key,
                series,
                &dictionary_key(id),
                dictionary::MAX_DICTIONARY_BYTES,
            )
            .await
            .and_then(|bytes| Dictionary::new(bytes).ok())
            .filter(|d| d.id() == id);
        // Kept only if nothing was forgotten meanwhile (this read, whose value's generations were current, may
        // still use it).
        if dictionaries.forgotten.load(Ordering::Acquire) != forgotten {
            return found;
        }
        match &found {
            Some(d) => dictionaries.by_id.insert(at, d.clone()),
            None => dictionaries.missing.insert(at, ()),
        }
        found
    }

    /// An envelope compressed with a dictionary, opened with it; why not, when the dictionary is gone or is not
    /// the one the frame names.
    pub(in crate::store) async fn undictionaried(
        &self,
        lane: &Lane,
        key: &CacheKey,
        series: &SeriesRef<'_>,
        bytes: bytes::Bytes,
        header: &Header,
    ) -> Result<(bytes::Bytes, Header), String> {
        if let Some(known) = self.undictionaried_in_process(key.as_str(), &bytes, header) {
            return known;
        }
        let id = codec::dictionary_of(&bytes, header).unwrap_or(0);
        let dictionary = self
            .dictionary_by_id(lane, key, series, id)
            .await
            .ok_or_else(|| format!("its compression dictionary {id} is gone"))?;
        self.opened_with(&bytes, header, &dictionary)
    }

    /// [`Store::undictionaried`] when it is decided without the backend — the dictionary loaded in this process,
    /// or known to be gone, or the entry one that must not name one; `None` when the dictionary must be read.
    /// A hit on a group with a dictionary is judged here, without waiting.
    pub(in crate::store) fn undictionaried_in_process(
        &self,
        key: &str,
        bytes: &bytes::Bytes,
        header: &Header,
    ) -> Option<Result<(bytes::Bytes, Header), String>> {
        // The store's own entries are never compressed with a dictionary: one that says it is would be read
        // with itself (a dictionary naming itself, planted in the backend), so it is refused.
        if key.rsplit_once(':').is_some_and(|(_, specific)| {
            specific.starts_with(fernando_cache_keys::RESERVED_KEY_PREFIX)
        }) {
            return Some(Err(
                "a dictionary entry is compressed with a dictionary".into()
            ));
        }
        let id = codec::dictionary_of(bytes, header).unwrap_or(0);
        let dictionaries = &self.inner.dictionaries;
        let group = KeyBuilder::group_of(key);
        if let Some(dictionary) = dictionaries.loaded(group, id) {
            return Some(self.opened_with(bytes, header, &dictionary));
        }
        dictionaries
            .missing
            .contains_key(&(group.to_owned(), id))
            .then(|| Err(format!("its compression dictionary {id} is gone")))
    }

    /// An envelope opened with `dictionary` and its header read.
    fn opened_with(
        &self,
        bytes: &[u8],
        header: &Header,
        dictionary: &Dictionary,
    ) -> Result<(bytes::Bytes, Header), String> {
        let opened =
            codec::with_dictionary(bytes, header, dictionary, self.inner.policy.max_decoded)
                .map_err(|e| e.to_string())?;
        let header = codec::read_header(&opened).map_err(|e| e.to_string())?;
        Ok((opened, header))
    }

    /// The raw value of the entry `specific` of `key`'s group (see [`Store::read_uncounted`]), refused — a
    /// counted miss that removes it — when it would decode to more than `limit` bytes: what the backend holds
    /// there is not believed to be a dictionary's size before it is unpacked.
    pub(super) async fn read_sibling(
        &self,
        lane: &Lane,
        key: &CacheKey,
        series: &SeriesRef<'_>,
        specific: &str,
        limit: usize,
    ) -> Option<Vec<u8>> {
        self.read_uncounted(lane, key.sibling(specific), series, limit)
            .await
    }

    /// The raw value of the entry `key` — a typed entry's encoded payload — read as any entry is (opened when
    /// sealed, its generations checked, opened with its dictionary) but decoded to at most `limit` bytes and not
    /// counted as a read of the cache.
    pub(super) fn read_uncounted<'a>(
        &'a self,
        lane: &'a Lane,
        key: CacheKey,
        series: &'a SeriesRef<'_>,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'a>> {
        Box::pin(async move {
            let storage = lane.storage();
            let g = if storage.generations_in_use() {
                self.inner.keys.generation_keys_of(&key)
            } else {
                GenerationKeys::unused()
            };
            let fetched = self.call(lane, storage.fetch(key.as_str(), &g)).await;
            let mut uncounted = Tally::default();
            let decode = move |bytes: &[u8], header: &Header, max: usize| {
                codec::decode_raw(bytes, header, limit.min(max))
            };
            let lookup: Lookup<Vec<u8>> = self
                .settle(
                    lane,
                    &key,
                    &Gens::Built(g),
                    series,
                    &decode,
                    false,
                    None,
                    fetched,
                    codec::now_ms(),
                    &mut uncounted,
                )
                .await;
            lookup.value
        })
    }
}

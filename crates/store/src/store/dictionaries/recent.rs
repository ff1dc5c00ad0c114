//! The dictionaries a thread used last: a read of a value compressed with its group's dictionary finds the
//! dictionary here, before the process's shared cache of them — whose lookup (a key built, hashed and its
//! access recorded) cost as much as opening the value with it.
//!
//! An entry is good only for the store that loaded it and only until that store forgets dictionaries (an
//! erasure or an invalidation bumps its count of forgettings): a forgotten dictionary is never found here. It
//! holds the dictionary weakly: one the process let go of (evicted, forgotten) is not kept alive by a thread.

use std::{
    cell::RefCell,
    sync::{Arc, Weak},
};

use crate::codec::dictionary::Dictionary;

/// Entries kept per thread: the few groups a thread reads at once.
const KEPT: usize = 8;

struct Entry {
    /// The store's dictionaries it came from (their serial), and their forgettings when it was loaded.
    owner: u64,
    forgotten: u64,
    id: u32,
    group: Box<str>,
    dictionary: Weak<Dictionary>,
}

thread_local! {
    static RECENT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Dictionary `id` of `group`, if this thread used it since its store last forgot dictionaries and the process
/// still holds it.
pub(super) fn get(owner: u64, forgotten: u64, group: &str, id: u32) -> Option<Arc<Dictionary>> {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        // Entries of an older forgetting, or whose dictionary the process let go of, are of no use any more.
        recent.retain(|e| {
            (e.owner != owner || e.forgotten == forgotten) && e.dictionary.strong_count() > 0
        });
        let at = recent
            .iter()
            .position(|e| e.owner == owner && e.id == id && &*e.group == group)?;
        let found = recent[at].dictionary.upgrade()?;
        // The most recently used last: the oldest makes room.
        let entry = recent.remove(at);
        recent.push(entry);
        Some(found)
    })
}

/// Remembers `dictionary` as dictionary `id` of `group`, loaded while its store had forgotten `forgotten`
/// times; the oldest entry makes room.
pub(super) fn put(owner: u64, forgotten: u64, group: &str, id: u32, dictionary: &Arc<Dictionary>) {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if recent.len() >= KEPT {
            recent.remove(0);
        }
        recent.push(Entry {
            owner,
            forgotten,
            id,
            group: group.into(),
            dictionary: Arc::downgrade(dictionary),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::dictionary::train;

    fn dictionary(seed: u64) -> Arc<Dictionary> {
        let samples: Vec<Vec<u8>> = (0..64u64)
            .map(|i| {
                format!(
                    "{{\"invoice\": {i}, \"seed\": {seed}, \"total\": {}}}",
                    i * 7
                )
                .into_bytes()
            })
            .collect();
        train(&samples).unwrap()
    }

    /// An entry is found only by its store, group and id, and only until that store forgets dictionaries;
    /// the oldest of a full thread makes room.
    #[test]
    fn a_recent_dictionary_is_found_by_its_store_group_and_id_until_forgotten() {
        let d = dictionary(1);
        put(7, 0, "g:a", d.id(), &d);
        assert!(get(7, 0, "g:a", d.id()).is_some_and(|found| Arc::ptr_eq(&found, &d)));
        assert!(get(8, 0, "g:a", d.id()).is_none(), "another store's");
        assert!(get(7, 0, "g:b", d.id()).is_none(), "another group's");
        assert!(
            get(7, 0, "g:a", d.id().wrapping_add(1)).is_none(),
            "another id"
        );
        assert!(get(7, 1, "g:a", d.id()).is_none(), "forgotten since");
        assert!(get(7, 0, "g:a", d.id()).is_none(), "dropped once forgotten");
        for n in 0..KEPT {
            put(9, 0, &format!("g:{n}"), 1, &d);
        }
        // Used again, the first is the most recent; the second is the oldest and makes room.
        assert!(get(9, 0, "g:0", 1).is_some());
        put(9, 0, "g:new", 1, &d);
        assert!(get(9, 0, "g:1", 1).is_none());
        assert!(get(9, 0, "g:0", 1).is_some());
        // A dictionary the process let go of is not kept alive here.
        let gone = dictionary(2);
        let gone_id = gone.id();
        put(9, 0, "g:gone", gone_id, &gone);
        drop(gone);
        assert!(get(9, 0, "g:gone", gone_id).is_none());
        assert!(RECENT.with(|r| r.borrow().iter().all(|e| e.dictionary.strong_count() > 0)));
    }
}

//! The platform's document folder (`warming.documents_dir`): where the warmer finds a document again by its
//! fingerprint to recompute it. The folder is walked (walkdir) and each file hashed once; a file whose size and
//! modification time are unchanged is not hashed again. Bounded by [`MAX_FILES`] and the pipeline's document
//! size limit.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use fernando_cache_keys::DocumentFingerprint;

/// Most files indexed in one folder.
pub const MAX_FILES: usize = 200_000;

#[derive(Default)]
struct Index {
    by_path: HashMap<PathBuf, (u64, Option<SystemTime>, DocumentFingerprint)>,
    by_fingerprint: HashMap<DocumentFingerprint, PathBuf>,
}

/// A folder of documents, indexed by fingerprint.
pub struct DocumentFolder {
    root: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

impl std::fmt::Debug for DocumentFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentFolder")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl DocumentFolder {
    /// The folder at `root`; files larger than `max_bytes` are left out.
    pub fn new(root: impl Into<PathBuf>, max_bytes: u64) -> Self {
        DocumentFolder {
            root: root.into(),
            max_bytes,
            index: Mutex::default(),
        }
    }

    /// Walks the folder again (blocking: call it from a blocking task), hashing new and changed files;
    /// returns how many documents it holds.
    pub fn rescan(&self) -> usize {
        let mut seen: HashMap<PathBuf, (u64, Option<SystemTime>, DocumentFingerprint)> =
            HashMap::new();
        let old = match self.index.lock() {
            Ok(mut i) => std::mem::take(&mut i.by_path),
            Err(_) => HashMap::new(),
        };
        for entry in walkdir::WalkDir::new(&self.root)
            .follow_links(false)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            if seen.len() >= MAX_FILES {
                tracing::warn!(root = %self.root.display(), "document folder: more than {MAX_FILES} files, the rest is not indexed");
                break;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.len() > self.max_bytes {
                continue;
            }
            let (len, modified) = (meta.len(), meta.modified().ok());
            let path = entry.into_path();
            let fp = match old.get(&path) {
                Some((l, m, fp)) if *l == len && *m == modified => *fp,
                _ => match std::fs::File::open(&path).and_then(DocumentFingerprint::of_reader) {
                    Ok(fp) => fp,
                    Err(_) => continue,
                },
            };
            seen.insert(path, (len, modified, fp));
        }
        let by_fingerprint = seen
            .iter()
            .map(|(p, (_, _, fp))| (*fp, p.clone()))
            .collect();
        let n = seen.len();
        if let Ok(mut i) = self.index.lock() {
            *i = Index {
                by_path: seen,
                by_fingerprint,
            };
        }
        n
    }

    /// The file holding the document with this fingerprint, as of the last [`DocumentFolder::rescan`].
    pub fn find(&self, fp: &DocumentFingerprint) -> Option<PathBuf> {
        self.index
            .lock()
            .ok()
            .and_then(|i| i.by_fingerprint.get(fp).cloned())
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

//! Many files at once ([`DocumentProcessor::process_files`]): a batch's files read and fingerprinted on every
//! core while the previous batch's whole-document entries are looked up — one [`Store::get_many`] a batch —
//! hits answered from that read, misses through the one-document path, every answer in input order.
//!
//! [`Store::get_many`]: fernando_cache_store::Store::get_many

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use fernando_cache_config::CacheType;
use fernando_cache_keys::DocumentFingerprint;
use futures_util::{Stream, StreamExt, stream};

use crate::{
    DocumentKind, DocumentProcessor, ProcessError, ProcessedDocument, Stages,
    processor::CachedDocument,
};

/// Documents looked up with one `get_many`.
const BATCH: usize = 256;

/// Batches read and fingerprinted ahead of the one being looked up.
const READ_AHEAD: usize = 2;

/// A document larger than this keeps no copy of its bytes between its lookup and its processing: on a miss
/// it is read again (and fingerprinted again, so that what is processed is what is keyed). Bounds what a batch
/// holds to `BATCH` × this.
const KEPT_BYTES: u64 = 256 << 10;

/// A document read whole and fingerprinted.
pub(crate) struct ReadFile {
    pub(crate) fp: DocumentFingerprint,
    pub(crate) kind: DocumentKind,
    pub(crate) size: u64,
    pub(crate) bytes: Vec<u8>,
}

/// Reads a file once, whole (at most `limit` bytes: refused before reading when it is already larger, and the
/// read bounded, since it may grow meanwhile), tells its kind by its bytes, else by its extension, and
/// fingerprints those very bytes: a file replaced while it is processed can never have one version's result
/// stored under the other version's fingerprint. Blocking.
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<ReadFile, ProcessError> {
    use std::io::Read;
    let io = |e: std::io::Error| ProcessError::Io(format!("{}: {e}", path.display()));
    let too_large = |size: u64| ProcessError::TooLarge { size, limit };
    // Opened without waiting: a path replaced by a FIFO (or a terminal) between the walk and this read would
    // otherwise block the open forever (an outside attack hung `process` so). Only a regular file is read.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(path)
            .map_err(io)?
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ProcessError::Io(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let claimed = meta.len();
    if claimed > limit {
        return Err(too_large(claimed));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(too_large(size));
    }
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(DocumentKind::from_extension);
    let head = &bytes[..bytes.len().min(crate::document::SNIFFED_BYTES)];
    let kind = crate::document::sniff_head(head)
        .or(by_extension)
        .ok_or_else(|| {
            ProcessError::UnknownKind(format!(
                " of {}: {}",
                path.display(),
                crate::document::describe_unsupported(head)
            ))
        })?;
    let fp = DocumentFingerprint::of_bytes(&bytes);
    Ok(ReadFile {
        fp,
        kind,
        size,
        bytes,
    })
}

/// One document of [`DocumentProcessor::process_files`], in input order.
#[derive(Debug)]
pub struct FileOutcome {
    /// Its answer, or why it has none.
    pub result: Result<ProcessedDocument, ProcessError>,
    /// Whether the cache could not be reached while it was processed (then it was computed without the
    /// cache, or failed): a degradation the caller reports. A concurrent document's failure counts here too —
    /// while the backend is down, it is down for all of them.
    pub cache_unavailable: bool,
}

/// Where a document of a batch stands after the batch's lookup.
enum Looked {
    /// Answered (a hit), or failed before any lookup (unreadable, unknown kind, too large).
    Done(Box<Result<ProcessedDocument, ProcessError>>),
    /// Not in the cache: processed alone, from the bytes read (or, for a large file, read again).
    Miss(PathBuf, ReadFile),
}

impl DocumentProcessor {
    /// Processes files as [`process_file`](Self::process_file) does each, answering in the order of `paths`.
    /// Files are read and fingerprinted in batches on every core, each batch's whole-document entries read
    /// with one round trip while the next batch is read; documents found are answered from that read, the
    /// others processed as one document is, `parallel` at a time. Results are the same as one by one.
    pub fn process_files(
        &self,
        paths: Vec<PathBuf>,
        parallel: usize,
    ) -> impl Stream<Item = FileOutcome> + Send + '_ {
        let mut paths = paths.into_iter();
        let batches = std::iter::from_fn(move || {
            let batch: Vec<PathBuf> = paths.by_ref().take(BATCH).collect();
            (!batch.is_empty()).then_some(batch)
        });
        stream::iter(batches)
            .map(|batch| self.read_batch(batch))
            .buffered(READ_AHEAD)
            .then(|read| self.look_up(read))
            .flat_map(stream::iter)
            .map(|looked| self.answer(looked))
            .buffered(parallel.max(1))
    }

    /// Reads and fingerprints a batch's files, split over the blocking threads, one share a core.
    async fn read_batch(
        &self,
        batch: Vec<PathBuf>,
    ) -> Vec<(PathBuf, Result<ReadFile, ProcessError>)> {
        let limit = self.shared.max_bytes;
        // Asked once a process: on Linux the answer reads the cgroup's files.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
        let share = batch.len().div_ceil(cores).max(1);
        let mut batch = batch.into_iter();
        let readers: Vec<_> = std::iter::from_fn(|| {
            let part: Vec<PathBuf> = batch.by_ref().take(share).collect();
            (!part.is_empty()).then_some(part)
        })
        .map(|part| {
            let paths = part.clone();
            let reader = tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|path| {
                        let mut read = read_file(&path, limit);
                        // A large file's bytes are not held while the batch is looked up (read again on a miss).
                        if let Ok(file) = &mut read
                            && file.size > KEPT_BYTES
                        {
                            file.bytes = Vec::new();
                        }
                        (path, read)
                    })
                    .collect::<Vec<_>>()
            });
            (paths, reader)
        })
        .collect();
        let mut out = Vec::new();
        for (paths, reader) in readers {
            match reader.await {
                Ok(part) => out.extend(part),
                // A reader that did not finish fails its share, each document with the reason.
                Err(e) => out.extend(paths.into_iter().map(|path| {
                    let why = format!("{}: reading failed: {e}", path.display());
                    (path, Err(ProcessError::Io(why)))
                })),
            }
        }
        out
    }

    /// Looks a batch up with one `get_many`: hits answered, misses left to [`answer`](Self::answer).
    async fn look_up(&self, read: Vec<(PathBuf, Result<ReadFile, ProcessError>)>) -> Vec<Looked> {
        let Some(tenant) = self.tenant() else {
            // As one by one: a document that could not be read says so first.
            return read
                .into_iter()
                .map(|(_, r)| {
                    Looked::Done(Box::new(Err(r.err().unwrap_or(ProcessError::NoTenant))))
                })
                .collect();
        };
        let start = Instant::now();
        // The key of each document read, `None` for one that failed or that no engine reads.
        let keys: Vec<Option<String>> = read
            .iter()
            .map(|(_, r)| {
                let file = r.as_ref().ok()?;
                let engine = self.engine_for(file.kind).ok()?;
                Some(self.document_key(&file.fp, engine.as_ref()))
            })
            .collect();
        let wanted: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
        let found: Vec<Option<CachedDocument>> = self
            .shared
            .store
            .get_many(tenant, &CacheType::DOC_HASH, &wanted)
            .await
            .unwrap_or_else(|_| std::iter::repeat_with(|| None).take(wanted.len()).collect());
        let mut found = found.into_iter();
        read.into_iter()
            .zip(&keys)
            .map(|((path, r), key)| {
                let file = match r {
                    Ok(file) => file,
                    Err(e) => return Looked::Done(Box::new(Err(e))),
                };
                let Some(key) = key else {
                    // No engine reads it: the one-document path says so.
                    return Looked::Miss(path, file);
                };
                match found.next().flatten() {
                    Some(cached) if !cached.stale => Looked::Done(Box::new(Ok(self.finish(
                        tenant,
                        (&file.fp, key),
                        cached.result,
                        Stages::HIT,
                        start,
                    )))),
                    _ => Looked::Miss(path, file),
                }
            })
            .collect()
    }

    /// A document's outcome: a hit as looked up, a miss processed alone.
    async fn answer(&self, looked: Looked) -> FileOutcome {
        match looked {
            Looked::Done(result) => FileOutcome {
                result: *result,
                cache_unavailable: false,
            },
            Looked::Miss(path, file) => {
                // On a task of its own: misses compute (extraction, encoding, compression) on every worker
                // thread, as one-document calls do, not all on the thread polling the stream.
                let p = self.clone();
                let miss = tokio::spawn(async move {
                    let degraded = p.shared.store.metrics().totals().degraded;
                    let result = if file.size > KEPT_BYTES {
                        p.process_file(&path).await
                    } else {
                        p.process_read(file).await
                    };
                    FileOutcome {
                        result,
                        cache_unavailable: p.shared.store.metrics().totals().degraded > degraded,
                    }
                });
                miss.await.unwrap_or_else(|e| FileOutcome {
                    result: Err(ProcessError::Io(format!("processing failed: {e}"))),
                    cache_unavailable: false,
                })
            }
        }
    }
}

//! Many files at once (issue 32, item 2): `process_files` answers what `process_file` answers one by one, in
//! the order given, and reads an inbox already cached with one `MGET` a batch.

use std::path::{Path, PathBuf};

use fernando_cache_processor::{
    DocumentProcessor, DocumentResult, FileOutcome, ProcessError, RuleExtractor, StageOutcome,
};
use fernando_cache_store::Store;
use fernando_cache_testkit::RedisServer;
use futures_util::StreamExt;
use proptest::prelude::*;

use crate::support::{CountingText, processor, redis_store};

/// One entry of a generated inbox.
#[derive(Debug, Clone)]
enum Entry {
    /// Invoice `n` of a few: the same `n` twice is the same bytes (a duplicate).
    Invoice(u8),
    /// A path that does not exist.
    Missing,
    /// Bytes of no kind the pipeline reads.
    Zip,
    /// More bytes than the processor's limit.
    TooLarge,
}

fn invoice(n: u8) -> String {
    format!(
        "Invoice number: INV-{n:04}\nTotal: {n}.50 EUR\nDate: 2026-12-0{}\n",
        n % 9 + 1
    )
}

/// Writes `entries` into `dir` as files (a missing entry writes nothing), in a name order that is their order.
fn write_inbox(dir: &Path, entries: &[Entry]) -> Vec<PathBuf> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let extension = if matches!(e, Entry::Zip) {
                "zip"
            } else {
                "txt"
            };
            let path = dir.join(format!("doc-{i:05}.{extension}"));
            let bytes = match e {
                Entry::Invoice(n) => invoice(*n).into_bytes(),
                Entry::Missing => return path,
                Entry::Zip => b"PK\x03\x04zz".to_vec(),
                Entry::TooLarge => vec![b'a'; LIMIT as usize + 1],
            };
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// The processors' document limit: small, so that a too-large file costs nothing to write.
const LIMIT: u64 = 4096;

/// A processor of `tenant` whose documents may have at most [`LIMIT`] bytes.
fn limited(store: Store, tenant: &str) -> DocumentProcessor {
    let mut p = DocumentProcessor::new(
        store,
        vec![CountingText::new("1")],
        std::sync::Arc::new(RuleExtractor),
        LIMIT,
    );
    p.set_tenant_context(tenant.parse().unwrap());
    p
}

/// What must agree between two answers for one document: the result without its timings (computed apart,
/// they may differ by a millisecond), or the error's words.
fn comparable(r: &Result<fernando_cache_processor::ProcessedDocument, ProcessError>) -> String {
    match r {
        Ok(doc) => {
            let result = DocumentResult {
                text_ms: 0,
                extract_ms: 0,
                ..doc.result.clone()
            };
            format!("{result:?}")
        }
        Err(e) => format!("error: {e}"),
    }
}

async fn one_by_one(p: &DocumentProcessor, paths: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        out.push(comparable(&p.process_file(path).await));
    }
    out
}

async fn batched(p: &DocumentProcessor, paths: &[PathBuf], parallel: usize) -> Vec<FileOutcome> {
    p.process_files(paths.to_vec(), parallel)
        .collect::<Vec<_>>()
        .await
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        8 => (0u8..12).prop_map(Entry::Invoice),
        1 => Just(Entry::Missing),
        1 => Just(Entry::Zip),
        1 => Just(Entry::TooLarge),
    ]
}

/// Random inboxes with duplicates, failures and a random part already cached: the batched answers are the
/// one-by-one answers, in the same order, and the cached part is answered from the cache. One redis-server for
/// every case, stopped with the test (a static one outlived the test binary: nothing drops a static).
#[test]
fn batched_answers_are_the_one_by_one_answers_in_order() {
    let server = RedisServer::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    let inboxes = (
        prop::collection::vec(entry(), 1..48),
        prop::collection::vec(any::<bool>(), 48),
        1usize..6,
    );
    let result = runner.run(&inboxes, |(entries, cached, parallel)| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Store::from_settings(&crate::support::settings(&server)).unwrap();
            let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            let paths = write_inbox(dir.path(), &entries);
            let alone = limited(store.clone(), &format!("alone-{case}"));
            let together = limited(store, &format!("together-{case}"));
            // The same part of the inbox already cached for both tenants.
            for (path, _) in paths.iter().zip(&cached).filter(|(_, c)| **c) {
                let _ = alone.process_file(path).await;
                let _ = together.process_file(path).await;
            }
            let expected = one_by_one(&alone, &paths).await;
            let got = batched(&together, &paths, parallel).await;
            prop_assert_eq!(got.len(), paths.len());
            let got_words: Vec<String> = got.iter().map(|o| comparable(&o.result)).collect();
            prop_assert_eq!(&got_words, &expected);
            for ((o, path), was_cached) in got.iter().zip(&paths).zip(&cached) {
                prop_assert!(!o.cache_unavailable, "{}: the cache was up", path.display());
                if let (Ok(doc), true) = (&o.result, was_cached) {
                    prop_assert_eq!(
                        doc.stages.document,
                        StageOutcome::Hit,
                        "{} was cached",
                        path.display()
                    );
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `INFO commandstats`' call count of `command` (lower case), 0 when it never ran.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.command(&["INFO", "commandstats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_already_cached_is_read_with_one_mget_a_batch_and_answered_in_order() {
    let (server, store) = redis_store();
    let engine = CountingText::new("1");
    let p = processor(store, engine.clone(), "inbox");
    let dir = tempfile::tempdir().unwrap();
    // 600 documents, 200 distinct (three batches, duplicates within and across them).
    let entries: Vec<Entry> = (0..600u32)
        .map(|i| Entry::Invoice((i % 200) as u8))
        .collect();
    let paths = write_inbox(dir.path(), &entries);
    let first = batched(&p, &paths, 4).await;
    assert!(first.iter().all(|o| o.result.is_ok()));
    // Each distinct document's text was read once, whatever its duplicates (in one batch or across them).
    assert_eq!(engine.calls(), 200, "one text read per distinct document");

    server.command(&["CONFIG", "RESETSTAT"]).unwrap();
    let again = batched(&p, &paths, 4).await;
    for ((o, path), entry) in again.iter().zip(&paths).zip(&entries) {
        let doc = o.result.as_ref().unwrap();
        assert_eq!(doc.stages.document, StageOutcome::Hit, "{}", path.display());
        let Entry::Invoice(n) = entry else {
            unreachable!()
        };
        assert_eq!(
            doc.result.text,
            invoice(*n).trim_end(),
            "{} answered in its place",
            path.display()
        );
    }
    assert_eq!(engine.calls(), 200, "nothing computed again");
    assert_eq!(calls(&server, "mget"), 3, "one MGET for each batch of 256");
    assert_eq!(calls(&server, "get"), 0, "no document read alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_down_every_document_is_computed_and_says_the_cache_was_unavailable() {
    let (server, store) = redis_store();
    let engine = CountingText::new("1");
    let p = processor(store, engine.clone(), "down");
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<Entry> = (0..5).map(Entry::Invoice).collect();
    let paths = write_inbox(dir.path(), &entries);
    drop(server);
    let outcomes = batched(&p, &paths, 2).await;
    assert_eq!(outcomes.len(), 5);
    for (o, path) in outcomes.iter().zip(&paths) {
        let doc = o.result.as_ref().unwrap();
        assert_eq!(
            doc.stages.document,
            StageOutcome::Miss,
            "{}",
            path.display()
        );
        assert!(
            o.cache_unavailable,
            "{} says the cache was unavailable",
            path.display()
        );
    }
    assert_eq!(engine.calls(), 5);
}

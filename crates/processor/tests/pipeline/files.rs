//! Files are read once (issue 28, item 16): the bytes that are fingerprinted are the bytes that are processed,
//! even when the file is replaced while its document is processed.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use async_trait::async_trait;
use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, EngineError, EngineId, RuleExtractor, TextEngine, TextLayer,
};
use fernando_cache_store::keys::DocumentFingerprint;

use crate::support::redis_store;

const FIRST: &str = "Invoice number: INV-1001\nTotal: 100.00 EUR";
const SECOND: &str = "Invoice number: INV-2002\nTotal: 200.00 EUR";

/// The text layer, except that the first time the pipeline asks which engine reads a document, the file is
/// replaced on disk by another invoice — as a scanner writing into an upload folder may do between two reads.
struct ReplacedMidway {
    path: PathBuf,
    replaced: AtomicBool,
    text: TextLayer,
}

#[async_trait]
impl TextEngine for ReplacedMidway {
    fn id(&self) -> EngineId {
        EngineId::new("replaced-midway", "1")
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        if !self.replaced.swap(true, Ordering::SeqCst) {
            std::fs::write(&self.path, SECOND).expect("replace the file");
        }
        kind == DocumentKind::Text
    }

    async fn text(&self, kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        self.text.text(kind, bytes).await
    }
}

#[tokio::test]
async fn a_file_replaced_while_it_is_processed_is_fingerprinted_and_read_as_one_version() {
    let (_server, store) = redis_store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.txt");
    std::fs::write(&path, FIRST).unwrap();
    let engine = Arc::new(ReplacedMidway {
        path: path.clone(),
        replaced: AtomicBool::new(false),
        text: TextLayer::in_process(),
    });
    let mut p = DocumentProcessor::new(
        store,
        vec![engine.clone()],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());

    let doc = p.process_file(&path).await.unwrap();
    assert!(
        engine.replaced.load(Ordering::SeqCst),
        "the file was replaced while its document was processed"
    );
    // Whichever version was read, the fingerprint, the size and the text are all of that version.
    let read = if doc.result.text == FIRST {
        FIRST
    } else {
        SECOND
    };
    assert_eq!(doc.result.text, read);
    assert_eq!(
        doc.result.fingerprint,
        DocumentFingerprint::of_bytes(read.as_bytes()).to_hex(),
        "the result of {read:?} is stored under another version's fingerprint"
    );
    assert_eq!(doc.result.size, read.len() as u64);

    // The version now on disk gets its own result, never the other version's.
    let now = p.process_file(&path).await.unwrap();
    assert_eq!(now.result.text, SECOND);
    assert_eq!(
        now.result.fields.invoice_number.as_deref(),
        Some("INV-2002")
    );
}

/// Found in an outside attack: a file of an inbox replaced by a FIFO while `process` ran made its read block
/// forever in `open`. A path that is not a regular file is one failed document, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_turned_into_a_fifo_is_a_failed_document_not_a_hang() {
    let (_server, store) = redis_store();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("invoice.txt");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut p = DocumentProcessor::new(
        store,
        vec![std::sync::Arc::new(TextLayer::in_process())],
        std::sync::Arc::new(RuleExtractor),
        1 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    // A guard against the hang only: a regression fails here instead of blocking the suite.
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), p.process_file(&fifo))
        .await
        .expect("the read returned");
    let e = read.unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let batched: Vec<_> =
        futures_util::StreamExt::collect::<Vec<_>>(p.process_files(vec![fifo.clone()], 1)).await;
    assert!(
        batched[0]
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("not a regular file")
    );
}

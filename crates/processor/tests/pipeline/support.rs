//! Shared helpers: settings on a private redis-server, a processor with counting engines, the samples.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, EngineError, EngineId, RuleExtractor, TextEngine, TextLayer,
};
use fernando_cache_store::{
    Store,
    config::{Environment, LoadOptions, Settings},
};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

pub(crate) fn settings(server: &RedisServer) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied()),
    )
    .expect("settings")
}

pub(crate) fn redis_store() -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = Store::from_settings(&settings(&server)).expect("store");
    (server, store)
}

/// The text layer with a version we choose, counting its calls and optionally slow.
pub(crate) struct CountingText {
    pub(crate) version: String,
    pub(crate) calls: AtomicUsize,
    pub(crate) delay: Duration,
}

impl CountingText {
    pub(crate) fn new(version: &str) -> Arc<Self> {
        Arc::new(CountingText {
            version: version.into(),
            calls: AtomicUsize::new(0),
            delay: Duration::ZERO,
        })
    }

    pub(crate) fn slow(version: &str, delay: Duration) -> Arc<Self> {
        Arc::new(CountingText {
            version: version.into(),
            calls: AtomicUsize::new(0),
            delay,
        })
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TextEngine for CountingText {
    fn id(&self) -> EngineId {
        EngineId::new("counting-text", self.version.clone())
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        TextLayer::in_process().accepts(kind)
    }

    async fn text(&self, kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        TextLayer::in_process().text(kind, bytes).await
    }
}

/// A processor over `store` reading text with `engine` and extracting with the rules.
pub(crate) fn processor(
    store: Store,
    engine: Arc<CountingText>,
    tenant: &str,
) -> DocumentProcessor {
    let mut p = DocumentProcessor::new(store, vec![engine], Arc::new(RuleExtractor), 50 << 20);
    p.set_tenant_context(tenant.parse().unwrap());
    p
}

pub(crate) fn sample(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .join(rel)
}

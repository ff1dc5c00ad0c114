//! The recorder: a background task that turns the store's metrics snapshots into `cache_statistics` rows (and
//! queued events into `cache_event_log`), off the async runtime's threads.
//!
//! Every flush interval it takes a snapshot, subtracts the previous one per (tenant, cache type), and merges the
//! difference into a buffer keyed by (window, tenant, type). The buffer is written as one batch — one transaction
//! behind one `spawn_blocking` boundary, with upserts that add counts — under a batch id recorded in the same
//! transaction, so a retry of a batch whose commit succeeded but whose reply was lost is not applied twice. A
//! failed batch is retried as it is before anything newer (so it is never trimmed: it may already be committed).
//! While the database is unreachable the buffer keeps growing up to `buffer_max_rows`; past that the oldest rows
//! are dropped and counted. At most `2 × buffer_max_rows` rows are held: the buffer and one failed batch.
//! [`Recorder::shutdown`] takes a last snapshot and flushes everything, retrying until its deadline, so the
//! totals in the database equal the store's counters.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::NaiveDateTime;
use fernando_cache_models::{
    Db, EventRecord, FlushBatch, ModelError, PerformanceDelta, Retention, Severity,
    StatisticsDelta, apply_flush, models::HealthRow,
};
use fernando_cache_store::{BreakerState, Store};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use crate::{
    alerts::{AlertGate, Webhook},
    health::{self, AlertThresholds},
};

mod collect;
mod upkeep;

/// How the recorder runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderOptions {
    /// `postgres://…` or `sqlite://path`.
    pub database_url: String,
    /// How often to write.
    pub flush_interval: Duration,
    /// Length of a statistics window.
    pub window: Duration,
    /// Rows kept while the database is unreachable.
    pub buffer_max_rows: usize,
    /// How often to check the backend and the database into `cache_health_status` (`None`: never).
    pub health_interval: Option<Duration>,
    /// Alert thresholds (`None`: no alerts).
    pub alerts: Option<AlertThresholds>,
    /// Rows older than these ages are removed, every `prune_interval` (`None`: never).
    pub retention: Option<(Retention, Duration)>,
    /// Where alerts are posted when they start (`None`: the log and the event log only).
    pub webhook: Option<Webhook>,
}

impl RecorderOptions {
    /// Options with the given URL and the defaults of `config/default.toml`.
    pub fn new(database_url: impl Into<String>) -> Self {
        RecorderOptions {
            database_url: database_url.into(),
            flush_interval: Duration::from_secs(10),
            window: Duration::from_secs(60),
            buffer_max_rows: 100_000,
            health_interval: None,
            alerts: None,
            retention: None,
            webhook: None,
        }
    }

    /// Posts each alert that starts to `webhook`.
    #[must_use]
    pub fn webhook(mut self, webhook: Webhook) -> Self {
        self.webhook = Some(webhook);
        self
    }

    /// Removes rows older than `retention` says, every `every`.
    #[must_use]
    pub fn retention(mut self, retention: Retention, every: Duration) -> Self {
        self.retention = Some((retention, every));
        self
    }

    /// Checks health every `every`.
    #[must_use]
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = Some(every);
        self
    }

    /// Raises alert events past these thresholds.
    #[must_use]
    pub fn alerts(mut self, thresholds: AlertThresholds) -> Self {
        self.alerts = Some(thresholds);
        self
    }

    /// Sets the flush interval.
    #[must_use]
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Sets the buffer bound.
    #[must_use]
    pub fn buffer_max_rows(mut self, n: usize) -> Self {
        self.buffer_max_rows = n.max(1);
        self
    }

    /// Sets the window length.
    #[must_use]
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d.max(Duration::from_secs(1));
        self
    }
}

/// What the recorder has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderReport {
    /// Successful flushes.
    pub flushes: u64,
    /// Flushes that failed (the rows stayed buffered).
    pub failed_flushes: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows dropped because the buffer was full.
    pub rows_dropped: u64,
    /// Rows still buffered, including a failed batch waiting to be retried as it is (so at most
    /// `2 × buffer_max_rows`).
    pub rows_buffered: u64,
    /// Events written.
    pub events_written: u64,
    /// Events dropped because their queue was full.
    pub events_dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    events: Mutex<VecDeque<EventRecord>>,
    flushes: AtomicU64,
    failed_flushes: AtomicU64,
    rows_written: AtomicU64,
    rows_dropped: AtomicU64,
    rows_buffered: AtomicU64,
    events_written: AtomicU64,
    events_dropped: AtomicU64,
}

impl Shared {
    fn report(&self) -> RecorderReport {
        RecorderReport {
            flushes: self.flushes.load(Ordering::Relaxed),
            failed_flushes: self.failed_flushes.load(Ordering::Relaxed),
            rows_written: self.rows_written.load(Ordering::Relaxed),
            rows_dropped: self.rows_dropped.load(Ordering::Relaxed),
            rows_buffered: self.rows_buffered.load(Ordering::Relaxed),
            events_written: self.events_written.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
        }
    }
}

/// Events kept while the database is unreachable.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// A tenant to forget, and who waits until it is forgotten.
type Forget = (String, oneshot::Sender<()>);

/// A running recorder. Drop it only after [`Recorder::shutdown`], or the last interval is lost.
#[derive(Debug)]
pub struct Recorder {
    stop: watch::Sender<Option<Duration>>,
    forget: mpsc::UnboundedSender<Forget>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts recording `store`'s metrics. Must be called within a Tokio runtime.
    pub fn spawn(store: Store, options: RecorderOptions) -> Recorder {
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(None);
        let (forget, forget_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, options, shared.clone(), stop_rx, forget_rx));
        Recorder {
            stop,
            forget,
            task,
            shared,
        }
    }

    /// Forgets `tenant` (its erasure, issue 31): what it did up to now is collected and dropped unwritten —
    /// statistics rows, queued events about it, and its rows in a batch waiting to be retried — so that
    /// nothing of it is written after its rows are erased from the database. Returns once done, between two
    /// flushes (never while one is being written), or at once when the recorder has stopped.
    pub async fn forget_tenant(&self, tenant: &str) {
        let (done, forgotten) = oneshot::channel();
        if self.forget.send((tenant.to_owned(), done)).is_ok() {
            let _ = forgotten.await;
        }
    }

    /// Queues an event for `cache_event_log` (written with the next flush).
    pub fn event(
        &self,
        event_type: &str,
        severity: Severity,
        tenant: Option<&str>,
        cache_type: Option<&str>,
        details: impl Into<String>,
    ) {
        queue_event(
            &self.shared,
            health::event(event_type, severity, tenant, cache_type, &details.into()),
        );
    }

    /// What the recorder has done so far.
    pub fn report(&self) -> RecorderReport {
        self.shared.report()
    }

    /// Takes a last snapshot and flushes everything, retrying until `deadline` has passed.
    pub async fn shutdown(self, deadline: Duration) -> RecorderReport {
        let _ = self.stop.send(Some(deadline));
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the statistics recorder task failed");
        }
        self.shared.report()
    }
}

fn queue_event(shared: &Shared, event: EventRecord) {
    let mut q = shared.events.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() >= MAX_QUEUED_EVENTS {
        q.pop_front();
        shared.events_dropped.fetch_add(1, Ordering::Relaxed);
    }
    q.push_back(event);
}

type BufferKey = (NaiveDateTime, String, String);

struct State {
    store: Store,
    options: RecorderOptions,
    shared: Arc<Shared>,
    previous: HashMap<(String, String), collect::Seen>,
    breaker: BreakerState,
    buffer: BTreeMap<BufferKey, StatisticsDelta>,
    performance: BTreeMap<BufferKey, PerformanceDelta>,
    health: Vec<HealthRow>,
    /// A batch that failed to write, retried as it is (same id) before anything newer.
    pending: Option<FlushBatch>,
    db: Arc<Mutex<Option<Db>>>,
    /// Alert conditions active now: each is announced when it starts.
    alerts: AlertGate,
}

async fn run(
    store: Store,
    options: RecorderOptions,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    mut forget: mpsc::UnboundedReceiver<Forget>,
) {
    // The first flush one interval from now, not at once: at start there is nothing worth a transaction, and a
    // process's start-up writes belong to its first window's flush (a serve test once saw its start-up sets
    // flushed at once, racing the interval's immediate first tick).
    let mut interval = tokio::time::interval_at(
        tokio::time::Instant::now() + options.flush_interval,
        options.flush_interval,
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = State {
        store,
        options,
        shared,
        previous: HashMap::new(),
        breaker: BreakerState::Closed,
        buffer: BTreeMap::new(),
        performance: BTreeMap::new(),
        health: Vec::new(),
        pending: None,
        db: Arc::new(Mutex::new(None)),
        alerts: AlertGate::default(),
    };
    state.alerts = AlertGate::new(state.options.webhook.clone());
    let mut health_tick = tokio::time::interval(
        state
            .options
            .health_interval
            .unwrap_or(Duration::from_secs(3600)),
    );
    health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(
        state
            .options
            .retention
            .map_or(Duration::from_secs(3600), |(_, every)| every),
    );
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = loop {
        tokio::select! {
            _ = interval.tick() => {
                state.collect();
                let _ = state.flush().await;
            }
            _ = health_tick.tick(), if state.options.health_interval.is_some() => {
                state.check_health().await;
            }
            _ = prune_tick.tick(), if state.options.retention.is_some() => {
                state.prune().await;
            }
            Some((tenant, done)) = forget.recv() => {
                // Collected first, so what the tenant did up to now is in the buffer to drop, and the next
                // collect counts only what comes after.
                state.collect();
                state.forget(&tenant);
                let _ = done.send(());
            }
            changed = stop.changed() => {
                break match changed {
                    Ok(()) => stop.borrow().unwrap_or(Duration::from_secs(10)),
                    Err(_) => Duration::from_secs(10),
                };
            }
        }
    };
    state.collect();
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match state.flush().await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() >= until => {
                tracing::error!(
                    error = %e,
                    rows = state.buffer.len(),
                    "statistics could not be written before shutdown; these rows are lost"
                );
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // The connection stays open for whatever of this process writes next (closing a SQLite file's last
    // connection checkpoints and deletes its log, which the next open makes again).
    let kept = state.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(db) = kept {
        db.put_back(&state.options.database_url);
    }
}

impl State {
    /// Drops every row and event of `tenant` not written yet: the buffer's, the queue's, and those of a batch
    /// waiting to be retried (if that batch was in fact committed, its retry writes nothing, whatever it holds).
    fn forget(&mut self, tenant: &str) {
        self.buffer.retain(|(_, t, _), _| t != tenant);
        if let Some(batch) = &mut self.pending {
            batch.statistics.retain(|d| d.tenant_id != tenant);
            batch
                .events
                .retain(|e| e.tenant_id.as_deref() != Some(tenant));
        }
        let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        q.retain(|e| e.tenant_id.as_deref() != Some(tenant));
    }

    /// Writes the buffer, health rows and queued events as one batch with an id. A failed batch is kept as it
    /// is and retried with the same id, so a batch whose commit succeeded but whose reply was lost is not
    /// counted twice; what arrives meanwhile waits for the next batch.
    async fn flush(&mut self) -> Result<(), ModelError> {
        loop {
            if self.pending.is_none() {
                let events: Vec<EventRecord> = {
                    let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
                    q.drain(..).collect()
                };
                if self.buffer.is_empty()
                    && self.performance.is_empty()
                    && events.is_empty()
                    && self.health.is_empty()
                {
                    return Ok(());
                }
                self.pending = Some(FlushBatch {
                    flush_id: format!("{:032x}", rand::random::<u128>()),
                    statistics: std::mem::take(&mut self.buffer).into_values().collect(),
                    performance: std::mem::take(&mut self.performance)
                        .into_values()
                        .collect(),
                    events,
                    health: std::mem::take(&mut self.health),
                });
            }
            let batch = self.pending.clone().expect("a batch was just prepared");
            let db = self.db.clone();
            let url = self.options.database_url.clone();
            let attempt = tokio::task::spawn_blocking(move || {
                let mut slot = db.lock().unwrap_or_else(|p| p.into_inner());
                let written = (|| {
                    if slot.is_none() {
                        *slot = Some(Db::reuse(&url)?);
                    }
                    let conn = slot.as_mut().expect("connection was just opened");
                    apply_flush(conn, &batch)
                })();
                if written.is_err() {
                    // Reconnect next time: the connection may be the broken part.
                    *slot = None;
                }
                written
            })
            .await
            .unwrap_or_else(|e| Err(ModelError::Migration(format!("recorder task failed: {e}"))));
            match attempt {
                Ok(_) => {
                    let batch = self.pending.take().expect("the batch just written");
                    let s = &self.shared;
                    s.flushes.fetch_add(1, Ordering::Relaxed);
                    s.rows_written
                        .fetch_add(batch.statistics.len() as u64, Ordering::Relaxed);
                    s.events_written
                        .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    // Anything that arrived meanwhile goes out as the next batch.
                }
                Err(e) => {
                    self.shared.failed_flushes.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        rows = self.pending.as_ref().map_or(0, |p| p.statistics.len()) + self.buffer.len(),
                        "statistics flush failed; kept for retry"
                    );
                    return Err(e);
                }
            }
        }
    }
}

//! Event-driven invalidation: an event such as `document.updated` for a tenant (and optionally a subject)
//! applies every enabled rule of `cache_invalidation_rules` that matches it, with the rule's strategy and delay,
//! and logs each application to `cache_event_log`.
//!
//! With a subject (a document fingerprint, a session id…) only that subject's entries are deleted — the key
//! equal to the subject and every key under `{subject}/` (every stage of a document for every engine, and the
//! HTTP copies of routes that name it; [`Target::subject`]) — eagerly, because lazy generations exist
//! per cache type, not per key. Without a subject the rule's strategy applies to the whole type.
//!
//! An event is about a tenant's data, or about the global scope's (shared reference data): a global event
//! applies only the rules that name no tenant.
//!
//! An event's name must be known — one of [`BUILT_IN_EVENTS`] or the event of some rule in the table — so a typo
//! (`document.updatd`) is an error that suggests the name meant, not a silent "no rule matches".
//!
//! A rule with a delay is scheduled as a row of `cache_pending_invalidations` rather than a sleeping task, so
//! it survives a restart; [`run_due`] (which `serve` polls) claims due rows, so that of several replicas one
//! applies each.

use std::time::Duration;

use chrono::Utc;
use fernando_cache_config::{CacheType, UnknownName};
use fernando_cache_keys::{Scope, TenantId};
use fernando_cache_models::{
    Db, EventRecord, ModelError, NewPendingInvalidation, PendingInvalidation, Severity,
    claim_due_invalidations, finish_invalidation, insert_event, invalidation_rules,
    rule_event_types, schedule_invalidation,
};
use fernando_cache_store::{Invalidation, InvalidationStrategy, Store, StoreError, Target};
use tokio::task::JoinHandle;

use crate::{
    health::event,
    summary::{self, Sweep},
};

/// The events every statistics database knows, whatever its rules: those the first migration's rules name.
/// Any other event is known once a rule names it.
pub const BUILT_IN_EVENTS: [&str; 4] = [
    "document.updated",
    "user.logout",
    "billing.changed",
    "reference_data.changed",
];

/// Something that happened to a tenant's data, or to the global scope's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheEvent {
    /// e.g. `document.updated`, `user.logout`, `billing.changed`.
    pub event_type: String,
    /// Whose data changed: a tenant's, or the global reference data.
    pub scope: Scope,
    /// What changed (a document fingerprint, a session id), if the event is about one thing.
    pub subject: Option<String>,
}

impl CacheEvent {
    /// An event about a tenant's data in general.
    pub fn new(event_type: impl Into<String>, tenant: TenantId) -> Self {
        CacheEvent {
            event_type: event_type.into(),
            scope: Scope::Tenant(tenant),
            subject: None,
        }
    }

    /// An event about the global scope's data (shared reference data); only rules without a tenant apply.
    pub fn global(event_type: impl Into<String>) -> Self {
        CacheEvent {
            event_type: event_type.into(),
            scope: Scope::Global,
            subject: None,
        }
    }

    /// The tenant, for the rules and the event log; `None` for a global event.
    fn tenant(&self) -> Option<&str> {
        self.scope.tenant().map(TenantId::as_str)
    }

    /// Narrows the event to one subject.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

/// One rule applied to one cache type: what it did, for the command's lines and the server's answer
/// ([`Applied::summary`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Applied {
    /// The rule's name.
    pub rule: String,
    /// The cache type invalidated.
    pub cache_type: String,
    /// The strategy used (eager when narrowed to a subject).
    pub strategy: InvalidationStrategy,
    /// Keys deleted before returning (0 for lazy, and for delayed applications; the hybrid strategy's background
    /// deletion is not counted here, see [`Applied::sweeping`]).
    pub deleted: u64,
    /// Every entry of the type in the event's scope was hidden at once (lazy and hybrid without a subject): each
    /// reads as a miss from now on, even though `deleted` may be 0.
    pub hidden: bool,
    /// Scheduled for after the rule's delay (a row of `cache_pending_invalidations`, applied by [`run_due`]).
    pub delayed: bool,
    /// The entries reached, as the summary names them: `ocr_result entries of tenant "acme"`.
    entries: String,
    /// The rule's delay, for a delayed application.
    delay: Duration,
    /// The hybrid strategy's background deletion, until [`Applied::finish_sweep`] waits for it.
    sweep: Option<JoinHandle<Result<u64, StoreError>>>,
    /// What the background deletion deleted, once waited for.
    swept: Option<u64>,
}

impl Applied {
    /// Whether a background deletion (the hybrid strategy's sweep) is still going on.
    pub fn sweeping(&self) -> bool {
        self.sweep.is_some()
    }

    /// Waits for the background deletion, if any, and returns how many keys it deleted. A command calls it before
    /// its process ends, which would end the sweep with it; a server need not.
    ///
    /// # Errors
    /// [`EventError::Store`] when the sweep could not delete (the entries stay hidden all the same);
    /// [`EventError::Task`] when it was cancelled.
    pub async fn finish_sweep(&mut self) -> Result<u64, EventError> {
        let Some(sweep) = self.sweep.take() else {
            return Ok(self.swept.unwrap_or(0));
        };
        let n = sweep.await.map_err(|e| EventError::Task(e.to_string()))??;
        self.swept = Some(n);
        Ok(n)
    }

    /// What the rule did, in the words a user reads: `1 key deleted`; `all ocr_result entries of tenant "acme"
    /// hidden; deletion continuing in the background`; for a delayed rule, when it will apply (delayed
    /// invalidations are applied by `serve`, which polls for them: [`run_due`]).
    pub fn summary(&self) -> String {
        if self.delayed {
            return format!(
                "scheduled: a running `serve` applies it in {}",
                summary::count(self.delay.as_secs(), "second", "seconds")
            );
        }
        let sweep = match (&self.sweep, self.swept) {
            (Some(_), _) => Sweep::Running,
            (None, Some(n)) => Sweep::Finished(n),
            (None, None) => Sweep::None,
        };
        summary::invalidation(&self.entries, self.hidden, self.deleted, sweep)
    }
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The rules could not be read or the log written.
    #[error(transparent)]
    Database(#[from] ModelError),
    /// The cache refused an invalidation (for example, Redis is down).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking database task failed.
    #[error("database task failed: {0}")]
    Task(String),
    /// No rule and no built-in event has this name; the message lists the known ones and suggests the nearest.
    #[error(transparent)]
    Unknown(#[from] UnknownName),
    /// The event's type or subject cannot be an event's: it says why.
    #[error("{0}")]
    Invalid(String),
}

/// Most bytes an event's type may hold.
pub const MAX_EVENT_TYPE_LEN: usize = 256;

/// Refuses an event whose type or subject no rule, log or key could hold: an empty type, or one over
/// [`MAX_EVENT_TYPE_LEN`] bytes or with a control character; a subject with a control character (no database
/// column holds a NUL, and the event log is read on terminals and pages). A subject too long for a key is
/// refused by the store, as a key is.
fn check_event(ev: &CacheEvent) -> Result<(), EventError> {
    let t = &ev.event_type;
    if t.is_empty() || t.len() > MAX_EVENT_TYPE_LEN || t.chars().any(char::is_control) {
        return Err(EventError::Invalid(format!(
            "an event type is 1 to {MAX_EVENT_TYPE_LEN} bytes without control characters"
        )));
    }
    if ev
        .subject
        .as_deref()
        .is_some_and(|s| s.chars().any(char::is_control))
    {
        return Err(EventError::Invalid(
            "an event's subject may not hold a control character (NUL, a newline, ESC …)".into(),
        ));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut Db) -> Result<T, ModelError> + Send + 'static,
) -> Result<T, EventError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut db = Db::open(&url)?;
        f(&mut db)
    })
    .await
    .map_err(|e| EventError::Task(e.to_string()))?
    .map_err(EventError::from)
}

/// Applies every enabled rule matching `event`, logging each application. An event whose name is known but
/// which no enabled rule matches (for this tenant) applies nothing and returns an empty list.
///
/// # Errors
/// [`EventError::Invalid`] for a type or subject no event may have; [`EventError::Unknown`] when the event's
/// name is neither built in ([`BUILT_IN_EVENTS`]) nor named by any rule; [`EventError`] when the rules cannot be read or an immediate invalidation fails (it is logged as an
/// error event first, so a failed invalidation is never silent).
pub async fn apply(
    store: &Store,
    database_url: &str,
    ev: &CacheEvent,
) -> Result<Vec<Applied>, EventError> {
    check_event(ev)?;
    let event_type = ev.event_type.clone();
    let tenant = ev.tenant().map(str::to_owned);
    let (named, rules) = blocking(database_url, move |db| {
        Ok((
            rule_event_types(db, tenant.as_deref())?,
            invalidation_rules(db, &event_type, tenant.as_deref())?,
        ))
    })
    .await?;
    let mut known: Vec<&str> = BUILT_IN_EVENTS.to_vec();
    known.extend(named.iter().map(String::as_str));
    UnknownName::check("event", &ev.event_type, known)?;
    let mut applied = Vec::new();
    let mut log: Vec<EventRecord> = Vec::new();
    let mut failure = None;
    for rule in rules {
        let strategy: InvalidationStrategy =
            rule.strategy.parse().unwrap_or(InvalidationStrategy::Eager);
        let delay = Duration::from_secs(u64::try_from(rule.delay_seconds).unwrap_or(0));
        for name in rule.cache_type_list() {
            let Ok(ty) = CacheType::new(name) else {
                log.push(event(
                    "invalidation.rule_error",
                    Severity::Error,
                    ev.tenant(),
                    None,
                    &format!("rule {} names an invalid cache type {name:?}", rule.name),
                ));
                continue;
            };
            let strategy = if ev.subject.is_some() {
                InvalidationStrategy::Eager
            } else {
                strategy
            };
            if !delay.is_zero() {
                // A row, not a sleeping task: it survives a restart and one replica runs it ([`run_due`]).
                let now = Utc::now().naive_utc();
                let row = NewPendingInvalidation {
                    rule_name: rule.name.clone(),
                    event_type: ev.event_type.clone(),
                    tenant_id: ev.tenant().map(str::to_owned),
                    subject: ev.subject.clone(),
                    cache_type: ty.to_string(),
                    strategy: strategy.as_str().to_owned(),
                    // A delay past the calendar's end is as good as never (and never a panic).
                    due_at: chrono::Duration::from_std(delay)
                        .ok()
                        .and_then(|d| now.checked_add_signed(d))
                        .unwrap_or(chrono::NaiveDateTime::MAX),
                    created_at: now,
                };
                blocking(database_url, move |db| schedule_invalidation(db, &row)).await?;
                applied.push(Applied {
                    rule: rule.name.clone(),
                    cache_type: ty.to_string(),
                    strategy,
                    deleted: 0,
                    hidden: false,
                    delayed: true,
                    entries: summary::entries(&ev.scope, Some(ty.as_str())),
                    delay,
                    sweep: None,
                    swept: None,
                });
                continue;
            }
            let outcome = invalidate(store, ev, &ty, strategy).await;
            log.push(describe(&rule.name, ev, &ty, &outcome));
            match outcome {
                Ok(done) => applied.push(Applied {
                    rule: rule.name.clone(),
                    cache_type: ty.to_string(),
                    // What was applied: eager for a subject, whatever was asked.
                    strategy: done.strategy,
                    deleted: done.deleted,
                    hidden: done.hidden(),
                    delayed: false,
                    entries: summary::entries(&ev.scope, Some(ty.as_str())),
                    delay,
                    sweep: done.sweep,
                    swept: None,
                }),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    blocking(database_url, move |db| insert_event(db, &log)).await?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(applied),
    }
}

/// How long a replica's claim on a delayed invalidation holds before another replica may take it over.
const CLAIM_STALE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// Applies the delayed invalidations that are due — scheduled by [`apply`] in this process or another, before
/// a restart or after — claiming each first, so that of several replicas polling at once one applies it. Each
/// application is logged like an immediate one. Returns how many were applied.
///
/// # Errors
/// [`EventError::Database`] when the rows cannot be read or claimed; an invalidation the cache refuses is
/// logged as `invalidation.failed`, left unfinished, and retried once its claim goes stale.
pub async fn run_due(store: &Store, database_url: &str) -> Result<usize, EventError> {
    let claim = format!("{:032x}", rand::random::<u128>());
    let now = Utc::now().naive_utc();
    let token = claim.clone();
    let due = blocking(database_url, move |db| {
        claim_due_invalidations(db, now, now - CLAIM_STALE_AFTER, &token, 100)
    })
    .await?;
    let mut done = 0;
    for row in due {
        let (scope, ty, strategy) = match parse_pending(&row) {
            Ok(parsed) => parsed,
            Err(why) => {
                // Written by hand into the table: say so once and retire the row, rather than retry it forever.
                let record = event(
                    "invalidation.rule_error",
                    Severity::Error,
                    row.tenant_id.as_deref(),
                    Some(&row.cache_type),
                    &format!("delayed invalidation of rule {}: {why}", row.rule_name),
                );
                let (id, token) = (row.id, claim.clone());
                blocking(database_url, move |db| {
                    insert_event(db, &[record])?;
                    finish_invalidation(db, id, &token, Utc::now().naive_utc()).map(|_| ())
                })
                .await?;
                continue;
            }
        };
        let ev = CacheEvent {
            event_type: row.event_type.clone(),
            scope,
            subject: row.subject.clone(),
        };
        let outcome = invalidate(store, &ev, &ty, strategy).await;
        let record = describe(&row.rule_name, &ev, &ty, &outcome);
        let ok = outcome.is_ok();
        let (id, token) = (row.id, claim.clone());
        blocking(database_url, move |db| {
            insert_event(db, &[record])?;
            if ok {
                finish_invalidation(db, id, &token, Utc::now().naive_utc())?;
            }
            Ok(())
        })
        .await?;
        if ok {
            done += 1;
        }
    }
    Ok(done)
}

/// The scope, type and strategy of a pending row.
fn parse_pending(
    row: &PendingInvalidation,
) -> Result<(Scope, CacheType, InvalidationStrategy), String> {
    let scope = match &row.tenant_id {
        Some(t) => Scope::Tenant(TenantId::new(t).map_err(|e| format!("tenant: {e}"))?),
        None => Scope::Global,
    };
    let ty = CacheType::new(&row.cache_type).map_err(|e| e.to_string())?;
    Ok((scope, ty, row.strategy.parse()?))
}

async fn invalidate(
    store: &Store,
    ev: &CacheEvent,
    ty: &CacheType,
    strategy: InvalidationStrategy,
) -> Result<Invalidation, StoreError> {
    // A subject's entries are deleted eagerly, whatever the rule's strategy. A hybrid sweep reclaims storage in
    // the background; the entries are already hidden.
    let target = match &ev.subject {
        Some(subject) => Target::subject(&ev.scope, ty, subject),
        None => Target::entries(&ev.scope, ty),
    };
    store.invalidate(target, strategy).await
}

fn describe(
    rule: &str,
    ev: &CacheEvent,
    ty: &CacheType,
    outcome: &Result<Invalidation, StoreError>,
) -> EventRecord {
    let subject = ev
        .subject
        .as_deref()
        .map(|s| format!(" subject {s}"))
        .unwrap_or_default();
    match outcome {
        Ok(done) => event(
            "invalidation",
            Severity::Info,
            ev.tenant(),
            Some(ty.as_str()),
            &format!(
                "{} via rule {rule}{subject}: {}, {}",
                ev.event_type,
                done.strategy.as_str(),
                summary::invalidation(
                    &summary::entries(&ev.scope, Some(ty.as_str())),
                    done.hidden(),
                    done.deleted,
                    if done.sweep.is_some() {
                        Sweep::Running
                    } else {
                        Sweep::None
                    },
                )
            ),
        ),
        Err(e) => event(
            "invalidation.failed",
            Severity::Error,
            ev.tenant(),
            Some(ty.as_str()),
            &format!("{} via rule {rule}{subject}: {e}", ev.event_type),
        ),
    }
}

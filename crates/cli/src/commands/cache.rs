//! `fernando-cache cache …`: get, set, delete, TTL, invalidation and statistics of cache entries. A `--type` must
//! be a known cache type (built in, or configured in `[types.<name>]`): a typo is an error that suggests the
//! type meant, before anything is read, written or counted.

use std::{
    io::{Read, Write},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fernando_cache_config::{CacheType, Settings};
use fernando_cache_keys::{Scope, TenantId};
use fernando_cache_ops::summary::{self, Sweep};
use fernando_cache_store::{InvalidationStrategy, KeyTtl, Store, Target, WriteOutcome};

use crate::output::outln;

/// Largest value `cache set` accepts on stdin.
const MAX_STDIN_VALUE: u64 = 512 << 20;

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Store the bytes read from stdin.
    Set {
        #[command(flatten)]
        entry: Entry,
        /// Time to live, e.g. 30s, 10m, 24h; 1ms to 366d (default: the cache type's TTL).
        #[arg(long, value_parser = crate::args::parse_ttl)]
        ttl: Option<Duration>,
        /// A tag (repeatable): `cache invalidate-tag` on it hides the entry.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Write an entry's bytes to stdout (exit 1 on a miss).
    Get {
        #[command(flatten)]
        entry: Entry,
    },
    /// Delete an entry (exit 1 if it did not exist).
    Del {
        #[command(flatten)]
        entry: Entry,
    },
    /// Print an entry's remaining time to live (exit 1 if it does not exist).
    Ttl {
        #[command(flatten)]
        entry: Entry,
    },
    /// Invalidate a tenant's entries, or one cache type's.
    Invalidate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this cache type (built in, or configured in `[types.<name>]`).
        #[arg(long = "type", value_name = "CACHE_TYPE")]
        cache_type: Option<String>,
        /// eager (delete now), lazy (hide now, reclaim by TTL) or hybrid (hide now, delete in the background).
        #[arg(long, default_value = "eager")]
        strategy: String,
    },
    /// Hide every entry of a tenant written with a tag (any cache type), in O(1).
    InvalidateTag {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The tag, e.g. customer:42.
        #[arg(long)]
        tag: String,
    },
    /// Train the compression dictionary of a tenant's cache type from up to 2 000 of its values and make it
    /// current (design 0025): small values written from now on are compressed with it; values made with an
    /// earlier one stay readable. Prints the dictionary's id and what it does to those values.
    TrainDictionary {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The cache type (built in, or configured in `[types.<name>]`).
        #[arg(long = "type", value_name = "CACHE_TYPE")]
        cache_type: String,
    },
    /// Hide every entry of a tenant, in O(1) (they expire by their TTL).
    Clear {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Diagnose single-flight across replicas: after a line on stdin ("go"), `--callers` concurrent callers
    /// miss the entry at once, and each computation takes `--work`. Prints `computing` when a computation
    /// starts, then one JSON line: how many
    /// computations this process ran and the value every caller got. Run it on several replicas at once: with
    /// the cache type's `types.<name>.single_flight = "distributed"`, one computation serves them all.
    Probe {
        #[command(flatten)]
        entry: Entry,
        /// Concurrent callers in this process (1 to 1024).
        #[arg(long, default_value_t = 32)]
        callers: usize,
        /// How long one computation takes, e.g. 300ms (at most 1m).
        #[arg(long, value_parser = crate::args::parse_duration, default_value = "300ms")]
        work: Duration,
    },
    /// Print the backend's state: kind, keys, memory, eviction policy, server hit ratio.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Entry {
    /// The tenant that owns the entry.
    #[arg(long)]
    tenant: String,
    /// The cache type: one of the eight built in (e.g. ocr_result, session) or one configured in
    /// `[types.<name>]`.
    #[arg(long = "type", value_name = "CACHE_TYPE")]
    cache_type: String,
    /// The entry's key within the tenant and type.
    #[arg(long)]
    key: String,
}

impl Entry {
    /// The tenant and the cache type, which must be a known one: a read of an unknown type would be a miss that
    /// leaves a metrics series of its own behind, a write one that nothing reads.
    fn parts(&self, settings: &Settings) -> anyhow::Result<(TenantId, CacheType)> {
        let tenant = TenantId::new(&self.tenant).context("--tenant")?;
        let cache_type = settings.types.resolve(&self.cache_type).context("--type")?;
        Ok((tenant, cache_type))
    }
}

pub(crate) async fn run(settings: &Settings, command: CacheCommand) -> anyhow::Result<ExitCode> {
    let store = Store::from_settings(settings)?;
    // Operator traffic is cache traffic too: record it when statistics are on.
    let recorder = crate::wiring::start_recorder(settings, &store).await;
    let result = execute(settings, &store, command, recorder.as_ref()).await;
    // A value written of a replicated type reaches this region's stream before the process ends.
    store.flush_replication().await;
    if let Some(recorder) = recorder {
        recorder.shutdown(Duration::from_secs(2)).await;
    }
    result
}

/// `the cache backend at WHERE is unavailable (WHY)`: where the cache is (a Redis URL without its password,
/// a file) and the error that kept it out of reach, so the operator knows what to look at.
fn unavailable(settings: &Settings, store: &Store) -> String {
    let at = crate::wiring::Whereabouts::of(settings).cache;
    match store.admin().last_unavailable() {
        Some(why) => format!("the cache backend at {at} is unavailable ({why})"),
        None => format!("the cache backend at {at} is unavailable"),
    }
}

async fn execute(
    settings: &Settings,
    store: &Store,
    command: CacheCommand,
    recorder: Option<&fernando_cache_ops::recorder::Recorder>,
) -> anyhow::Result<ExitCode> {
    if store.admin().backend_kind() == "memory" && !matches!(command, CacheCommand::Stats { .. }) {
        eprintln!(
            "fernando-cache: note: the {} profile uses the in-process memory backend, so entries live only for \
             this command; pass --redis-url or FERNANDO_CACHE__BACKEND=redis to reach a shared cache",
            settings.environment
        );
    }
    match command {
        CacheCommand::Set { entry, ttl, tags } => {
            let (tenant, ty) = entry.parts(settings)?;
            let mut value = Vec::new();
            std::io::stdin()
                .take(MAX_STDIN_VALUE + 1)
                .read_to_end(&mut value)
                .context("reading the value from stdin")?;
            if value.len() as u64 > MAX_STDIN_VALUE {
                bail!("the value on stdin is larger than {MAX_STDIN_VALUE} bytes");
            }
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            // `store::Write`: the write's options (std's `Write` is in scope for stdout).
            let options = fernando_cache_store::Write::default().ttl(ttl).tags(&tags);
            match store
                .set_bytes(&tenant, &ty, &entry.key, &value, options)
                .await?
            {
                WriteOutcome::Stored => Ok(ExitCode::SUCCESS),
                WriteOutcome::Dropped => {
                    bail!("{}; the value was not stored", unavailable(settings, store))
                }
                WriteOutcome::OverQuota => bail!(
                    "tenant {} is at its byte quota (its plan's tenant_bytes, else quotas.tenant_bytes); \
                     the value was not stored",
                    tenant.as_str()
                ),
            }
        }
        CacheCommand::Get { entry } => {
            let (tenant, ty) = entry.parts(settings)?;
            // A miss and an unavailable backend look alike to `get`; tell them apart for the operator.
            let value = store.get_bytes(&tenant, &ty, &entry.key).await?;
            match value {
                Some(bytes) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes).context("writing to stdout")?;
                    out.flush().context("writing to stdout")?;
                    Ok(ExitCode::SUCCESS)
                }
                None if store.metrics().totals().degraded > 0 => {
                    bail!("{}", unavailable(settings, store))
                }
                None => Ok(ExitCode::from(1)),
            }
        }
        CacheCommand::TrainDictionary { tenant, cache_type } => {
            let tenant = TenantId::new(&tenant).context("--tenant")?;
            let ty = settings.types.resolve(&cache_type).context("--type")?;
            let t = store.admin().train_dictionary(&tenant, &ty).await?;
            let ratio = |n: u64| n as f64 / t.sample_bytes.max(1) as f64;
            outln!(
                "dictionary {} of {} {}: {} bytes, trained on {} values; on those held out of the training \
                 ({} bytes), zstd alone stores {:.2}× their size, with the dictionary {:.2}×; current in {}",
                t.id,
                tenant.as_str(),
                ty.as_str(),
                t.bytes,
                t.samples,
                t.sample_bytes,
                ratio(t.plain_bytes),
                ratio(t.dictionary_bytes),
                fernando_cache_ops::summary::count(t.groups as u64, "group", "groups"),
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Del { entry } => {
            let (tenant, ty) = entry.parts(settings)?;
            let existed = store.delete(&tenant, &ty, &entry.key).await?;
            Ok(if existed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CacheCommand::Ttl { entry } => {
            let (tenant, ty) = entry.parts(settings)?;
            match store
                .admin()
                .remaining_ttl(&tenant, &ty, &entry.key)
                .await?
            {
                KeyTtl::Expires(left) => {
                    let rounded = Duration::from_secs(left.as_secs());
                    outln!("{}", humantime::format_duration(rounded));
                    Ok(ExitCode::SUCCESS)
                }
                KeyTtl::Persistent => {
                    outln!("no expiry");
                    Ok(ExitCode::SUCCESS)
                }
                KeyTtl::Missing => Ok(ExitCode::from(1)),
            }
        }
        CacheCommand::Invalidate {
            tenant,
            cache_type,
            strategy,
        } => {
            let tenant = TenantId::new(&tenant).context("--tenant")?;
            let ty = cache_type
                .map(|t| settings.types.resolve(&t).context("--type"))
                .transpose()?;
            let strategy: InvalidationStrategy = strategy
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--strategy: {e}"))?;
            let target = Target::entries(&tenant, ty.as_ref());
            let result = match store.invalidate(target, strategy).await {
                Ok(result) => result,
                Err(e) => {
                    if let Some(r) = recorder {
                        r.event(
                            "invalidation.failed",
                            fernando_cache_models::Severity::Error,
                            Some(tenant.as_str()),
                            ty.as_ref().map(CacheType::as_str),
                            format!("operator invalidation ({}): {e}", strategy.as_str()),
                        );
                    }
                    return Err(e.into());
                }
            };
            let hidden = result.hidden();
            // The hybrid strategy's background deletion would end with this process: wait for it, so that the
            // summary says what happened.
            let sweep = match result.sweep {
                Some(sweep) => Sweep::Finished(sweep.await.context("the background deletion")??),
                None => Sweep::None,
            };
            let what = summary::invalidation(
                &summary::entries(
                    &Scope::Tenant(tenant.clone()),
                    ty.as_ref().map(CacheType::as_str),
                ),
                hidden,
                result.deleted,
                sweep,
            );
            if let Some(r) = recorder {
                r.event(
                    "invalidation",
                    fernando_cache_models::Severity::Info,
                    Some(tenant.as_str()),
                    ty.as_ref().map(CacheType::as_str),
                    format!("operator invalidation ({}): {what}", strategy.as_str()),
                );
            }
            outln!(
                "invalidated tenant {tenant:?}{} ({}): {what}",
                ty.map(|t| format!(" type {t}")).unwrap_or_default(),
                strategy.as_str(),
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::InvalidateTag { tenant, tag } => {
            let tenant = TenantId::new(&tenant).context("--tenant")?;
            let _ = store
                .invalidate(Target::tag(&tenant, &tag), InvalidationStrategy::Lazy)
                .await?;
            if let Some(r) = recorder {
                r.event(
                    "invalidation",
                    fernando_cache_models::Severity::Info,
                    Some(tenant.as_str()),
                    None,
                    format!("operator invalidation of tag {tag:?}"),
                );
            }
            outln!("invalidated tag {tag:?} of tenant {tenant:?}");
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Clear { tenant } => {
            let tenant = TenantId::new(&tenant).context("--tenant")?;
            let _ = store
                .invalidate(Target::entries(&tenant, None), InvalidationStrategy::Lazy)
                .await?;
            if let Some(r) = recorder {
                r.event(
                    "invalidation",
                    fernando_cache_models::Severity::Info,
                    Some(tenant.as_str()),
                    None,
                    "operator clear of the tenant".to_owned(),
                );
            }
            outln!("cleared tenant {tenant:?}");
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Stats { json } => stats(store, json).await,
        CacheCommand::Probe {
            entry,
            callers,
            work,
        } => probe(settings, store, entry, callers, work).await,
    }
}

/// `cache probe`: see [`CacheCommand::Probe`].
async fn probe(
    settings: &Settings,
    store: &Store,
    entry: Entry,
    callers: usize,
    work: Duration,
) -> anyhow::Result<ExitCode> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let (tenant, ty) = entry.parts(settings)?;
    if !(1..=1024).contains(&callers) {
        bail!("--callers must be 1 to 1024, not {callers}");
    }
    if work > Duration::from_secs(60) {
        bail!("--work must be at most 1m");
    }
    outln!("ready");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .context("waiting for a line on stdin")?;
    let computed = Arc::new(AtomicUsize::new(0));
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (store, tenant, ty, key, computed) = (
            store.clone(),
            tenant.clone(),
            ty.clone(),
            entry.key.clone(),
            computed.clone(),
        );
        tasks.spawn(async move {
            let value = store
                .get_or_compute(&tenant, &ty, &key, || async move {
                    computed.fetch_add(1, Ordering::SeqCst);
                    // Said as it starts, so a test can kill the process that computes.
                    outln!("computing");
                    let _ = std::io::stdout().flush();
                    tokio::time::sleep(work).await;
                    Ok::<_, std::convert::Infallible>(format!(
                        "computed by process {} ({:016x})",
                        std::process::id(),
                        rand_nonce()
                    ))
                })
                .await;
            (value, start.elapsed())
        });
    }
    let mut values = std::collections::BTreeSet::new();
    let mut waited = Vec::with_capacity(callers);
    while let Some(joined) = tasks.join_next().await {
        let (value, elapsed) = joined.context("a probe caller panicked")?;
        values.insert(value.map_err(|e| anyhow::anyhow!("{e}"))?);
        waited.push(elapsed.as_secs_f64() * 1000.0);
    }
    waited.sort_by(f64::total_cmp);
    let at = |q: f64| waited[((waited.len() - 1) as f64 * q).round() as usize];
    outln!(
        "{}",
        serde_json::json!({
            "computed": computed.load(Ordering::SeqCst),
            "callers": callers,
            "values": values,
            "wait_ms": { "p50": at(0.5), "p99": at(0.99), "max": at(1.0) },
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// A random tag, so two computations never produce the same value.
fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

async fn stats(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let info = store.admin().backend_info().await?;
    let ratio = match (info.keyspace_hits, info.keyspace_misses) {
        (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
        _ => None,
    };
    // Which isolation each tenant runs (design 0023): names only.
    let isolations = store.admin().isolations();
    if json {
        let tenants: serde_json::Map<String, serde_json::Value> = isolations
            .listed
            .iter()
            .map(|(t, i)| (t.clone(), serde_json::Value::from(*i)))
            .collect();
        let value = serde_json::json!({
            "backend": store.admin().backend_kind(),
            "isolation": { "default": isolations.default, "tenants": tenants },
            "breaker": store.metrics().breaker.as_str(),
            "keys": info.keys,
            "used_memory": info.used_memory,
            "max_memory": info.max_memory,
            "eviction_policy": info.eviction_policy,
            "evicted_keys": info.evicted_keys,
            "connected_clients": info.connected_clients,
            "keyspace_hits": info.keyspace_hits,
            "keyspace_misses": info.keyspace_misses,
            "hit_ratio": ratio,
            "nodes": info.nodes.iter().map(|n| match &n.info {
                Ok(i) => serde_json::json!({
                    "address": n.address,
                    "keys": i.keys,
                    "used_memory": i.used_memory,
                    "connected_clients": i.connected_clients,
                }),
                Err(e) => serde_json::json!({ "address": n.address, "error": e }),
            }).collect::<Vec<_>>(),
        });
        outln!("{value:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let rows = [
        ("backend", store.admin().backend_kind().to_owned()),
        ("keys", show(info.keys)),
        ("used memory (bytes)", show(info.used_memory)),
        ("max memory (bytes)", show(info.max_memory)),
        (
            "eviction policy",
            info.eviction_policy.clone().unwrap_or_else(|| "-".into()),
        ),
        ("evicted keys", show(info.evicted_keys)),
        ("connected clients", show(info.connected_clients)),
        ("server hits", show(info.keyspace_hits)),
        ("server misses", show(info.keyspace_misses)),
        (
            "server hit ratio",
            ratio.map_or_else(|| "-".into(), |r| format!("{:.1} %", r * 100.0)),
        ),
        ("isolation (default)", isolations.default.to_owned()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        outln!("{k:<width$}  {v}");
    }
    // A cluster: each primary's own share.
    for n in &info.nodes {
        match &n.info {
            Ok(i) => outln!(
                "node {}  keys {}  used memory {}  clients {}",
                n.address,
                show(i.keys),
                show(i.used_memory),
                show(i.connected_clients)
            ),
            Err(e) => outln!("node {}  unavailable: {e}", n.address),
        }
    }
    // Each tenant with a plan of its own.
    for (tenant, isolation) in &isolations.listed {
        outln!("tenant {tenant}  isolation {isolation}");
    }
    if info.eviction_policy.as_deref() == Some("noeviction") {
        eprintln!(
            "fernando-cache: warning: Redis eviction policy is noeviction; writes fail when memory is full"
        );
    }
    Ok(ExitCode::SUCCESS)
}

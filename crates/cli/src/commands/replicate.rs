//! `fernando-cache replicate [--from URL --region NAME]`: applies other regions' replication streams to this
//! region's cache until SIGINT or SIGTERM (design 0026) — those of `[regions.from]`, or the one named. Run one
//! or more per region (or let `serve` run them, `regions.serve_replicates`): they share each remote stream's
//! consumer group, so each entry is applied once; one that is killed leaves its entries to be taken over.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use fernando_cache_config::{BackendKind, RedisUrl, RegionRedis, Settings};
use fernando_cache_store::{Replicator, Store};

use crate::output::outln;

/// How often an idle replicator looks at the stream again.
const IDLE: Duration = Duration::from_millis(10);

/// How long an entry another replicator was given may stay unacknowledged before this one takes it over.
const CLAIM_AFTER: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    settings: &Settings,
    from: Option<(String, String)>,
    consumer: Option<String>,
) -> anyhow::Result<ExitCode> {
    let here = settings.regions.region().context(
        "this deployment is no region: set regions.name (FERNANDO_CACHE__REGIONS__NAME)",
    )?;
    let from = match from {
        Some((url, region)) => vec![(
            region,
            RegionRedis::standalone(RedisUrl::parse(&url).context("--from")?),
        )],
        None => settings
            .regions
            .from
            .iter()
            .map(|(name, url)| (name.clone(), url.clone()))
            .collect(),
    };
    anyhow::ensure!(
        !from.is_empty(),
        "no region to replicate: name one with --from URL --region NAME, or list them in [regions.from]"
    );
    let local = Store::from_settings(settings)?;
    let consumer = consumer.unwrap_or_else(|| format!("{here}-{}", std::process::id()));
    let replicators = replicators(settings, &local, &from, &consumer)?;
    for (region, _) in &from {
        outln!("replicating region {region} into {here} as {consumer}");
    }
    run_all(replicators, terminated()).await;
    Ok(ExitCode::SUCCESS)
}

/// A replicator into `local` of each region of `from` (name, Redis), as `consumer`.
pub(crate) fn replicators(
    settings: &Settings,
    local: &Store,
    from: &[(String, RegionRedis)],
    consumer: &str,
) -> anyhow::Result<Vec<Replicator>> {
    from.iter()
        .map(|(region, redis)| {
            // The other region's Redis, in its own topology, with this deployment's settings otherwise: its
            // stream is named as ours are.
            let mut remote = settings.clone();
            remote.backend = BackendKind::Redis;
            remote.redis.url = redis.url.clone();
            remote.redis.mode = redis.mode;
            remote.redis.nodes.clone_from(&redis.nodes);
            remote.redis.sentinels.clone_from(&redis.sentinels);
            remote
                .redis
                .sentinel_master
                .clone_from(&redis.sentinel_master);
            // This region's secrets stay here: the other region's password is the one its URL carries, and
            // its stream and values are read as the deployment's own user, never as a tenant's.
            remote.redis.password = None;
            remote.tenants = fernando_cache_config::TenantTable::default();
            let remote = Store::from_settings(&remote)
                .with_context(|| format!("region {region}'s Redis"))?;
            Ok(Replicator::new(
                local.clone(),
                remote,
                region,
                consumer,
                CLAIM_AFTER,
            )?)
        })
        .collect()
}

/// Runs `replicators` until `stop` completes; each acknowledges what it applied before this returns.
pub(crate) async fn run_all(
    replicators: Vec<Replicator>,
    stop: impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = futures_util::future::join_all(replicators.iter().map(|r| {
        let mut rx = rx.clone();
        r.run(IDLE, async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        })
    }));
    tokio::pin!(running);
    tokio::select! {
        _ = &mut running => return,
        () = stop => {}
    }
    let _ = tx.send(true);
    running.await;
}

/// A replicator of each region of `[regions.from]` into `store`, run by `serve` until `stop` (unless
/// `regions.serve_replicates` is off, or there are none).
pub(crate) fn serve_replicators(
    settings: &Settings,
    store: &Store,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(here) = settings.regions.region() else {
        return Ok(None);
    };
    if settings.regions.from.is_empty() || !settings.regions.serve_replicates {
        return Ok(None);
    }
    let from: Vec<_> = settings
        .regions
        .from
        .iter()
        .map(|(name, url)| (name.clone(), url.clone()))
        .collect();
    let consumer = format!("{here}-serve-{}", std::process::id());
    let replicators = replicators(settings, store, &from, &consumer)?;
    Ok(Some(tokio::spawn(run_all(replicators, stop))))
}

/// Completes on SIGINT or SIGTERM.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

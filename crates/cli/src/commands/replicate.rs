//! `fernando-cache replicate --from URL --region NAME`: applies region NAME's replication stream, on the Redis at
//! URL, to this region's cache until SIGINT or SIGTERM (design 0026). Run one or more per region and remote
//! region: they share the remote stream's consumer group, so each entry is applied once; one that is killed
//! leaves its entries to be taken over.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use fernando_cache_config::{BackendKind, RedisUrl, Settings};
use fernando_cache_store::{Replicator, Store};

use crate::output::outln;

/// How often an idle replicator looks at the stream again.
const IDLE: Duration = Duration::from_millis(10);

/// How long an entry another replicator was given may stay unacknowledged before this one takes it over.
const CLAIM_AFTER: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    settings: &Settings,
    from_url: &str,
    from_region: &str,
    consumer: Option<String>,
) -> anyhow::Result<ExitCode> {
    let here = settings.regions.region().context(
        "this deployment is no region: set regions.name (FERNANDO_CACHE__REGIONS__NAME)",
    )?;
    // The other region's Redis, with this deployment's settings otherwise: its stream is named as ours are.
    let mut remote_settings = settings.clone();
    remote_settings.backend = BackendKind::Redis;
    remote_settings.redis.url = RedisUrl::parse(from_url).context("--from")?;
    let local = Store::from_settings(settings)?;
    let remote = Store::from_settings(&remote_settings)?;
    let consumer = consumer.unwrap_or_else(|| format!("{here}-{}", std::process::id()));
    let replicator = Replicator::new(local, remote, from_region, &consumer, CLAIM_AFTER)?;
    outln!("replicating region {from_region} into {here} as {consumer}");
    replicator.run(IDLE, terminated()).await;
    Ok(ExitCode::SUCCESS)
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

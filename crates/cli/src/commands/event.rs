//! `fernando-cache event`: an event for a tenant (or the global scope), applied by the invalidation rules of
//! the statistics database. An event name that is neither built in nor named by a rule is an error that suggests
//! the one meant; each applied rule is told as what it did (entries hidden, keys deleted).

use std::process::ExitCode;

use anyhow::Context;
use fernando_cache_config::Settings;
use fernando_cache_keys::TenantId;
use fernando_cache_ops::events::{CacheEvent, apply};
use fernando_cache_store::Store;

use crate::{output::outln, wiring::open};

pub(crate) async fn run(
    settings: &Settings,
    event_type: &str,
    tenant: Option<&str>,
    subject: Option<String>,
) -> anyhow::Result<ExitCode> {
    let url = open(settings).await?;
    let store = Store::from_settings(settings)?;
    // clap requires --tenant unless --global is given.
    let mut ev = match tenant {
        Some(t) => CacheEvent::new(event_type, TenantId::new(t).context("--tenant")?),
        None => CacheEvent::global(event_type),
    };
    if let Some(s) = subject {
        ev = ev.subject(super::serve::canonical_subject(&s).into_owned());
    }
    let mut applied = apply(&store, &url, &ev).await?;
    if applied.is_empty() {
        outln!("no enabled rule matches {event_type} for {}", ev.scope);
    }
    for a in &mut applied {
        // The hybrid strategy's background deletion would end with this process: wait for it, so that what is
        // printed is what happened.
        if a.sweeping() {
            a.finish_sweep()
                .await
                .with_context(|| format!("rule {}: the background deletion", a.rule))?;
        }
        let delayed = if a.delayed { " (delayed)" } else { "" };
        outln!(
            "{}: {} {}{delayed}, {}",
            a.rule,
            a.cache_type,
            a.strategy.as_str(),
            a.summary()
        );
    }
    Ok(ExitCode::SUCCESS)
}

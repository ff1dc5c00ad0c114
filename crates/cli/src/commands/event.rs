//! `fernando-cache event`: an event for a tenant (or the global scope), applied by the invalidation rules of
//! the statistics database.

use std::process::ExitCode;

use anyhow::Context;
use fernando_cache_config::Settings;
use fernando_cache_keys::TenantId;
use fernando_cache_ops::events::{CacheEvent, apply};
use fernando_cache_store::Store;

use crate::wiring::open;

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
    let applied = apply(&store, &url, &ev).await?;
    if applied.is_empty() {
        println!("no enabled rule matches {event_type} for {}", ev.scope);
    }
    for a in applied {
        println!(
            "{}: {} {}{}",
            a.rule,
            a.cache_type,
            a.strategy.as_str(),
            if a.delayed {
                " (delayed)".to_owned()
            } else {
                format!(", {} keys deleted", a.deleted)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

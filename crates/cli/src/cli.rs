//! Command-line arguments and dispatch.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fernando_cache_config::{Environment, LoadOptions, Settings};

use crate::{
    args::{parse_duration, parse_ttl},
    commands::{self, cache::CacheCommand, tenant::TenantCommand},
};

/// A Redis caching layer for document-processing platforms.
#[derive(Debug, Parser)]
#[command(name = "fernando-cache", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Configuration profile: development (or dev), test, staging or production (or prod) (default:
    /// $FERNANDO_CACHE_ENV, else development).
    #[arg(long = "env", global = true, value_name = "PROFILE")]
    env: Option<String>,

    // The help names the folder this very machine and user would use, so it is computed, not written here.
    #[arg(long, global = true, value_name = "DIR", help = data_dir_help())]
    data_dir: Option<PathBuf>,

    /// Use Redis at this URL (selects the Redis backend): where process, serve, proxy, cache, event and tenant
    /// keep the cache. `stats` reads the statistics database, and the backend only for tenant quotas.
    #[arg(long, global = true, value_name = "URL")]
    redis_url: Option<String>,

    /// Folder holding default.toml, {profile}.toml and local.toml (default: ./config if present).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Process documents (files and folders) through the cached pipeline and print what the cache saved.
    #[command(after_help = commands::process::help())]
    Process {
        /// Files or folders (walked recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The tenant the documents belong to.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) when documents are skipped because an engine they need is not installed.
        #[arg(long)]
        strict: bool,
    },
    /// Serve the document API over HTTP until SIGINT or SIGTERM.
    #[command(after_help = commands::serve::ROUTES_HELP)]
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080, localhost:8080, 0.0.0.0:8080 (default: server.bind).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Start even when the public development keys are configured and the address is not loopback.
        #[arg(long)]
        allow_dev_keys: bool,
    },
    /// Apply other regions' replication streams to this region's cache until SIGINT or SIGTERM (design 0026):
    /// their invalidations and erasures, and the values of replicated types. This region is regions.name; the
    /// others are those of [regions.from], or the one --from and --region name.
    Replicate {
        /// Another region's Redis, e.g. redis://eu.cache.internal:6379 (with --region; default: every region
        /// of [regions.from]).
        #[arg(long, value_name = "URL", requires = "region")]
        from: Option<String>,
        /// That region's name (its regions.name).
        #[arg(long, value_name = "NAME", requires = "from")]
        region: Option<String>,
        /// This replicator's name in the stream's consumer group (default: this region and the process id).
        /// Name it the same across restarts to take back its own unacknowledged entries at once.
        #[arg(long, value_name = "NAME")]
        consumer: Option<String>,
    },
    /// Put the HTTP cache in front of any HTTP API: forward every request to the origin and keep, per tenant,
    /// what RFC 9111 allows.
    Proxy {
        /// The origin, e.g. `http://127.0.0.1:8000` or `https://api.example.com` (a base path is kept in front of
        /// every request's path). An https:// origin's certificate must name its host and chain to the system's
        /// roots, or to the CA in proxy.origin_ca_file (FERNANDO_CACHE__PROXY__ORIGIN_CA_FILE).
        #[arg(long, value_name = "URL")]
        origin: String,
        /// Address to listen on, e.g. 127.0.0.1:8081 or localhost:8081.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        bind: String,
        /// Every request belongs to this tenant.
        #[arg(long, default_value = "default", conflicts_with_all = ["tenant_header", "api_keys"])]
        tenant: String,
        /// The tenant is the value of this request header, set by a trusted front (--trusted-front; without
        /// one, only on a loopback address).
        #[arg(long, value_name = "NAME", conflicts_with = "api_keys")]
        tenant_header: Option<String>,
        /// The address of a front proxy whose word is trusted (repeatable): only its requests may name the
        /// tenant with --tenant-header, and the client address it appends to X-Forwarded-For is the one
        /// per-client limits count.
        #[arg(long = "trusted-front", value_name = "IP")]
        trusted_fronts: Vec<std::net::IpAddr>,
        /// A request header the origin may see on cacheable requests although it is not part of the key
        /// (repeatable; beside the standard ones listed in docs/security.md). Only for a header the origin's
        /// responses do not depend on: what it changes would be served to everyone.
        #[arg(long = "forward-header", value_name = "NAME")]
        forward_headers: Vec<String>,
        /// Tenants authenticate with their API keys (server.api_keys), as with `serve`.
        #[arg(long)]
        api_keys: bool,
        /// Longest a response is kept, whatever its freshness; 1ms to 366d (default: types.api_response.ttl).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Freshness given to a response that states none (RFC 9111 §4.2.2); 0s keeps only what says it may.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        heuristic: Duration,
        /// Longest the origin may take to answer.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        origin_timeout: Duration,
        /// Start even when the public development keys are configured and the address is not loopback.
        #[arg(long)]
        allow_dev_keys: bool,
        /// Also serve the operators' console (/dashboard, /v1/admin/series, /v1/admin/overview; admin token)
        /// on its own listener at ADDR: a web origin of its own, so proxied pages cannot script it. Its session
        /// cookie and the admin token never reach the origin.
        #[arg(long, value_name = "ADDR")]
        dashboard: Option<String>,
    },
    /// Read, write and invalidate cache entries.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// One tenant's place in the cache: erase or export what is held for it, or make an acl tenant's Redis user.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Hit ratio, traffic and latency per tenant and cache type, from the statistics database.
    #[command(after_help = commands::stats::HELP)]
    Stats {
        /// How far back to look, e.g. 15m, 24h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        since: Duration,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Emit an event (e.g. document.updated) for a tenant, or for the global reference data; the matching
    /// invalidation rules are applied.
    Event {
        /// The event type: document.updated, user.logout, billing.changed, reference_data.changed, or one a
        /// rule of the statistics database names (any other name is an error).
        event_type: String,
        /// The tenant whose data changed.
        #[arg(long, required_unless_present = "global", conflicts_with = "global")]
        tenant: Option<String>,
        /// The global scope's data (shared reference data) changed; only rules for every tenant apply.
        #[arg(long)]
        global: bool,
        /// What changed (a document fingerprint, a session id); narrows the invalidation to it.
        #[arg(long)]
        subject: Option<String>,
    },
}

impl Cli {
    /// The settings the flags and the environment choose.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        let mut options = LoadOptions::new();
        if let Some(env) = &self.env {
            options = options.environment(env.parse::<Environment>().context("--env")?);
        }
        if let Some(dir) = &self.config_dir {
            options = options.config_dir(dir);
        }
        if let Some(dir) = &self.data_dir {
            let text = dir
                .to_str()
                .with_context(|| format!("--data-dir {}: not UTF-8", dir.display()))?;
            options = options.set("data_dir", text);
        }
        if let Some(url) = &self.redis_url {
            options = options
                .set("backend", "redis")
                .set("redis.url", url.as_str());
        }
        Settings::load(options).context("loading configuration")
    }
}

pub(crate) async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Process {
            paths,
            tenant,
            json,
            strict,
        } => commands::process::run(&settings, paths, &tenant, json, strict).await,
        Command::Serve {
            bind,
            allow_dev_keys,
        } => commands::serve::run(&settings, bind, allow_dev_keys).await,
        Command::Proxy {
            origin,
            bind,
            tenant,
            tenant_header,
            trusted_fronts,
            forward_headers,
            api_keys,
            ttl,
            heuristic,
            origin_timeout,
            allow_dev_keys,
            dashboard,
        } => {
            let tenancy = match (tenant_header, api_keys) {
                (Some(h), _) => commands::proxy::Tenancy::Header(h),
                (None, true) => commands::proxy::Tenancy::ApiKeys,
                (None, false) => commands::proxy::Tenancy::Fixed(tenant),
            };
            let options = commands::proxy::ProxyOptions {
                origin,
                bind,
                tenancy,
                trusted_fronts,
                forward_headers,
                ttl,
                heuristic,
                origin_timeout,
                allow_dev_keys,
                dashboard,
            };
            commands::proxy::run(&settings, options).await
        }
        Command::Replicate {
            from,
            region,
            consumer,
        } => {
            let from = from.zip(region);
            Box::pin(commands::replicate::run(&settings, from, consumer)).await
        }
        Command::Cache { command } => commands::cache::run(&settings, command).await,
        Command::Tenant { command } => commands::tenant::run(&settings, command).await,
        Command::Stats { since, json } => {
            commands::stats::run(&settings, since, json, cli.redis_url.is_some()).await
        }
        Command::Event {
            event_type,
            tenant,
            global: _,
            subject,
        } => commands::event::run(&settings, &event_type, tenant.as_deref(), subject).await,
    }
}

/// The help of `--data-dir`: what the folder holds and where it is by default here — the folder
/// `FERNANDO_CACHE__DATA_DIR` names, else the platform's per-user data folder.
fn data_dir_help() -> String {
    let (dir, from) = match std::env::var_os("FERNANDO_CACHE__DATA_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => (
            std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(&dir)),
            "$FERNANDO_CACHE__DATA_DIR",
        ),
        None => match fernando_cache_config::default_data_dir() {
            Some(dir) => (dir, "this user's data folder"),
            None => {
                return "Folder of the disk cache and the SQLite statistics database (default: none known here, \
                        as there is no home folder; set --data-dir or data_dir)"
                    .to_owned();
            }
        },
    };
    format!(
        "Folder of the disk cache ({}) and the SQLite statistics database ({}) unless disk.path or \
         statistics.database_url name others; data_dir in the settings also sets it [default: {}, {from}]",
        fernando_cache_config::DISK_FILE,
        fernando_cache_config::STATISTICS_FILE,
        dir.display()
    )
}

//! Command-line arguments and dispatch.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fernando_cache_config::{Environment, LoadOptions, Settings};

use crate::cache_cmd::{self, CacheCommand};

/// A Redis caching layer for document-processing platforms.
#[derive(Debug, Parser)]
#[command(name = "fernando-cache", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Configuration profile: development, test, staging or production (default: $FERNANDO_CACHE_ENV, else
    /// development).
    #[arg(long = "env", global = true, value_name = "PROFILE")]
    env: Option<String>,

    /// Use Redis at this URL (selects the Redis backend).
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
    /// Read, write and invalidate cache entries.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

impl Cli {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut options = LoadOptions::new();
        if let Some(env) = &self.env {
            options = options.environment(env.parse::<Environment>()?);
        }
        if let Some(dir) = &self.config_dir {
            options = options.config_dir(dir);
        }
        if let Some(url) = &self.redis_url {
            options = options
                .set("backend", "redis")
                .set("redis.url", url.as_str());
        }
        Settings::load(options).context("loading configuration")
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings()?;
    match cli.command {
        Command::Cache { command } => cache_cmd::run(&settings, command).await,
    }
}

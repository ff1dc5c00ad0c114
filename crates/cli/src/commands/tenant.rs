//! `fernando-cache tenant …`: operating one tenant's place in the cache. `tenant acl` prints (or, with
//! `--apply`, makes) the Redis user an `acl` tenant runs as (design 0023).

use std::process::ExitCode;

use clap::Subcommand;
use fernando_cache_config::Settings;

mod acl;

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Print the `ACL SETUSER` line of a tenant's Redis user (acl isolation): its keys and nothing else, no
    /// channel, the commands the cache sends; `--apply` makes the user on the shared deployment.
    #[command(after_help = acl::HELP)]
    Acl {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Make (or remake) the user now, over the shared deployment's connection, with its password.
        #[arg(long)]
        apply: bool,
        /// With --apply: read the password from this environment variable instead of the tenant's configured
        /// source (tenants.<id>.acl_password_env or acl_password_file).
        #[arg(long, value_name = "VAR", requires = "apply")]
        password_env: Option<String>,
    },
}

pub(crate) async fn run(settings: &Settings, command: TenantCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Acl {
            tenant,
            apply,
            password_env,
        } => acl::run(settings, &tenant, apply, password_env).await,
    }
}

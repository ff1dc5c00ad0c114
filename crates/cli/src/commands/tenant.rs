//! `fernando-cache tenant …`: one tenant's place in the cache as a whole (issue 31). `erase` removes every trace
//! of it — its keys on the cache backend (every primary of a cluster), its rows in the statistics database —
//! and records one audit event with the counts; `export` writes what is held for it (keys, sizes, ages,
//! remaining lives; values only when asked, as stored) as JSON lines, for a data-subject request; `acl` prints
//! (or, with `--apply`, makes) the Redis user an `acl` tenant runs as (design 0023).

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::Subcommand;
use fernando_cache_config::Settings;
use fernando_cache_keys::TenantId;
use fernando_cache_ops::erasure::{EraseOptions, erase_tenant};
use fernando_cache_store::{ExportCursor, HeldEntry, Store};

use crate::output::outln;

mod acl;

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Remove every trace of a tenant: its entries of every type (HTTP copies included), generations, leases
    /// and quota ledgers on the cache backend, and its rows in the statistics database (statistics, access
    /// history, warmup jobs, rules, events); one audit event records the counts. Running it again finds
    /// nothing.
    Erase {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Write what the cache holds for a tenant as JSON lines: each entry's cache type, key, size, age and
    /// remaining life — no values unless --values.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Write to this new file (created readable by its owner only; never over an existing file or link) instead
        /// of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Include each entry's value: its envelope exactly as stored, in base64 (a sealed value stays sealed;
        /// nothing is decrypted).
        #[arg(long)]
        values: bool,
        /// Stop after this many entries (stderr then says more may be held).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
    },
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
        /// source (its acl_password_env or acl_password_file in the settings).
        #[arg(long, value_name = "VAR", requires = "apply")]
        password_env: Option<String>,
    },
}

pub(crate) async fn run(settings: &Settings, command: TenantCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Erase { tenant, json } => erase(settings, &tenant, json).await,
        TenantCommand::Export {
            tenant,
            out,
            values,
            limit,
        } => export(settings, &tenant, out.as_deref(), values, limit).await,
        TenantCommand::Acl {
            tenant,
            apply,
            password_env,
        } => acl::run(settings, &tenant, apply, password_env).await,
    }
}

async fn erase(settings: &Settings, tenant: &str, json: bool) -> anyhow::Result<ExitCode> {
    let tenant = TenantId::new(tenant).context("--tenant")?;
    let store = Store::from_settings(settings)?;
    // Without statistics there is no database to erase from (nor to record in: the audit goes to the log).
    let url = if settings.statistics.enabled {
        Some(crate::wiring::open(settings).await?)
    } else {
        None
    };
    let mut options = EraseOptions::default();
    if let Some(url) = &url {
        options = options.database(url);
    }
    let erased = erase_tenant(&store, &tenant, options).await?;
    if json {
        outln!("{}", erased.json(&tenant));
    } else {
        outln!("tenant {:?} erased: {}", tenant.as_str(), erased.summary());
        let c = &erased.cache;
        for (place, n) in [
            ("cache entries", c.entries),
            ("cache generations", c.generations),
            ("cache leases", c.leases),
            ("cache quota keys", c.quota),
        ] {
            outln!("  {place:<28} {n}");
        }
        if let Some(rows) = &erased.database {
            for (table, n) in rows.by_table() {
                outln!("  {table:<28} {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Entries read per page: fewer with values, whose envelopes may be large.
fn page_size(values: bool) -> usize {
    if values { 16 } else { 256 }
}

async fn export(
    settings: &Settings,
    tenant: &str,
    out: Option<&Path>,
    values: bool,
    limit: u64,
) -> anyhow::Result<ExitCode> {
    let tenant = TenantId::new(tenant).context("--tenant")?;
    let store = Store::from_settings(settings)?;
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(BufWriter::new(private_file(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut from = ExportCursor::default();
    let mut written = 0u64;
    let mut more = false;
    'pages: loop {
        let left = usize::try_from(limit - written).unwrap_or(usize::MAX);
        let page = store
            .admin()
            .export_tenant(&tenant, &from, left.min(page_size(values)), values)
            .await
            .context("reading what the cache holds for the tenant")?;
        for entry in &page.entries {
            if written == limit {
                more = true;
                break 'pages;
            }
            serde_json::to_writer(&mut sink, &entry_json(entry, values))?;
            sink.write_all(b"\n")?;
            written += 1;
        }
        match page.next {
            Some(next) if written < limit => from = next,
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    sink.flush().context("writing the export")?;
    let to = out.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    eprintln!(
        "fernando-cache: {written} entries of tenant {:?} exported to {to}",
        tenant.as_str()
    );
    if more {
        eprintln!("fernando-cache: stopped at --limit {limit}; more may be held (raise --limit)");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of the export: what is held, never decoded.
fn entry_json(e: &HeldEntry, values: bool) -> serde_json::Value {
    use base64::Engine as _;
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut line = serde_json::json!({
        "cache_type": e.cache_type,
        "key": e.key,
        "size": e.size,
        "age_ms": e.age.map(millis),
        "expires_in_ms": e.expires_in.map(millis),
        "sealed": e.sealed,
    });
    if values {
        line["envelope_base64"] = e
            .envelope
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .into();
    }
    line
}

/// A new file, readable and writable by its owner only: an export holds a tenant's data.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    // A new file only (`O_CREAT | O_EXCL`, which also refuses a symbolic link, dangling or not): an export never
    // writes over a file — one readable by others, or a link planted to send it elsewhere.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "--out {}: the file exists; an export writes a new file only (choose another name, or remove it)",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("--out {}", path.display())),
    })
}

//! `tenant acl`: the Redis user of an `acl` tenant (design 0023), from what the store says it may do
//! (`Admin::acl_rules`) — printed as one `ACL SETUSER` line for an operator to run, with a placeholder where
//! the password goes, or made now with `--apply`, the password read by the store from the tenant's source (or
//! `--password-env`) and never shown.

use std::process::ExitCode;

use anyhow::{Context, bail};
use fernando_cache_config::{SecretSource, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;

use crate::output::outln;

/// `tenant acl --help`'s closing text.
pub(super) const HELP: &str = "\
The line is for the redis-cli prompt (not a shell: the password rule starts with '>'). Run it on every server
that serves the deployment: --apply reaches one server, the primary a Sentinel names (its replicas keep users of
their own), or every node of a cluster. Applied again, it leaves the user exactly as the cache needs it.";

/// What stands for the password in the printed line.
const PLACEHOLDER: &str = ">PASSWORD";

pub(super) async fn run(
    settings: &Settings,
    tenant: &str,
    apply: bool,
    password_env: Option<String>,
) -> anyhow::Result<ExitCode> {
    let tenant = TenantId::new(tenant).context("--tenant")?;
    let store = Store::from_settings(settings)?;
    let admin = store.admin();
    let Some((user, configured)) = admin.acl_user(&tenant) else {
        bail!(
            "tenant {:?} runs {} isolation; `tenant acl` is for a tenant whose plan says isolation = \"acl\" \
             ([tenants.<id>] or [tenants.default])",
            tenant.as_str(),
            admin.isolation(&tenant)
        );
    };
    let rules = admin.acl_rules(&tenant);
    if !apply {
        outln!(
            "# Redis user of tenant {:?}; its password is read from {}",
            tenant.as_str(),
            shown(&configured)
        );
        let mut words = vec!["ACL".to_owned(), "SETUSER".to_owned(), quoted(&user)];
        words.extend(rules.iter().map(|r| quoted(r.as_str())));
        words.push(PLACEHOLDER.to_owned());
        outln!("{}", words.join(" "));
        return Ok(ExitCode::SUCCESS);
    }
    let source = match password_env {
        Some(var) => SecretSource::Env(var),
        None => configured,
    };
    admin
        .apply_acl(&tenant, &user, &source)
        .await
        .with_context(|| {
            format!(
                "making the Redis user {user:?} of tenant {:?}",
                tenant.as_str()
            )
        })?;
    outln!(
        "Redis user {user:?} of tenant {:?} made on the shared deployment ({} rules, password from {})",
        tenant.as_str(),
        rules.len(),
        shown(&source)
    );
    Ok(ExitCode::SUCCESS)
}

/// Where a password is read from, as an operator reads it (never the password).
fn shown(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(var) => format!("the environment variable {var}"),
        SecretSource::File(path) => format!("the file {}", path.display()),
        _ => "its configured source".to_owned(),
    }
}

/// One argument as redis-cli reads it: as it is when it is plain, else in double quotes with `"`, `\` and
/// anything unprintable escaped (`\xHH`).
fn quoted(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'));
    if plain {
        return arg.to_owned();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for b in arg.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            b if b.is_ascii_graphic() => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn arguments_are_quoted_as_redis_cli_reads_them() {
        assert_eq!(quoted("+get"), "+get");
        assert_eq!(quoted("~a:{tenant_acme}:*"), "~a:{tenant_acme}:*");
        assert_eq!(quoted(r"~a:{tenant_\*}:*"), r#""~a:{tenant_\\*}:*""#);
        assert_eq!(quoted("~a:{tenant_a b}:*"), "\"~a:{tenant_a b}:*\"");
        assert_eq!(quoted("say \"hi\""), r#""say \"hi\"""#);
        assert_eq!(quoted("é"), "\"\\xc3\\xa9\"");
        assert_eq!(quoted(""), "\"\"");
    }
}

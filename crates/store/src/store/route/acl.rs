//! What an `acl` tenant's Redis user may do (design 0023), as the exact `ACL SETUSER` rules: its keys — every
//! glob [`KeyBuilder::tenant_globs`] names, and nothing else — no pub/sub channel, and the commands the Redis
//! backends send on its connections, listed here once. What it may not do is as deliberate: `SCAN` and `KEYS`
//! (not filtered by key patterns: they would show other tenants' key names — sweeps scan over the shared
//! connection and delete as the tenant), `CLIENT TRACKING` (a `BCAST` prefix is not checked against the user's
//! keys, so it could watch every key name on the server — the tenant's hot connection turns tracking on, in
//! OPTIN mode, before it becomes the user, and the user may only opt in, with `CLIENT CACHING YES`),
//! `SUBSCRIBE` and `PUBLISH` (the lease channel carries every tenant's lease keys — its releases and their
//! announcements go over the shared connection), `INFO`, `CONFIG`, `FLUSH*`, `ACL`.

use fernando_cache_keys::{KeyBuilder, TenantId};

/// The commands an `acl` tenant's connections send, directly or inside our scripts (Redis 7 checks a script's
/// inner commands against the user too), and the ones the clients send on their own: the pool's recycle check
/// (`UNWATCH`, `PING`), `SELECT` of a database in the URL, the Sentinel client's `ROLE` check of the primary,
/// and the cluster client's `CLUSTER SLOTS`, `ASKING` and `READONLY`. `AUTH` and `HELLO` need no permission.
const COMMANDS: &[&str] = &[
    // Entries and generations.
    "get",
    "mget",
    "set",
    "unlink",
    "del",
    "exists",
    "pttl",
    "pexpire",
    "type",
    // Bounded sets, byte ledgers, windowed counters (inside scripts).
    "sadd",
    "sismember",
    "scard",
    "hget",
    "hset",
    "hdel",
    "zadd",
    "zrem",
    "zrangebyscore",
    "incrby",
    "time",
    // Our scripts: `EVAL`, and `EVALSHA` with `SCRIPT LOAD` when the server does not know one yet.
    "eval",
    "evalsha",
    "script|load",
    // Opting in to the announcement of a generation's next change, on a connection whose tracking was
    // turned on (OPTIN) before it became the tenant's user; `CLIENT TRACKING` itself stays refused.
    "client|caching",
    // What the clients send on their own.
    "ping",
    "select",
    "unwatch",
    "role",
    "asking",
    "readonly",
    "cluster|slots",
];

/// Why a Redis user name cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Redis user name {0:?} is not 1 to 256 characters without spaces or control characters"
)]
pub(crate) struct BadUser(String);

/// Checks a Redis user name: Redis refuses spaces and NUL in one, and an id of our own making should not
/// reach a server unchecked.
pub(crate) fn check_user(user: &str) -> Result<(), BadUser> {
    if user.is_empty()
        || user.len() > 256
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(BadUser(user.chars().take(64).collect()));
    }
    Ok(())
}

/// The `ACL SETUSER <user>` rules of `tenant`'s user, without a password (`>password` is the operator's, and
/// goes last): `on`, its passwords reset (so a rotation revokes the old one), its selectors cleared, its keys
/// reset to the tenant's globs, no channel, every command removed and then [`COMMANDS`] allowed. Applied again,
/// they leave the user exactly so.
pub(crate) fn rules(keys: &KeyBuilder, tenant: &TenantId) -> Vec<String> {
    let mut rules = vec![
        "on".to_owned(),
        "resetpass".to_owned(),
        "clearselectors".to_owned(),
        "resetkeys".to_owned(),
    ];
    rules.extend(
        keys.tenant_globs(tenant)
            .into_iter()
            .map(|g| format!("~{g}")),
    );
    rules.push("resetchannels".to_owned());
    rules.push("-@all".to_owned());
    rules.extend(COMMANDS.iter().map(|c| format!("+{c}")));
    rules
}

#[cfg(test)]
mod tests {
    use fernando_cache_config::Environment;

    use super::*;

    /// Every command the Redis backends name in their source, with whether an `acl` tenant's connection may
    /// send it. Reading the source keeps the list honest: a command added to a backend fails this test until it
    /// is allowed here or said to run over the shared connection only.
    #[test]
    fn every_command_the_backends_send_is_allowed_or_runs_over_the_shared_connection() {
        const SOURCES: &[&str] = &[
            include_str!("../../backend/redis/commands/mod.rs"),
            include_str!("../../backend/redis/commands/fetch.rs"),
            include_str!("../../backend/redis/commands/limits.rs"),
            include_str!("../../backend/redis/storage.rs"),
            include_str!("../../backend/redis/read.rs"),
            include_str!("../../backend/redis/hot.rs"),
            include_str!("../../backend/redis/batch.rs"),
            include_str!("../../backend/redis/tracking.rs"),
            include_str!("../../backend/redis/shared.rs"),
            include_str!("../../backend/redis/cluster/mod.rs"),
            include_str!("../../backend/redis/cluster/storage.rs"),
            include_str!("../../backend/redis/cluster/direct.rs"),
        ];
        // Sent only over the shared connection: sweeps' SCAN, INFO and DBSIZE, tracking, the release's PUBLISH,
        // ACL SETUSER itself.
        const SHARED_ONLY: &[&str] = &["scan", "info", "dbsize", "client", "publish", "acl"];
        // Needs no permission: the tenant's hot connection becomes its user with it.
        const ANYONE: &[&str] = &["auth"];
        let mut found = std::collections::BTreeSet::new();
        for source in SOURCES {
            for opener in ["cmd(\"", "redis.call('"] {
                for (i, _) in source.match_indices(opener) {
                    let rest = &source[i + opener.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphabetic())
                        .collect();
                    if !name.is_empty() {
                        found.insert(name.to_ascii_lowercase());
                    }
                }
            }
        }
        assert!(found.len() >= 20, "found only {found:?}");
        for name in &found {
            let allowed = COMMANDS
                .iter()
                .any(|c| c == name || c.starts_with(&format!("{name}|")));
            assert!(
                allowed || SHARED_ONLY.contains(&name.as_str()) || ANYONE.contains(&name.as_str()),
                "the Redis backends send {name}, which an acl tenant's user may not: allow it in COMMANDS or \
                 send it over the shared connection"
            );
        }
    }

    #[test]
    fn the_rules_reset_everything_and_name_only_the_tenants_keys() {
        let keys = KeyBuilder::new("fernando", Environment::Production, 128);
        let acme = TenantId::new("acme").unwrap();
        let rules = rules(&keys, &acme);
        assert_eq!(
            &rules[..4],
            ["on", "resetpass", "clearselectors", "resetkeys"]
        );
        let globs: Vec<_> = rules.iter().filter(|r| r.starts_with('~')).collect();
        assert_eq!(globs.len(), keys.tenant_globs(&acme).len());
        assert!(
            globs.iter().all(|g| g.contains("{tenant_acme")),
            "{globs:?}"
        );
        assert!(rules.iter().any(|r| r == "resetchannels"));
        assert!(
            !rules
                .iter()
                .any(|r| r.starts_with('&') || r.starts_with('>'))
        );
        let all = rules.iter().position(|r| r == "-@all").unwrap();
        assert!(rules[all + 1..].iter().all(|r| r.starts_with('+')));
        for refused in [
            "+scan",
            "+keys",
            "+client|tracking",
            "+subscribe",
            "+publish",
            "+info",
        ] {
            assert!(!rules.iter().any(|r| r == refused), "{refused}");
        }
    }

    #[test]
    fn user_names_with_spaces_or_control_characters_are_refused() {
        assert!(check_user("fernando-acme").is_ok());
        let long = "x".repeat(300);
        for bad in ["", "a b", "a\u{0}", long.as_str()] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
    }
}

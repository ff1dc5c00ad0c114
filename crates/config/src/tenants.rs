//! `[tenants.<id>]`: each tenant's plan — how its data is isolated from other tenants' (design 0023), over how
//! many hash tags a big tenant is spread (design 0024), and the quotas, request rate and TTL cap it is sold.
//!
//! `[tenants.default]` gives every field to the tenants not listed, and to the fields a listed tenant leaves
//! out; a quota or rate `default` leaves out is the deployment-wide one (`quotas.*`, `server.limits.*`).
//! Credentials are never settings: an `acl` tenant names the environment variable or file its password is in,
//! and the store reads it (as it reads encryption keys). `{tenant}` in `acl_user`, `acl_password_env` and
//! `acl_password_file` stands for the tenant's id, so `[tenants.default] isolation = "acl"` gives every tenant
//! its own Redis user.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{ConfigError, RedisMode, RedisSettings, RedisUrl, TtlTable, duration};

/// Most hash tags one tenant may be spread over.
pub const MAX_SHARDS: u16 = 64;

/// The least byte quota one shard of a sharded tenant may hold: below it, a shard would refuse ordinary entries
/// while the tenant is nearly empty.
const MIN_SHARD_BYTES: u64 = 64 * 1024;

/// Where a secret is read from when it is needed (never kept in settings).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without a trailing newline.
    File(PathBuf),
}

/// How one tenant's data is kept apart from other tenants' (`isolation`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Isolation {
    /// The shared backend; the tenant's hash tag in every key keeps its entries apart (the key builder's word).
    Namespace,
    /// The shared backend, reached as a Redis ACL user that may touch only the tenant's keys, so Redis itself
    /// refuses what the key builder might get wrong.
    Acl {
        /// The Redis user (`{tenant}` already replaced).
        user: String,
        /// Where its password is.
        password: SecretSource,
    },
    /// The tenant's own Redis deployment (or its own logical database on a standalone server).
    Dedicated(Box<RedisSettings>),
}

impl Isolation {
    /// This isolation for `tenant`: `{tenant}` in an `acl` user or password source replaced by its id (in a file
    /// name, percent-encoded: one file, never a climb out of the template's folder); any other isolation as it is.
    fn for_tenant(&self, tenant: &str) -> Isolation {
        match self {
            Isolation::Acl { user, password } => Isolation::Acl {
                user: user.replace("{tenant}", tenant),
                password: match password {
                    SecretSource::Env(e) => SecretSource::Env(e.replace("{tenant}", tenant)),
                    SecretSource::File(f) => {
                        SecretSource::File(file_for(&f.to_string_lossy(), tenant))
                    }
                },
            },
            other => other.clone(),
        }
    }

    /// `namespace`, `acl` or `dedicated`, as written in the settings and shown by `stats` and `/metrics`.
    pub fn name(&self) -> &'static str {
        match self {
            Isolation::Namespace => "namespace",
            Isolation::Acl { .. } => "acl",
            Isolation::Dedicated(_) => "dedicated",
        }
    }
}

/// Everything one tenant is given, with `[tenants.default]` and the deployment-wide settings filled in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantPlan {
    /// How its data is isolated.
    pub isolation: Isolation,
    /// How many hash tags its entries are spread over (1: one, as every tenant before design 0024).
    pub shards: u16,
    /// Bytes of live entries it may hold (0: no limit); `quotas.tenant_bytes` unless its plan says.
    pub tenant_bytes: u64,
    /// Requests per `quotas.shared_window` over every replica (0: no limit); `quotas.shared_requests` unless
    /// its plan says.
    pub shared_requests: u64,
    /// Requests per second to each process (0: no limit); `server.limits.per_process_rate` unless its plan
    /// says.
    pub per_process_rate: u32,
    /// The bucket size above that rate; `server.limits.per_process_burst` unless its plan says.
    pub per_process_burst: u32,
    /// The longest TTL any of its entries gets (`None`: the cache type's own).
    pub max_ttl: Option<Duration>,
}

/// The deployment-wide values a plan falls back on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanBase {
    pub(crate) tenant_bytes: u64,
    pub(crate) shared_requests: u64,
    pub(crate) per_process_rate: u32,
    pub(crate) per_process_burst: u32,
}

/// `[tenants]`: the `default` table and one table per listed tenant, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantTable {
    default: Entry,
    listed: BTreeMap<String, Entry>,
}

/// Every tenant's plan, resolved against the deployment-wide settings ([`crate::Settings::tenant_plans`]).
#[derive(Debug, Clone)]
pub struct TenantPlans {
    /// A tenant not listed gets this (its `isolation` never `dedicated`; an `acl` default's user and password
    /// source hold `{tenant}`, made per tenant by [`TenantPlans::get`]).
    default: TenantPlan,
    listed: BTreeMap<String, TenantPlan>,
}

impl TenantPlans {
    /// The plan of `tenant` (its own table over `[tenants.default]`, or the default for a tenant not listed).
    pub fn get(&self, tenant: &str) -> TenantPlan {
        if let Some(plan) = self.listed.get(tenant) {
            return plan.clone();
        }
        let mut plan = self.default.clone();
        plan.isolation = plan.isolation.for_tenant(tenant);
        plan
    }

    /// The plan of tenants without a table of their own; an `acl` default's user and password source are
    /// templates (`{tenant}` in them), which [`TenantPlans::get`] makes for each tenant.
    pub fn default_plan(&self) -> &TenantPlan {
        &self.default
    }

    /// The tenants with a table of their own, and their plans, in id order.
    pub fn listed(&self) -> impl Iterator<Item = (&str, &TenantPlan)> {
        self.listed.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether every tenant runs on the shared backend under `namespace` isolation with one shard — the
    /// layout of every deployment before plans existed, which needs no routing at all.
    pub fn all_plain(&self) -> bool {
        let plain = |p: &TenantPlan| matches!(p.isolation, Isolation::Namespace) && p.shards == 1;
        plain(&self.default) && self.listed.values().all(plain)
    }
}

/// One `[tenants.<id>]` table as written: every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    isolation: Option<String>,
    shards: Option<u16>,
    tenant_bytes: Option<u64>,
    shared_requests: Option<u64>,
    per_process_rate: Option<u32>,
    per_process_burst: Option<u32>,
    max_ttl: Option<String>,
    acl_user: Option<String>,
    acl_password_env: Option<String>,
    acl_password_file: Option<String>,
    redis: Option<DedicatedRedis>,
}

/// `[tenants.<id>.redis]`: a dedicated tenant's deployment. Fields left out are the shared `[redis]` ones
/// (pools, timeouts, tracking), except the address, which must be given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct DedicatedRedis {
    url: Option<String>,
    url_env: Option<String>,
    mode: Option<RedisMode>,
    nodes: Option<Vec<String>>,
    sentinels: Option<Vec<String>>,
    sentinel_master: Option<String>,
    tls: Option<bool>,
    tls_ca_file: Option<String>,
}

const ISOLATIONS: [(&str, u8); 3] = [("namespace", 0), ("acl", 1), ("dedicated", 2)];

impl<'de> Deserialize<'de> for TenantTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut listed = BTreeMap::<String, Entry>::deserialize(d)?;
        let default = listed.remove("default").unwrap_or_default();
        for (id, _) in listed.iter() {
            if id.is_empty() || id.len() > 1024 || id.chars().any(char::is_control) {
                return Err(D::Error::custom(
                    "tenants.<id>: a tenant id is 1 to 1024 printable characters",
                ));
            }
        }
        Ok(TenantTable { default, listed })
    }
}

impl TenantTable {
    /// The tenants with a table of their own, in id order.
    pub fn listed(&self) -> impl Iterator<Item = &str> {
        self.listed.keys().map(String::as_str)
    }

    /// Resolves every plan over `base` and the shared `redis` settings, checking each field and naming it
    /// `tenants.<id>.<field>`.
    pub(crate) fn resolve(
        &self,
        base: PlanBase,
        redis: &RedisSettings,
    ) -> Result<TenantPlans, ConfigError> {
        if self.default.redis.is_some() {
            return Err(ConfigError::invalid(
                "tenants.default.redis",
                "a dedicated deployment is given tenant by tenant ([tenants.<id>.redis])",
            ));
        }
        let default = self.default.plan("default", None, base, redis)?;
        let mut listed = BTreeMap::new();
        for (id, entry) in &self.listed {
            listed.insert(
                id.clone(),
                entry.plan(id, Some(&self.default), base, redis)?,
            );
        }
        let template = match &default.isolation {
            Isolation::Acl { user, .. } => Some(user.as_str()),
            _ => None,
        };
        check_acl_users(&listed, template, redis)?;
        Ok(TenantPlans { default, listed })
    }
}

impl Entry {
    /// This table over `parent` (`[tenants.default]` for a listed tenant) over `base`. For the default table
    /// itself, an `acl` isolation keeps its `{tenant}` templates (made per tenant by [`TenantPlans::get`]).
    fn plan(
        &self,
        id: &str,
        parent: Option<&Entry>,
        base: PlanBase,
        redis: &RedisSettings,
    ) -> Result<TenantPlan, ConfigError> {
        let key = |field: &str| format!("tenants.{id}.{field}");
        let pick = |own: &Option<String>, parent_field: fn(&Entry) -> &Option<String>| {
            own.clone()
                .or_else(|| parent.and_then(|p| parent_field(p).clone()))
        };
        let shards = self.shards.or(parent.and_then(|p| p.shards)).unwrap_or(1);
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(ConfigError::invalid(
                key("shards"),
                format!("{shards} is outside what it may be: 1 to {MAX_SHARDS}"),
            ));
        }
        let max_ttl = match pick(&self.max_ttl, |e| &e.max_ttl) {
            None => None,
            Some(text) => {
                let ttl =
                    duration::parse(&text).map_err(|e| ConfigError::invalid(key("max_ttl"), e))?;
                if !TtlTable::in_bounds(ttl) {
                    return Err(ConfigError::invalid(
                        key("max_ttl"),
                        "must be between 1ms and 366 days",
                    ));
                }
                Some(ttl)
            }
        };
        let per_process_rate = self
            .per_process_rate
            .or(parent.and_then(|p| p.per_process_rate))
            .unwrap_or(base.per_process_rate);
        let per_process_burst = self
            .per_process_burst
            .or(parent.and_then(|p| p.per_process_burst))
            .unwrap_or(base.per_process_burst);
        if per_process_rate > 0 && per_process_burst == 0 {
            return Err(ConfigError::invalid(
                key("per_process_burst"),
                "must be at least 1 while the tenant's per_process_rate is on",
            ));
        }
        let isolation_name =
            pick(&self.isolation, |e| &e.isolation).unwrap_or_else(|| "namespace".into());
        let which = crate::choice::pick(&isolation_name, &ISOLATIONS)
            .map_err(|e| ConfigError::invalid(key("isolation"), e))?;
        let isolation = match which {
            0 => {
                if self.acl_user.is_some() {
                    return Err(ConfigError::invalid(
                        key("acl_user"),
                        "acl_user belongs to acl isolation; set isolation = \"acl\" for this tenant",
                    ));
                }
                Isolation::Namespace
            }
            1 => {
                let user = pick(&self.acl_user, |e| &e.acl_user)
                    .unwrap_or_else(|| "fernando-{tenant}".to_owned());
                let env = pick(&self.acl_password_env, |e| &e.acl_password_env);
                let file = pick(&self.acl_password_file, |e| &e.acl_password_file);
                let password = match (env, file) {
                    (Some(e), None) => SecretSource::Env(e),
                    (None, Some(f)) => SecretSource::File(PathBuf::from(f)),
                    _ => {
                        return Err(ConfigError::invalid(
                            key("isolation"),
                            "an acl tenant names where its Redis password is: exactly one of acl_password_env and acl_password_file",
                        ));
                    }
                };
                if user.is_empty()
                    || user.len() > 256
                    || user.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(ConfigError::invalid(
                        key("acl_user"),
                        "a Redis user name is 1 to 256 characters without spaces",
                    ));
                }
                let template = Isolation::Acl { user, password };
                match parent {
                    // The default table: made per tenant when one is looked up.
                    None => template,
                    Some(_) => template.for_tenant(id),
                }
            }
            _ => {
                if parent.is_none() {
                    return Err(ConfigError::invalid(
                        "tenants.default.isolation",
                        "a dedicated deployment is given tenant by tenant ([tenants.<id>.redis])",
                    ));
                }
                let Some(own) = &self.redis else {
                    return Err(ConfigError::invalid(
                        key("redis"),
                        "a dedicated tenant needs its deployment: [tenants.<id>.redis] with url or url_env",
                    ));
                };
                Isolation::Dedicated(Box::new(own.settings(id, redis)?))
            }
        };
        if which != 2 && self.redis.is_some() {
            return Err(ConfigError::invalid(
                key("redis"),
                "[tenants.<id>.redis] is the deployment of a dedicated tenant; set isolation = \"dedicated\"",
            ));
        }
        let tenant_bytes = self
            .tenant_bytes
            .or(parent.and_then(|p| p.tenant_bytes))
            .unwrap_or(base.tenant_bytes);
        if shards > 1
            && tenant_bytes > 0
            && tenant_bytes.div_ceil(u64::from(shards)) < MIN_SHARD_BYTES
        {
            return Err(ConfigError::invalid(
                key("tenant_bytes"),
                format!(
                    "{tenant_bytes} bytes over {shards} shards leaves each shard {} bytes (each holds an even share, \
                     design 0024): at least {MIN_SHARD_BYTES} per shard, or fewer shards",
                    tenant_bytes.div_ceil(u64::from(shards))
                ),
            ));
        }
        let plan = TenantPlan {
            isolation,
            shards,
            tenant_bytes,
            shared_requests: self
                .shared_requests
                .or(parent.and_then(|p| p.shared_requests))
                .unwrap_or(base.shared_requests),
            per_process_rate,
            per_process_burst,
            max_ttl,
        };
        Ok(plan)
    }
}

impl DedicatedRedis {
    /// The shared `[redis]` settings with this deployment's address, topology and TLS in place; the password
    /// is the URL's own (from `url_env` for a URL that carries one), never the shared deployment's.
    fn settings(&self, id: &str, shared: &RedisSettings) -> Result<RedisSettings, ConfigError> {
        let key = |field: &str| format!("tenants.{id}.redis.{field}");
        let text = match (&self.url, &self.url_env) {
            (Some(u), None) => u.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                ConfigError::invalid(
                    key("url_env"),
                    format!("the environment variable {var} is not set (or not UTF-8)"),
                )
            })?,
            _ => {
                return Err(ConfigError::invalid(
                    key("url"),
                    "a dedicated deployment is given by exactly one of url and url_env",
                ));
            }
        };
        let url = RedisUrl::parse(&text).map_err(|e| e.rekeyed("redis.url", &key("url")))?;
        let urls =
            |field: &str, list: &Option<Vec<String>>| -> Result<Vec<RedisUrl>, ConfigError> {
                list.iter()
                    .flatten()
                    .map(|u| RedisUrl::parse(u).map_err(|e| e.rekeyed("redis.url", &key(field))))
                    .collect()
            };
        let mut settings = shared.clone();
        settings.url = url;
        settings.mode = self.mode.unwrap_or_default();
        settings.nodes = urls("nodes", &self.nodes)?;
        settings.sentinels = urls("sentinels", &self.sentinels)?;
        if let Some(m) = &self.sentinel_master {
            settings.sentinel_master = m.clone();
        }
        // Never the shared deployment's password: it would be sent to a server that did not issue it.
        settings.password = None;
        settings.tls = self.tls.unwrap_or(false);
        settings.tls_ca_file = self.tls_ca_file.clone();
        settings
            .validate()
            .map_err(|e| e.rekeyed("redis.", &format!("tenants.{id}.redis.")))?;
        Ok(settings)
    }
}

/// A tenant's id as one file name in a `{tenant}` password-file template: `%`, `/` and `\` percent-encoded, so an
/// id never climbs out of the folder the template names (`sub/../b` is the file `sub%2F..%2Fb`).
fn file_for(template: &str, tenant: &str) -> PathBuf {
    let mut name = String::with_capacity(tenant.len());
    for c in tenant.chars() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            '\\' => name.push_str("%5C"),
            c => name.push(c),
        }
    }
    PathBuf::from(template.replace("{tenant}", &name))
}

/// The Redis users `acl` tenants run as never clash: not Redis's own `default` user, not the user the shared
/// connection logs in as, not one user for two tenants (each would get the other's keys and password), and a
/// `[tenants.default]` user names each tenant (`{tenant}` in it, with something around it).
fn check_acl_users(
    listed: &BTreeMap<String, TenantPlan>,
    template: Option<&str>,
    redis: &RedisSettings,
) -> Result<(), ConfigError> {
    // As the client will log in: a user spelt percent-encoded in the URL is the same user (an outside review
    // restricted the store's own user to one tenant's keys through `redis://fernando%2Dsvc:…`).
    let shared = redis.url.user();
    let shared = shared.as_deref();
    let reserved = |user: &str| user == "default" || Some(user) == shared;
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(t) = template {
        let Some((before, after)) = t.split_once("{tenant}") else {
            return Err(ConfigError::invalid(
                "tenants.default.acl_user",
                "names every tenant not listed: it must contain {tenant} (as the default fernando-{tenant} does), or all \
                 of them would share one Redis user",
            ));
        };
        let could_be = |user: &str| {
            user.len() >= before.len() + after.len()
                && user.starts_with(before)
                && user.ends_with(after)
        };
        if (before.is_empty() && after.is_empty())
            || could_be("default")
            || shared.is_some_and(could_be)
        {
            return Err(ConfigError::invalid(
                "tenants.default.acl_user",
                "could name Redis's own default user, or the shared connection's, for some tenant id; put a prefix \
                 such as fernando-{tenant}",
            ));
        }
        for (id, plan) in listed {
            if let Isolation::Acl { user, .. } = &plan.isolation
                && could_be(user)
                && user[before.len()..user.len() - after.len()] != **id
            {
                return Err(ConfigError::invalid(
                    format!("tenants.{id}.acl_user"),
                    "is the default acl_user of another tenant id; give it a name outside tenants.default.acl_user's \
                     pattern",
                ));
            }
        }
    }
    for (id, plan) in listed {
        let Isolation::Acl { user, .. } = &plan.isolation else {
            continue;
        };
        if reserved(user) {
            return Err(ConfigError::invalid(
                format!("tenants.{id}.acl_user"),
                "is Redis's own default user or the shared connection's user: a tenant's user would take it over",
            ));
        }
        if let Some(other) = seen.insert(user.as_str(), id.as_str()) {
            return Err(ConfigError::invalid(
                format!("tenants.{id}.acl_user"),
                format!(
                    "is also tenant {other:?}'s user: one user would hold both tenants' keys and passwords"
                ),
            ));
        }
    }
    Ok(())
}

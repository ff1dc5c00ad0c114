//! Routing by isolation strategy (design 0023): every operation runs on the [`Lane`] of its scope. The global
//! scope and every `namespace` tenant use the shared lane; a `dedicated` tenant its own deployment's lane, made
//! at start (connecting lazily, like every backend); an `acl` tenant the shared deployment reached as its own
//! Redis user, whose connections are opened on the tenant's first operation and closed, least recently used
//! first, past [`OPEN_ACL_TENANTS`] tenants at once. A tenant whose connections cannot be opened (its password
//! unreadable) gets a lane whose every call answers why (`unopened.rs`): its operations degrade, the others'
//! do not.
//!
//! When every tenant runs `namespace` (every deployment before plans existed), the store holds no [`Routes`]
//! and picking a lane is one branch: no map lookup, no lock on the hot path. Nothing above the store knows which
//! strategy a tenant runs; [`Isolations`] only names them, for operators.

mod acl;
mod lane;
mod secret;
mod unopened;

use std::{collections::HashMap, sync::Arc, time::Duration};

use fernando_cache_config::{Isolation, SecretSource, Settings, TenantPlans};
use fernando_cache_keys::{ScopeRef, TenantId};

pub(crate) use self::lane::{Lane, LaneRef, Role};
use super::Store;
use crate::{Backend, BackendError, Cause, StoreError, breaker::Breaker, deadline::Deadlines};

/// Most `acl` tenants whose connections are open at once; past it, the least recently used tenant's close
/// (they open again on its next operation). Each holds at most [`ACL_HOT_CONNECTIONS`] hot connections and
/// [`ACL_POOL`] pooled ones, so the acl tenants of one process hold at most 512 connections to the server.
pub(crate) const OPEN_ACL_TENANTS: u64 = 128;

/// Hot (multiplexed) connections per open `acl` tenant when generations are not tracked: a tenant's traffic is
/// a share of the process's. With tracking (the default) a tenant has one, auto-pipelined: its tracking is
/// keyed to the connection that read the generations (`SwitchUser`, design 0023).
#[cfg(feature = "redis")]
const ACL_HOT_CONNECTIONS: usize = 2;

/// Pooled connections per open `acl` tenant (sweeps scan over the shared connection, so they are rarely used).
#[cfg(feature = "redis")]
const ACL_POOL: usize = 2;

/// How long a tenant whose connections could not be opened (its password unreadable) is answered with that
/// error before trying again: its operations degrade meanwhile, and the log says why once per period.
const RETRY_OPEN_AFTER: Duration = Duration::from_secs(5);

/// Which strategy each tenant runs, for `stats`, `/metrics` and the dashboard: by name (`namespace`, `acl`,
/// `dedicated`), never by what it takes to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Isolations {
    /// The strategy of every tenant without a table of its own (`[tenants.default]`).
    pub default: &'static str,
    /// Each tenant with a table of its own (`[tenants.<id>]`) and its strategy, in id order.
    pub listed: Vec<(String, &'static str)>,
}

impl Isolations {
    /// The strategies `plans` give (`Settings::tenant_plans`): what [`crate::Admin::isolations`] answers, for a
    /// caller without a store.
    pub fn of(plans: &TenantPlans) -> Isolations {
        Isolations {
            default: plans.default_plan().isolation.name(),
            listed: plans
                .listed()
                .map(|(id, p)| (id.to_owned(), p.isolation.name()))
                .collect(),
        }
    }

    /// The strategy `tenant` runs: its own table's, else the default.
    pub fn of_tenant(&self, tenant: &str) -> &'static str {
        self.listed
            .binary_search_by(|(id, _)| id.as_str().cmp(tenant))
            .ok()
            .and_then(|i| self.listed.get(i))
            .map_or(self.default, |(_, isolation)| *isolation)
    }
}

/// How one tenant's operations are routed.
#[derive(Debug)]
enum Route {
    /// The shared lane.
    Shared,
    /// The tenant's own deployment.
    Dedicated(Arc<Lane>),
    /// The shared deployment as the tenant's own Redis user, opened on first use.
    Acl,
}

/// The lanes of the tenants that do not run on the shared one.
pub(crate) struct Routes {
    /// Listed tenants whose route differs from the default's.
    listed: HashMap<String, Route>,
    /// The route of every other tenant: shared, or acl.
    default: Route,
    /// The acl tenants' lanes, when any tenant runs acl.
    acl: Option<AclLanes>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("listed", &self.listed.len())
            .field("default", &self.default)
            .field(
                "open_acl_tenants",
                &self.acl.as_ref().map(|a| a.open.entry_count()),
            )
            .finish()
    }
}

/// The open `acl` tenants' lanes, and what opening another takes.
struct AclLanes {
    open: moka::sync::Cache<String, Arc<Lane>>,
    /// Tenants whose lane could not be opened: a lane answering why, kept [`RETRY_OPEN_AFTER`].
    failed: moka::sync::Cache<String, Arc<Lane>>,
    plans: TenantPlans,
    opener: Opener,
}

/// What opening a tenant's lane takes: the shared deployment's settings (with an acl tenant's small pools and
/// no tracking), the deadlines every lane shares, and the breaker's settings.
struct Opener {
    #[cfg(feature = "redis")]
    redis: fernando_cache_config::RedisSettings,
    #[cfg(feature = "redis")]
    tracked: crate::TrackedKeys,
    deadlines: Arc<Deadlines>,
    breaker_threshold: u32,
    breaker_open_for: Duration,
}

impl Opener {
    fn breaker(&self, tenant: &str) -> Breaker {
        Breaker::new(self.breaker_threshold, self.breaker_open_for).owned_by(tenant)
    }
}

/// A tenant's error: what went wrong with its own connections, naming it.
fn tenant_error(
    tenant: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::Tenant {
        tenant: tenant.to_owned(),
        source: Cause::new(error),
    }
}

impl Routes {
    /// The routes `plans` ask for over the store's `shared` backend; `None` when every tenant runs on the
    /// shared lane. Dedicated deployments are prepared here without being contacted.
    ///
    /// # Errors
    /// [`StoreError::Setup`] naming the tenant whose deployment's settings cannot be used, or an `acl` tenant on
    /// a shared backend that is not Redis (or a build without Redis).
    pub(crate) fn new(
        settings: &Settings,
        plans: &TenantPlans,
        shared: &Backend,
        deadlines: Option<&Arc<Deadlines>>,
    ) -> Result<Option<Routes>, StoreError> {
        let setup = |tenant: &str, why: String| StoreError::Setup {
            source: tenant_error(tenant, BackendError::Other(why)),
        };
        let default_acl = matches!(plans.default_plan().isolation, Isolation::Acl { .. });
        let any_acl = default_acl
            || plans
                .listed()
                .any(|(_, p)| matches!(p.isolation, Isolation::Acl { .. }));
        let any_dedicated = plans
            .listed()
            .any(|(_, p)| matches!(p.isolation, Isolation::Dedicated(_)));
        if !any_acl && !any_dedicated {
            return Ok(None);
        }
        // Every tenant lane is bounded by the same watchdog as the shared one (one thread per store).
        let deadlines = deadlines
            .cloned()
            .unwrap_or_else(|| Deadlines::start(settings.command_timeout));
        let opener = Opener {
            #[cfg(feature = "redis")]
            redis: {
                let mut redis = settings.redis.clone();
                // Tracking stays on when asked for, but not as `BCAST` (its prefixes are not restricted by a
                // user's key patterns, so a user allowed CLIENT TRACKING could watch every key name on the
                // server): the hot connection turns on OPTIN tracking before it becomes the tenant's user,
                // which may not run CLIENT TRACKING at all (design 0023).
                redis.multiplexed_connections =
                    redis.multiplexed_connections.min(ACL_HOT_CONNECTIONS);
                redis.pool_size = redis.pool_size.min(ACL_POOL);
                redis
            },
            #[cfg(feature = "redis")]
            tracked: super::tracked_keys(settings),
            deadlines: deadlines.clone(),
            breaker_threshold: settings.degradation.breaker_failure_threshold,
            breaker_open_for: settings.degradation.breaker_open_for,
        };
        if any_acl && !shared_is_redis(shared) {
            let tenant = plans
                .listed()
                .find(|(_, p)| matches!(p.isolation, Isolation::Acl { .. }))
                .map_or("default", |(id, _)| id);
            return Err(setup(
                tenant,
                format!(
                    "acl isolation runs the tenant as a Redis user of the shared deployment, but the shared \
                     backend is {} (backend = \"redis\" is needed)",
                    shared.storage().kind()
                ),
            ));
        }
        let mut listed = HashMap::new();
        for (id, plan) in plans.listed() {
            let route = match &plan.isolation {
                Isolation::Namespace => Route::Shared,
                Isolation::Acl { .. } => Route::Acl,
                Isolation::Dedicated(redis) => {
                    let backend =
                        dedicated_backend(settings, redis).map_err(|source| StoreError::Setup {
                            source: tenant_error(id, source),
                        })?;
                    Route::Dedicated(Arc::new(Lane::new(
                        backend,
                        Some(deadlines.clone()),
                        opener.breaker(id),
                        Role::Dedicated,
                    )))
                }
                other => {
                    return Err(setup(
                        id,
                        format!("isolation {:?} is not one this store runs", other.name()),
                    ));
                }
            };
            // A listed tenant routed as the default is not kept: one lookup less for nothing.
            if matches!(
                (&route, default_acl),
                (Route::Acl, true) | (Route::Shared, false)
            ) {
                continue;
            }
            listed.insert(id.to_owned(), route);
        }
        Ok(Some(Routes {
            listed,
            default: if default_acl {
                Route::Acl
            } else {
                Route::Shared
            },
            acl: any_acl.then(|| AclLanes {
                open: moka::sync::Cache::builder()
                    .max_capacity(OPEN_ACL_TENANTS)
                    .eviction_policy(moka::policy::EvictionPolicy::lru())
                    .build(),
                failed: moka::sync::Cache::builder()
                    .max_capacity(4096)
                    .time_to_live(RETRY_OPEN_AFTER)
                    .build(),
                plans: plans.clone(),
                opener,
            }),
        }))
    }

    /// The lane of `scope`: the shared one for the global scope and for a tenant that runs on it. An `acl`
    /// tenant whose connections cannot be opened gets a lane answering why; the first time, `last_unavailable`
    /// is told.
    pub(crate) fn lane<'a>(
        &'a self,
        shared: &'a Lane,
        scope: ScopeRef<'_>,
        last_unavailable: &std::sync::Mutex<Option<String>>,
    ) -> LaneRef<'a> {
        let ScopeRef::Tenant(tenant) = scope else {
            return LaneRef::Borrowed(shared);
        };
        match self.listed.get(tenant.as_str()).unwrap_or(&self.default) {
            Route::Shared => LaneRef::Borrowed(shared),
            Route::Dedicated(lane) => LaneRef::Borrowed(lane.as_ref()),
            Route::Acl => self.acl_lane(tenant.as_str(), last_unavailable),
        }
    }

    /// An `acl` tenant's lane: open, or opened now. Two operations that open it at the same moment may both
    /// build one (connections are made on first use, so it costs no round trip); the last kept wins.
    fn acl_lane(
        &self,
        tenant: &str,
        last_unavailable: &std::sync::Mutex<Option<String>>,
    ) -> LaneRef<'_> {
        let failing = |e: BackendError| {
            Arc::new(Lane::new(
                Backend::custom(
                    Arc::new(unopened::Unopened(e.clone())),
                    Some(Arc::new(unopened::Unopened(e)) as Arc<dyn crate::Coordination>),
                ),
                None,
                Breaker::new(1, Duration::from_secs(1)).owned_by(tenant),
                Role::Acl,
            ))
        };
        let Some(acl) = &self.acl else {
            return LaneRef::Held(failing(tenant_error(
                tenant,
                BackendError::Other("no acl connections were prepared".into()),
            )));
        };
        if let Some(lane) = acl.failed.get(tenant) {
            return LaneRef::Held(lane);
        }
        if let Some(lane) = acl.open.get(tenant) {
            if !lane.is_refused() {
                return LaneRef::Held(lane);
            }
            // Redis refused the user's password (rotated, the user disabled or deleted): the lane answers why
            // for a while — no connection is tried meanwhile — and then opens again, reading the password anew.
            acl.open.invalidate(tenant);
            let lane = failing(tenant_error(
                tenant,
                BackendError::Other(format!(
                    "Redis refused its user's credentials; they are read again in {}s",
                    RETRY_OPEN_AFTER.as_secs()
                )),
            ));
            tracing::warn!(
                tenant,
                "Redis refused the tenant's acl credentials; its calls degrade, and its password is read again \
                 in {}s",
                RETRY_OPEN_AFTER.as_secs()
            );
            acl.failed.insert(tenant.to_owned(), lane.clone());
            return LaneRef::Held(lane);
        }
        let plan = acl.plans.get(tenant);
        let opened = match &plan.isolation {
            Isolation::Acl { user, password } => acl.opener.open(tenant, user, password),
            _ => Err(tenant_error(
                tenant,
                BackendError::Other("its plan is not acl isolation".into()),
            )),
        };
        match opened {
            Ok(lane) => {
                let lane = Arc::new(lane);
                acl.open.insert(tenant.to_owned(), lane.clone());
                // The bound holds now, not at the cache's next housekeeping.
                acl.open.run_pending_tasks();
                LaneRef::Held(lane)
            }
            Err(e) => {
                tracing::warn!(
                    tenant,
                    error = %e,
                    "the tenant's Redis user cannot connect; its cache calls degrade until it can"
                );
                *last_unavailable.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                let lane = failing(e);
                acl.failed.insert(tenant.to_owned(), lane.clone());
                LaneRef::Held(lane)
            }
        }
    }
}

impl Opener {
    /// An `acl` tenant's lane: its password read (here, never by the settings), its connections prepared as
    /// `user` without contacting the server.
    fn open(&self, tenant: &str, user: &str, source: &SecretSource) -> Result<Lane, BackendError> {
        acl::check_user(user).map_err(|e| tenant_error(tenant, e))?;
        let password = secret::read(user, source).map_err(|e| tenant_error(tenant, e))?;
        let backend = self
            .connect_as(user, &password)
            .map_err(|e| tenant_error(tenant, e))?;
        Ok(Lane::new(
            backend,
            Some(self.deadlines.clone()),
            self.breaker(tenant),
            Role::Acl,
        ))
    }

    #[cfg(feature = "redis")]
    fn connect_as(&self, user: &str, password: &secret::Password) -> Result<Backend, BackendError> {
        let credentials = Some((user, password.expose()));
        if self.redis.mode == fernando_cache_config::RedisMode::Cluster {
            crate::ClusterBackend::connect_as(&self.redis, &self.tracked, credentials)
                .map(Backend::from)
        } else {
            crate::RedisBackend::connect_as(&self.redis, &self.tracked, credentials)
                .map(Backend::from)
        }
    }

    #[cfg(not(feature = "redis"))]
    fn connect_as(&self, _: &str, _: &secret::Password) -> Result<Backend, BackendError> {
        Err(BackendError::Other(
            "this build of fernando-cache-store has no `redis` feature".into(),
        ))
    }
}

/// Whether the shared backend is a Redis deployment, which an `acl` tenant's user is made on.
fn shared_is_redis(shared: &Backend) -> bool {
    #[cfg(feature = "redis")]
    {
        matches!(shared, Backend::Redis(_) | Backend::Cluster(_))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = shared;
        false
    }
}

/// A `dedicated` tenant's deployment: one server or Sentinel-watched primary, or a cluster, as its `mode` says.
#[cfg(feature = "redis")]
fn dedicated_backend(
    settings: &Settings,
    redis: &fernando_cache_config::RedisSettings,
) -> Result<Backend, BackendError> {
    let tracked = super::tracked_keys(settings);
    if redis.mode == fernando_cache_config::RedisMode::Cluster {
        crate::ClusterBackend::connect(redis, &tracked).map(Backend::from)
    } else {
        crate::RedisBackend::connect(redis, &tracked).map(Backend::from)
    }
}

#[cfg(not(feature = "redis"))]
fn dedicated_backend(
    _: &Settings,
    _: &fernando_cache_config::RedisSettings,
) -> Result<Backend, BackendError> {
    Err(BackendError::Other(
        "a dedicated deployment is Redis, and this build of fernando-cache-store has no `redis` feature".into(),
    ))
}

impl Store {
    /// The lane an operation of `scope` runs on: one branch when every tenant runs on the shared lane. An
    /// `acl` tenant whose connections cannot be opened gets a lane whose every call fails with
    /// [`BackendError::Tenant`], which callers treat as an unavailable backend (a miss, a dropped write, an
    /// error for deletes and invalidations).
    #[inline]
    pub(in crate::store) fn lane(&self, scope: ScopeRef<'_>) -> LaneRef<'_> {
        match &self.inner.routes {
            None => LaneRef::Borrowed(&self.inner.shared),
            Some(routes) => routes.lane(&self.inner.shared, scope, &self.inner.last_unavailable),
        }
    }

    /// The shared lane: the global scope's, every `namespace` tenant's, and where operators' calls go.
    pub(in crate::store) fn shared_lane(&self) -> &Lane {
        &self.inner.shared
    }

    /// The lane of `lane`'s deployment that the store's own user holds: for an `acl` tenant, whose user may
    /// neither scan, announce nor touch keys outside its own, the shared lane (the same deployment); any other
    /// lane itself.
    pub(in crate::store) fn own_users_lane<'l>(&'l self, lane: &'l Lane) -> &'l Lane {
        match lane.role {
            Role::Acl => self.shared_lane(),
            Role::Shared | Role::Dedicated => lane,
        }
    }

    /// Which strategy each tenant runs; public as [`super::Admin::isolations`].
    pub(in crate::store) fn isolations(&self) -> Isolations {
        Isolations::of(self.inner.plans.all())
    }

    /// The strategy `tenant` runs; public as [`super::Admin::isolation`].
    pub(in crate::store) fn isolation_of(&self, tenant: &TenantId) -> &'static str {
        self.inner.plans.all().get(tenant.as_str()).isolation.name()
    }

    /// The Redis user an `acl` tenant runs as and where its password is; public as [`super::Admin::acl_user`].
    pub(in crate::store) fn acl_user(&self, tenant: &TenantId) -> Option<(String, SecretSource)> {
        let plan = self.inner.plans.all().get(tenant.as_str());
        match plan.isolation {
            Isolation::Acl { user, password } => Some((user, password)),
            _ => None,
        }
    }

    /// The `ACL SETUSER` rules of `tenant`'s user; public as [`super::Admin::acl_rules`].
    pub(in crate::store) fn acl_rules(&self, tenant: &TenantId) -> Vec<String> {
        acl::rules(&self.inner.keys, tenant)
    }

    /// Makes (or remakes) `tenant`'s Redis user over the shared deployment; public as
    /// [`super::Admin::apply_acl`].
    pub(in crate::store) async fn apply_acl(
        &self,
        tenant: &TenantId,
        user: &str,
        password: &SecretSource,
    ) -> Result<(), StoreError> {
        let setup = |source: BackendError| StoreError::Setup { source };
        acl::check_user(user).map_err(|e| setup(tenant_error(tenant.as_str(), e)))?;
        let password =
            secret::read(user, password).map_err(|e| setup(tenant_error(tenant.as_str(), e)))?;
        let mut args = vec!["SETUSER".to_owned(), user.to_owned()];
        args.extend(self.acl_rules(tenant));
        // `>password` last: no rule before it resets passwords. Wiped when dropped, like the password.
        let shared = self.shared_lane();
        // Asked of Redis, not read off the URL (which may spell the user percent-encoded, or in a socket URL's
        // query): restricting the store's own user to one tenant's keys would cut every other tenant off.
        let own = self
            .call(shared, shared.backend.acl_whoami())
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "acl whoami",
                source,
            })?;
        if own == user || user == "default" {
            return Err(setup(tenant_error(
                tenant.as_str(),
                BackendError::Other(format!(
                    "the Redis user {user:?} is the one the store itself connects as (or Redis's own default \
                     user); give the tenant a user of its own"
                )),
            )));
        }
        let modifier = secret::Password::new(format!(">{}", password.expose()));
        let done = self
            .call(
                shared,
                shared.backend.set_acl_user(&args, modifier.expose()),
            )
            .await;
        drop(modifier);
        done.map_err(|source| StoreError::Unavailable {
            op: "acl setuser",
            source: scrub(source, password.expose()),
        })
    }
}

/// `error` as it may be shown: were the server ever to repeat the password in a reply, it is blotted out.
fn scrub(error: BackendError, password: &str) -> BackendError {
    let text = error.to_string();
    if password.len() >= 3 && text.contains(password) {
        BackendError::Other(text.replace(password, "***"))
    } else {
        error
    }
}

//! Each tenant's plan as the store applies it (issue 31): its byte quota, its request quota and its TTL cap,
//! looked up per write or request without cloning the plan — and not looked up at all while no plan sets the
//! limit in question, so a deployment without plans pays nothing on its hot path.

use std::{collections::HashMap, time::Duration};

use fernando_cache_config::{TenantPlan, TenantPlans};
use fernando_cache_keys::Scope;

/// What the store enforces of one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes of live entries (0: no limit).
    pub(crate) tenant_bytes: u64,
    /// Requests per `quotas.shared_window` over every replica (0: no limit).
    pub(crate) shared_requests: u64,
    /// The longest TTL an entry gets.
    pub(crate) max_ttl: Option<Duration>,
}

impl Limits {
    fn of(plan: &TenantPlan) -> Limits {
        Limits {
            tenant_bytes: plan.tenant_bytes,
            shared_requests: plan.shared_requests,
            max_ttl: plan.max_ttl,
        }
    }
}

/// Every tenant's plan, resolved from the settings, with the store's limits of each kept apart for the hot path.
#[derive(Debug)]
pub(crate) struct Plans {
    /// The plans as resolved ([`fernando_cache_config::Settings::tenant_plans`]).
    all: TenantPlans,
    /// The limits of tenants without a table of their own.
    default: Limits,
    /// The limits of each listed tenant, by id.
    listed: HashMap<String, Limits>,
    /// Whether any plan sets a byte quota, a request quota, a TTL cap: without one, nothing is looked up.
    any_bytes: bool,
    any_requests: bool,
    any_cap: bool,
}

impl Plans {
    pub(crate) fn new(all: TenantPlans) -> Plans {
        let default = Limits::of(all.default_plan());
        let listed: HashMap<String, Limits> = all
            .listed()
            .map(|(id, plan)| (id.to_owned(), Limits::of(plan)))
            .collect();
        let every = || std::iter::once(&default).chain(listed.values());
        let any_bytes = every().any(|l| l.tenant_bytes > 0);
        let any_requests = every().any(|l| l.shared_requests > 0);
        let any_cap = every().any(|l| l.max_ttl.is_some());
        Plans {
            all,
            default,
            listed,
            any_bytes,
            any_requests,
            any_cap,
        }
    }

    /// The resolved plans.
    pub(crate) fn all(&self) -> &TenantPlans {
        &self.all
    }

    /// The limits of `tenant` (its own plan, or the default).
    pub(crate) fn of(&self, tenant: &str) -> Limits {
        self.listed.get(tenant).copied().unwrap_or(self.default)
    }

    /// The byte quota of a scope's tenant (0: none; the global scope has none).
    pub(crate) fn tenant_bytes(&self, scope: &Scope) -> u64 {
        match scope.tenant() {
            Some(t) if self.any_bytes => self.of(t.as_str()).tenant_bytes,
            _ => 0,
        }
    }

    /// The request quota of a tenant (0: none).
    pub(crate) fn shared_requests(&self, tenant: &str) -> u64 {
        if !self.any_requests {
            return 0;
        }
        self.of(tenant).shared_requests
    }

    /// The TTL cap of a scope's tenant, if its plan has one (the global scope has none).
    pub(crate) fn max_ttl(&self, scope: &Scope) -> Option<Duration> {
        match scope.tenant() {
            Some(t) if self.any_cap => self.of(t.as_str()).max_ttl,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use fernando_cache_config::{Environment, LoadOptions, Settings};
    use fernando_cache_keys::TenantId;

    use super::*;

    fn plans(overrides: &[(&str, &str)]) -> Plans {
        let settings = Settings::load(
            LoadOptions::isolated(Environment::Test).set_all(overrides.iter().copied()),
        )
        .expect("settings");
        Plans::new(settings.tenant_plans().expect("plans"))
    }

    fn scope(t: &str) -> Scope {
        Scope::Tenant(TenantId::new(t).unwrap())
    }

    #[test]
    fn a_listed_tenant_gets_its_own_limits_and_any_other_the_defaults() {
        let p = plans(&[
            ("quotas.tenant_bytes", "1000"),
            ("tenants.gold.tenant_bytes", "5000"),
            ("tenants.gold.shared_requests", "50"),
            ("tenants.gold.max_ttl", "1h"),
        ]);
        assert_eq!(p.tenant_bytes(&scope("gold")), 5000);
        assert_eq!(p.tenant_bytes(&scope("anyone")), 1000);
        assert_eq!(p.tenant_bytes(&Scope::Global), 0);
        assert_eq!(p.shared_requests("gold"), 50);
        assert_eq!(p.shared_requests("anyone"), 0);
        assert_eq!(p.max_ttl(&scope("gold")), Some(Duration::from_secs(3600)));
        assert_eq!(p.max_ttl(&scope("anyone")), None);
    }

    #[test]
    fn without_plans_nothing_is_limited() {
        let p = plans(&[]);
        assert!(!p.any_bytes && !p.any_requests && !p.any_cap);
        assert_eq!(p.tenant_bytes(&scope("a")), 0);
        assert_eq!(p.shared_requests("a"), 0);
        assert_eq!(p.max_ttl(&scope("a")), None);
    }

    #[test]
    fn the_default_table_reaches_every_unlisted_tenant() {
        let p = plans(&[
            ("tenants.default.max_ttl", "10m"),
            ("tenants.default.tenant_bytes", "700"),
            ("tenants.free.tenant_bytes", "100"),
        ]);
        assert_eq!(p.tenant_bytes(&scope("someone")), 700);
        assert_eq!(p.tenant_bytes(&scope("free")), 100);
        // A listed tenant's table sits over the default one: it keeps the default's cap.
        assert_eq!(p.max_ttl(&scope("free")), Some(Duration::from_secs(600)));
    }
}

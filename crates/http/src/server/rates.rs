//! Per-tenant request rates at the edge: a token bucket per tenant (or per client address, [`RateKey`]) in this
//! process at the rate of the tenant's plan, the request quota every replica shares through the store, and the
//! 429s that answer both — held back a moment so a flood costs next to nothing ([`rate_limit`]).

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use fernando_cache_config::TenantPlan;
use fernando_cache_keys::TenantId;
use fernando_cache_store::{RequestQuota, Store};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use super::error;

/// Who a request's rate is counted against when that is not its tenant: in `proxy` with one fixed tenant every
/// client would share one bucket, and one client could spend everyone's — so each client address has its own.
/// Put in a request's extensions before [`rate_limit`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateKey(std::net::IpAddr);

impl RateKey {
    /// The bucket of a client address: an IPv4 address as it is (also when written IPv4-mapped), an IPv6
    /// address by its /64 — the block one subscriber gets, whose addresses it can rotate at will.
    pub fn of(addr: std::net::IpAddr) -> RateKey {
        use std::net::{IpAddr, Ipv6Addr};
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => RateKey(IpAddr::V4(v4)),
                None => RateKey(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !u128::from(u64::MAX),
                ))),
            },
            v4 => RateKey(v4),
        }
    }
}

/// What a bucket is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Tenant(TenantId),
    Client(std::net::IpAddr),
}

/// The most buckets one limiter keeps at once: past it, buckets back to full are dropped, and a new key that
/// still finds no room is refused — invented tenants or addresses cannot grow the process's memory without
/// bound. There is one limiter for the tenants without a plan of their own and one per listed tenant (a number
/// the settings fix), so the whole is bounded too.
const MAX_BUCKETS: usize = 10_000;

/// Token buckets of one rate and burst, one per tenant (or client) counted against them.
type Limiter = DefaultKeyedRateLimiter<Bucket>;

/// Per-tenant request rates — a token bucket per tenant (or per client, see [`RateKey`]) in this process (GCRA,
/// `governor`), at the rate and burst of the tenant's plan (`[tenants.<id>] per_process_rate`, else
/// `[tenants.default]`, else `server.limits.per_process_rate`) — and the request quota per window that every
/// replica shares through the store (the plan's `shared_requests`). The state of [`rate_limit`].
pub struct TenantRates {
    /// The buckets of tenants without a plan of their own, and of their clients (`None`: no rate).
    default: Option<Limiter>,
    /// Each listed tenant's buckets at its own plan's rate (`None`: no rate for it).
    listed: HashMap<String, Option<Limiter>>,
    store: Store,
    /// Refusals being held back ([`REFUSAL_DELAY`]); past [`MAX_HELD_REFUSALS`] a refusal is answered at once.
    held: tokio::sync::Semaphore,
}

/// How long a request over its rate waits for its 429. A client that waits for each answer — the usual flood,
/// and every well-behaved client — then sends a few refused requests a second instead of thousands: each
/// refusal costs the process (and the other tenants on its cores) next to nothing. Measured by
/// `cargo xtask bench http` (section 1, docs/benchmarks.md).
const REFUSAL_DELAY: Duration = Duration::from_millis(100);

/// The most refusals held back at once: beyond it (many connections, each sending without waiting) they are
/// answered at once, so holding them never grows without bound.
const MAX_HELD_REFUSALS: usize = 1_024;

/// The buckets of a plan's rate and burst (none when the rate is 0).
fn limiter(plan: &TenantPlan) -> Option<Limiter> {
    NonZeroU32::new(plan.per_process_rate).map(|rate| {
        let burst = NonZeroU32::new(plan.per_process_burst).unwrap_or(rate);
        RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
    })
}

impl TenantRates {
    /// Buckets at each tenant's plan's `per_process_rate` with bursts of its `per_process_burst` (no bucket for
    /// a plan whose rate is 0), as the store's plans say ([`fernando_cache_store::Admin::plans`]), and the
    /// request quota counted in `store`.
    pub fn new(store: Store) -> TenantRates {
        let plans = store.admin().plans();
        let default = limiter(plans.default_plan());
        let listed = plans
            .listed()
            .map(|(id, plan)| (id.to_owned(), limiter(plan)))
            .collect();
        TenantRates {
            default,
            listed,
            store,
            held: tokio::sync::Semaphore::new(MAX_HELD_REFUSALS),
        }
    }

    /// Holds a refusal back for [`REFUSAL_DELAY`], while fewer than [`MAX_HELD_REFUSALS`] are.
    async fn hold_refusal(&self) {
        if let Ok(_permit) = self.held.try_acquire() {
            tokio::time::sleep(REFUSAL_DELAY).await;
        }
    }

    /// Takes a token from `bucket`'s bucket at `tenant`'s rate, or says how long until one is there.
    fn take(&self, tenant: &TenantId, bucket: &Bucket) -> Result<(), Duration> {
        match self.listed.get(tenant.as_str()) {
            Some(own) => Self::take_from(own, bucket),
            None => Self::take_from(&self.default, bucket),
        }
    }

    /// [`TenantRates::take`] for a request without a tenant: the default plan's rate.
    fn take_untenanted(&self, bucket: &Bucket) -> Result<(), Duration> {
        Self::take_from(&self.default, bucket)
    }

    fn take_from(limiter: &Option<Limiter>, bucket: &Bucket) -> Result<(), Duration> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if limiter.len() >= MAX_BUCKETS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            if limiter.len() >= MAX_BUCKETS {
                return Err(Duration::from_secs(1));
            }
        }
        limiter.check_key(bucket).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }
}

/// An [`error`] with 429 Too Many Requests and `Retry-After` (whole seconds, at least 1).
pub fn too_many(message: &str, wait: Duration) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, message);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
    r
}

/// Answers 429 with `Retry-After` when the request's tenant (put in the extensions by authentication) is over its
/// rate or its request quota — after a short delay (100 ms, while few refusals wait), so that a flood costs next
/// to nothing; other tenants are unaffected. A request without a tenant passes, unless it names its client (a
/// proxy's untenanted pass-through), which is limited at the default plan's rate.
pub async fn rate_limit(
    State(rates): State<Arc<TenantRates>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(tenant) = req.extensions().get::<TenantId>() else {
        // No tenant, but a client (a proxy's untenanted pass-through): limited at the default plan's rate.
        if let Some(RateKey(client)) = req.extensions().get::<RateKey>()
            && let Err(wait) = rates.take_untenanted(&Bucket::Client(*client))
        {
            rates.hold_refusal().await;
            return too_many("this client is over its request rate; retry later", wait);
        }
        return next.run(req).await;
    };
    tracing::Span::current().record("tenant", tenant.as_str());
    let bucket = match req.extensions().get::<RateKey>() {
        Some(RateKey(client)) => Bucket::Client(*client),
        None => Bucket::Tenant(tenant.clone()),
    };
    if let Err(wait) = rates.take(tenant, &bucket) {
        let message = match bucket {
            Bucket::Client(_) => "this client is over its request rate; retry later",
            Bucket::Tenant(_) => "this tenant is over its request rate; retry later",
        };
        rates.hold_refusal().await;
        return too_many(message, wait);
    }
    if let RequestQuota::Refused { retry_after } =
        rates.store.coordinator().count_request(tenant).await
    {
        rates.hold_refusal().await;
        return too_many(
            "this tenant has used its request quota for this window; retry later",
            retry_after,
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_subscriber_is_one_rate_bucket() {
        let key = |a: &str| RateKey::of(a.parse().unwrap());
        assert_eq!(key("2001:db8:0:0:1::1"), key("2001:db8::ffff:2:3:4"));
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8:0:2::1"));
        assert_eq!(key("::ffff:192.0.2.10"), key("192.0.2.10"));
        assert_ne!(key("192.0.2.10"), key("192.0.2.11"));
    }
}

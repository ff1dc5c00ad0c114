//! `#[cached]` for async functions and methods, the seed's presets, and `#[invalidates]` for functions that
//! change data.
//!
//! This crate owns only code generation. The generated code reaches the runtime through
//! `fernando_cache_store::__private` (found with `proc-macro-crate`, so a renamed dependency works), so users
//! depend on `fernando-cache-store` beside this crate. It must not depend on any fernando-cache crate: a
//! proc-macro that linked the runtime would pin its version twice.
//!
//! ```
//! use fernando_cache_decorators::{cached, invalidates};
//! use fernando_cache_store::{Store, config::{Environment, Settings}};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Summary { invoices: u32 }
//!
//! /// Cached for ten minutes per tenant and period; an `Err` is never cached.
//! #[cached(cache_type = "billing", ttl = "10m")]
//! async fn billing_summary(tenant_id: &str, period: &str) -> Result<Summary, std::io::Error> {
//!     Ok(Summary { invoices: 3 })
//! }
//!
//! /// After it succeeds, the tenant's billing entries are invisible (lazy invalidation).
//! #[invalidates(cache_type = "billing")]
//! async fn add_invoice(tenant_id: &str) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Without an installed store the function simply runs.
//! assert_eq!(billing_summary("acme", "2026-11").await?, Summary { invoices: 3 });
//! fernando_cache_store::install(&Store::from_settings(&Settings::embedded(Environment::Test)?)?);
//! assert_eq!(billing_summary("acme", "2026-11").await?, Summary { invoices: 3 }); // computed, stored
//! assert_eq!(billing_summary("acme", "2026-11").await?, Summary { invoices: 3 }); // from the cache
//! add_invoice("acme").await?;
//! # Ok(()) }
//! ```
//!
//! # Options of `#[cached]`
//! | option | meaning |
//! |---|---|
//! | `cache_type = "billing"` | the cache type (built-in or configured); default `api_response` |
//! | `ttl = "10m"` | the entries' TTL; default the cache type's |
//! | `tenant = <expr>` | the tenant (`&str`, `String`, `TenantId` or `Scope`); default an argument named `tenant_id` or `tenant` |
//! | `global` | shared reference data outside every tenant (on purpose only) |
//! | `key = "user:{user_id}"` | an explicit key template over the arguments; default a SHA-256 digest of the arguments |
//! | `skip(conn, pool)` | arguments left out of the derived key (`self` and `_` arguments always are) |
//! | `store = <expr>` | the store to use (`Store`, `&Store`, `Arc<Store>`, `Option<…>`); default the one installed with `fernando_cache_store::install` |
//! | `version = 2` | changes every key of the function (bump it when the result's meaning changes) |
//! | `cache_none` | cache `None` results too (`Option` functions) |
//! | `name = "billing::summary"` | the path in derived keys, instead of `module_path!()::fn_name` |
//! | `tag = <expr>` | a tag for the entry (repeatable; any `Display` value over the arguments, e.g. `format!("customer:{customer}")`, evaluated only when the function runs for the cache, never on a hit): `Store::invalidate` of a `Target::tag` or `#[invalidates(tag = …)]` hides every entry with it |
//! | `crate = path` | the runtime crate, when `proc-macro-crate` cannot find it |
//!
//! Derived keys are `{module.path.fn}/v{version}/{sha256 of the arguments}` in the tenant's namespace. The digest is
//! stable across processes and builds (see `fernando_cache_keys::ArgsHasher`); methods also hash their `Self`
//! type's name, as the compiler prints it.
//!
//! # Semantics
//! `Result` → only `Ok` is cached; `Option` → `None` is not cached unless `cache_none`; concurrent misses on one
//! key compute once (an error is shared with the waiters when its type is `Clone`; otherwise each waiter runs
//! the function itself); with no store installed, an invalid tenant, or Redis down, the function simply runs.

mod expand;
mod options;

use proc_macro::TokenStream;
use syn::{ItemFn, parse_macro_input};

use crate::{
    expand::Preset,
    options::{CachedOptions, InvalidatesOptions},
};

fn cached_with(attr: TokenStream, item: TokenStream, preset: &Preset) -> TokenStream {
    let mut opts = CachedOptions::default();
    let parser = syn::meta::parser(|meta| opts.parse_one(meta));
    parse_macro_input!(attr with parser);
    let func = parse_macro_input!(item as ItemFn);
    expand::cached(opts, func, preset)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Caches an `async fn`'s result in the tenant's namespace. See the [crate documentation](crate) for the
/// options and semantics.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cached",
            cache_type: "api_response",
            tenant_only: false,
        },
    )
}

/// The seed's `@cache_api_response`: `#[cached]` with cache type `api_response` (5 minutes in production).
#[proc_macro_attribute]
pub fn cache_api_response(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_api_response",
            cache_type: "api_response",
            tenant_only: false,
        },
    )
}

/// The seed's `@cache_business_data`: `#[cached]` with cache type `dashboard` (business computations).
#[proc_macro_attribute]
pub fn cache_business_data(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_business_data",
            cache_type: "dashboard",
            tenant_only: false,
        },
    )
}

/// The seed's `@cache_database_query`: `#[cached]` with cache type `reference_data` (query results).
#[proc_macro_attribute]
pub fn cache_database_query(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_database_query",
            cache_type: "reference_data",
            tenant_only: false,
        },
    )
}

/// The seed's `@cache_with_tenant_isolation`: `#[cached]` that refuses `global`, so every entry is one tenant's.
#[proc_macro_attribute]
pub fn cache_with_tenant_isolation(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_with_tenant_isolation",
            cache_type: "api_response",
            tenant_only: true,
        },
    )
}

/// The seed's `cache_user_dashboard_data()`: tenant-isolated `#[cached]` with cache type `dashboard`.
#[proc_macro_attribute]
pub fn cache_user_dashboard_data(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_user_dashboard_data",
            cache_type: "dashboard",
            tenant_only: true,
        },
    )
}

/// The seed's `cache_billing_summary()`: tenant-isolated `#[cached]` with cache type `billing`.
#[proc_macro_attribute]
pub fn cache_billing_summary(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached_with(
        attr,
        item,
        &Preset {
            attr: "cache_billing_summary",
            cache_type: "billing",
            tenant_only: true,
        },
    )
}

/// Invalidates cache entries after an `async fn` that changes data returns (for `Result`, only on `Ok`).
///
/// Options: `tag = <expr>` (repeatable: invalidates these tags of the scope instead of cache types),
/// `cache_type = "…"` (repeatable; none means every type of the scope), `tenant = <expr>` or an
/// argument named `tenant_id` / `tenant`, or `global`; `strategy = "lazy" | "eager" | "hybrid"` (default lazy:
/// O(1), immediately invisible); `store = <expr>`; `crate = path`. A failed invalidation is logged, never turned
/// into an error of the function.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut opts = InvalidatesOptions::default();
    let parser = syn::meta::parser(|meta| opts.parse_one(meta));
    parse_macro_input!(attr with parser);
    let func = parse_macro_input!(item as ItemFn);
    expand::invalidates(opts, func)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

//! The runtime of the `#[cached]` and `#[invalidates]` attributes (crate `fernando-cache-decorators`). Code the
//! macros generate reaches the store only through this module; it is not an API for people, and it may change
//! in any release together with the macros.

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    marker::PhantomData,
    sync::{Arc, OnceLock},
    time::Duration,
};

use fernando_cache_config::{CacheType, TtlTable};
use fernando_cache_keys::{ArgsError, ArgsHasher, KeyError, Scope, TenantId, layout};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    InvalidationStrategy, Store, StoreError, Target,
    flight::Shared,
    store::{ComputePolicy, EntryTags, Failure},
};

pub use std::{
    any::type_name, convert::Infallible, format, option::Option, result::Result, string::String,
    string::ToString, vec, vec::Vec,
};

/// One annotated function: where its keys live and how long its entries last.
#[derive(Debug)]
pub struct Site {
    path: &'static str,
    cache_type: &'static str,
    ttl_ms: u64,
    version: u32,
    resolved: OnceLock<Result<CacheType, String>>,
    /// `{path with '.'}/v{version}/` and the hasher seeded with path and version, built once.
    prepared: OnceLock<(String, ArgsHasher)>,
}

impl Site {
    /// `ttl_ms == 0` means the cache type's TTL. Evaluated in the `static` the macro generates, so a TTL out
    /// of bounds fails the build.
    pub const fn new(
        path: &'static str,
        cache_type: &'static str,
        ttl_ms: u64,
        version: u32,
    ) -> Site {
        assert!(
            ttl_ms == 0 || TtlTable::in_bounds(Duration::from_millis(ttl_ms)),
            "#[cached]: a TTL must be between 1ms and 366 days (TtlTable::MIN_TTL..=MAX_TTL)"
        );
        Site {
            path,
            cache_type,
            ttl_ms,
            version,
            resolved: OnceLock::new(),
            prepared: OnceLock::new(),
        }
    }

    fn cache_type(&self) -> Result<&CacheType, CallError> {
        self.resolved
            .get_or_init(|| CacheType::new(self.cache_type).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| CallError(e.clone()))
    }

    fn ttl(&self) -> Option<Duration> {
        (self.ttl_ms > 0).then(|| Duration::from_millis(self.ttl_ms))
    }

    fn prepared(&self) -> &(String, ArgsHasher) {
        self.prepared.get_or_init(|| {
            let mut h = ArgsHasher::new(self.path);
            h.domain(&self.version.to_string());
            let prefix = layout::derived_prefix(self.path, self.version);
            (prefix, h)
        })
    }

    /// A hasher for a derived key, seeded with the function's path and version.
    pub fn hasher(&self) -> ArgsHasher {
        self.prepared().1.clone()
    }

    /// The derived key: `{path with '.' for '::'}/v{version}/{128-bit digest in hex}`, built in one buffer.
    pub fn derived_key(&self, hasher: ArgsHasher) -> String {
        let prefix = &self.prepared().0;
        let mut key = String::with_capacity(prefix.len() + 32);
        key.push_str(prefix);
        hasher.finish_short_hex_into(&mut key);
        key
    }

    /// A key from the function's template: `v{version}/{rendered}` when a version is set.
    pub fn templated_key(&self, rendered: String) -> String {
        layout::templated_key(self.version, rendered)
    }
}

/// Why a call runs uncached although a store is installed.
#[derive(Debug)]
pub struct CallError(String);

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<KeyError> for CallError {
    fn from(e: KeyError) -> Self {
        CallError(e.to_string())
    }
}

impl From<ArgsError> for CallError {
    fn from(e: ArgsError) -> Self {
        CallError(e.to_string())
    }
}

/// The store a call uses: the installed one ([`crate::install`]), unless the attribute names another.
pub fn installed() -> Option<Store> {
    crate::installed()
}

/// What `store = <expr>` may evaluate to.
pub trait StoreArg {
    /// The store, if any.
    fn as_store(&self) -> Option<&Store>;
}

impl StoreArg for Store {
    fn as_store(&self) -> Option<&Store> {
        Some(self)
    }
}

impl StoreArg for Arc<Store> {
    fn as_store(&self) -> Option<&Store> {
        Some(Arc::as_ref(self))
    }
}

impl<T: StoreArg> StoreArg for Option<T> {
    fn as_store(&self) -> Option<&Store> {
        self.as_ref().and_then(StoreArg::as_store)
    }
}

impl<T: StoreArg + ?Sized> StoreArg for &T {
    fn as_store(&self) -> Option<&Store> {
        (**self).as_store()
    }
}

/// Evaluates a `store = <expr>` option (a clone: the expression may be a temporary, or the body may take it).
pub fn store_of<T: StoreArg + ?Sized>(s: &T) -> Option<Store> {
    s.as_store().cloned()
}

/// `store = <argument>` of `#[cached]` for an argument that is a shared reference: borrowed for the call, so a
/// hit touches no reference count (a clone is an atomic increment and decrement on a line all cores share).
pub fn store_ref<T: StoreArg + ?Sized>(s: &T) -> Option<Cow<'_, Store>> {
    s.as_store().map(Cow::Borrowed)
}

/// Any other store of a `#[cached]` call, as [`run`] takes it.
pub fn owned_store(store: Option<Store>) -> Option<Cow<'static, Store>> {
    store.map(Cow::Owned)
}

/// What `tenant = <expr>` may evaluate to.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a tenant",
    label = "expected a tenant id (`&str`, `String`, `TenantId` or `Scope`)"
)]
pub trait TenantArg {
    /// The scope the entries live in.
    ///
    /// # Errors
    /// When the id is not a valid tenant id.
    fn to_scope(&self) -> Result<Scope, KeyError>;
}

impl TenantArg for str {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        TenantId::new(self).map(Scope::Tenant)
    }
}

impl TenantArg for String {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        self.as_str().to_scope()
    }
}

impl TenantArg for Cow<'_, str> {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        self.as_ref().to_scope()
    }
}

impl TenantArg for Arc<str> {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        self.as_ref().to_scope()
    }
}

impl TenantArg for TenantId {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        Ok(Scope::Tenant(self.clone()))
    }
}

impl TenantArg for Scope {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        Ok(self.clone())
    }
}

impl<T: TenantArg + ?Sized> TenantArg for &T {
    fn to_scope(&self) -> Result<Scope, KeyError> {
        (**self).to_scope()
    }
}

/// Evaluates a `tenant = <expr>` option.
///
/// # Errors
/// When the id is not a valid tenant id.
pub fn scope_of<T: TenantArg + ?Sized>(t: &T) -> Result<Scope, CallError> {
    Ok(t.to_scope()?)
}

/// The explicitly global scope (`global` option).
///
/// # Errors
/// Never; shaped like [`scope_of`].
pub fn global_scope() -> Result<Scope, CallError> {
    Ok(Scope::Global)
}

/// An argument that is part of a derived key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is part of the derived cache key",
    note = "derive `Serialize` for it, or leave the argument out of the key with `skip(...)`"
)]
pub trait KeyArg {
    /// Feeds the argument into the key's digest.
    ///
    /// # Errors
    /// When its `Serialize` implementation fails.
    fn hash_into(&self, name: &str, hasher: &mut ArgsHasher) -> Result<(), ArgsError>;
}

impl<T: Serialize + ?Sized> KeyArg for T {
    fn hash_into(&self, name: &str, hasher: &mut ArgsHasher) -> Result<(), ArgsError> {
        hasher.arg(name, self)
    }
}

/// Adds one argument to a derived key.
///
/// # Errors
/// When its `Serialize` implementation fails.
pub fn key_arg<T: KeyArg + ?Sized>(
    hasher: &mut ArgsHasher,
    name: &str,
    value: &T,
) -> Result<(), CallError> {
    Ok(value.hash_into(name, hasher)?)
}

/// A cached function's value type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`",
    label = "the value this function returns is stored in the cache"
)]
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// The parts of a `Result`, reached through aliases such as `io::Result<T>`.
pub trait ResultParts {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
}

impl<T, E> ResultParts for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// Compile-time check that a return type can be cached; the macro spans it at the return type.
pub const fn assert_cache_value<T: CacheValue>() {}

/// How a function's errors reach concurrent callers of the same key.
pub struct Sharing<E> {
    share: fn(&E) -> Option<Shared>,
    unshare: fn(&Shared) -> Option<E>,
}

impl<E> fmt::Debug for Sharing<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sharing").finish_non_exhaustive()
    }
}

/// Chooses [`Sharing`] for an error type: copies for `Clone` errors, none otherwise (then each waiting caller
/// runs the function itself). Call as `(&&ErrorSharing::<E>::new()).sharing()`.
pub struct ErrorSharing<E>(PhantomData<fn() -> E>);

impl<E> ErrorSharing<E> {
    /// The selector.
    pub const fn new() -> Self {
        ErrorSharing(PhantomData)
    }
}

impl<E> Default for ErrorSharing<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Selected when the error type is `Clone`.
pub trait ShareByClone<E> {
    /// Copies for every waiter.
    fn sharing(&self) -> Sharing<E>;
}

impl<E: Clone + Send + Sync + 'static> ShareByClone<E> for &ErrorSharing<E> {
    fn sharing(&self) -> Sharing<E> {
        Sharing {
            share: |e| Some(Arc::new(e.clone()) as Shared),
            unshare: |s| s.downcast_ref::<E>().cloned(),
        }
    }
}

/// Selected otherwise.
pub trait ShareNot<E> {
    /// No copies: each waiter computes for itself.
    fn sharing(&self) -> Sharing<E>;
}

impl<E> ShareNot<E> for ErrorSharing<E> {
    fn sharing(&self) -> Sharing<E> {
        Sharing {
            share: |_| None,
            unshare: |_| None,
        }
    }
}

/// `Some` values are cached, `None` is not.
pub fn is_some<T>(v: &Option<T>) -> bool {
    v.is_some()
}

/// Every value is cached.
pub fn always<T>(_: &T) -> bool {
    true
}

/// One call's scope and key, as the generated code derives them.
pub type Call = (Scope, String);

/// Runs a function whose result is a `Result`: `Ok` is cached, `Err` is not.
///
/// `body(tagged)` gives the function's tags and its future. The tags are evaluated only when `tagged`: when the
/// body is about to run for the cache (a miss), never on a hit and never when the function runs uncached.
pub async fn run<T, E, B, Fut>(
    store: Option<Cow<'_, Store>>,
    call: Option<Result<Call, CallError>>,
    site: &'static Site,
    sharing: Sharing<E>,
    should_cache: fn(&T) -> bool,
    body: B,
) -> Result<T, E>
where
    T: CacheValue,
    B: FnOnce(bool) -> (Vec<String>, Fut),
    Fut: Future<Output = Result<T, E>>,
{
    let (store, (scope, key)) = match (store, call) {
        (Some(store), Some(Ok(call))) => (store, call),
        (Some(_), Some(Err(e))) => {
            tracing::warn!(function = site.path, error = %e, "call not cached");
            return uncached(body).await;
        }
        _ => return uncached(body).await,
    };
    let cache_type = match site.cache_type() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(function = site.path, error = %e, "call not cached");
            return uncached(body).await;
        }
    };
    let tags = OnceLock::new();
    let policy = ComputePolicy {
        tags: EntryTags::Computed(&tags),
        ttl: site.ttl(),
        should_cache,
        share_error: sharing.share,
        unshare_error: sharing.unshare,
        // The function's own error type cannot say "timed out": no hard timeout here (fail-safe on error
        // still applies).
        hard_timeout: false,
        is_soft: |_| false,
        refresh_ahead: false,
    };
    let mut slot = Some(body);
    let outcome = store
        .compute_with(scope, cache_type, &key, &policy, |_| {
            let (named, fut) = (slot.take().expect("the body is taken once"))(true);
            let _ = tags.set(named);
            fut
        })
        .await;
    match outcome {
        Ok((served, _)) => Ok(served.value),
        Err(Failure::Compute(e)) => Err(e),
        Err(failure @ (Failure::Store(_) | Failure::TimedOut(_))) => {
            if let Failure::Store(e) = failure {
                tracing::warn!(function = site.path, error = %e, "call not cached");
            }
            match slot.take() {
                Some(body) => uncached(body).await,
                // Unreachable by the contract of `compute_with` (store failures come before the
                // computation); report instead of guessing a value.
                None => unreachable!("the store refused a call after running its body"),
            }
        }
    }
}

/// The body's future for a call that runs without the cache: its tags are not evaluated.
fn uncached<B, Fut>(body: B) -> Fut
where
    B: FnOnce(bool) -> (Vec<String>, Fut),
{
    body(false).1
}

/// Runs a function whose result is not a `Result`.
pub async fn run_infallible<T, B, Fut>(
    store: Option<Cow<'_, Store>>,
    call: Option<Result<Call, CallError>>,
    site: &'static Site,
    should_cache: fn(&T) -> bool,
    body: B,
) -> T
where
    T: CacheValue,
    B: FnOnce(bool) -> (Vec<String>, Fut),
    Fut: Future<Output = T>,
{
    let sharing = Sharing::<Infallible> {
        share: |_| None,
        unshare: |_| None,
    };
    let body = move |tagged: bool| {
        let (tags, fut) = body(tagged);
        (tags, async move { Ok::<T, Infallible>(fut.await) })
    };
    match run(store, call, site, sharing, should_cache, body).await {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// Whether an `#[invalidates]` function's result means the data changed.
pub trait Outcome {
    /// `false` for an `Err`.
    fn succeeded(&self) -> bool;
}

impl<T, E> Outcome for Result<T, E> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

/// Results that are not a `Result` always count as a change.
pub fn succeeded_always<T>(_: &T) -> bool {
    true
}

/// Invalidates tags, else cache types (or the whole scope when both are empty) after an `#[invalidates]`
/// function.
pub async fn invalidate(
    store: Option<Store>,
    scope: Result<Scope, CallError>,
    types: &[&'static str],
    tags: &[String],
    strategy: &'static str,
    function: &'static str,
) {
    let Some(store) = store else { return };
    let result = async {
        let scope = scope?;
        let strategy: InvalidationStrategy = strategy.parse().map_err(CallError)?;
        for tag in tags {
            store
                .invalidate(Target::tag(&scope, tag), strategy)
                .await
                .map_err(store_err)?;
        }
        if types.is_empty() && tags.is_empty() {
            store
                .invalidate(Target::entries(&scope, None), strategy)
                .await
                .map_err(store_err)?;
        }
        for t in types {
            let t = CacheType::new(*t).map_err(|e| CallError(e.to_string()))?;
            store
                .invalidate(Target::entries(&scope, &t), strategy)
                .await
                .map_err(store_err)?;
        }
        Ok::<(), CallError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(function, error = %e, "invalidation after the call failed");
    }
}

fn store_err(e: StoreError) -> CallError {
    CallError(e.to_string())
}

//! The process-wide default store: the one `#[cached]` and `#[invalidates]` functions use when they name none
//! (`store = …`). [`install`] sets it, [`uninstall`] removes it, [`installed`] reads it; the macros' runtime
//! (`__private`) reads it through [`installed`] on every call, so a read is one atomic load.

use std::sync::Arc;

use crate::Store;

/// The installed store; empty until [`install`].
static INSTALLED: arc_swap::ArcSwapOption<Store> = arc_swap::ArcSwapOption::const_empty();

/// Installs `store` (a clone: it shares the original's connections, metrics and in-flight computations) as
/// the process-wide default of `#[cached]` and `#[invalidates]` functions that name no store, and returns
/// the store installed before, if any. Until a store is installed, such functions simply run.
///
/// ```
/// use fernando_cache_store::{Store, config::{Environment, Settings}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
/// assert!(fernando_cache_store::install(&store).is_none());
/// assert!(fernando_cache_store::installed().is_some());
/// assert!(fernando_cache_store::uninstall().is_some());
/// # Ok(()) }
/// ```
pub fn install(store: &Store) -> Option<Store> {
    INSTALLED
        .swap(Some(Arc::new(store.clone())))
        .map(|s| Store::clone(&s))
}

/// Removes the installed store: annotated functions that name no store then simply run. Returns the store
/// that was installed, if any.
pub fn uninstall() -> Option<Store> {
    INSTALLED.swap(None).map(|s| Store::clone(&s))
}

/// The installed store (a clone), if any.
pub fn installed() -> Option<Store> {
    INSTALLED.load().as_deref().cloned()
}

//! The generated code keeps the function's meaning: `?` and early `return`, generics, `impl Trait` and `mut`
//! arguments, key templates with format specs, and explicit stores of every accepted shape.

use std::{fmt::Display, sync::Arc};

use fernando_cache_decorators::cached;
use fernando_cache_store::Store;

use crate::support::{Calls, entry_keys, redis_store};

#[derive(Debug, PartialEq)]
enum AppError {
    Parse(String),
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e.to_string())
    }
}

#[cached(store = store, cache_type = "dashboard")]
async fn parse_sum(store: &Store, tenant_id: &str, input: &str) -> Result<i64, AppError> {
    if input.is_empty() {
        return Ok(0);
    }
    let mut total = 0;
    for part in input.split(',') {
        total += part.trim().parse::<i64>()?;
    }
    Ok(total)
}

#[tokio::test]
async fn question_mark_and_early_return_keep_their_meaning() {
    let (_server, store) = redis_store();
    assert_eq!(parse_sum(&store, "acme", "").await, Ok(0));
    assert_eq!(parse_sum(&store, "acme", "1, 2, 3").await, Ok(6));
    assert_eq!(parse_sum(&store, "acme", "1, 2, 3").await, Ok(6));
    assert!(matches!(
        parse_sum(&store, "acme", "1, x").await,
        Err(AppError::Parse(_))
    ));
}

static GENERIC_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "dashboard", key = "label:{id:>04}:{tag}")]
async fn label<T: Display + Send + Sync>(
    store: Arc<Store>,
    tenant_id: &str,
    id: u32,
    tag: impl Display + Send,
    mut extra: T,
) -> String {
    GENERIC_CALLS.hit();
    let _ = &mut extra;
    format!("{id}-{tag}-{extra}")
}

#[tokio::test]
async fn generics_impl_trait_mut_arguments_and_templates() {
    let (server, store) = redis_store();
    let store = Arc::new(store);
    assert_eq!(label(store.clone(), "acme", 7, "x", 1.5).await, "7-x-1.5");
    // The template keys by `id` and `tag` only: `extra` does not split the entry.
    assert_eq!(
        label(store.clone(), "acme", 7, "x", "other").await,
        "7-x-1.5"
    );
    assert_eq!(GENERIC_CALLS.get(), 1);
    assert_eq!(
        entry_keys(&server),
        ["fernando:test:{tenant_acme}:dashboard:label%3A0007%3Ax"]
    );
}

static OPTIONAL_STORE_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "dashboard")]
async fn maybe_cached(store: Option<&Store>, tenant_id: &str) -> u8 {
    OPTIONAL_STORE_CALLS.hit();
    1
}

#[tokio::test]
async fn an_optional_store_caches_only_when_present() {
    let (_server, store) = redis_store();
    maybe_cached(None, "acme").await;
    maybe_cached(None, "acme").await;
    assert_eq!(OPTIONAL_STORE_CALLS.get(), 2);
    maybe_cached(Some(&store), "acme").await;
    maybe_cached(Some(&store), "acme").await;
    assert_eq!(OPTIONAL_STORE_CALLS.get(), 3);
}

//! [`Unopened`]: the backend of a tenant whose own connections could not be opened (design 0023) — its `acl`
//! password unreadable, say. Every call answers why, naming the tenant and the source, so each operation of the
//! tenant degrades exactly as on an unavailable backend (a miss, a dropped write, an error for a delete or an
//! invalidation) while every other tenant is served; and no path of the store needs a case of its own for it.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;

use crate::{
    BackendError, BackendInfo, Charge, Coordination, Fetched, KeyTtl, Storage, WindowCount,
};

/// A backend that answers every call with the error that kept it from being opened.
#[derive(Debug)]
pub(crate) struct Unopened(pub(crate) BackendError);

impl Unopened {
    fn fail<T>(&self) -> Result<T, BackendError> {
        Err(self.0.clone())
    }
}

#[async_trait]
impl Storage for Unopened {
    fn kind(&self) -> &'static str {
        "unopened"
    }

    async fn fetch(&self, _: &str, _: &GenerationKeys) -> Result<Fetched, BackendError> {
        self.fail()
    }

    async fn set(
        &self,
        _: &str,
        _: Bytes,
        _: Duration,
        _: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        self.fail()
    }

    async fn delete(&self, _: &[&str]) -> Result<u64, BackendError> {
        self.fail()
    }

    async fn exists(&self, _: &str) -> Result<bool, BackendError> {
        self.fail()
    }

    async fn ttl(&self, _: &str) -> Result<KeyTtl, BackendError> {
        self.fail()
    }

    async fn read_generations(&self, _: &[&str]) -> Result<Vec<u64>, BackendError> {
        self.fail()
    }

    async fn bump_generation(&self, _: &str, _: Duration) -> Result<u64, BackendError> {
        self.fail()
    }

    async fn delete_matching(
        &self,
        _: &str,
        _: usize,
        _: Duration,
        _: Option<&crate::ByteLedgers>,
    ) -> Result<u64, BackendError> {
        self.fail()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.fail()
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        self.fail()
    }
}

#[async_trait]
impl Coordination for Unopened {
    async fn admit(&self, _: &str, _: &[u8], _: u64, _: Duration) -> Result<bool, BackendError> {
        self.fail()
    }

    async fn charge(
        &self,
        _: &str,
        _: &str,
        _: u64,
        _: Duration,
        _: u64,
    ) -> Result<Charge, BackendError> {
        self.fail()
    }

    async fn count_in_window(
        &self,
        _: &str,
        _: u64,
        _: Duration,
    ) -> Result<WindowCount, BackendError> {
        self.fail()
    }
}

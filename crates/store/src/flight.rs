//! Single-flight: concurrent misses on one key in one process share one computation.
//!
//! The first caller becomes the leader and computes in its own task; the others wait on a watch channel for its
//! outcome. If the leader is cancelled or panics, its sender is dropped, the waiters wake up, and one of them
//! takes over — nobody waits forever.

use std::{
    any::Any,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

/// A value or error shared by every waiter.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;
/// A finished computation: the value, or the error — `None` when the error type cannot be shared, in which
/// case each waiter computes for itself.
pub(crate) type Outcome = Result<Shared, Option<Shared>>;

#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Follower(watch::Receiver<Option<Outcome>>),
}

/// Held by the computing caller; removes the flight when dropped.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: String,
    tx: watch::Sender<Option<Outcome>>,
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key)
            && rx.has_changed().is_ok()
        {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_owned(), rx);
        Role::Leader(LeaderGuard {
            flights: self,
            key: key.to_owned(),
            tx,
        })
    }

    /// Forgets the flights whose key `doomed` names (a tenant's, when it is erased): later callers start a
    /// computation of their own rather than join one that began before; those already waiting still get its
    /// outcome.
    pub(crate) fn forget(&self, doomed: impl Fn(&str) -> bool) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|key, _| !doomed(key));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl LeaderGuard<'_> {
    /// Hands the outcome to every current and future follower of this flight.
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader. `None` means it vanished without an outcome (cancelled, panicked): try again.
pub(crate) async fn follow(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_the_flight_is_removed() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        leader.publish(Ok(Arc::new(5u32)));
        let got = follow(rx).await.unwrap().unwrap();
        assert_eq!(*got.downcast::<u32>().unwrap(), 5);
        drop(leader);
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_vanished_leader_releases_its_followers() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Follower(rx) = flights.join("k") else {
            panic!("follows")
        };
        drop(leader);
        assert!(follow(rx).await.is_none());
    }
}

//! Integration tests of the store against real `redis-server` processes, a local SQLite file and the in-process
//! backend; the behaviour suite (`contract!`) also runs for a tenant under `acl` and `dedicated` isolation.

mod support;

mod corruption;
mod degradation;
mod dictionaries;
mod disk;
mod erasure;
mod fail_safe;
mod invalidation;
mod isolation;
mod isolation_strategies;
mod l1;
mod many;
mod pipelining;
mod plans;
mod quota;
mod round_trip;
mod sealing;
mod shards;
mod single_flight;
mod tags;
mod topology;
mod tracking;

//! Integration tests of the store against real `redis-server` processes, a local SQLite file and the in-process
//! backend.

mod support;

mod corruption;
mod degradation;
mod disk;
mod erasure;
mod fail_safe;
mod invalidation;
mod isolation;
mod l1;
mod pipelining;
mod plans;
mod quota;
mod round_trip;
mod sealing;
mod single_flight;
mod tags;
mod topology;
mod tracking;

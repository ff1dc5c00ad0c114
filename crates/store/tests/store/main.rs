//! Integration tests of the store against real `redis-server` processes (and the in-process backend).

mod support;

mod corruption;
mod degradation;
mod invalidation;
mod isolation;
mod pipelining;
mod round_trip;
mod single_flight;
mod topology;
mod tracking;

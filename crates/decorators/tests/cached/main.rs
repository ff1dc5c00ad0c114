//! `#[cached]` and `#[invalidates]` against real `redis-server` processes: what is cached, where it lives, and
//! how the generated code behaves.

mod support;

mod concurrency;
mod expansion;
mod keys;
mod semantics;

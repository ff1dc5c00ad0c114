//! Runnable examples of fernando-cache, one per way of using it, each on the in-process backend (no Redis, no
//! database, no network beyond 127.0.0.1):
//!
//! - `store` — the typed store: `set` / `get`, `get_or_compute`, an invalidation, the counters;
//! - `cached` — `#[cached]` on an async function, and `#[invalidates]`;
//! - `axum_layer` — `HttpCacheLayer` in an axum app, asked twice over TCP, with its `X-Cache` headers;
//! - `pipeline` — the document pipeline as a library: one invoice processed twice.
//!
//! Run one with `cargo run -p fernando-cache-examples --example store` (or `cached`, `axum_layer`,
//! `pipeline`). This library is empty: it only gives the examples a package. Nothing must depend on it, and it
//! sits above every other crate of the workspace.

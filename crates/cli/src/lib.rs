//! The wiring layer of the `fernando-cache` program: it connects the store's in-process metrics to the
//! statistics database (the [`recorder`]), and holds what the binary's commands share.
//!
//! This is the top of the workspace: it may depend on every fernando-cache library crate, and the library
//! crates must not depend on it. It holds no caching logic of its own.

pub mod events;
pub mod health;
pub mod recorder;

/// The README's examples, compiled and run as doctests so they stay true (this crate sits above every
/// library the README shows).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

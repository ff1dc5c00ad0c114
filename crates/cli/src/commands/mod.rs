//! One module per command: `process`, `serve`, `proxy`, `cache`, `tenant`, `stats`, `event`. Each takes the
//! loaded settings and returns the exit code; what they share is in [`crate::wiring`], and the network edge
//! `serve` and `proxy` share is `fernando_cache_http::server`.

pub(crate) mod cache;
pub(crate) mod event;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod replicate;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod tenant;

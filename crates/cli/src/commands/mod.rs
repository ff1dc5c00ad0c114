//! One module per command: `process`, `serve`, `cache`, `stats`, `event`. Each takes the loaded settings and
//! returns the exit code; what they share is in [`crate::wiring`].

pub(crate) mod cache;
pub(crate) mod event;
pub(crate) mod process;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod warming;

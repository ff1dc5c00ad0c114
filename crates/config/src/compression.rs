//! `[compression]`: when values are zstd-compressed, at which level, and the largest decoded value believed.

use serde::Deserialize;

use crate::{ConfigError, check};

/// `[compression]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CompressionSettings {
    /// Compress at all.
    pub enabled: bool,
    /// Encoded values larger than this many bytes are zstd-compressed; smaller ones are stored as they are. At
    /// most `max_decoded_bytes`.
    pub threshold_bytes: usize,
    /// zstd level, 1 (fastest) to 19.
    pub level: i32,
    /// Largest decoded value accepted, 1 KiB to 1 GiB; bigger claims are treated as corrupt entries.
    pub max_decoded_bytes: usize,
    /// Train a zstd dictionary per entry group (a scope and cache type) once it has written enough small
    /// values, and compress its small values with it (design 0025). Off: nothing is sampled or trained; values
    /// written with a dictionary are still read.
    pub dictionaries: bool,
}

impl CompressionSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=19).contains(&self.level) {
            return Err(ConfigError::invalid(
                "compression.level",
                format!("{} is outside 1..=19", self.level),
            ));
        }
        check::range(
            "compression.max_decoded_bytes",
            self.max_decoded_bytes,
            1024,
            1 << 30,
        )?;
        if self.threshold_bytes > self.max_decoded_bytes {
            return Err(ConfigError::invalid(
                "compression.threshold_bytes",
                "is larger than compression.max_decoded_bytes",
            ));
        }
        Ok(())
    }
}

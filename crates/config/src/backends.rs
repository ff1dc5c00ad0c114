//! `backend`, `[memory]` and `[disk]`: which backend holds the entries, and the bounds of the two that need no
//! server (Redis has `redis.rs`).

use serde::Deserialize;

use crate::ConfigError;

/// Where cache entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum BackendKind {
    /// In-process, bounded by bytes; needs no server (the test default). Forgotten when the process exits.
    Memory,
    /// A file on local disk (`disk.path`), bounded by bytes; needs no server, outlives the process and is
    /// shared by every process that opens it (the development default).
    Disk,
    /// Redis (the staging and production default).
    Redis,
}

impl BackendKind {
    /// Each backend under its name in the settings.
    const NAMES: [(&'static str, BackendKind); 3] = [
        ("memory", BackendKind::Memory),
        ("disk", BackendKind::Disk),
        ("redis", BackendKind::Redis),
    ];
}

/// A backend by its name in the settings; an unknown name lists the valid ones and suggests the nearest.
impl TryFrom<String> for BackendKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        crate::choice::pick(&name, &Self::NAMES)
    }
}

/// `[memory]`: the in-process backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {
    /// Upper bound on the bytes of stored entries (keys plus encoded values); at least 1 KiB.
    pub max_bytes: u64,
}

impl MemorySettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "memory.max_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}

/// `[disk]`: the disk backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskSettings {
    /// The cache file (SQLite, WAL mode); its folder is created when missing. Left out, `cache.sqlite3` in the
    /// data folder ([`crate::Settings::data_dir`]), so every process of the user finds the same file wherever
    /// it starts; a relative path starts at the working directory.
    pub path: String,
    /// Upper bound on the bytes of stored entries (keys plus encoded values), at least 64 KiB; past it, the
    /// entries closest to expiry are evicted first.
    pub max_bytes: u64,
}

impl DiskSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes < 64 * 1024 {
            return Err(ConfigError::invalid(
                "disk.max_bytes",
                "must be at least 65536",
            ));
        }
        if self.path.trim().is_empty() {
            return Err(ConfigError::invalid("disk.path", "must name a file"));
        }
        Ok(())
    }
}

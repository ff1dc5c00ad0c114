//! The deployment environment (profile).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// A deployment profile. It selects `config/{name}.toml` and is part of every cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local work: in-process memory backend, short TTLs.
    Development,
    /// Automated tests: in-process memory backend, short TTLs, quick breaker recovery.
    Test,
    /// Production-like, on Redis.
    Staging,
    /// Production, on Redis, with the seed's TTLs.
    Production,
}

impl Environment {
    /// Every profile, in order of increasing seriousness.
    pub const ALL: [Environment; 4] = [
        Environment::Development,
        Environment::Test,
        Environment::Staging,
        Environment::Production,
    ];

    /// The profile's name as it appears in file names and cache keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(ConfigError::invalid(
                "environment",
                format!("unknown profile {s:?}; expected development, test, staging or production"),
            )),
        }
    }
}

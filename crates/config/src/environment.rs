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

/// A profile by name: `development`, `test`, `staging` or `production`, and the short forms `dev` and `prod`
/// (any ASCII case). Other short forms are refused rather than guessed, with the nearest name suggested.
impl FromStr for Environment {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const NAMES: [(&str, Environment); 6] = [
            ("development", Environment::Development),
            ("dev", Environment::Development),
            ("test", Environment::Test),
            ("staging", Environment::Staging),
            ("production", Environment::Production),
            ("prod", Environment::Production),
        ];
        crate::choice::pick(s, &NAMES).map_err(|_| {
            let full: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let shown: String = s.chars().take(64).collect();
            ConfigError::invalid(
                "environment",
                format!(
                    "unknown profile {shown:?}; expected development (or dev), test, staging or production \
                     (or prod){}",
                    crate::choice::did_you_mean(s, &full)
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_are_aliases_and_other_names_are_refused_with_a_suggestion() {
        assert_eq!(
            "prod".parse::<Environment>().unwrap(),
            Environment::Production
        );
        assert_eq!(
            " DEV ".parse::<Environment>().unwrap(),
            Environment::Development
        );
        let err = "prodution".parse::<Environment>().unwrap_err().to_string();
        assert!(err.contains(r#"did you mean "production"?"#), "{err}");
        let err = "qa".parse::<Environment>().unwrap_err().to_string();
        assert!(
            err.contains("unknown profile \"qa\"") && !err.contains("did you mean"),
            "{err}"
        );
    }
}

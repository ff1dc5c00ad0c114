//! Loading settings from embedded profiles, a config folder, the environment and explicit overrides; a key that
//! moved is refused with its new name (`moved.rs`) before the tree is read.

use std::path::{Path, PathBuf};

use config::{Config, Environment as EnvSource, File, FileFormat, Source as _};

use crate::{ConfigError, Environment, Settings};

const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.toml");

fn embedded_profile(env: Environment) -> &'static str {
    match env {
        Environment::Development => include_str!("../../../config/development.toml"),
        Environment::Test => include_str!("../../../config/test.toml"),
        Environment::Staging => include_str!("../../../config/staging.toml"),
        Environment::Production => include_str!("../../../config/production.toml"),
    }
}

/// Environment variable that selects the profile.
pub const ENV_PROFILE_VAR: &str = "FERNANDO_CACHE_ENV";
/// Environment variable that names the config folder.
pub const ENV_CONFIG_DIR_VAR: &str = "FERNANDO_CACHE_CONFIG_DIR";

/// How to load [`Settings`]: which profile, which folder, which overrides.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The profile; `None` reads `FERNANDO_CACHE_ENV`, else `development`.
    pub environment: Option<Environment>,
    /// The config folder; `None` reads `FERNANDO_CACHE_CONFIG_DIR`, else `./config` if it exists.
    pub config_dir: Option<PathBuf>,
    /// Ignore `FERNANDO_CACHE__…` environment variables (default false: they are read).
    pub skip_environment_variables: bool,
    /// Read these `FERNANDO_CACHE__…` variables instead of the process's environment (`None`: the process's).
    /// For tests, which cannot change the environment of a process whose other tests run at the same time.
    pub environment_variables: Option<Vec<(String, String)>>,
    /// Explicit `key = value` overrides applied last, e.g. `("redis.url", "redis://…")`.
    pub overrides: Vec<(String, String)>,
}

impl LoadOptions {
    /// Options that read the environment and `./config`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses the profile.
    #[must_use]
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }

    /// Chooses the config folder.
    #[must_use]
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// Ignores `FERNANDO_CACHE__…` environment variables (for tests and embedding).
    #[must_use]
    pub fn without_environment_variables(mut self) -> Self {
        self.skip_environment_variables = true;
        self
    }

    /// Reads these variables, `("FERNANDO_CACHE__TYPES__SESSION__TTL", "1h")`, in place of the process's
    /// environment.
    #[must_use]
    pub fn environment_variables<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment_variables = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Overrides one dotted key, e.g. `set("compression.level", "1")`.
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Overrides several dotted keys, in order — for example what a test server hands out
    /// (`fernando_cache_testkit::RedisServer::overrides`).
    #[must_use]
    pub fn set_all<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.overrides
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A profile's embedded settings and `./config` only, ignoring `FERNANDO_CACHE__…` variables: what tests,
    /// benchmarks and embedders start from.
    pub fn isolated(env: Environment) -> Self {
        Self::new().environment(env).without_environment_variables()
    }
}

impl Settings {
    /// Loads and validates settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when a value is of the wrong kind, not one of the names a setting accepts, out
    /// of range, or under a key that is not a setting: it names the key, what the value must be (for a name,
    /// every valid one and the nearest to what was given) and, for a value from an environment variable, the
    /// variable and its value (for a file, the file). [`ConfigError::Source`] when a file cannot be read or
    /// parsed. [`ConfigError::Moved`] when a key is given under a name it no longer has, naming the new one
    /// (and, for an environment variable, the variable to set instead).
    pub fn load(options: LoadOptions) -> Result<Settings, ConfigError> {
        let env = match options.environment {
            Some(env) => env,
            None => match std::env::var(ENV_PROFILE_VAR) {
                Ok(name) if !name.trim().is_empty() => {
                    name.parse::<Environment>().map_err(|e| match e {
                        ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                            key,
                            reason,
                            detail: format!(" (given as {ENV_PROFILE_VAR}={name})"),
                        },
                        other => other,
                    })?
                }
                _ => Environment::Development,
            },
        };
        let dir = options
            .config_dir
            .clone()
            .or_else(|| std::env::var_os(ENV_CONFIG_DIR_VAR).map(PathBuf::from))
            .or_else(|| {
                let local = PathBuf::from("config");
                local.join("default.toml").is_file().then_some(local)
            });
        if let Some(dir) = dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(ConfigError::invalid(
                "config_dir",
                format!("{} is not a folder", dir.display()),
            ));
        }

        let mut builder = Config::builder()
            .add_source(File::from_str(EMBEDDED_DEFAULT, FileFormat::Toml))
            .add_source(File::from_str(embedded_profile(env), FileFormat::Toml));
        if let Some(dir) = &dir {
            for name in ["default", env.as_str(), "local"] {
                builder = builder.add_source(file_in(dir, name));
            }
        }
        if !options.skip_environment_variables {
            let variables = EnvSource::with_prefix("FERNANDO_CACHE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(
                    options
                        .environment_variables
                        .as_ref()
                        .map(|vars| vars.iter().cloned().collect()),
                );
            builder = builder.add_source(variables);
        }
        for (key, value) in &options.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| ConfigError::Source(e.to_string()))?;
        }
        // Where the data folder is decides two defaults (`disk.path`, `statistics.database_url`), so the layers
        // are merged once to read `data_dir`, then again with those defaults beneath every layer.
        let first = builder
            .clone()
            .build()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        let data_dir =
            crate::data_dir::resolve(first.get_string("data_dir").ok()).map_err(|e| match first
                .collect()
            {
                Ok(tree) => crate::explain::locate(e, &tree),
                Err(_) => e,
            })?;
        match &data_dir {
            Some(dir) => {
                for (key, value) in crate::data_dir::defaults(dir)? {
                    builder = builder
                        .set_default(key, value)
                        .map_err(|e| ConfigError::Source(e.to_string()))?;
                }
            }
            None => {
                if ["disk.path", "statistics.database_url"]
                    .iter()
                    .any(|key| first.get_string(key).is_err())
                {
                    return Err(crate::data_dir::unknown());
                }
            }
        }
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        let tree = raw
            .collect()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        crate::moved::check(&tree)?;
        let mut settings: Settings = raw
            .try_deserialize()
            .map_err(|e| crate::explain::read_error(e, &tree))?;
        settings.environment = env;
        settings.data_dir = data_dir;
        // The Redis backends are handed `[redis]` alone; the one bound of every backend call goes with it.
        settings.redis.command_timeout = settings.command_timeout;
        settings
            .validate()
            .map_err(|e| crate::explain::locate(e, &tree))?;
        Ok(settings)
    }

    /// The settings of a profile from the embedded files alone (no folder, no environment variables).
    ///
    /// # Errors
    /// If the embedded files are broken, which the crate's tests rule out, or where no data folder is known
    /// (no home folder: [`crate::default_data_dir`] is `None`), whose two defaults then cannot be given.
    pub fn embedded(env: Environment) -> Result<Settings, ConfigError> {
        Settings::load(LoadOptions {
            environment: Some(env),
            config_dir: None,
            skip_environment_variables: true,
            environment_variables: None,
            overrides: Vec::new(),
        })
    }
}

fn file_in(dir: &Path, name: &str) -> File<config::FileSourceFile, FileFormat> {
    File::from(dir.join(format!("{name}.toml"))).required(false)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::{BackendKind, CacheType};

    fn opts(env: Environment) -> LoadOptions {
        LoadOptions::new()
            .environment(env)
            .without_environment_variables()
            .config_dir(tempfile::tempdir().unwrap().keep())
    }

    #[test]
    fn every_profile_loads_and_validates() {
        for env in Environment::ALL {
            let s = Settings::embedded(env).unwrap();
            assert_eq!(s.environment, env);
            for t in CacheType::BUILT_IN {
                assert!(s.types.get(&t).ttl.is_some(), "{env}: {t}");
            }
        }
    }

    #[test]
    fn production_has_the_seed_ttls_and_development_shorter_ones() {
        let prod = Settings::embedded(Environment::Production).unwrap();
        let dev = Settings::embedded(Environment::Development).unwrap();
        let h = |n: u64| Duration::from_secs(n * 3600);
        let expected = [
            (CacheType::DOC_HASH, h(24)),
            (CacheType::OCR_RESULT, h(7 * 24)),
            (CacheType::LLM_EXTRACTION, h(30 * 24)),
            (CacheType::SESSION, h(24)),
            (CacheType::API_RESPONSE, Duration::from_secs(300)),
            (CacheType::DASHBOARD, Duration::from_secs(600)),
            (CacheType::BILLING, h(1)),
            (CacheType::REFERENCE_DATA, h(24)),
        ];
        for (t, ttl) in expected {
            assert_eq!(prod.types.get(&t).ttl, Some(ttl), "{t}");
            assert!(
                dev.types.get(&t).ttl.unwrap() < ttl,
                "development {t} should be shorter"
            );
        }
        assert_eq!(prod.backend, BackendKind::Redis);
        assert_eq!(dev.backend, BackendKind::Disk);
        assert_eq!(
            Settings::embedded(Environment::Staging).unwrap().backend,
            BackendKind::Redis
        );
    }

    #[test]
    fn folder_files_and_overrides_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[types.invoice]\nttl = \"2h\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("staging.toml"),
            "[types.invoice]\nttl = \"3h\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("local.toml"), "[compression]\nlevel = 7\n").unwrap();
        let s = Settings::load(
            LoadOptions::new()
                .environment(Environment::Staging)
                .without_environment_variables()
                .config_dir(dir.path())
                .set("redis.pool_size", "3"),
        )
        .unwrap();
        assert_eq!(
            s.types.get(&CacheType::new("invoice").unwrap()).ttl,
            Some(Duration::from_secs(3 * 3600))
        );
        assert_eq!(s.compression.level, 7);
        assert_eq!(s.redis.pool_size, 3);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("compression.level", "42", "compression.level"),
            ("redis.pool_size", "0", "redis.pool_size"),
            ("redis.url", "http://example.com", "redis.url"),
            ("command_timeout", "soon", "soon"),
            ("command_timeout", "2h", "command_timeout"),
            ("types.session.ttl", "0s", "types.session.ttl"),
            ("types.Bad-Name.ttl", "1h", "Bad-Name"),
            (
                "degradation.breaker_failure_threshold",
                "0",
                "breaker_failure_threshold",
            ),
            ("namespace", "a:b", "namespace"),
            ("backend", "memcached", "memcached"),
            ("redis.nonsense", "1", "nonsense"),
            (
                "statistics.hit_ratio_alert",
                "1.5",
                "statistics.hit_ratio_alert",
            ),
            ("statistics.window", "100ms", "statistics.window"),
        ];
        for (key, value, needle) in cases {
            let err = Settings::load(opts(Environment::Production).set(key, value))
                .expect_err(key)
                .to_string();
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let s = Settings::load(
            opts(Environment::Production)
                .set("redis.url", "redis://user:hunter2@cache.internal:6379/0")
                .set("redis.password", "s3cret-pw"),
        )
        .unwrap();
        let shown = format!("{s:?} {}", s.redis.url);
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret-pw"),
            "{shown}"
        );
        assert_eq!(
            s.redis.password.as_ref().unwrap().expose_secret(),
            "s3cret-pw"
        );
        assert!(s.redis.connection_url().contains("s3cret-pw"));
        let err = crate::RedisUrl::parse("ftp://user:hunter2@x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn unknown_profile_is_an_error() {
        let err = "qa".parse::<Environment>().unwrap_err().to_string();
        assert!(err.contains("unknown profile"), "{err}");
    }

    #[test]
    fn missing_config_dir_is_an_error() {
        let err = Settings::load(
            LoadOptions::new()
                .without_environment_variables()
                .config_dir("/definitely/not/here"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("config_dir"), "{err}");
    }
}

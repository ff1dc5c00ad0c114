//! The settings as a user writes them: the profiles, the per-type tables of `[types]`, the keys that moved, the
//! data folder and the errors a mistake gets, through the public loader only.

mod data_dir;
mod errors;
mod moved;
mod profiles;
mod tenants;
mod types;

use fernando_cache_config::{ConfigError, Environment, LoadOptions, Settings};

/// A profile's embedded settings with `pairs` as overrides, ignoring the process's environment and any
/// `./config` folder.
pub(crate) fn load(env: Environment, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(options(env).set_all(pairs.iter().map(|(k, v)| (*k, *v))))
}

/// A profile's embedded settings and an empty config folder, no variables from the process's environment.
pub(crate) fn options(env: Environment) -> LoadOptions {
    LoadOptions::new()
        .environment(env)
        .without_environment_variables()
        .config_dir(tempfile::tempdir().unwrap().keep())
}

/// A profile's embedded settings with `vars` as its only environment variables.
pub(crate) fn with_variables(
    env: Environment,
    vars: &[(&str, &str)],
) -> Result<Settings, ConfigError> {
    Settings::load(
        LoadOptions::new()
            .environment(env)
            .config_dir(tempfile::tempdir().unwrap().keep())
            .environment_variables(vars.iter().map(|(k, v)| (*k, *v))),
    )
}

//! Where the cache keeps its files on this machine when no setting names them: the data folder — `data_dir`
//! when set, else the platform's per-user data folder (`$XDG_DATA_HOME/fernando-cache`, else
//! `~/.local/share/fernando-cache` on Linux; `~/Library/Application Support/fernando-cache` on macOS;
//! `%LOCALAPPDATA%\fernando-cache` on Windows, as the `dirs` crate knows them). The disk backend's file and
//! the SQLite statistics database default to files in it, so every process of a user finds the same cache and
//! the same statistics whatever folder it starts in.

use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The folder's name inside the platform's data folder.
const APP_FOLDER: &str = "fernando-cache";
/// The disk backend's file in the data folder: `disk.path` when it is left out.
pub const DISK_FILE: &str = "cache.sqlite3";
/// The statistics database in the data folder: `statistics.database_url` when it is left out.
pub const STATISTICS_FILE: &str = "fernando-cache.sqlite3";

/// The platform's per-user data folder for fernando-cache (see the module's list), or `None` where not even
/// a home folder is known. What `data_dir` defaults to.
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join(APP_FOLDER))
}

/// The data folder: `given` (the `data_dir` setting, `FERNANDO_CACHE__DATA_DIR`, `--data-dir`) made absolute
/// against the working directory, else [`default_data_dir`].
///
/// # Errors
/// [`ConfigError::Invalid`] for an empty `data_dir`, or one that cannot be made absolute.
pub(crate) fn resolve(given: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    match given {
        None => Ok(default_data_dir()),
        Some(text) if text.trim().is_empty() => Err(ConfigError::invalid(
            "data_dir",
            "is empty; name a folder, or leave it out for the platform's per-user data folder",
        )),
        Some(text) => std::path::absolute(&text)
            .map(Some)
            .map_err(|e| ConfigError::invalid("data_dir", format!("{text:?}: {e}"))),
    }
}

/// The defaults the data folder `dir` gives: `disk.path` and `statistics.database_url`, as setting values.
///
/// # Errors
/// [`ConfigError::Invalid`] when the folder's path is not UTF-8 (settings are text).
pub(crate) fn defaults(dir: &Path) -> Result<[(&'static str, String); 2], ConfigError> {
    let text = |file: &str| {
        dir.join(file).to_str().map(str::to_owned).ok_or_else(|| {
            ConfigError::invalid(
                "data_dir",
                format!(
                    "{} is not UTF-8; set data_dir (or FERNANDO_CACHE__DATA_DIR, --data-dir) to a folder \
                     whose path is",
                    dir.display()
                ),
            )
        })
    };
    Ok([
        ("disk.path", text(DISK_FILE)?),
        (
            "statistics.database_url",
            format!("sqlite://{}", text(STATISTICS_FILE)?),
        ),
    ])
}

/// The error when no data folder is known and a file would need one.
pub(crate) fn unknown() -> ConfigError {
    ConfigError::invalid(
        "data_dir",
        "no per-user data folder is known here (no home folder); set data_dir (FERNANDO_CACHE__DATA_DIR, \
         --data-dir), or both disk.path and statistics.database_url",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_folder_is_made_absolute_and_an_empty_one_refused() {
        let dir = resolve(Some("cache-here".to_owned())).unwrap().unwrap();
        assert!(dir.is_absolute() && dir.ends_with("cache-here"), "{dir:?}");
        let err = resolve(Some(" ".to_owned())).unwrap_err().to_string();
        assert!(err.contains("data_dir"), "{err}");
        let [(disk, file), (stats, url)] = defaults(Path::new("/srv/fc")).unwrap();
        assert_eq!(
            (disk, file.as_str()),
            ("disk.path", "/srv/fc/cache.sqlite3")
        );
        assert_eq!(
            (stats, url.as_str()),
            (
                "statistics.database_url",
                "sqlite:///srv/fc/fernando-cache.sqlite3"
            )
        );
    }
}

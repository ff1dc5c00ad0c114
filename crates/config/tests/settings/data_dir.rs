//! The data folder (issue 30): the disk backend's file and the SQLite statistics database default to files in
//! one per-user folder, whatever the working directory; `data_dir` (a setting, `FERNANDO_CACHE__DATA_DIR`, an
//! override) moves both; a file named by its own setting stays where that setting says.

use std::path::{Path, PathBuf};

use fernando_cache_config::{
    DISK_FILE, Environment, ExposeSecret, STATISTICS_FILE, Settings, default_data_dir,
};

use crate::{load, with_variables};

fn database_url(s: &Settings) -> String {
    s.statistics.database_url.expose_secret().to_owned()
}

fn assert_both_in(s: &Settings, dir: &Path) {
    assert_eq!(s.data_dir.as_deref(), Some(dir));
    assert_eq!(Path::new(&s.disk.path), dir.join(DISK_FILE));
    assert_eq!(
        database_url(s),
        format!("sqlite://{}", dir.join(STATISTICS_FILE).display())
    );
}

#[test]
fn both_files_default_to_the_platforms_per_user_data_folder() {
    let dir = default_data_dir().expect("a home folder on the test machine");
    assert!(
        dir.is_absolute() && dir.ends_with("fernando-cache"),
        "{dir:?}"
    );
    for env in [Environment::Development, Environment::Production] {
        assert_both_in(&load(env, &[]).unwrap(), &dir);
    }
}

#[test]
fn data_dir_moves_both_files_from_a_setting_or_a_variable() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().to_str().unwrap();
    assert_both_in(
        &load(Environment::Development, &[("data_dir", text)]).unwrap(),
        dir.path(),
    );
    assert_both_in(
        &with_variables(
            Environment::Development,
            &[("FERNANDO_CACHE__DATA_DIR", text)],
        )
        .unwrap(),
        dir.path(),
    );
}

#[test]
fn a_relative_data_dir_is_made_absolute_and_a_named_file_stays_where_it_is_named() {
    let s = load(Environment::Development, &[("data_dir", "here/cache")]).unwrap();
    let expected: PathBuf = std::env::current_dir().unwrap().join("here/cache");
    assert_both_in(&s, &expected);
    // A relative disk.path still starts at the working directory; an explicit database URL is kept.
    let s = load(
        Environment::Development,
        &[
            ("disk.path", "var/cache.sqlite3"),
            ("statistics.database_url", "postgres://app@db/stats"),
        ],
    )
    .unwrap();
    assert_eq!(s.disk.path, "var/cache.sqlite3");
    assert_eq!(database_url(&s), "postgres://app@db/stats");
    let e = load(Environment::Development, &[("data_dir", "")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`data_dir`"), "{e}");
    let e = with_variables(
        Environment::Development,
        &[("FERNANDO_CACHE__DATA_DIR", " ")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`data_dir`") && e.contains("FERNANDO_CACHE__DATA_DIR"),
        "{e}"
    );
}

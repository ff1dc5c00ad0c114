//! One cache per user (issue 30): on the development profile the disk cache and the statistics database live in
//! the user's data folder (`$XDG_DATA_HOME/fernando-cache` here), not in the working directory, so `process` run
//! from another folder is answered from the cache and `stats` there reads the rows `process` wrote; `--data-dir`
//! and `FERNANDO_CACHE__DATA_DIR` move both; `stats` never creates an empty database; `--help` names the folder.
//! Every run has its own HOME and XDG_DATA_HOME, so no test writes into the real home.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// A fresh home, with the folders a user works in.
struct Home {
    _root: tempfile::TempDir,
    home: PathBuf,
    /// `$XDG_DATA_HOME`.
    data: PathBuf,
    inbox: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl Home {
    fn new() -> Home {
        let root = tempfile::tempdir().unwrap();
        let at = |name: &str| {
            let p = root.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (home, data, inbox, a, b) = (at("home"), at("home/xdg"), at("inbox"), at("a"), at("b"));
        for i in 0..3 {
            std::fs::write(
                inbox.join(format!("invoice-{i}.txt")),
                format!("Invoice number: DD-{i:04}\nTotal: {i}.90 EUR\nDue within 30 days.\n"),
            )
            .unwrap();
        }
        Home {
            _root: root,
            home,
            data,
            inbox,
            a,
            b,
        }
    }

    /// The platform's data folder for this home.
    fn default_dir(&self) -> PathBuf {
        self.data.join("fernando-cache")
    }

    /// The program on the development profile, in `cwd`, with this home and nothing of ours from the
    /// environment of the test run.
    fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fernando-cache"));
        c.args(["--env", "development"])
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", &self.data)
            .env_remove("FERNANDO_CACHE_ENV")
            .env_remove("FERNANDO_CACHE_CONFIG_DIR")
            .env_remove("FERNANDO_CACHE__DATA_DIR")
            .env_remove("FERNANDO_CACHE__BACKEND")
            .env_remove("FERNANDO_CACHE__DISK__PATH")
            .env_remove("FERNANDO_CACHE__STATISTICS__DATABASE_URL");
        c
    }

    /// `process --json --tenant acme <inbox>` in `cwd` with `extra` global arguments: the report.
    fn process(&self, cwd: &Path, extra: &[&str], env: &[(&str, &str)]) -> Value {
        let out = self
            .command(cwd)
            .args(extra)
            .args(["process", "--json", "--tenant", "acme"])
            .arg(&self.inbox)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
    }

    /// `stats` with `args` in `cwd`.
    fn stats(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(cwd).args(args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// Every document of a report, answered from the cache.
fn all_hits(report: &Value) -> bool {
    let docs = report["documents"].as_array().expect("documents");
    !docs.is_empty() && docs.iter().all(|d| d["stages"]["document"] == "hit")
}

/// The rows `stats --json` printed for tenant acme.
fn acme_rows(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    rows.as_array()
        .expect("an array")
        .iter()
        .filter(|r| r["tenant"] == "acme")
        .cloned()
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn process_from_another_folder_is_answered_from_the_cache_and_stats_there_reads_its_rows() {
    let h = Home::new();
    let dir = h.default_dir();
    let first = h.process(&h.a, &[], &[]);
    let storage = &first["summary"]["storage"];
    assert_eq!(storage["backend"], "disk", "{storage}");
    assert_eq!(
        storage["cache"],
        path_text(&dir.join("cache.sqlite3")),
        "{storage}"
    );
    assert_eq!(
        storage["statistics"],
        path_text(&dir.join("fernando-cache.sqlite3")),
        "{storage}"
    );
    assert!(
        !h.a.join("var").exists(),
        "nothing in the working directory"
    );

    let second = h.process(&h.b, &[], &[]);
    assert!(
        all_hits(&second),
        "another folder, the same cache: {second}"
    );
    assert!(!h.b.join("var").exists());

    let rows = acme_rows(&h.stats(&h.b, &["stats", "--json"]));
    let hits: i64 = rows.iter().filter_map(|r| r["hits"].as_i64()).sum();
    assert!(
        hits >= 3,
        "the second run's hits, read from another folder: {rows:?}"
    );
    let table = h.stats(&h.b, &["stats"]);
    assert!(
        text(&table.stdout).contains(&format!(
            "statistics from {}",
            path_text(&dir.join("fernando-cache.sqlite3"))
        )),
        "{}",
        text(&table.stdout)
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700, "the data folder is the user's alone");
        assert_eq!(mode(&dir.join("cache.sqlite3")), 0o600);
        assert_eq!(mode(&dir.join("fernando-cache.sqlite3")), 0o600);
    }
}

#[test]
fn the_table_summary_says_where_the_cache_and_the_statistics_are() {
    let h = Home::new();
    let out = h
        .command(&h.a)
        .args(["process", "--tenant", "acme"])
        .arg(&h.inbox)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let dir = h.default_dir();
    for line in [
        format!(
            "cache             disk, {}",
            path_text(&dir.join("cache.sqlite3"))
        ),
        format!(
            "statistics        {}",
            path_text(&dir.join("fernando-cache.sqlite3"))
        ),
    ] {
        assert!(
            summary.lines().any(|l| l == line),
            "no {line:?} in\n{summary}"
        );
    }
}

#[test]
fn data_dir_moves_both_files_and_stats_never_creates_an_empty_database() {
    let h = Home::new();
    let moved = h.home.join("elsewhere");
    let moved_text = path_text(&moved);
    let report = h.process(&h.a, &["--data-dir", moved_text.as_str()], &[]);
    assert_eq!(
        report["summary"]["storage"]["cache"],
        path_text(&moved.join("cache.sqlite3"))
    );
    assert!(moved.join("cache.sqlite3").is_file());
    assert!(moved.join("fernando-cache.sqlite3").is_file());
    assert!(
        !h.default_dir().exists(),
        "the default folder is left alone"
    );

    // The variable moves it the same way: a run from another folder finds the cache.
    let again = h.process(
        &h.b,
        &[],
        &[("FERNANDO_CACHE__DATA_DIR", moved_text.as_str())],
    );
    assert!(all_hits(&again), "{again}");

    // `stats` on the default folder finds no database, says where it looked, and creates nothing.
    let out = h.stats(&h.b, &["stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");
    let said = text(&out.stderr);
    let expected = path_text(&h.default_dir().join("fernando-cache.sqlite3"));
    assert!(
        said.contains("no statistics database at") && said.contains(&expected),
        "{said}"
    );
    assert!(!h.default_dir().exists(), "stats created {expected}");

    let rows = acme_rows(&h.stats(
        &h.b,
        &["--data-dir", moved_text.as_str(), "stats", "--json"],
    ));
    assert!(!rows.is_empty(), "the moved statistics");
}

#[test]
fn help_names_the_data_folder_this_user_gets() {
    let h = Home::new();
    let out = h.command(&h.a).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("--data-dir") && help.contains(&path_text(&h.default_dir())),
        "{help}"
    );
    let moved = path_text(&h.home.join("elsewhere"));
    let out = h
        .command(&h.a)
        .arg("--help")
        .env("FERNANDO_CACHE__DATA_DIR", &moved)
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains(&moved), "{}", text(&out.stdout));
}

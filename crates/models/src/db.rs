//! Connecting to PostgreSQL or SQLite, chosen from the URL's scheme; a new SQLite database made the owner's alone.

use diesel::{Connection, PgConnection, SqliteConnection, connection::SimpleConnection};

use crate::{ModelError, error::redact};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://path`, `sqlite:path` or a plain path ending in `.db`, `.sqlite` or `.sqlite3`.
    Sqlite,
}

impl DbKind {
    /// Classifies a URL and returns what to hand to the driver.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedUrl`] for any other scheme: an unknown URL never becomes a new SQLite file.
    pub fn parse(url: &str) -> Result<(DbKind, String), ModelError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok((DbKind::Postgres, url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ModelError::UnsupportedUrl(url.to_owned()));
            }
            return Ok((DbKind::Sqlite, path.to_owned()));
        }
        let plain_path = !url.contains("://")
            && [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| url.ends_with(ext));
        if plain_path {
            return Ok((DbKind::Sqlite, url.to_owned()));
        }
        Err(ModelError::UnsupportedUrl(redact(url)))
    }
}

/// A connection to either database. Diesel's `MultiConnection` lets one query serve both.
#[derive(diesel::MultiConnection)]
pub enum Db {
    /// PostgreSQL.
    Postgresql(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Postgresql(_) => "Db::Postgresql",
            Db::Sqlite(_) => "Db::Sqlite",
        })
    }
}

/// SQLite connections put back for reuse, with their URLs ([`Db::put_back`]).
static IDLE: std::sync::Mutex<Vec<(String, Db)>> = std::sync::Mutex::new(Vec::new());

/// Most connections kept idle: a process uses one or two databases.
const MAX_IDLE: usize = 4;

impl Db {
    /// Opens a connection to the database `url` names. SQLite files get WAL mode and a busy timeout; a missing
    /// file and its missing folders are created the owner's alone (`0600`, `0700`: the rows name tenants and
    /// what they cost), as the disk cache's are, and SQLite's `-wal` and `-shm` files copy the file's mode.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedUrl`] or [`ModelError::Connect`].
    pub fn open(url: &str) -> Result<Db, ModelError> {
        let shown = redact(url);
        let fail = |message: String| ModelError::Connect {
            url: shown.clone(),
            message: without_credentials(message, url),
        };
        match DbKind::parse(url)? {
            (DbKind::Postgres, url) => PgConnection::establish(&url)
                .map(Db::Postgresql)
                .map_err(|e| fail(e.to_string())),
            (DbKind::Sqlite, path) => {
                // SQLite's own names (`:memory:`, `file:` URIs) are not files to create.
                if path != ":memory:" && !path.starts_with("file:") {
                    owner_only::create(std::path::Path::new(&path))
                        .map_err(|e| fail(e.to_string()))?;
                }
                let mut conn =
                    SqliteConnection::establish(&path).map_err(|e| fail(e.to_string()))?;
                // The busy timeout first: the journal-mode pragma (and SQLite's WAL recovery on a connection's
                // first read) takes a lock, and another process opening the file at the same moment must wait
                // for it, not fail with "database is locked". `synchronous = NORMAL`, WAL's usual companion: a
                // commit is not flushed to the disk by itself (the checkpoint is), so a power loss may forget the
                // last commits but never corrupts the file — for statistics rows, the right trade (issue 32,
                // item 4: a one-document `process` spent a third of its wall time in `fsync`).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 2000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| fail(e.to_string()))?;
                Ok(Db::Sqlite(conn))
            }
        }
    }

    /// A connection to `url`: one this process put back ([`Db::put_back`]) when there is one, else a new one
    /// ([`Db::open`]).
    ///
    /// # Errors
    /// As [`Db::open`].
    pub fn reuse(url: &str) -> Result<Db, ModelError> {
        let idle = {
            let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
            idle.iter()
                .position(|(u, _)| u == url)
                .map(|i| idle.swap_remove(i).1)
        };
        idle.map_or_else(|| Db::open(url), Ok)
    }

    /// Keeps a SQLite connection to `url` open for this process's next [`Db::reuse`] (a few at most; others, and
    /// PostgreSQL connections, are closed). SQLite checkpoints its write-ahead log and deletes it when a file's
    /// last connection closes, and the next open makes it again: a one-document `process` opened its statistics
    /// three times (migrations, the read history, the recorder) and spent a third of its wall time so (issue 32,
    /// item 4). A connection kept is never closed: the process's end leaves the log for the next process, which
    /// reads it back as SQLite always does.
    pub fn put_back(self, url: &str) {
        if self.kind() != DbKind::Sqlite {
            return;
        }
        let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((url.to_owned(), self));
        }
    }

    /// Which database this is.
    pub fn kind(&self) -> DbKind {
        match self {
            Db::Postgresql(_) => DbKind::Postgres,
            Db::Sqlite(_) => DbKind::Sqlite,
        }
    }
}

/// Where `url` points, for a person to read: a SQLite database's file, or the URL with its password hidden.
pub fn describe_url(url: &str) -> String {
    match DbKind::parse(url) {
        Ok((DbKind::Sqlite, path)) => path,
        _ => redact(url),
    }
}

/// A driver's error message, unless it repeats the URL's credentials (PostgreSQL's URL parser quotes the URL, or
/// the part it could not read, which may be the password): then a message that names no part of it.
fn without_credentials(message: String, url: &str) -> String {
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(info, _)| info)
        .filter(|info| !info.is_empty());
    let Some(userinfo) = userinfo else {
        return message;
    };
    let password = userinfo.split_once(':').map(|(_, p)| p).unwrap_or("");
    let leaks = message.contains(userinfo)
        || message.contains(url)
        || (!password.is_empty() && message.contains(password));
    if leaks {
        "the URL could not be read or used (its credentials are not shown); check its form: \
         postgres://user:password@host:port/database"
            .to_owned()
    } else {
        message
    }
}

/// A new SQLite database's file and folders, made the owner's alone before SQLite opens the file (SQLite
/// would create it `0644` less the umask, and its companions with the file's mode).
mod owner_only {
    use std::{fs, io, path::Path};

    /// Creates the missing folders of `path` `0700` and, when it does not exist, the file `0600` (an empty
    /// file is an empty database to SQLite). What exists is left as it is.
    pub(super) fn create(path: &Path) -> io::Result<()> {
        let mut folder = fs::DirBuilder::new();
        folder.recursive(true);
        let mut file = fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            folder.mode(0o700);
            file.mode(0o600);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            folder.create(parent)?;
        }
        match file.open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `rows` in the order of their conflict key. Every upsert that writes several rows sorts them first: replicas
/// flushing at once then lock shared rows in one order, and PostgreSQL cannot find a deadlock between them.
pub(crate) fn in_lock_order<T, K: Ord>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut ordered: Vec<&T> = rows.iter().collect();
    ordered.sort_by_cached_key(|row| key(row));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_cannot_be_read_is_never_quoted_with_its_password() {
        for url in [
            "postgres://u:S3CRETdb@[::1/db",
            "postgres://u:S3CRET db@127.0.0.1/db",
        ] {
            let Err(err) = Db::open(url) else {
                panic!("{url} was accepted")
            };
            let err = err.to_string();
            assert!(!err.contains("S3CRET"), "{url}: {err}");
        }
    }

    #[test]
    fn schemes_choose_the_backend_and_unknown_ones_are_errors() {
        assert_eq!(
            DbKind::parse("postgres://u@h/db").unwrap().0,
            DbKind::Postgres
        );
        assert_eq!(
            DbKind::parse("postgresql://h/db").unwrap().0,
            DbKind::Postgres
        );
        assert_eq!(
            DbKind::parse("sqlite://var/x.sqlite3").unwrap(),
            (DbKind::Sqlite, "var/x.sqlite3".into())
        );
        assert_eq!(DbKind::parse("var/stats.db").unwrap().0, DbKind::Sqlite);
        for bad in [
            "mysql://h/db",
            "stats",
            "http://x",
            "sqlite://",
            "redis://h",
        ] {
            let err = DbKind::parse(bad).unwrap_err().to_string();
            assert!(err.contains("postgres://"), "{bad}: {err}");
        }
        let err = DbKind::parse("mysql://app:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw@"), "{err}");
        assert_eq!(describe_url("sqlite:///srv/x.sqlite3"), "/srv/x.sqlite3");
        assert!(!describe_url("postgres://app:pw@h/db").contains("pw"));
    }

    #[test]
    fn a_connection_put_back_is_the_one_reused_for_its_url_only() {
        use diesel::{RunQueryDsl, connection::SimpleConnection, sql_query};
        let dir = tempfile::tempdir().unwrap();
        let (url, other) = (
            format!("sqlite://{}", dir.path().join("a.db").display()),
            format!("sqlite://{}", dir.path().join("b.db").display()),
        );
        let Db::Sqlite(mut first) = Db::open(&url).unwrap() else {
            panic!("a SQLite URL opened something else")
        };
        // A temporary table lives in its connection alone: seeing it again means the same connection.
        first
            .batch_execute("CREATE TEMP TABLE mark (x INTEGER)")
            .unwrap();
        Db::Sqlite(first).put_back(&url);
        let seen = |db: Db| {
            let Db::Sqlite(mut c) = db else {
                unreachable!()
            };
            sql_query("SELECT x FROM temp.mark").execute(&mut c).is_ok()
        };
        assert!(
            !seen(Db::reuse(&other).unwrap()),
            "another URL gets its own"
        );
        assert!(seen(Db::reuse(&url).unwrap()), "the one put back is reused");
        assert!(
            !seen(Db::reuse(&url).unwrap()),
            "and taken: the next is new"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_new_sqlite_database_is_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new/stats.sqlite3");
        let url = format!("sqlite://{}", file.display());
        drop(Db::open(&url).unwrap());
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&file), 0o600);
    }
}

//! The cache file's format: its tables, and how a file is created, recreated from an older format, or refused.

use rusqlite::Connection;

use super::ledger;

/// The on-disk format this build reads and writes.
const FORMAT: i64 = 1;
/// `PRAGMA application_id` of a fernando-cache file: "FCDB".
const APPLICATION_ID: i64 = 0x4643_4442;

const SCHEMA: &str = "
CREATE TABLE entries (
    key TEXT NOT NULL UNIQUE,
    value BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX entries_by_expiry ON entries (expires_at);
CREATE TABLE generations (
    key TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT INTO totals VALUES (1, 0);
CREATE TRIGGER entries_added AFTER INSERT ON entries
    BEGIN UPDATE totals SET bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size WHERE id = 1; END;
CREATE TRIGGER entries_resized AFTER UPDATE OF size ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
";

/// Creates the schema in a new file, recreates it in a file of an older format, and refuses a file that is not
/// ours or is newer — all in one write transaction, so processes opening a new file at once create it once.
pub(super) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    let refuse = |why: String| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(why),
        )
    };
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 && app != APPLICATION_ID {
            return Err(refuse(
                "the file is not a fernando-cache disk cache; point disk.path at another file"
                    .into(),
            ));
        }
        if version == FORMAT {
            return conn.execute_batch(ledger::SCHEMA);
        }
        if version > FORMAT {
            return Err(refuse(format!(
                "the file has format {version}, written by a newer fernando-cache; this build reads format \
                 {FORMAT}"
            )));
        }
        // New, or an older format: a cache can be rebuilt.
        conn.execute_batch(
            "DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS generations; DROP TABLE IF EXISTS totals; \
             DROP TABLE IF EXISTS quota_ledger; DROP TABLE IF EXISTS quota_windows;",
        )?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(ledger::SCHEMA)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", FORMAT)?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

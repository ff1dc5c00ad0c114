//! Embedded migrations for both databases: run, status, revert.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{Db, ModelError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Applied and pending migration versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions already applied.
    pub applied: Vec<String>,
    /// Versions still to apply.
    pub pending: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Migration(e.to_string())
}

macro_rules! with_harness {
    ($db:expr, |$conn:ident, $migrations:ident| $body:expr) => {
        match $db {
            Db::Postgresql($conn) => {
                let $migrations = POSTGRES;
                $body
            }
            Db::Sqlite($conn) => {
                let $migrations = SQLITE;
                $body
            }
        }
    };
}

/// Applies every pending migration; returns the versions applied (empty when up to date).
///
/// # Errors
/// [`ModelError::Migration`].
///
/// Replicas that start together on a fresh database each call this: on PostgreSQL they take turns under a
/// session advisory lock, on SQLite inside one exclusive transaction, so the schema is made once and every
/// caller succeeds (the later ones find nothing pending).
pub fn run_pending(db: &mut Db) -> Result<Vec<String>, ModelError> {
    use diesel::connection::SimpleConnection;
    match db {
        Db::Postgresql(conn) => {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(err)?;
            let applied = conn
                .run_pending_migrations(POSTGRES)
                .map(|v| v.iter().map(ToString::to_string).collect())
                .map_err(err);
            let unlocked = conn
                .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .map_err(err);
            let applied = applied?;
            unlocked?;
            Ok(applied)
        }
        Db::Sqlite(conn) => conn
            // One runner at a time: the others wait on the write lock (the connection's busy timeout), then
            // find nothing pending. Each migration's own transaction becomes a savepoint inside this one.
            .exclusive_transaction(|conn| {
                conn.run_pending_migrations(SQLITE)
                    .map(|v| v.iter().map(ToString::to_string).collect())
                    .map_err(diesel::result::Error::QueryBuilderError)
            })
            .map_err(err),
    }
}

/// The advisory lock key migrations run under on PostgreSQL (an arbitrary constant: "fc-migr").
const MIGRATION_LOCK: i64 = 0x0066_632d_6d69_6772;

/// Which migrations are applied and which are pending.
///
/// # Errors
/// [`ModelError::Migration`].
pub fn status(db: &mut Db) -> Result<MigrationStatus, ModelError> {
    with_harness!(db, |conn, migrations| {
        let applied = conn
            .applied_migrations()
            .map_err(err)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let pending = conn
            .pending_migrations(migrations)
            .map_err(err)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
        Ok(MigrationStatus { applied, pending })
    })
}

/// Reverts the most recent migration; returns its version.
///
/// # Errors
/// [`ModelError::Migration`] (also when nothing is applied).
pub fn revert_last(db: &mut Db) -> Result<String, ModelError> {
    with_harness!(db, |conn, migrations| conn
        .revert_last_migration(migrations)
        .map(|v| v.to_string())
        .map_err(err))
}

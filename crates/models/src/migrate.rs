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
pub fn run_pending(db: &mut Db) -> Result<Vec<String>, ModelError> {
    with_harness!(db, |conn, migrations| conn
        .run_pending_migrations(migrations)
        .map(|v| v.iter().map(ToString::to_string).collect())
        .map_err(err))
}

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

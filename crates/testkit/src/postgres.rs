//! Throwaway PostgreSQL databases on the server the machine runs (CI: 127.0.0.1:5432, trust auth).

use diesel::{Connection, PgConnection, RunQueryDsl};

/// The maintenance URL tests connect to in order to create databases: `FERNANDO_TEST_POSTGRES_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn admin_url() -> String {
    std::env::var("FERNANDO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test and dropped (with its connections) when this value is dropped.
#[derive(Debug)]
pub struct PostgresDb {
    name: String,
    url: String,
}

impl PostgresDb {
    /// Creates an empty database with a unique name.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached — with a message saying how to provide it (never a silent skip).
    pub fn create() -> PostgresDb {
        let admin = admin_url();
        let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}). These tests need a real server: `cargo xtask test` \
                 starts or installs one, or set FERNANDO_TEST_POSTGRES_URL."
            )
        });
        // Process id, a per-process sequence and the clock: tests of one process running at the same instant
        // (the clock's resolution can be coarse) still get different names.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "fc_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PostgresDb { name, url }
    }

    /// `postgres://…/fc_test_…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with its host and port replaced, e.g. to go through a [`crate::TcpProxy`].
    pub fn url_via(&self, host_port: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (auth_host, path) = rest.split_once('/').expect("a database path");
        let auth = auth_host
            .rsplit_once('@')
            .map(|(a, _)| format!("{a}@"))
            .unwrap_or_default();
        format!("{scheme}://{auth}{host_port}/{path}")
    }

    /// The upstream `host:port`.
    pub fn host_port(&self) -> String {
        let rest = self.url.split_once("://").expect("a URL").1;
        let auth_host = rest.split_once('/').expect("a database path").0;
        auth_host
            .rsplit_once('@')
            .map_or(auth_host, |(_, h)| h)
            .to_owned()
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

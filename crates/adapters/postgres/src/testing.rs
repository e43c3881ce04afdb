//! Test support for this and other crates: a fresh, uniquely named database per test on
//! the server of `CFACTORY_TEST_DATABASE_URL` or `DATABASE_URL`, dropped when the test
//! ends. Always compiled, so other crates' tests can use it.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh database, dropped (with its connections forced off) on `Drop`.
pub struct TestDatabase {
    url: String,
    admin_url: String,
    name: String,
    #[cfg(feature = "testcontainers")]
    _container: Option<
        testcontainers_modules::testcontainers::ContainerAsync<
            testcontainers_modules::postgres::Postgres,
        >,
    >,
}

/// The server the tests use: `CFACTORY_TEST_DATABASE_URL`, else `DATABASE_URL`. `cargo
/// xtask test` sets the first, because a changed `DATABASE_URL` makes cargo rebuild sqlx's
/// macros and everything above them.
pub fn server_url() -> Option<String> {
    ["CFACTORY_TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|u| !u.is_empty()))
}

impl TestDatabase {
    /// Creates a database named for this process and a counter on the server of
    /// `CFACTORY_TEST_DATABASE_URL` or `DATABASE_URL` (with the `testcontainers` feature and
    /// neither set, in a new
    /// Postgres container). Panics when there is no server to use.
    pub async fn create() -> TestDatabase {
        #[cfg(feature = "testcontainers")]
        let (admin_url, container) = match server_url() {
            Some(url) => (url, None),
            None => {
                let (url, container) = start_container().await;
                (url, Some(container))
            }
        };
        #[cfg(not(feature = "testcontainers"))]
        let admin_url = server_url().unwrap_or_else(|| {
            panic!(
                "PostgreSQL tests need a server: set CFACTORY_TEST_DATABASE_URL or DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres) or run `cargo xtask test`"
            )
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "cfactory_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server at {admin_url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        TestDatabase {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            #[cfg(feature = "testcontainers")]
            _container: container,
        }
    }

    /// The URL of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(feature = "testcontainers")]
async fn start_container() -> (
    String,
    testcontainers_modules::testcontainers::ContainerAsync<
        testcontainers_modules::postgres::Postgres,
    >,
) {
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    let container = testcontainers_modules::postgres::Postgres::default()
        .start()
        .await
        .unwrap_or_else(|e| panic!("cannot start a Postgres container (is Docker running?): {e}"));
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .unwrap_or_else(|e| panic!("the Postgres container has no port: {e}"));
    (
        format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
        container,
    )
}

/// `url` with its database replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on a future; a thread
        // with its own runtime can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t2"), "postgres://h/t2");
    }
}

//! CFactory's PostgreSQL store: an adapter on the hexagon's edge that implements the
//! domain's [`WorkItemStore`] and [`ApiKeyStore`] ports over sqlx.
//!
//! Ingest goes through one writer task per store, which applies every request waiting in
//! one transaction (group commit) under a per-tenant advisory lock, so several processes
//! can share a database. Reads go straight to the pool. Committed changes are announced
//! with `NOTIFY`, and [`WorkItemStore::watch`] hears them from any process. sqlx types never
//! leave this crate.

mod actions;
mod audit;
mod error;
mod feed;
mod keys;
mod read;
mod rows;
mod tcp;
pub mod testing;
mod users;
mod writer;

/// The schema (`migrations/postgres`, embedded at build time).
mod migrations {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

    #[cfg(test)]
    mod tests {
        /// The embedded list is what sqlx itself reads from the folder: same versions,
        /// descriptions, kinds, text and checksums (so databases migrated by earlier
        /// builds still match).
        #[tokio::test]
        async fn the_embedded_migrations_are_the_folders() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/postgres");
            let read = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
                .await
                .unwrap();
            let embedded = super::migrator();
            let view = |m: &sqlx::migrate::Migrator| {
                m.iter()
                    .map(|m| {
                        (
                            m.version,
                            m.description.to_string(),
                            m.migration_type,
                            m.sql.as_str().to_owned(),
                            m.checksum.to_vec(),
                            m.no_tx,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert!(embedded.iter().count() >= 10, "too few migrations embedded");
            assert_eq!(view(&embedded), view(&read));
        }
    }
}

pub use writer::WriterInstruments;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cfactory_domain::correlate::IngestOutcome;
use cfactory_domain::ports::{
    ChangeSink, ListQuery, StoreError, Timeline, TimelineCursor, UsageGroupBy, UsageRow,
    WorkItemPage, WorkItemStore,
};
use cfactory_domain::upstream::TaskList;
use cfactory_domain::{
    Clock, CompletionEvent, CorrelationKey, Service, SystemClock, TenantId, WorkItem,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection, PgPool};

use crate::error::{migrate_error, store_error};

/// How long `connect` waits for the server before it answers `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection (opening one, or checking an idle
/// one is alive) before it answers `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a [`PgStore`] connects and behaves.
pub struct PgOptions {
    /// Most connections the pool opens (the writer and the change listener take one each).
    pub max_connections: u32,
    /// Whether `connect` applies pending migrations.
    pub migrate: bool,
    /// Stamps `received_at` on arriving events.
    pub clock: Arc<dyn Clock>,
    /// The longest a write waits before it answers `Unavailable`: for a lock (a tenant's
    /// write lock held by a frozen or cut-off peer process, a row lock) or for a database
    /// that does not answer at all. See [`lock_wait`] and [`answer_within`].
    pub lock_timeout: Duration,
    /// Where the writer reports its groups and statements (no-ops by default).
    pub instruments: WriterInstruments,
}

/// How busy a store is, as [`PgStore::load`] samples it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreLoad {
    /// Ingest requests queued for the writer, not yet taken.
    pub writer_queue: usize,
    /// Open connections of the pool.
    pub connections: u32,
    /// Of which idle.
    pub idle: usize,
    /// Most connections the pool opens.
    pub max_connections: u32,
}

/// How long a statement may wait for a lock (PostgreSQL's `lock_timeout`): seven tenths
/// of `lock_timeout`, so the lock wait fails inside the database, cleanly and with
/// nothing written, before the caller stops waiting ([`answer_within`]).
pub fn lock_wait(lock_timeout: Duration) -> Duration {
    (lock_timeout * 7 / 10).max(Duration::from_millis(100))
}

/// How long an ingest waits for its commit before it answers `Unavailable`: nine tenths
/// of `lock_timeout`, so a database that does not answer at all (frozen, cut off without
/// a reset) costs no more than a lock held by a peer.
pub fn answer_within(lock_timeout: Duration) -> Duration {
    (lock_timeout * 9 / 10).max(Duration::from_millis(200))
}

/// The longest any one statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            migrate: true,
            clock: Arc::new(SystemClock),
            lock_timeout: Duration::from_secs(5),
            instruments: WriterInstruments::default(),
        }
    }
}

/// Turns Nagle's algorithm off and keepalive on for a new TCP connection ([`tcp`]); a
/// failure is logged and the connection kept.
async fn tune_socket(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    let port: Option<i32> = sqlx::query_scalar("SELECT inet_client_port()")
        .fetch_one(&mut *connection)
        .await?;
    let Some(port) = port.and_then(|p| u16::try_from(p).ok()) else {
        return Ok(());
    };
    match tcp::tune_for_local_port(port) {
        Ok(0) => tracing::debug!(
            port,
            "no local socket matched the connection's port; its TCP options stay as they were"
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "could not set a connection's TCP options"),
    }
    Ok(())
}

/// The PostgreSQL store; cloning shares the pool, the writer and the change feed.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    writer: writer::Writer,
    feed: feed::Feed,
}

impl PgStore {
    /// Connects to the database at `url` (and migrates it when `options.migrate`).
    /// `Unavailable` when the server cannot be reached; the message never holds the
    /// password.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let redact = |message: String| redact_password(url, message);
        let connect_options = connect_options(url)
            .map_err(|e| StoreError::Unavailable(redact(format!("bad database URL: {e}"))))?
            .options([
                (
                    "lock_timeout",
                    format!("{}ms", lock_wait(options.lock_timeout).as_millis()),
                ),
                (
                    "statement_timeout",
                    format!("{}ms", STATEMENT_TIMEOUT.as_millis()),
                ),
            ]);
        let unavailable = |detail: String| {
            StoreError::Unavailable(redact(format!(
                "cannot connect to PostgreSQL at {}: {detail}",
                display_target(url)
            )))
        };
        // One direct connection first: a refused connection fails at once, where the pool
        // would keep retrying until its timeout.
        let probe = PgConnection::connect_with(&connect_options);
        match tokio::time::timeout(CONNECT_TIMEOUT, probe).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => return Err(unavailable("timed out".into())),
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|connection, _| Box::pin(async move { tune_socket(connection).await }))
            .connect_with(connect_options)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let feed = feed::Feed::new(pool.clone());
        let store = PgStore {
            inner: Arc::new(Inner {
                writer: writer::Writer::start(
                    pool.clone(),
                    options.clock.clone(),
                    feed.held(),
                    answer_within(options.lock_timeout),
                    options.instruments,
                ),
                feed,
                pool,
                clock: options.clock,
            }),
        };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies pending migrations; running it again changes nothing.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrations::migrator()
            .run(&self.inner.pool)
            .await
            .map_err(migrate_error)
    }

    /// The writer's queue and the pool's connections now.
    pub fn load(&self) -> StoreLoad {
        let pool = &self.inner.pool;
        StoreLoad {
            writer_queue: self.inner.writer.queued(),
            connections: pool.size(),
            idle: pool.num_idle(),
            max_connections: pool.options().get_max_connections(),
        }
    }

    /// Lets the writer finish what is queued, stops the change listener and closes the
    /// pool. Calls after this answer `Unavailable`.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.feed.stop().await;
        self.inner.pool.close().await;
    }
}

/// How every connection to `url` is opened. Lookups bind whole arrays (`= ANY($2)`); a
/// cached generic plan cannot see their size and falls back to scanning the tenant, so
/// every statement is planned for its own parameters. (The writer, whose write probes
/// keys one at a time, plans it generically on the connection it holds; see `writer`.)
fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options =
        PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
    Ok(plain_on_loopback(
        options,
        url,
        std::env::var_os("PGSSLMODE").is_some(),
    ))
}

/// A server on this machine is reached without TLS unless the URL (`sslmode=`) or
/// `PGSSLMODE` (`env_sslmode`) asks for it: encryption over loopback protects nothing
/// and costs both sides CPU on every statement. Remote servers keep the driver's
/// default (`prefer`).
fn plain_on_loopback(options: PgConnectOptions, url: &str, env_sslmode: bool) -> PgConnectOptions {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let asked = env_sslmode
        || query
            .split('&')
            .any(|pair| matches!(pair.split('=').next(), Some("sslmode" | "ssl-mode")));
    let host = options.get_host();
    let loopback = host == "localhost"
        || host.starts_with('/')
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !asked {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    }
}

fn display_target(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// Removes the URL's password from `message`, in case a driver error quoted it.
fn redact_password(url: &str, message: String) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some((userinfo, _)) = rest.rsplit_once('@') else {
        return message;
    };
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => message
            .replace(&format!(":{password}@"), ":***@")
            .replace(password, "***"),
        _ => message,
    }
}

#[async_trait]
impl WorkItemStore for PgStore {
    #[tracing::instrument(name = "pg.ingest", skip_all, fields(tenant = %tenant, events = events.len()))]
    async fn ingest(
        &self,
        tenant: &TenantId,
        events: Vec<CompletionEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.writer.ingest(tenant.clone(), events).await
    }

    #[tracing::instrument(name = "pg.get", skip_all, fields(tenant = %tenant))]
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<WorkItem>, StoreError> {
        read::get(&self.inner.pool, tenant, key).await
    }

    #[tracing::instrument(name = "pg.get_many", skip_all, fields(tenant = %tenant, keys = keys.len()))]
    async fn get_many(
        &self,
        tenant: &TenantId,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>, StoreError> {
        read::get_many(&self.inner.pool, tenant, keys).await
    }

    #[tracing::instrument(name = "pg.list", skip_all, fields(tenant = %tenant))]
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<WorkItemPage, StoreError> {
        read::list(&self.inner.pool, tenant, query).await
    }

    #[tracing::instrument(name = "pg.timeline", skip_all, fields(tenant = %tenant))]
    async fn timeline(
        &self,
        tenant: &TenantId,
        key: &str,
        limit: u32,
        cursor: Option<&TimelineCursor>,
    ) -> Result<Option<Timeline>, StoreError> {
        read::timeline(&self.inner.pool, tenant, key, limit, cursor).await
    }

    #[tracing::instrument(name = "pg.usage", skip_all, fields(tenant = %tenant))]
    async fn usage(
        &self,
        tenant: &TenantId,
        group_by: UsageGroupBy,
    ) -> Result<Vec<UsageRow>, StoreError> {
        read::usage(&self.inner.pool, tenant, group_by).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        read::tenants(&self.inner.pool).await
    }

    #[tracing::instrument(name = "pg.scan_items", skip_all, fields(tenant = %tenant))]
    async fn scan_items(
        &self,
        tenant: &TenantId,
        after: Option<&CorrelationKey>,
        limit: u32,
    ) -> Result<cfactory_domain::ports::ScanPage, StoreError> {
        read::scan_items(&self.inner.pool, tenant, after, limit).await
    }

    #[tracing::instrument(name = "pg.scan_events", skip_all, fields(tenant = %tenant))]
    async fn scan_events(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<cfactory_domain::ports::EventScanPage, StoreError> {
        read::scan_events(&self.inner.pool, tenant, after, limit).await
    }

    #[tracing::instrument(name = "pg.activity", skip_all, fields(tenant = %tenant))]
    async fn activity(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<cfactory_domain::ports::ActivityRows, StoreError> {
        read::activity(&self.inner.pool, tenant, limit, before_seq).await
    }

    #[tracing::instrument(name = "pg.apply_snapshots", skip_all, fields(tenant = %tenant, service = service.as_str()))]
    async fn apply_snapshots(
        &self,
        tenant: &TenantId,
        service: Service,
        list: &TaskList,
        poll_time: DateTime<Utc>,
    ) -> Result<Vec<CorrelationKey>, StoreError> {
        let received_at = writer::to_micros(self.inner.clock.now());
        writer::apply_snapshots(
            &self.inner.pool,
            &self.inner.feed.held(),
            tenant,
            service,
            list,
            poll_time,
            received_at,
        )
        .await
    }

    async fn find_task(
        &self,
        tenant: &TenantId,
        service: Service,
        task_id: &str,
    ) -> Result<Option<CorrelationKey>, StoreError> {
        read::find_task(&self.inner.pool, tenant, service, task_id).await
    }

    async fn watch(&self, sink: Arc<dyn ChangeSink>) -> Result<(), StoreError> {
        self.inner.feed.watch(sink).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pooled_connections_have_nagle_off_and_keepalive_on() {
        let database = crate::testing::TestDatabase::create().await;
        let store = PgStore::connect(database.url(), PgOptions::default())
            .await
            .expect("the test database accepts connections");
        let mut connection = store.inner.pool.acquire().await.expect("a connection");
        let port: Option<i32> = sqlx::query_scalar("SELECT inet_client_port()")
            .fetch_one(&mut *connection)
            .await
            .expect("the port query runs");
        // Over a Unix socket there is no Nagle to turn off.
        if let Some(port) = port {
            let port = u16::try_from(port).expect("a TCP port");
            assert_eq!(tcp::is_tuned_for_local_port(port), Some(true));
        }
        drop(connection);
        store.close().await;
    }

    #[test]
    fn loopback_servers_are_reached_without_tls_unless_asked() {
        let mode = |url: &str, env: bool| {
            let options = PgConnectOptions::from_str(url).expect("a valid URL");
            plain_on_loopback(options, url, env).get_ssl_mode()
        };
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
        ] {
            assert!(matches!(mode(url, false), PgSslMode::Disable), "{url}");
            assert!(!matches!(mode(url, true), PgSslMode::Disable), "{url}");
        }
        assert!(matches!(
            mode("postgres://u@127.0.0.1/db?sslmode=require", false),
            PgSslMode::Require
        ));
        assert!(!matches!(
            mode("postgres://u@db.example/db", false),
            PgSslMode::Disable
        ));
    }

    #[tokio::test]
    async fn a_loopback_test_database_is_reached_without_tls() {
        let database = crate::testing::TestDatabase::create().await;
        let store = PgStore::connect(database.url(), PgOptions::default())
            .await
            .expect("the test database accepts connections");
        let options = PgConnectOptions::from_str(database.url()).expect("a valid URL");
        let expect_plain = matches!(
            plain_on_loopback(
                options,
                database.url(),
                std::env::var_os("PGSSLMODE").is_some()
            )
            .get_ssl_mode(),
            PgSslMode::Disable
        );
        let ssl: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_optional(&store.inner.pool)
                .await
                .expect("pg_stat_ssl answers");
        if expect_plain {
            assert_eq!(ssl, Some(false));
        }
        store.close().await;
    }

    #[test]
    fn messages_never_carry_the_password() {
        let url = "postgres://app:s3cret@db.example:5432/cfactory?sslmode=require";
        assert_eq!(display_target(url), "db.example:5432/cfactory");
        let message = redact_password(url, format!("failed for {url}"));
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(
            redact_password("postgres://db/x", "plain".into()),
            "plain".to_owned()
        );
    }
}

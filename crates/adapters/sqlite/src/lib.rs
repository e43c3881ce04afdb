//! CFactory's embedded store: [`SqliteStore`] implements the domain's `WorkItemStore` and
//! `ApiKeyStore` ports over one SQLite file (sqlx, WAL mode).
//!
//! An adapter on the hexagon's edge: it may touch sqlx and the file system, and hands the
//! domain only domain types. Reads go through a pool of read-only connections; every
//! write goes through one writer task that owns the only writing connection and applies
//! queued ingest requests together, one transaction per group (see `writer.rs`). The
//! correlation rules are the domain's [`Batch`](cfactory_domain::Batch); this crate only
//! loads what a batch needs and writes what it returns, so it behaves exactly like the
//! in-memory store.

mod actions;
mod audit;
mod error;
mod others;
mod read;
mod rows;
mod users;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cfactory_domain::correlate::IngestOutcome;
use cfactory_domain::ports::{
    ApiKey, ApiKeyStore, BrowserSession, ChangeSink, Clock, ListQuery, ServiceRegistry, StoreError,
    StoredService, Timeline, TimelineCursor, UsageGroupBy, UsageRow, WebhookSecret, WorkItemPage,
    WorkItemStore,
};
use cfactory_domain::upstream::TaskList;
use cfactory_domain::{CompletionEvent, CorrelationKey, Service, SystemClock, TenantId, WorkItem};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::error::{migrate_error, store_error, writer_gone};
use crate::writer::{IngestRequest, Job, Sinks, Writer};

pub use crate::writer::WriterInstruments;

mod migrations {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

    #[cfg(test)]
    mod tests {
        /// The embedded list is what sqlx itself reads from the folder: same versions,
        /// descriptions, kinds, text and checksums (so databases migrated by earlier
        /// builds still match).
        #[tokio::test]
        async fn the_embedded_migrations_are_the_folders() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/sqlite");
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

/// The schema (`migrations/sqlite`, embedded at build time), applied on open.
static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(migrations::migrator);

/// Read-only connections in the read pool.
const READERS: u32 = 8;
/// Requests that may wait for the writer before senders wait too.
const QUEUE_DEPTH: usize = 4096;
/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a commit is made durable (SQLite's `synchronous` setting on the writer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The write-ahead log is flushed to disk at every commit: a committed write survives
    /// a power loss or an operating-system crash.
    #[default]
    Full,
    /// The log is flushed only at checkpoints: a commit survives the process being killed,
    /// but a power loss may undo the last commits before the next checkpoint.
    Normal,
}

impl Synchronous {
    /// The setting's name, as `PRAGMA synchronous` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

/// How a [`SqliteStore`] is set up.
pub struct SqliteOptions {
    /// Stamps each event's arrival (`received_at`) and each hydration.
    pub clock: Arc<dyn Clock>,
    /// How each commit is made durable.
    pub synchronous: Synchronous,
    /// Where the writer reports its groups and statements (no-ops by default).
    pub instruments: WriterInstruments,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::default(),
            instruments: WriterInstruments::default(),
        }
    }
}

/// How busy a store is, as [`SqliteStore::load`] samples it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreLoad {
    /// Jobs (ingest requests and other writes) queued for the writer, not yet taken.
    pub writer_queue: usize,
    /// Open connections of the read pool.
    pub connections: u32,
    /// Of which idle.
    pub idle: usize,
    /// Most connections the read pool opens.
    pub max_connections: u32,
}

struct Inner {
    readers: SqlitePool,
    jobs: mpsc::Sender<Job>,
    sinks: Sinks,
    /// The writer task, until [`SqliteStore::close`] waits for it.
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The watcher of other processes' writes.
    others: tokio::task::JoinHandle<()>,
}

/// The SQLite store; cloning shares it (one writer task, one read pool).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Opens (creating if missing, parent dirs too) the database file and migrates it.
    /// `Unavailable`, naming the path and the cause, when the file cannot be created,
    /// opened or migrated.
    pub async fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let unavailable = |what: &str, cause: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!(
                "cannot {what} the SQLite database at {}: {cause}",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| unavailable("create the directory of", &e))?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false);
        let mut conn = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .connect()
            .await
            .map_err(|e| unavailable("open", &e))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| match migrate_error(e) {
                StoreError::Unavailable(cause) => unavailable("migrate", &cause),
                other => other,
            })?;
        let last_received: Option<i64> = sqlx::query("SELECT MAX(received_at) FROM events")
            .fetch_one(&mut conn)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(store_error)?;
        let last_received = last_received
            .map(|v| rows::from_micros("arrival time", v))
            .transpose()?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(base.clone().read_only(true))
            .await
            .map_err(|e| unavailable("open a reader on", &e))?;
        let seen = others::Seen {
            events: sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&mut conn)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(store_error)?,
            changes: sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM item_changes")
                .fetch_one(&mut conn)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(store_error)?,
        };
        let watcher = others::connect(base.clone())
            .await
            .map_err(|e| unavailable("open a watcher on", &e))?;
        let sinks = Sinks::default();
        let own = others::OwnWrites::default();
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer::new(
            conn,
            options.clock,
            sinks.clone(),
            last_received,
            own.clone(),
            options.instruments,
        );
        let task = tokio::spawn(writer.run(queue));
        let others = tokio::spawn(others::watch(watcher, seen, own, sinks.clone()));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                readers,
                jobs,
                sinks,
                writer: Mutex::new(Some(task)),
                others,
            }),
        })
    }

    /// The writer's queue and the read pool's connections now.
    pub fn load(&self) -> StoreLoad {
        let readers = &self.inner.readers;
        StoreLoad {
            writer_queue: self.inner.jobs.max_capacity() - self.inner.jobs.capacity(),
            connections: readers.size(),
            idle: readers.num_idle(),
            max_connections: readers.options().get_max_connections(),
        }
    }

    /// Flushes the writer (everything queued is committed or answered), then closes the
    /// connections. Calls on any clone afterwards answer `Unavailable`.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.jobs.send(Job::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
        let task = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the SQLite writer task ended badly");
        }
        self.inner.others.abort();
        self.inner.readers.close().await;
    }

    /// The writer connection's `synchronous` setting as SQLite reports it (`full`,
    /// `normal`, …): what a commit's durability actually is.
    pub async fn synchronous(&self) -> Result<String, StoreError> {
        self.exclusive(|conn| {
            Box::pin(async move {
                let level: i64 = sqlx::query("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(store_error)?;
                Ok(match level {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    3 => "extra",
                    _ => "unknown",
                }
                .to_owned())
            })
        })
        .await
    }

    /// Runs `write` alone on the writer's connection and waits for its answer: for writes
    /// that must not interleave with any other (they open `BEGIN IMMEDIATE` themselves).
    pub(crate) async fn exclusive<T: Send + 'static>(
        &self,
        write: impl for<'c> FnOnce(
            &'c mut sqlx::SqliteConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'c>,
        > + Send
        + 'static,
    ) -> Result<T, StoreError> {
        self.submit(|reply| {
            Job::Exclusive(Box::new(move |conn| {
                Box::pin(async move {
                    let _ = reply.send(write(conn).await);
                })
            }))
        })
        .await
    }

    /// Queues `job` for the writer and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(job(reply))
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

#[async_trait]
impl WorkItemStore for SqliteStore {
    #[tracing::instrument(name = "sqlite.ingest", skip_all, fields(tenant = %tenant, events = events.len()))]
    async fn ingest(
        &self,
        tenant: &TenantId,
        events: Vec<CompletionEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(|reply| {
            Job::Ingest(IngestRequest {
                tenant: tenant.clone(),
                events,
                reply,
            })
        })
        .await
    }

    #[tracing::instrument(name = "sqlite.get", skip_all, fields(tenant = %tenant))]
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<WorkItem>, StoreError> {
        read::get(&self.inner.readers, tenant, key).await
    }

    #[tracing::instrument(name = "sqlite.list", skip_all, fields(tenant = %tenant))]
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<WorkItemPage, StoreError> {
        read::list(&self.inner.readers, tenant, query).await
    }

    #[tracing::instrument(name = "sqlite.timeline", skip_all, fields(tenant = %tenant))]
    async fn timeline(
        &self,
        tenant: &TenantId,
        key: &str,
        limit: u32,
        cursor: Option<&TimelineCursor>,
    ) -> Result<Option<Timeline>, StoreError> {
        read::timeline(&self.inner.readers, tenant, key, limit, cursor).await
    }

    #[tracing::instrument(name = "sqlite.usage", skip_all, fields(tenant = %tenant))]
    async fn usage(
        &self,
        tenant: &TenantId,
        group_by: UsageGroupBy,
    ) -> Result<Vec<UsageRow>, StoreError> {
        read::usage(&self.inner.readers, tenant, group_by).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.jobs.is_closed() {
            return Err(writer_gone());
        }
        sqlx::query("SELECT 1")
            .execute(&self.inner.readers)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        read::tenants(&self.inner.readers).await
    }

    #[tracing::instrument(name = "sqlite.scan_items", skip_all, fields(tenant = %tenant))]
    async fn scan_items(
        &self,
        tenant: &TenantId,
        after: Option<&CorrelationKey>,
        limit: u32,
    ) -> Result<cfactory_domain::ports::ScanPage, StoreError> {
        read::scan_items(&self.inner.readers, tenant, after, limit).await
    }

    #[tracing::instrument(name = "sqlite.scan_events", skip_all, fields(tenant = %tenant))]
    async fn scan_events(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<cfactory_domain::ports::EventScanPage, StoreError> {
        read::scan_events(&self.inner.readers, tenant, after, limit).await
    }

    #[tracing::instrument(name = "sqlite.activity", skip_all, fields(tenant = %tenant))]
    async fn activity(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<cfactory_domain::ports::ActivityRows, StoreError> {
        read::activity(&self.inner.readers, tenant, limit, before_seq).await
    }

    #[tracing::instrument(name = "sqlite.apply_snapshots", skip_all, fields(tenant = %tenant, service = service.as_str(), rows = list.tasks.len()))]
    async fn apply_snapshots(
        &self,
        tenant: &TenantId,
        service: Service,
        list: &TaskList,
        poll_time: DateTime<Utc>,
    ) -> Result<Vec<CorrelationKey>, StoreError> {
        self.submit(|reply| Job::Snapshots {
            tenant: tenant.clone(),
            service,
            list: list.clone(),
            poll_time,
            reply,
        })
        .await
    }

    async fn find_task(
        &self,
        tenant: &TenantId,
        service: Service,
        task_id: &str,
    ) -> Result<Option<CorrelationKey>, StoreError> {
        read::find_task(&self.inner.readers, tenant, service, task_id).await
    }

    async fn watch(&self, sink: Arc<dyn ChangeSink>) -> Result<(), StoreError> {
        self.inner
            .sinks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sink);
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        self.submit(|reply| Job::CreateKey {
            key: key.clone(),
            secret_sha256: secret_sha256.to_owned(),
            reply,
        })
        .await
    }

    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        read::find_key(&self.inner.readers, secret_sha256).await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        read::list_keys(&self.inner.readers).await
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.submit(|reply| Job::RevokeKey {
            id: id.to_owned(),
            at,
            reply,
        })
        .await
    }

    async fn has_active_keys(&self) -> Result<bool, StoreError> {
        read::has_active_keys(&self.inner.readers).await
    }

    async fn create_session(
        &self,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let mut tx = conn
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(store_error)?;
                sqlx::query("DELETE FROM browser_sessions WHERE expires_at <= ?1")
                    .bind(rows::micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                sqlx::query(
                    "INSERT INTO browser_sessions (token_sha256, key_sha256, expires_at) \
                     VALUES (?1, ?2, ?3)",
                )
                .bind(&session.token_sha256)
                .bind(&session.key_sha256)
                .bind(rows::micros(session.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| match store_error(e) {
                    StoreError::Duplicate(_) => StoreError::Duplicate("session".into()),
                    other => other,
                })?;
                tx.commit().await.map_err(store_error)
            })
        })
        .await
    }

    async fn find_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT key_sha256 FROM browser_sessions WHERE token_sha256 = ?1 AND expires_at > ?2",
        )
        .bind(token_sha256)
        .bind(rows::micros(now))
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(store_error)
    }

    async fn end_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let token = token_sha256.to_owned();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM browser_sessions WHERE token_sha256 = ?1")
                    .bind(&token)
                    .execute(conn)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    async fn create_webhook_secret(&self, secret: &WebhookSecret) -> Result<(), StoreError> {
        let secret = secret.clone();
        self.exclusive(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO webhook_secrets \
                     (id, tenant_id, name, secret, created_at, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(&secret.id)
                .bind(secret.tenant.as_str())
                .bind(&secret.name)
                .bind(secret.key_hex())
                .bind(rows::micros(secret.created_at))
                .bind(secret.revoked_at.map(rows::micros))
                .execute(conn)
                .await
                .map_err(store_error)?;
                Ok(())
            })
        })
        .await
    }

    async fn list_webhook_secrets(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookSecret>, StoreError> {
        type Row = (String, String, Option<String>, String, i64, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, name, secret, created_at, revoked_at FROM webhook_secrets \
             WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id",
        )
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(id, tenant, name, secret, created_at, revoked_at)| {
                let corrupt =
                    |what: String| StoreError::Unexpected(format!("webhook secret {id}: {what}"));
                Ok(WebhookSecret {
                    tenant: TenantId::parse(&tenant)
                        .map_err(|e| corrupt(format!("tenant: {e}")))?,
                    key: WebhookSecret::key_from_hex(&secret)
                        .ok_or_else(|| corrupt("not hex".into()))?,
                    name,
                    created_at: rows::from_micros("created_at", created_at)?,
                    revoked_at: revoked_at
                        .map(|r| rows::from_micros("revoked_at", r))
                        .transpose()?,
                    id,
                })
            })
            .collect()
    }

    async fn revoke_webhook_secret(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE webhook_secrets SET revoked_at = ?2 \
                     WHERE id = ?1 AND revoked_at IS NULL",
                )
                .bind(&id)
                .bind(rows::micros(at))
                .execute(conn)
                .await
                .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}

#[async_trait]
impl ServiceRegistry for SqliteStore {
    async fn stored_services(&self) -> Result<Vec<StoredService>, StoreError> {
        read::stored_services(&self.inner.readers).await
    }

    async fn set_stored_service(
        &self,
        setting: &StoredService,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.submit(|reply| Job::SetService {
            setting: setting.clone(),
            at,
            reply,
        })
        .await
    }
}

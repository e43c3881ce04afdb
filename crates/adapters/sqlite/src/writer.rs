//! The single writer: one task owns the one connection that writes. Ingest requests
//! queue on a channel; the task drains whatever is waiting (up to [`MAX_GROUP_EVENTS`])
//! and applies it in one `BEGIN IMMEDIATE` transaction (group commit), then tells the
//! change sinks and answers each waiter with its own outcomes. Hydration and API-key
//! writes go through the same task, one transaction each, so SQLite never sees two
//! writers.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use cfactory_domain::correlate::{Batch, ChangeSet, IngestOutcome, Loaded};
use cfactory_domain::ports::{ApiKey, ChangeSink, Clock, StoreError, StoredService};
use cfactory_domain::upstream::TaskList;
use cfactory_domain::workitem::StageName;
use cfactory_domain::{
    CompletionEvent, CorrelationKey, EventId, Identifier, Service, TenantId, WorkItem,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::error::store_error;
use crate::others::OwnWrites;
use crate::rows;

/// Most events one group commit applies; a request is never split.
pub(crate) const MAX_GROUP_EVENTS: usize = 512;

/// Where the writer reports its work: handles of the `metrics` facade, no-ops unless the
/// caller hands it real ones (see [`crate::SqliteOptions::instruments`]).
#[derive(Clone)]
pub struct WriterInstruments {
    /// Events in each group the writer commits in one transaction.
    pub group_events: metrics::Histogram,
    /// Seconds of each load of what a tenant's part of a group needs.
    pub load_seconds: metrics::Histogram,
    /// Seconds of writing a group's changes, its commit included.
    pub write_seconds: metrics::Histogram,
}

impl Default for WriterInstruments {
    fn default() -> Self {
        Self {
            group_events: metrics::Histogram::noop(),
            load_seconds: metrics::Histogram::noop(),
            write_seconds: metrics::Histogram::noop(),
        }
    }
}

/// The change sinks registered with `watch`, shared by the store and its writer.
pub(crate) type Sinks = Arc<RwLock<Vec<Arc<dyn ChangeSink>>>>;

/// A reply channel for one job.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One `ingest` call waiting for the writer.
pub(crate) struct IngestRequest {
    pub(crate) tenant: TenantId,
    pub(crate) events: Vec<CompletionEvent>,
    pub(crate) reply: Reply<Vec<IngestOutcome>>,
}

/// Work for the writer task.
pub(crate) enum Job {
    /// Events to correlate and record (grouped with their neighbours).
    Ingest(IngestRequest),
    /// One poll of a service's task list.
    Snapshots {
        tenant: TenantId,
        service: Service,
        list: TaskList,
        poll_time: DateTime<Utc>,
        reply: Reply<Vec<CorrelationKey>>,
    },
    /// A new API key.
    CreateKey {
        key: ApiKey,
        secret_sha256: String,
        reply: Reply<()>,
    },
    /// Revokes an API key.
    RevokeKey {
        id: String,
        at: DateTime<Utc>,
        reply: Reply<bool>,
    },
    /// Stores a tenant's setting of a service.
    SetService {
        setting: StoredService,
        at: DateTime<Utc>,
        reply: Reply<()>,
    },
    /// A write of its own (audit appends, action transitions): runs alone on the writer's
    /// connection, in the transaction it opens itself, and answers through its own channel.
    Exclusive(ExclusiveWrite),
    /// Finish what is queued, then close the connection.
    Close { reply: oneshot::Sender<()> },
}

/// A future borrowing the writer's connection.
pub(crate) type ConnFuture<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'c>>;

/// See [`Job::Exclusive`].
pub(crate) type ExclusiveWrite =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> ConnFuture<'c> + Send>;

impl Job {
    /// How much of a group this job takes.
    fn weight(&self) -> usize {
        match self {
            Self::Ingest(request) => request.events.len().max(1),
            _ => 1,
        }
    }
}

/// What one committed group produced.
struct Committed {
    /// Per request, its outcomes.
    outcomes: Vec<Vec<IngestOutcome>>,
    /// Per tenant, what the change sinks hear.
    changed: Vec<(TenantId, Written)>,
}

/// What writing one change set touched.
struct Written {
    /// Keys of the items inserted or rewritten.
    upserted: Vec<CorrelationKey>,
    /// Those items as written: what the change sinks hear, with `gone`.
    items: Vec<Arc<WorkItem>>,
    /// Keys merged away.
    gone: Vec<CorrelationKey>,
    /// The sequence range of the events appended, if any.
    seqs: Option<(i64, i64)>,
}

/// The writer task's state.
pub(crate) struct Writer {
    conn: SqliteConnection,
    clock: Arc<dyn Clock>,
    sinks: Sinks,
    /// The last arrival stamp handed out; stamps only move forward.
    last_received: Option<DateTime<Utc>>,
    /// Where the events and item changes this writer appended are noted, so the watcher
    /// of other processes' writes leaves them out.
    own: OwnWrites,
    instruments: WriterInstruments,
}

impl Writer {
    /// A writer over `conn`, stamping arrivals after `last_received`.
    pub(crate) fn new(
        conn: SqliteConnection,
        clock: Arc<dyn Clock>,
        sinks: Sinks,
        last_received: Option<DateTime<Utc>>,
        own: OwnWrites,
        instruments: WriterInstruments,
    ) -> Self {
        Self {
            conn,
            clock,
            sinks,
            last_received,
            own,
            instruments,
        }
    }

    /// Serves `jobs` until every sender is gone or a `Close` has been served.
    pub(crate) async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut closers = Vec::new();
        while let Some(first) = jobs.recv().await {
            let mut weight = first.weight();
            let mut drained = vec![first];
            while weight < MAX_GROUP_EVENTS {
                let Ok(job) = jobs.try_recv() else { break };
                weight += job.weight();
                drained.push(job);
            }
            let mut group = Vec::new();
            for job in drained {
                match job {
                    Job::Ingest(request) => group.push(request),
                    Job::Close { reply } => {
                        // Refuse new work; what is already queued is still served.
                        jobs.close();
                        closers.push(reply);
                    }
                    other => {
                        self.ingest(std::mem::take(&mut group)).await;
                        self.exclusive(other).await;
                    }
                }
            }
            self.ingest(group).await;
        }
        if let Err(error) = self.conn.close().await {
            tracing::warn!(%error, "closing the SQLite writer connection failed");
        }
        for closer in closers {
            let _ = closer.send(());
        }
    }

    /// Hands out `count` arrival stamps; returns the one before the first.
    fn stamp(&mut self, count: usize) -> DateTime<Utc> {
        let now = self.clock.now();
        let base = self.last_received.map_or(now, |t| t.max(now));
        self.last_received = Some(base + Duration::microseconds(count as i64));
        base
    }

    fn notify(&self, tenant: &TenantId, written: &Written) {
        if written.items.is_empty() && written.gone.is_empty() {
            return;
        }
        let sinks = self
            .sinks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for sink in sinks {
            sink.items_written(tenant, &written.items, &written.gone);
        }
    }

    /// Applies a group of ingest requests in one transaction; when that fails, each
    /// request is tried alone so one bad request fails alone.
    async fn ingest(&mut self, group: Vec<IngestRequest>) {
        if group.is_empty() {
            return;
        }
        let stamps: Vec<DateTime<Utc>> = group.iter().map(|r| self.stamp(r.events.len())).collect();
        let error = match self.commit(&group, &stamps).await {
            Ok(done) => return self.answer(group, done),
            Err(error) => error,
        };
        if group.len() == 1 {
            let request = group.into_iter().next().expect("one request");
            let _ = request.reply.send(Err(error));
            return;
        }
        tracing::warn!(%error, requests = group.len(), "group commit failed; retrying each request alone");
        for (request, stamp) in group.into_iter().zip(stamps) {
            match self.commit(std::slice::from_ref(&request), &[stamp]).await {
                Ok(done) => self.answer(vec![request], done),
                Err(error) => {
                    let _ = request.reply.send(Err(error));
                }
            }
        }
    }

    /// Counts the committed group, tells the sinks, then each waiter (so a caller that
    /// hears back finds the sinks already told, as with the in-memory store).
    fn answer(&self, group: Vec<IngestRequest>, done: Committed) {
        let events: usize = group.iter().map(|r| r.events.len()).sum();
        self.instruments.group_events.record(events as f64);
        for (tenant, written) in &done.changed {
            self.notify(tenant, written);
        }
        for (request, outcomes) in group.into_iter().zip(done.outcomes) {
            let _ = request.reply.send(Ok(outcomes));
        }
    }

    async fn commit(
        &mut self,
        group: &[IngestRequest],
        stamps: &[DateTime<Utc>],
    ) -> Result<Committed, StoreError> {
        // One batch per tenant, each over its requests in arrival order.
        let mut tenants: Vec<(&TenantId, Vec<usize>)> = Vec::new();
        for (i, request) in group.iter().enumerate() {
            match tenants.iter_mut().find(|(t, _)| **t == request.tenant) {
                Some((_, members)) => members.push(i),
                None => tenants.push((&request.tenant, vec![i])),
            }
        }
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)?;
        let mut outcomes = vec![Vec::new(); group.len()];
        let mut changed = Vec::with_capacity(tenants.len());
        let mut writing = std::time::Duration::ZERO;
        for (tenant, members) in tenants {
            let mut ids = BTreeSet::new();
            let mut event_ids = BTreeSet::new();
            for &i in &members {
                let (more_ids, more_event_ids) = Batch::needs(&group[i].events);
                ids.extend(more_ids);
                event_ids.extend(more_event_ids);
            }
            let started = Instant::now();
            let loaded = load(&mut tx, tenant, &ids, &event_ids).await?;
            self.instruments
                .load_seconds
                .record(started.elapsed().as_secs_f64());
            let mut batch = Batch::new(loaded);
            for &i in &members {
                let base = stamps[i];
                outcomes[i] = group[i]
                    .events
                    .iter()
                    .zip(1..)
                    .map(|(event, n)| batch.apply(event, base + Duration::microseconds(n)))
                    .collect();
            }
            let started = Instant::now();
            let written = write(&mut tx, tenant, batch.finish()).await?;
            writing += started.elapsed();
            changed.push((tenant.clone(), written));
        }
        let started = Instant::now();
        tx.commit().await.map_err(store_error)?;
        writing += started.elapsed();
        self.instruments.write_seconds.record(writing.as_secs_f64());
        for (_, written) in &changed {
            if let Some((first, last)) = written.seqs {
                self.own.events.note(first, last);
            }
        }
        Ok(Committed { outcomes, changed })
    }

    /// Runs a job that is not grouped, in its own transaction.
    async fn exclusive(&mut self, job: Job) {
        match job {
            Job::Snapshots {
                tenant,
                service,
                list,
                poll_time,
                reply,
            } => {
                let result = self.snapshots(&tenant, service, &list, poll_time).await;
                let result = result.map(|written| {
                    self.notify(&tenant, &written);
                    written.upserted
                });
                let _ = reply.send(result);
            }
            Job::CreateKey {
                key,
                secret_sha256,
                reply,
            } => {
                let _ = reply.send(self.create_key(&key, &secret_sha256).await);
            }
            Job::RevokeKey { id, at, reply } => {
                let _ = reply.send(self.revoke_key(&id, at).await);
            }
            Job::SetService { setting, at, reply } => {
                let _ = reply.send(self.set_stored_service(&setting, at).await);
            }
            // `run` groups these and handles closing itself; served here only for
            // completeness.
            Job::Ingest(request) => self.ingest(vec![request]).await,
            Job::Exclusive(write) => write(&mut self.conn).await,
            Job::Close { reply } => {
                let _ = reply.send(());
            }
        }
    }

    async fn snapshots(
        &mut self,
        tenant: &TenantId,
        service: Service,
        list: &TaskList,
        poll_time: DateTime<Utc>,
    ) -> Result<Written, StoreError> {
        let received = self.clock.now();
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)?;
        let ids: BTreeSet<Identifier> = Batch::needs_snapshots(&list.tasks).into_iter().collect();
        let mut loaded = load(&mut tx, tenant, &ids, &BTreeSet::new()).await?;
        if list.complete
            && let Some(stage) = StageName::of(service)
        {
            // A complete list may clear stages whose task vanished: load every item with
            // this service's stage still open.
            let sql = format!(
                "SELECT doc FROM workitems AS w WHERE tenant_id = ?1 AND {}",
                rows::open_condition(stage)
            );
            let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
            for row in found {
                // An unreadable item is left for its next event to rebuild; the poll goes on.
                match rows::item(row.try_get("doc").map_err(store_error)?) {
                    Ok(item) => {
                        loaded
                            .items
                            .entry(item.correlation_key.clone())
                            .or_insert(item);
                    }
                    Err(e) => tracing::warn!(tenant = %tenant, error = %e,
                        "an unreadable work item is left out of this poll"),
                }
            }
        }
        let mut batch = Batch::new(loaded);
        for snap in &list.tasks {
            batch.apply_snapshot(snap, snap.updated_at.unwrap_or(poll_time), received);
        }
        if list.complete {
            let present: BTreeSet<String> = list.tasks.iter().map(|t| t.task_id.clone()).collect();
            batch.clear_missing(service, &present);
        }
        let written = write(&mut tx, tenant, batch.finish()).await?;
        let changes = log_changes(&mut tx, tenant, &written, received).await?;
        tx.commit().await.map_err(store_error)?;
        if let Some((first, last)) = changes {
            self.own.changes.note(first, last);
        }
        Ok(written)
    }

    async fn create_key(&mut self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, tenant_id, scopes, secret_sha256, created_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.tenant.as_str())
        .bind(rows::scopes_text(&key.scopes))
        .bind(secret_sha256)
        .bind(rows::micros(key.created_at))
        .bind(key.revoked_at.map(rows::micros))
        .execute(&mut self.conn)
        .await
        .map_err(|e| match store_error(e) {
            StoreError::Duplicate(_) => StoreError::Duplicate(format!("key {}", key.id)),
            other => other,
        })?;
        Ok(())
    }

    async fn set_stored_service(
        &mut self,
        setting: &StoredService,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_settings (tenant_id, name, url, token, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET url = excluded.url, \
             token = excluded.token, updated_at = excluded.updated_at",
        )
        .bind(setting.tenant.as_str())
        .bind(&setting.service)
        .bind(&setting.url)
        .bind(setting.token.as_deref())
        .bind(rows::micros(at))
        .execute(&mut self.conn)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn revoke_key(&mut self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id)
                .bind(rows::micros(at))
                .execute(&mut self.conn)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

/// Most items one upsert statement writes (15 parameters each).
const ITEMS_PER_STATEMENT: usize = 32;

/// The upsert of `rows` items, their parameters in column order, item after item.
fn upsert_items_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO workitems (tenant_id, key, created_at, updated_at, active_stage, \
           active_class, has_plan, has_code, has_test, open_plan, open_code, open_test, \
           stall_at, search_text, doc) \
         VALUES {} \
         ON CONFLICT (tenant_id, key) DO UPDATE SET created_at = excluded.created_at, \
           updated_at = excluded.updated_at, active_stage = excluded.active_stage, \
           active_class = excluded.active_class, has_plan = excluded.has_plan, \
           has_code = excluded.has_code, has_test = excluded.has_test, \
           open_plan = excluded.open_plan, open_code = excluded.open_code, \
           open_test = excluded.open_test, stall_at = excluded.stall_at, \
           search_text = excluded.search_text, doc = excluded.doc",
        vec![row; rows].join(", ")
    )
}

/// A JSON array of strings, the parameter `json_each` reads.
fn json_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    Value::Array(values.map(|v| Value::String(v.to_owned())).collect()).to_string()
}

/// An item whose stored document no longer decodes, rebuilt from its timeline so the event
/// at hand lands on it (and the rebuilt state is written back with it).
async fn rebuild(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    key: &CorrelationKey,
    error: &StoreError,
) -> Result<Option<WorkItem>, StoreError> {
    let found = sqlx::query("SELECT raw FROM events WHERE tenant_id = ?1 AND item_key = ?2")
        .bind(tenant.as_str())
        .bind(key.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    let raws = found
        .iter()
        .map(|row| row.try_get::<String, _>(0).map_err(store_error))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::warn!(tenant = %tenant, key = %key, %error, events = raws.len(),
        "rebuilding an unreadable work item from its timeline");
    Ok(WorkItem::rebuild(key.clone(), &raws))
}

/// Loads what a batch needs: the owners of `ids`, the items they point at, and which of
/// `event_ids` were already recorded.
async fn load(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    ids: &BTreeSet<Identifier>,
    event_ids: &BTreeSet<EventId>,
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    if !ids.is_empty() {
        let found = sqlx::query(
            "SELECT i.ident, i.item_key FROM json_each(?2) AS j CROSS JOIN identifiers AS i \
             WHERE i.tenant_id = ?1 AND i.ident = j.value",
        )
        .bind(tenant.as_str())
        .bind(json_list(ids.iter().map(Identifier::as_str)))
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
        for row in found {
            let ident: String = row.try_get(0).map_err(store_error)?;
            let owner = rows::key(row.try_get(1).map_err(store_error)?)?;
            loaded.owners.insert(Identifier::from_stored(ident), owner);
        }
    }
    if !loaded.owners.is_empty() {
        let keys: BTreeSet<&str> = loaded.owners.values().map(CorrelationKey::as_str).collect();
        let found = sqlx::query(
            "SELECT w.key, w.doc FROM json_each(?2) AS j CROSS JOIN workitems AS w \
             WHERE w.tenant_id = ?1 AND w.key = j.value",
        )
        .bind(tenant.as_str())
        .bind(json_list(keys.into_iter()))
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
        for row in found {
            let key = rows::key(row.try_get(0).map_err(store_error)?)?;
            let item = match rows::item(row.try_get(1).map_err(store_error)?) {
                Ok(item) => Some(item),
                Err(e) => rebuild(conn, tenant, &key, &e).await?,
            };
            if let Some(item) = item {
                loaded.items.insert(key, item);
            }
        }
    }
    if !event_ids.is_empty() {
        let found = sqlx::query(
            "SELECT e.event_id, e.item_key FROM json_each(?2) AS j CROSS JOIN events AS e \
             WHERE e.tenant_id = ?1 AND e.event_id = j.value",
        )
        .bind(tenant.as_str())
        .bind(json_list(event_ids.iter().map(EventId::as_str)))
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
        for row in found {
            let id: String = row.try_get(0).map_err(store_error)?;
            let id = EventId::parse(&id).map_err(|e| crate::error::corrupt("event id", e))?;
            loaded
                .seen
                .insert(id, rows::key(row.try_get(1).map_err(store_error)?)?);
        }
    }
    Ok(loaded)
}

/// Writes one tenant's change set inside the caller's transaction, with one bulk
/// statement per table (merges, rare, row by row).
/// How long `item_changes` rows are kept for other processes' watchers.
const CHANGES_KEPT: Duration = Duration::hours(1);

/// Appends the keys a hydration wrote to `item_changes` for other processes' watchers
/// (it appends no event to tell them by), and prunes rows past [`CHANGES_KEPT`]. Returns
/// the sequence range appended. Runs in the write's transaction, which holds the write
/// lock, so the range is unbroken.
async fn log_changes(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    written: &Written,
    at: DateTime<Utc>,
) -> Result<Option<(i64, i64)>, StoreError> {
    let keys: Vec<&CorrelationKey> = written.upserted.iter().chain(&written.gone).collect();
    sqlx::query("DELETE FROM item_changes WHERE at < ?1")
        .bind((at - CHANGES_KEPT).timestamp())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    let mut range = None;
    // Three parameters a row, well under SQLite's limit per statement.
    for chunk in keys.chunks(300) {
        let mut sql = String::from("INSERT INTO item_changes (tenant_id, item_key, at) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?)");
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for key in chunk {
            query = query
                .bind(tenant.as_str())
                .bind(key.as_str())
                .bind(at.timestamp());
        }
        let done = query.execute(&mut *conn).await.map_err(store_error)?;
        let last = done.last_insert_rowid();
        let first = last - i64::try_from(chunk.len()).unwrap_or(i64::MAX) + 1;
        range = Some(range.map_or((first, last), |(start, _): (i64, i64)| (start, last)));
    }
    Ok(range)
}

async fn write(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    changes: ChangeSet,
) -> Result<Written, StoreError> {
    let t = tenant.as_str();
    let mut seqs = None;
    for (from, to) in &changes.redirects {
        for sql in [
            "UPDATE identifiers SET item_key = ?3 WHERE tenant_id = ?1 AND item_key = ?2",
            "UPDATE events SET item_key = ?3 WHERE tenant_id = ?1 AND item_key = ?2",
        ] {
            sqlx::query(sql)
                .bind(t)
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
    }
    for key in &changes.deleted {
        for sql in [
            "DELETE FROM workitems WHERE tenant_id = ?1 AND key = ?2",
            // The survivor's usage (which absorbed these rows) is rewritten below.
            "DELETE FROM usage WHERE tenant_id = ?1 AND item_key = ?2",
        ] {
            sqlx::query(sql)
                .bind(t)
                .bind(key.as_str())
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
    }
    let upserted: Vec<CorrelationKey> = changes
        .upserts
        .iter()
        .map(|i| i.correlation_key.clone())
        .collect();
    if !changes.upserts.is_empty() {
        // Up to ITEMS_PER_STATEMENT items per statement, bound column by column: every
        // statement is a trip to SQLite's thread and back, and a bulk `json_each` upsert
        // would parse each (large) document once per column.
        for chunk in changes.upserts.chunks(ITEMS_PER_STATEMENT) {
            let rows = chunk
                .iter()
                .map(rows::ItemRow::of)
                .collect::<Result<Vec<_>, _>>()?;
            let mut query = sqlx::query(sqlx::AssertSqlSafe(upsert_items_sql(chunk.len())));
            for (item, row) in chunk.iter().zip(rows) {
                query = query
                    .bind(t)
                    .bind(item.correlation_key.as_str())
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .bind(row.active_stage)
                    .bind(row.active_class)
                    .bind(row.has[0])
                    .bind(row.has[1])
                    .bind(row.has[2])
                    .bind(row.open[0])
                    .bind(row.open[1])
                    .bind(row.open[2])
                    .bind(row.stall_at)
                    .bind(row.search_text)
                    .bind(row.doc);
            }
            query.execute(&mut *conn).await.map_err(store_error)?;
        }
        sqlx::query(
            "DELETE FROM usage WHERE tenant_id = ?1 \
             AND item_key IN (SELECT value FROM json_each(?2))",
        )
        .bind(t)
        .bind(json_list(upserted.iter().map(CorrelationKey::as_str)))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
        let usage: Vec<Value> = changes.upserts.iter().flat_map(rows::usage_rows).collect();
        if !usage.is_empty() {
            sqlx::query(
                "INSERT INTO usage (tenant_id, item_key, service, task_id, model, project, \
                   input_tokens, output_tokens, total_tokens, cost_usd, notional_cost_usd) \
                 SELECT ?1, j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, \
                   j.value->>5, j.value->>6, j.value->>7, j.value->>8, j.value->>9 \
                 FROM json_each(?2) AS j WHERE true \
                 ON CONFLICT (tenant_id, item_key, service, task_id) DO UPDATE SET \
                   input_tokens = MIN(input_tokens + excluded.input_tokens, 9223372036854775807), \
                   output_tokens = MIN(output_tokens + excluded.output_tokens, 9223372036854775807), \
                   total_tokens = MIN(total_tokens + excluded.total_tokens, 9223372036854775807), \
                   cost_usd = cost_usd + excluded.cost_usd, \
                   notional_cost_usd = notional_cost_usd + excluded.notional_cost_usd",
            )
            .bind(t)
            .bind(Value::Array(usage).to_string())
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
        }
    }
    if !changes.owners.is_empty() {
        let owners: Vec<Value> = changes
            .owners
            .iter()
            .map(|(id, key)| serde_json::json!([id.as_str(), key.as_str()]))
            .collect();
        sqlx::query(
            "INSERT INTO identifiers (tenant_id, ident, item_key) \
             SELECT ?1, j.value->>0, j.value->>1 FROM json_each(?2) AS j WHERE true \
             ON CONFLICT (tenant_id, ident) DO UPDATE SET item_key = excluded.item_key \
             WHERE item_key <> excluded.item_key",
        )
        .bind(t)
        .bind(Value::Array(owners).to_string())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    }
    if !changes.events.is_empty() {
        let events: Vec<Value> = changes
            .events
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.event_id.as_ref().map(EventId::as_str),
                    e.item_key.as_str(),
                    e.service.as_str(),
                    e.task_id,
                    e.status,
                    rows::micros(e.time),
                    rows::micros(e.received_at),
                    e.raw,
                ])
            })
            .collect();
        let appended = events.len() as i64;
        let done = sqlx::query(
            "INSERT INTO events (tenant_id, event_id, item_key, service, task_id, status, \
               time, received_at, raw) \
             SELECT ?1, j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, \
               j.value->>5, j.value->>6, j.value->>7 \
             FROM json_each(?2) AS j ORDER BY j.key",
        )
        .bind(t)
        .bind(Value::Array(events).to_string())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
        // One statement inside the write lock: its rows took consecutive sequences.
        let last = done.last_insert_rowid();
        seqs = Some((last - appended + 1, last));
    }
    Ok(Written {
        upserted,
        items: changes.upserts.into_iter().map(Arc::new).collect(),
        gone: changes.deleted,
        seqs,
    })
}

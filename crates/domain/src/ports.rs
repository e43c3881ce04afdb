//! Outbound ports: what the domain needs from the world, as traits adapters implement.
//! Each method's `///` line states its contract, including duplicates and missing rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::correlate::IngestOutcome;
use crate::event::{CompletionEvent, Service};
use crate::ids::{CorrelationKey, EventId, TenantId};
use crate::insights::{Anomaly, NeedsYou, Rollups, SearchHit, Window};
use crate::taxonomy::StatusClass;
use crate::upstream::{FeedState, HealthReport, LiveUpdate, ProcessGraph, TaskList, UpstreamError};
use crate::workitem::{StageName, WorkItem};

pub use crate::clock::Clock;

/// A store failure, translated at the adapter's boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused service; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique value already exists.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// Anything else.
    #[error("store error: {0}")]
    Unexpected(String),
}

/// Largest page of WorkItems a list returns.
pub const MAX_LIST_LIMIT: u32 = 500;
/// Default page size of WorkItem lists.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Timeline pages hold at most this many events.
pub const MAX_TIMELINE_PAGE: u32 = 1000;

/// Where a list page starts: after this (updated_at, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// The last item's `updated_at`, in microseconds.
    pub updated_at_micros: i64,
    /// The last item's key.
    pub key: String,
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl ListCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.updated_at_micros, hex(&self.key))
    }

    /// Parses the opaque text form; `None` when it was not made by [`Self::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, key) = text.split_once('.')?;
        Some(Self {
            updated_at_micros: micros.parse().ok()?,
            key: unhex(key)?,
        })
    }
}

/// A WorkItem list request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only items whose furthest started stage is this one.
    pub stage: Option<StageName>,
    /// Only items whose furthest stage is in this class.
    pub status: Option<StatusClass>,
    /// Only items with a stage from this service.
    pub service: Option<Service>,
    /// Case-insensitive text over keys, aliases, title, project, branch and task ids.
    pub text: Option<String>,
    /// Page size, already clamped.
    pub limit: u32,
    /// Where to start.
    pub cursor: Option<ListCursor>,
    /// Items whose running or stuck stage went silent before this count as stalled.
    pub stalled_before: DateTime<Utc>,
}

/// A page of WorkItems, newest change first.
#[derive(Debug, Clone)]
pub struct WorkItemPage {
    /// How many items match in all.
    pub count: u64,
    /// This page.
    pub items: Vec<WorkItem>,
    /// The next page's cursor, if there is one.
    pub next_cursor: Option<ListCursor>,
    /// How many matching items are stalled.
    pub stalled_count: u64,
}

/// Where a timeline page starts: after this (time, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineCursor {
    /// The last event's time in microseconds.
    pub time_micros: i64,
    /// The last event's store sequence.
    pub seq: i64,
}

impl TimelineCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.time_micros, self.seq)
    }

    /// Parses the opaque text form.
    pub fn decode(text: &str) -> Option<Self> {
        let (t, s) = text.split_once('.')?;
        Some(Self {
            time_micros: t.parse().ok()?,
            seq: s.parse().ok()?,
        })
    }
}

/// One recorded event on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Store sequence (arrival order).
    pub seq: i64,
    /// The event id, if it had one.
    pub event_id: Option<EventId>,
    /// The sender.
    pub service: Service,
    /// The sender's task id.
    pub task_id: String,
    /// The status as recorded.
    pub status: String,
    /// The event's time.
    pub time: DateTime<Utc>,
    /// When CFactory received it.
    pub received_at: DateTime<Utc>,
    /// The JSON exactly as received.
    pub raw: String,
}

/// A page of an item's timeline, oldest first.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The item's canonical key.
    pub correlation_key: CorrelationKey,
    /// Events on the item in all.
    pub event_count: u64,
    /// This page.
    pub events: Vec<TimelineEntry>,
    /// From the earliest to the latest event time, over the whole timeline.
    pub span_seconds: i64,
    /// The next page's cursor, if there is one.
    pub next_cursor: Option<TimelineCursor>,
}

/// One event of the tenant-wide activity feed: a timeline entry and the item it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityEntry {
    /// The canonical key of the item the event is on now.
    pub correlation_key: CorrelationKey,
    /// The event.
    pub entry: TimelineEntry,
}

/// Largest page of the activity feed.
pub const MAX_ACTIVITY_PAGE: u32 = 500;

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroupBy {
    /// By emitting service.
    Service,
    /// By repository or project.
    Project,
    /// By WorkItem key.
    Workitem,
    /// By model.
    Model,
}

impl UsageGroupBy {
    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "service" => Self::Service,
            "project" => Self::Project,
            "workitem" => Self::Workitem,
            "model" => Self::Model,
            _ => return None,
        })
    }
}

/// One usage group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The group value (`null` when the events did not say).
    pub key: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Metered dollars: spend.
    pub cost_usd: f64,
    /// Dollars subscription or local workers reported: shown apart, never spend.
    pub notional_cost_usd: f64,
}

/// Where WorkItems and their timelines live.
#[async_trait]
pub trait WorkItemStore: Send + Sync {
    /// Applies `events` for `tenant` in order and commits them: one outcome per event, in
    /// order. A re-sent id answers `Duplicate` and changes nothing. On `Err` nothing of
    /// the call is committed.
    async fn ingest(
        &self,
        tenant: &TenantId,
        events: Vec<CompletionEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError>;

    /// The item filed under `key` or under an alias of it; `None` when the tenant has
    /// neither. `liveness` is left for the caller to fill.
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<WorkItem>, StoreError>;

    /// The items filed under each of `keys` (or an alias of it), in the order asked:
    /// `None` where the tenant has neither. Stores answer it in one round trip where they
    /// can; the default asks [`Self::get`] once per key.
    async fn get_many(
        &self,
        tenant: &TenantId,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(tenant, key.as_str()).await?);
        }
        Ok(out)
    }

    /// A page of the tenant's items matching `query`, newest change first.
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<WorkItemPage, StoreError>;

    /// A page of the timeline of the item under `key` (or an alias), oldest first, at most
    /// `limit` events after `cursor`; `None` when there is no such item.
    async fn timeline(
        &self,
        tenant: &TenantId,
        key: &str,
        limit: u32,
        cursor: Option<&TimelineCursor>,
    ) -> Result<Option<Timeline>, StoreError>;

    /// The tenant's usage summed per group, largest total first.
    async fn usage(
        &self,
        tenant: &TenantId,
        group_by: UsageGroupBy,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// `Ok` when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Every tenant that has at least one item, in byte order.
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// At most `limit` of the tenant's items in key byte order, after `after` when given:
    /// how a read model loads the whole tenant a page at a time.
    async fn scan_items(
        &self,
        tenant: &TenantId,
        after: Option<&CorrelationKey>,
        limit: u32,
    ) -> Result<Vec<WorkItem>, StoreError>;

    /// The tenant's events across all items, newest arrival (highest `seq`) first: at most
    /// `limit` of them with `seq` below `before_seq` when given.
    async fn activity(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<ActivityEntry>, StoreError>;

    /// Applies one poll of `service`'s task list for `tenant` (hydration): each row lands
    /// on its WorkItem by the correlation rules without a timeline entry; unchanged rows
    /// write nothing; when `list.complete`, non-terminal stages of tasks no longer listed
    /// are cleared. Returns the keys of the items that changed.
    async fn apply_snapshots(
        &self,
        tenant: &TenantId,
        service: Service,
        list: &TaskList,
        poll_time: DateTime<Utc>,
    ) -> Result<Vec<CorrelationKey>, StoreError> {
        let _ = (tenant, service, list, poll_time);
        Err(StoreError::Unexpected(
            "this store does not take snapshots".into(),
        ))
    }

    /// The key of the item that `service`'s task `task_id` belongs to, if any.
    async fn find_task(
        &self,
        tenant: &TenantId,
        service: Service,
        task_id: &str,
    ) -> Result<Option<CorrelationKey>, StoreError> {
        let Some(prefix) = service.synthetic_prefix() else {
            return Ok(None);
        };
        Ok(self
            .get(tenant, &format!("{prefix}{task_id}"))
            .await?
            .map(|item| item.correlation_key))
    }

    /// Registers `sink` to hear of every committed change to any item, by any process
    /// sharing the store where the store can tell (Postgres LISTEN/NOTIFY).
    async fn watch(&self, sink: Arc<dyn ChangeSink>) -> Result<(), StoreError> {
        let _ = sink;
        Ok(())
    }
}

/// The insights over a tenant's items, answered from wherever the server keeps them (its
/// in-memory read model). The HTTP handlers and the copilot's tools both go through it.
#[async_trait]
pub trait InsightSource: Send + Sync {
    /// Rollups over `window` at the moment `now`.
    async fn rollups(
        &self,
        tenant: &TenantId,
        window: Window,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Rollups>, StoreError>;

    /// Every anomaly at the moment `now`, most severe first; only `key`'s when given.
    /// Shared, so a source may hand the same answer to many callers without copying it.
    async fn anomalies(
        &self,
        tenant: &TenantId,
        key: Option<&CorrelationKey>,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Vec<std::sync::Arc<Anomaly>>>, StoreError>;

    /// The items that need a person at the moment `now`, most urgent first.
    async fn needs_you(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NeedsYou>, StoreError>;

    /// At most `limit` search hits for `query`, best first.
    async fn search(
        &self,
        tenant: &TenantId,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError>;
}

/// Where the copilot's conversations persist, per tenant, as JSON documents (the copilot
/// crate owns their shape).
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores `doc` as the tenant's conversation `id`, replacing any earlier version.
    async fn save_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
        doc: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The tenant's conversation `id`; `None` when the tenant has none by that id.
    async fn load_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
}

/// Hears which items changed after each commit.
pub trait ChangeSink: Send + Sync {
    /// `keys` of `tenant` changed (ingest, hydration or merge; a key merged away is
    /// listed too, and now resolves to the item that absorbed it). Must not block.
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]);

    /// This process committed `items` of `tenant` as they are given, and merged `gone`
    /// away; a sink that keeps items can take them instead of reading them back. Stores
    /// call it in commit order with the notices of other processes. The default hears
    /// them as keys. Must not block.
    fn items_written(&self, tenant: &TenantId, items: &[Arc<WorkItem>], gone: &[CorrelationKey]) {
        let keys: Vec<CorrelationKey> = items
            .iter()
            .map(|i| i.correlation_key.clone())
            .chain(gone.iter().cloned())
            .collect();
        self.items_changed(tenant, &keys);
    }
}

/// Hears live updates from an upstream's feed.
pub trait LiveSink: Send + Sync {
    /// `service` reported `update`. Must not block.
    fn live_update(&self, service: Service, update: LiveUpdate);

    /// `service`'s live feed at `route` changed state (connected, refused, dropped).
    /// Must not block. The default ignores it.
    fn feed_state(&self, service: Service, route: &str, state: FeedState) {
        let _ = (service, route, state);
    }
}

/// One upstream service (PFactory, AIFactory, TFactory, or a fourth one), seen through its
/// own REST and WebSocket surface.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The service this adapter speaks to.
    fn service(&self) -> Service;

    /// Probes the service: online, unauthorized (401/403), offline (no connection) or
    /// error (anything else). Never fails; never puts the URL in `detail`.
    async fn probe(&self) -> HealthReport;

    /// Reads the whole task list, every page. `complete` is false when any page failed
    /// after the first; an error when none could be read.
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError>;

    /// The execution graph of one task; `NotFound` when the service has no such task.
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError>;

    /// Follows the service's live feeds, reconnecting with capped, jittered backoff, and
    /// hands every understood frame to `sink`; garbage frames are logged and skipped. Runs
    /// until the returned future is dropped. Returns at once for a service with no feed.
    async fn follow(&self, sink: Arc<dyn LiveSink>);
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read WorkItems, timelines, usage.
    Read,
    /// Change things (refresh, service URLs, confirm actions).
    Write,
    /// Post completion events.
    Ingest,
    /// Everything, including keys.
    Admin,
}

impl Scope {
    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "read" => Self::Read,
            "write" => Self::Write,
            "ingest" => Self::Ingest,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Ingest => "ingest",
            Self::Admin => "admin",
        }
    }
}

/// A stored API key (never the key itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id, shown in lists and the audit log.
    pub id: String,
    /// A human name.
    pub name: Option<String>,
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key grants `scope` (admin grants everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// Where API keys live.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key under the hex SHA-256 of its secret. `Duplicate` when the id or
    /// the hash exists.
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError>;

    /// The unrevoked key with this hash; `None` when unknown or revoked.
    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with this id; `false` when there is no such unrevoked key.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Whether any unrevoked key exists (no key means open mode).
    async fn has_active_keys(&self) -> Result<bool, StoreError>;

    /// Stores a browser session and drops every session that has ended by `now`.
    /// `Duplicate` when a session with this token hash exists.
    async fn create_session(
        &self,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The key hash of the session with this token hash, while it lasts (its end is
    /// after `now`); `None` when unknown, ended or signed out.
    async fn find_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Signs a session out; `false` when there was no such session.
    async fn end_session(&self, token_sha256: &str) -> Result<bool, StoreError>;
}

/// A browser signed in with an API key. The store holds hashes only: neither the
/// cookie's token nor the key can be read back from it. The key is looked up again on
/// every request, so revoking it ends its sessions at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Hex SHA-256 of the session cookie's token.
    pub token_sha256: String,
    /// Hex SHA-256 of the API key it signed in with.
    pub key_sha256: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Where the upstream services' base URLs live once a person sets them from the cockpit,
/// so a restart keeps them. Deployment-wide, not per tenant.
#[async_trait]
pub trait ServiceRegistry: Send + Sync {
    /// Every stored `(service, base URL)`, sorted by service name; empty when none.
    async fn service_urls(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Stores `url` for `service`, replacing any earlier URL.
    async fn set_service_url(
        &self,
        service: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

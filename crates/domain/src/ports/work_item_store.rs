//! The [`WorkItemStore`] port: where WorkItems and their timelines live, with the queries,
//! cursors and pages its methods take and return (lists, timelines, the activity feed,
//! usage).
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::{ChangeSink, StoreError};
use crate::correlate::IngestOutcome;
use crate::event::{CompletionEvent, Service};
use crate::ids::{CorrelationKey, EventId, TenantId};
use crate::taxonomy::StatusClass;
use crate::upstream::TaskList;
use crate::workitem::{StageName, WorkItem};

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
    /// Items of this page left out because their stored state no longer decodes
    /// (counted in `count`, never in `items`).
    pub unreadable: u64,
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
    /// Events of this page left out because their stored row no longer decodes (counted
    /// in `event_count`, never in `events`).
    pub unreadable: u64,
}

/// One event of the tenant-wide activity feed: a timeline entry and the item it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityEntry {
    /// The canonical key of the item the event is on now.
    pub correlation_key: CorrelationKey,
    /// The event.
    pub entry: TimelineEntry,
}

/// Rows of the activity feed, newest first: the events that read, and the rows that no
/// longer decode (damaged, edited by hand, written by another version), left out by
/// `seq` with why. Together they are at most the `limit` asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityRows {
    /// The events that read.
    pub entries: Vec<ActivityEntry>,
    /// `(seq, why)` of each row left out.
    pub unreadable: Vec<(i64, String)>,
}

impl ActivityRows {
    /// How many rows were read, left out or not.
    pub fn scanned(&self) -> usize {
        self.entries.len() + self.unreadable.len()
    }
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

/// A page of [`WorkItemStore::scan_items`].
#[derive(Debug, Default)]
pub struct ScanPage {
    /// The items that decode, in key byte order.
    pub items: Vec<WorkItem>,
    /// Keys in this page whose stored state no longer decodes, each with why: left out
    /// of `items`, never fatal.
    pub unreadable: Vec<(CorrelationKey, String)>,
    /// The last key this page covered, readable or not: the next page starts after it.
    /// `None` when the page was empty (the scan is done).
    pub last: Option<CorrelationKey>,
}

/// A page of [`WorkItemStore::scan_events`].
#[derive(Debug, Default)]
pub struct EventScanPage {
    /// How many events this page covered, readable or not.
    pub scanned: u64,
    /// Events in this page whose stored row no longer decodes, each as (store sequence,
    /// why); the text names the item the event is on.
    pub unreadable: Vec<(i64, String)>,
    /// The last sequence this page covered, readable or not: the next page starts after
    /// it. `None` when the page was empty (the scan is done).
    pub last: Option<i64>,
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
    /// `limit` events after `cursor`; `None` when there is no such item. An event whose
    /// stored row no longer decodes (its columns, or its text is not JSON) is left out and
    /// counted in the page's `unreadable`, never fatal; it still counts towards `limit`
    /// and the cursor moves past it.
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
    /// how a read model loads the whole tenant a page at a time. An item whose stored
    /// state no longer decodes is reported in the page's `unreadable`, not fatal.
    async fn scan_items(
        &self,
        tenant: &TenantId,
        after: Option<&CorrelationKey>,
        limit: u32,
    ) -> Result<ScanPage, StoreError>;

    /// At most `limit` of the tenant's events across all items in arrival order (`seq`
    /// ascending), after sequence `after` when given: how `cfactory doctor` checks every
    /// stored event a page at a time. An event is unreadable when its row's columns no
    /// longer decode or its stored text no longer parses as a completion event (what a
    /// rebuild from the timeline replays); those are reported in the page's
    /// `unreadable`, the others are only counted.
    async fn scan_events(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<EventScanPage, StoreError>;

    /// The tenant's events across all items, newest arrival (highest `seq`) first: at most
    /// `limit` rows with `seq` below `before_seq` when given. A row that no longer decodes
    /// is reported in `unreadable`, never fatal.
    async fn activity(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<ActivityRows, StoreError>;

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

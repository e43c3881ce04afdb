//! An in-memory store: the fake every port contract test also runs against, and a store
//! for tests of code above the ports. It applies the same correlation rules as the real
//! stores through [`Batch`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{self, AuditEntry, AuditHead, AuditKey, AuditLog, AuditRecord};
use crate::clock::Clock;
use crate::correlate::{Batch, ChangeSet, IngestOutcome, Loaded};
use crate::event::{CompletionEvent, Service};
use crate::ids::{CorrelationKey, EventId, Identifier, TenantId};
use crate::ports::{
    ActivityEntry, ActivityRows, ApiKey, ApiKeyStore, BrowserSession, ChangeSink, EventScanPage,
    ListCursor, ListQuery, ServiceRegistry, StoreError, StoredService, Timeline, TimelineCursor,
    TimelineEntry, UsageGroupBy, UsageRow, WebhookSecret, WorkItemPage, WorkItemStore,
};
use crate::upstream::TaskList;
use crate::workitem::StageName;
use crate::workitem::WorkItem;

mod users;

#[derive(Default)]
struct TenantData {
    owners: HashMap<Identifier, CorrelationKey>,
    items: HashMap<CorrelationKey, WorkItem>,
    events: Vec<TimelineEntry>,
    event_items: Vec<CorrelationKey>,
    seen: HashMap<EventId, CorrelationKey>,
}

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, TenantData>,
    keys: BTreeMap<String, (ApiKey, String)>,
    /// Browser sessions: token hash to key hash and end.
    sessions: HashMap<String, (String, DateTime<Utc>)>,
    /// Webhook signing secrets by id.
    webhook_secrets: BTreeMap<String, WebhookSecret>,
    services: BTreeMap<(TenantId, String), StoredService>,
    seq: i64,
    last_received: Option<DateTime<Utc>>,
    audit: Vec<AuditEntry>,
    audit_heads: HashMap<TenantId, AuditHead>,
    conversations: HashMap<(TenantId, String), serde_json::Value>,
    users: users::Users,
}

/// A store held in memory; cloning shares it.
#[derive(Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    sinks: Arc<Mutex<Vec<Arc<dyn ChangeSink>>>>,
}

impl InMemoryStore {
    /// An empty store that stamps arrivals with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::default(),
            clock,
            sinks: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }
}

fn resolve_item<'a>(data: &'a TenantData, key: &str) -> Option<&'a WorkItem> {
    let key = CorrelationKey::parse(key).ok()?;
    let owner = data.owners.get(&Identifier::key(&key))?;
    data.items.get(owner)
}

fn load(data: &TenantData, ids: Vec<Identifier>, event_ids: Vec<EventId>) -> Loaded {
    let mut loaded = Loaded::default();
    for id in ids {
        if let Some(k) = data.owners.get(&id) {
            if let Some(item) = data.items.get(k) {
                loaded.items.insert(k.clone(), item.clone());
            }
            loaded.owners.insert(id, k.clone());
        }
    }
    for id in event_ids {
        if let Some(k) = data.seen.get(&id) {
            loaded.seen.insert(id, k.clone());
        }
    }
    loaded
}

impl InMemoryStore {
    /// Writes a change set; returns the keys of items that changed.
    fn write(
        &self,
        state: &mut State,
        tenant: &TenantId,
        changes: ChangeSet,
    ) -> Vec<CorrelationKey> {
        let mut seq = state.seq;
        let data = state.tenants.entry(tenant.clone()).or_default();
        for (from, to) in &changes.redirects {
            for v in data.owners.values_mut().chain(data.seen.values_mut()) {
                if v == from {
                    *v = to.clone();
                }
            }
            for k in &mut data.event_items {
                if k == from {
                    *k = to.clone();
                }
            }
        }
        for k in &changes.deleted {
            data.items.remove(k);
        }
        // Upserted keys, then keys merged away (they now resolve to their new owner).
        let changed: Vec<CorrelationKey> = changes
            .upserts
            .iter()
            .map(|i| i.correlation_key.clone())
            .chain(changes.deleted.iter().cloned())
            .collect();
        for item in changes.upserts {
            data.items.insert(item.correlation_key.clone(), item);
        }
        for (id, k) in changes.owners {
            data.owners.insert(id, k);
        }
        for e in changes.events {
            seq += 1;
            if let Some(id) = &e.event_id {
                data.seen.insert(id.clone(), e.item_key.clone());
            }
            data.event_items.push(e.item_key);
            data.events.push(TimelineEntry {
                seq,
                event_id: e.event_id,
                service: e.service,
                task_id: e.task_id,
                status: e.status,
                time: e.time,
                received_at: e.received_at,
                raw: e.raw,
            });
        }
        state.seq = seq;
        changed
    }

    fn notify(&self, tenant: &TenantId, keys: &[CorrelationKey]) {
        if keys.is_empty() {
            return;
        }
        let sinks = self.sinks.lock().expect("sinks lock").clone();
        for sink in sinks {
            sink.items_changed(tenant, keys);
        }
    }
}

#[async_trait]
impl WorkItemStore for InMemoryStore {
    async fn ingest(
        &self,
        tenant: &TenantId,
        events: Vec<CompletionEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let now = self.clock.now();
        let (outcomes, changed) = {
            let mut state = self.lock();
            let mut received = state.last_received.map_or(now, |t| t.max(now));
            let data = state.tenants.entry(tenant.clone()).or_default();
            let (ids, event_ids) = Batch::needs(&events);
            let mut batch = Batch::new(load(data, ids, event_ids));
            let mut outcomes = Vec::with_capacity(events.len());
            for e in &events {
                received += chrono::Duration::microseconds(1);
                outcomes.push(batch.apply(e, received));
            }
            state.last_received = Some(received);
            let changed = self.write(&mut state, tenant, batch.finish());
            (outcomes, changed)
        };
        self.notify(tenant, &changed);
        Ok(outcomes)
    }

    async fn apply_snapshots(
        &self,
        tenant: &TenantId,
        service: Service,
        list: &TaskList,
        poll_time: DateTime<Utc>,
    ) -> Result<Vec<CorrelationKey>, StoreError> {
        let changed = {
            let mut state = self.lock();
            let received = self.clock.now();
            let data = state.tenants.entry(tenant.clone()).or_default();
            let mut loaded = load(data, Batch::needs_snapshots(&list.tasks), Vec::new());
            if list.complete
                && let Some(stage) = StageName::of(service)
            {
                for item in data.items.values() {
                    let live = item
                        .stages
                        .get(stage)
                        .is_some_and(|s| !s.status_class.is_terminal());
                    if live {
                        loaded
                            .items
                            .entry(item.correlation_key.clone())
                            .or_insert_with(|| item.clone());
                    }
                }
            }
            let mut batch = Batch::new(loaded);
            for snap in &list.tasks {
                batch.apply_snapshot(snap, snap.updated_at.unwrap_or(poll_time), received);
            }
            if list.complete {
                let present: BTreeSet<String> =
                    list.tasks.iter().map(|t| t.task_id.clone()).collect();
                batch.clear_missing(service, &present);
            }
            self.write(&mut state, tenant, batch.finish())
        };
        self.notify(tenant, &changed);
        Ok(changed)
    }

    async fn find_task(
        &self,
        tenant: &TenantId,
        service: Service,
        task_id: &str,
    ) -> Result<Option<CorrelationKey>, StoreError> {
        let state = self.lock();
        Ok(state.tenants.get(tenant).and_then(|d| {
            d.owners
                .get(&Identifier::task(service.as_str(), task_id))
                .cloned()
        }))
    }

    async fn watch(&self, sink: Arc<dyn ChangeSink>) -> Result<(), StoreError> {
        self.sinks.lock().expect("sinks lock").push(sink);
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<WorkItem>, StoreError> {
        let state = self.lock();
        Ok(state
            .tenants
            .get(tenant)
            .and_then(|d| resolve_item(d, key))
            .cloned())
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<WorkItemPage, StoreError> {
        let state = self.lock();
        let Some(data) = state.tenants.get(tenant) else {
            return Ok(WorkItemPage {
                count: 0,
                items: Vec::new(),
                next_cursor: None,
                stalled_count: 0,
                unreadable: 0,
            });
        };
        let needle = q.text.as_ref().map(|t| t.to_lowercase());
        let mut matching: Vec<&WorkItem> = data
            .items
            .values()
            .filter(|item| {
                let active = item.stages.active();
                q.stage.is_none_or(|s| active.is_some_and(|(n, _)| n == s))
                    && q.status
                        .is_none_or(|c| active.is_some_and(|(_, st)| st.status_class == c))
                    && q.service
                        .is_none_or(|svc| item.stages.iter().any(|(n, _)| n.service() == svc))
                    && needle
                        .as_ref()
                        .is_none_or(|n| item.search_text().contains(n.as_str()))
            })
            .collect();
        matching.sort_by(|a, b| {
            (b.updated_at.timestamp_micros(), b.correlation_key.as_str())
                .cmp(&(a.updated_at.timestamp_micros(), a.correlation_key.as_str()))
        });
        let count = matching.len() as u64;
        let stalled_count = matching
            .iter()
            .filter(|i| i.stall_clock().is_some_and(|t| t < q.stalled_before))
            .count() as u64;
        let after: Vec<&WorkItem> = matching
            .into_iter()
            .filter(|i| match &q.cursor {
                None => true,
                Some(c) => {
                    (i.updated_at.timestamp_micros(), i.correlation_key.as_str())
                        < (c.updated_at_micros, c.key.as_str())
                }
            })
            .collect();
        let items: Vec<WorkItem> = after
            .iter()
            .take(q.limit as usize)
            .map(|i| (*i).clone())
            .collect();
        let next_cursor = items
            .last()
            .filter(|_| after.len() > items.len())
            .map(|last| ListCursor {
                updated_at_micros: last.updated_at.timestamp_micros(),
                key: last.correlation_key.as_str().to_owned(),
            });
        Ok(WorkItemPage {
            count,
            items,
            next_cursor,
            stalled_count,
            unreadable: 0,
        })
    }

    async fn timeline(
        &self,
        tenant: &TenantId,
        key: &str,
        limit: u32,
        cursor: Option<&TimelineCursor>,
    ) -> Result<Option<Timeline>, StoreError> {
        let state = self.lock();
        let Some(data) = state.tenants.get(tenant) else {
            return Ok(None);
        };
        let Some(item) = resolve_item(data, key) else {
            return Ok(None);
        };
        let mut all: Vec<&TimelineEntry> = data
            .events
            .iter()
            .zip(&data.event_items)
            .filter(|(_, k)| **k == item.correlation_key)
            .map(|(e, _)| e)
            .collect();
        all.sort_by_key(|e| (e.time.timestamp_micros(), e.seq));
        let span_seconds = match (all.first(), all.last()) {
            (Some(a), Some(b)) => (b.time - a.time).num_seconds(),
            _ => 0,
        };
        let after: Vec<&TimelineEntry> = all
            .iter()
            .copied()
            .filter(|e| {
                cursor.is_none_or(|c| (e.time.timestamp_micros(), e.seq) > (c.time_micros, c.seq))
            })
            .collect();
        let events: Vec<TimelineEntry> = after
            .iter()
            .take(limit as usize)
            .map(|e| (*e).clone())
            .collect();
        let next_cursor = (after.len() > events.len()).then(|| {
            let last = events.last().expect("a full page has a last event");
            TimelineCursor {
                time_micros: last.time.timestamp_micros(),
                seq: last.seq,
            }
        });
        Ok(Some(Timeline {
            correlation_key: item.correlation_key.clone(),
            event_count: all.len() as u64,
            events,
            span_seconds,
            next_cursor,
            unreadable: 0,
        }))
    }

    async fn usage(
        &self,
        tenant: &TenantId,
        group_by: UsageGroupBy,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let state = self.lock();
        let mut groups: BTreeMap<Option<String>, UsageRow> = BTreeMap::new();
        if let Some(data) = state.tenants.get(tenant) {
            for item in data.items.values() {
                for task in &item.usage_by_task {
                    let key = match group_by {
                        UsageGroupBy::Service => Some(task.service.as_str().to_owned()),
                        UsageGroupBy::Project => item.project.clone(),
                        UsageGroupBy::Workitem => Some(item.correlation_key.to_string()),
                        UsageGroupBy::Model => task.model.clone(),
                    };
                    let t = task.total();
                    let row = groups.entry(key.clone()).or_insert(UsageRow {
                        key,
                        input_tokens: 0,
                        output_tokens: 0,
                        total_tokens: 0,
                        cost_usd: 0.0,
                        notional_cost_usd: 0.0,
                    });
                    row.input_tokens = row.input_tokens.saturating_add(t.input_tokens);
                    row.output_tokens = row.output_tokens.saturating_add(t.output_tokens);
                    row.total_tokens = row.total_tokens.saturating_add(t.total_tokens);
                    row.cost_usd += t.cost_usd;
                    row.notional_cost_usd += t.notional_cost_usd;
                }
            }
        }
        let mut rows: Vec<UsageRow> = groups.into_values().collect();
        rows.sort_by(|a, b| b.total_tokens.cmp(&a.total_tokens).then(a.key.cmp(&b.key)));
        Ok(rows)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let state = self.lock();
        let mut tenants: Vec<TenantId> = state
            .tenants
            .iter()
            .filter(|(_, data)| !data.items.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(tenants)
    }

    async fn scan_items(
        &self,
        tenant: &TenantId,
        after: Option<&CorrelationKey>,
        limit: u32,
    ) -> Result<crate::ports::ScanPage, StoreError> {
        let state = self.lock();
        let Some(data) = state.tenants.get(tenant) else {
            return Ok(crate::ports::ScanPage::default());
        };
        let mut keys: Vec<&CorrelationKey> = data
            .items
            .keys()
            .filter(|k| after.is_none_or(|a| k.as_str() > a.as_str()))
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let items: Vec<WorkItem> = keys
            .into_iter()
            .take(limit as usize)
            .map(|k| data.items[k].clone())
            .collect();
        Ok(crate::ports::ScanPage {
            last: items.last().map(|i| i.correlation_key.clone()),
            items,
            unreadable: Vec::new(),
        })
    }

    async fn scan_events(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<EventScanPage, StoreError> {
        let state = self.lock();
        let mut page = EventScanPage::default();
        let Some(data) = state.tenants.get(tenant) else {
            return Ok(page);
        };
        // Events are appended in sequence order.
        for (e, key) in data
            .events
            .iter()
            .zip(&data.event_items)
            .filter(|(e, _)| after.is_none_or(|a| e.seq > a))
            .take(limit as usize)
        {
            if let Err(why) = CompletionEvent::parse(&e.raw) {
                page.unreadable
                    .push((e.seq, format!("on work item {key}: {why}")));
            }
            page.scanned += 1;
            page.last = Some(e.seq);
        }
        Ok(page)
    }

    async fn activity(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<ActivityRows, StoreError> {
        let state = self.lock();
        let Some(data) = state.tenants.get(tenant) else {
            return Ok(ActivityRows::default());
        };
        // Events are appended in sequence order, so the newest are at the end.
        let entries = data
            .events
            .iter()
            .zip(&data.event_items)
            .rev()
            .filter(|(e, _)| before_seq.is_none_or(|b| e.seq < b))
            .take(limit as usize)
            .map(|(e, k)| ActivityEntry {
                correlation_key: k.clone(),
                entry: e.clone(),
            })
            .collect();
        Ok(ActivityRows {
            entries,
            unreadable: Vec::new(),
        })
    }
}

#[async_trait]
impl ApiKeyStore for InMemoryStore {
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.keys.contains_key(&key.id) || state.keys.values().any(|(_, h)| h == secret_sha256)
        {
            return Err(StoreError::Duplicate(format!("key {}", key.id)));
        }
        state
            .keys
            .insert(key.id.clone(), (key.clone(), secret_sha256.to_owned()));
        Ok(())
    }

    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let state = self.lock();
        Ok(state
            .keys
            .values()
            .find(|(k, h)| h == secret_sha256 && k.revoked_at.is_none())
            .map(|(k, _)| k.clone()))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.lock();
        let mut keys: Vec<ApiKey> = state.keys.values().map(|(k, _)| k.clone()).collect();
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.keys.get_mut(id) {
            Some((k, _)) if k.revoked_at.is_none() => {
                k.revoked_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn has_active_keys(&self) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .keys
            .values()
            .any(|(k, _)| k.revoked_at.is_none()))
    }

    async fn create_session(
        &self,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.sessions.retain(|_, (_, expires)| *expires > now);
        if state.sessions.contains_key(&session.token_sha256) {
            return Err(StoreError::Duplicate("session".into()));
        }
        state.sessions.insert(
            session.token_sha256.clone(),
            (session.key_sha256.clone(), session.expires_at),
        );
        Ok(())
    }

    async fn find_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .sessions
            .get(token_sha256)
            .filter(|(_, expires)| *expires > now)
            .map(|(key, _)| key.clone()))
    }

    async fn end_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        Ok(self.lock().sessions.remove(token_sha256).is_some())
    }

    async fn create_webhook_secret(&self, secret: &WebhookSecret) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.webhook_secrets.contains_key(&secret.id) {
            return Err(StoreError::Duplicate(format!(
                "webhook secret {}",
                secret.id
            )));
        }
        state
            .webhook_secrets
            .insert(secret.id.clone(), secret.clone());
        Ok(())
    }

    async fn list_webhook_secrets(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookSecret>, StoreError> {
        let state = self.lock();
        let mut out: Vec<WebhookSecret> = state
            .webhook_secrets
            .values()
            .filter(|w| tenant.is_none_or(|t| &w.tenant == t))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn revoke_webhook_secret(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.webhook_secrets.get_mut(id) {
            Some(w) if w.revoked_at.is_none() => {
                w.revoked_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl ServiceRegistry for InMemoryStore {
    async fn stored_services(&self) -> Result<Vec<StoredService>, StoreError> {
        Ok(self.lock().services.values().cloned().collect())
    }

    async fn set_stored_service(
        &self,
        setting: &StoredService,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock().services.insert(
            (setting.tenant.clone(), setting.service.clone()),
            setting.clone(),
        );
        Ok(())
    }
}

#[async_trait]
impl AuditLog for InMemoryStore {
    async fn append(
        &self,
        key: &AuditKey,
        tenant: &TenantId,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        let mut state = self.lock();
        let (seq, prev_hash) = audit::next_link(state.audit_heads.get(tenant));
        let entry_hash = audit::seal(key, tenant, seq, &record, &prev_hash);
        let entry = AuditEntry {
            id: state.audit.len() as i64 + 1,
            seq,
            tenant: tenant.clone(),
            record,
            prev_hash,
            entry_hash,
        };
        let head = audit::head(key, tenant, &entry.entry_hash, seq);
        state.audit_heads.insert(tenant.clone(), head);
        state.audit.push(entry.clone());
        Ok(entry)
    }

    async fn audit_page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let state = self.lock();
        Ok(state
            .audit
            .iter()
            .rev()
            .filter(|e| &e.tenant == tenant && before_id.is_none_or(|b| e.id < b))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn audit_chain(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<AuditEntry>, Option<AuditHead>), StoreError> {
        let state = self.lock();
        let rows = state
            .audit
            .iter()
            .filter(|e| &e.tenant == tenant)
            .cloned()
            .collect();
        Ok((rows, state.audit_heads.get(tenant).cloned()))
    }

    async fn has_chains(&self) -> Result<bool, StoreError> {
        let state = self.lock();
        Ok(!state.audit.is_empty() || !state.audit_heads.is_empty())
    }
}

#[async_trait]
impl crate::ports::ConversationStore for InMemoryStore {
    async fn save_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
        doc: &serde_json::Value,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()
            .conversations
            .insert((tenant.clone(), id.to_owned()), doc.clone());
        Ok(())
    }

    async fn load_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .lock()
            .conversations
            .get(&(tenant.clone(), id.to_owned()))
            .cloned())
    }
}

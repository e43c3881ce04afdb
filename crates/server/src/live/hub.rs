//! The live cockpit hub: fans committed WorkItem changes and upstream progress out to
//! WebSocket clients, per tenant. Ingest never waits on it: the store's change notice
//! only enqueues keys; a worker fetches each changed item once, serialises it once, and
//! offers the same frame to every client of the tenant. A client whose bounded buffer is
//! full is dropped rather than slowing anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cfactory_domain::ports::{ChangeSink, LiveSink, WorkItemStore};
use cfactory_domain::upstream::LiveUpdate;
use cfactory_domain::{Clock, CorrelationKey, Service, TenantId, WorkItem};
use chrono::Duration;
use serde_json::json;
use tokio::sync::mpsc;

/// One serialised frame, shared by every client that receives it.
pub type Frame = Arc<str>;

/// How many frames a client may have waiting before it is dropped.
pub const CLIENT_BUFFER: usize = 512;

/// How many reports may wait for the hub's worker. Past it a change report drops the
/// tenant's clients (they reconnect and start from a fresh snapshot, so they miss
/// nothing), and a progress report is dropped (the next one supersedes it).
pub const HUB_QUEUE: usize = 4096;

enum Work {
    Changed(TenantId, Vec<CorrelationKey>),
    Live(TenantId, Service, LiveUpdate),
}

struct Client {
    id: u64,
    tx: mpsc::Sender<Frame>,
}

struct Inner {
    clients: Mutex<HashMap<TenantId, Vec<Client>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    work: mpsc::Sender<Work>,
    clock: Arc<dyn Clock>,
    stall_deadline: Duration,
}

/// Fans changes out to subscribed WebSocket clients. Cloning shares it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A client's subscription: frames arrive on `frames`; when the hub drops the client the
/// channel closes.
pub struct Subscription {
    /// The subscription's id.
    pub id: u64,
    /// The client's frames.
    pub frames: mpsc::Receiver<Frame>,
}

impl Hub {
    /// Starts the hub's worker.
    pub fn start(
        store: Arc<dyn WorkItemStore>,
        clock: Arc<dyn Clock>,
        stall_deadline: Duration,
    ) -> Self {
        let (work, mut queue) = mpsc::channel(HUB_QUEUE);
        let hub = Self {
            inner: Arc::new(Inner {
                clients: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                dropped: AtomicU64::new(0),
                work,
                clock,
                stall_deadline,
            }),
        };
        let worker = hub.clone();
        tokio::spawn(async move {
            while let Some(item) = queue.recv().await {
                match item {
                    Work::Changed(tenant, keys) => {
                        worker.send_items(&*store, &tenant, keys).await;
                    }
                    Work::Live(tenant, service, update) => {
                        worker
                            .send_progress(&*store, &tenant, service, update)
                            .await;
                    }
                }
            }
        });
        hub
    }

    /// Subscribes a client of `tenant`.
    pub fn subscribe(&self, tenant: &TenantId) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::channel(CLIENT_BUFFER);
        self.clients()
            .entry(tenant.clone())
            .or_default()
            .push(Client { id, tx });
        Subscription { id, frames }
    }

    /// Removes a client (when its socket closes).
    pub fn unsubscribe(&self, tenant: &TenantId, id: u64) {
        if let Some(list) = self.clients().get_mut(tenant) {
            list.retain(|c| c.id != id);
        }
    }

    /// Clients currently subscribed.
    pub fn client_count(&self) -> usize {
        self.clients().values().map(Vec::len).sum()
    }

    /// Clients that subscribed, since start.
    pub fn subscribed_count(&self) -> u64 {
        self.inner.next_id.load(Ordering::Relaxed) - 1
    }

    /// Clients dropped because they fell behind, since start.
    pub fn dropped_count(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Vec<Client>>> {
        self.inner.clients.lock().expect("hub clients lock")
    }

    /// Offers `frame` to every client of `tenant`, dropping those that are full or gone.
    pub fn broadcast(&self, tenant: &TenantId, frame: Frame) {
        let mut clients = self.clients();
        let Some(list) = clients.get_mut(tenant) else {
            return;
        };
        let before = list.len();
        list.retain(|c| match c.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(client = c.id, "dropping a cockpit client that fell behind");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        let gone = (before - list.len()) as u64;
        if gone > 0 {
            self.inner.dropped.fetch_add(gone, Ordering::Relaxed);
        }
    }

    fn has_clients(&self, tenant: &TenantId) -> bool {
        self.clients().get(tenant).is_some_and(|l| !l.is_empty())
    }

    /// Sends `item`'s current state to the tenant's clients; `merged_from` names a key
    /// that was just merged into it.
    pub fn publish(
        &self,
        tenant: &TenantId,
        item: &WorkItem,
        merged_from: Option<&CorrelationKey>,
    ) {
        if !self.has_clients(tenant) {
            return;
        }
        let mut item = item.clone();
        item.refresh_liveness(self.inner.clock.now(), self.inner.stall_deadline);
        // The same wire format as `GET /api/workitems/{key}`.
        let frame = json!({"type": "workitem", "item": crate::api::dto::WorkItem::from(&item),
            "merged_from": merged_from.map(CorrelationKey::as_str)});
        self.broadcast(tenant, Arc::from(frame.to_string()));
    }

    async fn send_items(
        &self,
        store: &dyn WorkItemStore,
        tenant: &TenantId,
        keys: Vec<CorrelationKey>,
    ) {
        if !self.has_clients(tenant) {
            return;
        }
        let mut sent = Vec::with_capacity(keys.len());
        for key in keys {
            match store.get(tenant, key.as_str()).await {
                Ok(Some(item)) => {
                    // A merged-away key resolves to its absorber; send that once.
                    if sent.contains(&item.correlation_key) {
                        continue;
                    }
                    let merged_from = (item.correlation_key != key).then_some(&key);
                    self.publish(tenant, &item, merged_from);
                    sent.push(item.correlation_key.clone());
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "hub could not read a changed item"),
            }
        }
    }

    async fn send_progress(
        &self,
        store: &dyn WorkItemStore,
        tenant: &TenantId,
        service: Service,
        update: LiveUpdate,
    ) {
        if !self.has_clients(tenant) {
            return;
        }
        let (task_id, phase, percent, message, at, status) = match &update {
            LiveUpdate::Progress {
                task_id,
                phase,
                percent,
                message,
                at,
            } => (task_id, phase.clone(), *percent, message.clone(), *at, None),
            LiveUpdate::Status {
                task_id,
                status,
                at,
                ..
            } => (task_id, None, None, None, *at, Some(status.clone())),
        };
        let key = match store.find_task(tenant, service, task_id).await {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %e, "hub could not resolve a live task");
                None
            }
        };
        let frame = json!({
            "type": "progress",
            "correlation_key": key.map(|k| k.to_string()),
            "service": service,
            "task_id": task_id,
            "phase": phase,
            "percent": percent,
            "message": message,
            "status": status,
            "at": at,
        });
        self.broadcast(tenant, Arc::from(frame.to_string()));
    }
}

impl Hub {
    /// Queues `work` for the worker without waiting; see [`HUB_QUEUE`] for a full queue.
    fn enqueue(&self, work: Work) {
        match self.inner.work.try_send(work) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(Work::Changed(tenant, _))) => {
                let dropped = self.clients().remove(&tenant).map_or(0, |list| list.len());
                if dropped > 0 {
                    tracing::warn!(
                        %tenant,
                        clients = dropped,
                        "cockpit hub queue full; dropping the tenant's clients to resynchronise"
                    );
                    self.inner
                        .dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
            }
            Err(mpsc::error::TrySendError::Full(Work::Live(..))) => {
                tracing::debug!("cockpit hub queue full; a progress report is dropped");
            }
        }
    }
}

impl ChangeSink for Hub {
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]) {
        self.enqueue(Work::Changed(tenant.clone(), keys.to_vec()));
    }
}

/// The live progress of one tenant's upstreams, sent to that tenant's clients only.
pub struct TenantSink {
    hub: Hub,
    tenant: TenantId,
}

impl Hub {
    /// A sink for the live feeds of `tenant`'s upstream services.
    pub fn sink_for(&self, tenant: &TenantId) -> Arc<dyn LiveSink> {
        Arc::new(TenantSink {
            hub: self.clone(),
            tenant: tenant.clone(),
        })
    }
}

impl LiveSink for TenantSink {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.hub
            .enqueue(Work::Live(self.tenant.clone(), service, update));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::memory::InMemoryStore;
    use cfactory_domain::{CompletionEvent, SystemClock};
    use serde_json::Value;

    fn event(id: &str, key: &str) -> CompletionEvent {
        CompletionEvent::parse(&format!(
            r#"{{"id":"{id}","correlation_key":"{key}","service":"aifactory","task_id":"t-{key}","status":"in_progress","phase":"coding","time":"2026-11-01T10:00:00Z"}}"#
        ))
        .unwrap()
    }

    async fn setup() -> (Hub, InMemoryStore) {
        let store = InMemoryStore::new(Arc::new(SystemClock));
        let hub = Hub::start(
            Arc::new(store.clone()),
            Arc::new(SystemClock),
            Duration::seconds(900),
        );
        store.watch(Arc::new(hub.clone())).await.unwrap();
        (hub, store)
    }

    async fn next(sub: &mut Subscription) -> Value {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), sub.frames.recv())
            .await
            .expect("a frame within 5 s")
            .expect("subscribed");
        serde_json::from_str(&frame).unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_tenants_clients_instead_of_growing() {
        let (hub, _store) = setup().await;
        let acme = TenantId::parse("acme").unwrap();
        let mut mine = hub.subscribe(&TenantId::default_tenant());
        let theirs = hub.subscribe(&acme);
        let key = CorrelationKey::parse("5").unwrap();
        // The worker cannot run between these calls (one thread, no await): the queue
        // fills, and the report past it drops the tenant's clients.
        for _ in 0..HUB_QUEUE {
            hub.items_changed(&TenantId::default_tenant(), std::slice::from_ref(&key));
        }
        assert_eq!(hub.client_count(), 2, "a queue with room keeps everyone");
        hub.items_changed(&TenantId::default_tenant(), std::slice::from_ref(&key));
        assert_eq!(hub.client_count(), 1, "{}", hub.dropped_count());
        assert_eq!(hub.dropped_count(), 1);
        // The dropped client's channel ends (its socket closes, the browser reconnects
        // and starts from a snapshot); the other tenant's client stays.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while mine.frames.recv().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the dropped client's frames end");
        assert!(!theirs.frames.is_closed());
        // Progress past a full queue is dropped, nobody else.
        hub.sink_for(&acme).live_update(
            Service::AIFACTORY,
            LiveUpdate::Progress {
                task_id: "t-5".into(),
                phase: None,
                percent: None,
                message: None,
                at: chrono::Utc::now(),
            },
        );
        assert_eq!(hub.client_count(), 1);
    }

    #[tokio::test]
    async fn changes_reach_only_their_tenants_clients() {
        let (hub, store) = setup().await;
        let acme = TenantId::parse("acme").unwrap();
        let mut mine = hub.subscribe(&TenantId::default_tenant());
        let mut theirs = hub.subscribe(&acme);
        store
            .ingest(&TenantId::default_tenant(), vec![event("a", "5")])
            .await
            .unwrap();
        let frame = next(&mut mine).await;
        assert_eq!(frame["type"], "workitem");
        assert_eq!(frame["item"]["correlation_key"], "5");
        assert_eq!(frame["item"]["stages"]["code"]["status"], "in_progress");
        assert!(theirs.frames.try_recv().is_err(), "another tenant heard it");

        hub.sink_for(&TenantId::default_tenant()).live_update(
            Service::AIFACTORY,
            LiveUpdate::Progress {
                task_id: "t-5".into(),
                phase: Some("coding".into()),
                percent: Some(40.0),
                message: None,
                at: chrono::Utc::now(),
            },
        );
        let frame = next(&mut mine).await;
        assert_eq!(frame["type"], "progress");
        assert_eq!(frame["correlation_key"], "5");
        assert_eq!(frame["percent"], 40.0);
        assert!(
            theirs.frames.try_recv().is_err(),
            "another tenant heard the default tenant's upstream progress"
        );
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_dropped_and_others_keep_going() {
        let (hub, _store) = setup().await;
        let tenant = TenantId::default_tenant();
        let slow = hub.subscribe(&tenant);
        let mut fast = hub.subscribe(&tenant);
        for i in 0..=CLIENT_BUFFER {
            hub.broadcast(&tenant, Arc::from(format!("{{\"n\":{i}}}")));
            // The fast client reads as it goes.
            assert!(fast.frames.try_recv().is_ok());
        }
        assert_eq!(hub.dropped_count(), 1);
        assert_eq!(hub.client_count(), 1);
        drop(slow);
    }
}

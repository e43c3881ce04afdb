//! The read model: every tenant's WorkItems held in memory, with the search index and
//! the spike history kept current as changes commit. Insights (rollups, anomalies,
//! needs-you, search) are pure functions over it, so they answer without scanning the
//! store; the store stays the source of truth and the model is rebuilt from it at start.
//!
//! Changes arrive through [`ChangeSink`]: as the items this process committed, or as
//! keys (other processes' commits on a shared PostgreSQL, merges). One worker drains them
//! in batches, reads each changed key once, applies the items, and then hands them to the
//! cockpit hub, so a client that hears of a change and asks for insights sees that change.

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_trait::async_trait;
use cfactory_domain::insights::{
    Anomaly, Fleet, NeedsYou, Rollups, SearchHit, SearchIndex, Thresholds, Window,
};
use cfactory_domain::ports::{ChangeSink, InsightSource, StoreError, WorkItemStore};
use cfactory_domain::{CorrelationKey, TenantId, WorkItem};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::live::hub::Hub;

/// Items read per page while loading a tenant.
const LOAD_PAGE: u32 = 2_000;
/// Most changed keys one worker round applies before it lets readers in again.
const ROUND_KEYS: usize = 4_096;
/// Change reports waiting for the worker. Past it reports are dropped and the model
/// reloads from the store instead: memory stays bounded, nothing is missed.
const QUEUE_REPORTS: usize = 65_536;
/// Keys read per store round trip when applying changes.
const GET_CHUNK: usize = 500;
/// How long a request waits for the first load before answering 503.
const LOAD_WAIT: Duration = Duration::from_secs(60);
/// How long, by the clock the answers are computed for, a memoised insight answer is
/// reused while no item of the tenant changed. The answers depend on the time as well
/// (ages, stalls, windows), so they are recomputed at least this often.
const MEMO_SECONDS: i64 = 5;

/// Cost breakdown entries kept in memoised rollups: the most the API hands out.
pub const KEEP_TOP: usize = 1_000;

/// Items sampled for [`ReadModel::footprint`].
pub const FOOTPRINT_SAMPLE: usize = 256;

/// The fixed cost of one held item beyond its text and lists: the item itself, its fleet
/// entry and the key copies in the fleet's and the search index's maps (measured with
/// `size_of` plus map and `Arc` overheads).
const ITEM_FIXED_BYTES: usize =
    std::mem::size_of::<WorkItem>() + 6 * std::mem::size_of::<CorrelationKey>() + 128;

/// What the read model holds (see [`ReadModel::footprint`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Items held, over all tenants.
    pub items: usize,
    /// Items left out because their stored state cannot be read.
    pub unreadable: usize,
    /// Estimated bytes of memory per held item (0 with none held).
    pub bytes_per_item: usize,
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One tenant's items and the indexes kept beside them.
pub struct TenantView {
    /// Items by canonical key, with the totals, findings and baselines the fleet-wide
    /// answers read.
    pub fleet: Fleet,
    /// Search over keys, aliases, titles and ids.
    pub search: SearchIndex,
    /// Items whose stored state cannot be read: left out of every answer, counted.
    pub unreadable: BTreeSet<CorrelationKey>,
    /// Bumped on every applied change; memoised answers hold the version they saw.
    version: u64,
    /// Whole-fleet insight answers (rollups, anomalies, needs-you) by query, so many
    /// cockpits asking after one change cost one scan.
    memo: Mutex<HashMap<String, Memo>>,
}

/// One memoised answer.
struct Memo {
    version: u64,
    at: DateTime<Utc>,
    value: Box<dyn Any + Send + Sync>,
}

impl TenantView {
    fn new(thresholds: Thresholds) -> Self {
        Self {
            fleet: Fleet::new(thresholds),
            search: SearchIndex::default(),
            unreadable: BTreeSet::new(),
            version: 0,
            memo: Mutex::default(),
        }
    }

    fn apply(
        &mut self,
        asked: &CorrelationKey,
        found: Option<Arc<WorkItem>>,
    ) -> Option<Arc<WorkItem>> {
        let Some(item) = found else {
            self.forget(asked);
            self.unreadable.remove(asked);
            return None;
        };
        self.unreadable.remove(asked);
        self.unreadable.remove(&item.correlation_key);
        if &item.correlation_key != asked {
            // `asked` was merged into `item`: it is an alias now, not an item.
            self.forget(asked);
        }
        for alias in &item.aliases {
            if self.fleet.contains(alias) {
                self.forget(alias);
            }
        }
        self.version += 1;
        self.search.upsert(&item);
        self.fleet.upsert(item.clone());
        Some(item)
    }

    /// `key`'s stored state cannot be read: out of the answers until an event rebuilds it.
    fn unreadable(&mut self, key: &CorrelationKey) {
        self.forget(key);
        self.unreadable.insert(key.clone());
    }

    fn forget(&mut self, key: &CorrelationKey) {
        self.version += 1;
        self.fleet.remove(key);
        self.search.remove(key);
    }

    /// The answer to `query` at `now`: the memoised one when no item changed since it
    /// was computed and it is less than [`MEMO_SECONDS`] old, else `compute`d afresh.
    fn memo<T: Clone + Send + Sync + 'static>(
        &self,
        query: String,
        now: DateTime<Utc>,
        compute: impl FnOnce(&Self) -> T,
    ) -> T {
        let fresh = |m: &Memo| {
            m.version == self.version
                && now >= m.at
                && now - m.at < chrono::Duration::seconds(MEMO_SECONDS)
        };
        if let Some(value) = self
            .memo
            .lock()
            .expect("memo lock")
            .get(&query)
            .filter(|m| fresh(m))
            .and_then(|m| m.value.downcast_ref::<T>().cloned())
        {
            return value;
        }
        let value = compute(self);
        let mut memo = self.memo.lock().expect("memo lock");
        memo.retain(|_, m| fresh(m));
        memo.insert(
            query,
            Memo {
                version: self.version,
                at: now,
                value: Box::new(value.clone()),
            },
        );
        value
    }
}

struct Inner {
    worker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    thresholds: Thresholds,
    views: RwLock<HashMap<TenantId, Arc<RwLock<TenantView>>>>,
    loaded: watch::Sender<bool>,
    queue: mpsc::Sender<Change>,
    /// Set when changes may have been missed (the store's listener was cut off, the queue
    /// overflowed, a changed item could not be read): the worker reloads everything.
    resync: std::sync::atomic::AtomicBool,
}

/// One report of changed items.
enum Change {
    /// Keys to read back from the store.
    Keys(TenantId, Vec<CorrelationKey>),
    /// Items as this process committed them, and keys merged away (read back).
    Written(TenantId, Vec<Arc<WorkItem>>, Vec<CorrelationKey>),
    /// Wakes the worker to reload (the flag says so).
    Resync,
}

impl Change {
    fn size(&self) -> usize {
        match self {
            Change::Keys(_, keys) => keys.len(),
            Change::Written(_, items, gone) => items.len() + gone.len(),
            Change::Resync => 0,
        }
    }
}

/// Every tenant's items in memory. Cloning shares it.
#[derive(Clone)]
pub struct ReadModel {
    inner: Arc<Inner>,
}

/// The model is still loading, or could not load.
#[derive(Debug, thiserror::Error)]
#[error("the read model is still loading from the store")]
pub struct NotLoaded;

impl ReadModel {
    /// Starts loading every tenant from `store` and then applying changes as they are
    /// reported; each applied item is passed to `hub` for the cockpit's sockets. Register
    /// the model with the store's `watch` so it hears of changes.
    pub fn start(store: Arc<dyn WorkItemStore>, hub: Option<Hub>, thresholds: Thresholds) -> Self {
        let (queue, mut changes) = mpsc::channel(QUEUE_REPORTS);
        let (loaded, _) = watch::channel(false);
        let model = Self {
            inner: Arc::new(Inner {
                worker: std::sync::Mutex::new(None),
                thresholds,
                views: RwLock::default(),
                loaded,
                queue,
                resync: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        let worker = model.clone();
        let handle = tokio::spawn(async move {
            worker.load_all(&*store).await;
            while let Some(first) = changes.recv().await {
                let mut keys = first.size();
                let mut round = vec![first];
                while keys < ROUND_KEYS {
                    match changes.try_recv() {
                        Ok(more) => {
                            keys += more.size();
                            round.push(more);
                        }
                        Err(_) => break,
                    }
                }
                worker.apply_round(&*store, hub.as_ref(), round).await;
                worker.resync_if_asked(&*store).await;
            }
        });
        *model.inner.worker.lock().expect("read model worker lock") = Some(handle);
        model
    }

    /// Stops applying changes (before the store closes at shutdown).
    pub fn stop(&self) {
        if let Some(handle) = self
            .inner
            .worker
            .lock()
            .expect("read model worker lock")
            .take()
        {
            handle.abort();
        }
    }

    /// Loads every tenant, retrying while the store fails, then marks the model loaded.
    async fn load_all(&self, store: &dyn WorkItemStore) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.try_load_all(store).await {
                Ok(items) => {
                    tracing::info!(items, "read model loaded");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loading the read model failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        self.inner.loaded.send_replace(true);
    }

    /// When changes may have been missed, reloads every tenant from the store (retrying
    /// while it fails) so the answers catch up with whatever any process committed.
    async fn resync_if_asked(&self, store: &dyn WorkItemStore) {
        use std::sync::atomic::Ordering;
        let mut delay = Duration::from_millis(200);
        while self.inner.resync.swap(false, Ordering::AcqRel) {
            match self.try_load_all(store).await {
                Ok(items) => tracing::info!(items, "read model reloaded to catch up"),
                Err(e) => {
                    self.inner.resync.store(true, Ordering::Release);
                    tracing::warn!(error = %e, "reloading the read model failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Asks the worker to reload everything.
    fn ask_resync(&self) {
        self.inner
            .resync
            .store(true, std::sync::atomic::Ordering::Release);
        // A full queue wakes the worker anyway.
        let _ = self.inner.queue.try_send(Change::Resync);
    }

    /// Queues a report; when the queue is full the report is dropped for a reload.
    fn report(&self, change: Change) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.inner.queue.try_send(change)
            && !self
                .inner
                .resync
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tracing::warn!("read model queue full; it will reload from the store");
        }
    }

    async fn try_load_all(&self, store: &dyn WorkItemStore) -> Result<usize, StoreError> {
        let mut total = 0;
        let mut unreadable = 0usize;
        for tenant in store.tenants().await? {
            let mut view = TenantView::new(self.inner.thresholds.clone());
            let mut after: Option<CorrelationKey> = None;
            let mut items = Vec::new();
            loop {
                let page = store.scan_items(&tenant, after.as_ref(), LOAD_PAGE).await?;
                let Some(last) = page.last else { break };
                after = Some(last);
                // Left out, named once here; the rest loads.
                for (key, why) in page.unreadable {
                    tracing::error!(tenant = %tenant, key = %key, reason = %why,
                        "a stored work item cannot be read; it is left out of lists and insights");
                    unreadable += 1;
                    view.unreadable.insert(key);
                }
                for item in page.items {
                    view.search.upsert(&item);
                    items.push(Arc::new(item));
                }
            }
            view.fleet.extend(items);
            total += view.fleet.len();
            self.views_mut().insert(tenant, Arc::new(RwLock::new(view)));
        }
        if unreadable > 0 {
            tracing::warn!(unreadable, "work items left out of the read model");
        }
        Ok(total)
    }

    async fn apply_round(&self, store: &dyn WorkItemStore, hub: Option<&Hub>, round: Vec<Change>) {
        /// One tenant's changes in a round: keys to read, items given.
        #[derive(Default)]
        struct Pending {
            read: Vec<CorrelationKey>,
            reading: HashSet<CorrelationKey>,
            given: HashMap<CorrelationKey, Arc<WorkItem>>,
        }
        impl Pending {
            fn read(&mut self, key: CorrelationKey) {
                if self.reading.insert(key.clone()) {
                    self.read.push(key);
                }
            }
        }
        let mut by_tenant: HashMap<TenantId, Pending> = HashMap::new();
        for change in round {
            match change {
                Change::Keys(tenant, keys) => {
                    let pending = by_tenant.entry(tenant).or_default();
                    keys.into_iter().for_each(|k| pending.read(k));
                }
                Change::Written(tenant, items, gone) => {
                    let pending = by_tenant.entry(tenant).or_default();
                    for item in items {
                        pending.given.insert(item.correlation_key.clone(), item);
                    }
                    gone.into_iter().for_each(|k| pending.read(k));
                }
                Change::Resync => {}
            }
        }
        for (tenant, pending) in by_tenant {
            // A key that is read back comes out as the store has it now, so it wins over
            // any item given for it earlier in the round.
            let keys = pending.read;
            let mut found: Vec<(CorrelationKey, Option<Arc<WorkItem>>)> = pending
                .given
                .into_iter()
                .filter(|(key, _)| !pending.reading.contains(key))
                .map(|(key, item)| (key, Some(item)))
                .collect();
            let mut unreadable: Vec<CorrelationKey> = Vec::new();
            // Read first, then take the write lock only to apply: readers wait for the
            // apply, never for the store.
            for chunk in keys.chunks(GET_CHUNK) {
                match store.get_many(&tenant, chunk).await {
                    Ok(items) => found.extend(
                        chunk
                            .iter()
                            .cloned()
                            .zip(items.into_iter().map(|i| i.map(Arc::new))),
                    ),
                    // One unreadable item must not hide the others' changes: read them one
                    // by one, and set the unreadable ones apart.
                    Err(e) => {
                        tracing::warn!(error = %e, "reading changed items one by one");
                        for key in chunk {
                            match store.get(&tenant, key.as_str()).await {
                                Ok(item) => found.push((key.clone(), item.map(Arc::new))),
                                Err(StoreError::Unreadable(why)) => {
                                    tracing::error!(tenant = %tenant, key = %key, reason = %why,
                                        "a stored work item cannot be read; left out");
                                    unreadable.push(key.clone());
                                }
                                // The store is failing: the rest would too. Reload
                                // once it answers again.
                                Err(e) => {
                                    tracing::warn!(error = %e, key = %key,
                                        "read model could not read a changed item; it will reload");
                                    self.inner
                                        .resync
                                        .store(true, std::sync::atomic::Ordering::Release);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            let view = self.view_or_create(&tenant);
            let mut applied = Vec::with_capacity(found.len());
            {
                let mut view = view.write().expect("read model lock");
                for key in &unreadable {
                    view.unreadable(key);
                }
                for (key, item) in found {
                    if let Some(item) = view.apply(&key, item) {
                        applied.push((key, item));
                    }
                }
            }
            if let Some(hub) = hub {
                let mut sent = HashSet::new();
                for (key, item) in applied {
                    if sent.insert(item.correlation_key.clone()) {
                        let merged_from = (item.correlation_key != key).then_some(&key);
                        hub.publish(&tenant, &item, merged_from);
                    }
                }
            }
        }
    }

    fn views_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TenantId, Arc<RwLock<TenantView>>>> {
        self.inner.views.write().expect("read model views lock")
    }

    fn view_or_create(&self, tenant: &TenantId) -> Arc<RwLock<TenantView>> {
        if let Some(view) = self
            .inner
            .views
            .read()
            .expect("read model views lock")
            .get(tenant)
        {
            return view.clone();
        }
        let thresholds = &self.inner.thresholds;
        self.views_mut()
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(RwLock::new(TenantView::new(thresholds.clone()))))
            .clone()
    }

    /// Waits (bounded) until the first load is done.
    pub async fn ready(&self) -> Result<(), NotLoaded> {
        let mut rx = self.inner.loaded.subscribe();
        match tokio::time::timeout(LOAD_WAIT, rx.wait_for(|loaded| *loaded)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotLoaded),
        }
    }

    /// Whether the first load is done.
    pub fn is_loaded(&self) -> bool {
        *self.inner.loaded.borrow()
    }

    /// The tenant's view once the model is loaded; read it with [`TenantView`]'s lock
    /// held only while computing, never across an `.await`.
    pub async fn tenant(&self, tenant: &TenantId) -> Result<Arc<RwLock<TenantView>>, NotLoaded> {
        self.ready().await?;
        Ok(self.view_or_create(tenant))
    }

    /// Items held for `tenant` (0 before the load).
    pub fn item_count(&self, tenant: &TenantId) -> usize {
        let views = self.inner.views.read().expect("read model views lock");
        views.get(tenant).map_or(0, |v| read(v).fleet.len())
    }
}

/// Read access to a view.
pub fn read(view: &RwLock<TenantView>) -> RwLockReadGuard<'_, TenantView> {
    view.read().expect("read model lock")
}

impl ReadModel {
    /// The anomaly rules' limits.
    pub fn thresholds(&self) -> &Thresholds {
        &self.inner.thresholds
    }

    /// What the model holds and an estimate of what each item costs in memory, for
    /// `/metrics`. The estimate samples up to [`FOOTPRINT_SAMPLE`] items across the
    /// tenants: each costs the fixed size of an item and its fleet and index entries, plus
    /// its text and lists, counted as their encoded length.
    pub fn footprint(&self) -> Footprint {
        let views: Vec<Arc<RwLock<TenantView>>> = self
            .inner
            .views
            .read()
            .expect("read model views lock")
            .values()
            .cloned()
            .collect();
        let mut footprint = Footprint::default();
        let (mut sampled, mut sampled_bytes) = (0usize, 0usize);
        for view in &views {
            let view = read(view);
            footprint.items += view.fleet.len();
            footprint.unreadable += view.unreadable.len();
            for item in view
                .fleet
                .items()
                .take(FOOTPRINT_SAMPLE.saturating_sub(sampled))
            {
                let mut counter = ByteCounter(0);
                if serde_json::to_writer(&mut counter, item.as_ref()).is_ok() {
                    sampled += 1;
                    sampled_bytes += counter.0;
                }
            }
        }
        if let Some(mean) = sampled_bytes.checked_div(sampled) {
            footprint.bytes_per_item = ITEM_FIXED_BYTES + mean;
        }
        footprint
    }

    /// How many of the tenant's items are left out of every answer because their stored
    /// state cannot be read.
    pub async fn unreadable(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let view = self.loaded_view(tenant).await?;
        let n = read(&view).unreadable.len();
        Ok(n as u64)
    }

    async fn loaded_view(&self, tenant: &TenantId) -> Result<Arc<RwLock<TenantView>>, StoreError> {
        self.tenant(tenant)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl InsightSource for ReadModel {
    async fn rollups(
        &self,
        tenant: &TenantId,
        window: Window,
        now: DateTime<Utc>,
    ) -> Result<Arc<Rollups>, StoreError> {
        let view = self.loaded_view(tenant).await?;
        let view = read(&view);
        Ok(view.memo(format!("rollups {window:?}"), now, |v| {
            Arc::new(v.fleet.rollups(window, now, KEEP_TOP))
        }))
    }

    async fn anomalies(
        &self,
        tenant: &TenantId,
        key: Option<&CorrelationKey>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<Arc<Anomaly>>>, StoreError> {
        let view = self.loaded_view(tenant).await?;
        let view = read(&view);
        Ok(match key {
            Some(k) => Arc::new(view.fleet.anomalies_of(k, now)),
            None => view.memo("anomalies".to_owned(), now, |v| {
                Arc::new(v.fleet.anomalies(now))
            }),
        })
    }

    async fn needs_you(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NeedsYou>, StoreError> {
        let view = self.loaded_view(tenant).await?;
        let view = read(&view);
        Ok(view.memo("needs-you".to_owned(), now, |v| v.fleet.needs_you(now)))
    }

    async fn search(
        &self,
        tenant: &TenantId,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let view = self.loaded_view(tenant).await?;
        Ok(read(&view).search.query(query, limit))
    }
}

impl ChangeSink for ReadModel {
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]) {
        self.report(Change::Keys(tenant.clone(), keys.to_vec()));
    }

    fn resync(&self) {
        self.ask_resync();
    }

    fn items_written(&self, tenant: &TenantId, items: &[Arc<WorkItem>], gone: &[CorrelationKey]) {
        self.report(Change::Written(
            tenant.clone(),
            items.to_vec(),
            gone.to_vec(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::CompletionEvent;
    use cfactory_domain::SystemClock;
    use cfactory_domain::memory::InMemoryStore;
    use serde_json::json;

    fn event(id: &str, key: &str, service: &str, task: &str, title: &str) -> CompletionEvent {
        let v = json!({"specversion": "1.0", "id": id, "source": "/t", "type": "t",
            "time": "2026-11-01T10:00:00Z", "correlation_key": key, "service": service,
            "task_id": task, "status": "running", "phase": "act", "title": title});
        CompletionEvent::parse(&v.to_string()).unwrap()
    }

    async fn settle(model: &ReadModel, tenant: &TenantId, want: usize) {
        for _ in 0..200 {
            if model.item_count(tenant) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("read model never reached {want} items");
    }

    #[tokio::test]
    async fn items_handed_over_are_applied_as_given_and_keys_are_read_back() {
        // The store holds nothing: an item can only reach the model as handed over.
        let store = InMemoryStore::new(Arc::new(SystemClock));
        let tenant = TenantId::default_tenant();
        let model = ReadModel::start(Arc::new(store.clone()), None, Thresholds::default());
        model.ready().await.unwrap();
        let other = InMemoryStore::new(Arc::new(SystemClock));
        other
            .ingest(
                &tenant,
                vec![event("w1", "52", "pfactory", "s52", "Handed")],
            )
            .await
            .unwrap();
        let item = other.get(&tenant, "52").await.unwrap().unwrap();
        model.items_written(&tenant, &[Arc::new(item)], &[]);
        settle(&model, &tenant, 1).await;
        let view = model.tenant(&tenant).await.unwrap();
        assert_eq!(read(&view).search.query("handed", 5).len(), 1);
        drop(view);
        // A key to read back comes out as the store has it: here, gone.
        model.items_changed(&tenant, &[CorrelationKey::parse("52").unwrap()]);
        settle(&model, &tenant, 0).await;
    }

    #[tokio::test]
    async fn loads_what_the_store_holds_then_follows_changes_and_merges() {
        let store = InMemoryStore::new(Arc::new(SystemClock));
        let tenant = TenantId::default_tenant();
        store
            .ingest(
                &tenant,
                vec![event("e1", "41", "pfactory", "s1", "Old title")],
            )
            .await
            .unwrap();
        let model = ReadModel::start(Arc::new(store.clone()), None, Thresholds::default());
        store.watch(Arc::new(model.clone())).await.unwrap();
        model.ready().await.unwrap();
        assert_eq!(model.item_count(&tenant), 1);

        store
            .ingest(
                &tenant,
                vec![event("e2", "af-9", "aifactory", "9", "Retry logic")],
            )
            .await
            .unwrap();
        settle(&model, &tenant, 2).await;
        let view = model.tenant(&tenant).await.unwrap();
        assert_eq!(read(&view).search.query("retry", 5).len(), 1);

        // Issue 41 claims task 9: af-9 merges into 41 and stops being an item.
        store
            .ingest(
                &tenant,
                vec![event("e3", "41", "aifactory", "9", "Retry logic")],
            )
            .await
            .unwrap();
        settle(&model, &tenant, 1).await;
        let view = read(&view);
        let merged = view
            .fleet
            .get(&CorrelationKey::parse("41").unwrap())
            .unwrap();
        assert!(merged.aliases.iter().any(|a| a.as_str() == "af-9"));
        let hits = view.search.query("af-9", 5);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].correlation_key.as_str(), "41");
    }

    #[tokio::test]
    async fn memo_reuses_an_answer_until_an_item_changes_or_its_time_is_up() {
        let store = InMemoryStore::new(Arc::new(SystemClock));
        let tenant = TenantId::default_tenant();
        store
            .ingest(&tenant, vec![event("e1", "41", "pfactory", "s1", "One")])
            .await
            .unwrap();
        let key = CorrelationKey::parse("41").unwrap();
        let item = store.get(&tenant, "41").await.unwrap().unwrap();

        let mut view = TenantView::new(Thresholds::default());
        let calls = std::cell::Cell::new(0);
        let ask = |view: &TenantView, at: DateTime<Utc>| {
            view.memo("count".to_owned(), at, |v| {
                calls.set(calls.get() + 1);
                v.fleet.len()
            })
        };
        let t0 = Utc::now();
        assert_eq!(ask(&view, t0), 0);
        let up = chrono::Duration::seconds(MEMO_SECONDS);
        assert_eq!(ask(&view, t0 + up - chrono::Duration::milliseconds(1)), 0);
        assert_eq!(calls.get(), 1, "reused while its time lasts");
        assert_eq!(ask(&view, t0 + up), 0);
        assert_eq!(calls.get(), 2, "recomputed once its time is up");

        view.apply(&key, Some(Arc::new(item)));
        assert_eq!(ask(&view, t0 + up), 1);
        assert_eq!(calls.get(), 3, "recomputed after a change");
        assert_eq!(ask(&view, t0 - chrono::Duration::seconds(5)), 1);
        assert_eq!(
            calls.get(),
            4,
            "an earlier clock never reads a later answer"
        );
    }
}

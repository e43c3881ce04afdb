//! The change feed: writers `NOTIFY` the keys they changed inside their transaction (so
//! the notice leaves only on commit), and one listener task per store hears every
//! process's notices and hands them to the registered [`ChangeSink`]s.
//!
//! Notices arrive in commit order, whichever process sent them. This process's writer
//! also holds the items it wrote from just before its commit (see [`Held`]); when the
//! notice of that commit comes back, the sinks get those items rather than keys to read
//! back, still in commit order with everyone else's changes.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use cfactory_domain::ports::{ChangeSink, StoreError};
use cfactory_domain::{CorrelationKey, TenantId, WorkItem};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Mutex;

use crate::error::store_error;
use crate::keys::{KEYS_CHANNEL, KeyCache};

/// The channel every CFactory process on the database shares.
pub(crate) const CHANNEL: &str = "cfactory_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more; stay well under.
const MAX_PAYLOAD: usize = 7000;

/// Write groups whose items stay held waiting for their notice; older ones are dropped
/// (their sinks then read the items back).
const HELD_GROUPS: usize = 64;

#[derive(Serialize, Deserialize)]
struct Notice {
    tenant: String,
    keys: Vec<String>,
    /// The writing process's [`Held::origin`] and the write's number, when it holds the
    /// items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<(u64, u64)>,
}

/// The items this process's writer committed, by write, until the listener hears the
/// write's notice.
pub(crate) struct Held {
    /// Tells this process's notices from others'.
    origin: u64,
    next: AtomicU64,
    listening: AtomicBool,
    writes: StdMutex<BTreeMap<u64, HashMap<CorrelationKey, Arc<WorkItem>>>>,
}

impl Default for Held {
    fn default() -> Self {
        Self {
            origin: std::collections::hash_map::RandomState::new().hash_one(std::process::id()),
            next: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            writes: StdMutex::default(),
        }
    }
}

impl Held {
    /// A number for the next write, when a listener will hear its notice.
    pub fn reserve(&self) -> Option<u64> {
        self.listening
            .load(Ordering::Acquire)
            .then(|| self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Holds the items of write `seq`; call before its commit, so the notice (sent at
    /// commit) never arrives first.
    pub fn hold(&self, seq: u64, items: &[Arc<WorkItem>]) {
        let mut writes = self.writes.lock().expect("held writes lock");
        let items = items
            .iter()
            .map(|i| (i.correlation_key.clone(), Arc::clone(i)))
            .collect();
        writes.insert(seq, items);
        while writes.len() > HELD_GROUPS {
            writes.pop_first();
        }
    }

    /// Forgets write `seq` (its transaction did not commit).
    pub fn release(&self, seq: u64) {
        self.writes.lock().expect("held writes lock").remove(&seq);
    }

    /// The held items of write `seq` among `keys`, and the keys with none held.
    fn take(
        &self,
        seq: u64,
        keys: Vec<CorrelationKey>,
    ) -> (Vec<Arc<WorkItem>>, Vec<CorrelationKey>) {
        let mut writes = self.writes.lock().expect("held writes lock");
        let Some(held) = writes.get_mut(&seq) else {
            return (Vec::new(), keys);
        };
        let mut items = Vec::new();
        let mut rest = Vec::new();
        for key in keys {
            match held.remove(&key) {
                Some(item) => items.push(item),
                None => rest.push(key),
            }
        }
        if held.is_empty() {
            writes.remove(&seq);
        }
        (items, rest)
    }

    fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
        if !on {
            self.writes.lock().expect("held writes lock").clear();
        }
    }
}

/// The notices announcing that `keys` of `tenant` changed, as many as their size needs;
/// none when no key changed. `held` names the write whose items this process holds.
/// Writers send them with `pg_notify` on [`CHANNEL`] inside their transaction.
pub(crate) fn payloads(
    tenant: &TenantId,
    keys: &[CorrelationKey],
    held: Option<(&Held, u64)>,
) -> Result<Vec<String>, StoreError> {
    let mut payloads = Vec::new();
    if keys.is_empty() {
        return Ok(payloads);
    }
    let mut notice = Notice {
        tenant: tenant.as_str().to_owned(),
        keys: Vec::new(),
        held: held.map(|(h, seq)| (h.origin, seq)),
    };
    let mut size = notice.tenant.len() + 64;
    for key in keys {
        // A key is at most 128 characters; escaping can at most sextuple it.
        let cost = key.as_str().len() * 6 + 3;
        if size + cost > MAX_PAYLOAD && !notice.keys.is_empty() {
            payloads.push(encode(&notice)?);
            notice.keys.clear();
            size = notice.tenant.len() + 64;
        }
        notice.keys.push(key.as_str().to_owned());
        size += cost;
    }
    payloads.push(encode(&notice)?);
    Ok(payloads)
}

fn encode(notice: &Notice) -> Result<String, StoreError> {
    serde_json::to_string(notice)
        .map_err(|e| StoreError::Unexpected(format!("change notice does not serialise: {e}")))
}

type Sinks = Arc<StdMutex<Vec<Arc<dyn ChangeSink>>>>;

/// The sinks of one store and the task that feeds them.
pub(crate) struct Feed {
    pool: PgPool,
    sinks: Sinks,
    keys: Arc<KeyCache>,
    held: Arc<Held>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Feed {
    /// A feed with no sinks; it starts listening at the first `watch`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sinks: Arc::default(),
            keys: Arc::default(),
            held: Arc::default(),
            listener: Mutex::new(None),
        }
    }

    /// Adds `sink`. The first call starts listening and returns once notices are heard,
    /// so every commit after it reaches the sink.
    pub async fn watch(&self, sink: Arc<dyn ChangeSink>) -> Result<(), StoreError> {
        let mut listener = self.listener.lock().await;
        if listener.is_none() {
            let connection = connect(&self.pool).await.map_err(store_error)?;
            self.keys.set_listening(true);
            self.held.set_listening(true);
            *listener = Some(tokio::spawn(listen(
                self.pool.clone(),
                connection,
                self.sinks.clone(),
                self.keys.clone(),
                self.held.clone(),
            )));
        }
        self.sinks.lock().expect("sinks lock").push(sink);
        Ok(())
    }

    /// Stops listening.
    pub async fn stop(&self) {
        if let Some(task) = self.listener.lock().await.take() {
            task.abort();
        }
        self.keys.set_listening(false);
        self.held.set_listening(false);
    }

    /// The items this process's writer holds for its notices.
    pub fn held(&self) -> Arc<Held> {
        self.held.clone()
    }

    /// The active keys, held while this feed listens.
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }
}

/// A listener on both channels.
async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut connection = PgListener::connect_with(pool).await?;
    connection.listen_all([CHANNEL, KEYS_CHANNEL]).await?;
    Ok(connection)
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().take() {
            task.abort();
        }
    }
}

async fn listen(
    pool: PgPool,
    mut connection: PgListener,
    sinks: Sinks,
    keys: Arc<KeyCache>,
    held: Arc<Held>,
) {
    loop {
        // `try_recv`, not `recv`: the latter reconnects by itself and the notices lost
        // meanwhile would go unnoticed; a lost connection must end in a resync.
        match connection.try_recv().await {
            Ok(Some(notification)) if notification.channel() == KEYS_CHANNEL => {
                keys.invalidate();
            }
            Ok(Some(notification)) => deliver(notification.payload(), &sinks, &held),
            Err(sqlx::Error::PoolClosed) => {
                keys.set_listening(false);
                held.set_listening(false);
                return;
            }
            lost => {
                let error = match lost {
                    Err(error) => error.to_string(),
                    _ => "the connection closed".to_owned(),
                };
                // Whatever is announced while the connection is down is lost: keys are read
                // from the table until a new listener runs, and the sinks resynchronise
                // once it does.
                keys.set_listening(false);
                held.set_listening(false);
                tracing::warn!(%error, "change listener lost its connection; reconnecting");
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match connect(&pool).await {
                        Ok(fresh) => {
                            connection = fresh;
                            keys.set_listening(true);
                            held.set_listening(true);
                            // Whatever was committed meanwhile, by any process, was never
                            // heard: every sink reads its state again from the database.
                            let sinks = sinks.lock().expect("sinks lock").clone();
                            for sink in sinks {
                                sink.resync();
                            }
                            tracing::info!("change listener back; sinks resynchronised");
                            break;
                        }
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            tracing::warn!(%error, "change listener cannot reconnect yet");
                        }
                    }
                }
            }
        }
    }
}

fn deliver(payload: &str, sinks: &Sinks, held: &Held) {
    let notice: Notice = match serde_json::from_str(payload) {
        Ok(notice) => notice,
        Err(error) => {
            tracing::warn!(%error, "unreadable change notice skipped");
            return;
        }
    };
    let Ok(tenant) = TenantId::parse(&notice.tenant) else {
        tracing::warn!("change notice with a bad tenant skipped");
        return;
    };
    let keys: Vec<CorrelationKey> = notice
        .keys
        .iter()
        .filter_map(|k| CorrelationKey::parse(k).ok())
        .collect();
    if keys.is_empty() {
        return;
    }
    let sinks = sinks.lock().expect("sinks lock").clone();
    match notice.held {
        Some((origin, seq)) if origin == held.origin => {
            let (items, rest) = held.take(seq, keys);
            for sink in sinks {
                sink.items_written(&tenant, &items, &rest);
            }
        }
        _ => {
            for sink in sinks {
                sink.items_changed(&tenant, &keys);
            }
        }
    }
}

//! The change feed: writers `NOTIFY` the keys they changed inside their transaction (so
//! the notice leaves only on commit), and one listener task per store hears every
//! process's notices and hands them to the registered [`ChangeSink`]s.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use cfactory_domain::ports::{ChangeSink, StoreError};
use cfactory_domain::{CorrelationKey, TenantId};
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

#[derive(Serialize, Deserialize)]
struct Notice {
    tenant: String,
    keys: Vec<String>,
}

/// The notices announcing that `keys` of `tenant` changed, as many as their size needs;
/// none when no key changed. Writers send them with `pg_notify` on [`CHANNEL`] inside
/// their transaction.
pub(crate) fn payloads(
    tenant: &TenantId,
    keys: &[CorrelationKey],
) -> Result<Vec<String>, StoreError> {
    let mut payloads = Vec::new();
    if keys.is_empty() {
        return Ok(payloads);
    }
    let mut notice = Notice {
        tenant: tenant.as_str().to_owned(),
        keys: Vec::new(),
    };
    let mut size = notice.tenant.len() + 32;
    for key in keys {
        // A key is at most 128 characters; escaping can at most sextuple it.
        let cost = key.as_str().len() * 6 + 3;
        if size + cost > MAX_PAYLOAD && !notice.keys.is_empty() {
            payloads.push(encode(&notice)?);
            notice.keys.clear();
            size = notice.tenant.len() + 32;
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
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Feed {
    /// A feed with no sinks; it starts listening at the first `watch`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sinks: Arc::default(),
            keys: Arc::default(),
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
            *listener = Some(tokio::spawn(listen(
                self.pool.clone(),
                connection,
                self.sinks.clone(),
                self.keys.clone(),
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

async fn listen(pool: PgPool, mut connection: PgListener, sinks: Sinks, keys: Arc<KeyCache>) {
    loop {
        match connection.recv().await {
            Ok(notification) if notification.channel() == KEYS_CHANNEL => keys.invalidate(),
            Ok(notification) => deliver(notification.payload(), &sinks),
            Err(sqlx::Error::PoolClosed) => {
                keys.set_listening(false);
                return;
            }
            Err(error) => {
                // Whatever was announced while the connection was down is lost: keys are
                // read from the table until a new listener runs; sinks miss those notices.
                keys.set_listening(false);
                tracing::warn!(%error, "change listener lost its connection; reconnecting");
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match connect(&pool).await {
                        Ok(fresh) => {
                            connection = fresh;
                            keys.set_listening(true);
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

fn deliver(payload: &str, sinks: &Sinks) {
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
    for sink in sinks {
        sink.items_changed(&tenant, &keys);
    }
}

//! Opens the configured store adapter and hands the server its ports. The only module
//! that names a store crate.

use std::sync::Arc;

use cfactory_domain::actions::ActionStore;
use cfactory_domain::audit::AuditLog;
use cfactory_domain::ports::{
    ApiKeyStore, ConversationStore, ServiceRegistry, StoreError, UserStore, WorkItemStore,
};
use cfactory_postgres::{PgOptions, PgStore};
use cfactory_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::metrics::{StoreLoad, WriterInstruments};
use crate::settings::{Database, Settings, SqliteSynchronous};

/// The opened store, seen through its ports.
#[derive(Clone)]
pub struct Stores {
    /// WorkItems, events, usage.
    pub work: Arc<dyn WorkItemStore>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Upstream URLs set from the cockpit.
    pub services: Arc<dyn ServiceRegistry>,
    /// The audit chains.
    pub audit: Arc<dyn AuditLog>,
    /// Proposed actions.
    pub actions: Arc<dyn ActionStore>,
    /// Copilot conversations.
    pub conversations: Arc<dyn ConversationStore>,
    /// People signed in by single sign-on, and their sessions.
    pub users: Arc<dyn UserStore>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Stores {
    /// Opens the settings' database, running its migrations (SQLite always migrates on
    /// open, with the settings' `--sqlite-synchronous`).
    pub async fn open(settings: &Settings) -> Result<Self, StoreError> {
        Self::open_instrumented(settings, None).await
    }

    /// [`Stores::open`], with the writer reporting to `instruments` when given.
    pub async fn open_instrumented(
        settings: &Settings,
        instruments: Option<WriterInstruments>,
    ) -> Result<Self, StoreError> {
        let backend = match &settings.database {
            Database::Postgres(url) => Backend::Postgres(
                PgStore::connect(
                    url.expose(),
                    PgOptions {
                        migrate: true,
                        lock_timeout: std::time::Duration::from_secs(settings.lock_timeout_seconds),
                        instruments: instruments
                            .map(|i| cfactory_postgres::WriterInstruments {
                                group_events: i.group_events,
                                load_seconds: i.load_seconds,
                                write_seconds: i.write_seconds,
                            })
                            .unwrap_or_default(),
                        ..PgOptions::default()
                    },
                )
                .await?,
            ),
            Database::Sqlite(path) => {
                let synchronous = match settings.sqlite_synchronous {
                    SqliteSynchronous::Full => Synchronous::Full,
                    SqliteSynchronous::Normal => Synchronous::Normal,
                };
                let options = SqliteOptions {
                    synchronous,
                    instruments: instruments
                        .map(|i| cfactory_sqlite::WriterInstruments {
                            group_events: i.group_events,
                            load_seconds: i.load_seconds,
                            write_seconds: i.write_seconds,
                        })
                        .unwrap_or_default(),
                    ..SqliteOptions::default()
                };
                Backend::Sqlite(SqliteStore::open(path, options).await?)
            }
        };
        Ok(match &backend {
            Backend::Postgres(pg) => Self {
                work: Arc::new(pg.clone()),
                keys: Arc::new(pg.clone()),
                services: Arc::new(pg.clone()),
                audit: Arc::new(pg.clone()),
                actions: Arc::new(pg.clone()),
                conversations: Arc::new(pg.clone()),
                users: Arc::new(pg.clone()),
                backend,
            },
            Backend::Sqlite(lite) => Self {
                work: Arc::new(lite.clone()),
                keys: Arc::new(lite.clone()),
                services: Arc::new(lite.clone()),
                audit: Arc::new(lite.clone()),
                actions: Arc::new(lite.clone()),
                conversations: Arc::new(lite.clone()),
                users: Arc::new(lite.clone()),
                backend,
            },
        })
    }

    /// The writer's queue and the read connections now, for `/metrics`.
    pub fn load(&self) -> StoreLoad {
        match &self.backend {
            Backend::Postgres(pg) => {
                let l = pg.load();
                StoreLoad {
                    writer_queue: l.writer_queue,
                    connections: l.connections,
                    idle: l.idle,
                    max_connections: l.max_connections,
                }
            }
            Backend::Sqlite(lite) => {
                let l = lite.load();
                StoreLoad {
                    writer_queue: l.writer_queue,
                    connections: l.connections,
                    idle: l.idle,
                    max_connections: l.max_connections,
                }
            }
        }
    }

    /// Flushes pending writes and closes connections.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pg) => pg.close().await,
            Backend::Sqlite(lite) => lite.close().await,
        }
    }
}

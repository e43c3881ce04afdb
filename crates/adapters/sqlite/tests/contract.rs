//! The store contract run against the SQLite store, each check on a fresh database file
//! in its own temporary directory.

use std::sync::Arc;

use cfactory_sqlite::{SqliteOptions, SqliteStore};
use cfactory_store_contract::Subject;

async fn fresh() -> Subject {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("cfactory.db"), SqliteOptions::default())
        .await
        .expect("the store opens");
    Subject {
        work: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        actions: Arc::new(store.clone()),
        conversations: Arc::new(store.clone()),
        users: Arc::new(store.clone()),
        services: Arc::new(store),
        guard: Some(Box::new(dir)),
    }
}

mod core {
    use super::fresh;
    cfactory_store_contract::contract_tests!(fresh);
}

mod snapshots {
    use super::fresh;
    cfactory_store_contract::snapshot_contract_tests!(fresh);
}

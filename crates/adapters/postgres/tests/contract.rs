//! The store contract, run against PostgreSQL: each check on a fresh database.

use std::sync::Arc;

use cfactory_postgres::testing::TestDatabase;
use cfactory_postgres::{PgOptions, PgStore};
use cfactory_store_contract::Subject;

async fn fresh() -> Subject {
    let database = TestDatabase::create().await;
    let store = PgStore::connect(database.url(), PgOptions::default())
        .await
        .expect("the test database accepts connections");
    Subject {
        work: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        actions: Arc::new(store.clone()),
        conversations: Arc::new(store.clone()),
        users: Arc::new(store.clone()),
        services: Arc::new(store),
        guard: Some(Box::new(database)),
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

//! The store contract run against the in-memory fake.

use std::sync::Arc;

use cfactory_domain::SystemClock;
use cfactory_domain::memory::InMemoryStore;
use cfactory_store_contract::Subject;

async fn fresh() -> Subject {
    let store = InMemoryStore::new(Arc::new(SystemClock));
    Subject {
        work: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        actions: Arc::new(cfactory_domain::actions::InMemoryActions::new()),
        conversations: Arc::new(store.clone()),
        users: Arc::new(store.clone()),
        services: Arc::new(store),
        guard: None,
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

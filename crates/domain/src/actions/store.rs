//! [`InMemoryActions`]: the [`ActionStore`] held in memory, the fake that the store
//! contract suite and the tests of code above the port run against.
//!
//! Its room in the hexagon: a fake beside the domain's port, like [`crate::memory`]; it
//! touches nothing outside the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{ActionPage, ActionStatus, ActionStore, Actor, PreparedAction, StepResult};
use crate::ids::TenantId;
use crate::ports::StoreError;

type ActionMap = BTreeMap<(TenantId, String), PreparedAction>;

/// An [`ActionStore`] held in memory: the fake for tests and the in-memory store.
#[derive(Debug, Default)]
pub struct InMemoryActions {
    actions: Mutex<ActionMap>,
}

impl InMemoryActions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ActionMap>, StoreError> {
        self.actions
            .lock()
            .map_err(|_| StoreError::Unexpected("action store lock poisoned".into()))
    }
}

#[async_trait]
impl ActionStore for InMemoryActions {
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let key = (action.tenant.clone(), action.id.clone());
        if map.contains_key(&key) {
            return Err(StoreError::Duplicate(format!("action {}", action.id)));
        }
        map.insert(key, action.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError> {
        Ok(self.lock()?.get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError> {
        // Held as values, every action here reads back.
        let map = self.lock()?;
        let mut found: Vec<PreparedAction> = map
            .values()
            .filter(|a| &a.tenant == tenant && status.is_none_or(|s| a.status == s))
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(limit as usize);
        Ok(ActionPage {
            actions: found,
            unreadable: Vec::new(),
        })
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &str,
        from: ActionStatus,
        to: ActionStatus,
        results: Vec<StepResult>,
        decided: Option<&Actor>,
    ) -> Result<Option<PreparedAction>, StoreError> {
        let mut map = self.lock()?;
        match map.get_mut(&(tenant.clone(), id.to_owned())) {
            Some(action) if action.status == from => {
                action.status = to;
                action.results = results;
                if let Some(actor) = decided {
                    action.decided_by = Some(actor.id.clone());
                    action.decided_via = Some(actor.door);
                }
                Ok(Some(action.clone()))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixtures::{af, plan};
    use crate::actions::{ActionKind, Endpoint, HttpMethod};
    use chrono::Duration;
    use serde_json::json;

    #[tokio::test]
    async fn the_in_memory_store_moves_an_action_exactly_once() {
        let store = InMemoryActions::new();
        let tenant = TenantId::default_tenant();
        let other = TenantId::parse("other").unwrap();
        let p = plan(ActionKind::Recover, &[af("stuck", json!({}))], None).unwrap();
        let copilot = Actor::new("copilot", crate::actions::Door::Copilot);
        let a = p.clone().prepare("a1", tenant.clone(), &copilot);
        let mut b = p.prepare("a2", tenant.clone(), &copilot);
        b.created_at += Duration::seconds(1);
        store.save(&a).await.unwrap();
        store.save(&b).await.unwrap();
        assert!(matches!(
            store.save(&a).await,
            Err(StoreError::Duplicate(_))
        ));
        assert!(store.get(&other, "a1").await.unwrap().is_none());

        let listed = store.list(&tenant, None, 10).await.unwrap();
        assert!(listed.unreadable.is_empty());
        assert_eq!(
            listed
                .actions
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            ["a2", "a1"]
        );
        assert_eq!(store.list(&tenant, None, 1).await.unwrap().actions.len(), 1);

        let result = StepResult {
            method: HttpMethod::Post,
            endpoint: Endpoint::parse("/api/tasks/proj:001/recover").unwrap(),
            status_code: Some(200),
            ok: true,
            response: json!({"success": true}),
            error: None,
            duration_ms: 5,
        };
        let moved = store
            .transition(
                &tenant,
                "a1",
                ActionStatus::Prepared,
                ActionStatus::Executed,
                vec![result],
                Some(&Actor::new("key_b", crate::actions::Door::Ui)),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.status, ActionStatus::Executed);
        assert_eq!(moved.results.len(), 1);
        assert_eq!(moved.decided_by.as_deref(), Some("key_b"));
        assert_eq!(moved.decided_via, Some(crate::actions::Door::Ui));
        let again = store
            .transition(
                &tenant,
                "a1",
                ActionStatus::Prepared,
                ActionStatus::Executed,
                vec![],
                None,
            )
            .await
            .unwrap();
        assert!(again.is_none(), "a second confirm loses");
        assert!(
            store
                .transition(
                    &other,
                    "a2",
                    ActionStatus::Prepared,
                    ActionStatus::Rejected,
                    vec![],
                    None,
                )
                .await
                .unwrap()
                .is_none()
        );
        let prepared = store
            .list(&tenant, Some(ActionStatus::Prepared), 10)
            .await
            .unwrap()
            .actions;
        assert_eq!(prepared.len(), 1);
        assert_eq!(prepared[0].id, "a2");
    }
}

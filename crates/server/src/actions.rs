//! The server's part of the action lifecycle: the clock that expires unconfirmed
//! proposals, and the count of each action's outcome for `/metrics`. Proposing,
//! confirming, rejecting and expiring themselves are the domain's [`ActionService`]; its
//! steps reach the upstreams through the adapters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::actions::{
    ActionPage, ActionService, ActionStatus, ActionStore, Actor, PreparedAction, StepResult,
};
use cfactory_domain::ports::StoreError;

use crate::metrics::Metrics;

/// How often prepared actions past their expiry are expired (and audited).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Expires unconfirmed proposals every [`SWEEP_EVERY`], forever.
pub async fn run_sweeper(actions: ActionService) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match actions.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired unconfirmed actions"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired actions failed"),
        }
    }
}

/// The action store as the lifecycle sees it, counting each stored proposal and each
/// move to a final status in `cfactory_actions_total`. Every door (the API, the copilot,
/// MCP, the sweeper) goes through the one [`ActionService`] and so through this store, and
/// a move counts only when the store made it.
pub struct CountedActions {
    inner: Arc<dyn ActionStore>,
    metrics: Arc<Metrics>,
}

impl CountedActions {
    /// Counts the moves made in `inner`.
    pub fn new(inner: Arc<dyn ActionStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// The outcome a move to `status` counts as; `None` for the step between
/// (`executing`).
fn outcome(status: ActionStatus) -> Option<&'static str> {
    match status {
        ActionStatus::Prepared => Some("proposed"),
        ActionStatus::Executed => Some("executed"),
        ActionStatus::Failed => Some("failed"),
        ActionStatus::Rejected => Some("rejected"),
        ActionStatus::Expired => Some("expired"),
        ActionStatus::Executing => None,
    }
}

#[async_trait]
impl ActionStore for CountedActions {
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError> {
        self.inner.save(action).await?;
        if let Some(outcome) = outcome(action.status) {
            self.metrics.action(outcome);
        }
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError> {
        self.inner.get(tenant, id).await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError> {
        self.inner.list(tenant, status, limit).await
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
        let moved = self
            .inner
            .transition(tenant, id, from, to, results, decided)
            .await?;
        if moved.is_some()
            && let Some(outcome) = outcome(to)
        {
            self.metrics.action(outcome);
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::actions::{ActionKind, Endpoint, HttpMethod, InMemoryActions};
    use cfactory_domain::{CorrelationKey, Service};

    fn action(id: &str, tenant: &TenantId) -> PreparedAction {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
            .unwrap()
            .to_utc();
        PreparedAction {
            id: id.to_owned(),
            kind: ActionKind::KickHandback,
            correlation_key: CorrelationKey::parse("142").unwrap(),
            target_service: Service::AIFACTORY,
            method: HttpMethod::Post,
            endpoint: Endpoint::parse("/api/tasks/t1/apply-correction").unwrap(),
            payload: serde_json::json!({"confirm": true}),
            follow_ups: Vec::new(),
            rationale: "tests failed".into(),
            status: ActionStatus::Prepared,
            created_at: at,
            expires_at: at + chrono::Duration::minutes(15),
            note: None,
            proposed_by: "local".into(),
            proposed_via: None,
            decided_by: None,
            decided_via: None,
            tenant: tenant.clone(),
            results: Vec::new(),
        }
    }

    fn outcomes(metrics: &Metrics) -> Vec<(String, String)> {
        let text = metrics.render(&crate::metrics::Sampled {
            read_model: Default::default(),
            store: Default::default(),
            ws_clients: 0,
            ws_connections: 0,
            ws_dropped: 0,
            upstreams: Vec::new(),
        });
        let mut found: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("cfactory_actions_total{outcome=\""))
            .filter_map(|l| l.split_once("\"} "))
            .map(|(outcome, n)| (outcome.to_owned(), n.to_owned()))
            .collect();
        found.sort();
        found
    }

    #[tokio::test]
    async fn each_stored_proposal_and_each_move_the_store_made_counts_once() {
        let metrics = Arc::new(Metrics::new());
        let store = CountedActions::new(Arc::new(InMemoryActions::new()), metrics.clone());
        let tenant = TenantId::parse("acme").unwrap();
        store.save(&action("a1", &tenant)).await.unwrap();
        store.save(&action("a2", &tenant)).await.unwrap();
        assert!(store.save(&action("a2", &tenant)).await.is_err());
        let move_ = |id: &'static str, from, to| {
            let (store, tenant) = (&store, &tenant);
            async move {
                store
                    .transition(tenant, id, from, to, Vec::new(), None)
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        assert!(move_("a1", ActionStatus::Prepared, ActionStatus::Executing).await);
        assert!(move_("a1", ActionStatus::Executing, ActionStatus::Executed).await);
        assert!(move_("a2", ActionStatus::Prepared, ActionStatus::Rejected).await);
        // A move from a status the action is not in changes nothing and counts nothing.
        assert!(!move_("a2", ActionStatus::Prepared, ActionStatus::Expired).await);
        let n = |o: &str, v: &str| (o.to_owned(), v.to_owned());
        assert_eq!(
            outcomes(&metrics),
            vec![
                n("executed", "1"),
                n("expired", "0"),
                n("failed", "0"),
                n("proposed", "2"),
                n("rejected", "1"),
            ]
        );
    }
}

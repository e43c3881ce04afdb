//! The action lifecycle as one application service: propose, confirm, reject and expire,
//! and the audit entry each decision leaves. The HTTP handlers, the copilot's tools and
//! MCP all call it; nothing else moves an action from one status to another.
//!
//! Its room in the hexagon: the domain's application layer. It reaches the world only
//! through ports: the [`ActionStore`] keeps proposals, the [`WorkItemStore`] answers the
//! item and its timeline the planner reads, the [`StepSender`] sends a confirmed action's
//! steps (the upstream adapters implement it), the [`Auditor`] seals decisions into the
//! tenant's chain and the [`Clock`] says when "now" is.

use std::sync::Arc;

use chrono::Duration;
use serde_json::Value;

use super::{
    ActionKind, ActionPage, ActionStatus, ActionStore, Actor, DEFAULT_ACTION_TTL_SECONDS,
    PlanContext, PreparedAction, StepResult, available_actions, plan_action,
};
use crate::audit::{self, Auditor, sha256_hex};
use crate::ids::{CorrelationKey, TenantId};
use crate::ports::{
    Clock, MAX_TIMELINE_PAGE, StepSender, StoreError, TimelineCursor, TimelineEntry, WorkItemStore,
};
use crate::workitem::{DEFAULT_STALL_DEADLINE_SECONDS, WorkItem};

/// Most events of an item's timeline the planner reads.
pub const MAX_PLANNED_EVENTS: usize = 5000;

/// Most prepared actions of one tenant a sweep looks at.
const SWEEP_BATCH: u32 = 500;

/// Why a lifecycle call did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such action or item for this tenant; the text says which.
    #[error("{0}")]
    NotFound(String),
    /// The planner refused: the item is not in a state where the action makes sense.
    #[error("{0}")]
    Refused(String),
    /// The action is not waiting for a decision (already decided, running or expired).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not make this decision (four eyes: the proposer confirming).
    #[error("{0}")]
    Forbidden(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`ActionService::new`] is built from.
pub struct ActionServiceParts {
    /// Where proposals live.
    pub store: Arc<dyn ActionStore>,
    /// WorkItems and timelines, for planning, and the tenant list, for sweeping.
    pub work: Arc<dyn WorkItemStore>,
    /// Sends confirmed steps to their service.
    pub sender: Arc<dyn StepSender>,
    /// Seals each decision into the tenant's audit chain.
    pub auditor: Auditor,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Fresh action ids.
    pub new_id: fn() -> String,
    /// What the planner reads from the settings.
    pub plan_context: Arc<PlanContext>,
    /// How long a proposal waits for a person.
    pub ttl: Duration,
    /// Silence after which a running stage counts as stalled (the planner reads it).
    pub stall_deadline: Duration,
    /// Four eyes: a confirm by the credential that proposed the action is refused.
    pub require_second_approver: bool,
}

impl ActionServiceParts {
    /// Parts with the default TTL, stall deadline and plan context.
    pub fn new(
        store: Arc<dyn ActionStore>,
        work: Arc<dyn WorkItemStore>,
        sender: Arc<dyn StepSender>,
        auditor: Auditor,
        clock: Arc<dyn Clock>,
        new_id: fn() -> String,
    ) -> Self {
        Self {
            store,
            work,
            sender,
            auditor,
            clock,
            new_id,
            plan_context: Arc::new(PlanContext::default()),
            ttl: Duration::seconds(DEFAULT_ACTION_TTL_SECONDS),
            stall_deadline: Duration::seconds(DEFAULT_STALL_DEADLINE_SECONDS),
            require_second_approver: false,
        }
    }
}

/// An item's canonical key, the actions its state allows now, and its proposals.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemActions {
    /// The item's canonical key.
    pub correlation_key: CorrelationKey,
    /// What may be proposed now, in the planner's order.
    pub available: Vec<ActionKind>,
    /// The item's proposals, newest first.
    pub actions: Vec<PreparedAction>,
}

/// The proposals' lifecycle; cheap to clone.
#[derive(Clone)]
pub struct ActionService(Arc<ActionServiceParts>);

impl ActionService {
    /// The lifecycle over `parts`.
    pub fn new(parts: ActionServiceParts) -> Self {
        Self(Arc::new(parts))
    }

    /// What the planner reads from the settings.
    pub fn plan_context(&self) -> &PlanContext {
        &self.0.plan_context
    }

    /// Plans `kind` for the item under `key` (or an alias) and stores it as `prepared`,
    /// proposed by `actor`. Nothing is sent. `NotFound` for an unknown key; `Refused`
    /// with the planner's reason.
    #[tracing::instrument(
        name = "action.propose",
        skip_all,
        fields(tenant = %tenant, kind = %kind, correlation_key = %key, action_id)
    )]
    pub async fn propose(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        kind: ActionKind,
        key: &CorrelationKey,
        note: Option<&str>,
    ) -> Result<PreparedAction, ActionError> {
        let now = self.0.clock.now();
        let (item, timeline) = self
            .item_and_timeline(tenant, key.as_str())
            .await?
            .ok_or_else(|| ActionError::NotFound(format!("no work item has the key `{key}`")))?;
        let plan = plan_action(
            kind,
            &item,
            &timeline,
            note,
            now,
            self.0.ttl,
            &self.0.plan_context,
        )
        .map_err(|r| ActionError::Refused(r.reason))?;
        let action = plan.prepare((self.0.new_id)(), tenant.clone(), actor);
        tracing::Span::current().record("action_id", action.id.as_str());
        self.0.store.save(&action).await?;
        tracing::info!(
            tenant = %tenant,
            action = %action.id,
            kind = %kind,
            key = %action.correlation_key,
            target = %action.target_service,
            by = %actor.audit_name(),
            "proposal prepared"
        );
        Ok(action)
    }

    /// The item under `key` (or an alias) as of now, with its timeline oldest first (at
    /// most [`MAX_PLANNED_EVENTS`] events); `None` when the tenant has no such item.
    pub async fn item_and_timeline(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<(WorkItem, Vec<TimelineEntry>)>, StoreError> {
        let Some(mut item) = self.0.work.get(tenant, key).await? else {
            return Ok(None);
        };
        item.refresh_liveness(self.0.clock.now(), self.0.stall_deadline);
        let mut events = Vec::new();
        let mut cursor: Option<TimelineCursor> = None;
        loop {
            let Some(page) = self
                .0
                .work
                .timeline(
                    tenant,
                    item.correlation_key.as_str(),
                    MAX_TIMELINE_PAGE,
                    cursor.as_ref(),
                )
                .await?
            else {
                break;
            };
            events.extend(page.events);
            match page.next_cursor {
                Some(next) if events.len() < MAX_PLANNED_EVENTS => cursor = Some(next),
                _ => break,
            }
        }
        events.truncate(MAX_PLANNED_EVENTS);
        Ok(Some((item, events)))
    }

    /// What may be proposed for the item under `key` now; `None` for an unknown key.
    pub async fn available(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<(CorrelationKey, Vec<ActionKind>)>, StoreError> {
        let now = self.0.clock.now();
        Ok(self
            .item_and_timeline(tenant, key)
            .await?
            .map(|(item, events)| {
                let kinds = available_actions(&item, &events, now, &self.0.plan_context);
                (item.correlation_key, kinds)
            }))
    }

    /// The item's canonical key, what may be proposed now and its proposals (among the
    /// tenant's newest 500; those whose stored row no longer decodes are left out, as
    /// [`Self::list`] leaves them); `None` for an unknown key.
    pub async fn for_item(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<ItemActions>, StoreError> {
        let Some((correlation_key, available)) = self.available(tenant, key).await? else {
            return Ok(None);
        };
        let actions = self
            .list(tenant, None, 500)
            .await?
            .actions
            .into_iter()
            .filter(|a| a.correlation_key == correlation_key)
            .collect();
        Ok(Some(ItemActions {
            correlation_key,
            available,
            actions,
        }))
    }

    /// One action of the tenant.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<PreparedAction>, StoreError> {
        self.0.store.get(tenant, id).await
    }

    /// The tenant's actions, newest first; prepared ones past their expiry are expired
    /// (and audited) on the way. Actions whose stored row no longer decodes are left out
    /// and passed on in the page's `unreadable`.
    pub async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError> {
        let ActionPage {
            mut actions,
            unreadable,
        } = self.0.store.list(tenant, status, limit).await?;
        let now = self.0.clock.now();
        for action in &mut actions {
            if action.status == ActionStatus::Prepared
                && action.is_expired_at(now)
                && let Some(expired) = self.expire(action).await?
            {
                *action = expired;
            }
        }
        if let Some(wanted) = status {
            actions.retain(|a| a.status == wanted);
        }
        Ok(ActionPage {
            actions,
            unreadable,
        })
    }

    /// Moves a prepared action past its expiry to `expired` and audits it; `None` when
    /// something else decided it first.
    async fn expire(&self, action: &PreparedAction) -> Result<Option<PreparedAction>, StoreError> {
        let moved = self
            .0
            .store
            .transition(
                &action.tenant,
                &action.id,
                ActionStatus::Prepared,
                ActionStatus::Expired,
                Vec::new(),
                None,
            )
            .await?;
        if let Some(expired) = &moved {
            self.audit(expired, "system", "action.expired", None, false)
                .await?;
        }
        Ok(moved)
    }

    /// Expires every tenant's prepared actions past their expiry; returns how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let now = self.0.clock.now();
        let mut expired = 0;
        for tenant in self.0.work.tenants().await? {
            for action in self
                .0
                .store
                .list(&tenant, Some(ActionStatus::Prepared), SWEEP_BATCH)
                .await?
                .actions
            {
                if action.is_expired_at(now) && self.expire(&action).await?.is_some() {
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }

    /// Why an action that is not `prepared` cannot be decided now.
    fn not_waiting(action: &PreparedAction) -> ActionError {
        ActionError::Conflict(match action.status {
            ActionStatus::Executing => "the action is being executed by another confirm".into(),
            ActionStatus::Expired => format!(
                "the action expired at {} without a confirm",
                action.expires_at.to_rfc3339()
            ),
            status => format!("the action is already {status}"),
        })
    }

    /// Moves the tenant's action `id` from `prepared` to `to`; a conflict when it is not
    /// waiting (an expired one is expired and audited on the way).
    async fn decide(
        &self,
        tenant: &TenantId,
        id: &str,
        to: ActionStatus,
        actor: &Actor,
    ) -> Result<PreparedAction, ActionError> {
        let action =
            self.0.store.get(tenant, id).await?.ok_or_else(|| {
                ActionError::NotFound(format!("no action `{id}` for this tenant"))
            })?;
        if to == ActionStatus::Executing
            && self.0.require_second_approver
            && action.proposed_by == actor.id
        {
            return Err(ActionError::Forbidden(format!(
                "`{}` proposed this action; a second person must confirm it",
                actor.id
            )));
        }
        if action.status == ActionStatus::Prepared && action.is_expired_at(self.0.clock.now()) {
            let expired = self.expire(&action).await?.unwrap_or(action);
            return Err(Self::not_waiting(&expired));
        }
        match self
            .0
            .store
            .transition(
                tenant,
                id,
                ActionStatus::Prepared,
                to,
                Vec::new(),
                Some(actor),
            )
            .await?
        {
            Some(moved) => Ok(moved),
            None => {
                let now_stored = self.0.store.get(tenant, id).await?.unwrap_or(action);
                Err(Self::not_waiting(&now_stored))
            }
        }
    }

    /// Executes the tenant's prepared action `id` once, for `actor`: claims it (`prepared
    /// → executing`, a compare-and-set, so two confirms cannot both run it), audits that it
    /// is being sent (`action.sending`), sends its steps in order, each only after the one
    /// before succeeded, and records `executed` or `failed` with each step's result and a
    /// second audit entry with the outcome (`action.confirmed`). When the first audit
    /// entry cannot be written nothing is sent: the action fails with no step run.
    #[tracing::instrument(name = "action.confirm", skip_all, fields(tenant = %tenant, action_id = %id))]
    pub async fn confirm(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        id: &str,
    ) -> Result<PreparedAction, ActionError> {
        let claimed = self
            .decide(tenant, id, ActionStatus::Executing, actor)
            .await?;
        let steps = claimed.steps_for_confirm(&actor.id, self.0.clock.now());
        let payloads: Vec<&Value> = steps.iter().map(|s| &s.payload).collect();
        let hash = sha256_hex(
            serde_json::to_string(&payloads)
                .unwrap_or_default()
                .as_bytes(),
        );
        let name = Self::decision_name(&claimed, actor);
        let mut sending = Self::entry(&claimed, &name, "action.sending", self.0.clock.now());
        sending.payload_sha256 = Some(hash.clone());
        if let Err(e) = self.0.auditor.record(tenant, sending).await {
            tracing::error!(tenant = %tenant, action = %id, error = %e,
                "the audit log cannot be written: the action fails, nothing sent");
            self.0
                .store
                .transition(
                    tenant,
                    id,
                    ActionStatus::Executing,
                    ActionStatus::Failed,
                    Vec::new(),
                    None,
                )
                .await?;
            return Err(e.into());
        }
        let mut results: Vec<StepResult> = Vec::with_capacity(steps.len());
        for step in &steps {
            let result = self
                .0
                .sender
                .send_step(tenant, claimed.target_service, step)
                .await;
            let ok = result.ok;
            results.push(result);
            if !ok {
                break;
            }
        }
        let ok = results.len() == steps.len() && results.iter().all(|r| r.ok);
        let to = if ok {
            ActionStatus::Executed
        } else {
            ActionStatus::Failed
        };
        let last_status = results.last().and_then(|r| r.status_code);
        let done = self
            .0
            .store
            .transition(tenant, id, ActionStatus::Executing, to, results, None)
            .await?
            .ok_or_else(|| ActionError::Conflict("the action changed while it ran".into()))?;
        let mut entry = Self::entry(&done, &name, "action.confirmed", self.0.clock.now());
        entry.status_code = last_status;
        entry.ok = ok;
        entry.payload_sha256 = Some(hash);
        self.0.auditor.record(tenant, entry).await?;
        tracing::info!(tenant = %tenant, action = %id, ok, "action confirmed");
        Ok(done)
    }

    /// Turns the tenant's prepared action `id` down for `actor`.
    #[tracing::instrument(name = "action.reject", skip_all, fields(tenant = %tenant, action_id = %id))]
    pub async fn reject(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        id: &str,
    ) -> Result<PreparedAction, ActionError> {
        let rejected = self
            .decide(tenant, id, ActionStatus::Rejected, actor)
            .await?;
        let name = Self::decision_name(&rejected, actor);
        self.audit(&rejected, &name, "action.rejected", None, true)
            .await?;
        Ok(rejected)
    }

    /// How a decision's audit row names who made it and who proposed what it decided:
    /// `key:b via ui; proposed by key:a via mcp`.
    fn decision_name(action: &PreparedAction, actor: &Actor) -> String {
        let via = action
            .proposed_via
            .map(|d| format!(" via {d}"))
            .unwrap_or_default();
        format!(
            "{}; proposed by {}{via}",
            actor.audit_name(),
            action.proposed_by
        )
    }

    fn entry(
        action: &PreparedAction,
        actor: &str,
        kind: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> audit::AuditRecord {
        let mut entry = audit::record(actor, kind, at);
        entry.correlation_key = Some(action.correlation_key.to_string());
        entry.target = Some(action.target_service.as_str().to_owned());
        entry.method = Some(action.method.as_str().to_owned());
        entry.endpoint = Some(action.endpoint.to_string());
        entry.action_id = Some(action.id.clone());
        entry
    }

    async fn audit(
        &self,
        action: &PreparedAction,
        actor: &str,
        kind: &str,
        status_code: Option<u16>,
        ok: bool,
    ) -> Result<(), StoreError> {
        let mut entry = Self::entry(action, actor, kind, self.0.clock.now());
        entry.status_code = status_code;
        entry.ok = ok;
        entry.payload_sha256 = Some(sha256_hex(action.payload.to_string().as_bytes()));
        self.0.auditor.record(&action.tenant, entry).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::actions::{InMemoryActions, RecordingSender};
    use crate::audit::{AuditKey, AuditLog};
    use crate::clock::FakeClock;
    use crate::event::{CompletionEvent, Service};
    use crate::memory::InMemoryStore;

    struct World {
        service: ActionService,
        sender: Arc<RecordingSender>,
        store: InMemoryStore,
        clock: Arc<FakeClock>,
        key: AuditKey,
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn next_id() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        format!("act_{}", N.fetch_add(1, Ordering::Relaxed))
    }

    /// Item 143: an AIFactory task in human review, whose approval is two steps.
    async fn world(sender: RecordingSender) -> World {
        world_with(sender, false).await
    }

    /// The world, its service refusing the proposer's confirm when `four_eyes`.
    async fn world_with(sender: RecordingSender, four_eyes: bool) -> World {
        world_audited(sender, four_eyes, None).await
    }

    /// An audit log whose appends all fail, as a database gone read-only would.
    struct BrokenLog;

    #[async_trait::async_trait]
    impl AuditLog for BrokenLog {
        async fn append(
            &self,
            _: &AuditKey,
            _: &TenantId,
            _: audit::AuditRecord,
        ) -> Result<audit::AuditEntry, StoreError> {
            Err(StoreError::Unavailable(
                "the audit table is read-only".into(),
            ))
        }
        async fn audit_page(
            &self,
            _: &TenantId,
            _: u32,
            _: Option<i64>,
        ) -> Result<Vec<audit::AuditEntry>, StoreError> {
            Ok(Vec::new())
        }
        async fn audit_chain(
            &self,
            _: &TenantId,
        ) -> Result<(Vec<audit::AuditEntry>, Option<audit::AuditHead>), StoreError> {
            Ok((Vec::new(), None))
        }
        async fn has_chains(&self) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn a_confirm_whose_audit_cannot_be_written_sends_nothing() {
        let w = world_audited(RecordingSender::new(), false, Some(Arc::new(BrokenLog))).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        let result = w.service.confirm(&acme(), &by("key_b"), &action.id).await;
        assert!(
            matches!(result, Err(ActionError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
        assert!(w.sender.sent().is_empty(), "no step was sent");
        let stored = w.service.get(&acme(), &action.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ActionStatus::Failed);
        assert!(stored.results.is_empty(), "{:?}", stored.results);
    }

    /// The world with its auditor writing to `log` (the store's own when `None`).
    async fn world_audited(
        sender: RecordingSender,
        four_eyes: bool,
        log: Option<Arc<dyn AuditLog>>,
    ) -> World {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let clock = Arc::new(FakeClock::at(t0));
        let store = InMemoryStore::new(clock.clone());
        let event = CompletionEvent::parse(
            &json!({
                "id": "evt-1", "time": t0.to_rfc3339(), "correlation_key": "143",
                "service": "aifactory", "task_id": "proj:002", "status": "human_review",
                "phase": "act", "project_id": "console", "review_reason": "completed",
                "pr_number": 311
            })
            .to_string(),
        )
        .unwrap();
        store.ingest(&acme(), vec![event]).await.unwrap();
        let sender = Arc::new(sender);
        let key = AuditKey::new(b"0123456789abcdef0123".to_vec()).unwrap();
        let mut parts = ActionServiceParts::new(
            Arc::new(InMemoryActions::new()),
            Arc::new(store.clone()),
            sender.clone(),
            Auditor::new(log.unwrap_or_else(|| Arc::new(store.clone())), key.clone()),
            clock.clone(),
            next_id,
        );
        parts.require_second_approver = four_eyes;
        World {
            service: ActionService::new(parts),
            sender,
            store,
            clock,
            key,
        }
    }

    async fn kinds_audited(w: &World) -> Vec<String> {
        let mut page = w.store.audit_page(&acme(), 50, None).await.unwrap();
        page.reverse();
        page.into_iter().map(|e| e.record.kind).collect()
    }

    fn by(id: &str) -> Actor {
        Actor::new(id, crate::actions::Door::Api)
    }

    fn key143() -> CorrelationKey {
        CorrelationKey::parse("143").unwrap()
    }

    #[tokio::test]
    async fn a_confirm_sends_every_step_once_and_is_audited() {
        let w = world(RecordingSender::new()).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(action.status, ActionStatus::Prepared);
        assert!(w.sender.sent().is_empty(), "proposing sends nothing");

        let done = w
            .service
            .confirm(&acme(), &by("key_b"), &action.id)
            .await
            .unwrap();
        assert_eq!(done.status, ActionStatus::Executed);
        let sent = w.sender.sent();
        assert_eq!(sent.len(), 2, "create-pr then merge");
        assert!(sent.iter().all(|(s, _)| *s == Service::AIFACTORY));
        assert_eq!(
            w.sender.tenants(),
            [acme(), acme()],
            "each step goes through the acting tenant's own upstream"
        );
        assert_eq!(done.results.len(), 2);

        let again = w.service.confirm(&acme(), &by("key_b"), &action.id).await;
        assert!(matches!(again, Err(ActionError::Conflict(_))), "{again:?}");
        assert_eq!(w.sender.sent().len(), 2, "a second confirm sends nothing");
        assert_eq!(
            kinds_audited(&w).await,
            ["action.sending", "action.confirmed"],
            "audited before anything is sent, then with the outcome"
        );
        assert_eq!(done.decided_by.as_deref(), Some("key_b"));
        assert_eq!(done.proposed_by, "key_a");
        let page = w.store.audit_page(&acme(), 5, None).await.unwrap();
        assert_eq!(
            page[0].record.actor, "key_b via api; proposed by key_a via api",
            "the audit row names both people and their doors"
        );
        let report = Auditor::new(Arc::new(w.store.clone()), w.key.clone())
            .verify(&acme())
            .await
            .unwrap();
        assert_eq!(report.rows, 2);
    }

    #[tokio::test]
    async fn a_refused_step_fails_the_action_and_stops_there() {
        let w = world(RecordingSender::refusing("gates not passed")).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        let done = w
            .service
            .confirm(&acme(), &by("key_a"), &action.id)
            .await
            .unwrap();
        assert_eq!(done.status, ActionStatus::Failed);
        assert_eq!(
            w.sender.sent().len(),
            1,
            "the merge is not sent after a refused PR"
        );
        assert_eq!(done.results[0].error.as_deref(), Some("gates not passed"));
    }

    #[tokio::test]
    async fn an_unconfirmed_proposal_expires_audited_and_cannot_be_confirmed() {
        let w = world(RecordingSender::new()).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        w.clock
            .advance(Duration::seconds(DEFAULT_ACTION_TTL_SECONDS));
        assert_eq!(w.service.sweep().await.unwrap(), 1);
        assert_eq!(w.service.sweep().await.unwrap(), 0, "expired once");
        let stored = w.service.get(&acme(), &action.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ActionStatus::Expired);
        let refused = w.service.confirm(&acme(), &by("key_a"), &action.id).await;
        assert!(
            matches!(&refused, Err(ActionError::Conflict(m)) if m.contains("expired")),
            "{refused:?}"
        );
        assert!(w.sender.sent().is_empty());
        assert_eq!(kinds_audited(&w).await, ["action.expired"]);
    }

    #[tokio::test]
    async fn a_rejected_proposal_is_audited_and_never_sent() {
        let w = world(RecordingSender::new()).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        let rejected = w
            .service
            .reject(&acme(), &by("key_c"), &action.id)
            .await
            .unwrap();
        assert_eq!(rejected.status, ActionStatus::Rejected);
        let late = w.service.confirm(&acme(), &by("key_a"), &action.id).await;
        assert!(matches!(late, Err(ActionError::Conflict(_))), "{late:?}");
        assert!(w.sender.sent().is_empty());
        assert_eq!(kinds_audited(&w).await, ["action.rejected"]);
    }

    #[tokio::test]
    async fn another_tenant_and_unknown_keys_get_not_found() {
        let w = world(RecordingSender::new()).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        let other = TenantId::parse("globex").unwrap();
        let theirs = w.service.confirm(&other, &by("key_x"), &action.id).await;
        assert!(
            matches!(theirs, Err(ActionError::NotFound(_))),
            "{theirs:?}"
        );
        let unknown = CorrelationKey::parse("999").unwrap();
        let missing = w
            .service
            .propose(&acme(), &by("key_a"), ActionKind::Recover, &unknown, None)
            .await;
        assert!(
            matches!(missing, Err(ActionError::NotFound(_))),
            "{missing:?}"
        );
        let available = w.service.available(&acme(), "143").await.unwrap().unwrap();
        assert!(
            available.1.contains(&ActionKind::ApproveGate),
            "{available:?}"
        );
        assert!(w.sender.sent().is_empty());
    }

    #[tokio::test]
    async fn four_eyes_refuses_the_proposer_and_lets_a_second_person_confirm() {
        let w = world_with(RecordingSender::new(), true).await;
        let action = w
            .service
            .propose(
                &acme(),
                &by("key_a"),
                ActionKind::ApproveGate,
                &key143(),
                None,
            )
            .await
            .unwrap();
        let own = Actor::new("key_a", crate::actions::Door::Ui);
        let refused = w.service.confirm(&acme(), &own, &action.id).await;
        assert!(
            matches!(&refused, Err(ActionError::Forbidden(m)) if m.contains("second person")),
            "{refused:?}"
        );
        assert!(w.sender.sent().is_empty(), "nothing was sent");
        let still = w.service.get(&acme(), &action.id).await.unwrap().unwrap();
        assert_eq!(still.status, ActionStatus::Prepared, "still waiting");
        let done = w
            .service
            .confirm(&acme(), &by("key_b"), &action.id)
            .await
            .unwrap();
        assert_eq!(done.status, ActionStatus::Executed);
        assert_eq!(done.decided_by.as_deref(), Some("key_b"));
    }
}

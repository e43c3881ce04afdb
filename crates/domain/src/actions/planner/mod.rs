//! The planner: [`plan_action`] turns an action kind, a WorkItem and its timeline into the
//! exact upstream call the family's contracts describe, or a [`Refusal`] saying why the
//! item is not in a state for it; [`available_actions`] lists the kinds that can be
//! proposed now.
//!
//! Its room in the hexagon: pure domain logic; it reads only what it is given and sends
//! nothing. Each kind has its own file (`recover` holds both of its kinds); `facts` reads
//! the item and the gate it waits at, `request` builds steps that stay on the target
//! service, and `text` makes upstream and proposer text safe to quote.

mod approve_gate;
mod emit_issues;
mod facts;
mod kick_handback;
mod recover;
mod reject_review;
mod request;
mod text;
mod trigger_handoff;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{ActionKind, ActionStatus, ActionStep, Actor, PreparedAction};
use crate::event::Service;
use crate::ids::{CorrelationKey, TenantId};
use crate::ports::TimelineEntry;
use crate::workitem::WorkItem;
use approve_gate::approve_gate;
use emit_issues::emit_issues;
use facts::Facts;
use kick_handback::kick_handback;
use recover::recover;
use reject_review::reject_review;
use text::clean_note;
use trigger_handoff::trigger_handoff;

pub use text::MAX_NOTE_CHARS;

/// Why an action cannot be proposed for an item, in words for the person (or model) that
/// asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The reason.
    pub reason: String,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A planned action before it has an id, a tenant and a proposer: what [`plan_action`]
/// returns. [`ActionPlan::prepare`] makes it a [`PreparedAction`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionPlan {
    /// What it does.
    pub kind: ActionKind,
    /// The item's canonical key.
    pub correlation_key: CorrelationKey,
    /// The service the steps go to.
    pub target_service: Service,
    /// The first step.
    pub step: ActionStep,
    /// Steps after the first.
    pub follow_ups: Vec<ActionStep>,
    /// Why this call.
    pub rationale: String,
    /// The proposer's note, cleaned.
    pub note: Option<String>,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl ActionPlan {
    /// The plan as a stored proposal in status `prepared`, proposed by `proposer`.
    pub fn prepare(
        self,
        id: impl Into<String>,
        tenant: TenantId,
        proposer: &Actor,
    ) -> PreparedAction {
        PreparedAction {
            id: id.into(),
            kind: self.kind,
            correlation_key: self.correlation_key,
            target_service: self.target_service,
            method: self.step.method,
            endpoint: self.step.endpoint,
            payload: self.step.payload,
            follow_ups: self.follow_ups,
            rationale: self.rationale,
            status: ActionStatus::Prepared,
            created_at: self.created_at,
            expires_at: self.expires_at,
            note: self.note,
            proposed_by: proposer.id.clone(),
            proposed_via: Some(proposer.door),
            decided_by: None,
            decided_via: None,
            tenant,
            results: Vec::new(),
        }
    }
}

/// Plans `kind` for `item`, whose timeline (its recorded events, oldest first, each with
/// its raw JSON) is `timeline`, at the moment `now`; the proposal expires after `ttl`.
///
/// The upstream calls (from `shared/contracts/README.md` §3):
/// - `approve_gate`, by the gate the item waits at, furthest stage first: a TFactory test
///   plan awaiting approval → `POST /api/tasks/{spec}/approve-plan`; an AIFactory task in
///   `human_review` → `POST /api/tasks/{task}/worktree/create-pr`, then
///   `POST /api/tasks/{task}/worktree/merge`; a PFactory plan `awaiting_approval` →
///   `POST /api/plan/sessions/{session}/approve {approver, feedback?}`, refused when the
///   review gates on record have not passed.
/// - `trigger_handoff`: an approved plan with an issue and no coding task →
///   `POST /api/tasks/create-and-run?project_id=&title=&description=` with
///   `{auto_continue, complexity, baseBranch, provenance{…}}`.
/// - `kick_handback`: a stopped AIFactory task → `POST /api/tasks/{task}/apply-correction
///   {fix_request_md, source, confirm: true, correlation_key, tfactory_task_id?}`, the fix
///   request built from the latest failing TFactory verdicts and the note.
/// - `recover`: a stuck or silent AIFactory task → `POST /api/tasks/{task}/recover`.
/// - `reject_review`, like approve: `POST /api/tasks/{spec}/reject-plan`,
///   `DELETE /api/tasks/{task}`, or `POST /api/plan/sessions/{session}/reject {approver,
///   feedback}`.
///
/// The PFactory review gates are read from the newest PFactory entry of `timeline` that
/// carries a `review` block (`gates_passed`, `aggregate_score`, `threshold`, `lenses`) or
/// the published `review_gates` list; a caller that fetched the session's detail from
/// PFactory may append it as such an entry. With no review on record the approval is
/// still proposed, and its rationale says PFactory itself refuses it (409) until the
/// gates pass.
pub fn plan_action(
    kind: ActionKind,
    item: &WorkItem,
    timeline: &[TimelineEntry],
    note: Option<&str>,
    now: DateTime<Utc>,
    ttl: Duration,
    context: &PlanContext,
) -> Result<ActionPlan, Refusal> {
    let note = clean_note(note);
    let facts = Facts::new(item, timeline, now, context);
    let draft = match kind {
        ActionKind::ApproveGate => approve_gate(&facts, note.as_deref()),
        ActionKind::EmitIssues => emit_issues(&facts),
        ActionKind::TriggerHandoff => trigger_handoff(&facts, note.as_deref()),
        ActionKind::KickHandback => kick_handback(&facts, note.as_deref()),
        ActionKind::Recover => recover(&facts, false),
        ActionKind::RecoverAndRestart => recover(&facts, true),
        ActionKind::RejectReview => reject_review(&facts, note.as_deref()),
    }?;
    Ok(ActionPlan {
        kind,
        correlation_key: item.correlation_key.clone(),
        target_service: draft.service,
        step: draft.step,
        follow_ups: draft.follow_ups,
        rationale: draft.rationale,
        note,
        created_at: now,
        expires_at: now + ttl,
    })
}

/// The kinds that can be proposed for `item` at `now` without a note, in
/// [`ActionKind::ALL`] order: what the cockpit may offer as buttons, or suggest beside an
/// insight.
pub fn available_actions(
    item: &WorkItem,
    timeline: &[TimelineEntry],
    now: DateTime<Utc>,
    context: &PlanContext,
) -> Vec<ActionKind> {
    ActionKind::ALL
        .into_iter()
        .filter(|k| plan_action(*k, item, timeline, None, now, Duration::zero(), context).is_ok())
        .collect()
}

/// What the planner needs from the tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// AIFactory's project registry keys by repository (`acme/shop` → `shop`):
    /// create-and-run takes only a key of AIFactory's own registry.
    pub aifactory_projects: BTreeMap<String, String>,
}

/// What a planner decided: the service, the steps and why.
struct Draft {
    service: Service,
    step: ActionStep,
    follow_ups: Vec<ActionStep>,
    rationale: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixtures::{af, build, context, emitted, t0, tf};
    use serde_json::json;

    #[test]
    fn available_actions_lists_what_can_be_proposed_now() {
        let now = t0() + Duration::minutes(30);
        let (item, timeline) = build(&[
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
        ]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::ApproveGate, ActionKind::RejectReview]
        );
        let (item, timeline) = build(&[emitted()]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::TriggerHandoff]
        );
        let failing = tf("triaged", json!({"outcome": "failure"}));
        let (item, timeline) = build(&[emitted(), af("done", json!({})), failing]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::KickHandback]
        );
    }
}

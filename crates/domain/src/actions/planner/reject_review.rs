//! `reject_review`: turns down what waits at a gate: a TFactory test plan, an AIFactory
//! task in human review (deleted), or a PFactory plan, with the proposer's feedback.
//!
//! Its room in the hexagon: one kind of the pure planner; no I/O.

use serde_json::{Value, json};

use super::facts::{Facts, Gate, find_gate, no_gate};
use super::request::{segment, step};
use super::text::safe_token;
use super::{Draft, Refusal};
use crate::actions::{APPROVER, HttpMethod};
use crate::event::Service;

pub(super) fn reject_review(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    match find_gate(f).ok_or_else(|| no_gate(f, "reject"))? {
        Gate::TestPlan(test) => {
            let spec = segment(Service::TFACTORY, &test.task_id)?;
            Ok(Draft {
                service: Service::TFACTORY,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{spec}/reject-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "TFactory spec `{spec}` on {} is at its test-plan gate ({}). Rejecting the \
                     plan sends it back to TFactory's planner; no tests run from it.",
                    f.label(),
                    safe_token(&test.status)
                ),
            })
        }
        Gate::CodeReview(code) => {
            let task = segment(Service::AIFACTORY, &code.task_id)?;
            Ok(Draft {
                service: Service::AIFACTORY,
                step: step(
                    HttpMethod::Delete,
                    format!("/api/tasks/{task}"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "AIFactory task `{task}` on {} waits in human_review. AIFactory has no \
                     separate reject: rejecting deletes the task and discards its unmerged work. \
                     The delete needs an admin token on AIFactory (a member token gets 403). To \
                     ask for changes instead, kick a handback with a note.",
                    f.label()
                ),
            })
        }
        Gate::Plan(plan) => {
            let session = segment(Service::PFACTORY, &plan.task_id)?;
            let feedback = note.unwrap_or("Rejected from the CFactory cockpit.");
            Ok(Draft {
                service: Service::PFACTORY,
                step: step(
                    HttpMethod::Post,
                    format!("/api/plan/sessions/{session}/reject"),
                    json!({"approver": APPROVER, "feedback": feedback}),
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "PFactory session `{session}` on {} is `{}`. Rejecting records the person who \
                     confirms and the feedback; PFactory emits no issues for a rejected plan.",
                    f.label(),
                    safe_token(&plan.status)
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::actions::fixtures::{emitted, pf, plan, refused};
    use crate::actions::{APPROVER, ActionKind};
    use serde_json::json;

    #[test]
    fn reject_plan_goes_to_pfactory_with_feedback() {
        let p = plan(
            ActionKind::RejectReview,
            &[pf("awaiting_approval", json!({}))],
            Some("Out of scope this quarter."),
        )
        .unwrap();
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/reject"
        );
        assert_eq!(
            p.step.payload,
            json!({"approver": APPROVER, "feedback": "Out of scope this quarter."})
        );
        let p = plan(
            ActionKind::RejectReview,
            &[pf("reviewing", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(
            p.step.payload["feedback"],
            json!("Rejected from the CFactory cockpit.")
        );
        let why = refused(plan(ActionKind::RejectReview, &[emitted()], None));
        assert!(why.contains("waits at a gate to reject"), "{why}");
    }
}

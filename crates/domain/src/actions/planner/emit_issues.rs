//! `emit_issues`: has PFactory create an approved plan's GitHub issues (an emit, not a dry
//! run), refused before approval and once they are emitted.
//!
//! Its room in the hexagon: one kind of the pure planner; no I/O.

use serde_json::json;

use super::facts::Facts;
use super::request::{segment, step};
use super::text::safe_token;
use super::{Draft, Refusal};
use crate::actions::HttpMethod;
use crate::event::Service;

pub(super) fn emit_issues(f: &Facts<'_>) -> Result<Draft, Refusal> {
    let item = f.item;
    let Some(plan) = item.stages.plan() else {
        return Err(Refusal::new(format!(
            "{} has no PFactory plan whose issues could be emitted.",
            f.label()
        )));
    };
    let session = segment(Service::PFACTORY, &plan.task_id)?;
    if !plan.status.trim().eq_ignore_ascii_case("approved") {
        let why = if plan.status.trim().eq_ignore_ascii_case("emitted") {
            "its issues are already emitted".to_owned()
        } else if plan.awaits_approval() {
            "it is not approved yet: approve it first".to_owned()
        } else {
            "only an approved plan's issues are emitted".to_owned()
        };
        return Err(Refusal::new(format!(
            "PFactory session `{session}` on {} is `{}`: {why}.",
            f.label(),
            safe_token(&plan.status)
        )));
    }
    let Some(repo) = item
        .links
        .repo
        .clone()
        .or_else(|| item.project.as_deref().and_then(crate::ids::parse_repo))
    else {
        return Err(Refusal::new(format!(
            "{} names no GitHub repository (owner/name), which PFactory's emit needs.",
            f.label()
        )));
    };
    Ok(Draft {
        service: Service::PFACTORY,
        step: step(
            HttpMethod::Post,
            format!("/api/plan/sessions/{session}/emit"),
            json!({"repo": repo, "dry_run": false}),
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory session `{session}` on {} is approved and its issues are not emitted \
             yet. Emit creates the epic and child issues in `{}` on GitHub; CFactory sends \
             dry_run: false explicitly, since PFactory's emit only previews by default.",
            f.label(),
            safe_token(&repo)
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::ActionKind;
    use crate::actions::fixtures::{emitted, pf, plan, refused};
    use crate::event::Service;
    use serde_json::json;

    #[test]
    fn a_processed_plan_is_approved_and_its_issues_emitted_separately() {
        let processed = pf(
            "processed",
            json!({"review": {"gates_passed": true,
            "aggregate_score": 0.9, "threshold": 0.7, "lenses": []}}),
        );
        let p = plan(
            ActionKind::ApproveGate,
            std::slice::from_ref(&processed),
            None,
        )
        .unwrap();
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/approve"
        );
        assert!(
            p.rationale.contains("creates no GitHub issues"),
            "{}",
            p.rationale
        );
        let why = refused(plan(ActionKind::EmitIssues, &[processed], None));
        assert!(why.contains("approve it first"), "{why}");
        let approved = pf("approved", json!({}));
        let e = plan(ActionKind::EmitIssues, &[approved], None).unwrap();
        assert_eq!(e.target_service, Service::PFACTORY);
        assert_eq!(
            e.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/emit"
        );
        assert_eq!(
            e.step.payload,
            json!({"repo": "acme/shop", "dry_run": false})
        );
        let why = refused(plan(ActionKind::EmitIssues, &[emitted()], None));
        assert!(why.contains("already emitted"), "{why}");
    }
}

//! `trigger_handoff`: hands an approved, emitted plan's issue to AIFactory with
//! create-and-run in the project its registry keys the repository by, carrying the plan's
//! provenance.
//!
//! Its room in the hexagon: one kind of the pure planner; no I/O.

use serde_json::json;

use super::facts::Facts;
use super::request::{encode_query, step};
use super::text::{one_line, safe_token};
use super::{Draft, Refusal};
use crate::actions::{APPROVER, CONFIRMED_AT, HttpMethod};
use crate::event::Service;
use crate::taxonomy::StatusClass;

pub(super) fn trigger_handoff(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    let item = f.item;
    let Some(plan) = item.stages.plan() else {
        return Err(Refusal::new(format!(
            "{} has no PFactory plan, so there is no approved plan to hand to AIFactory.",
            f.label()
        )));
    };
    if plan.status_class != StatusClass::Done {
        return Err(Refusal::new(format!(
            "PFactory's plan on {} is `{}` ({}): only an approved, emitted plan is handed off. {}",
            f.label(),
            safe_token(&plan.status),
            plan.status_class.as_str(),
            if plan.awaits_approval() {
                "Approve it first."
            } else {
                ""
            }
        )
        .trim_end()
        .to_owned()));
    }
    if let Some(code) = item.stages.code() {
        return Err(Refusal::new(format!(
            "AIFactory already has task `{}` for {} ({}); use recover or kick_handback instead \
             of a second handoff.",
            safe_token(&code.task_id),
            f.label(),
            safe_token(&code.status)
        )));
    }
    if let Some(task) = item.links.aifactory_task_ids.last() {
        return Err(Refusal::new(format!(
            "{} is already linked to AIFactory task `{}`; a second handoff would duplicate the work.",
            f.label(),
            safe_token(task)
        )));
    }
    if let Some(scan) = &plan.injection_scan
        && scan.verdict.eq_ignore_ascii_case("flagged")
    {
        return Err(Refusal::new(format!(
            "The injection scan flagged the plan on {}; it must be reviewed before coding starts.",
            f.label()
        )));
    }
    let Some(issue) = item
        .links
        .issue_number
        .or_else(|| item.correlation_key.issue_number())
    else {
        return Err(Refusal::new(format!(
            "{} has no GitHub issue yet; AIFactory's handoff carries the governed issue number.",
            f.label()
        )));
    };
    let Some(repo) = item.project.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(Refusal::new(format!(
            "{} names no repository, which AIFactory needs to create the task.",
            f.label()
        )));
    };
    let repo = one_line(repo);
    let registry = &f.context.aifactory_projects;
    let Some(project_id) = registry
        .get(&repo)
        .or_else(|| registry.get(&repo.to_ascii_lowercase()))
        .cloned()
    else {
        return Err(Refusal::new(format!(
            "AIFactory's create-and-run takes a key of AIFactory's own project registry, and \
             none is mapped for `{}`: add it to the settings (--aifactory-project {}=KEY) and \
             propose again. Nothing was sent.",
            one_line(&repo),
            one_line(&repo)
        )));
    };
    let session = item
        .links
        .session_id
        .clone()
        .unwrap_or_else(|| plan.task_id.clone());
    let title = item
        .title
        .as_deref()
        .map(one_line)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("Issue #{issue}"));
    let mut description = format!(
        "Governed issue #{issue} from PFactory session {}, handed off from CFactory.",
        one_line(&session)
    );
    if let Some(n) = note {
        description.push_str("\n\n");
        description.push_str(&n.chars().take(1000).collect::<String>());
    }
    let endpoint = format!(
        "/api/tasks/create-and-run?project_id={}&title={}&description={}",
        encode_query(&project_id),
        encode_query(&title),
        encode_query(&description)
    );
    let payload = json!({
        "auto_continue": true,
        "complexity": "standard",
        "baseBranch": "main",
        "provenance": {
            "session_id": session,
            "issue_number": issue,
            "repo": repo,
            "source": "cfactory",
            "correlation_key": f.key(),
            "approved_by": APPROVER,
            "approval_timestamp": CONFIRMED_AT,
        },
    });
    Ok(Draft {
        service: Service::AIFACTORY,
        step: step(HttpMethod::Post, endpoint, payload)?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory's plan for issue #{issue} is `{}` and no AIFactory task exists yet. The \
             handoff creates and starts a task in AIFactory project `{}` with provenance \
             (session `{}`, issue #{issue}, the repository, and the person who confirms as \
             approver). AIFactory answers 404 if the project key is not in its registry; it \
             ignores baseBranch and drops provenance fields it does not know.",
            safe_token(&plan.status),
            safe_token(&project_id),
            safe_token(&session)
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::fixtures::{af, build, emitted, pf, plan, refused, t0};
    use crate::actions::{
        APPROVER, ActionKind, CONFIRMED_AT, HttpMethod, PlanContext, fill_placeholders, plan_action,
    };
    use crate::event::Service;
    use chrono::Duration;
    use serde_json::json;

    #[test]
    fn handoff_creates_and_runs_with_provenance() {
        let p = plan(
            ActionKind::TriggerHandoff,
            &[emitted()],
            Some("Keep the refund API backwards compatible."),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::AIFACTORY);
        assert_eq!(p.step.method, HttpMethod::Post);
        let e = p.step.endpoint.as_str();
        assert!(
            e.starts_with("/api/tasks/create-and-run?project_id=shop&title=Refund%20flow&description=Governed%20issue%20%23142"),
            "{e}"
        );
        assert!(e.contains("backwards%20compatible%2E"), "{e}");
        assert_eq!(
            p.step.payload,
            json!({
                "auto_continue": true, "complexity": "standard", "baseBranch": "main",
                "provenance": {
                    "session_id": "001-refund-flow", "issue_number": 142, "repo": "acme/shop",
                    "source": "cfactory", "correlation_key": "142",
                    "approved_by": APPROVER, "approval_timestamp": CONFIRMED_AT
                }
            })
        );
        let filled = fill_placeholders(&p.step.payload, "ada", t0());
        assert_eq!(filled["provenance"]["approved_by"], "ada");
        assert_eq!(
            filled["provenance"]["approval_timestamp"],
            "2026-06-01T12:00:00Z"
        );
    }

    #[test]
    fn handoff_is_refused_unless_an_approved_plan_waits_for_code() {
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[pf("awaiting_approval", json!({}))],
            None,
        ));
        assert!(why.contains("Approve it first"), "{why}");
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[emitted(), af("in_progress", json!({}))],
            None,
        ));
        assert!(why.contains("already has task `proj:001`"), "{why}");
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[af("done", json!({}))],
            None,
        ));
        assert!(why.contains("no PFactory plan"), "{why}");
        let no_repo = json!({
            "service": "pfactory", "task_id": "002-x", "status": "emitted", "phase": "plan"
        });
        let why = refused(plan(ActionKind::TriggerHandoff, &[no_repo], None));
        assert!(why.contains("names no repository"), "{why}");
    }

    #[test]
    fn a_handoff_needs_aifactory_project_key_for_the_repository() {
        let (item, timeline) = build(&[emitted()]);
        let now = t0() + Duration::minutes(30);
        let why = plan_action(
            ActionKind::TriggerHandoff,
            &item,
            &timeline,
            None,
            now,
            Duration::minutes(15),
            &PlanContext::default(),
        )
        .unwrap_err()
        .reason;
        assert!(why.contains("--aifactory-project acme/shop=KEY"), "{why}");
        assert!(why.contains("Nothing was sent"), "{why}");
    }
}

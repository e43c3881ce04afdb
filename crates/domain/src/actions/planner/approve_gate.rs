//! `approve_gate`: passes the gate an item waits at, furthest stage first: a TFactory test
//! plan awaiting approval, an AIFactory task in human review (its own plan review, or
//! opening and merging the PR of completed work), or a PFactory plan whose review gates
//! passed.
//!
//! Its room in the hexagon: one kind of the pure planner; no I/O.

use serde_json::{Map, Value, json};

use super::facts::{Facts, Gate, find_gate, no_gate};
use super::request::{segment, step};
use super::text::safe_token;
use super::{Draft, Refusal};
use crate::actions::{APPROVER, HttpMethod};
use crate::event::Service;
use crate::workitem::Stage;

pub(super) fn approve_gate(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    match find_gate(f).ok_or_else(|| no_gate(f, "approve"))? {
        Gate::TestPlan(test) => {
            let spec = segment(Service::TFACTORY, &test.task_id)?;
            Ok(Draft {
                service: Service::TFACTORY,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{spec}/approve-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "TFactory spec `{spec}` on {} is at its test-plan gate ({}). Approving the \
                     plan lets TFactory generate and run the tests. TFactory answers 409 if the \
                     plan no longer waits for approval.",
                    f.label(),
                    safe_token(&test.status)
                ),
            })
        }
        Gate::CodeReview(code) => approve_code(f, code),
        Gate::Plan(plan) => approve_plan(f, plan, note),
    }
}

fn approve_code(f: &Facts<'_>, code: &Stage) -> Result<Draft, Refusal> {
    let task = segment(Service::AIFACTORY, &code.task_id)?;
    if let Some(scan) = &code.injection_scan
        && scan.verdict.eq_ignore_ascii_case("flagged")
    {
        return Err(Refusal::new(format!(
            "AIFactory task `{task}` on {} is parked in human_review because its injection scan \
             flagged the input. Its change must not be merged from the cockpit: review the \
             flagged input in AIFactory first (or reject the review).",
            f.label()
        )));
    }
    let reason = review_reason(f, code);
    match reason.as_deref() {
        Some("completed") => {}
        Some("plan_review") => {
            return Ok(Draft {
                service: Service::AIFACTORY,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{task}/approve-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "AIFactory task `{task}` on {} waits in human_review for its own plan review \
                     (review_reason plan_review). Approving calls AIFactory's approve-plan, which \
                     lets the task start coding; nothing is merged.",
                    f.label()
                ),
            });
        }
        Some(r @ ("qa_rejected" | "errors")) => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review because {} (review_reason \
                 {r}): its work is not ready to merge. Kick a handback with what to fix instead.",
                f.label(),
                if r == "errors" {
                    "its run ended with errors"
                } else {
                    "its QA rejected the change"
                }
            )));
        }
        Some(r) => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review with review_reason `{}`: its \
                 work is unfinished or unreadable, so there is nothing to approve or merge. \
                 Recover it (optionally with a restart) or look at it in AIFactory.",
                f.label(),
                safe_token(r)
            )));
        }
        None => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review, but AIFactory has not said \
                 why (no review_reason on record). Only completed work may be merged: let \
                 CFactory read the task from AIFactory (refresh) and try again.",
                f.label()
            )));
        }
    }
    let test = f.item.stages.test();
    // A failure older than the review state belongs to a run before the latest correction.
    if let Some(test) = test
        && test.failed()
        && test.at >= code.at
    {
        return Err(Refusal::new(format!(
            "TFactory's latest verdict on {} failed (spec `{}`, {}), so task `{task}`'s change is \
             not proven; kick a handback instead of merging it.",
            f.label(),
            safe_token(&test.task_id),
            safe_token(&test.status)
        )));
    }
    let verified = match test {
        Some(t) if t.at >= code.at => String::new(),
        _ => " TFactory has not verified this run yet.".to_owned(),
    };
    let pr = match f.item.links.pr_number {
        Some(n) => format!(" (PR #{n} is already linked; create-pr returns it)"),
        None => String::new(),
    };
    Ok(Draft {
        service: Service::AIFACTORY,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/worktree/create-pr"),
            Value::Null,
        )?,
        follow_ups: vec![step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/worktree/merge"),
            Value::Null,
        )?],
        rationale: format!(
            "AIFactory task `{task}` on {} finished and waits in human_review (review_reason \
             completed). Approving calls create-pr, which opens the pull request from the \
             worktree{pr} (or answers success: false with the error), then merge, which merges \
             the worktree branch into the base branch in AIFactory's local repository: it does \
             not merge the GitHub pull request.{verified}",
            f.label()
        ),
    })
}

/// Why an AIFactory task waits in human review: what AIFactory's API said on the stage,
/// else the newest event of that task that carries a `review_reason`.
fn review_reason(f: &Facts<'_>, code: &Stage) -> Option<String> {
    code.review_reason
        .clone()
        .or_else(|| {
            f.entries_of(Service::AIFACTORY)
                .filter(|(e, _)| e.task_id == code.task_id)
                .find_map(|(_, v)| {
                    v.get("review_reason")
                        .or_else(|| v.get("reviewReason"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        })
        .map(|r| r.trim().to_ascii_lowercase())
}

/// PFactory's review-gate result as an event (or a session detail) reported it.
struct Review {
    passed: bool,
    aggregate: Option<f64>,
    threshold: Option<f64>,
    blocking: Vec<String>,
}

fn read_review(v: &Value) -> Option<Review> {
    let names = |list: Option<&Vec<Value>>, keep: &dyn Fn(&Value) -> bool, key: &str| {
        list.into_iter()
            .flatten()
            .filter(|l| keep(l))
            .filter_map(|l| l.get(key).and_then(Value::as_str))
            .map(safe_token)
            .collect::<Vec<_>>()
    };
    let block = v
        .get("review")
        .filter(|r| r.is_object())
        .or_else(|| v.get("gates_passed").filter(|g| g.is_boolean()).map(|_| v));
    if let Some(r) = block {
        let lenses = r.get("lenses").and_then(Value::as_array);
        // A lens blocks when it says so, or (PFactory's real shape) when one of its
        // findings does.
        let blocking = names(
            lenses,
            &|l| {
                l.get("blocking").and_then(Value::as_bool) == Some(true)
                    || l.get("findings")
                        .and_then(Value::as_array)
                        .is_some_and(|f| {
                            f.iter()
                                .any(|x| x.get("blocking").and_then(Value::as_bool) == Some(true))
                        })
            },
            "lens",
        );
        let aggregate = r.get("aggregate_score").and_then(Value::as_f64);
        let threshold = r.get("threshold").and_then(Value::as_f64);
        let passed = match r.get("gates_passed").and_then(Value::as_bool) {
            Some(p) => p,
            None if lenses.is_some() || aggregate.is_some() => {
                blocking.is_empty()
                    && match (aggregate, threshold) {
                        (Some(a), Some(t)) => a >= t,
                        _ => true,
                    }
            }
            None => return None,
        };
        return Some(Review {
            passed,
            aggregate,
            threshold,
            blocking,
        });
    }
    let gates = v.get("review_gates").and_then(Value::as_array)?;
    if gates.is_empty() {
        return None;
    }
    let failing = names(
        Some(gates),
        &|g| g.get("verdict").and_then(Value::as_str) == Some("fail"),
        "name",
    );
    Some(Review {
        passed: failing.is_empty(),
        aggregate: None,
        threshold: None,
        blocking: failing,
    })
}

fn approve_plan(f: &Facts<'_>, plan: &Stage, note: Option<&str>) -> Result<Draft, Refusal> {
    let session = segment(Service::PFACTORY, &plan.task_id)?;
    if !plan.awaits_approval() {
        return Err(Refusal::new(format!(
            "PFactory session `{session}` on {} is `{}`: its review gates are still running, \
             and it can be approved only once it is processed (gates evaluated) with the gates \
             passed. PFactory answers 400 before that.",
            f.label(),
            safe_token(&plan.status)
        )));
    }
    let review = f
        .entries_of(Service::PFACTORY)
        .filter(|(e, _)| e.task_id == plan.task_id)
        .find_map(|(_, v)| read_review(v));
    let score = |r: &Review| match (r.aggregate, r.threshold) {
        (Some(a), Some(t)) => format!("aggregate score {a:.2} against threshold {t:.2}"),
        (Some(a), None) => format!("aggregate score {a:.2}"),
        _ => "no aggregate score".to_owned(),
    };
    let gates = match &review {
        Some(r) if !r.passed => {
            let blocking = if r.blocking.is_empty() {
                String::new()
            } else {
                format!("; blocking: {}", r.blocking.join(", "))
            };
            return Err(Refusal::new(format!(
                "PFactory's review gates have not passed for session `{session}` on {} ({}{}). \
                 PFactory refuses approval (409) until they pass: address the findings and \
                 re-run the review in PFactory, or reject the plan.",
                f.label(),
                score(r),
                blocking
            )));
        }
        Some(r) => format!("Its review gates passed ({}).", score(r)),
        None => "CFactory has no review-gate result on record for it; PFactory itself refuses \
                 the approval (409) if the gates have not passed."
            .to_owned(),
    };
    let mut payload = Map::new();
    payload.insert("approver".into(), json!(APPROVER));
    if let Some(n) = note {
        payload.insert("feedback".into(), json!(n));
    }
    Ok(Draft {
        service: Service::PFACTORY,
        step: step(
            HttpMethod::Post,
            format!("/api/plan/sessions/{session}/approve"),
            Value::Object(payload),
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory session `{session}` on {} waits for sign-off (`{}`). {gates} Approving \
             records the person who confirms as the approver; it creates no GitHub issues: \
             emitting them is a separate action (emit_issues) once the plan is approved.",
            f.label(),
            safe_token(&plan.status)
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::fixtures::{af, emitted, pf, plan, refused, tf};
    use crate::actions::{APPROVER, ActionKind, HttpMethod};
    use crate::event::Service;
    use chrono::Duration;
    use serde_json::{Value, json};

    #[test]
    fn approve_plan_with_passed_gates_goes_to_pfactory() {
        let review = json!({"review": {"gates_passed": true, "aggregate_score": 0.86,
            "threshold": 0.7, "lenses": [{"lens": "security", "blocking": false}]}});
        let p = plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", review)],
            Some("  ship it  "),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::PFACTORY);
        assert_eq!(p.step.method, HttpMethod::Post);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/approve"
        );
        assert_eq!(
            p.step.payload,
            json!({"approver": APPROVER, "feedback": "ship it"})
        );
        assert!(p.follow_ups.is_empty());
        assert!(p.rationale.contains("0.86"), "{}", p.rationale);
        assert_eq!(p.note.as_deref(), Some("ship it"));
        assert_eq!(p.expires_at - p.created_at, Duration::minutes(15));
    }

    #[test]
    fn approve_plan_is_refused_while_gates_have_not_passed() {
        let review = json!({"review": {"gates_passed": false, "aggregate_score": 0.55,
            "threshold": 0.7, "lenses": [{"lens": "security", "blocking": true},
                                         {"lens": "feasibility", "blocking": false}]}});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", review)],
            None,
        ));
        assert!(why.contains("have not passed"), "{why}");
        assert!(why.contains("0.55") && why.contains("0.70"), "{why}");
        assert!(why.contains("blocking: security"), "{why}");
        // The published YAML's spelling of the gates counts too.
        let gates = json!({"review_gates": [{"name": "architecture", "verdict": "pass"},
                                            {"name": "security", "verdict": "fail"}]});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", gates)],
            None,
        ));
        assert!(why.contains("blocking: security"), "{why}");
        // PFactory's real shape marks the findings blocking, not the lens.
        let real = json!({"review": {"gates_passed": false, "aggregate_score": 0.6,
            "threshold": 0.7, "lenses": [
                {"lens": "scope", "score": 4, "findings": [{"blocking": false, "text": "ok"}]},
                {"lens": "risk", "score": 2, "findings": [{"blocking": true, "text": "no rollback"}]}]}});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("processed", real)],
            None,
        ));
        assert!(why.contains("blocking: risk"), "{why}");
        assert!(!why.contains("scope"), "{why}");
    }

    #[test]
    fn approve_plan_still_in_review_or_without_a_result_on_record() {
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("reviewing", json!({}))],
            None,
        ));
        assert!(why.contains("still running"), "{why}");
        let p = plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(p.step.payload, json!({"approver": APPROVER}));
        assert!(
            p.rationale.contains("no review-gate result on record"),
            "{}",
            p.rationale
        );
        // A newer result on record wins over an older one.
        let old = pf(
            "awaiting_approval",
            json!({"review": {"gates_passed": false}}),
        );
        let new = pf(
            "awaiting_approval",
            json!({"review": {"gates_passed": true}}),
        );
        assert!(plan(ActionKind::ApproveGate, &[old.clone(), new.clone()], None).is_ok());
        assert!(plan(ActionKind::ApproveGate, &[new, old], None).is_err());
    }

    #[test]
    fn approve_test_plan_goes_to_tfactory() {
        let events = [
            emitted(),
            af("done", json!({})),
            tf("planning", json!({"plan_status": "awaiting_approval"})),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert_eq!(p.target_service, Service::TFACTORY);
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/spec-001/approve-plan");
        assert_eq!(p.step.payload, Value::Null);
        let r = plan(ActionKind::RejectReview, &events, None).unwrap();
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/spec-001/reject-plan");
        // A plan status that says the plan is approved means no gate.
        let events = [
            emitted(),
            af("done", json!({})),
            tf("planning", json!({"plan_status": "approved"})),
        ];
        let why = refused(plan(ActionKind::ApproveGate, &events, None));
        assert!(why.contains("waits at a gate"), "{why}");
    }

    #[test]
    fn approve_code_in_human_review_opens_then_merges_the_pr() {
        let events = [
            emitted(),
            af(
                "human_review",
                json!({"pr_number": 310, "review_reason": "completed"}),
            ),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert_eq!(p.target_service, Service::AIFACTORY);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/tasks/proj:001/worktree/create-pr"
        );
        assert_eq!(p.follow_ups.len(), 1);
        assert_eq!(p.follow_ups[0].method, HttpMethod::Post);
        assert_eq!(
            p.follow_ups[0].endpoint.as_str(),
            "/api/tasks/proj:001/worktree/merge"
        );
        assert!(p.rationale.contains("PR #310"), "{}", p.rationale);
        // Reject in human review deletes the task.
        let r = plan(ActionKind::RejectReview, &events, None).unwrap();
        assert_eq!(r.step.method, HttpMethod::Delete);
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/proj:001");
    }

    #[test]
    fn approve_is_refused_for_flagged_input_a_failed_verdict_or_no_gate() {
        let flagged = af(
            "human_review",
            json!({"injection_scan": {"verdict": "flagged", "reason": "ignore previous instructions"}}),
        );
        let why = refused(plan(ActionKind::ApproveGate, &[emitted(), flagged], None));
        assert!(why.contains("injection scan flagged"), "{why}");
        assert!(
            !why.contains("ignore previous"),
            "upstream text stays out: {why}"
        );

        let events = [
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
            tf("triaged", json!({"outcome": "failure"})),
        ];
        let why = refused(plan(ActionKind::ApproveGate, &events, None));
        assert!(why.contains("failed"), "{why}");
        // A failure from before the latest correction does not block the new run.
        let events = [
            emitted(),
            af("done", json!({})),
            tf("triaged", json!({"outcome": "failure"})),
            af("human_review", json!({"review_reason": "completed"})),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert!(
            p.rationale.contains("not verified this run"),
            "{}",
            p.rationale
        );

        let why = refused(plan(
            ActionKind::ApproveGate,
            &[emitted(), af("in_progress", json!({}))],
            None,
        ));
        assert!(
            why.contains("plan emitted (done), code in_progress (running)"),
            "{why}"
        );
    }

    #[test]
    fn approve_code_follows_aifactory_review_reason() {
        let with = |reason: Value| {
            [
                emitted(),
                af("human_review", json!({"review_reason": reason})),
            ]
        };
        let p = plan(ActionKind::ApproveGate, &with(json!("plan_review")), None).unwrap();
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/proj:001/approve-plan");
        assert!(p.follow_ups.is_empty(), "a plan review merges nothing");
        for reason in ["qa_rejected", "errors"] {
            let why = refused(plan(ActionKind::ApproveGate, &with(json!(reason)), None));
            assert!(why.contains("handback"), "{reason}: {why}");
            assert!(
                plan(
                    ActionKind::KickHandback,
                    &with(json!(reason)),
                    Some("fix it")
                )
                .is_ok()
            );
        }
        for reason in ["incomplete", "plan_unreadable"] {
            let why = refused(plan(ActionKind::ApproveGate, &with(json!(reason)), None));
            assert!(
                why.contains("nothing to approve or merge"),
                "{reason}: {why}"
            );
        }
        let why = refused(plan(ActionKind::ApproveGate, &with(Value::Null), None));
        assert!(why.contains("no review_reason"), "{why}");
        let merge = plan(ActionKind::ApproveGate, &with(json!("completed")), None).unwrap();
        assert!(
            merge
                .rationale
                .contains("does not merge the GitHub pull request"),
            "{}",
            merge.rationale
        );
    }
}

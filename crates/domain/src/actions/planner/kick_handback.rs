//! `kick_handback`: sends a stopped AIFactory task a correction, its fix request built from
//! the latest failing TFactory verdicts and the proposer's note.
//!
//! Its room in the hexagon: one kind of the pure planner; no I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::facts::Facts;
use super::request::{segment, step};
use super::text::{one_line, safe_token};
use super::{Draft, Refusal};
use crate::actions::HttpMethod;
use crate::event::Service;
use crate::taxonomy::StatusClass;

/// Most failing tests listed in a handback's fix request.
const MAX_FAILING_TESTS: usize = 50;

/// The latest failing TFactory run, as its event reported it.
struct Failing {
    spec: String,
    status: String,
    outcome: Option<String>,
    halt_reason: Option<String>,
    verification: Option<String>,
    tests: Vec<String>,
    at: DateTime<Utc>,
}

fn text_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn event_failed(v: &Value, status: &str) -> bool {
    let class = StatusClass::classify(status);
    let outcome_failed =
        text_at(v, &["outcome"]).is_some_and(|o| o.eq_ignore_ascii_case("failure"));
    let verdict_failed = text_at(v, &["evidence", "verdict"]) == Some("fail")
        || v.pointer("/verification/passed") == Some(&Value::Bool(false));
    matches!(class, StatusClass::Failed | StatusClass::Stuck) || outcome_failed || verdict_failed
}

fn failing_tests(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = one_line(t);
        if !t.is_empty() && !out.contains(&t) && out.len() < MAX_FAILING_TESTS {
            out.push(t);
        }
    };
    for path in [
        "/result/failing_tests",
        "/failing_tests",
        "/triage_report/failing_tests",
    ] {
        for t in v
            .pointer(path)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = t.as_str() {
                push(s);
            }
        }
    }
    for verdict in v
        .get("verdicts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let failed = verdict
            .get("verdict")
            .and_then(Value::as_str)
            .is_some_and(|s| matches!(s, "rejected" | "fail" | "failed"));
        let name = ["test_id", "test", "name"]
            .iter()
            .find_map(|k| verdict.get(*k).and_then(Value::as_str));
        if let (true, Some(name)) = (failed, name) {
            push(name);
        }
    }
    out
}

fn verification_line(v: &Value) -> Option<String> {
    let obj = v.get("verification")?.as_object()?;
    let parts: Vec<String> = obj
        .iter()
        .filter(|(_, x)| x.is_number() || x.is_boolean() || x.is_string())
        .map(|(k, x)| match x {
            Value::String(s) => format!("{}={}", safe_token(k), safe_token(s)),
            other => format!("{}={other}", safe_token(k)),
        })
        .collect();
    (!parts.is_empty()).then(|| one_line(&parts.join(", ")))
}

/// The newest TFactory run that reached a verdict (or stopped), when it failed; else, when
/// the item's test stage failed without a recorded event, what the stage says.
fn latest_failure(f: &Facts<'_>) -> Option<Failing> {
    let latest = f.entries_of(Service::TFACTORY).find(|(e, v)| {
        let class = StatusClass::classify(&e.status);
        class != StatusClass::Running && class != StatusClass::Queued
            || v.get("outcome").is_some_and(|o| !o.is_null())
    });
    if let Some((e, v)) = latest {
        if !event_failed(v, &e.status) {
            return None;
        }
        return Some(Failing {
            spec: e.task_id.clone(),
            status: e.status.clone(),
            outcome: text_at(v, &["outcome"]).map(one_line),
            halt_reason: text_at(v, &["halt_reason"]).map(one_line),
            verification: verification_line(v),
            tests: failing_tests(v),
            at: e.time,
        });
    }
    let test = f.item.stages.test().filter(|t| t.failed())?;
    Some(Failing {
        spec: test.task_id.clone(),
        status: test.status.clone(),
        outcome: test.outcome.as_deref().map(one_line),
        halt_reason: test.halt_reason.as_deref().map(one_line),
        verification: None,
        tests: Vec::new(),
        at: test.at,
    })
}

fn fix_request(failing: Option<&Failing>, note: Option<&str>) -> String {
    let Some(fail) = failing else {
        return note.unwrap_or_default().to_owned();
    };
    let mut md = String::from("## Failing verdicts from TFactory\n\n");
    md.push_str(&format!(
        "Spec `{}` reported `{}`{} at {}.\n",
        one_line(&fail.spec),
        one_line(&fail.status),
        fail.outcome
            .as_deref()
            .map(|o| format!(" (outcome `{o}`)"))
            .unwrap_or_default(),
        fail.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    if let Some(h) = &fail.halt_reason {
        md.push_str(&format!("\nHalt reason: {h}\n"));
    }
    if let Some(v) = &fail.verification {
        md.push_str(&format!("\nVerification: {v}\n"));
    }
    if fail.tests.is_empty() {
        md.push_str("\nNo failing test names were reported.\n");
    } else {
        md.push_str("\nFailing tests:\n\n");
        for t in &fail.tests {
            md.push_str(&format!("- `{t}`\n"));
        }
    }
    if let Some(n) = note {
        md.push_str("\n## Note\n\n");
        md.push_str(n);
        md.push('\n');
    }
    md
}

pub(super) fn kick_handback(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    let item = f.item;
    let task = match (item.stages.code(), item.links.aifactory_task_ids.last()) {
        (Some(code), _) => code.task_id.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(Refusal::new(format!(
                "{} has no AIFactory task to send a correction to.",
                f.label()
            )));
        }
    };
    let task = segment(Service::AIFACTORY, &task)?;
    if let Some(code) = item.stages.code()
        && matches!(
            code.status_class,
            StatusClass::Running | StatusClass::Queued
        )
    {
        return Err(Refusal::new(format!(
            "AIFactory task `{task}` on {} is `{}`: a correction can start only once the current \
             run stops (AIFactory itself does not check, so CFactory does).",
            f.label(),
            safe_token(&code.status)
        )));
    }
    if let Some(test) = item.stages.test()
        && matches!(
            test.status_class,
            StatusClass::Running | StatusClass::Queued
        )
    {
        return Err(Refusal::new(format!(
            "TFactory spec `{}` on {} is still verifying (`{}`); wait for its verdict before \
             sending a correction.",
            safe_token(&test.task_id),
            f.label(),
            safe_token(&test.status)
        )));
    }
    let failing = latest_failure(f);
    if failing.is_none() && note.is_none() {
        return Err(Refusal::new(format!(
            "No failing TFactory verdict is on record for {} and no note says what to fix; \
             add a note describing the correction.",
            f.label()
        )));
    }
    let fix_request_md = fix_request(failing.as_ref(), note);
    let mut payload = json!({
        "fix_request_md": fix_request_md,
        "source": "cfactory",
        "confirm": true,
        "correlation_key": f.key(),
    });
    if let Some(fail) = &failing {
        payload["tfactory_task_id"] = json!(fail.spec);
    }
    let why = match &failing {
        Some(fail) => format!(
            "TFactory spec `{}` failed ({} failing test{} listed){}",
            safe_token(&fail.spec),
            fail.tests.len(),
            if fail.tests.len() == 1 { "" } else { "s" },
            if note.is_some() {
                ", plus the note"
            } else {
                ""
            }
        ),
        None => "no failing verdict is on record, so the fix request is the note alone".to_owned(),
    };
    Ok(Draft {
        service: Service::AIFACTORY,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/apply-correction"),
            payload,
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "{why}. The handback sends AIFactory task `{task}` on {} a fix request with \
             confirm: true, which starts a correction run ({} handback{} so far); while it \
             runs the task may read human_review with review_reason qa_rejected.",
            f.label(),
            item.handbacks,
            if item.handbacks == 1 { "" } else { "s" }
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::ActionKind;
    use crate::actions::fixtures::{af, emitted, plan, refused, tf};
    use crate::event::Service;
    use serde_json::json;

    #[test]
    fn handback_builds_the_fix_request_from_failing_verdicts_and_the_note() {
        let failing = tf(
            "triaged",
            json!({
                "outcome": "failure",
                "halt_reason": "tests_failed: 2 failing, handback to AIFactory (cycle 1/2)",
                "verification": {"passed": false, "mutation_score": 0.42},
                "result": {"failing_tests": ["unit::refund_test_1", "api::refund_`test`_2"]},
                "verdicts": [{"test_id": "unit::refund_test_1", "verdict": "rejected"},
                             {"test_id": "unit::ok_test", "verdict": "accepted"},
                             {"test_id": "browser::checkout", "verdict": "rejected"}],
            }),
        );
        let events = [emitted(), af("done", json!({})), failing];
        let p = plan(
            ActionKind::KickHandback,
            &events,
            Some("Mind the currency rounding."),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::AIFACTORY);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/tasks/proj:001/apply-correction"
        );
        let body = &p.step.payload;
        assert_eq!(body["confirm"], json!(true));
        assert_eq!(body["source"], json!("cfactory"));
        assert_eq!(body["correlation_key"], json!("142"));
        assert_eq!(body["tfactory_task_id"], json!("spec-001"));
        let md = body["fix_request_md"].as_str().unwrap();
        assert!(md.starts_with("## Failing verdicts from TFactory"), "{md}");
        assert!(md.contains("- `unit::refund_test_1`\n"), "{md}");
        assert!(
            md.contains("- `api::refund_test_2`\n"),
            "backticks stripped: {md}"
        );
        assert!(md.contains("- `browser::checkout`\n"), "{md}");
        assert_eq!(md.matches("unit::refund_test_1").count(), 1, "{md}");
        assert!(!md.contains("ok_test"), "{md}");
        assert!(md.contains("Halt reason: tests_failed: 2 failing"), "{md}");
        assert!(md.contains("mutation_score=0.42"), "{md}");
        assert!(
            md.ends_with("## Note\n\nMind the currency rounding.\n"),
            "{md}"
        );
        assert!(p.rationale.contains("3 failing tests"), "{}", p.rationale);
    }

    #[test]
    fn handback_with_no_failing_verdict_sends_the_note_alone() {
        let events = [
            emitted(),
            af("done", json!({})),
            tf("triaged", json!({"outcome": "failure"})),
            tf("triaged", json!({"outcome": "success"})),
        ];
        let p = plan(ActionKind::KickHandback, &events, Some("Rename the flag.")).unwrap();
        assert_eq!(p.step.payload["fix_request_md"], json!("Rename the flag."));
        assert!(p.step.payload.get("tfactory_task_id").is_none());
        let why = refused(plan(ActionKind::KickHandback, &events, None));
        assert!(why.contains("add a note"), "{why}");
    }

    #[test]
    fn handback_is_refused_while_code_runs_or_tests_verify_or_without_a_task() {
        let why = refused(plan(
            ActionKind::KickHandback,
            &[emitted(), af("in_progress", json!({}))],
            Some("x"),
        ));
        assert!(why.contains("current run stops"), "{why}");
        let why = refused(plan(
            ActionKind::KickHandback,
            &[emitted(), af("done", json!({})), tf("executing", json!({}))],
            Some("x"),
        ));
        assert!(why.contains("still verifying"), "{why}");
        let why = refused(plan(ActionKind::KickHandback, &[emitted()], Some("x")));
        assert!(why.contains("no AIFactory task"), "{why}");
    }
}

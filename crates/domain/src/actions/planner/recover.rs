//! `recover` and `recover_and_restart`: reset an AIFactory task that is stuck or went
//! silent to backlog, and for the second kind start it again.
//!
//! Its room in the hexagon: one kind (two spellings) of the pure planner; no I/O.

use serde_json::{Value, json};

use super::facts::{Facts, in_human_review};
use super::request::{segment, step};
use super::text::{age, safe_token};
use super::{Draft, Refusal};
use crate::actions::HttpMethod;
use crate::event::Service;
use crate::taxonomy::StatusClass;
use crate::workitem::DEFAULT_STALL_DEADLINE_SECONDS;

pub(super) fn recover(f: &Facts<'_>, restart: bool) -> Result<Draft, Refusal> {
    let Some(code) = f.item.stages.code() else {
        return Err(Refusal::new(format!(
            "{} has no AIFactory task to recover.",
            f.label()
        )));
    };
    let task = segment(Service::AIFACTORY, &code.task_id)?;
    // The caller's stall deadline decides when it filled `liveness` (which judges only
    // running and stuck stages); otherwise the default deadline does.
    let stalled =
        if f.item.liveness.last_activity_age_seconds.is_some() && code.status_class.can_stall() {
            f.item.liveness.stalled
        } else {
            (f.now - code.at).num_seconds() > DEFAULT_STALL_DEADLINE_SECONDS
        };
    // AI review is AIFactory's own QA step: it runs, and can hang, like coding does.
    let in_flight = code.status_class == StatusClass::Running
        || (code.status_class == StatusClass::Review && !in_human_review(&code.status));
    let why = match code.status_class {
        StatusClass::Stuck => format!(
            "AIFactory reports task `{task}` as `{}`",
            safe_token(&code.status)
        ),
        _ if in_flight && stalled => format!(
            "AIFactory task `{task}` is `{}` but has been silent for {}",
            safe_token(&code.status),
            age(f.now, code.at)
        ),
        _ if in_flight => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} is `{}` and reported {} ago; recover is for a task \
                 that stopped reporting.",
                f.label(),
                safe_token(&code.status),
                age(f.now, code.at)
            )));
        }
        StatusClass::Failed => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} failed (`{}`); recover resumes a stuck run, a \
                 failed one needs a correction (kick_handback).",
                f.label(),
                safe_token(&code.status)
            )));
        }
        class => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} is `{}` ({}), not stuck; there is nothing to recover.",
                f.label(),
                safe_token(&code.status),
                class.as_str()
            )));
        }
    };
    let (payload, what) = if restart {
        (
            json!({"autoRestart": true}),
            "Recover with autoRestart stops any running process, resets the task to backlog \
             and starts it again.",
        )
    } else {
        (
            Value::Null,
            "Recover stops any running process and resets the task to backlog without \
             restarting it; propose recover_and_restart to start it again.",
        )
    };
    Ok(Draft {
        service: Service::AIFACTORY,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/recover"),
            payload,
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "{why}. {what} AIFactory refuses nothing here, so CFactory offers it only for a \
             stuck or silent task."
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::fixtures::{af, build, context, emitted, plan, refused, t0};
    use crate::actions::{ActionKind, HttpMethod, plan_action};
    use crate::ports::TimelineEntry;
    use crate::workitem::WorkItem;
    use chrono::Duration;
    use serde_json::{Value, json};

    #[test]
    fn recover_needs_a_stuck_or_silent_task() {
        // Reported at minute 1; planned at minute 30: silent past the stall deadline.
        let p = plan(
            ActionKind::Recover,
            &[emitted(), af("in_progress", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/proj:001/recover");
        assert!(p.rationale.contains("silent for 29m"), "{}", p.rationale);
        let p = plan(ActionKind::Recover, &[af("stuck", json!({}))], None).unwrap();
        assert_eq!(p.step.method, HttpMethod::Post);

        let (item, timeline) = build(&[emitted(), af("in_progress", json!({}))]);
        let soon = t0() + Duration::minutes(3);
        let why = plan_action(
            ActionKind::Recover,
            &item,
            &timeline,
            None,
            soon,
            Duration::minutes(15),
            &context(),
        )
        .unwrap_err()
        .reason;
        assert!(why.contains("reported 2m ago"), "{why}");
        let why = refused(plan(ActionKind::Recover, &[af("done", json!({}))], None));
        assert!(why.contains("not stuck"), "{why}");
        let why = refused(plan(
            ActionKind::Recover,
            &[af("qa_failed", json!({}))],
            None,
        ));
        assert!(why.contains("kick_handback"), "{why}");
        let why = refused(plan(ActionKind::Recover, &[emitted()], None));
        assert!(why.contains("no AIFactory task"), "{why}");
    }

    #[test]
    fn recover_follows_the_callers_liveness_and_covers_a_hung_ai_review() {
        let now = t0() + Duration::minutes(30);
        let recover_at = |item: &WorkItem, timeline: &[TimelineEntry]| {
            plan_action(
                ActionKind::Recover,
                item,
                timeline,
                None,
                now,
                Duration::minutes(15),
                &context(),
            )
        };
        let (mut item, timeline) = build(&[emitted(), af("in_progress", json!({}))]);
        // A caller whose deadline is an hour says the task is not stalled yet.
        item.refresh_liveness(now, Duration::hours(1));
        let why = recover_at(&item, &timeline).unwrap_err().reason;
        assert!(why.contains("stopped reporting"), "{why}");
        item.refresh_liveness(now, Duration::minutes(5));
        assert!(recover_at(&item, &timeline).is_ok());
        // AI review runs like coding does, and can hang past the default deadline.
        let (mut item, timeline) = build(&[emitted(), af("ai_review", json!({}))]);
        item.refresh_liveness(now, Duration::hours(1));
        assert!(recover_at(&item, &timeline).is_ok());
        // Human review is a person's gate, never "stuck".
        let (item, timeline) = build(&[
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
        ]);
        assert!(recover_at(&item, &timeline).is_err());
    }

    #[test]
    fn recover_resets_without_restart_unless_asked() {
        let stuck = [emitted(), af("stuck", json!({}))];
        let p = plan(ActionKind::Recover, &stuck, None).unwrap();
        assert_eq!(p.step.payload, Value::Null);
        assert!(
            p.rationale.contains("without restarting"),
            "{}",
            p.rationale
        );
        let r = plan(ActionKind::RecoverAndRestart, &stuck, None).unwrap();
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/proj:001/recover");
        assert_eq!(r.step.payload, json!({"autoRestart": true}));
    }
}

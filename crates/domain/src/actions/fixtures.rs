//! Test fixtures for the planner: a WorkItem and its timeline built from completion events
//! a minute apart, events of each service, and a plan of any kind over them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::{
    ActionKind, ActionPlan, DEFAULT_ACTION_TTL_SECONDS, PlanContext, Refusal, plan_action,
};
use crate::event::CompletionEvent;
use crate::ids::{CorrelationKey, EventId};
use crate::ports::TimelineEntry;
use crate::workitem::WorkItem;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// An item built from `events` (JSON objects missing `id`, `time`, `phase`,
/// `correlation_key` get defaults), with the matching timeline.
pub(crate) fn build(events: &[Value]) -> (WorkItem, Vec<TimelineEntry>) {
    let mut item = WorkItem::new(CorrelationKey::issue(142), t0());
    let mut timeline = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let mut e = e.clone();
        let minute = i64::try_from(i).unwrap();
        let obj = e.as_object_mut().unwrap();
        obj.entry("id").or_insert(json!(format!("evt-{i}")));
        obj.entry("time")
            .or_insert(json!((t0() + Duration::minutes(minute)).to_rfc3339()));
        obj.entry("phase").or_insert(json!("act"));
        obj.entry("correlation_key").or_insert(json!("142"));
        let raw = e.to_string();
        let event = CompletionEvent::parse(&raw).unwrap();
        item.apply_event(&event, event.time);
        timeline.push(TimelineEntry {
            seq: minute + 1,
            event_id: Some(EventId::parse(&format!("evt-{i}")).unwrap()),
            service: event.service,
            task_id: event.task_id.clone(),
            status: event.status.clone(),
            time: event.time,
            received_at: event.time,
            raw,
        });
    }
    (item, timeline)
}

pub(crate) fn plan(
    kind: ActionKind,
    events: &[Value],
    note: Option<&str>,
) -> Result<ActionPlan, Refusal> {
    let (item, timeline) = build(events);
    let now = t0() + Duration::minutes(30);
    plan_action(
        kind,
        &item,
        &timeline,
        note,
        now,
        Duration::seconds(DEFAULT_ACTION_TTL_SECONDS),
        &context(),
    )
}

/// The settings the tests plan with: `acme/shop` maps to AIFactory's project `shop`.
pub(crate) fn context() -> PlanContext {
    PlanContext {
        aifactory_projects: [("acme/shop".to_owned(), "shop".to_owned())].into(),
    }
}

pub(crate) fn pf(status: &str, extra: Value) -> Value {
    let mut v = json!({
        "service": "pfactory", "task_id": "001-refund-flow", "status": status,
        "phase": "plan", "repo": "acme/shop", "title": "Refund flow",
        "correlation": {"session_id": "001-refund-flow", "issue_number": 142}
    });
    merge(&mut v, extra);
    v
}

pub(crate) fn af(status: &str, extra: Value) -> Value {
    let mut v = json!({
        "service": "aifactory", "task_id": "proj:001", "status": status,
        "correlation": {"aifactory_task_id": "proj:001"}
    });
    merge(&mut v, extra);
    v
}

pub(crate) fn tf(status: &str, extra: Value) -> Value {
    let mut v = json!({
        "service": "tfactory", "task_id": "spec-001", "status": status, "phase": "test"
    });
    merge(&mut v, extra);
    v
}

pub(crate) fn merge(v: &mut Value, extra: Value) {
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
}

pub(crate) fn emitted() -> Value {
    pf(
        "emitted",
        json!({"evidence": {"proof_kind": "issues", "epic_issue": 142, "child_count": 2}}),
    )
}

pub(crate) fn refused(r: Result<ActionPlan, Refusal>) -> String {
    match r {
        Ok(p) => panic!("expected a refusal, got {p:?}"),
        Err(e) => e.reason,
    }
}

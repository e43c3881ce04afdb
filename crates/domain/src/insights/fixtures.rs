//! Test fixtures: WorkItems built from completion events at fixed times.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::event::CompletionEvent;
use crate::ids::CorrelationKey;
use crate::workitem::WorkItem;

/// 2026-06-01T00:00:00Z plus `minutes`.
pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

/// An event for `key` from `service` about `task`, at minute `minute`, with `extra`
/// fields merged in.
pub(crate) fn event(
    key: &str,
    service: &str,
    task: &str,
    status: &str,
    minute: i64,
    extra: Value,
) -> CompletionEvent {
    let mut v = json!({
        "id": format!("{key}-{service}-{task}-{status}-{minute}"),
        "time": at(minute).to_rfc3339(),
        "correlation_key": key, "service": service, "task_id": task,
        "status": status, "phase": "act",
    });
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    CompletionEvent::parse(&v.to_string()).unwrap()
}

/// An item built from `events`, each received at its own time.
pub(crate) fn item(key: &str, events: &[CompletionEvent]) -> WorkItem {
    let first = events.iter().map(|e| e.time).min().unwrap_or_else(|| at(0));
    let mut w = WorkItem::new(CorrelationKey::parse(key).unwrap(), first);
    for e in events {
        w.apply_event(e, e.time);
    }
    w
}

/// Evidence that proves a done stage of `service`.
pub(crate) fn proof(service: &str) -> Value {
    match service {
        "pfactory" => json!({"evidence": {"epic_issue": 1, "child_count": 2}}),
        "aifactory" => {
            json!({"evidence": {"total_tokens": 10, "phases_completed": ["coding"]}})
        }
        _ => json!({"evidence": {"verdict": "pass", "tests_executed": 3}}),
    }
}

//! What the checks share: a fixed clock face, the default tenant, event JSON, one-event
//! ingest, an open list query and upstream snapshot rows.

use cfactory_domain::event::Correlation;
use cfactory_domain::ports::ListQuery;
use cfactory_domain::upstream::{TaskList, TaskSnapshot};
use cfactory_domain::{CompletionEvent, IngestOutcome, Service, TenantId};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::Subject;

pub(crate) fn t(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + Duration::minutes(minute)
}

pub(crate) fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// An event JSON with the required fields; extend it with `extra`.
pub fn event_json(
    id: Option<&str>,
    key: &str,
    service: &str,
    task: &str,
    status: &str,
    minute: i64,
    extra: Value,
) -> Value {
    let mut v = json!({
        "specversion": "1.0",
        "source": format!("/{service}"),
        "type": format!("io.factory.{service}.completion"),
        "time": t(minute).to_rfc3339(),
        "correlation_key": key,
        "service": service,
        "task_id": task,
        "status": status,
        "phase": "act",
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in more {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

pub(crate) fn parse(v: &Value) -> CompletionEvent {
    CompletionEvent::parse(&v.to_string()).expect("test event parses")
}

pub(crate) async fn ingest_one(s: &Subject, v: Value) -> IngestOutcome {
    ingest_as(s, &tenant(), v).await
}

pub(crate) async fn ingest_as(s: &Subject, tenant: &TenantId, v: Value) -> IngestOutcome {
    let mut out = s
        .work
        .ingest(tenant, vec![parse(&v)])
        .await
        .expect("ingest succeeds");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

pub(crate) fn accepted(key: &str) -> IngestOutcome {
    IngestOutcome::Accepted {
        correlation_key: cfactory_domain::CorrelationKey::parse(key).unwrap(),
    }
}

pub(crate) fn query() -> ListQuery {
    ListQuery {
        stage: None,
        status: None,
        service: None,
        text: None,
        limit: 50,
        cursor: None,
        stalled_before: t(0),
    }
}

pub(crate) fn snap(service: Service, task: &str, issue: Option<u64>, status: &str) -> TaskSnapshot {
    TaskSnapshot {
        service,
        task_id: task.to_owned(),
        issue_number: issue,
        status: status.to_owned(),
        phase: None,
        title: Some(format!("Task {task}")),
        project: Some("acme/shop".into()),
        updated_at: None,
        correlation: Correlation::default(),
        review_reason: None,
    }
}

pub(crate) fn list(tasks: Vec<TaskSnapshot>, complete: bool) -> TaskList {
    TaskList {
        tasks,
        complete,
        failures: Vec::new(),
    }
}

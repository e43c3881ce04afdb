//! Hydration: upstream task snapshots land where events will, write only what changed,
//! never regress a terminal stage, and clear vanished tasks only from a complete list.

use cfactory_domain::{CorrelationKey, Service};
use serde_json::json;

use crate::Subject;
use crate::helpers::{accepted, event_json, ingest_one, list, query, snap, t, tenant};

/// Hydration files a row under the key the service's own events use, so a later event
/// lands on the same item; a snapshot adds no timeline entry.
pub async fn snapshots_land_where_events_will(s: &Subject) {
    let rows = list(
        vec![
            snap(Service::AIFACTORY, "p:1", None, "in_progress"),
            snap(Service::AIFACTORY, "p:2", Some(150), "backlog"),
        ],
        true,
    );
    let mut changed = s
        .work
        .apply_snapshots(&tenant(), Service::AIFACTORY, &rows, t(0))
        .await
        .unwrap();
    changed.sort();
    let keys: Vec<&str> = changed.iter().map(CorrelationKey::as_str).collect();
    assert_eq!(keys, ["acme/shop#150", "af-p:1"]);
    let item = s.work.get(&tenant(), "af-p:1").await.unwrap().unwrap();
    assert_eq!(item.title.as_deref(), Some("Task p:1"));
    assert_eq!(item.stages.code().unwrap().at, t(0));
    let timeline = s
        .work
        .timeline(&tenant(), "af-p:1", 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.event_count, 0);
    let e = event_json(
        Some("a1"),
        "af-p:1",
        "aifactory",
        "p:1",
        "ai_review",
        1,
        json!({}),
    );
    assert_eq!(ingest_one(s, e).await, accepted("af-p:1"));
    assert_eq!(s.work.list(&tenant(), &query()).await.unwrap().count, 2);
}

/// The same rows polled again (later poll time, no upstream time) write nothing, so a
/// stage's silence keeps counting from when it last changed.
pub async fn an_unchanged_snapshot_rewrites_nothing(s: &Subject) {
    let rows = list(
        vec![snap(Service::TFACTORY, "spec1", Some(8), "executing")],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::TFACTORY, &rows, t(0))
        .await
        .unwrap();
    let again = s
        .work
        .apply_snapshots(&tenant(), Service::TFACTORY, &rows, t(20))
        .await
        .unwrap();
    assert!(again.is_empty());
    let item = s.work.get(&tenant(), "8").await.unwrap().unwrap();
    assert_eq!(item.stages.test().unwrap().at, t(0));
    let moved = list(
        vec![snap(Service::TFACTORY, "spec1", Some(8), "evaluating")],
        true,
    );
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::TFACTORY, &moved, t(21))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    let item = s.work.get(&tenant(), "8").await.unwrap().unwrap();
    assert_eq!(item.stages.test().unwrap().status, "evaluating");
    assert_eq!(item.stages.test().unwrap().at, t(21));
}

/// A snapshot never takes a terminal stage back to a running one.
pub async fn snapshots_never_regress_a_terminal_stage(s: &Subject) {
    let done = event_json(
        Some("d"),
        "31",
        "aifactory",
        "p:3",
        "done",
        5,
        json!({"evidence": {"total_tokens": 5, "phases_completed": ["coding"]}}),
    );
    ingest_one(s, done).await;
    let mut row = snap(Service::AIFACTORY, "p:3", Some(31), "in_progress");
    row.title = None;
    row.project = None;
    let rows = list(vec![row], true);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::AIFACTORY, &rows, t(9))
        .await
        .unwrap();
    assert!(changed.is_empty());
    let code = s
        .work
        .get(&tenant(), "31")
        .await
        .unwrap()
        .unwrap()
        .stages
        .code()
        .cloned()
        .unwrap();
    assert_eq!(code.status, "done");
    assert_eq!(code.proof, cfactory_domain::proof::Proof::Proven);
}

/// A non-terminal stage is cleared only when a complete list no longer has its task;
/// terminal stages stay as history.
pub async fn only_a_complete_list_clears_vanished_tasks(s: &Subject) {
    let rows = list(
        vec![
            snap(Service::AIFACTORY, "gone", Some(1), "in_progress"),
            snap(Service::AIFACTORY, "finished", Some(2), "done"),
        ],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::AIFACTORY, &rows, t(0))
        .await
        .unwrap();
    let partial = list(Vec::new(), false);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::AIFACTORY, &partial, t(1))
        .await
        .unwrap();
    assert!(changed.is_empty());
    assert!(
        s.work
            .get(&tenant(), "1")
            .await
            .unwrap()
            .unwrap()
            .stages
            .code()
            .is_some()
    );
    let empty = list(Vec::new(), true);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::AIFACTORY, &empty, t(2))
        .await
        .unwrap();
    let keys: Vec<&str> = changed.iter().map(CorrelationKey::as_str).collect();
    assert_eq!(keys, ["acme/shop#1"]);
    assert!(
        s.work
            .get(&tenant(), "1")
            .await
            .unwrap()
            .unwrap()
            .stages
            .code()
            .is_none()
    );
    assert!(
        s.work
            .get(&tenant(), "2")
            .await
            .unwrap()
            .unwrap()
            .stages
            .code()
            .is_some()
    );
}

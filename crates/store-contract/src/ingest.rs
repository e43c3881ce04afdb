//! The correlation rules one ingest applies: duplicates, events without an id, merges of
//! synthetic keys into issues, conflicts between issues, latest-time-wins, CFactory's own
//! events and the evidence behind proof.

use cfactory_domain::proof::Proof;
use cfactory_domain::{IngestOutcome, StatusClass};
use serde_json::json;

use crate::Subject;
use crate::helpers::{accepted, event_json, ingest_one, query, t, tenant};

/// The same id twice: accepted once, then a duplicate that changes nothing.
pub async fn accepted_then_duplicate(s: &Subject) {
    let v = event_json(
        Some("e1"),
        "142",
        "aifactory",
        "p:1",
        "in_progress",
        0,
        json!({}),
    );
    assert_eq!(ingest_one(s, v.clone()).await, accepted("142"));
    let dup = ingest_one(s, v).await;
    assert_eq!(
        dup,
        IngestOutcome::Duplicate {
            correlation_key: "142".to_owned().try_into().unwrap()
        }
    );
    let item = s.work.get(&tenant(), "142").await.unwrap().unwrap();
    assert_eq!(item.event_count, 1);
}

/// An event without an id is named by its content: the same body again is a duplicate, a
/// different one is recorded; both are flagged.
pub async fn event_without_id_is_named_by_its_content_and_flagged(s: &Subject) {
    let v = event_json(None, "7", "pfactory", "s1", "draft", 0, json!({}));
    assert_eq!(ingest_one(s, v.clone()).await, accepted("7"));
    // The same body again is the same event: its id is derived from its content.
    assert!(matches!(
        ingest_one(s, v).await,
        IngestOutcome::Duplicate { .. }
    ));
    let later = event_json(None, "7", "pfactory", "s1", "ready", 1, json!({}));
    assert_eq!(ingest_one(s, later).await, accepted("7"));
    let item = s.work.get(&tenant(), "7").await.unwrap().unwrap();
    assert_eq!(item.event_count, 2);
    assert_eq!(item.flags.missing_event_id, 2);
    let timeline = s
        .work
        .timeline(&tenant(), "7", 10, None)
        .await
        .unwrap()
        .unwrap();
    assert!(
        timeline.events.iter().all(|e| e
            .event_id
            .as_ref()
            .is_some_and(|id| id.as_str().starts_with("sha256:"))),
        "each event is stored under its content id"
    );
}

/// A synthetic item merges into the issue once an event links them; the old key becomes
/// an alias that answers with the merged item, and its timeline moves along.
pub async fn synthetic_key_merges_into_issue_and_alias_resolves(s: &Subject) {
    let usage = json!({"usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5}});
    ingest_one(
        s,
        event_json(
            Some("a1"),
            "af-p:1",
            "aifactory",
            "p:1",
            "in_progress",
            0,
            usage,
        ),
    )
    .await;
    let plan = event_json(
        Some("p1"),
        "150",
        "pfactory",
        "s1",
        "emitted",
        1,
        json!({"correlation": {"aifactory_task_id": "p:1", "session_id": "s1"}}),
    );
    assert_eq!(ingest_one(s, plan).await, accepted("150"));
    let item = s.work.get(&tenant(), "af-p:1").await.unwrap().unwrap();
    assert_eq!(item.correlation_key.as_str(), "150");
    assert!(item.aliases.iter().any(|a| a.as_str() == "af-p:1"));
    assert!(item.stages.code().is_some() && item.stages.plan().is_some());
    assert_eq!(item.usage_total.total_tokens, 15);
    assert_eq!(item.links.aifactory_task_ids, vec!["p:1".to_owned()]);
    assert_eq!(item.links.session_id.as_deref(), Some("s1"));
    assert_eq!(item.event_count, 2);
    let timeline = s
        .work
        .timeline(&tenant(), "150", 100, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.event_count, 2);
    let page = s.work.list(&tenant(), &query()).await.unwrap();
    assert_eq!(page.count, 1, "the synthetic item is gone from the list");
    // A later event under the old key lands on the issue.
    let later = event_json(
        Some("a2"),
        "af-p:1",
        "aifactory",
        "p:1",
        "done",
        2,
        json!({}),
    );
    assert_eq!(ingest_one(s, later).await, accepted("150"));
    // Search follows the merge: the issue now matches its new alias, and the merged-away
    // item matches nothing on its own.
    let mut q = query();
    q.text = Some("AF-P:1".into());
    let found = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(found.count, 1);
    assert_eq!(found.items[0].correlation_key.as_str(), "150");
}

/// Rule 3's example: a TFactory event keyed `tf-<spec>` whose correlation names an
/// AIFactory task already on #150 lands on #150.
pub async fn test_spec_linked_to_a_coding_task_lands_on_its_issue(s: &Subject) {
    ingest_one(
        s,
        event_json(Some("a1"), "150", "aifactory", "p:9", "done", 0, json!({})),
    )
    .await;
    let test = event_json(
        Some("t1"),
        "tf-spec9",
        "tfactory",
        "spec9",
        "executing",
        1,
        json!({"correlation": {"aifactory_task_id": "p:9"}}),
    );
    assert_eq!(ingest_one(s, test).await, accepted("150"));
    let item = s.work.get(&tenant(), "tf-spec9").await.unwrap().unwrap();
    assert_eq!(item.correlation_key.as_str(), "150");
    assert_eq!(item.links.tfactory_spec_ids, vec!["spec9".to_owned()]);
    assert!(
        s.work
            .get(&tenant(), "150")
            .await
            .unwrap()
            .unwrap()
            .stages
            .test()
            .is_some()
    );
}

/// Two issue numbers are never merged: the event stays on its key and the conflict is
/// recorded.
pub async fn two_issue_numbers_never_merge(s: &Subject) {
    ingest_one(
        s,
        event_json(Some("a1"), "150", "aifactory", "p:1", "done", 0, json!({})),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("a2"), "151", "aifactory", "p:2", "done", 0, json!({})),
    )
    .await;
    let conflicted = event_json(
        Some("t1"),
        "151",
        "tfactory",
        "spec1",
        "executing",
        1,
        json!({"correlation": {"aifactory_task_id": "p:1"}}),
    );
    assert_eq!(ingest_one(s, conflicted).await, accepted("151"));
    let a = s.work.get(&tenant(), "150").await.unwrap().unwrap();
    let b = s.work.get(&tenant(), "151").await.unwrap().unwrap();
    assert_eq!(a.correlation_key.as_str(), "150");
    assert_eq!(b.correlation_key.as_str(), "151");
    assert!(a.stages.test().is_none());
    assert_eq!(b.flags.correlation_conflict_count, 1);
    assert_eq!(
        b.flags.correlation_conflicts[0].issue_numbers,
        vec![150, 151]
    );
    assert_eq!(s.work.list(&tenant(), &query()).await.unwrap().count, 2);
}

/// Rule 5: the stage shows the latest `time`; an older event arriving late never
/// regresses it (but is on the timeline).
pub async fn latest_time_wins_and_late_events_never_regress(s: &Subject) {
    ingest_one(
        s,
        event_json(Some("a2"), "9", "aifactory", "p:1", "done", 10, json!({})),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("a1"),
            "9",
            "aifactory",
            "p:1",
            "in_progress",
            5,
            json!({}),
        ),
    )
    .await;
    let item = s.work.get(&tenant(), "9").await.unwrap().unwrap();
    let code = item.stages.code().unwrap();
    assert_eq!(code.status, "done");
    assert_eq!(code.status_class, StatusClass::Done);
    assert_eq!(code.started_at, t(5));
    assert_eq!(item.event_count, 2);
    assert_eq!(item.updated_at, t(10));
}

/// Rule 5's tie-break: equal times go to the later arrival.
pub async fn equal_times_go_to_the_later_arrival(s: &Subject) {
    ingest_one(
        s,
        event_json(
            Some("a1"),
            "9",
            "aifactory",
            "p:1",
            "ai_review",
            3,
            json!({}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("a2"),
            "9",
            "aifactory",
            "p:1",
            "human_review",
            3,
            json!({}),
        ),
    )
    .await;
    let item = s.work.get(&tenant(), "9").await.unwrap().unwrap();
    assert_eq!(item.stages.code().unwrap().status, "human_review");
}

/// CFactory's own events go on the timeline and change no stage.
pub async fn cfactory_events_touch_no_stage(s: &Subject) {
    ingest_one(
        s,
        event_json(Some("c1"), "12", "cfactory", "act-1", "done", 0, json!({})),
    )
    .await;
    let item = s.work.get(&tenant(), "12").await.unwrap().unwrap();
    assert!(item.stages.iter().next().is_none());
    assert_eq!(item.event_count, 1);
}

/// A done-class stage without its evidence is unproven; with it, proven.
pub async fn evidence_gates_set_proof(s: &Subject) {
    ingest_one(
        s,
        event_json(
            Some("1"),
            "1",
            "aifactory",
            "a",
            "done",
            0,
            json!({"evidence": {"total_tokens": 0, "phases_completed": []}}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("2"),
            "2",
            "aifactory",
            "b",
            "done",
            0,
            json!({"evidence": {"total_tokens": 12, "phases_completed": ["coding"]}}),
        ),
    )
    .await;
    let unproven = s.work.get(&tenant(), "1").await.unwrap().unwrap();
    let proven = s.work.get(&tenant(), "2").await.unwrap().unwrap();
    assert_eq!(unproven.stages.code().unwrap().proof, Proof::Unproven);
    assert_eq!(proven.stages.code().unwrap().proof, Proof::Proven);
}

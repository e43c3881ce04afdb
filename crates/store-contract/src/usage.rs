//! Usage: counted once per run as events arrive, and summed by service, project, work
//! item and model.

use cfactory_domain::ports::UsageGroupBy;
use serde_json::{Value, json};

use crate::Subject;
use crate::helpers::{event_json, ingest_one, tenant};

fn usage(total: u64, cost: f64) -> Value {
    json!({"usage": {"input_tokens": total - 1, "output_tokens": 1, "total_tokens": total, "cost_usd": cost, "model": "m1"}})
}

/// Rule 6: AIFactory's usage counts each run once, at its last figure by time (a
/// terminal event ends a run); a correction run's usage adds to the earlier run's, and
/// a re-delivery or a snapshot dated before its run's terminal changes nothing.
pub async fn usage_counts_once_per_task_and_new_runs_add(s: &Subject) {
    ingest_one(
        s,
        event_json(
            Some("u1"),
            "5",
            "aifactory",
            "p:1",
            "in_progress",
            0,
            usage(100, 1.0),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("u2"),
            "5",
            "aifactory",
            "p:1",
            "done",
            1,
            usage(300, 3.0),
        ),
    )
    .await;
    // A re-delivery and an older snapshot change nothing.
    ingest_one(
        s,
        event_json(
            Some("u2"),
            "5",
            "aifactory",
            "p:1",
            "done",
            1,
            usage(300, 3.0),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("u0"),
            "5",
            "aifactory",
            "p:1",
            "in_progress",
            -1,
            usage(50, 0.5),
        ),
    )
    .await;
    let item = s.work.get(&tenant(), "5").await.unwrap().unwrap();
    assert_eq!(item.usage_total.total_tokens, 300);
    // A correction run, after run 1's terminal, starts from zero again.
    ingest_one(
        s,
        event_json(
            Some("u3"),
            "5",
            "aifactory",
            "p:1",
            "in_progress",
            2,
            usage(40, 0.4),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("t1"),
            "5",
            "tfactory",
            "sp",
            "executing",
            2,
            usage(7, 0.0),
        ),
    )
    .await;
    let item = s.work.get(&tenant(), "5").await.unwrap().unwrap();
    assert_eq!(item.usage_total.total_tokens, 347);
    assert!((item.usage_total.cost_usd - 3.4).abs() < 1e-9);
    assert_eq!(item.stages.code().unwrap().usage.total_tokens, 340);
    assert_eq!(item.stages.test().unwrap().usage.total_tokens, 7);
}

/// Usage sums per service, project, work item and model.
pub async fn usage_groups(s: &Subject) {
    let with = |total: u64, model: &str, repo: &str| json!({"usage": {"total_tokens": total, "cost_usd": total as f64 / 100.0, "model": model}, "repo": repo});
    ingest_one(
        s,
        event_json(
            Some("1"),
            "1",
            "aifactory",
            "a",
            "done",
            0,
            with(100, "m1", "r1"),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("2"),
            "1",
            "tfactory",
            "b",
            "done",
            1,
            with(50, "m2", "r1"),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("3"),
            "2",
            "aifactory",
            "c",
            "done",
            0,
            with(30, "m1", "r2"),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("4"), "3", "pfactory", "d", "draft", 0, json!({})),
    )
    .await;
    let by_service = s
        .work
        .usage(&tenant(), UsageGroupBy::Service)
        .await
        .unwrap();
    assert_eq!(by_service.len(), 2);
    assert_eq!(by_service[0].key.as_deref(), Some("aifactory"));
    assert_eq!(by_service[0].total_tokens, 130);
    assert!((by_service[0].cost_usd - 1.3).abs() < 1e-9);
    let by_item = s
        .work
        .usage(&tenant(), UsageGroupBy::Workitem)
        .await
        .unwrap();
    assert_eq!(by_item[0].key.as_deref(), Some("1"));
    assert_eq!(by_item[0].total_tokens, 150);
    let by_model = s.work.usage(&tenant(), UsageGroupBy::Model).await.unwrap();
    assert_eq!(by_model[0].key.as_deref(), Some("m1"));
    assert_eq!(by_model[0].total_tokens, 130);
    let by_project = s
        .work
        .usage(&tenant(), UsageGroupBy::Project)
        .await
        .unwrap();
    assert_eq!(by_project[0].key.as_deref(), Some("r1"));
    assert_eq!(by_project[0].total_tokens, 150);
}

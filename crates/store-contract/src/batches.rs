//! Ingest in bulk and at once: one batch's outcomes in order, a batch over many items, and
//! many concurrent writers on one key.

use cfactory_domain::{CompletionEvent, IngestOutcome};
use serde_json::json;

use crate::Subject;
use crate::helpers::{accepted, event_json, parse, query, t, tenant};

/// A batch answers one outcome per event, in order, including duplicates inside it.
pub async fn a_batch_answers_in_order_with_in_batch_duplicates(s: &Subject) {
    let a = parse(&event_json(
        Some("b1"),
        "af-x",
        "aifactory",
        "x",
        "in_progress",
        0,
        json!({}),
    ));
    let b = parse(&event_json(
        Some("b2"),
        "77",
        "aifactory",
        "x",
        "done",
        1,
        json!({}),
    ));
    let out = s
        .work
        .ingest(&tenant(), vec![a.clone(), b, a])
        .await
        .unwrap();
    assert_eq!(out[0], accepted("af-x"));
    assert_eq!(out[1], accepted("77"));
    assert_eq!(
        out[2],
        IngestOutcome::Duplicate {
            correlation_key: "77".to_owned().try_into().unwrap()
        },
        "the duplicate answers with the canonical key the original now lives under"
    );
    assert_eq!(
        s.work
            .get(&tenant(), "af-x")
            .await
            .unwrap()
            .unwrap()
            .event_count,
        2
    );
}

/// One batch over more items than a store writes in one statement lands every item,
/// each with its own state.
pub async fn a_batch_over_many_items_writes_every_one(s: &Subject) {
    let events: Vec<CompletionEvent> = (0..75)
        .map(|i| {
            let status = if i % 2 == 0 { "in_progress" } else { "done" };
            parse(&event_json(
                Some(&format!("many-{i}")),
                &format!("{}", 500 + i),
                "aifactory",
                &format!("task-{i}"),
                status,
                i,
                json!({}),
            ))
        })
        .collect();
    let out = s.work.ingest(&tenant(), events).await.unwrap();
    for (i, outcome) in out.iter().enumerate() {
        assert_eq!(*outcome, accepted(&format!("{}", 500 + i)));
    }
    for i in [0_i64, 31, 32, 33, 63, 64, 74] {
        let item = s
            .work
            .get(&tenant(), &format!("{}", 500 + i))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("item {} is stored", 500 + i));
        let code = item.stages.code().expect("a code stage");
        assert_eq!(code.task_id, format!("task-{i}"));
        let status = if i % 2 == 0 { "in_progress" } else { "done" };
        assert_eq!(code.status, status, "item {} keeps its own status", 500 + i);
        assert_eq!(code.at, t(i));
    }
    let page = s.work.list(&tenant(), &query()).await.unwrap();
    assert_eq!(page.count, 75);
}

/// 32 concurrent writers on one key lose nothing and make one item.
pub async fn concurrent_writers_on_one_key_lose_nothing(s: &Subject) {
    let writers = 32;
    let per_writer = 10;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = s.work.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let v = event_json(
                    Some(&format!("w{w}-{i}")),
                    "900",
                    "aifactory",
                    &format!("task-{w}"),
                    "in_progress",
                    i,
                    json!({}),
                );
                store.ingest(&tenant(), vec![parse(&v)]).await.unwrap();
            }
        }));
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let item = s.work.get(&tenant(), "900").await.unwrap().unwrap();
    assert_eq!(item.event_count, (writers * per_writer) as u64);
    assert_eq!(item.links.aifactory_task_ids.len(), writers as usize);
    let page = s.work.list(&tenant(), &query()).await.unwrap();
    assert_eq!(page.count, 1);
    let timeline = s
        .work
        .timeline(&tenant(), "900", 1000, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.event_count, (writers * per_writer) as u64);
}

//! Correlation does not depend on arrival order: any permutation of a set of events
//! (links that merge synthetic items into issues, usage from several runs, proof,
//! duplicates) gives the same WorkItems. Checked with generated event sets and random
//! permutations; a failure shrinks to the smallest set and order that disagree.

use std::sync::Arc;

use cfactory_domain::memory::InMemoryStore;
use cfactory_domain::ports::WorkItemStore;
use cfactory_domain::{CompletionEvent, FakeClock, TenantId};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

/// One generated event, before it is written out.
#[derive(Debug, Clone)]
struct Spec {
    service: usize,
    task: usize,
    status: usize,
    minute: i64,
    tokens: u64,
    keyed_by_issue: bool,
    issue: u64,
    link: bool,
}

const SERVICES: [&str; 3] = ["pfactory", "aifactory", "tfactory"];
const STATUSES: [[&str; 4]; 3] = [
    ["reviewing", "awaiting_approval", "emitted", "failed"],
    ["in_progress", "human_review", "done", "failed"],
    ["executing", "evaluating", "triaged", "failed"],
];

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3usize,
        0..2usize,
        0..4usize,
        0..30i64,
        0..5_000u64,
        any::<bool>(),
        1..3u64,
        any::<bool>(),
    )
        .prop_map(
            |(service, task, status, minute, tokens, keyed_by_issue, issue, link)| Spec {
                service,
                task,
                status,
                minute,
                tokens,
                keyed_by_issue,
                issue,
                link,
            },
        )
}

/// The event `n` of a set: keyed by its issue, or by a synthetic key that a linked event
/// later merges into the issue.
fn event(n: usize, s: &Spec) -> Value {
    let service = SERVICES[s.service];
    let task = format!("{}-{}-{}", &service[..1], s.issue, s.task);
    let key = if s.keyed_by_issue {
        s.issue.to_string()
    } else {
        format!("{}-{task}", &service[..2])
    };
    let time =
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(s.minute);
    let mut correlation = json!({});
    if s.link {
        correlation["issue_number"] = json!(s.issue);
    }
    if service == "tfactory" && s.link {
        correlation["aifactory_task_id"] = json!(format!("a-{}-{}", s.issue, s.task));
    }
    json!({
        "id": format!("e-{n}"),
        "correlation_key": key,
        "service": service,
        "task_id": task,
        "status": STATUSES[s.service][s.status],
        "phase": "act",
        "time": time.to_rfc3339(),
        "usage": {"total_tokens": s.tokens, "cost_usd": s.tokens as f64 / 1e5},
        "correlation": correlation,
    })
}

/// Removes what records when CFactory received something (`received_at`, `liveness`):
/// the only fields allowed to differ between arrival orders.
fn strip_arrival(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("received_at");
            map.remove("liveness");
            map.values_mut().for_each(strip_arrival);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_arrival),
        _ => {}
    }
}

/// Every item the events make, as JSON sorted by key, without the fields that record
/// arrival rather than content.
fn fold(events: &[Value]) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(FakeClock::at(
            Utc.with_ymd_and_hms(2026, 6, 1, 13, 0, 0).unwrap(),
        ));
        let store = InMemoryStore::new(clock);
        let tenant = TenantId::default_tenant();
        for e in events {
            let parsed = CompletionEvent::parse(&e.to_string()).unwrap();
            store.ingest(&tenant, vec![parsed]).await.unwrap();
        }
        let mut items: Vec<Value> = store
            .scan_items(&tenant, None, 10_000)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|item| {
                let mut v = serde_json::to_value(&item).unwrap();
                strip_arrival(&mut v);
                v
            })
            .collect();
        items.sort_by_key(|v| v["correlation_key"].to_string());
        items
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_arrival_order_gives_the_same_items(
        (events, order) in prop::collection::vec(spec(), 1..12)
            .prop_flat_map(|specs| {
                let n = specs.len();
                let events: Vec<Value> = specs.iter().enumerate().map(|(i, s)| event(i, s)).collect();
                // Some events arrive twice (a retry): the same id, the same body.
                let with_retries = (Just(events), prop::collection::vec(0..n, 0..3))
                    .prop_map(|(mut events, again)| {
                        for i in again {
                            events.push(events[i].clone());
                        }
                        events
                    });
                with_retries.prop_flat_map(|events| {
                    let order: Vec<usize> = (0..events.len()).collect();
                    (Just(events), Just(order).prop_shuffle())
                })
            })
    ) {
        let shuffled: Vec<Value> = order.iter().map(|&i| events[i].clone()).collect();
        prop_assert_eq!(fold(&events), fold(&shuffled));
    }
}

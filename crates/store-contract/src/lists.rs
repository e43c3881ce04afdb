//! Reading items back: the filtered, paged list with its stalled count, and `get_many`.

use cfactory_domain::{CorrelationKey, StageName, StatusClass, TenantId};
use chrono::Duration;
use serde_json::json;

use crate::Subject;
use crate::helpers::{event_json, ingest_one, query, t, tenant};

/// Filters, total count, newest-first order and cursor pages.
pub async fn list_filters_count_and_pages(s: &Subject) {
    for i in 0..7 {
        let key = format!("{}", 100 + i);
        let (service, status) = match i % 3 {
            0 => ("pfactory", "awaiting_approval"),
            1 => ("aifactory", "in_progress"),
            _ => ("tfactory", "triaged"),
        };
        let extra = json!({"title": format!("Feature number {i}"), "repo": "acme/shop"});
        ingest_one(
            s,
            event_json(
                Some(&format!("e{i}")),
                &key,
                service,
                &format!("t{i}"),
                status,
                i,
                extra,
            ),
        )
        .await;
    }
    let mut q = query();
    let all = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(all.count, 7);
    let keys: Vec<&str> = all
        .items
        .iter()
        .map(|i| i.correlation_key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "acme/shop#106",
            "acme/shop#105",
            "acme/shop#104",
            "acme/shop#103",
            "acme/shop#102",
            "acme/shop#101",
            "acme/shop#100"
        ]
    );

    q.limit = 3;
    let first = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.count, 7);
    q.cursor = first.next_cursor.clone();
    let second = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(second.items[0].correlation_key.as_str(), "acme/shop#103");
    q.cursor = second.next_cursor.clone();
    let third = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.next_cursor.is_none());

    let mut q = query();
    q.stage = Some(StageName::PLAN);
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 3);
    let mut q = query();
    q.status = Some(StatusClass::Done);
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 2);
    let mut q = query();
    q.service = Some(cfactory_domain::Service::AIFACTORY);
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 2);
    let mut q = query();
    q.text = Some("NUMBER 4".into());
    let found = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(found.count, 1);
    assert_eq!(found.items[0].correlation_key.as_str(), "acme/shop#104");
    let mut q = query();
    q.text = Some("ACME/shop".into());
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 7);
}

/// Items whose running stage went silent before the cutoff count as stalled; queued and
/// review stages never do.
pub async fn stalled_items_are_counted(s: &Subject) {
    ingest_one(
        s,
        event_json(
            Some("1"),
            "1",
            "aifactory",
            "a",
            "in_progress",
            0,
            json!({}),
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
            "in_progress",
            30,
            json!({}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("3"),
            "3",
            "aifactory",
            "c",
            "human_review",
            0,
            json!({}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("4"), "4", "aifactory", "d", "backlog", 0, json!({})),
    )
    .await;
    let mut q = query();
    q.stalled_before = t(15);
    let page = s.work.list(&tenant(), &q).await.unwrap();
    assert_eq!(page.stalled_count, 1);
    let mut item = s.work.get(&tenant(), "1").await.unwrap().unwrap();
    item.refresh_liveness(t(16), Duration::minutes(15));
    assert!(item.liveness.stalled);
}

/// `get_many` answers each key in the order asked, through aliases, with `None` for keys
/// the tenant does not have.
pub async fn get_many_answers_in_order_with_aliases_and_gaps(s: &Subject) {
    ingest_one(
        s,
        event_json(
            Some("g1"),
            "af-5",
            "aifactory",
            "5",
            "running",
            0,
            json!({}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("g2"), "10", "aifactory", "5", "running", 1, json!({})),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("g3"), "11", "pfactory", "s11", "running", 1, json!({})),
    )
    .await;
    let keys: Vec<CorrelationKey> = ["11", "missing", "af-5", "10"]
        .iter()
        .map(|k| CorrelationKey::parse(k).unwrap())
        .collect();
    let got = s.work.get_many(&tenant(), &keys).await.unwrap();
    let answered: Vec<Option<&str>> = got
        .iter()
        .map(|i| i.as_ref().map(|i| i.correlation_key.as_str()))
        .collect();
    assert_eq!(answered, vec![Some("11"), None, Some("10"), Some("10")]);
    let other = TenantId::parse("acme").unwrap();
    assert!(
        s.work
            .get_many(&other, &keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
}

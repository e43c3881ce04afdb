//! Tenants: isolated from one another, listed, and scanned item by item.

use cfactory_domain::TenantId;
use cfactory_domain::ports::UsageGroupBy;
use serde_json::json;

use crate::Subject;
use crate::helpers::{accepted, event_json, ingest_as, ingest_one, query, tenant};

/// One tenant never sees another's items, events or usage.
pub async fn tenants_are_isolated(s: &Subject) {
    let other = TenantId::parse("acme").unwrap();
    let v = event_json(
        Some("same-id"),
        "142",
        "aifactory",
        "p",
        "done",
        0,
        json!({"usage": {"total_tokens": 9}}),
    );
    assert_eq!(ingest_as(s, &tenant(), v.clone()).await, accepted("142"));
    assert_eq!(
        ingest_as(s, &other, v).await,
        accepted("142"),
        "ids dedup per tenant"
    );
    let third = TenantId::parse("nobody").unwrap();
    assert!(s.work.get(&third, "142").await.unwrap().is_none());
    assert_eq!(s.work.list(&third, &query()).await.unwrap().count, 0);
    assert!(
        s.work
            .timeline(&third, "142", 10, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.work
            .usage(&third, UsageGroupBy::Service)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.work
            .get(&other, "142")
            .await
            .unwrap()
            .unwrap()
            .event_count,
        1
    );
}

/// `tenants` lists tenants with items; `scan_items` pages through every item once, in key
/// byte order, and a merged-away key is not listed on its own.
pub async fn tenants_and_scans_cover_every_item_once(s: &Subject) {
    assert!(s.work.tenants().await.unwrap().is_empty());
    let other = TenantId::parse("acme").unwrap();
    for (i, key) in ["9", "10", "af-3", "pf-s1", "zz-other"].iter().enumerate() {
        let v = event_json(
            Some(&format!("e{i}")),
            key,
            "pfactory",
            &format!("s{i}"),
            "running",
            0,
            json!({}),
        );
        ingest_one(s, v).await;
    }
    // Task 5 starts under af-5, then issue 10 claims it: af-5 merges into "10".
    ingest_one(
        s,
        event_json(
            Some("m0"),
            "af-5",
            "aifactory",
            "5",
            "running",
            1,
            json!({}),
        ),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("m1"), "10", "aifactory", "5", "running", 2, json!({})),
    )
    .await;
    ingest_as(
        s,
        &other,
        event_json(Some("o1"), "1", "aifactory", "1", "done", 0, json!({})),
    )
    .await;
    let tenants = s.work.tenants().await.unwrap();
    assert_eq!(tenants, vec![other.clone(), tenant()]);

    let mut seen = Vec::new();
    let mut after: Option<cfactory_domain::CorrelationKey> = None;
    loop {
        let page = s
            .work
            .scan_items(&tenant(), after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        assert!(page.unreadable.is_empty());
        let Some(last) = page.last else { break };
        assert_eq!(page.items.last().map(|i| &i.correlation_key), Some(&last));
        after = Some(last);
        seen.extend(page.items.iter().map(|i| i.correlation_key.to_string()));
    }
    assert_eq!(seen, vec!["10", "9", "af-3", "pf-s1", "zz-other"]);
    let merged = s.work.scan_items(&tenant(), None, 10).await.unwrap().items;
    let ten = merged
        .iter()
        .find(|i| i.correlation_key.as_str() == "10")
        .unwrap();
    assert!(ten.aliases.iter().any(|a| a.as_str() == "af-5"));
    let theirs = s.work.scan_items(&other, None, 10).await.unwrap();
    assert_eq!(theirs.items.len(), 1);
}

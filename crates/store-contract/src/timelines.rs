//! Events read back: one item's timeline, the tenant's activity feed across items, and
//! the scan that checks every stored event.

use cfactory_domain::{CompletionEvent, TenantId};
use serde_json::json;

use crate::Subject;
use crate::helpers::{event_json, ingest_as, ingest_one, tenant};

/// Timelines are oldest first by event time, carry each event's JSON exactly as
/// received, count the whole timeline, and page with a cursor.
pub async fn timeline_is_oldest_first_exact_and_paged(s: &Subject) {
    let raw_late = r#"{"zeta":1,"correlation_key":"42","service":"tfactory","task_id":"s","status":null,"outcome":"success","phase":"triage","time":"2026-06-01T12:30:00Z","id":"late","alpha":{"b":2,"a":1}}"#;
    let early = event_json(
        Some("early"),
        "42",
        "aifactory",
        "p",
        "in_progress",
        0,
        json!({}),
    );
    s.work
        .ingest(&tenant(), vec![CompletionEvent::parse(raw_late).unwrap()])
        .await
        .unwrap();
    ingest_one(s, early).await;
    for i in 0..5 {
        ingest_one(
            s,
            event_json(
                Some(&format!("m{i}")),
                "42",
                "aifactory",
                "p",
                "in_progress",
                10 + i,
                json!({}),
            ),
        )
        .await;
    }
    let all = s
        .work
        .timeline(&tenant(), "42", 1000, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.event_count, 7);
    assert_eq!(all.unreadable, 0);
    assert_eq!(all.span_seconds, 30 * 60);
    assert_eq!(all.events[0].event_id.as_ref().unwrap().as_str(), "early");
    let last = all.events.last().unwrap();
    assert_eq!(last.raw, raw_late);
    assert_eq!(last.status, "success");
    let page1 = s
        .work
        .timeline(&tenant(), "42", 4, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page1.events.len(), 4);
    assert_eq!(page1.event_count, 7);
    let cursor = page1.next_cursor.expect("more pages");
    let page2 = s
        .work
        .timeline(&tenant(), "42", 4, Some(&cursor))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page2.events.len(), 3);
    assert!(page2.next_cursor.is_none());
    assert_eq!(page2.events[2].raw, raw_late);
    assert!(
        s.work
            .timeline(&tenant(), "nope", 10, None)
            .await
            .unwrap()
            .is_none()
    );
}

/// The activity feed answers the tenant's events newest arrival first, pages by `seq`,
/// names each event's item by its key after merges, and never shows another tenant's.
pub async fn activity_is_newest_first_across_items_and_follows_merges(s: &Subject) {
    let other = TenantId::parse("acme").unwrap();
    ingest_one(
        s,
        event_json(Some("a1"), "7", "pfactory", "s1", "running", 5, json!({})),
    )
    .await;
    ingest_one(
        s,
        event_json(
            Some("a2"),
            "af-2",
            "aifactory",
            "2",
            "running",
            1,
            json!({}),
        ),
    )
    .await;
    ingest_as(
        s,
        &other,
        event_json(Some("x1"), "7", "aifactory", "9", "done", 0, json!({})),
    )
    .await;
    ingest_one(
        s,
        event_json(Some("a3"), "7", "aifactory", "2", "done", 2, json!({})),
    )
    .await;
    let feed = s.work.activity(&tenant(), 10, None).await.unwrap();
    assert!(feed.unreadable.is_empty());
    let feed = feed.entries;
    let ids: Vec<String> = feed
        .iter()
        .map(|a| a.entry.event_id.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec!["a3", "a2", "a1"],
        "newest arrival first, whatever the event time"
    );
    assert!(
        feed.iter().all(|a| a.correlation_key.as_str() == "7"),
        "af-2 merged into issue 7, so its events name 7"
    );
    assert!(feed.windows(2).all(|w| w[0].entry.seq > w[1].entry.seq));
    let first = s.work.activity(&tenant(), 2, None).await.unwrap().entries;
    assert_eq!(first.len(), 2);
    let rest = s
        .work
        .activity(&tenant(), 2, Some(first[1].entry.seq))
        .await
        .unwrap()
        .entries;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].entry.event_id.as_ref().unwrap().as_str(), "a1");
    assert_eq!(
        s.work
            .activity(&other, 10, None)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    assert!(
        s.work
            .activity(&TenantId::parse("nobody").unwrap(), 10, None)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

/// `scan_events` pages through every one of the tenant's events once, in arrival order,
/// whatever item it is on (merged ones included), and none of another tenant's; events
/// the store wrote itself all read back.
pub async fn event_scans_cover_every_event_once(s: &Subject) {
    let other = TenantId::parse("acme").unwrap();
    // The last event claims task 2 for issue 7, so af-2 merges into 7.
    let sent = [
        ("7", "s7"),
        ("af-2", "2"),
        ("9", "s9"),
        ("7", "s7"),
        ("7", "2"),
    ];
    for (i, (key, task)) in sent.into_iter().enumerate() {
        ingest_one(
            s,
            event_json(
                Some(&format!("e{i}")),
                key,
                "aifactory",
                task,
                "running",
                10 - i as i64,
                json!({}),
            ),
        )
        .await;
    }
    ingest_as(
        s,
        &other,
        event_json(Some("x1"), "7", "aifactory", "9", "done", 0, json!({})),
    )
    .await;
    let mut seqs = Vec::new();
    let mut after = None;
    loop {
        let page = s.work.scan_events(&tenant(), after, 2).await.unwrap();
        assert!(page.scanned <= 2);
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        let Some(last) = page.last else {
            assert_eq!(page.scanned, 0);
            break;
        };
        after = Some(last);
        seqs.push((page.scanned, last));
    }
    let scanned: u64 = seqs.iter().map(|(n, _)| n).sum();
    assert_eq!(scanned, 5, "every event once");
    assert!(
        s.work
            .get(&tenant(), "af-2")
            .await
            .unwrap()
            .unwrap()
            .correlation_key
            .as_str()
            == "7",
        "af-2 merged into 7"
    );
    assert!(seqs.windows(2).all(|w| w[0].1 < w[1].1), "arrival order");
    let feed = s.work.activity(&tenant(), 10, None).await.unwrap();
    assert!(feed.unreadable.is_empty());
    let feed = feed.entries;
    assert_eq!(
        seqs.last().map(|(_, last)| *last),
        feed.first().map(|a| a.entry.seq),
        "the scan ends at the newest arrival"
    );
    let theirs = s.work.scan_events(&other, None, 10).await.unwrap();
    assert_eq!(theirs.scanned, 1);
    let nobody = TenantId::parse("nobody").unwrap();
    let none = s.work.scan_events(&nobody, None, 10).await.unwrap();
    assert_eq!((none.scanned, none.last), (0, None));
}

//! SQLite-specific checks beyond the shared contract: concurrency, durability across
//! reopen, group commit, open failures, and agreement with the in-memory reference store.

use std::sync::{Arc, Mutex};

use cfactory_domain::memory::InMemoryStore;
use cfactory_domain::ports::{
    ApiKey, ApiKeyStore, ChangeSink, ListQuery, Scope, StoreError, UsageGroupBy, WorkItemStore,
};
use cfactory_domain::workitem::StageName;
use cfactory_domain::{
    CompletionEvent, CorrelationKey, FakeClock, IngestOutcome, Service, StatusClass, TenantId,
};
use cfactory_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use cfactory_store_contract::event_json;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn event(
    id: &str,
    key: &str,
    service: &str,
    task: &str,
    status: &str,
    minute: i64,
) -> CompletionEvent {
    let v = event_json(Some(id), key, service, task, status, minute, json!({}));
    CompletionEvent::parse(&v.to_string()).unwrap()
}

fn query() -> ListQuery {
    ListQuery {
        stage: None,
        status: None,
        service: None,
        text: None,
        limit: 50,
        cursor: None,
        stalled_before: t0() + Duration::minutes(15),
    }
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(
        &dir.path().join("db").join("cfactory.db"),
        SqliteOptions::default(),
    )
    .await
    .expect("the store opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_ingesters_on_their_own_items_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let e = event(
                    &format!("w{w}-{i}"),
                    &format!("{}", 1000 + w),
                    "aifactory",
                    &format!("t{w}"),
                    "in_progress",
                    i,
                );
                let out = store.ingest(&tenant(), vec![e]).await.unwrap();
                assert!(matches!(out[0], IngestOutcome::Accepted { .. }));
            }
        }));
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let page = store.list(&tenant(), &query()).await.unwrap();
    assert_eq!(page.count, 32);
    for w in 0..32 {
        let key = format!("{}", 1000 + w);
        let item = store.get(&tenant(), &key).await.unwrap().unwrap();
        assert_eq!(item.event_count, 10, "item {key}");
        let timeline = store
            .timeline(&tenant(), &key, 100, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(timeline.event_count, 10);
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::at(t0() + Duration::hours(1)));
    let path = dir.path().join("cfactory.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            clock: clock.clone(),
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    store
        .ingest(
            &tenant(),
            vec![event("a", "af-p:1", "aifactory", "p:1", "in_progress", 0)],
        )
        .await
        .unwrap();
    store
        .ingest(
            &tenant(),
            vec![event("b", "77", "aifactory", "p:1", "done", 1)],
        )
        .await
        .unwrap();
    let key = ApiKey {
        id: "key_1".into(),
        name: None,
        tenant: tenant(),
        scopes: vec![Scope::Ingest, Scope::Read],
        created_at: t0(),
        revoked_at: None,
    };
    store.create_key(&key, "hash").await.unwrap();
    store.close().await;
    assert!(matches!(
        store
            .ingest(
                &tenant(),
                vec![event("c", "77", "aifactory", "p:1", "done", 2)]
            )
            .await,
        Err(StoreError::Unavailable(_))
    ));

    // The clock went back: arrival stamps must still move forward across the reopen.
    let earlier = Arc::new(FakeClock::at(t0()));
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            clock: earlier,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    let item = store.get(&tenant(), "af-p:1").await.unwrap().unwrap();
    assert_eq!(item.correlation_key.as_str(), "77");
    assert_eq!(item.event_count, 2);
    assert_eq!(store.find_key("hash").await.unwrap(), Some(key));
    let out = store
        .ingest(
            &tenant(),
            vec![event("a", "af-p:1", "aifactory", "p:1", "in_progress", 0)],
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], IngestOutcome::Duplicate { correlation_key } if correlation_key.as_str() == "77")
    );
    store
        .ingest(
            &tenant(),
            vec![event("c", "77", "cfactory", "x", "done", 3)],
        )
        .await
        .unwrap();
    let timeline = store
        .timeline(&tenant(), "77", 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.event_count, 3);
    let stamps: Vec<DateTime<Utc>> = timeline.events.iter().map(|e| e.received_at).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    store.close().await;
}

#[tokio::test]
async fn an_unwritable_location_is_unavailable_with_the_path_named() {
    let path = std::path::Path::new("/proc/cfactory-test/cfactory.db");
    let err = match SqliteStore::open(path, SqliteOptions::default()).await {
        Ok(_) => panic!("a database under /proc cannot open"),
        Err(err) => err,
    };
    match err {
        StoreError::Unavailable(message) => {
            assert!(message.contains("/proc/cfactory-test"), "{message}");
            assert!(message.contains("SQLite"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Records each notification's key count; the first one stalls the writer for a moment
/// so the requests behind it must pile up and be committed together.
#[derive(Default)]
struct SlowFirst(Mutex<Vec<usize>>);

impl ChangeSink for SlowFirst {
    fn items_changed(&self, _tenant: &TenantId, keys: &[CorrelationKey]) {
        let first = {
            let mut heard = self.0.lock().unwrap();
            heard.push(keys.len());
            heard.len() == 1
        };
        if first {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_event_ingests_are_committed_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let sink = Arc::new(SlowFirst::default());
    store.watch(sink.clone()).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let e = event(
                    &format!("e{i}"),
                    &format!("{}", 5000 + i),
                    "tfactory",
                    &format!("s{i}"),
                    "executing",
                    0,
                );
                store.ingest(&tenant(), vec![e]).await.unwrap()
            })
        })
        .collect();
    for (i, task) in futures::future::join_all(tasks)
        .await
        .into_iter()
        .enumerate()
    {
        let out = task.unwrap();
        assert_eq!(
            out,
            vec![IngestOutcome::Accepted {
                correlation_key: CorrelationKey::issue(5000 + i as u64)
            }]
        );
    }
    let heard = sink.0.lock().unwrap().clone();
    assert_eq!(heard.iter().sum::<usize>(), 200);
    assert!(
        heard.len() < 200,
        "no two requests shared a commit: {heard:?}"
    );
    assert!(heard.iter().any(|&n| n > 1), "{heard:?}");
    let page = store.list(&tenant(), &query()).await.unwrap();
    assert_eq!(page.count, 200);
    let mut q = query();
    q.stage = Some(StageName::TEST);
    q.status = Some(StatusClass::Running);
    assert_eq!(store.list(&tenant(), &q).await.unwrap().count, 200);
    store.close().await;
}

/// A SQLite store in `dir` and an in-memory store, both stamping arrivals with one fake
/// clock.
async fn twins(dir: &tempfile::TempDir) -> (SqliteStore, InMemoryStore, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock::at(t0()));
    let sqlite = SqliteStore::open(
        &dir.path().join("x.db"),
        SqliteOptions {
            clock: clock.clone(),
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    (sqlite, InMemoryStore::new(clock.clone()), clock)
}

/// The same events, fed to both stores in the same order under the same clock, read
/// back the same through every read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agrees_with_the_in_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, memory, clock) = twins(&dir).await;
    let services = ["pfactory", "aifactory", "tfactory", "cfactory"];
    let statuses = ["in_progress", "done", "failed", "backlog", "stuck"];
    let mut batches: Vec<Vec<CompletionEvent>> = Vec::new();
    for i in 0..60i64 {
        let service = services[(i % 4) as usize];
        let key = match i % 5 {
            0 => format!("{}", 10 + i % 7),
            1 => format!("af-p:{}", i % 6),
            2 => format!("tf-s{}", i % 4),
            _ => format!("{}", 10 + i % 3),
        };
        let mut extra = json!({"title": format!("Item {}", i % 9), "repo": format!("acme/r{}", i % 2),
            "usage": {"total_tokens": 10 * (i % 4), "input_tokens": i % 3, "cost_usd": 0.25 * (i % 3) as f64, "model": format!("m{}", i % 2)}});
        if i % 6 == 0 {
            extra["correlation"] = json!({"aifactory_task_id": format!("p:{}", i % 6)});
        }
        let id = if i % 11 == 3 {
            None
        } else {
            Some(format!("e{}", i % 50))
        };
        let v = event_json(
            id.as_deref(),
            &key,
            service,
            &format!("p:{}", i % 6),
            statuses[(i % 5) as usize],
            i % 13,
            extra,
        );
        let e = CompletionEvent::parse(&v.to_string()).unwrap();
        match batches.last_mut() {
            Some(b) if i % 3 != 0 => b.push(e),
            _ => batches.push(vec![e]),
        }
    }
    let mut duplicates = 0;
    for batch in batches {
        clock.advance(Duration::seconds(1));
        let a = sqlite.ingest(&tenant(), batch.clone()).await.unwrap();
        let b = memory.ingest(&tenant(), batch).await.unwrap();
        assert_eq!(a, b);
        duplicates += a
            .iter()
            .filter(|o| matches!(o, IngestOutcome::Duplicate { .. }))
            .count();
    }
    assert!(duplicates > 0, "the mix exercises dedup");
    let mut q = query();
    q.limit = 4;
    loop {
        let a = sqlite.list(&tenant(), &q).await.unwrap();
        let b = memory.list(&tenant(), &q).await.unwrap();
        assert_eq!(
            (a.count, a.stalled_count, &a.items, &a.next_cursor),
            (b.count, b.stalled_count, &b.items, &b.next_cursor)
        );
        let Some(cursor) = a.next_cursor else { break };
        q.cursor = Some(cursor);
    }
    for stage in StageName::all() {
        for class in [None, Some(StatusClass::Done), Some(StatusClass::Running)] {
            let mut q = query();
            q.stage = Some(stage);
            q.status = class;
            let a = sqlite.list(&tenant(), &q).await.unwrap();
            let b = memory.list(&tenant(), &q).await.unwrap();
            assert_eq!((a.count, &a.items), (b.count, &b.items));
        }
    }
    for service in [Service::PFACTORY, Service::CFACTORY] {
        let mut q = query();
        q.service = Some(service);
        q.text = Some("ITEM".into());
        let a = sqlite.list(&tenant(), &q).await.unwrap();
        let b = memory.list(&tenant(), &q).await.unwrap();
        assert_eq!((a.count, &a.items), (b.count, &b.items));
    }
    let all = memory.list(&tenant(), &query()).await.unwrap();
    assert!(
        all.items.iter().any(|i| !i.aliases.is_empty()),
        "the mix exercises merges"
    );
    assert!(
        all.items
            .iter()
            .any(|i| i.flags.correlation_conflict_count > 0 || i.flags.missing_event_id > 0)
    );
    for item in &all.items {
        for alias in item.aliases.iter().chain([&item.correlation_key]) {
            let a = sqlite
                .timeline(&tenant(), alias.as_str(), 3, None)
                .await
                .unwrap()
                .unwrap();
            let b = memory
                .timeline(&tenant(), alias.as_str(), 3, None)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    &a.correlation_key,
                    a.event_count,
                    &a.events,
                    a.span_seconds,
                    &a.next_cursor
                ),
                (
                    &b.correlation_key,
                    b.event_count,
                    &b.events,
                    b.span_seconds,
                    &b.next_cursor
                )
            );
            assert_eq!(
                sqlite
                    .get(&tenant(), alias.as_str())
                    .await
                    .unwrap()
                    .as_ref(),
                Some(item)
            );
        }
    }
    for group in [
        UsageGroupBy::Service,
        UsageGroupBy::Project,
        UsageGroupBy::Workitem,
        UsageGroupBy::Model,
    ] {
        let a = sqlite.usage(&tenant(), group).await.unwrap();
        let b = memory.usage(&tenant(), group).await.unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.key, x.input_tokens, x.output_tokens, x.total_tokens),
                (&y.key, y.input_tokens, y.output_tokens, y.total_tokens)
            );
            assert!((x.cost_usd - y.cost_usd).abs() < 1e-9);
        }
    }
    for task in ["p:0", "p:3", "nope"] {
        assert_eq!(
            sqlite
                .find_task(&tenant(), Service::AIFACTORY, task)
                .await
                .unwrap(),
            memory
                .find_task(&tenant(), Service::AIFACTORY, task)
                .await
                .unwrap()
        );
    }
    sqlite.close().await;
}

/// A text filter that matches a few items and one that matches more than the list reads
/// by key (2,000) page the same as the in-memory store, alone and with a status filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_filters_with_few_and_many_matches_agree_with_the_in_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, memory, _) = twins(&dir).await;
    let statuses = ["in_progress", "done", "failed"];
    let events: Vec<CompletionEvent> = (0..2_100i64)
        .map(|i| {
            let title = if i < 2_050 {
                "Wide sweep"
            } else {
                "Narrow fix"
            };
            let v = event_json(
                Some(&format!("e{i}")),
                &format!("{}", 1_000 + i),
                "aifactory",
                &format!("task-{i}"),
                statuses[(i % 3) as usize],
                i % 40,
                json!({ "title": format!("{title} {i}") }),
            );
            CompletionEvent::parse(&v.to_string()).unwrap()
        })
        .collect();
    for batch in events.chunks(700) {
        sqlite.ingest(&tenant(), batch.to_vec()).await.unwrap();
        memory.ingest(&tenant(), batch.to_vec()).await.unwrap();
    }
    let cases = [
        ("WIDE SWEEP", None, 2_050),
        ("wide sweep", Some(StatusClass::Done), 683),
        ("narrow", None, 50),
        ("narrow fix 207", Some(StatusClass::Running), 4),
        ("nothing like it", None, 0),
    ];
    for (text, status, expected) in cases {
        let mut q = query();
        q.text = Some(text.into());
        q.status = status;
        q.limit = 300;
        let mut pages = 0;
        loop {
            let a = sqlite.list(&tenant(), &q).await.unwrap();
            let b = memory.list(&tenant(), &q).await.unwrap();
            assert_eq!(a.count, expected, "{text} {status:?}");
            assert_eq!(
                (a.count, a.stalled_count, &a.items, &a.next_cursor),
                (b.count, b.stalled_count, &b.items, &b.next_cursor),
                "{text} {status:?} page {pages}"
            );
            pages += 1;
            let Some(cursor) = a.next_cursor else { break };
            q.cursor = Some(cursor);
        }
        assert_eq!(pages, (expected as usize).div_ceil(300).max(1), "{text}");
    }
    sqlite.close().await;
}

#[tokio::test]
async fn usage_sums_saturate_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let usage = json!({"usage": {"input_tokens": 10, "output_tokens": 10, "total_tokens": 20}});
    let events: Vec<CompletionEvent> = ["t-1", "t-2"]
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let v = event_json(
                Some(&format!("sat-{i}")),
                "77",
                "aifactory",
                task,
                "done",
                1,
                usage.clone(),
            );
            CompletionEvent::parse(&v.to_string()).unwrap()
        })
        .collect();
    store.ingest(&tenant(), events).await.unwrap();
    // Two rows near the column's largest value, as a hand edit or years of figures
    // could leave them: SQLite's SUM would fail with an integer overflow.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("db").join("cfactory.db").display()
    ))
    .await
    .unwrap();
    let near = i64::MAX - 5;
    let changed = sqlx::query(
        "UPDATE usage SET input_tokens = ?1, output_tokens = ?1, total_tokens = ?1 \
         WHERE item_key = '77'",
    )
    .bind(near)
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 2);
    pool.close().await;
    for group in [UsageGroupBy::Service, UsageGroupBy::Workitem] {
        let rows = store.usage(&tenant(), group).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].total_tokens, i64::MAX as u64, "{group:?}");
        assert_eq!(rows[0].input_tokens, i64::MAX as u64, "{group:?}");
    }
}

#[tokio::test]
async fn commits_are_flushed_to_disk_unless_normal_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.synchronous().await.unwrap(), "full", "the default");
    store.close().await;
    let store = SqliteStore::open(
        &dir.path().join("db").join("cfactory.db"),
        SqliteOptions {
            synchronous: Synchronous::Normal,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(store.synchronous().await.unwrap(), "normal");
}

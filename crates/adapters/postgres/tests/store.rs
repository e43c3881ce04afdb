//! PostgreSQL-only behaviour the shared contract cannot see: group commit under load,
//! several processes on one database, the cross-process change feed, migrations and
//! connection failures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfactory_domain::ports::{
    ApiKey, ApiKeyStore, ChangeSink, ListQuery, Scope, StoreError, WorkItemStore,
};
use cfactory_domain::{CompletionEvent, CorrelationKey, IngestOutcome, TenantId, WorkItem};
use cfactory_postgres::testing::TestDatabase;
use cfactory_postgres::{PgOptions, PgStore};
use cfactory_store_contract::event_json;
use chrono::{TimeZone, Utc};
use serde_json::json;

async fn connect(database: &TestDatabase) -> PgStore {
    PgStore::connect(database.url(), PgOptions::default())
        .await
        .expect("the test database accepts connections")
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn event(id: &str, key: &str, task: &str, minute: i64) -> CompletionEvent {
    let v = event_json(
        Some(id),
        key,
        "aifactory",
        task,
        "in_progress",
        minute,
        json!({}),
    );
    CompletionEvent::parse(&v.to_string()).expect("test event parses")
}

fn all_items() -> ListQuery {
    ListQuery {
        stage: None,
        status: None,
        service: None,
        text: None,
        limit: 500,
        cursor: None,
        stalled_before: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
    }
}

async fn event_rows(database: &TestDatabase) -> u64 {
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n as u64
}

/// Waits, for at most 10 s, until the events table holds more than `rows` rows.
async fn wait_for_rows_above(database: &TestDatabase, rows: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while event_rows(database).await <= rows {
        assert!(
            std::time::Instant::now() < deadline,
            "no event committed past {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_shared_and_own_keys_lose_nothing() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    let writers = 32;
    let per_writer = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                // Half of each writer's events go to one shared item, half to its own.
                let key = if i % 2 == 0 {
                    "500".to_owned()
                } else {
                    format!("{}", 1000 + w)
                };
                let batch = vec![event(&format!("w{w}-{i}"), &key, &format!("t{w}"), i)];
                let out = store.ingest(&tenant(), batch).await.unwrap();
                assert!(matches!(out[0], IngestOutcome::Accepted { .. }));
            }
        }));
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let shared = store.get(&tenant(), "500").await.unwrap().unwrap();
    assert_eq!(shared.event_count, (writers * per_writer / 2) as u64);
    for w in 0..writers {
        let own = store
            .get(&tenant(), &format!("{}", 1000 + w))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(own.event_count, (per_writer / 2) as u64);
    }
    assert_eq!(
        store.list(&tenant(), &all_items()).await.unwrap().count,
        (writers + 1) as u64
    );
    assert_eq!(event_rows(&database).await, (writers * per_writer) as u64);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_keep_one_consistent_item() {
    let database = TestDatabase::create().await;
    let a = connect(&database).await;
    let b = connect(&database).await;
    let per_store = 40;
    let mut tasks = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        for lane in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_store / 4 {
                    let id = format!("{name}-{lane}-{i}");
                    // The same retried id from both stores must be recorded once.
                    let retry = format!("shared-{lane}-{i}");
                    let batch = vec![
                        event(&id, "77", &format!("{name}{lane}"), i),
                        event(&retry, "77", "shared", i),
                    ];
                    store.ingest(&tenant(), batch).await.unwrap();
                }
            }));
        }
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let from_a = a.get(&tenant(), "77").await.unwrap().unwrap();
    let from_b = b.get(&tenant(), "77").await.unwrap().unwrap();
    assert_eq!(from_a, from_b);
    let unique = 2 * per_store + per_store;
    assert_eq!(from_a.event_count, unique as u64);
    assert_eq!(event_rows(&database).await, unique as u64);
    let timeline = b
        .timeline(&tenant(), "77", 1000, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.event_count, unique as u64);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_writer_lets_other_writers_of_its_tenant_take_turns() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    let busy = Arc::new(AtomicBool::new(true));
    let mut lanes = Vec::new();
    for lane in 0..4 {
        let (store, busy) = (store.clone(), busy.clone());
        lanes.push(tokio::spawn(async move {
            let mut sent = 0;
            while busy.load(Ordering::Relaxed) {
                let id = format!("busy-{lane}-{sent}");
                let batch = vec![event(&id, "88", &format!("lane{lane}"), sent)];
                store.ingest(&tenant(), batch).await.unwrap();
                sent += 1;
            }
            sent as u64
        }));
    }
    // The lanes are writing once events land; then another process's writer takes the
    // tenant's lock while this store keeps ingesting.
    wait_for_rows_above(&database, 0).await;
    let other = sqlx::PgPool::connect(database.url()).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cfactory.tenant:default', 0))")
            .execute(&mut *tx),
    )
    .await
    .expect("a busy writer lets go of its tenant lock within its time slice")
    .unwrap();
    // While the other holds it, nothing of this tenant commits: watched over a window,
    // the only way to see that something does not happen.
    let held_from = event_rows(&database).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(event_rows(&database).await, held_from);
    tx.commit().await.unwrap();
    other.close().await;
    // Once it lets go, the writers go on.
    wait_for_rows_above(&database, held_from).await;
    busy.store(false, Ordering::Relaxed);
    let mut sent = 0;
    for lane in futures::future::join_all(lanes).await {
        sent += lane.unwrap();
    }
    assert!(event_rows(&database).await > held_from);
    assert_eq!(event_rows(&database).await, sent);
    let item = store.get(&tenant(), "88").await.unwrap().unwrap();
    assert_eq!(item.event_count, sent);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_trusts_the_items_it_wrote_only_until_another_store_writes() {
    let database = TestDatabase::create().await;
    let a = connect(&database).await;
    let b = connect(&database).await;
    // `a` loads and writes the item, then knows it well enough to skip the next load.
    a.ingest(&tenant(), vec![event("k1", "55", "t1", 1)])
        .await
        .unwrap();
    a.ingest(&tenant(), vec![event("k2", "55", "t1", 2)])
        .await
        .unwrap();
    // Another process changes it ...
    b.ingest(&tenant(), vec![event("k3", "55", "t2", 3)])
        .await
        .unwrap();
    // ... so what `a` knew is stale, and its next write must start from the stored item.
    a.ingest(&tenant(), vec![event("k4", "55", "t1", 4)])
        .await
        .unwrap();
    let item = b.get(&tenant(), "55").await.unwrap().unwrap();
    assert_eq!(item.event_count, 4);
    assert_eq!(item.links.aifactory_task_ids, ["t1", "t2"]);
    assert_eq!(event_rows(&database).await, 4);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_is_a_duplicate_even_when_the_writer_knows_its_item() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    store
        .ingest(&tenant(), vec![event("r1", "66", "t1", 1)])
        .await
        .unwrap();
    store
        .ingest(&tenant(), vec![event("r2", "66", "t1", 2)])
        .await
        .unwrap();
    // The writer knows item 66 and its identifiers, so it takes r2 for new until the
    // events' unique key says otherwise; r3 beside it still lands, once.
    let out = store
        .ingest(
            &tenant(),
            vec![event("r2", "66", "t1", 2), event("r3", "66", "t1", 3)],
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], IngestOutcome::Duplicate { correlation_key } if correlation_key.as_str() == "66")
    );
    assert!(matches!(out[1], IngestOutcome::Accepted { .. }));
    let again = store
        .ingest(&tenant(), vec![event("r3", "66", "t1", 3)])
        .await
        .unwrap();
    assert!(matches!(again[0], IngestOutcome::Duplicate { .. }));
    assert_eq!(event_rows(&database).await, 3);
    let item = store.get(&tenant(), "66").await.unwrap().unwrap();
    assert_eq!(item.event_count, 3);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sent_ahead_and_turned_back_by_a_redelivery_is_applied_again_from_the_store() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    for (id, key, task, minute) in [
        ("m1", "66", "t1", 1),
        ("m2", "66", "t1", 2),
        ("m3", "77", "t7", 3),
    ] {
        store
            .ingest(&tenant(), vec![event(id, key, task, minute)])
            .await
            .unwrap();
    }
    // The writer knows both items, so it sends this group as a write of its own, taking
    // m2 for new; the events' unique key turns that write back. The group is applied
    // again from the store: m2 is answered as a duplicate, m5 lands once, and the items
    // the writer goes on from (m4 on 66) count each event once.
    let out = store
        .ingest(
            &tenant(),
            vec![event("m2", "66", "t1", 2), event("m5", "77", "t7", 5)],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], IngestOutcome::Duplicate { .. }));
    assert!(matches!(out[1], IngestOutcome::Accepted { .. }));
    store
        .ingest(&tenant(), vec![event("m4", "66", "t1", 4)])
        .await
        .unwrap();
    let item = store.get(&tenant(), "66").await.unwrap().unwrap();
    assert_eq!(item.event_count, 3, "m1, m2 and m4");
    let item = store.get(&tenant(), "77").await.unwrap().unwrap();
    assert_eq!(item.event_count, 2, "m3 and m5");
    assert_eq!(event_rows(&database).await, 5);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_unseen_identifiers_beside_known_ones_lands_where_the_store_says() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    store
        .ingest(&tenant(), vec![event("k1", "150", "t1", 1)])
        .await
        .unwrap();
    // The writer knows item 150 and task t1; the TFactory spec is new to it and to the
    // store, so only the spec is looked up, and the redelivered k1 is still a duplicate.
    let spec = event_json(
        Some("k2"),
        "tf-s1",
        "tfactory",
        "s1",
        "executing",
        2,
        json!({"correlation": {"aifactory_task_id": "t1"}}),
    );
    let spec = CompletionEvent::parse(&spec.to_string()).unwrap();
    let out = store
        .ingest(&tenant(), vec![spec, event("k1", "150", "t1", 1)])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], IngestOutcome::Accepted { correlation_key } if correlation_key.as_str() == "150"),
        "{out:?}"
    );
    assert!(matches!(out[1], IngestOutcome::Duplicate { .. }), "{out:?}");
    // The spec's key is an alias of 150 now; a group naming it and a new task both finds
    // the item and adds the task.
    let out = store
        .ingest(&tenant(), vec![event("k3", "tf-s1", "t2", 3)])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], IngestOutcome::Accepted { correlation_key } if correlation_key.as_str() == "150"),
        "{out:?}"
    );
    store
        .ingest(&tenant(), vec![event("k4", "160", "t4", 4)])
        .await
        .unwrap();
    store.close().await;
    // A new store knows nothing; once it has written 150, a group over 150 and 160 looks
    // up only 160's identifiers and takes its item from the database.
    let store = connect(&database).await;
    store
        .ingest(&tenant(), vec![event("k5", "150", "t1", 5)])
        .await
        .unwrap();
    let out = store
        .ingest(
            &tenant(),
            vec![event("k6", "150", "t1", 6), event("k7", "160", "t4", 7)],
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[1], IngestOutcome::Accepted { correlation_key } if correlation_key.as_str() == "160")
    );
    assert_eq!(event_rows(&database).await, 7);
    let item = store.get(&tenant(), "150").await.unwrap().unwrap();
    assert_eq!(item.event_count, 5);
    assert_eq!(item.links.tfactory_spec_ids, vec!["s1".to_owned()]);
    assert_eq!(
        item.links.aifactory_task_ids,
        vec!["t1".to_owned(), "t2".to_owned()]
    );
    let other = store.get(&tenant(), "160").await.unwrap().unwrap();
    assert_eq!(other.event_count, 2);
    assert_eq!(store.list(&tenant(), &all_items()).await.unwrap().count, 2);
    store.close().await;
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<String>)>>);

impl ChangeSink for Recorder {
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]) {
        self.0.lock().unwrap().push((
            tenant.to_string(),
            keys.iter().map(|k| k.to_string()).collect(),
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_by_one_store_reaches_another_stores_sink() {
    let database = TestDatabase::create().await;
    let writer = connect(&database).await;
    let watcher = connect(&database).await;
    let recorder = Arc::new(Recorder::default());
    watcher.watch(recorder.clone()).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    writer
        .ingest(&acme, vec![event("n1", "af-q:1", "q:1", 0)])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorder.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(heard, [("acme".to_owned(), vec!["af-q:1".to_owned()])]);
    writer.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_is_heard_under_both_keys() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    store
        .ingest(&tenant(), vec![event("m1", "af-p:9", "p:9", 0)])
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    store.watch(recorder.clone()).await.unwrap();
    store
        .ingest(&tenant(), vec![event("m2", "31", "p:9", 1)])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorder.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(
        heard,
        [(
            "default".to_owned(),
            vec!["31".to_owned(), "af-p:9".to_owned()]
        )]
    );
    let merged = store.get(&tenant(), "af-p:9").await.unwrap().unwrap();
    assert_eq!(merged.correlation_key.as_str(), "31");
    assert_eq!(merged.event_count, 2);
    store.close().await;
}

/// What a sink that takes items heard: items given (key, event count) with the keys
/// merged away, or keys to read back.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Items(Vec<(String, u64)>, Vec<String>),
    Keys(Vec<String>),
}

#[derive(Default)]
struct ItemRecorder(Mutex<Vec<Heard>>);

impl ChangeSink for ItemRecorder {
    fn items_changed(&self, _: &TenantId, keys: &[CorrelationKey]) {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        self.0.lock().unwrap().push(Heard::Keys(keys));
    }

    fn items_written(&self, _: &TenantId, items: &[Arc<WorkItem>], gone: &[CorrelationKey]) {
        let items = items
            .iter()
            .map(|i| (i.correlation_key.to_string(), i.event_count))
            .collect();
        let gone = gone.iter().map(|k| k.to_string()).collect();
        self.0.lock().unwrap().push(Heard::Items(items, gone));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_own_commits_reach_its_sink_as_items_and_others_as_keys() {
    let database = TestDatabase::create().await;
    let own = connect(&database).await;
    let other = connect(&database).await;
    let recorder = Arc::new(ItemRecorder::default());
    own.watch(recorder.clone()).await.unwrap();
    let heard = |n: usize| {
        let recorder = recorder.clone();
        async move { recorder.0.lock().unwrap().len() >= n }
    };
    own.ingest(&tenant(), vec![event("h1", "af-p:7", "p:7", 0)])
        .await
        .unwrap();
    assert!(eventually(|| heard(1)).await);
    other
        .ingest(&tenant(), vec![event("h2", "af-p:7", "p:7", 1)])
        .await
        .unwrap();
    assert!(eventually(|| heard(2)).await);
    // Merged into #40: the item comes as written, the key merged away is to be read.
    own.ingest(&tenant(), vec![event("h3", "40", "p:7", 2)])
        .await
        .unwrap();
    assert!(eventually(|| heard(3)).await);
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(
        heard,
        [
            Heard::Items(vec![("af-p:7".into(), 1)], vec![]),
            Heard::Keys(vec!["af-p:7".into()]),
            Heard::Items(vec![("40".into(), 3)], vec!["af-p:7".into()]),
        ]
    );
    // What was handed over is what the store now holds.
    let stored = own.get(&tenant(), "40").await.unwrap().unwrap();
    assert_eq!(stored.event_count, 3);
    assert_eq!(stored.aliases.len(), 1);
    own.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rows_follow_changes_one_row_per_task_through_merges() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    let used = |id: &str, key: &str, service: &str, task: &str, minute: i64, tokens: u64| {
        let usage = json!({"usage": {"input_tokens": tokens, "output_tokens": 1, "cost_usd": 0.5}});
        let v = event_json(Some(id), key, service, task, "in_progress", minute, usage);
        CompletionEvent::parse(&v.to_string()).unwrap()
    };
    // One request each, so each is its own write against the rows stored before it.
    for event in [
        used("u1", "60", "aifactory", "a60", 0, 100),
        used("u2", "60", "tfactory", "t60", 1, 50),
        used("u3", "60", "aifactory", "a60", 2, 150),
        used("u4", "af-x9", "aifactory", "x9", 3, 10),
        used("u4", "af-x9", "aifactory", "x9", 3, 10),
        // Task x9 belongs to af-x9: that item merges into #60.
        used("u5", "60", "aifactory", "x9", 4, 20),
        used("u6", "60", "tfactory", "t60", 5, 70),
    ] {
        store.ingest(&tenant(), vec![event]).await.unwrap();
    }
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT item_key, service, task_id, input_tokens FROM usage ORDER BY 1, 2, 3",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let row = |k: &str, s: &str, t: &str, n: i64| (k.to_owned(), s.to_owned(), t.to_owned(), n);
    assert_eq!(
        rows,
        [
            row("60", "aifactory", "a60", 150),
            row("60", "aifactory", "x9", 20),
            row("60", "tfactory", "t60", 70),
        ]
    );
    let item = store.get(&tenant(), "af-x9").await.unwrap().unwrap();
    assert_eq!(item.usage_total.input_tokens, 240);
    store.close().await;
}

/// Polls `check` until it holds or five seconds pass; returns whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_held_in_memory_follow_changes_made_by_another_store() {
    let database = TestDatabase::create().await;
    let cli = connect(&database).await;
    let server = connect(&database).await;
    // A listening store holds its keys in memory.
    server.watch(Arc::new(Recorder::default())).await.unwrap();
    assert!(!server.has_active_keys().await.unwrap());
    let key = ApiKey {
        id: "k1".into(),
        name: None,
        tenant: TenantId::parse("acme").unwrap(),
        scopes: vec![Scope::Read],
        created_at: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        revoked_at: None,
    };
    cli.create_key(&key, "hash-1").await.unwrap();
    assert!(
        eventually(|| async { server.has_active_keys().await.unwrap() }).await,
        "the first key, created elsewhere, ends open mode"
    );
    let found = server
        .find_key("hash-1")
        .await
        .unwrap()
        .expect("the new key");
    assert_eq!(found.tenant.as_str(), "acme");
    assert_eq!(server.find_key("hash-2").await.unwrap(), None);
    assert!(cli.revoke_key("k1", key.created_at).await.unwrap());
    assert!(
        eventually(|| async { server.find_key("hash-1").await.unwrap().is_none() }).await,
        "a key revoked elsewhere stops working"
    );
    assert!(!server.has_active_keys().await.unwrap());
    // Changes made by the listening store itself apply at once.
    let mut again = key.clone();
    again.id = "k2".into();
    server.create_key(&again, "hash-3").await.unwrap();
    assert!(server.find_key("hash-3").await.unwrap().is_some());
    assert!(server.revoke_key("k2", key.created_at).await.unwrap());
    assert_eq!(server.find_key("hash-3").await.unwrap(), None);
    cli.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_again_changes_nothing() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    store
        .ingest(&tenant(), vec![event("k1", "5", "p", 0)])
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let again = PgStore::connect(database.url(), PgOptions::default())
        .await
        .unwrap();
    again.migrate().await.unwrap();
    assert_eq!(
        again
            .get(&tenant(), "5")
            .await
            .unwrap()
            .unwrap()
            .event_count,
        1
    );
    store.close().await;
    again.close().await;
}

#[tokio::test]
async fn a_closed_store_answers_unavailable() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
    store.close().await;
    let result = store
        .ingest(&tenant(), vec![event("c1", "5", "p", 0)])
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly_without_the_password() {
    let started = Instant::now();
    let result = PgStore::connect(
        "postgres://app:hunter2secret@127.0.0.1:1/cfactory",
        PgOptions::default(),
    )
    .await;
    let Err(StoreError::Unavailable(message)) = result else {
        panic!("expected Unavailable");
    };
    assert!(!message.contains("hunter2secret"), "{message}");
    assert!(message.contains("127.0.0.1:1/cfactory"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn usage_sums_saturate_instead_of_failing() {
    let database = TestDatabase::create().await;
    let store = connect(&database).await;
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
    // Two rows near the column's largest value: the sum is past BIGINT's range.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let changed = sqlx::query(
        "UPDATE usage SET input_tokens = $1, output_tokens = $1, total_tokens = $1 \
         WHERE item_key = '77'",
    )
    .bind(i64::MAX - 5)
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 2);
    pool.close().await;
    for group in [
        cfactory_domain::ports::UsageGroupBy::Service,
        cfactory_domain::ports::UsageGroupBy::Workitem,
    ] {
        let rows = store.usage(&tenant(), group).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].total_tokens, i64::MAX as u64, "{group:?}");
        assert_eq!(rows[0].input_tokens, i64::MAX as u64, "{group:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_holding_the_tenant_lock_costs_an_unavailable_not_a_hang() {
    let database = TestDatabase::create().await;
    let store = PgStore::connect(
        database.url(),
        PgOptions {
            lock_timeout: Duration::from_secs(1),
            ..PgOptions::default()
        },
    )
    .await
    .unwrap();
    store
        .ingest(&tenant(), vec![event("f1", "66", "t1", 1)])
        .await
        .unwrap();
    // A peer process takes the tenant's write lock and freezes (SIGSTOP, or its network
    // cut) with the transaction open.
    let peer = sqlx::PgPool::connect(database.url()).await.unwrap();
    let mut frozen = peer.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cfactory.tenant:default', 0))")
        .execute(&mut *frozen)
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        store.ingest(&tenant(), vec![event("f2", "66", "t1", 2)]),
    )
    .await
    .expect("a lock wait is bounded");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Once the peer is gone, writes go on: nothing was half-written.
    frozen.rollback().await.unwrap();
    peer.close().await;
    let outcomes = store
        .ingest(&tenant(), vec![event("f2", "66", "t1", 2)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], IngestOutcome::Accepted { .. }),
        "{outcomes:?}"
    );
    let item = store.get(&tenant(), "66").await.unwrap().unwrap();
    assert_eq!(item.event_count, 2);
    store.close().await;
}

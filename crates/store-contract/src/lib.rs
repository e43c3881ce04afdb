//! The contract every `WorkItemStore` and `ApiKeyStore` must keep, as one suite of async
//! checks. Each store crate runs it through [`contract_tests!`] against its own fresh
//! store, and this crate runs it against the in-memory fake, so no implementation can
//! drift from the others.

use std::any::Any;
use std::sync::Arc;

use std::sync::Mutex;

use cfactory_domain::actions::{
    ActionKind, ActionStatus, ActionStore, Endpoint, HttpMethod, PreparedAction, StepResult,
};
use cfactory_domain::audit::{self, AuditKey, AuditLog, AuditRecord, Verdict};
use cfactory_domain::event::Correlation;
use cfactory_domain::ports::{
    ApiKey, ApiKeyStore, BrowserSession, ChangeSink, ConversationStore, ListQuery, Scope,
    ServiceRegistry, StoreError, UsageGroupBy, WorkItemStore,
};
use cfactory_domain::proof::Proof;
use cfactory_domain::upstream::{TaskList, TaskSnapshot};
use cfactory_domain::{CompletionEvent, IngestOutcome, StageName, StatusClass, TenantId};
use cfactory_domain::{CorrelationKey, Service};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

/// A fresh, empty store under test. `guard` is dropped when the test ends (a temporary
/// database or directory).
pub struct Subject {
    /// The WorkItem port.
    pub work: Arc<dyn WorkItemStore>,
    /// The API-key port.
    pub keys: Arc<dyn ApiKeyStore>,
    /// The service-URL port.
    pub services: Arc<dyn ServiceRegistry>,
    /// The audit-log port.
    pub audit: Arc<dyn AuditLog>,
    /// The proposed-action port.
    pub actions: Arc<dyn ActionStore>,
    /// The conversation port.
    pub conversations: Arc<dyn ConversationStore>,
    /// Whatever must live as long as the store.
    pub guard: Option<Box<dyn Any + Send>>,
}

/// Generates one `#[tokio::test]` per contract check, each with a fresh store from
/// `$make` (an async closure returning a [`Subject`]).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            accepted_then_duplicate,
            event_without_id_is_recorded_and_flagged,
            synthetic_key_merges_into_issue_and_alias_resolves,
            test_spec_linked_to_a_coding_task_lands_on_its_issue,
            two_issue_numbers_never_merge,
            latest_time_wins_and_late_events_never_regress,
            equal_times_go_to_the_later_arrival,
            usage_counts_once_per_task_and_new_runs_add,
            list_filters_count_and_pages,
            stalled_items_are_counted,
            timeline_is_oldest_first_exact_and_paged,
            usage_groups,
            tenants_are_isolated,
            a_batch_answers_in_order_with_in_batch_duplicates,
            a_batch_over_many_items_writes_every_one,
            concurrent_writers_on_one_key_lose_nothing,
            cfactory_events_touch_no_stage,
            evidence_gates_set_proof,
            api_keys_lifecycle,
            browser_sessions_last_until_they_end_or_sign_out,
            service_urls_persist_and_replace,
            tenants_and_scans_cover_every_item_once,
            activity_is_newest_first_across_items_and_follows_merges,
            audit_chains_append_page_and_verify_per_tenant,
            concurrent_audit_appends_never_fork_the_chain,
            actions_are_stored_listed_and_moved_exactly_once,
            conversations_persist_per_tenant,
            get_many_answers_in_order_with_aliases_and_gaps,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let subject = ($make)().await;
                $crate::$name(&subject).await;
                drop(subject);
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per hydration and change-feed check (the upstream
/// snapshot half of the contract), each with a fresh store from `$make`.
#[macro_export]
macro_rules! snapshot_contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            snapshots_land_where_events_will,
            an_unchanged_snapshot_rewrites_nothing,
            snapshots_never_regress_a_terminal_stage,
            only_a_complete_list_clears_vanished_tasks,
            the_change_feed_hears_ingest_and_hydration,
        );
    };
}

fn t(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + Duration::minutes(minute)
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// An event JSON with the required fields; extend it with `extra`.
pub fn event_json(
    id: Option<&str>,
    key: &str,
    service: &str,
    task: &str,
    status: &str,
    minute: i64,
    extra: Value,
) -> Value {
    let mut v = json!({
        "specversion": "1.0",
        "source": format!("/{service}"),
        "type": format!("io.factory.{service}.completion"),
        "time": t(minute).to_rfc3339(),
        "correlation_key": key,
        "service": service,
        "task_id": task,
        "status": status,
        "phase": "act",
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in more {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn parse(v: &Value) -> CompletionEvent {
    CompletionEvent::parse(&v.to_string()).expect("test event parses")
}

async fn ingest_one(s: &Subject, v: Value) -> IngestOutcome {
    ingest_as(s, &tenant(), v).await
}

async fn ingest_as(s: &Subject, tenant: &TenantId, v: Value) -> IngestOutcome {
    let mut out = s
        .work
        .ingest(tenant, vec![parse(&v)])
        .await
        .expect("ingest succeeds");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn accepted(key: &str) -> IngestOutcome {
    IngestOutcome::Accepted {
        correlation_key: cfactory_domain::CorrelationKey::parse(key).unwrap(),
    }
}

fn query() -> ListQuery {
    ListQuery {
        stage: None,
        status: None,
        service: None,
        text: None,
        limit: 50,
        cursor: None,
        stalled_before: t(0),
    }
}

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

/// Events without an id are all recorded, and flagged.
pub async fn event_without_id_is_recorded_and_flagged(s: &Subject) {
    let v = event_json(None, "7", "pfactory", "s1", "draft", 0, json!({}));
    assert_eq!(ingest_one(s, v.clone()).await, accepted("7"));
    assert_eq!(ingest_one(s, v).await, accepted("7"));
    let item = s.work.get(&tenant(), "7").await.unwrap().unwrap();
    assert_eq!(item.event_count, 2);
    assert_eq!(item.flags.missing_event_id, 2);
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
    assert!(item.stages.code.is_some() && item.stages.plan.is_some());
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
            .test
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
    assert!(a.stages.test.is_none());
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
    let code = item.stages.code.unwrap();
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
    assert_eq!(item.stages.code.unwrap().status, "human_review");
}

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
    assert_eq!(item.stages.code.as_ref().unwrap().usage.total_tokens, 340);
    assert_eq!(item.stages.test.as_ref().unwrap().usage.total_tokens, 7);
}

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
    q.stage = Some(StageName::Plan);
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 3);
    let mut q = query();
    q.status = Some(StatusClass::Done);
    assert_eq!(s.work.list(&tenant(), &q).await.unwrap().count, 2);
    let mut q = query();
    q.service = Some(cfactory_domain::Service::Aifactory);
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
        let code = item.stages.code.as_ref().expect("a code stage");
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
    assert_eq!(unproven.stages.code.unwrap().proof, Proof::Unproven);
    assert_eq!(proven.stages.code.unwrap().proof, Proof::Proven);
}

/// Keys: created, found by hash, listed, refused twice, revoked.
pub async fn api_keys_lifecycle(s: &Subject) {
    assert!(!s.keys.has_active_keys().await.unwrap());
    let key = ApiKey {
        id: "key_1".into(),
        name: Some("ci".into()),
        tenant: TenantId::parse("acme").unwrap(),
        scopes: vec![Scope::Read, Scope::Ingest],
        created_at: t(0),
        revoked_at: None,
    };
    s.keys.create_key(&key, "hash1").await.unwrap();
    assert!(s.keys.has_active_keys().await.unwrap());
    assert!(matches!(
        s.keys.create_key(&key, "hash2").await,
        Err(StoreError::Duplicate(_))
    ));
    let found = s.keys.find_key("hash1").await.unwrap().unwrap();
    assert_eq!(found, key);
    assert!(s.keys.find_key("nope").await.unwrap().is_none());
    assert_eq!(s.keys.list_keys().await.unwrap().len(), 1);
    assert!(s.keys.revoke_key("key_1", t(1)).await.unwrap());
    assert!(!s.keys.revoke_key("key_1", t(2)).await.unwrap());
    assert!(s.keys.find_key("hash1").await.unwrap().is_none());
    assert!(!s.keys.has_active_keys().await.unwrap());
    assert_eq!(s.keys.list_keys().await.unwrap()[0].revoked_at, Some(t(1)));
}

/// Browser sessions: found by token hash while they last, never after their end, gone
/// on sign-out; ended ones are dropped when the next is stored.
pub async fn browser_sessions_last_until_they_end_or_sign_out(s: &Subject) {
    let session = |token: &str, key: &str, ends: i64| BrowserSession {
        token_sha256: token.into(),
        key_sha256: key.into(),
        expires_at: t(ends),
    };
    s.keys
        .create_session(&session("tok1", "key1", 10), t(0))
        .await
        .unwrap();
    s.keys
        .create_session(&session("tok2", "key2", 20), t(0))
        .await
        .unwrap();
    assert!(matches!(
        s.keys
            .create_session(&session("tok1", "key9", 30), t(0))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let found = |token: &'static str, at: i64| async move {
        s.keys.find_session(token, t(at)).await.unwrap()
    };
    assert_eq!(found("tok1", 9).await.as_deref(), Some("key1"));
    assert_eq!(found("tok1", 10).await, None, "a session ends at its end");
    assert_eq!(found("nope", 0).await, None);

    assert!(s.keys.end_session("tok2").await.unwrap());
    assert!(!s.keys.end_session("tok2").await.unwrap());
    assert_eq!(found("tok2", 0).await, None);

    // Storing a session at 10 drops tok1 (ended at 10): its token may be stored again.
    s.keys
        .create_session(&session("tok3", "key3", 40), t(10))
        .await
        .unwrap();
    s.keys
        .create_session(&session("tok1", "key4", 40), t(10))
        .await
        .unwrap();
    assert_eq!(found("tok1", 11).await.as_deref(), Some("key4"));
    assert_eq!(found("tok3", 11).await.as_deref(), Some("key3"));
}

fn snap(service: Service, task: &str, issue: Option<u64>, status: &str) -> TaskSnapshot {
    TaskSnapshot {
        service,
        task_id: task.to_owned(),
        issue_number: issue,
        status: status.to_owned(),
        phase: None,
        title: Some(format!("Task {task}")),
        project: Some("acme/shop".into()),
        updated_at: None,
        correlation: Correlation::default(),
        review_reason: None,
    }
}

fn list(tasks: Vec<TaskSnapshot>, complete: bool) -> TaskList {
    TaskList {
        tasks,
        complete,
        failures: Vec::new(),
    }
}

/// Hydration files a row under the key the service's own events use, so a later event
/// lands on the same item; a snapshot adds no timeline entry.
pub async fn snapshots_land_where_events_will(s: &Subject) {
    let rows = list(
        vec![
            snap(Service::Aifactory, "p:1", None, "in_progress"),
            snap(Service::Aifactory, "p:2", Some(150), "backlog"),
        ],
        true,
    );
    let mut changed = s
        .work
        .apply_snapshots(&tenant(), Service::Aifactory, &rows, t(0))
        .await
        .unwrap();
    changed.sort();
    let keys: Vec<&str> = changed.iter().map(CorrelationKey::as_str).collect();
    assert_eq!(keys, ["acme/shop#150", "af-p:1"]);
    let item = s.work.get(&tenant(), "af-p:1").await.unwrap().unwrap();
    assert_eq!(item.title.as_deref(), Some("Task p:1"));
    assert_eq!(item.stages.code.as_ref().unwrap().at, t(0));
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
        vec![snap(Service::Tfactory, "spec1", Some(8), "executing")],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::Tfactory, &rows, t(0))
        .await
        .unwrap();
    let again = s
        .work
        .apply_snapshots(&tenant(), Service::Tfactory, &rows, t(20))
        .await
        .unwrap();
    assert!(again.is_empty());
    let item = s.work.get(&tenant(), "8").await.unwrap().unwrap();
    assert_eq!(item.stages.test.as_ref().unwrap().at, t(0));
    let moved = list(
        vec![snap(Service::Tfactory, "spec1", Some(8), "evaluating")],
        true,
    );
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::Tfactory, &moved, t(21))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    let item = s.work.get(&tenant(), "8").await.unwrap().unwrap();
    assert_eq!(item.stages.test.as_ref().unwrap().status, "evaluating");
    assert_eq!(item.stages.test.as_ref().unwrap().at, t(21));
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
    let mut row = snap(Service::Aifactory, "p:3", Some(31), "in_progress");
    row.title = None;
    row.project = None;
    let rows = list(vec![row], true);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::Aifactory, &rows, t(9))
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
        .code
        .unwrap();
    assert_eq!(code.status, "done");
    assert_eq!(code.proof, cfactory_domain::proof::Proof::Proven);
}

/// A non-terminal stage is cleared only when a complete list no longer has its task;
/// terminal stages stay as history.
pub async fn only_a_complete_list_clears_vanished_tasks(s: &Subject) {
    let rows = list(
        vec![
            snap(Service::Aifactory, "gone", Some(1), "in_progress"),
            snap(Service::Aifactory, "finished", Some(2), "done"),
        ],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::Aifactory, &rows, t(0))
        .await
        .unwrap();
    let partial = list(Vec::new(), false);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::Aifactory, &partial, t(1))
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
            .code
            .is_some()
    );
    let empty = list(Vec::new(), true);
    let changed = s
        .work
        .apply_snapshots(&tenant(), Service::Aifactory, &empty, t(2))
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
            .code
            .is_none()
    );
    assert!(
        s.work
            .get(&tenant(), "2")
            .await
            .unwrap()
            .unwrap()
            .stages
            .code
            .is_some()
    );
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

/// The change feed hears every committed change, with its tenant.
pub async fn the_change_feed_hears_ingest_and_hydration(s: &Subject) {
    let recorder = Arc::new(Recorder::default());
    s.work.watch(recorder.clone()).await.unwrap();
    ingest_one(
        s,
        event_json(
            Some("x"),
            "61",
            "aifactory",
            "q",
            "in_progress",
            0,
            json!({}),
        ),
    )
    .await;
    let rows = list(
        vec![snap(Service::Pfactory, "s9", Some(62), "reviewing")],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::Pfactory, &rows, t(0))
        .await
        .unwrap();
    // Feeds that travel through the database arrive shortly after the commit.
    for _ in 0..100 {
        if recorder.0.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let heard = recorder.0.lock().unwrap().clone();
    assert!(
        heard.contains(&("default".to_owned(), vec!["61".to_owned()])),
        "{heard:?}"
    );
    assert!(
        heard.contains(&("default".to_owned(), vec!["acme/shop#62".to_owned()])),
        "{heard:?}"
    );
}

/// Service URLs: empty at first, stored, replaced, listed by name.
pub async fn service_urls_persist_and_replace(s: &Subject) {
    assert!(s.services.service_urls().await.unwrap().is_empty());
    let at = t(0);
    s.services
        .set_service_url("tfactory", "http://127.0.0.1:3123", at)
        .await
        .unwrap();
    s.services
        .set_service_url("aifactory", "http://127.0.0.1:3122", at)
        .await
        .unwrap();
    s.services
        .set_service_url("tfactory", "https://tf.example.com/base", at)
        .await
        .unwrap();
    assert_eq!(
        s.services.service_urls().await.unwrap(),
        vec![
            ("aifactory".to_owned(), "http://127.0.0.1:3122".to_owned()),
            (
                "tfactory".to_owned(),
                "https://tf.example.com/base".to_owned()
            ),
        ]
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
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.correlation_key.clone());
        seen.extend(page.iter().map(|i| i.correlation_key.to_string()));
    }
    assert_eq!(seen, vec!["10", "9", "af-3", "pf-s1", "zz-other"]);
    let merged = s.work.scan_items(&tenant(), None, 10).await.unwrap();
    let ten = merged
        .iter()
        .find(|i| i.correlation_key.as_str() == "10")
        .unwrap();
    assert!(ten.aliases.iter().any(|a| a.as_str() == "af-5"));
    let theirs = s.work.scan_items(&other, None, 10).await.unwrap();
    assert_eq!(theirs.len(), 1);
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
    let first = s.work.activity(&tenant(), 2, None).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = s
        .work
        .activity(&tenant(), 2, Some(first[1].entry.seq))
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].entry.event_id.as_ref().unwrap().as_str(), "a1");
    assert_eq!(s.work.activity(&other, 10, None).await.unwrap().len(), 1);
    assert!(
        s.work
            .activity(&TenantId::parse("nobody").unwrap(), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

fn audit_key() -> AuditKey {
    AuditKey::new(b"contract-test-secret-0123".to_vec()).expect("long enough")
}

fn audit_record(n: i64) -> AuditRecord {
    AuditRecord {
        at: t(n) + Duration::nanoseconds(123_456),
        actor: format!("key:k{n}"),
        kind: "service.url_changed".into(),
        correlation_key: (n % 2 == 0).then(|| "142".to_owned()),
        target: Some("aifactory".into()),
        method: Some("PUT".into()),
        endpoint: None,
        status_code: Some(200),
        ok: n % 3 != 0,
        action_id: None,
        payload_sha256: Some(audit::sha256_hex(format!("{n}").as_bytes())),
    }
}

/// Appends chain per tenant: sequences from 1, each entry links to the one before, pages
/// come newest first, and the stored chain verifies with the key that sealed it.
pub async fn audit_chains_append_page_and_verify_per_tenant(s: &Subject) {
    let key = audit_key();
    let other = TenantId::parse("acme").unwrap();
    let mut appended = Vec::new();
    for n in 0..5 {
        appended.push(
            s.audit
                .append(&key, &tenant(), audit_record(n))
                .await
                .unwrap(),
        );
    }
    let theirs = s.audit.append(&key, &other, audit_record(9)).await.unwrap();
    assert_eq!(theirs.seq, 1, "each tenant has its own chain");
    assert_eq!(theirs.prev_hash, audit::GENESIS);
    assert_eq!(
        appended.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(
        appended
            .windows(2)
            .all(|w| w[1].prev_hash == w[0].entry_hash)
    );

    let page = s.audit.audit_page(&tenant(), 2, None).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].seq, 5, "newest first");
    assert_eq!(
        page[0], appended[4],
        "an entry reads back exactly as sealed"
    );
    let older = s
        .audit
        .audit_page(&tenant(), 10, Some(page[1].id))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );

    let (rows, head) = s.audit.audit_chain(&tenant()).await.unwrap();
    let report = audit::verify(&key, &tenant(), &rows, head.as_ref());
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    assert_eq!(report.rows, 5);
    let (rows, head) = s.audit.audit_chain(&other).await.unwrap();
    assert_eq!(audit::verify(&key, &other, &rows, head.as_ref()).rows, 1);
    let (none, no_head) = s
        .audit
        .audit_chain(&TenantId::parse("nobody").unwrap())
        .await
        .unwrap();
    assert!(none.is_empty() && no_head.is_none());
}

/// Many appenders at once still make one unbroken chain.
pub async fn concurrent_audit_appends_never_fork_the_chain(s: &Subject) {
    let key = audit_key();
    let mut tasks = Vec::new();
    for n in 0..24 {
        let (audit, key) = (s.audit.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            audit.append(&key, &tenant(), audit_record(n)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let (rows, head) = s.audit.audit_chain(&tenant()).await.unwrap();
    let report = audit::verify(&key, &tenant(), &rows, head.as_ref());
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    assert_eq!(report.rows, 24);
    assert_eq!(head.unwrap().count, 24);
}

fn action(id: &str, tenant: &TenantId, minute: i64) -> PreparedAction {
    PreparedAction {
        id: id.to_owned(),
        kind: ActionKind::KickHandback,
        correlation_key: CorrelationKey::parse("142").unwrap(),
        target_service: Service::Aifactory,
        method: HttpMethod::Post,
        endpoint: Endpoint::parse("/api/tasks/t1/apply-correction").unwrap(),
        payload: json!({"fix_request_md": "fix", "confirm": true, "by": "{{approver}}"}),
        follow_ups: Vec::new(),
        rationale: "tests failed".into(),
        status: ActionStatus::Prepared,
        created_at: t(minute),
        expires_at: t(minute + 15),
        note: Some("note".into()),
        proposed_by: "local".into(),
        tenant: tenant.clone(),
        results: Vec::new(),
    }
}

/// Actions read back as saved, list newest first per tenant with a status filter, and a
/// transition is a compare-and-set: of many concurrent moves from `prepared`, one wins.
pub async fn actions_are_stored_listed_and_moved_exactly_once(s: &Subject) {
    let other = TenantId::parse("acme").unwrap();
    let first = action("act_1", &tenant(), 0);
    s.actions.save(&first).await.unwrap();
    s.actions
        .save(&action("act_2", &tenant(), 5))
        .await
        .unwrap();
    s.actions.save(&action("act_9", &other, 1)).await.unwrap();
    assert!(matches!(
        s.actions.save(&first).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        s.actions.get(&tenant(), "act_1").await.unwrap().unwrap(),
        first
    );
    assert!(s.actions.get(&other, "act_1").await.unwrap().is_none());
    let listed = s.actions.list(&tenant(), None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["act_2", "act_1"]
    );

    let mut racers = Vec::new();
    for _ in 0..8 {
        let actions = s.actions.clone();
        racers.push(tokio::spawn(async move {
            actions
                .transition(
                    &tenant(),
                    "act_1",
                    ActionStatus::Prepared,
                    ActionStatus::Executing,
                    Vec::new(),
                )
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        if r.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim");
    let result = StepResult {
        method: HttpMethod::Post,
        endpoint: Endpoint::parse("/api/tasks/t1/apply-correction").unwrap(),
        status_code: Some(200),
        ok: true,
        response: json!({"success": true}),
        error: None,
        duration_ms: 12,
    };
    let done = s
        .actions
        .transition(
            &tenant(),
            "act_1",
            ActionStatus::Executing,
            ActionStatus::Executed,
            vec![result.clone()],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, ActionStatus::Executed);
    assert_eq!(done.results, vec![result]);
    assert_eq!(
        s.actions.get(&tenant(), "act_1").await.unwrap().unwrap(),
        done
    );
    assert!(
        s.actions
            .transition(
                &tenant(),
                "act_1",
                ActionStatus::Prepared,
                ActionStatus::Rejected,
                Vec::new()
            )
            .await
            .unwrap()
            .is_none(),
        "an executed action is never moved again"
    );
    let executed = s
        .actions
        .list(&tenant(), Some(ActionStatus::Executed), 10)
        .await
        .unwrap();
    assert_eq!(executed.len(), 1);
    assert!(
        s.actions
            .transition(
                &other,
                "act_2",
                ActionStatus::Prepared,
                ActionStatus::Rejected,
                Vec::new()
            )
            .await
            .unwrap()
            .is_none(),
        "another tenant's id moves nothing"
    );
}

/// A conversation reads back as saved, replaced by a later save, and only for its tenant.
pub async fn conversations_persist_per_tenant(s: &Subject) {
    let doc = json!({"id": "conv_1", "messages": [{"role": "user", "content": "hi"}]});
    s.conversations
        .save_conversation(&tenant(), "conv_1", &doc, t(0))
        .await
        .unwrap();
    assert_eq!(
        s.conversations
            .load_conversation(&tenant(), "conv_1")
            .await
            .unwrap(),
        Some(doc)
    );
    let later = json!({"id": "conv_1", "messages": []});
    s.conversations
        .save_conversation(&tenant(), "conv_1", &later, t(1))
        .await
        .unwrap();
    assert_eq!(
        s.conversations
            .load_conversation(&tenant(), "conv_1")
            .await
            .unwrap(),
        Some(later)
    );
    assert!(
        s.conversations
            .load_conversation(&TenantId::parse("acme").unwrap(), "conv_1")
            .await
            .unwrap()
            .is_none()
    );
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

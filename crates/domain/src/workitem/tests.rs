//! The WorkItem rules, one behaviour per test.
use super::*;
use serde_json::json;

fn event(service: &str, status: &str, minute: i64, usage: Option<u64>) -> CompletionEvent {
    let mut v = json!({
        "id": format!("{service}-{status}-{minute}"),
        "time": (chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap()
            + Duration::minutes(minute)).to_rfc3339(),
        "correlation_key": "142", "service": service, "task_id": "t1",
        "status": status, "phase": "act"
    });
    if let Some(total) = usage {
        v["usage"] = json!({"total_tokens": total, "cost_usd": total as f64 / 1000.0,
            "workers": [{"worker_id": "w", "provider": "anthropic", "billing_mode": "api"}]});
    }
    CompletionEvent::parse(&v.to_string()).unwrap()
}

fn item() -> WorkItem {
    WorkItem::new(CorrelationKey::issue(142), Utc::now())
}

#[test]
fn a_triaged_run_with_a_failure_outcome_counts_as_a_failed_test() {
    let mut w = item();
    let now = Utc::now();
    w.apply_event(&event("aifactory", "done", 0, Some(100)), now);
    let failing = CompletionEvent::parse(
        r#"{"id":"tf-1","correlation_key":"142","service":"tfactory","task_id":"spec-1","status":"triaged","phase":"test","outcome":"failure","halt_reason":"tests_failed: 2 failing","time":"2026-06-01T12:05:00Z"}"#,
    )
    .unwrap();
    w.apply_event(&failing, now);
    assert!(w.stages.test().unwrap().failed());
    w.apply_event(&event("aifactory", "in_progress", 6, Some(10)), now);
    assert_eq!(w.handbacks, 1);
    let passing = CompletionEvent::parse(
        r#"{"id":"tf-2","correlation_key":"142","service":"tfactory","task_id":"spec-1","status":"triaged","phase":"test","outcome":"success","time":"2026-06-01T12:09:00Z"}"#,
    )
    .unwrap();
    w.apply_event(&passing, now);
    assert!(!w.stages.test().unwrap().failed());
}

#[test]
fn a_handback_counts_the_same_when_the_failing_verdict_arrives_last() {
    let now = Utc::now();
    let events = [
        event("aifactory", "done", 0, Some(100)),
        event("tfactory", "failed", 5, None),
        event("aifactory", "in_progress", 6, Some(10)),
    ];
    for order in [[0, 1, 2], [2, 0, 1], [0, 2, 1], [2, 1, 0]] {
        let mut w = item();
        for i in order {
            w.apply_event(&events[i], now);
        }
        assert_eq!(w.handbacks, 1, "order {order:?}");
    }
    // Coding only after the failing verdict judged nothing: no round trip.
    let mut w = item();
    w.apply_event(&events[2], now);
    w.apply_event(&events[1], now);
    assert_eq!(w.handbacks, 0);
}

#[test]
fn a_failed_test_followed_by_coding_counts_one_handback() {
    let mut w = item();
    let now = Utc::now();
    w.apply_event(&event("aifactory", "done", 0, Some(100)), now);
    w.apply_event(&event("tfactory", "failed", 5, None), now);
    assert_eq!(w.handbacks, 0);
    w.apply_event(&event("aifactory", "in_progress", 6, Some(10)), now);
    assert_eq!(w.handbacks, 1);
    // More coding in the same round trip is not another handback.
    w.apply_event(&event("aifactory", "done", 7, Some(50)), now);
    assert_eq!(w.handbacks, 1);
    w.apply_event(&event("tfactory", "failed", 9, None), now);
    w.apply_event(&event("aifactory", "in_progress", 10, Some(5)), now);
    assert_eq!(w.handbacks, 2);
    let task = w
        .usage_by_task
        .iter()
        .find(|t| t.service == Service::AIFACTORY)
        .unwrap();
    assert_eq!(task.runs, 3);
    assert_eq!(task.total().total_tokens, 100 + 50 + 5);
    assert_eq!(task.workers[0].billing_mode.as_deref(), Some("api"));
}

fn at(text: &str) -> String {
    format!("2026-06-01T{text}Z")
}

#[test]
fn an_unreadable_item_is_rebuilt_from_its_timeline_in_time_order() {
    let raws: Vec<String> = [
        af_run("r-2", "done", "12:30:00", 300, 0.3),
        af_run("r-1", "in_progress", "12:10:00", 100, 0.1),
    ]
    .iter()
    .map(|e| e.raw.clone())
    .chain(["not json".to_owned()])
    .collect();
    let key = CorrelationKey::parse("7").unwrap();
    let item = WorkItem::rebuild(key.clone(), &raws).unwrap();
    assert_eq!(item.event_count, 2, "what still parses");
    let code = item.stages.code().unwrap();
    assert_eq!(
        code.status, "done",
        "the latest by time, not by order given"
    );
    assert_eq!(item.created_at.to_rfc3339(), "2026-06-01T12:10:00+00:00");
    assert!(WorkItem::rebuild(key, &["{}".to_owned()]).is_none());
}

fn raw(v: serde_json::Value) -> CompletionEvent {
    CompletionEvent::parse(&v.to_string()).unwrap()
}

fn af_run(id: &str, status: &str, time: &str, tokens: u64, cost: f64) -> CompletionEvent {
    raw(
        json!({"id": id, "type": "io.factory.aifactory.completion", "time": at(time),
        "correlation_key": "142", "service": "aifactory", "task_id": "p:1",
        "status": status, "phase": "act",
        "usage": {"total_tokens": tokens, "cost_usd": cost,
            "workers": [{"worker_id": "w", "billing_mode": "api", "total_tokens": tokens, "cost_usd": cost}]},
        "evidence": {"proof_kind": "tokens", "total_tokens": tokens, "cost_usd": cost}}),
    )
}

#[test]
fn a_worker_event_never_decides_the_code_stage() {
    let mut w = item();
    let now = Utc::now();
    let worker = raw(json!({"id": "w1", "type": "io.factory.aifactory.worker",
        "time": at("12:00:00.500"), "correlation_key": "142", "service": "aifactory",
        "task_id": "p:1", "status": "worker_done", "phase": "worker",
        "worker": {"worker_id": "sub-A", "provider": "claude", "input_tokens": 300,
            "output_tokens": 40, "total_tokens": 340, "cost_usd": 0.3}}));
    let failed = raw(
        json!({"id": "t1", "type": "io.factory.aifactory.completion",
        "time": at("12:00:00.100"), "correlation_key": "142", "service": "aifactory",
        "task_id": "p:1", "status": "qa_failed", "phase": "act",
        "halt_reason": "no_progress: 3 rounds without a passing QA",
        "usage": {"total_tokens": 340, "cost_usd": 0.3}}),
    );
    w.apply_event(&worker, now);
    assert!(
        w.stages.code().is_none(),
        "a worker report alone opens no stage"
    );
    w.apply_event(&failed, now);
    let code = w.stages.code().unwrap();
    assert_eq!(code.status, "qa_failed");
    assert_eq!(code.status_class, StatusClass::Failed);
    assert_eq!(
        code.halt_reason.as_deref(),
        Some("no_progress: 3 rounds without a passing QA")
    );
    // The other order: terminal first, then the worker report dated after it.
    let mut w2 = item();
    w2.apply_event(&failed, now);
    w2.apply_event(&worker, now);
    let code = w2.stages.code().unwrap();
    assert_eq!(code.status, "qa_failed");
    assert_eq!(code.phase, "act");
    assert_eq!(code.progress_at, Some(worker.time));
    assert_eq!(w2.usage_total.total_tokens, 340);
    assert_eq!(
        w2.usage_by_task[0].workers[0].worker_id.as_deref(),
        Some("sub-A")
    );
}

#[test]
fn build_runs_sum_by_time_whatever_the_delivery_order() {
    let run1_snap = af_run("r1s", "in_progress", "12:00:00", 5_000, 0.1);
    let run1 = af_run("r1", "done", "12:01:00", 20_000, 0.30);
    let run2_snap = af_run("r2s", "in_progress", "12:05:00", 500, 0.01);
    let run2 = af_run("r2", "done", "12:06:00", 2_000, 0.03);
    let orders: [[&CompletionEvent; 4]; 4] = [
        [&run1_snap, &run1, &run2_snap, &run2],
        [&run2_snap, &run2, &run1_snap, &run1],
        [&run2, &run1, &run2_snap, &run1_snap],
        [&run1, &run2, &run1_snap, &run2_snap],
    ];
    for order in orders {
        let mut w = item();
        for e in order {
            w.apply_event(e, Utc::now());
        }
        let task = &w.usage_by_task[0];
        assert_eq!(task.runs, 2, "{order:?}");
        assert_eq!(w.usage_total.total_tokens, 22_000);
        assert!((w.usage_total.cost_usd - 0.33).abs() < 1e-9);
        assert_eq!(
            w.stages.code().unwrap().event_id.as_ref().unwrap().as_str(),
            "r2"
        );
    }
}

#[test]
fn a_service_reporting_running_totals_counts_its_latest_figure() {
    let tf = |id: &str, time: &str, tokens: u64| {
        raw(json!({"id": id, "time": at(time), "correlation_key": "142",
            "service": "tfactory", "task_id": "spec", "status": "triaged", "phase": "test",
            "outcome": "success", "usage": {"total_tokens": tokens, "cost_usd": 0.0}}))
    };
    let mut w = item();
    w.apply_event(&tf("b", "12:10:00", 900), Utc::now());
    w.apply_event(&tf("a", "12:00:00", 400), Utc::now());
    w.apply_event(&tf("c", "12:20:00", 300), Utc::now());
    assert_eq!(
        w.usage_total.total_tokens, 300,
        "the latest total by time, never a sum"
    );
}

#[test]
fn unmetered_dollars_are_notional() {
    let e = raw(
        json!({"id": "x", "time": at("12:00:00"), "correlation_key": "142",
        "service": "aifactory", "task_id": "p:1", "status": "done", "phase": "act",
        "usage": {"total_tokens": 900, "cost_usd": 0.5, "budget": {"limit_usd": 1.0, "spent_usd": 1.2, "exceeded": true},
            "workers": [
                {"worker_id": "a", "billing_mode": "subscription", "total_tokens": 340, "cost_usd": 0.3},
                {"worker_id": "b", "billing_mode": "local", "total_tokens": 500, "cost_usd": 0.0},
                {"worker_id": "c", "billing_mode": "api", "total_tokens": 60, "cost_usd": 0.2}]}}),
    );
    let mut w = item();
    w.apply_event(&e, Utc::now());
    assert!((w.usage_total.cost_usd - 0.2).abs() < 1e-9);
    assert!((w.usage_total.notional_cost_usd - 0.3).abs() < 1e-9);
    assert!(w.budget.unwrap().exceeded);
}

#[test]
fn a_human_review_verdict_is_review_and_its_correction_a_handback() {
    let mut w = item();
    let now = Utc::now();
    w.apply_event(&af_run("r1", "done", "12:00:00", 100, 0.1), now);
    let review = raw(
        json!({"id": "tf1", "time": at("12:05:00"), "correlation_key": "142",
        "service": "tfactory", "task_id": "spec", "status": "triaged", "phase": "test",
        "outcome": "human_review", "halt_reason": "dependency_review: new package",
        "evidence": {"proof_kind": "tests", "verdicts": 4, "accepted": 4}}),
    );
    w.apply_event(&review, now);
    let test = w.stages.test().unwrap();
    assert_eq!(test.status_class, StatusClass::Review);
    assert_eq!(test.proof, Proof::NotApplicable);
    let worker = raw(json!({"id": "w2", "type": "io.factory.aifactory.worker",
        "time": at("12:07:00"), "correlation_key": "142", "service": "aifactory",
        "task_id": "p:1", "status": "worker_done", "phase": "worker",
        "worker": {"worker_id": "a", "total_tokens": 10}}));
    w.apply_event(&worker, now);
    assert_eq!(w.handbacks, 0, "a worker report is not the correction run");
    w.apply_event(&af_run("r2", "done", "12:07:00", 10, 0.01), now);
    assert_eq!(w.handbacks, 1);
    assert_eq!(w.usage_total.total_tokens, 110);
}

#[test]
fn the_event_of_a_state_the_api_showed_first_still_shows_its_details() {
    let snap = |status: &str, reason: &str| TaskSnapshot {
        service: Service::AIFACTORY,
        task_id: "p:1".into(),
        issue_number: Some(142),
        status: status.into(),
        phase: None,
        title: None,
        project: None,
        updated_at: None,
        correlation: Default::default(),
        review_reason: Some(reason.into()),
    };
    let failed = raw(
        json!({"id": "t1", "time": at("12:00:00"), "correlation_key": "142",
        "service": "aifactory", "task_id": "p:1", "status": "qa_failed", "phase": "act",
        "halt_reason": "no_progress: stuck on QA"}),
    );
    let flagged = raw(
        json!({"id": "t2", "time": at("12:00:00"), "correlation_key": "142",
        "service": "aifactory", "task_id": "p:1", "status": "human_review", "phase": "act",
        "injection_scan": {"verdict": "flagged", "reason": "prompt in issue body"}}),
    );
    let read_at = DateTime::parse_from_rfc3339(&at("12:00:05"))
        .unwrap()
        .to_utc();
    for (api, event, status) in [
        (snap("human_review", "qa_rejected"), &failed, "qa_failed"),
        (snap("human_review", "errors"), &flagged, "human_review"),
    ] {
        // The API's answer first, then the event: the event's details show.
        let mut w = item();
        w.apply_snapshot(&api, read_at, read_at);
        w.apply_event(event, read_at);
        let code = w.stages.code().unwrap();
        assert_eq!(code.status, status);
        assert_eq!(code.event_id, event.id);
        // The other order: the snapshot never hides the event.
        let mut w2 = item();
        w2.apply_event(event, read_at);
        w2.apply_snapshot(&api, read_at, read_at);
        let code2 = w2.stages.code().unwrap();
        assert_eq!(code2.status, status);
        assert_eq!(code2.injection_scan, event.injection_scan);
    }
    assert!(item_after(&failed).stages.code().unwrap().failed());
}

fn item_after(e: &CompletionEvent) -> WorkItem {
    let mut w = item();
    w.apply_event(e, Utc::now());
    w
}

#[test]
fn liveness_flags_only_silent_running_stages() {
    let mut w = item();
    let now = Utc::now();
    w.apply_event(&event("aifactory", "in_progress", 0, None), now);
    let t0 = w.stages.code().unwrap().at;
    w.refresh_liveness(t0 + Duration::seconds(901), Duration::seconds(900));
    assert!(w.liveness.stalled);
    assert_eq!(w.liveness.active_stage, Some(StageName::CODE));
    assert_eq!(w.liveness.last_activity_age_seconds, Some(901));
    w.refresh_liveness(t0 + Duration::seconds(899), Duration::seconds(900));
    assert!(!w.liveness.stalled);
    w.apply_event(&event("aifactory", "human_review", 1, None), now);
    w.refresh_liveness(t0 + Duration::days(2), Duration::seconds(900));
    assert!(!w.liveness.stalled, "review is parked, not stalled");
}

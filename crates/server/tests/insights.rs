//! Insights over the API: rollups, tokens, anomalies, needs-you, search and the activity
//! feed, against the real binary and store.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Store, event};
use serde_json::{Value, json};

/// Ingests the fleet below and returns when the server's insights have caught up.
async fn fleet(server: &Server, key: Option<&str>) {
    let now = chrono::Utc::now();
    let at = |minutes_ago: i64| (now - chrono::Duration::minutes(minutes_ago)).to_rfc3339();
    let mut events = Vec::new();

    // 100: planned, coded on the metered API, tested and passed.
    let mut plan = event("p100", "100", "pfactory", "s-100", "emitted", &at(60));
    plan["title"] = json!("Add retry to the uploader");
    plan["evidence"] = json!({"proof_kind": "issues", "epic_issue": 100, "child_count": 2});
    events.push(plan);
    let mut code = event("c100", "100", "aifactory", "t-100", "done", &at(50));
    code["usage"] = json!({"total_tokens": 1000, "input_tokens": 800, "output_tokens": 200,
        "cost_usd": 2.5, "model": "claude-x",
        "workers": [{"worker_id": "w1", "provider": "anthropic", "tokens": 1000,
                     "cost_usd": 2.5, "billing_mode": "api"}]});
    code["evidence"] = json!({"proof_kind": "tokens", "total_tokens": 1000,
        "phases_completed": ["act", "pr"]});
    events.push(code);
    let mut test = event("x100", "100", "tfactory", "spec-100", "passed", &at(40));
    test["evidence"] = json!({"proof_kind": "tests", "verdict": "pass", "tests_executed": 12});
    events.push(test);

    // 101: coded on a subscription, waiting in review.
    let mut review = event("c101", "101", "aifactory", "t-101", "in_review", &at(30));
    review["title"] = json!("Dark mode toggle");
    review["usage"] = json!({"total_tokens": 500,
        "workers": [{"worker_id": "w2", "provider": "claude-code", "tokens": 500,
                     "cost_usd": 9.0, "billing_mode": "subscription"}]});
    events.push(review);

    // 102: its tests failed.
    events.push(event(
        "x102",
        "102",
        "tfactory",
        "spec-102",
        "failed",
        &at(20),
    ));

    // af-7: a coding task whose input scan flagged an injection.
    let mut flagged = event("c7", "af-7", "aifactory", "7", "running", &at(1));
    flagged["injection_scan"] =
        json!({"verdict": "flagged", "reason": "ignore previous instructions"});
    events.push(flagged);

    let (status, body) = server
        .post_raw("/api/events", &Value::Array(events).to_string(), key)
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    // The read model applies commits in the background; wait until it has all four.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, r) = server.get_with("/api/rollups", key).await;
        if r["items"] == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollups never saw the fleet: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kinds_for<'a>(anomalies: &'a Value, key: &str) -> Vec<&'a str> {
    anomalies["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["correlation_key"] == key)
        .map(|a| a["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn rollups_and_tokens_count_stages_latency_and_only_metered_dollars() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    fleet(&server, None).await;

    let (status, r) = server.get("/api/rollups").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["events_total"], 6);
    assert_eq!(r["by_stage"]["test"], 2, "{r}");
    assert_eq!(r["by_stage"]["code"], 2, "{r}");
    assert_eq!(r["by_status_class"]["failed"], 1);
    assert_eq!(r["by_status_class"]["review"], 1);
    assert_eq!(
        r["lead_time"]["samples"], 2,
        "100 passed and 102 failed: both ended"
    );
    // 100 ran 20 minutes from its plan to its test verdict; 102 had one event.
    assert_eq!(r["lead_time"]["max_seconds"], 1200.0, "{r}");
    assert_eq!(r["latency_by_stage"]["test"]["samples"], 2);

    let by_mode = r["cost"]["by_billing_mode"].as_array().unwrap();
    let mode = |m: &str| by_mode.iter().find(|b| b["key"] == m).unwrap().clone();
    assert_eq!(mode("api")["metered"], true);
    assert_eq!(mode("api")["cost_usd"], 2.5);
    assert_eq!(mode("subscription")["metered"], false);
    assert_eq!(
        mode("subscription")["cost_usd"],
        Value::Null,
        "never a dollar figure"
    );
    assert_eq!(mode("subscription")["total_tokens"], 500);
    let by_service = r["cost"]["by_service"].as_array().unwrap();
    let tf = by_service.iter().find(|b| b["key"] == "tfactory").unwrap();
    assert_eq!(tf["instrumented"], false, "{tf}");
    assert_eq!(
        tf["total_tokens"],
        Value::Null,
        "not instrumented is not zero"
    );
    assert!(!r["daily"].as_array().unwrap().is_empty());

    // A window that ends before the fleet started holds none of its spend.
    let (status, old) = server
        .get("/api/tokens?since=2020-01-01&until=2020-01-02")
        .await;
    assert_eq!(status, 200, "{old}");
    assert_eq!(old["cost"]["total"]["records"], 0);
    let (_, tokens) = server.get("/api/tokens").await;
    assert_eq!(tokens["cost"]["total"]["cost_usd"], 2.5);
    assert_eq!(tokens["cost_group_counts"]["by_workitem"], 2);
    let (_, top1) = server.get("/api/tokens?top=1").await;
    assert_eq!(top1["cost"]["by_workitem"].as_array().unwrap().len(), 1);
    assert_eq!(top1["cost"]["by_workitem"][0]["key"], "100");

    for (path, field) in [
        ("/api/rollups?since=yesterday", "since"),
        ("/api/rollups?since=2026-02-02&until=2026-02-01", "until"),
        ("/api/tokens?top=0", "top"),
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}");
    }
}

#[tokio::test]
async fn anomalies_needs_you_search_and_activity_answer_from_live_data() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    fleet(&server, None).await;

    let (status, a) = server.get("/api/anomalies").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["count"], a["anomalies"].as_array().unwrap().len());
    assert!(kinds_for(&a, "102").contains(&"failure"), "{a}");
    assert!(kinds_for(&a, "af-7").contains(&"injection_flagged"), "{a}");
    assert!(
        kinds_for(&a, "101").is_empty(),
        "a review is parked, not wrong: {a}"
    );
    let failure = a["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "failure")
        .unwrap();
    assert!(failure["evidence"].is_object() && failure["detail"].is_string());
    let (_, only) = server.get("/api/anomalies?kind=failure").await;
    assert!(
        only["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["kind"] == "failure")
    );
    let (_, one) = server.get("/api/anomalies?correlation_key=af-7").await;
    assert!(one["count"].as_u64().unwrap() >= 1);
    assert!(kinds_for(&one, "102").is_empty());
    let (status, bad) = server.get("/api/anomalies?severity=loud").await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("severity")));

    let (_, needs) = server.get("/api/needs-you").await;
    let keys: Vec<&str> = needs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["correlation_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"101") && keys.contains(&"af-7"), "{needs}");
    assert!(
        !keys.contains(&"100"),
        "a finished item needs nobody: {needs}"
    );
    let (_, count) = server.get("/api/needs-you/count").await;
    assert_eq!(count["count"], needs["count"]);

    let (_, found) = server.get("/api/search?q=retry").await;
    assert_eq!(found["results"][0]["correlation_key"], "100", "{found}");
    assert_eq!(found["results"][0]["matched_on"], "title");
    let (_, exact) = server.get("/api/search?q=101").await;
    assert_eq!(exact["results"][0]["correlation_key"], "101", "{exact}");
    let (_, by_spec) = server.get("/api/search?q=spec-102").await;
    assert_eq!(by_spec["results"][0]["correlation_key"], "102", "{by_spec}");
    let (status, bad) = server.get("/api/search?q=").await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("q")));

    let (_, page1) = server.get("/api/activity?limit=4").await;
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["correlation_key"], "af-7", "newest first: {page1}");
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64())
    );
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = server
        .get(&format!("/api/activity?limit=4&cursor={cursor}"))
        .await;
    let rest = page2["items"].as_array().unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(page2["next_cursor"], Value::Null);
    assert_eq!(rest[1]["title"], "Add retry to the uploader");
    let (status, bad) = server.get("/api/activity?cursor=nope").await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("cursor")));
}

#[tokio::test]
async fn insights_see_only_the_callers_tenant_and_need_the_read_scope() {
    let store = Store::postgres().await;
    let mine = store.create_key("read,ingest", Some("acme"));
    let theirs = store.create_key("read", Some("globex"));
    let ingest_only = store.create_key("ingest", Some("acme"));
    let server = Server::start(&store);
    fleet(&server, Some(&mine)).await;

    let (_, r) = server.get_with("/api/rollups", Some(&theirs)).await;
    assert_eq!(r["items"], 0, "{r}");
    let (_, s) = server.get_with("/api/search?q=retry", Some(&theirs)).await;
    assert_eq!(s["count"], 0);
    let (_, feed) = server.get_with("/api/activity", Some(&theirs)).await;
    assert!(feed["items"].as_array().unwrap().is_empty());
    let (_, n) = server.get_with("/api/needs-you/count", Some(&theirs)).await;
    assert_eq!(n["count"], 0);
    let (_, s) = server.get_with("/api/search?q=retry", Some(&mine)).await;
    assert_eq!(s["count"], 1);

    for path in [
        "/api/rollups",
        "/api/anomalies",
        "/api/needs-you",
        "/api/activity",
    ] {
        let (status, _) = server.get_with(path, Some(&ingest_only)).await;
        assert_eq!(status, 403, "{path}");
        let (status, _) = server.get_with(path, None).await;
        assert_eq!(status, 401, "{path}");
    }
}

#[tokio::test]
async fn a_restarted_server_rebuilds_its_insights_from_the_store() {
    let store = Store::postgres().await;
    let server = Server::start(&store);
    fleet(&server, None).await;
    let (_, before) = server.get("/api/anomalies").await;
    server.terminate();

    let server = Server::start(&store);
    let (status, after) = server.get("/api/anomalies").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["count"], before["count"]);
    let (_, r) = server.get("/api/rollups").await;
    assert_eq!(r["items"], 4);
    let (_, s) = server.get("/api/search?q=dark").await;
    assert_eq!(s["results"][0]["correlation_key"], "101");
}

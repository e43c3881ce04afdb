//! `cfactory demo` end to end: the simulator drives every scenario through the real
//! webhooks, REST and WebSocket surfaces, and the cockpit converges on the WorkItems
//! those scenarios must produce.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Store};
use serde_json::Value;

fn stages(item: &Value) -> impl Iterator<Item = &Value> {
    ["plan", "code", "test"]
        .into_iter()
        .filter_map(|s| item["stages"].get(s).filter(|v| !v.is_null()))
}

/// What the scenarios must have left in the cockpit; the names of those still missing.
fn missing(items: &[Value]) -> Vec<&'static str> {
    let any = |f: &dyn Fn(&Value) -> bool| items.iter().any(f);
    let mut missing = Vec::new();
    if !any(&|i| {
        i["aliases"].as_array().is_some_and(|a| {
            a.iter()
                .any(|k| k.as_str().is_some_and(|k| k.starts_with("af-")))
        })
    }) {
        missing.push("rekey: an af- key merged into an issue");
    }
    if !any(&|i| stages(i).any(|s| s["proof"] == "unproven")) {
        missing.push("unproven: a pass without evidence");
    }
    if !any(&|i| i["stages"]["code"]["status"] == "qa_failed") {
        missing.push("failure: a failed coding task");
    }
    if !any(&|i| i["stages"]["test"]["status"] == "stuck") {
        missing.push("stuck: a spec stuck after its correction cycles");
    }
    if !any(&|i| i["handbacks"].as_u64().is_some_and(|n| n >= 1)) {
        missing.push("handback: a failed test sent back to coding");
    }
    if !any(&|i| stages(i).any(|s| s["injection_scan"]["verdict"] == "flagged")) {
        missing.push("injection: a flagged scan");
    }
    if !any(&|i| {
        i["stages"]["test"]["proof"] == "proven" && i["stages"]["plan"]["status"] == "emitted"
    }) {
        missing.push("happy: a plan emitted, coded and proven by tests");
    }
    if !any(&|i| {
        i["correlation_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("pf-"))
    }) {
        missing.push("hydration: a plan known only from PFactory's REST list");
    }
    missing
}

#[tokio::test]
async fn the_demo_converges_on_every_scenario() {
    let store = Store::sqlite();
    let server = Server::run(
        "demo",
        &store,
        &["--speed", "10", "--poll-interval-seconds", "1"],
        &[],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left;
    loop {
        let (status, page) = server.get("/api/workitems?limit=500").await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap().clone();
        left = missing(&items);
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(left.is_empty(), "never seen: {left:?}");

    let (_, services) = server.get("/api/services").await;
    for s in services["services"].as_array().unwrap() {
        assert_eq!(s["health"]["status"], "online", "{s}");
    }

    // The execution graph of an item whose furthest stage is at TFactory.
    let (_, page) = server.get("/api/workitems?stage=test&limit=1").await;
    let key = page["items"][0]["correlation_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Keys of issues with a known repository read `owner/repo#N`: encode them for a path.
    let path_key = key.replace('/', "%2F").replace('#', "%23");
    let (status, graph) = server
        .get(&format!("/api/workitems/{path_key}/process"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(graph["available"], true, "{graph}");
    assert_eq!(graph["service"], "tfactory");
    assert!(!graph["nodes"].as_array().unwrap().is_empty());

    let status = server.terminate();
    assert!(status.success(), "demo exit {status:?}");
}

//! `cfactory demo` end to end: the simulator drives every scenario through the real
//! webhooks, REST and WebSocket surfaces, and the cockpit converges on the WorkItems
//! those scenarios must produce.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Store, event};
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

/// The bytes of SQLite's files for the database at `db` (the file, its log, its index).
fn sqlite_files(db: &std::path::Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-shm"]
        .into_iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", db.display());
            let bytes = std::fs::read(&path).ok();
            (path, bytes)
        })
        .collect()
}

/// Posts a real-looking event for `key` and checks it is accepted.
async fn ingest(server: &Server, id: &str, key: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let body = event(
        id,
        key,
        "aifactory",
        &format!("proj:{key}"),
        "running",
        &now,
    );
    let (status, answer) = server
        .post("/api/events/completion", &body.to_string())
        .await;
    assert_eq!(status, 202, "{answer}");
}

async fn status_of(server: &Server, key: &str) -> u16 {
    server.get(&format!("/api/workitems/{key}")).await.0
}

/// Simulated items never mix with real ones: the demo runs on its own store under the
/// data dir, leaves `serve`'s database byte for byte as it was, starts empty unless
/// `--keep`, and keeps its items with it.
#[tokio::test]
async fn the_demo_keeps_a_store_of_its_own() {
    let store = Store::sqlite();
    let serve_db = store.data_dir.path().join("cf.db");
    let demo_db = store.data_dir.path().join("demo").join("cfactory.db");

    let serve = Server::run("serve", &store, &[], &[]).unwrap();
    ingest(&serve, "real-1", "880001").await;
    assert!(serve.terminate().success());
    let before = sqlite_files(&serve_db);
    assert!(before[0].1.is_some(), "serve wrote its database");

    // First demo run: simulated items and one marker item land in the demo's store.
    let demo = Server::run("demo", &store, &["--speed", "10"], &[]).unwrap();
    assert_eq!(
        status_of(&demo, "880001").await,
        404,
        "the demo sees serve's item"
    );
    ingest(&demo, "marker-1", "880142").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = demo.get("/api/workitems?limit=500").await;
        if page["items"].as_array().is_some_and(|i| i.len() >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator wrote nothing: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = demo.log.lock().unwrap().join("\n");
    assert!(
        log.contains("the configured database") && log.contains("is not used"),
        "{log}"
    );
    assert!(demo.terminate().success());
    assert!(demo_db.is_file(), "no store at {}", demo_db.display());
    assert_eq!(
        sqlite_files(&serve_db),
        before,
        "the demo changed serve's database"
    );

    // serve still holds its one real item and nothing simulated.
    let serve = Server::run("serve", &store, &[], &[]).unwrap();
    let (_, page) = serve.get("/api/workitems?limit=500").await;
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["correlation_key"].as_str())
        .collect();
    assert_eq!(keys, ["880001"], "{page}");
    assert!(serve.terminate().success());

    // A start without --keep begins empty; the marker sent during it stays for --keep.
    let demo = Server::run("demo", &store, &["--speed", "10"], &[]).unwrap();
    assert_eq!(
        status_of(&demo, "880142").await,
        404,
        "the last run's item is back"
    );
    ingest(&demo, "marker-2", "880142").await;
    assert!(demo.terminate().success());

    let demo = Server::run("demo", &store, &["--speed", "10", "--keep"], &[]).unwrap();
    assert_eq!(
        status_of(&demo, "880142").await,
        200,
        "--keep lost the item"
    );
    assert!(demo.terminate().success());
}

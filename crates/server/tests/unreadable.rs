//! One unreadable row harms nothing else: a work item whose stored document no longer
//! decodes (an older version's, a hand edit, damage) is left out of the read model, lists
//! and insights, which say how many they left out; `/ready` stays 200; a `GET` of it
//! answers a problem saying so; `cfactory doctor` lists it; and its next event rebuilds
//! it from its timeline.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Store, event};
use serde_json::Value;

const T0: &str = "2026-06-01T12:00:00Z";

/// Polls `path` until `done` holds, for at most 10 s (the read model follows changes in
/// the background).
async fn eventually(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = server.get(path).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never settled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_unreadable_item_harms_nothing_else(store: Store) {
    let server = Server::start(&store);
    for (id, key, status, minute) in [
        ("u1", "901", "in_progress", "12:00"),
        ("u2", "901", "human_review", "12:05"),
        ("u3", "902", "human_review", "12:06"),
    ] {
        let time = T0.replace("12:00", minute);
        let e = event(id, key, "aifactory", &format!("t-{key}"), status, &time);
        assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
    }
    server.terminate();
    store
        .run_sql(
            "UPDATE workitems SET doc = '{\"written_by\": \"a future version\"}' WHERE key = '901'",
        )
        .await;

    let (status, out, err) = store.cli(&["doctor"], None);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(out.contains("work item default/901"), "{out}");
    assert!(!out.contains("902"), "{out}");

    let server = Server::start(&store);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/ready").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the rest loads and the server is ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, list) = server.get("/api/workitems").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(list["unreadable"], 1, "{list}");
    let keys: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["correlation_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["902"]);
    let (status, needs) = server.get("/api/needs-you").await;
    assert_eq!(status, 200);
    assert_eq!(needs["unreadable"], 1, "{needs}");
    assert_eq!(needs["count"], 1, "only 902 is counted: {needs}");
    let (status, problem) = server.get("/api/workitems/901").await;
    assert_eq!(status, 500);
    assert_eq!(problem["type"], "https://cfactory.dev/problems/unreadable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be read"),
        "{problem}"
    );
    assert_eq!(server.get("/api/workitems/902").await.0, 200);

    // Its next event rebuilds it from its timeline.
    let e = event(
        "u4",
        "901",
        "aifactory",
        "t-901",
        "done",
        &T0.replace("12:00", "12:10"),
    );
    let (status, answer) = server.post("/api/events", &e.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let (status, item) = server.get("/api/workitems/901").await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(
        item["event_count"], 3,
        "two from the timeline and the new one"
    );
    assert_eq!(item["stages"]["code"]["status"], "done");
    eventually(&server, "/api/workitems", |l| {
        l["unreadable"] == 0 && l["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    eventually(&server, "/api/needs-you", |n| n["unreadable"] == 0).await;
    server.terminate();
    let (status, out, _) = store.cli(&["doctor"], None);
    assert!(status.success(), "{out}");
}

#[tokio::test]
async fn sqlite_an_unreadable_item_harms_nothing_else() {
    an_unreadable_item_harms_nothing_else(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_an_unreadable_item_harms_nothing_else() {
    an_unreadable_item_harms_nothing_else(Store::postgres().await).await;
}

//! One unreadable row harms nothing else: a work item whose stored document no longer
//! decodes (an older version's, a hand edit, damage) is left out of the read model, lists
//! and insights, which say how many they left out; `/ready` stays 200; a `GET` of it
//! answers a problem saying so; `cfactory doctor` lists it; and its next event rebuilds
//! it from its timeline. An action or an event that no longer decodes is likewise left
//! out of the action list or the timeline, which count it; a `GET` of the action answers
//! the problem; and `cfactory doctor` lists each.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Store, event};
use serde_json::{Value, json};

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

/// The ids of a list's entries (actions, timeline events), in order.
fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no `{field}` in {list}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn an_unreadable_action_or_event_harms_nothing_else(store: Store) {
    // Proposals are stored and never sent here: the AIFactory URL is never called.
    let args = [
        "--aifactory-url",
        "http://127.0.0.1:9",
        "--poll-interval-seconds",
        "0",
    ];
    let server = Server::start_with(&store, &args, &[]).unwrap();
    let ago = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let events = vec![
        event("s903", "903", "aifactory", "t903", "stuck", &ago(60)),
        event("s904", "904", "aifactory", "t904", "stuck", &ago(60)),
        event("e1", "905", "aifactory", "t905", "in_progress", &ago(50)),
        event("e2", "905", "aifactory", "t905", "in_progress", &ago(40)),
        event("e3", "905", "aifactory", "t905", "done", &ago(30)),
    ];
    let (status, body) = server
        .post("/api/events", &Value::Array(events).to_string())
        .await;
    assert!(status == 200 || status == 202, "{body}");
    let mut proposed = Vec::new();
    for key in ["903", "904"] {
        let body = json!({"kind": "recover", "correlation_key": key});
        let (status, action) = server.post("/api/actions/propose", &body.to_string()).await;
        assert_eq!(status, 201, "{action}");
        proposed.push(action["id"].as_str().unwrap().to_owned());
    }
    let (bad, good) = (proposed[0].clone(), proposed[1].clone());
    let (status, timeline) = server.get("/api/workitems/905/timeline").await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(ids(&timeline, "events"), ["e1", "e2", "e3"]);
    assert_eq!(timeline["unreadable"], 0, "{timeline}");
    let damaged_seq = timeline["events"][1]["seq"].as_i64().unwrap();
    let (_, list) = server.get("/api/actions").await;
    assert_eq!(list["unreadable"], 0, "{list}");
    server.terminate();

    store
        .run_sql(&format!(
            "UPDATE actions SET doc = '{{\"written_by\": \"a future version\"}}' WHERE id = '{bad}'"
        ))
        .await;
    store
        .run_sql("UPDATE events SET raw = 'not json, hand-edited' WHERE event_id = 'e2'")
        .await;
    store
        .run_sql("UPDATE events SET service = 'a-retired-service' WHERE event_id = 's903'")
        .await;

    let (status, out, err) = store.cli(&["doctor"], None);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(out.contains(&format!("action default/{bad}: ")), "{out}");
    assert!(!out.contains(&good), "{out}");
    assert!(
        out.contains(&format!("event default/{damaged_seq}: on work item 905: ")),
        "{out}"
    );
    assert!(out.contains("on work item 903: "), "{out}");
    assert_eq!(out.lines().count(), 3, "nothing else is unreadable: {out}");
    assert!(err.contains("doctor: 3 unreadable rows"), "{err}");

    let server = Server::start_with(&store, &args, &[]).unwrap();
    let (status, list) = server.get("/api/actions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list, "actions"), [good.as_str()]);
    assert_eq!(list["unreadable"], 1, "{list}");
    let (status, list) = server.get("/api/actions?status=prepared").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["unreadable"], 1,
        "the damaged row is still `prepared`: {list}"
    );
    let (status, problem) = server.get(&format!("/api/actions/{bad}")).await;
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "https://cfactory.dev/problems/unreadable");
    assert!(
        problem["detail"].as_str().unwrap().contains(&bad),
        "{problem}"
    );
    let (status, action) = server.get(&format!("/api/actions/{good}")).await;
    assert_eq!(status, 200, "{action}");
    let (status, offered) = server.get("/api/workitems/904/actions").await;
    assert_eq!(status, 200, "{offered}");
    assert_eq!(ids(&offered, "actions"), [good.as_str()]);

    let (status, timeline) = server.get("/api/workitems/905/timeline").await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(ids(&timeline, "events"), ["e1", "e3"]);
    assert_eq!(timeline["unreadable"], 1, "{timeline}");
    assert_eq!(timeline["event_count"], 3, "{timeline}");
    // Paged one event at a time, the damaged one is a page of its own with nothing in it,
    // and the cursor moves past it.
    let mut seen = Vec::new();
    let mut left_out = 0;
    let mut path = "/api/workitems/905/timeline?limit=1".to_owned();
    for _ in 0..5 {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page, "events"));
        left_out += page["unreadable"].as_u64().unwrap();
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/workitems/905/timeline?limit=1&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["e1", "e3"]);
    assert_eq!(left_out, 1);
    let (status, item) = server.get("/api/workitems/905").await;
    assert_eq!(status, 200, "{item}");

    // The activity feed leaves the event whose service cannot be read out and counts
    // it, whole and paged; the one with damaged text has its columns and stays.
    let (status, feed) = server.get("/api/activity").await;
    assert_eq!(status, 200, "{feed}");
    assert_eq!(ids(&feed, "items"), ["e3", "e2", "e1", "s904"]);
    assert_eq!(feed["unreadable"], 1, "{feed}");
    let mut seen = Vec::new();
    let mut left_out = 0;
    let mut path = "/api/activity?limit=2".to_owned();
    for _ in 0..5 {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page, "items"));
        left_out += page["unreadable"].as_u64().unwrap();
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/activity?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["e3", "e2", "e1", "s904"]);
    assert_eq!(left_out, 1);
    server.terminate();
}

#[tokio::test]
async fn sqlite_an_unreadable_action_or_event_harms_nothing_else() {
    an_unreadable_action_or_event_harms_nothing_else(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_an_unreadable_action_or_event_harms_nothing_else() {
    an_unreadable_action_or_event_harms_nothing_else(Store::postgres().await).await;
}

#[tokio::test]
async fn sqlite_an_unreadable_item_harms_nothing_else() {
    an_unreadable_item_harms_nothing_else(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_an_unreadable_item_harms_nothing_else() {
    an_unreadable_item_harms_nothing_else(Store::postgres().await).await;
}

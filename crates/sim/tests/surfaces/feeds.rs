//! The live feeds: `/ws/events` task frames and keepalive pings, `/ws/progress`
//! with its `connected` greeting, heartbeats and progress frames.

use std::collections::HashSet;
use std::time::Duration;

use cfactory_sim::{SimConfig, Simulator};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{has, post_json};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON text frame, within five seconds.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the feed stays open")
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn aifactory_feeds_send_task_frames_and_progress_after_a_greeting() {
    let sim = Simulator::start(SimConfig {
        speed: 5.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut events = connect(&sim.aifactory_url, "/ws/events").await;
    let mut progress = connect(&sim.aifactory_url, "/ws/progress").await;

    let known = [
        "task:status",
        "task:progress",
        "task:update",
        "task:error",
        "task:subtask-update",
        "ping",
    ];
    let mut kinds = HashSet::new();
    let mut reasons = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(kinds.contains("task:update") && reasons.contains("completed")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kinds:?} {reasons:?}"
        );
        let v = next_json(&mut events).await;
        let kind = v["type"].as_str().unwrap().to_owned();
        assert!(known.contains(&kind.as_str()), "{v}");
        if kind == "ping" {
            continue;
        }
        let task = v["payload"]["taskId"].as_str().unwrap();
        assert!(task.starts_with("proj:"), "{v}");
        match kind.as_str() {
            "task:status" => {
                let status = v["payload"]["status"].as_str().unwrap();
                // The board's words, with the reason a task waits in review.
                assert!(!["merged", "qa_failed", "failed"].contains(&status), "{v}");
                match v["payload"]["reviewReason"].as_str() {
                    Some(reason) => {
                        assert_eq!(status, "human_review", "{v}");
                        reasons.insert(reason.to_owned());
                    }
                    None => assert_ne!(status, "human_review", "{v}"),
                }
            }
            "task:progress" => assert!(v["payload"]["percentage"].is_u64()),
            "task:update" => has(
                &v["payload"]["executionProgress"],
                &["phase", "phaseProgress"],
            ),
            _ => {}
        }
        kinds.insert(kind);
    }

    let hello = next_json(&mut progress).await;
    assert_eq!(hello["type"], "connected");
    assert!(hello["running_tasks"].is_array());
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        let frame = next_json(&mut progress).await;
        match frame["type"].as_str().unwrap() {
            "heartbeat" => assert!(frame["running_tasks"].is_array()),
            "progress" => has(
                &frame,
                &[
                    "task_id",
                    "phase",
                    "message",
                    "timestamp",
                    "subtask",
                    "subtask_index",
                    "subtask_total",
                    "percentage",
                ],
            ),
            other => panic!("unexpected {other}: {frame}"),
        }
        seen.insert(frame["type"].as_str().unwrap().to_owned());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_quiet_feed_pings_and_tfactory_reports_kanban_ids_only() {
    // No units: nothing moves unless a client acts. Pings come every 0.5 s.
    let sim = Simulator::start(SimConfig {
        units: Some(0),
        speed: 60.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut events = connect(&sim.tfactory_url, "/ws/events").await;
    assert_eq!(next_json(&mut events).await, json!({"type": "ping"}));
    events.send(Message::Text("ping".into())).await.unwrap();
    let pong = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if msg != Message::Text(json!({"type": "ping"}).to_string().into()) {
            break msg;
        }
    };
    assert_eq!(pong, Message::Text("pong".into()));

    let mut progress = connect(&sim.tfactory_url, "/ws/progress").await;
    let hello = next_json(&mut progress).await;
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["running_tasks"], json!([]));
    assert_eq!(
        next_json(&mut progress).await,
        json!({"type": "heartbeat", "running_tasks": []})
    );

    // A kanban change is reported by its kanban id and its board status.
    let (_, board) = crate::get(&format!("{}/api/tasks", sim.tfactory_url)).await;
    let id = board["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["spec_id"] == "ingest-901")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = post_json(
        &format!("{}/api/tasks/{id}/recover", sim.tfactory_url),
        json!({"targetStatus": "ai_review"}),
    )
    .await;
    assert_eq!(status, 200);
    let frame = loop {
        let v = next_json(&mut events).await;
        if v["type"] != "ping" {
            break v;
        }
    };
    assert_eq!(
        frame,
        json!({"type": "task:status", "payload": {"taskId": id, "status": "ai_review"}})
    );
    sim.shutdown().await;
}

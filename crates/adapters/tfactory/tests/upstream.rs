//! TFactory through the `Upstream` port against a scripted local TFactory, for what the
//! captures do not show: an offline server, slow and malformed answers, builds that lack
//! one of the two lists, and progress frames from agent runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{Health, LiveUpdate, UpstreamError};
use cfactory_tfactory::TFactory;
use cfactory_upstream_http::UpstreamConfig;
use serde_json::json;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn tfactory(base: &str, timeout: Duration) -> TFactory {
    TFactory::new(UpstreamConfig::new(base, Some("tf-token".into()), timeout).unwrap())
}

#[tokio::test]
async fn offline_slow_and_malformed_upstreams() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let report = tfactory(&closed, Duration::from_secs(2)).probe().await;
    assert_eq!(report.status, Health::Offline);
    assert!(!report.detail.unwrap().contains("127.0.0.1"));

    let slow = || async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Json(json!({"tasks": []}))
    };
    let app = Router::new()
        .route("/api/tfactory/tasks", get(slow))
        .route("/api/tasks", get(slow))
        .route(
            "/api/tfactory/tasks/{id}",
            get(|| async { "{\"status_json\": {" }),
        );
    let tf = tfactory(&serve(app).await, Duration::from_millis(300));
    assert_eq!(tf.list_tasks().await, Err(UpstreamError::Timeout));
    assert!(matches!(
        tf.process("spec-1").await,
        Err(UpstreamError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_build_without_the_board_serves_only_specs() {
    let app = Router::new().route(
        "/api/tfactory/tasks",
        get(|| async {
            Json(json!({"tasks": [{"spec_id": "s-1", "status": "evaluating",
                "source": {"aifactory": {"github_issue": "77"}}}], "count": 1}))
        }),
    );
    let tf = tfactory(&serve(app).await, Duration::from_secs(5));
    let list = tf.list_tasks().await.unwrap();
    // A 404 is a list this build does not have, not a failure.
    assert!(list.complete);
    assert!(list.failures.is_empty());
    let [spec] = &list.tasks[..] else {
        panic!("{list:?}")
    };
    assert_eq!(
        (spec.task_id.as_str(), spec.issue_number),
        ("s-1", Some(77))
    );
}

#[tokio::test]
async fn a_server_with_neither_list_is_not_an_empty_one() {
    let app = Router::new().route(
        "/api/health",
        get(|| async { (StatusCode::OK, Json(json!({"status": "healthy"}))) }),
    );
    let tf = tfactory(&serve(app).await, Duration::from_secs(5));
    assert_eq!(tf.list_tasks().await, Err(UpstreamError::NotFound));
}

async fn progress(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        for frame in [
            r#"{"type":"connected","running_tasks":[],"message":"Connected to unified progress stream"}"#,
            r#"{"type":"progress","task_id":"spec-001","phase":"qa_review","percentage":"75","timestamp":1767261600}"#,
        ] {
            let _ = socket.send(Message::Text(frame.into())).await;
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Service, LiveUpdate)>>);
impl LiveSink for Collect {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.0.lock().unwrap().push((service, update));
    }
}

#[tokio::test]
async fn progress_frames_reach_the_sink() {
    // `/ws/events` is missing here: that feed keeps failing and retrying, which must not
    // stop the progress feed.
    let app = Router::new().route("/ws/progress", get(progress));
    let tf = tfactory(&serve(app).await, Duration::from_secs(5));
    let sink = Arc::new(Collect::default());
    let _ = tokio::time::timeout(Duration::from_millis(800), tf.follow(sink.clone())).await;
    let got = sink.0.lock().unwrap().clone();
    let [
        (
            service,
            LiveUpdate::Progress {
                task_id,
                phase,
                percent,
                at,
                ..
            },
        ),
    ] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!(*service, Service::TFACTORY);
    assert_eq!(
        (task_id.as_str(), phase.as_deref(), *percent),
        ("spec-001", Some("qa_review"), Some(75.0))
    );
    assert_eq!(at.timestamp(), 1_767_261_600);
}

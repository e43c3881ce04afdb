//! TFactory through the `Upstream` port, against a scripted local TFactory (REST and
//! live feed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{Health, LiveUpdate, UpstreamError};
use cfactory_domain::workitem::StageName;
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

async fn progress(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        for frame in [
            r#"{"type":"hello"}"#,
            r#"{"type":"progress","task_id":"spec-001","phase":"qa_review","percentage":"75","timestamp":1767261600}"#,
        ] {
            let _ = socket.send(Message::Text(frame.into())).await;
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

fn app() -> Router {
    Router::new()
        .route(
            "/api/tasks",
            get(|| async {
                Json(json!({"tasks": [
                    {"spec_id": "spec-001", "status": "executing", "correlation_key": "142",
                     "aifactory_task_id": "shop:003", "branch": "af/142-refunds", "pr_number": 31,
                     "repo": "acme/shop", "title": "Verify refunds", "updated_at": "2026-02-02T00:00:00Z"},
                    {"id": "spec-002", "status": null, "outcome": "human_review"}
                ]}))
            }),
        )
        .route(
            "/api/tasks/{id}",
            get(|| async {
                Json(json!({"spec_id": "spec-001", "subtasks": [
                    {"id": "t3", "lane": "browser", "title": "refund button", "status": "pending"},
                    {"id": "t1", "lane": "unit", "title": "refund math", "status": "passed"},
                    {"id": "t2", "lane": "api", "title": "refund endpoint", "depends_on": ["t1"]}
                ]}))
            }),
        )
        .route("/ws/progress", get(progress))
}

#[tokio::test]
async fn specs_map_onto_snapshots_with_their_links() {
    let tf = tfactory(&serve(app()).await, Duration::from_secs(5));
    assert_eq!(tf.service(), Service::Tfactory);
    let list = tf.list_tasks().await.unwrap();
    assert!(list.complete);
    let [a, b] = &list.tasks[..] else {
        panic!("{list:?}")
    };
    assert_eq!(a.task_id, "spec-001");
    assert_eq!(a.issue_number, Some(142));
    assert_eq!(a.status, "executing");
    assert_eq!(a.correlation.aifactory_task_id.as_deref(), Some("shop:003"));
    assert_eq!(a.correlation.branch.as_deref(), Some("af/142-refunds"));
    assert_eq!(a.correlation.pr_number, Some(31));
    assert_eq!(a.project.as_deref(), Some("acme/shop"));
    assert_eq!(a.title.as_deref(), Some("Verify refunds"));
    assert_eq!(b.status, "human_review");
    assert_eq!(b.key().unwrap().as_str(), "tf-spec-002");
}

#[tokio::test]
async fn subtasks_become_lane_nodes() {
    let tf = tfactory(&serve(app()).await, Duration::from_secs(5));
    let graph = tf.process("spec-001").await.unwrap();
    assert_eq!(
        (graph.service, graph.stage),
        (Service::Tfactory, StageName::Test)
    );
    let labels: Vec<_> = graph.nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "unit · refund math",
            "api · refund endpoint",
            "browser · refund button"
        ]
    );
    assert_eq!(graph.nodes[1].deps, ["t1"]);
}

#[tokio::test]
async fn offline_slow_and_malformed_upstreams() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let report = tfactory(&closed, Duration::from_secs(2)).probe().await;
    assert_eq!(report.status, Health::Offline);
    assert!(!report.detail.unwrap().contains("127.0.0.1"));

    let app = Router::new()
        .route(
            "/api/tasks",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!([]))
            }),
        )
        .route("/api/tasks/{id}", get(|| async { "{\"subtasks\": [" }));
    let tf = tfactory(&serve(app).await, Duration::from_millis(300));
    assert_eq!(tf.list_tasks().await, Err(UpstreamError::Timeout));
    assert!(matches!(
        tf.process("spec-1").await,
        Err(UpstreamError::Malformed(_))
    ));
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
    let tf = tfactory(&serve(app()).await, Duration::from_secs(5));
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
    assert_eq!(*service, Service::Tfactory);
    assert_eq!(
        (task_id.as_str(), phase.as_deref(), *percent),
        ("spec-001", Some("qa_review"), Some(75.0))
    );
    assert_eq!(at.timestamp(), 1_767_261_600);
}

//! AIFactory through the `Upstream` port, against a scripted local AIFactory (REST and
//! live feed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_aifactory::AIFactory;
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{Health, LiveUpdate, UpstreamError};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::UpstreamConfig;
use serde_json::json;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn aifactory(base: &str) -> AIFactory {
    AIFactory::new(
        UpstreamConfig::new(base, Some("af-token".into()), Duration::from_secs(5)).unwrap(),
    )
}

async fn task(Path(id): Path<String>) -> Response {
    if id != "shop:003" {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(json!({
        "id": "shop:003", "status": "in_progress",
        "subtasks": [
            {"id": "1.1", "title": "Migration", "status": "completed", "completedAt": "2026-02-01T09:00:00Z"},
            {"id": "1.2", "title": "Endpoint", "status": "in_progress", "depends_on": ["1.1"]}
        ]
    }))
    .into_response()
}

async fn events(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        for frame in [
            "garbage",
            r#"{"type":"task:update","payload":{"taskId":"shop:003","executionProgress":{"phase":"coding","phaseProgress":60}}}"#,
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
                Json(json!([
                    {"id": "shop:003", "status": "in_progress", "title": "Refunds", "projectName": "shop",
                     "executionProgress": {"phase": "coding", "phaseProgress": 40},
                     "branchName": "af/142-refunds",
                     "provenance": {"issue_number": 142, "session_id": "001-refund"},
                     "updatedAt": "2026-02-01T08:00:00Z"},
                    {"project_id": "shop", "spec_id": "004", "status": "backlog", "title": "Search"}
                ]))
            }),
        )
        .route("/api/tasks/{id}", get(task))
        .route("/ws/events", get(events))
        .route("/ws/progress", get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut s: WebSocket| async move { while let Some(Ok(_)) = s.recv().await {} })
        }))
}

#[tokio::test]
async fn tasks_map_onto_snapshots() {
    let af = aifactory(&serve(app()).await);
    assert_eq!(af.service(), Service::Aifactory);
    let list = af.list_tasks().await.unwrap();
    assert!(list.complete);
    let [a, b] = &list.tasks[..] else {
        panic!("{list:?}")
    };
    assert_eq!(a.task_id, "shop:003");
    assert_eq!(a.issue_number, Some(142));
    assert_eq!(a.key().unwrap().as_str(), "142");
    assert_eq!(a.status, "in_progress");
    assert_eq!(a.phase.as_deref(), Some("coding"));
    assert_eq!(a.title.as_deref(), Some("Refunds"));
    assert_eq!(a.project.as_deref(), Some("shop"));
    assert_eq!(a.correlation.branch.as_deref(), Some("af/142-refunds"));
    assert_eq!(a.correlation.session_id.as_deref(), Some("001-refund"));
    assert!(a.updated_at.is_some());
    assert_eq!(b.task_id, "shop:004");
    assert_eq!(b.key().unwrap().as_str(), "af-shop:004");
}

#[tokio::test]
async fn subtasks_become_a_code_graph() {
    let af = aifactory(&serve(app()).await);
    let graph = af.process("shop:003").await.unwrap();
    assert_eq!(
        (graph.service, graph.stage),
        (Service::Aifactory, StageName::Code)
    );
    assert_eq!(graph.nodes.len(), 2);
    assert_eq!(graph.nodes[1].deps, ["1.1"]);
    assert!(graph.nodes[0].finished_at.is_some());
    assert_eq!(af.process("shop:999").await, Err(UpstreamError::NotFound));
}

#[tokio::test]
async fn failures_surface_as_health_and_errors() {
    let app = Router::new()
        .route(
            "/api/tasks",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/api/tasks/{id}",
            get(|| async { Json(json!({"success": false, "error": "locked"})) }),
        );
    let base = serve(app).await;
    let af = aifactory(&base);
    let report = af.probe().await;
    assert_eq!(report.status, Health::Error);
    assert!(!report.detail.unwrap().contains(&base));
    assert_eq!(af.list_tasks().await, Err(UpstreamError::Status(500)));
    assert_eq!(
        af.process("a:1").await,
        Err(UpstreamError::Refused("locked".into()))
    );
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Service, LiveUpdate)>>);
impl LiveSink for Collect {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.0.lock().unwrap().push((service, update));
    }
}

#[tokio::test]
async fn the_live_feed_reaches_the_sink() {
    let af = aifactory(&serve(app()).await);
    let sink = Arc::new(Collect::default());
    let _ = tokio::time::timeout(Duration::from_millis(800), af.follow(sink.clone())).await;
    let got = sink.0.lock().unwrap().clone();
    let [
        (
            service,
            LiveUpdate::Progress {
                task_id,
                phase,
                percent,
                ..
            },
        ),
    ] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!(*service, Service::Aifactory);
    assert_eq!(
        (task_id.as_str(), phase.as_deref(), *percent),
        ("shop:003", Some("coding"), Some(60.0))
    );
}

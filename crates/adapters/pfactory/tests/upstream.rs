//! PFactory through the `Upstream` port, against a scripted local PFactory.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{Health, LiveUpdate, UpstreamError};
use cfactory_domain::workitem::StageName;
use cfactory_pfactory::PFactory;
use cfactory_upstream_http::UpstreamConfig;
use serde_json::json;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn pfactory(base: &str) -> PFactory {
    PFactory::new(
        UpstreamConfig::new(base, Some("pf-token".into()), Duration::from_secs(5)).unwrap(),
    )
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer pf-token")
}

async fn sessions(headers: HeaderMap) -> impl IntoResponse {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"sessions": [
        {"session_id": "001-refund", "board_state": "emitted", "github_issue": 142,
         "repo": "acme/shop", "title": "Refunds", "updated_at": "2026-01-05T10:00:00Z"},
        {"id": "002-search", "status": "reviewing", "repo": "acme/shop", "title": "Search"}
    ]}))
    .into_response()
}

async fn session(Path(id): Path<String>) -> impl IntoResponse {
    if id != "001-refund" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "no such session"})),
        )
            .into_response();
    }
    Json(json!({
        "session_id": "001-refund", "board_state": "emitted",
        "epic": {"children": [
            {"title": "Refund table"},
            {"title": "Refund API", "depends_on": [0]},
            {"title": "Refund button", "depends_on": [1]}
        ]},
        "emit_result": {"child_numbers": [143, 144, 145]}
    }))
    .into_response()
}

fn app() -> Router {
    Router::new()
        .route("/api/plan/sessions", get(sessions))
        .route("/api/plan/sessions/{id}", get(session))
}

#[tokio::test]
async fn sessions_map_onto_snapshots() {
    let pf = pfactory(&serve(app()).await);
    assert_eq!(pf.service(), Service::Pfactory);
    let list = pf.list_tasks().await.unwrap();
    assert!(list.complete);
    let [a, b] = &list.tasks[..] else {
        panic!("{list:?}")
    };

    assert_eq!(a.service, Service::Pfactory);
    assert_eq!(a.task_id, "001-refund");
    assert_eq!(a.issue_number, Some(142));
    assert_eq!(a.key().unwrap().as_str(), "acme/shop#142");
    assert_eq!(a.status, "emitted");
    assert_eq!(a.project.as_deref(), Some("acme/shop"));
    assert_eq!(a.title.as_deref(), Some("Refunds"));
    assert_eq!(
        a.updated_at.unwrap().to_rfc3339(),
        "2026-01-05T10:00:00+00:00"
    );
    assert_eq!(a.correlation.session_id.as_deref(), Some("001-refund"));

    assert_eq!(
        (b.task_id.as_str(), b.status.as_str()),
        ("002-search", "reviewing")
    );
    assert_eq!(b.key().unwrap().as_str(), "pf-002-search");
}

#[tokio::test]
async fn the_epic_becomes_a_plan_graph() {
    let pf = pfactory(&serve(app()).await);
    let graph = pf.process("001-refund").await.unwrap();
    assert_eq!(
        (graph.service, graph.stage),
        (Service::Pfactory, StageName::Plan)
    );
    let ids: Vec<_> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["143", "144", "145"]);
    assert_eq!(graph.nodes[2].deps, ["144"]);
    assert_eq!(graph.nodes[1].label, "Refund API");
    assert_eq!(pf.process("nope").await, Err(UpstreamError::NotFound));
}

#[tokio::test]
async fn the_published_paths_and_bare_arrays_are_accepted() {
    let app = Router::new().route(
        "/api/plans",
        get(|| async {
            Json(json!([{"session_id": "9", "status": "draft", "correlation_key": "pf-9"}]))
        }),
    );
    let list = pfactory(&serve(app).await).list_tasks().await.unwrap();
    assert_eq!(list.tasks[0].task_id, "9");
    assert_eq!(list.tasks[0].issue_number, None);
}

#[tokio::test]
async fn health_follows_the_answer() {
    let base = serve(app()).await;
    assert_eq!(pfactory(&base).probe().await.status, Health::Online);
    let stranger = PFactory::new(
        UpstreamConfig::new(&base, Some("wrong".into()), Duration::from_secs(5)).unwrap(),
    );
    let report = stranger.probe().await;
    assert_eq!(report.status, Health::Unauthorized);
    assert!(!report.detail.unwrap_or_default().contains("127.0.0.1"));
    assert_eq!(
        stranger.list_tasks().await,
        Err(UpstreamError::Unauthorized)
    );
}

struct Never;
impl LiveSink for Never {
    fn live_update(&self, _: Service, update: LiveUpdate) {
        panic!("PFactory has no feed, yet got {update:?}");
    }
}

#[tokio::test]
async fn follow_returns_at_once() {
    let pf = pfactory("http://127.0.0.1:9");
    tokio::time::timeout(Duration::from_secs(1), pf.follow(Arc::new(Never)))
        .await
        .expect("follow should return at once for PFactory");
}

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

/// `GET /api/plan/sessions` as the real route handler answers: `{"sessions": [...]}`,
/// `status` the lifecycle, `board_state` a board column, no `repo`, no `updated_at`.
async fn sessions(headers: HeaderMap) -> impl IntoResponse {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"sessions": [
        {"session_id": "014-checkout-copy", "title": "Checkout copy", "status": "processed",
         "board_state": "human_review", "issue_number": null,
         "created_at": "2026-03-02T09:00:00Z",
         "review": {"gates_passed": false, "threshold": 0.7, "aggregate_score": 0.55,
                    "lenses": [
                        {"lens": "security", "score": 0.4,
                         "findings": [{"blocking": true, "message": "secrets in logs"}]},
                        {"lens": "feasibility", "score": 0.8,
                         "findings": [{"blocking": false, "message": "tight deadline"}]}]}},
        {"session_id": "015-refund-flow", "title": "Refunds", "status": "emitted",
         "board_state": "done", "issue_number": 7151, "origin_issue_number": 7150,
         "correlation_key": "acme/shop#7150", "created_at": "2026-03-01T08:00:00Z"},
        {"session_id": "016-search", "title": "Search", "status": "emitted",
         "board_state": "done", "issue_number": 7160, "created_at": "2026-03-01T07:00:00Z"},
        {"session_id": "017-wishlist", "title": "Wishlist", "status": "reviewing",
         "board_state": "ai_review", "issue_number": null, "origin_issue_number": null,
         "correlation_key": "7170", "created_at": "2026-03-03T10:00:00Z"},
        {"session_id": "018-dark-mode", "title": "Dark mode", "status": "discarded",
         "board_state": "backlog", "issue_number": null, "origin_issue_number": null,
         "correlation_key": "pf-018-dark-mode", "created_at": "2026-03-03T11:00:00Z"},
        {"session_id": "019-old", "board_state": "emitted", "github_issue": 142,
         "repo": "acme/shop", "title": "Older build", "updated_at": "2026-01-05T10:00:00Z"}
    ]}))
    .into_response()
}

/// `GET /api/plan/sessions/{id}`: the decomposed epic, and once emitted the epic's
/// number and a map from child key to issue number.
async fn session(Path(id): Path<String>) -> impl IntoResponse {
    let children = json!([
        {"key": "C1", "title": "Refund table", "depends_on": []},
        {"key": "C2", "title": "Refund API", "depends_on": ["C1"]},
        {"key": "C3", "title": "Refund button", "depends_on": ["C2", "C1"]}
    ]);
    match id.as_str() {
        "015-refund-flow" => Json(json!({
            "session_id": "015-refund-flow", "status": "emitted", "board_state": "done",
            "repo": "acme/shop",
            "plan": {"plan_id": "015-refund-flow", "title": "Refunds",
                     "source_channel": "github_issue", "criteria": []},
            "epic": {"plan_id": "015-refund-flow", "epic_title": "Refunds",
                     "children": children},
            "emit_result": {"epic_number": 7151,
                            "child_numbers": {"C2": 7153, "C1": 7152, "C3": 7154}}
        }))
        .into_response(),
        "014-checkout-copy" => Json(json!({
            "session_id": "014-checkout-copy", "status": "processed",
            "board_state": "human_review",
            "plan": {"plan_id": "014-checkout-copy", "title": "Checkout copy"},
            "epic": {"epic_title": "Checkout copy", "children": children},
            "emit_result": null
        }))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "no such session"})),
        )
            .into_response(),
    }
}

fn app() -> Router {
    Router::new()
        .route("/api/plan/sessions", get(sessions))
        .route("/api/plan/sessions/{id}", get(session))
}

#[tokio::test]
async fn sessions_map_onto_snapshots() {
    let pf = pfactory(&serve(app()).await);
    assert_eq!(pf.service(), Service::PFACTORY);
    let list = pf.list_tasks().await.unwrap();
    assert!(list.complete);
    let [processed, origin, epic, bare, discarded, old] = &list.tasks[..] else {
        panic!("{list:?}")
    };

    // A plan waiting for sign-off: its lifecycle, not its board column, and the reason.
    assert_eq!(processed.service, Service::PFACTORY);
    assert_eq!(processed.task_id, "014-checkout-copy");
    assert_eq!(processed.status, "processed");
    assert_eq!(
        processed.review_reason.as_deref(),
        Some("awaiting_approval")
    );
    assert_eq!(processed.issue_number, None);
    assert_eq!(processed.key().unwrap().as_str(), "pf-014-checkout-copy");
    assert_eq!(processed.title.as_deref(), Some("Checkout copy"));
    assert_eq!(processed.project, None);
    assert_eq!(
        processed.updated_at.unwrap().to_rfc3339(),
        "2026-03-02T09:00:00+00:00"
    );
    assert_eq!(
        processed.correlation.session_id.as_deref(),
        Some("014-checkout-copy")
    );

    // From an existing issue: keyed by that origin issue, the epic not claimed.
    assert_eq!(origin.status, "emitted");
    assert_eq!(origin.review_reason, None);
    assert_eq!(origin.issue_number, Some(7150));
    assert_eq!(origin.correlation.issue_number, None);
    assert_eq!(origin.project.as_deref(), Some("acme/shop"));
    assert_eq!(origin.key().unwrap().as_str(), "acme/shop#7150");

    // No origin issue: the emitted epic is the key and the link.
    assert_eq!(epic.issue_number, Some(7160));
    assert_eq!(epic.correlation.issue_number, Some(7160));
    assert_eq!(epic.key().unwrap().as_str(), "7160");

    // A bare origin key before anything is emitted.
    assert_eq!(
        (bare.status.as_str(), bare.issue_number),
        ("reviewing", Some(7170))
    );
    assert_eq!(bare.key().unwrap().as_str(), "7170");
    assert_eq!(bare.correlation.issue_number, None);

    assert_eq!(
        (discarded.status.as_str(), discarded.issue_number),
        ("discarded", None)
    );
    assert_eq!(discarded.key().unwrap().as_str(), "pf-018-dark-mode");

    // An older build that spells the lifecycle `board_state`.
    assert_eq!(old.status, "emitted");
    assert_eq!(old.key().unwrap().as_str(), "acme/shop#142");
    assert_eq!(
        old.updated_at.unwrap().to_rfc3339(),
        "2026-01-05T10:00:00+00:00"
    );
}

#[tokio::test]
async fn the_emitted_epic_becomes_a_plan_graph_keyed_by_child() {
    let pf = pfactory(&serve(app()).await);
    let graph = pf.process("015-refund-flow").await.unwrap();
    assert_eq!(
        (graph.service, graph.stage, graph.task_id.as_str()),
        (Service::PFACTORY, StageName::PLAN, "015-refund-flow")
    );
    let ids: Vec<_> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["C1", "C2", "C3"]);
    let labels: Vec<_> = graph.nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "#7152 Refund table",
            "#7153 Refund API",
            "#7154 Refund button"
        ]
    );
    assert!(graph.nodes[0].deps.is_empty());
    assert_eq!(graph.nodes[2].deps, ["C2", "C1"]);
    assert!(graph.nodes.iter().all(|n| n.status == "emitted"));
    assert_eq!(pf.process("nope").await, Err(UpstreamError::NotFound));
}

#[tokio::test]
async fn a_processed_plan_graphs_its_children_before_they_have_issues() {
    let pf = pfactory(&serve(app()).await);
    let graph = pf.process("014-checkout-copy").await.unwrap();
    let labels: Vec<_> = graph.nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(labels, ["Refund table", "Refund API", "Refund button"]);
    assert_eq!(graph.nodes[1].deps, ["C1"]);
    assert_eq!(graph.nodes[1].status, "processed");
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

#[tokio::test]
async fn server_errors_and_malformed_bodies_are_errors() {
    let failing = Router::new().route(
        "/api/plan/sessions",
        get(|| async { StatusCode::BAD_GATEWAY }),
    );
    let pf = pfactory(&serve(failing).await);
    assert_eq!(pf.list_tasks().await, Err(UpstreamError::Status(502)));
    assert_eq!(pf.probe().await.status, Health::Error);

    let garbled = Router::new().route(
        "/api/plan/sessions",
        get(|| async { Json(json!({"sessions": "none today"})) }),
    );
    let pf = pfactory(&serve(garbled).await);
    assert!(matches!(
        pf.list_tasks().await,
        Err(UpstreamError::Malformed(_))
    ));
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

//! TFactory: verification specs under `/api/tasks` (the code's paths) and
//! `/api/specs` (the published YAML's), the plan gate, the inbound handback from
//! AIFactory and the live feeds.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, body_json, feed_routes, refused, reply};
use crate::world::Refusal;

/// TFactory's routes.
pub(crate) fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/api/tasks", get(list))
        .route("/api/tasks/{id}", get(spec))
        .route("/api/tasks/{id}/approve-plan", post(approve_plan))
        .route("/api/tasks/{id}/reject-plan", post(reject_plan))
        .route("/api/specs", get(list))
        .route("/api/specs/{id}", get(spec))
        .route("/api/specs/{id}/report", get(report))
        .route("/api/handback/aifactory-complete", post(aifactory_complete));
    feed_routes(r, |s| &s.tfactory_feed)
}

async fn list(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = s.world();
    let specs: Vec<Value> = w
        .specs
        .values()
        .filter(|sp| q.get("status").is_none_or(|st| st == sp.status))
        .filter(|sp| {
            q.get("correlation_key")
                .is_none_or(|k| *k == sp.correlation_key())
        })
        .map(|sp| sp.view())
        .collect();
    reply(StatusCode::OK, json!(specs))
}

async fn spec(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().specs.get(&id) {
        Some(sp) => reply(StatusCode::OK, sp.view()),
        None => refused(Refusal::NotFound(format!("spec {id} not found"))),
    }
}

async fn report(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().specs.get(&id) {
        Some(sp) if !sp.view()["triage_report"].is_null() => {
            reply(StatusCode::OK, sp.view()["triage_report"].clone())
        }
        Some(sp) => refused(Refusal::NotFound(format!(
            "spec {id} has no triage report yet ({})",
            sp.status
        ))),
        None => refused(Refusal::NotFound(format!("spec {id} not found"))),
    }
}

async fn approve_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().approve_test_plan(&id, true) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

async fn reject_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().approve_test_plan(&id, false) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// `{task_id | aifactory_task_id, …}`: AIFactory says a build is ready to verify.
async fn aifactory_complete(State(s): State<AppState>, body: Bytes) -> Response {
    let body = body_json(&body);
    let Some(task) = body["task_id"]
        .as_str()
        .or(body["aifactory_task_id"].as_str())
        .map(str::to_owned)
    else {
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["body", "task_id"], "msg": "Field required", "type": "missing"}]}),
        );
    };
    match s.world().aifactory_complete(&task) {
        Ok(v) => reply(StatusCode::ACCEPTED, v),
        Err(r) => refused(r),
    }
}

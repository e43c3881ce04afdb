//! PFactory: planning sessions under `/api/plan/sessions` (the code's paths) and
//! `/api/plans` (the published YAML's).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, body_json, refused, reply};
use crate::world::Refusal;

/// PFactory's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plan/sessions", get(list_sessions))
        .route("/api/plan/sessions/{id}", get(session))
        .route("/api/plan/sessions/{id}/approve", post(approve))
        .route("/api/plan/sessions/{id}/reject", post(reject))
        .route("/api/plan/sessions/{id}/process", post(process))
        .route("/api/plan/sessions/{id}/emit", post(emit))
        .route("/api/plans", get(list_plans))
        .route("/api/plans/{id}", get(session))
        .route("/api/plans/{id}/approve", post(approve))
        .route("/api/plans/{id}/emit", post(emit))
}

fn rows(s: &AppState, q: &HashMap<String, String>) -> Vec<Value> {
    let w = s.world();
    w.plans
        .values()
        .filter(|p| q.get("status").is_none_or(|st| st == p.board_state))
        .map(|p| p.row())
        .collect()
}

async fn list_sessions(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    reply(StatusCode::OK, json!({"sessions": rows(&s, &q)}))
}

async fn list_plans(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    reply(StatusCode::OK, json!(rows(&s, &q)))
}

async fn session(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().plans.get(&id) {
        Some(p) => reply(StatusCode::OK, p.detail()),
        None => refused(Refusal::NotFound(format!("session {id} not found"))),
    }
}

/// `{approver, feedback?}`; the YAML's `{approver, decision, note}` is read too.
async fn approve(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let approver = body["approver"].as_str().unwrap_or("unknown").to_owned();
    let feedback = body["feedback"]
        .as_str()
        .or(body["note"].as_str())
        .map(str::to_owned);
    let mut w = s.world();
    let result = if body["decision"] == json!("reject") {
        w.reject_plan(&id, &approver, feedback)
    } else {
        w.approve_plan(&id, &approver, feedback)
    };
    match result {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

async fn reject(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let approver = body["approver"].as_str().unwrap_or("unknown").to_owned();
    let feedback = body["feedback"].as_str().map(str::to_owned);
    match s.world().reject_plan(&id, &approver, feedback) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// The pipeline processes sessions on its own; this only acknowledges.
async fn process(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().plans.get(&id) {
        Some(p) => reply(
            StatusCode::ACCEPTED,
            json!({"success": true, "session_id": id, "board_state": p.board_state}),
        ),
        None => refused(Refusal::NotFound(format!("session {id} not found"))),
    }
}

/// Approval already emits; this returns the emit result, 409 before approval.
async fn emit(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().plans.get(&id) {
        Some(p) if p.board_state == "emitted" => {
            reply(StatusCode::OK, p.detail()["emit_result"].clone())
        }
        Some(p) => refused(Refusal::Conflict(format!(
            "session is {}; it has not been approved",
            p.board_state
        ))),
        None => refused(Refusal::NotFound(format!("session {id} not found"))),
    }
}

//! PFactory: planning sessions under `/api/plan/sessions`: the list, the session,
//! and the person's approve, reject and emit.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, body_json, missing, refused, reply};
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
}

fn not_found(id: &str) -> Response {
    refused(Refusal::NotFound(format!("unknown session '{id}'")))
}

/// A required string field of a JSON body.
fn required(body: &Value, field: &str) -> Option<String> {
    body[field].as_str().map(str::to_owned)
}

/// `{"sessions": [...]}`, every session, no paging.
async fn list_sessions(State(s): State<AppState>) -> Response {
    let w = s.world();
    let sessions: Vec<Value> = w.plans.values().map(|p| p.row()).collect();
    reply(StatusCode::OK, json!({"sessions": sessions}))
}

async fn session(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().plans.get(&id) {
        Some(p) => reply(StatusCode::OK, p.detail()),
        None => not_found(&id),
    }
}

/// `{approver, feedback?}`.
async fn approve(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let Some(approver) = required(&body, "approver") else {
        return missing("approver", "body");
    };
    let feedback = required(&body, "feedback");
    match s.world().approve_plan(&id, &approver, feedback) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// `{approver, feedback}`, both required.
async fn reject(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let Some(approver) = required(&body, "approver") else {
        return missing("approver", "body");
    };
    let Some(feedback) = required(&body, "feedback") else {
        return missing("feedback", "body");
    };
    match s.world().reject_plan(&id, &approver, feedback) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// The simulated pipeline processes sessions on its own; this answers the session.
async fn process(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    session(State(s), Path(id)).await
}

/// `{repo, dry_run}`: `dry_run` defaults to true, and a dry run creates nothing.
async fn emit(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let Some(repo) = required(&body, "repo") else {
        return missing("repo", "body");
    };
    let dry_run = body["dry_run"].as_bool().unwrap_or(true);
    match s.world().emit_plan(&id, &repo, dry_run) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

//! AIFactory: coding tasks (`project_id:spec_id`), the handoff and handback entry
//! points, review actions and the live feeds.
//!
//! Refusals come in both styles the real builds use: `merge`, `DELETE` and a busy
//! `apply-correction` answer 409; `create-pr` and `recover` answer like older builds,
//! 200 with `{"success": false, "error": …}`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, body_json, feed_routes, refused, refused_legacy, reply};
use crate::world::Refusal;

/// AIFactory's routes.
pub(crate) fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/api/tasks", get(list))
        .route("/api/tasks/running", get(running))
        .route("/api/tasks/create-and-run", post(create_and_run))
        .route("/api/tasks/{id}", get(task).delete(delete))
        .route("/api/tasks/{id}/apply-correction", post(apply_correction))
        .route("/api/tasks/{id}/worktree", get(worktree))
        .route("/api/tasks/{id}/worktree/create-pr", post(create_pr))
        .route("/api/tasks/{id}/worktree/merge", post(merge))
        .route("/api/tasks/{id}/recover", post(recover))
        .route("/api/capabilities", get(capabilities))
        .route("/api/providers", get(providers));
    feed_routes(r, |s| &s.aifactory_feed)
}

/// The whole list (the YAML has no pagination), filtered by `status` or
/// `correlation_key`.
async fn list(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = s.world();
    let tasks: Vec<Value> = w
        .tasks
        .values()
        .filter(|t| q.get("status").is_none_or(|st| st == t.status))
        .filter(|t| {
            q.get("correlation_key")
                .is_none_or(|k| *k == t.correlation_key())
        })
        .map(|t| t.view())
        .collect();
    reply(StatusCode::OK, json!(tasks))
}

async fn running(State(s): State<AppState>) -> Response {
    let w = s.world();
    let tasks: Vec<Value> = w
        .tasks
        .values()
        .filter(|t| matches!(t.status, "in_progress" | "ai_review"))
        .map(|t| t.view())
        .collect();
    reply(StatusCode::OK, json!(tasks))
}

async fn task(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().tasks.get(&id) {
        Some(t) => reply(StatusCode::OK, t.view()),
        None => refused(Refusal::NotFound(format!("task {id} not found"))),
    }
}

async fn worktree(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().tasks.get(&id) {
        Some(t) => reply(
            StatusCode::OK,
            json!({
                "branch": t.branch,
                "path": format!(".worktrees/{}", t.spec_no),
                "clean": !t.is_running(),
            }),
        ),
        None => refused(Refusal::NotFound(format!("task {id} not found"))),
    }
}

/// FastAPI's shape for a missing field.
fn missing(field: &str, place: &str) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"detail": [{"loc": [place, field], "msg": "Field required", "type": "missing"}]}),
    )
}

/// `?project_id=&title=&description=` with `{auto_continue, complexity, model,
/// baseBranch, provenance{…}}`: creates the task and starts its first run.
async fn create_and_run(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(project_id) = q.get("project_id").filter(|p| !p.is_empty()) else {
        return missing("project_id", "query");
    };
    let Some(title) = q.get("title").filter(|t| !t.is_empty()) else {
        return missing("title", "query");
    };
    let body = body_json(&body);
    let description = q.get("description").cloned().unwrap_or_default();
    let provenance = match &body["provenance"] {
        Value::Object(_) => body["provenance"].clone(),
        _ => json!({"source": "api"}),
    };
    let repo = provenance["repo"]
        .as_str()
        .unwrap_or("acme/shop")
        .to_owned();
    let mut w = s.world();
    let id = w.create_task(project_id, title, &description, &repo, provenance, None);
    if let Some(t) = w.tasks.get_mut(&id) {
        if let Some(c) = body["complexity"].as_str() {
            t.complexity = c.to_owned();
        }
        if let Some(m) = body["model"].as_str() {
            t.model = m.to_owned();
        }
        if let Some(b) = body["baseBranch"].as_str() {
            t.base_branch = b.to_owned();
        }
        if let Some(a) = body["auto_continue"].as_bool() {
            t.auto_continue = a;
        }
    }
    w.start_run(&id);
    let view = w.tasks.get(&id).map(|t| t.view()).unwrap_or_default();
    reply(
        StatusCode::CREATED,
        json!({"success": true, "task_id": id, "task": view}),
    )
}

/// `{fix_request_md (required), source, confirm, correlation_key?, tfactory_task_id?}`:
/// `confirm: false` previews, `confirm: true` starts a new build run.
async fn apply_correction(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let Some(fix) = body["fix_request_md"]
        .as_str()
        .filter(|f| !f.trim().is_empty())
    else {
        return missing("fix_request_md", "body");
    };
    let mut w = s.world();
    if body["confirm"].as_bool() != Some(true) {
        return match w.tasks.get(&id) {
            Some(t) => reply(
                StatusCode::OK,
                json!({
                    "success": true,
                    "preview": true,
                    "task_id": id,
                    "current_status": t.status,
                    "would_start_run": t.run + 1,
                    "fix_request_md": fix,
                    "note": "Nothing started; send confirm: true to start a correction run.",
                }),
            ),
            None => refused(Refusal::NotFound(format!("task {id} not found"))),
        };
    }
    match w.apply_correction(&id, body) {
        Ok(v) => reply(StatusCode::ACCEPTED, v),
        Err(r) => refused(r),
    }
}

async fn create_pr(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().create_pr(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused_legacy(r),
    }
}

async fn merge(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().merge(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

async fn recover(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().recover(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused_legacy(r),
    }
}

async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().delete_task(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

async fn capabilities() -> Response {
    reply(
        StatusCode::OK,
        json!({
            "service": "aifactory",
            "version": "sim",
            "features": {
                "create_and_run": true,
                "from_plan": false,
                "apply_correction": true,
                "worktree_create_pr": true,
                "worktree_merge": true,
                "recover": true,
                "ws_events": true,
                "ws_progress": true,
                "completion_webhook": true,
            },
            "providers": ["anthropic", "openai", "ollama"],
        }),
    )
}

async fn providers() -> Response {
    reply(
        StatusCode::OK,
        json!([
            {"id": "anthropic", "models": ["claude-sonnet-4-6", "claude-opus-4-1"], "transport": "sdk"},
            {"id": "openai", "models": ["gpt-5"], "transport": "sdk"},
            {"id": "ollama", "models": ["qwen3-coder:30b"], "transport": "http"},
        ]),
    )
}

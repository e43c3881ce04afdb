//! TFactory: its two unrelated task lists (the pipeline's verification specs under
//! `/api/tfactory/tasks`, keyed by spec id, and the older kanban board under
//! `/api/tasks`, keyed `<project uuid>:<spec>`), the inbound handback from AIFactory
//! and the live feeds. There is no `/api/specs`.

use std::cmp::Reverse;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, FeedSource, body_json, feed_routes, missing, refused, reply};
use crate::world::{Refusal, World};

/// TFactory's routes.
pub(crate) fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/api/tasks", get(kanban_list))
        .route("/api/tasks/{id}", get(kanban_task))
        .route("/api/tasks/{id}/recover", post(kanban_recover))
        .route("/api/tasks/{id}/approve-plan", post(approve_plan))
        .route("/api/tasks/{id}/reject-plan", post(reject_plan))
        .route("/api/tfactory/tasks", get(pipeline_list))
        .route("/api/tfactory/tasks/{id}", get(pipeline_task))
        .route("/api/tfactory/tasks/{id}/test-plan.json", get(test_plan))
        .route("/api/handback/aifactory-complete", post(aifactory_complete));
    // The web server starts no agent runs of its own: `running_tasks` stays empty.
    feed_routes(
        r,
        FeedSource {
            feed: |s| &s.tfactory_feed,
            running: |_| Vec::new(),
        },
    )
}

/// The spec a kanban id (`<project uuid>:<spec>`) names: 400 for a bare id, 404 for
/// an unknown one.
fn kanban_spec(w: &World, id: &str) -> Result<String, Refusal> {
    if !id.contains(':') {
        return Err(Refusal::Invalid(
            "Invalid task ID format. Expected 'project_id:spec_id'".to_owned(),
        ));
    }
    w.specs
        .values()
        .find(|sp| sp.kanban_id() == id)
        .map(|sp| sp.spec_id.clone())
        .ok_or_else(|| Refusal::NotFound("Task not found".to_owned()))
}

/// The spec a pipeline route names: 400 for an id no workspace folder could have
/// (a kanban `project:spec` id, say), 404 for an unknown one.
fn pipeline_spec(w: &World, id: &str) -> Result<String, Refusal> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(Refusal::Invalid(format!("invalid spec_id: '{id}'")));
    }
    if w.specs.contains_key(id) {
        Ok(id.to_owned())
    } else {
        Err(Refusal::NotFound(format!("task not found: {id}")))
    }
}

/// `{"tasks": [...], "total": N}`: every spec on the board, with the board's
/// statuses.
async fn kanban_list(State(s): State<AppState>) -> Response {
    let w = s.world();
    let tasks: Vec<Value> = w.specs.values().map(|sp| sp.kanban_row()).collect();
    let total = tasks.len();
    reply(StatusCode::OK, json!({"tasks": tasks, "total": total}))
}

async fn kanban_task(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let w = s.world();
    match kanban_spec(&w, &id) {
        Ok(spec) => reply(StatusCode::OK, w.specs[&spec].kanban_detail()),
        Err(r) => refused(r),
    }
}

/// `{targetStatus?}`: the task reads that status (the backlog unless told).
async fn kanban_recover(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let mut w = s.world();
    let spec = match kanban_spec(&w, &id) {
        Ok(spec) => spec,
        Err(r) => return refused(r),
    };
    match w.recover_spec(&spec, body["targetStatus"].as_str()) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

async fn approve_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    plan_gate(s, &id, true)
}

async fn reject_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    plan_gate(s, &id, false)
}

fn plan_gate(s: AppState, id: &str, approve: bool) -> Response {
    let mut w = s.world();
    let spec = match kanban_spec(&w, id) {
        Ok(spec) => spec,
        Err(r) => return refused(r),
    };
    match w.approve_test_plan(&spec, approve) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// `{"tasks": [...], "count": N}`: the pipeline's specs, newest `updated_at` first.
async fn pipeline_list(State(s): State<AppState>) -> Response {
    let w = s.world();
    let mut specs: Vec<_> = w.specs.values().collect();
    specs.sort_by_key(|sp| Reverse(sp.updated_at.clone()));
    let tasks: Vec<Value> = specs.iter().map(|sp| sp.pipeline_row()).collect();
    let count = tasks.len();
    reply(StatusCode::OK, json!({"tasks": tasks, "count": count}))
}

async fn pipeline_task(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let w = s.world();
    match pipeline_spec(&w, &id) {
        Ok(spec) => reply(StatusCode::OK, w.specs[&spec].pipeline_detail()),
        Err(r) => refused(r),
    }
}

/// The planner's test plan, or 404 while there is none.
async fn test_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let w = s.world();
    let spec = match pipeline_spec(&w, &id) {
        Ok(spec) => spec,
        Err(r) => return refused(r),
    };
    match w.specs[&spec].test_plan() {
        Some(plan) => reply(StatusCode::OK, plan),
        None => refused(Refusal::NotFound(
            "artefact not found: test_plan.json".to_owned(),
        )),
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
        return missing("task_id", "body");
    };
    match s.world().aifactory_complete(&task) {
        Ok(v) => reply(StatusCode::ACCEPTED, v),
        Err(r) => refused(r),
    }
}

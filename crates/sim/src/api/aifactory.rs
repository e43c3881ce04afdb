//! AIFactory: coding tasks (`project_id:spec_id`), the handoff and handback entry
//! points, review actions, the live feeds and the running agents' consoles.
//!
//! Refusals come as 400, 404 or 409 with a `detail`, or as 200 with
//! `{"success": false, …}` where the real routes answer so (`create-pr`, a malformed
//! `triage` on `apply-correction`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, FeedSource, body_json, feed_routes, is_admin, missing, refused, reply};
use crate::world::{AIFACTORY_PROJECTS, ConsoleView, Refusal, console_banner, console_line};

/// How often a console prints a line (wall time): a few lines a second.
const CONSOLE_LINE_EVERY: Duration = Duration::from_millis(350);

/// AIFactory's routes.
pub(crate) fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/api/tasks", get(list))
        .route("/api/tasks/running", get(running))
        .route("/api/tasks/create-and-run", post(create_and_run))
        .route("/api/tasks/{id}", get(task).delete(delete))
        .route("/api/tasks/{id}/approve-plan", post(approve_plan))
        .route("/api/tasks/{id}/apply-correction", post(apply_correction))
        .route("/api/tasks/{id}/worktree", get(worktree))
        .route("/api/tasks/{id}/worktree/create-pr", post(create_pr))
        .route("/api/tasks/{id}/worktree/merge", post(merge))
        .route("/api/tasks/{id}/recover", post(recover))
        .route("/api/tasks/{id}/agent-console/ws", get(agent_console))
        .route("/api/capabilities", get(capabilities))
        .route("/api/providers", get(providers));
    feed_routes(
        r,
        FeedSource {
            feed: |s| &s.aifactory_feed,
            running: |s| {
                s.world()
                    .tasks
                    .values()
                    .filter(|t| t.is_running())
                    .map(|t| t.id.clone())
                    .collect()
            },
        },
    )
}

fn not_found(id: &str) -> Response {
    refused(Refusal::NotFound(format!("Task {id} not found")))
}

/// `{"tasks": [...], "total": N}`, the whole list (no paging), filtered by
/// `project_id` or by the board `status`.
async fn list(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = s.world();
    let tasks: Vec<Value> = w
        .tasks
        .values()
        .filter(|t| q.get("project_id").is_none_or(|p| *p == t.project_id))
        .filter(|t| q.get("status").is_none_or(|st| st == t.board_status().0))
        .map(|t| t.row())
        .collect();
    let total = tasks.len();
    reply(StatusCode::OK, json!({"tasks": tasks, "total": total}))
}

async fn running(State(s): State<AppState>) -> Response {
    let w = s.world();
    let tasks: Vec<Value> = w
        .tasks
        .values()
        .filter(|t| t.is_running())
        .map(|t| t.row())
        .collect();
    let total = tasks.len();
    reply(StatusCode::OK, json!({"tasks": tasks, "total": total}))
}

async fn task(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().tasks.get(&id) {
        Some(t) => reply(StatusCode::OK, t.detail()),
        None => not_found(&id),
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
        None => not_found(&id),
    }
}

/// `?project_id=&title=&description=` (or the same in the body) with
/// `{auto_continue, complexity, model, baseBranch, provenance{…}}`: creates the task
/// in a project of AIFactory's registry (exact key, else 404) and starts its first
/// run. `baseBranch` is accepted and ignored; unknown provenance fields are dropped.
async fn create_and_run(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let field = |name: &str| {
        q.get(name)
            .cloned()
            .or_else(|| body[name].as_str().map(str::to_owned))
            .filter(|v| !v.is_empty())
    };
    let Some(project_id) = field("project_id") else {
        return missing("project_id", "query");
    };
    let Some(title) = field("title") else {
        return missing("title", "query");
    };
    if !AIFACTORY_PROJECTS.contains(&project_id.as_str()) {
        return refused(Refusal::NotFound("Project not found".to_owned()));
    }
    let description = field("description").unwrap_or_default();
    let mut provenance = json!({"source": "api"});
    if let Value::Object(given) = &body["provenance"] {
        for key in [
            "session_id",
            "issue_number",
            "repo",
            "source",
            "approved_by",
            "approval_timestamp",
        ] {
            if let Some(v) = given.get(key) {
                provenance[key] = v.clone();
            }
        }
    }
    let repo = provenance["repo"]
        .as_str()
        .unwrap_or("acme/shop")
        .to_owned();
    let mut w = s.world();
    let id = w.create_task(&project_id, &title, &description, &repo, provenance, None);
    if let Some(t) = w.tasks.get_mut(&id) {
        if let Some(c) = body["complexity"].as_str() {
            t.complexity = c.to_owned();
        }
        if let Some(m) = body["model"].as_str() {
            t.model = m.to_owned();
        }
        if let Some(a) = body["auto_continue"].as_bool() {
            t.auto_continue = a;
        }
    }
    w.start_run(&id);
    let row = w.tasks.get(&id).map(|t| t.row()).unwrap_or_default();
    reply(
        StatusCode::CREATED,
        json!({"success": true, "task_id": id, "task": row}),
    )
}

/// `POST /api/tasks/{id}/approve-plan`: a task in `plan_review` starts coding.
async fn approve_plan(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().approve_task_plan(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// `{fix_request_md (required), source, confirm, triage?, correlation_key?,
/// tfactory_task_id?}`: `confirm: false` previews, `confirm: true` starts a new
/// build run whatever the task is doing. Only a malformed `triage` is refused.
async fn apply_correction(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let Some(fix) = body["fix_request_md"]
        .as_str()
        .filter(|f| !f.trim().is_empty())
        .map(str::to_owned)
    else {
        return missing("fix_request_md", "body");
    };
    let triage = &body["triage"];
    let malformed = !(triage.is_null() || triage.is_object())
        || triage
            .get("failing_tests")
            .is_some_and(|f| !f.as_array().is_some_and(|a| a.iter().all(Value::is_string)));
    if malformed {
        return reply(
            StatusCode::OK,
            json!({
                "success": false,
                "rejected": true,
                "error": "triage must be an object whose failing_tests is a list of test ids",
            }),
        );
    }
    let mut w = s.world();
    if body["confirm"].as_bool() != Some(true) {
        return match w.tasks.get(&id) {
            Some(t) => reply(
                StatusCode::OK,
                json!({
                    "success": true,
                    "preview": true,
                    "task_id": id,
                    "current_status": t.board_status().0,
                    "would_start_run": t.run + 1,
                    "fix_request_md": fix,
                    "note": "Nothing started; send confirm: true to start a correction run.",
                }),
            ),
            None => not_found(&id),
        };
    }
    match w.apply_correction(&id, body) {
        Ok(v) => reply(StatusCode::ACCEPTED, v),
        Err(r) => refused(r),
    }
}

/// The open (or just opened) PR as `data.prNumber`, or `{success: false, error}`.
async fn create_pr(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.world().create_pr(&id) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// `{noCommit?}`: a local merge of the build into the base branch.
async fn merge(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let no_commit = body_json(&body)["noCommit"].as_bool().unwrap_or(false);
    match s.world().merge(&id, no_commit) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// No body needed: back to the backlog, restarted only with `autoRestart: true`.
async fn recover(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = body_json(&body);
    let restart = body["autoRestart"].as_bool().unwrap_or(false);
    match s
        .world()
        .recover(&id, body["targetStatus"].as_str(), restart)
    {
        Ok(v) => reply(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

/// 204 for an administrator, 403 for anyone else.
async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !is_admin(&s, &headers, &uri) {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"detail": "Admin role required"}),
        );
    }
    match s.world().delete_task(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

/// `{"rmux": true}`: the running tasks' consoles are served.
async fn capabilities() -> Response {
    reply(StatusCode::OK, json!({"rmux": true}))
}

/// The console of one task, as the real pane bridge serves it.
fn console_view(s: &AppState, id: &str) -> Option<ConsoleView> {
    s.world()
        .tasks
        .get(id)
        .filter(|t| t.console_live())
        .map(|t| t.console_view())
}

/// `GET /api/tasks/{id}/agent-console/ws`: a running task's terminal. The handshake is
/// accepted, then a task without a run under way is closed with 4004; otherwise the
/// first frame is `{"type":"connected","connection_id":…}` (text), then the terminal's
/// bytes (binary frames) until the run ends (close 1000). Viewers are read-only: what
/// they send is dropped.
async fn agent_console(
    ws: WebSocketUpgrade,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    ws.on_upgrade(move |socket| console_pump(socket, s, id))
}

async fn console_pump(mut socket: WebSocket, s: AppState, id: String) {
    static CONNECTIONS: AtomicU64 = AtomicU64::new(1);
    let close = |code: u16, reason: String| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let Some(view) = console_view(&s, &id) else {
        let _ = socket
            .send(close(4004, format!("no rmux session for {id}")))
            .await;
        return;
    };
    let connected = json!({
        "type": "connected",
        "connection_id": format!("sim-{:08x}", CONNECTIONS.fetch_add(1, Ordering::Relaxed)),
    });
    let first = [
        Message::Text(connected.to_string().into()),
        Message::Binary(console_banner(&view).into_bytes().into()),
    ];
    for message in first {
        if socket.send(message).await.is_err() {
            return;
        }
    }
    let mut stop = s.shutdown.clone();
    let mut tick = tokio::time::interval(CONSOLE_LINE_EVERY);
    tick.tick().await;
    let (mut ticks, mut n) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(view) = console_view(&s, &id) else {
                    let _ = socket.send(close(1000, "session ended".to_owned())).await;
                    break;
                };
                ticks += 1;
                // A stalled agent retries slowly: a line every third tick.
                if view.stalled && ticks % 3 != 0 {
                    continue;
                }
                n += 1;
                let clock = chrono::Utc::now().format("%H:%M:%S").to_string();
                let line = console_line(&view, n, &clock);
                if socket.send(Message::Binary(line.into_bytes().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
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

//! Live agent consoles: the caller's tenant's items whose coding agent runs now with a
//! terminal its service serves, and a read-only WebSocket relay of one of them. The
//! service's URL and token stay on the server; see [`crate::live::consoles`].

use axum::Json;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use cfactory_domain::ports::Scope;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::live::consoles;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/live-agents", get(list))
        .route("/api/live-agents/{correlationKey}/ws", get(console))
}

/// The caller's tenant's live agent consoles.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveAgentList {
    /// Whether a configured service serves agent consoles now (AIFactory's `rmux`
    /// capability).
    pub enabled: bool,
    /// The items whose agent runs now with a console, newest stage first.
    pub agents: Vec<LiveAgent>,
    /// Why consoles are off or the list may be incomplete (a service that does not
    /// serve them, or could not be asked), or null.
    pub detail: Option<String>,
}

/// One item whose agent's terminal can be watched now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveAgent {
    /// The WorkItem's key: open its console at `/api/live-agents/{correlation_key}/ws`.
    pub correlation_key: String,
    /// The service that runs the agent.
    #[schema(value_type = String)]
    pub service: cfactory_domain::Service,
    /// The service's task id.
    pub task_id: String,
    /// The item's title, else the task's.
    pub title: Option<String>,
    /// The task's status as the service reports it.
    pub status: String,
    /// When the item's stage of that service started.
    pub started_at: DateTime<Utc>,
}

/// Lists the caller's tenant's items whose agent runs now with a console: their stage of
/// a console-serving service (AIFactory's code stage) runs, and the service lists its
/// task as running.
#[utoipa::path(
    get,
    path = "/api/live-agents",
    tag = "live",
    operation_id = "listLiveAgents",
    responses((status = 200, description = "The live consoles, or why there are none", body = LiveAgentList)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<LiveAgentList>, ApiError> {
    caller.require(Scope::Read)?;
    let live = consoles::live_agents(&state, &caller.tenant)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let agents = live
        .agents
        .into_iter()
        .map(|a| LiveAgent {
            correlation_key: a.key.as_str().to_owned(),
            service: a.service,
            task_id: a.task_id,
            title: a.title,
            status: a.status,
            started_at: a.started_at,
        })
        .collect();
    Ok(Json(LiveAgentList {
        enabled: live.enabled,
        agents,
        detail: (!live.notes.is_empty()).then(|| live.notes.join("; ")),
    }))
}

/// Upgrades to a read-only relay of the item's live agent console: the service's output
/// frames, text or binary, unchanged; whatever the client sends is dropped. Closes with
/// 4404 and a reason when the item has no live console, 1000 `console ended` when the
/// service ends it, 1011 with a reason when it fails, 4408 when the client falls a
/// bounded buffer behind, 4401 when the key or session stops holding. Only the
/// cockpit's own origin may open it, as for `/api/ws`.
#[utoipa::path(
    get,
    path = "/api/live-agents/{correlationKey}/ws",
    tag = "live",
    operation_id = "agentConsoleStream",
    params(("correlationKey" = String, Path, description = "The item's key or an alias")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "A foreign origin, or the key lacks the read scope", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn console(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let ws = ws.map_err(|e| ApiError::BadRequest {
        detail: format!("this route upgrades to a WebSocket: {}", e.body_text()),
    })?;
    if !crate::guard::browser_origin_allowed(&state.own_names, &headers) {
        return Err(ApiError::Forbidden {
            detail: "this WebSocket only accepts the cockpit's own origin".into(),
        });
    }
    let (tenant, credential) = (caller.tenant, caller.credential);
    Ok(ws.on_upgrade(move |socket| consoles::relay(socket, state, tenant, credential, key)))
}

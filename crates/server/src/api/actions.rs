//! Actions (the copilot's chat is in [`super::copilot`]). Every route calls the domain's
//! [`ActionService`](cfactory_domain::actions::ActionService): proposing stores a
//! prepared action and sends nothing; only `confirm` (approve scope) executes it, once.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cfactory_copilot::{ToolContext, ToolError};
use cfactory_domain::CorrelationKey;
use cfactory_domain::actions::{ActionError, ActionKind, ActionStatus, Door};
use cfactory_domain::ports::{Scope, StoreError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::dto;
use super::paging::{NoCursor, PageRule, Paging};

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/actions", get(list))
        .route("/api/actions/propose", post(propose))
        .route("/api/actions/{id}", get(one))
        .route("/api/actions/{id}/confirm", post(confirm))
        .route("/api/actions/{id}/reject", post(reject))
        .route("/api/copilot/actions", post(propose_contract))
        .route(
            "/api/copilot/actions/{actionId}/confirm",
            post(confirm_advised),
        )
        .route("/api/workitems/{correlationKey}/actions", get(for_item))
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(detail) => ApiError::NotFound { detail },
            ActionError::Refused(detail) | ActionError::Conflict(detail) => {
                ApiError::Conflict { detail }
            }
            ActionError::Forbidden(detail) => ApiError::Forbidden { detail },
            ActionError::Store(e) => e.into(),
        }
    }
}

/// Maps a tool's failure to the HTTP answer.
pub fn tool_error(e: ToolError) -> ApiError {
    match e {
        ToolError::BadInput { field, reason } => {
            ApiError::field(&field, format!("`{field}` {reason}"))
        }
        ToolError::NotFound(detail) => ApiError::NotFound { detail },
        ToolError::Refused(reason) => ApiError::Conflict { detail: reason },
        ToolError::NotAllowed(detail) => ApiError::Forbidden { detail },
        ToolError::UnknownTool(name) => ApiError::NotFound {
            detail: format!("no tool `{name}`"),
        },
        ToolError::Unavailable(_) => ApiError::Unavailable,
    }
}

/// The tool context of a caller reaching the tools through `door` (the copilot's chat or
/// MCP).
pub fn context(caller: &Caller, door: Door) -> ToolContext {
    ToolContext {
        tenant: caller.tenant.clone(),
        actor: caller.via(door),
        allow_propose: caller.allows(Scope::Write),
    }
}

fn parse_kind(text: &str, field: &str) -> Result<ActionKind, ApiError> {
    let text = text.trim();
    ActionKind::parse(text)
        .or_else(|| ActionKind::from_tool_name(text))
        .ok_or_else(|| {
            let kinds: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::field(
                field,
                format!("unknown action `{text}` (one of {})", kinds.join(", ")),
            )
        })
}

fn parse_key(text: &str) -> Result<CorrelationKey, ApiError> {
    CorrelationKey::parse(text.trim())
        .map_err(|e| ApiError::field("correlation_key", format!("correlation key {e}")))
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
    })
}

/// A proposal request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProposeBody {
    /// approve_gate, emit_issues, trigger_handoff, kick_handback, recover,
    /// recover_and_restart or reject_review.
    kind: String,
    /// The WorkItem.
    correlation_key: String,
    /// Why, in the person's words (goes into the payload where the upstream takes one).
    note: Option<String>,
}

/// Plans an action for a WorkItem and stores it as `prepared`; nothing is sent until a
/// person confirms it.
#[utoipa::path(
    post,
    path = "/api/actions/propose",
    tag = "actions",
    operation_id = "proposeAction",
    request_body = ProposeBody,
    responses(
        (status = 201, description = "The prepared action", body = dto::ActionView),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The item's state does not allow the action; `detail` says why", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn propose(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ProposeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let body = json_body(body)?;
    let kind = parse_kind(&body.kind, "kind")?;
    let key = parse_key(&body.correlation_key)?;
    let action = state
        .actions
        .propose(
            &caller.tenant,
            &caller.as_actor(),
            kind,
            &key,
            body.note.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(dto::ActionView::from(&action))).into_response())
}

/// The published contract's advise request: `intent` names the action.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AdviseBody {
    /// The WorkItem.
    correlation_key: String,
    /// The action kind (or its propose tool's name).
    intent: String,
    /// Why, in the person's words.
    prompt: Option<String>,
}

/// The published contract's advise operation: plans and stores a proposal, answered
/// with its `summary` and `preview`.
#[utoipa::path(
    post,
    path = "/api/copilot/actions",
    tag = "actions",
    operation_id = "adviseAction",
    request_body = AdviseBody,
    responses(
        (status = 200, description = "The prepared action with summary and preview", body = dto::AdvisedAction),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The item's state does not allow the action", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn propose_contract(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<AdviseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<dto::AdvisedAction>, ApiError> {
    caller.require(Scope::Write)?;
    let body = json_body(body)?;
    let kind = parse_kind(&body.intent, "intent")?;
    let key = parse_key(&body.correlation_key)?;
    let action = state
        .actions
        .propose(
            &caller.tenant,
            &caller.as_actor(),
            kind,
            &key,
            body.prompt.as_deref(),
        )
        .await?;
    Ok(Json(dto::AdvisedAction::from(&action)))
}

/// Filters of the action list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only actions in this status.
    status: Option<String>,
}

/// How many actions the list answers: `limit` (default 50, at most 500); no cursor.
pub struct ActionPages;

impl PageRule for ActionPages {
    const DEFAULT: u32 = 50;
    const MAX: u32 = 500;
    const ABOUT: &'static str = "At most this many";
    type Cursor = NoCursor;
}

/// The tenant's actions, newest first; prepared ones past their expiry show as expired.
#[utoipa::path(
    get,
    path = "/api/actions",
    tag = "actions",
    operation_id = "listActions",
    params(ListParams, Paging<ActionPages>),
    responses(
        (status = 200, description = "Actions, newest first; those whose stored state cannot be read are left out and counted in `unreadable`", body = dto::ActionList),
        (status = 422, description = "A bad status or limit, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    page: Paging<ActionPages>,
) -> Result<Json<dto::ActionList>, ApiError> {
    caller.require(Scope::Read)?;
    let status = match params.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(ActionStatus::parse(s).ok_or_else(|| {
            ApiError::field(
                "status",
                format!("unknown status `{s}` (prepared, executing, executed, failed, rejected, expired)"),
            )
        })?),
    };
    let page = state
        .actions
        .list(&caller.tenant, status, page.limit)
        .await?;
    Ok(Json(dto::ActionList {
        actions: page.actions.iter().map(dto::ActionView::from).collect(),
        unreadable: page.unreadable.len() as u64,
    }))
}

/// One action of the tenant.
#[utoipa::path(
    get,
    path = "/api/actions/{id}",
    tag = "actions",
    operation_id = "getAction",
    params(("id" = String, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The action", body = dto::ActionView),
        (status = 404, description = "No such action for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "The action's stored state cannot be read (problem type `unreadable`)", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<dto::ActionView>, ApiError> {
    caller.require(Scope::Read)?;
    let found = match state.actions.get(&caller.tenant, &id).await {
        Err(StoreError::Unreadable(cause)) => {
            tracing::error!(tenant = %caller.tenant, id = %id, %cause,
                "a stored action cannot be read");
            return Err(ApiError::Unreadable {
                detail: format!(
                    "action `{id}`: its stored state cannot be read (written by another \
                     version, edited or damaged); the log names why"
                ),
            });
        }
        other => other?,
    };
    found
        .map(|a| Json(dto::ActionView::from(&a)))
        .ok_or_else(|| ApiError::NotFound {
            detail: format!("no action `{id}` for this tenant"),
        })
}

/// Executes a prepared action once: its steps in order, each only after the one before
/// succeeded. Answers the action as it ended, `executed` or `failed`, with each step's
/// result; a refused or failed step is a 200 with `status: failed`.
#[utoipa::path(
    post,
    path = "/api/actions/{id}/confirm",
    tag = "actions",
    operation_id = "confirmAction",
    params(("id" = String, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The action as it ended", body = dto::Confirmed),
        (status = 404, description = "No such action for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Not waiting for a decision: already decided, running or expired", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<dto::Confirmed>, ApiError> {
    caller.require(Scope::Approve)?;
    let action = state
        .actions
        .confirm(&caller.tenant, &caller.as_actor(), &id)
        .await?;
    Ok(Json(dto::Confirmed {
        action: dto::AdvisedAction::from(&action),
    }))
}

/// Executes a prepared action once: its steps in order, each only after the one before
/// succeeded. Answers the action as it ended, `executed` or `failed`, with each step's
/// result; a refused or failed step is a 200 with `status: failed`.
#[utoipa::path(
    post,
    path = "/api/copilot/actions/{actionId}/confirm",
    tag = "actions",
    operation_id = "confirmAdvisedAction",
    params(("actionId" = String, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The action as it ended", body = dto::Confirmed),
        (status = 404, description = "No such action for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Not waiting for a decision: already decided, running or expired", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn confirm_advised(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
) -> Result<Json<dto::Confirmed>, ApiError> {
    confirm(state, caller, id).await
}

/// Turns a prepared action down; nothing is sent.
#[utoipa::path(
    post,
    path = "/api/actions/{id}/reject",
    tag = "actions",
    operation_id = "rejectAction",
    params(("id" = String, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The rejected action", body = dto::Rejected),
        (status = 404, description = "No such action for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Not waiting for a decision", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<dto::Rejected>, ApiError> {
    caller.require(Scope::Write)?;
    let action = state
        .actions
        .reject(&caller.tenant, &caller.as_actor(), &id)
        .await?;
    Ok(Json(dto::Rejected {
        action: dto::ActionView::from(&action),
    }))
}

/// A WorkItem's proposals and the action kinds its state allows now.
#[utoipa::path(
    get,
    path = "/api/workitems/{correlationKey}/actions",
    tag = "actions",
    operation_id = "itemActions",
    params(("correlationKey" = String, Path, description = "The item's key or an alias")),
    responses(
        (status = 200, description = "Available kinds and proposals", body = dto::ItemActionsView),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Not a correlation key", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn for_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<dto::ItemActionsView>, ApiError> {
    caller.require(Scope::Read)?;
    parse_key(&key)?;
    let found = state
        .actions
        .for_item(&caller.tenant, &key)
        .await?
        .ok_or_else(|| ApiError::no_item(&key))?;
    Ok(Json(dto::ItemActionsView {
        correlation_key: found.correlation_key.to_string(),
        available: found
            .available
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        actions: found.actions.iter().map(dto::ActionView::from).collect(),
    }))
}

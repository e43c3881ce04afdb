//! Actions and the copilot's chat. Every route calls the domain's
//! [`ActionService`](cfactory_domain::actions::ActionService): proposing stores a
//! prepared action and sends nothing; only `confirm` (write scope) executes it, once.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cfactory_copilot::{Conversation, CopilotError, ToolContext, ToolError};
use cfactory_domain::CorrelationKey;
use cfactory_domain::actions::{ActionError, ActionKind, ActionStatus, PreparedAction};
use cfactory_domain::ports::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

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
        .route("/api/copilot/actions/{id}/confirm", post(confirm))
        .route("/api/copilot/chat", post(chat))
        .route("/api/workitems/{correlationKey}/actions", get(for_item))
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(detail) => ApiError::NotFound { detail },
            ActionError::Refused(detail) | ActionError::Conflict(detail) => {
                ApiError::Conflict { detail }
            }
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

/// The tool context of a caller.
pub fn context(caller: &Caller) -> ToolContext {
    ToolContext {
        tenant: caller.tenant.clone(),
        actor: caller.actor(),
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
#[derive(Debug, Deserialize)]
pub struct ProposeBody {
    /// approve_gate, emit_issues, trigger_handoff, kick_handback, recover,
    /// recover_and_restart or reject_review.
    kind: String,
    /// The WorkItem.
    correlation_key: String,
    /// Why, in the person's words (goes into the payload where the upstream takes one).
    note: Option<String>,
}

async fn propose(
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
            &caller.actor(),
            kind,
            &key,
            body.note.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(action)).into_response())
}

/// The published contract's advise request: `intent` names the action.
#[derive(Debug, Deserialize)]
pub struct AdviseBody {
    correlation_key: String,
    intent: String,
    prompt: Option<String>,
}

/// An action with the published contract's `summary` and `preview` beside it.
fn contract_view(action: &PreparedAction) -> Value {
    let mut v = serde_json::to_value(action).unwrap_or(Value::Null);
    v["summary"] = json!(action.rationale);
    v["preview"] = json!({"method": action.method, "endpoint": action.endpoint,
        "payload": action.payload, "follow_ups": action.follow_ups});
    v
}

async fn propose_contract(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<AdviseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Write)?;
    let body = json_body(body)?;
    let kind = parse_kind(&body.intent, "intent")?;
    let key = parse_key(&body.correlation_key)?;
    let action = state
        .actions
        .propose(
            &caller.tenant,
            &caller.actor(),
            kind,
            &key,
            body.prompt.as_deref(),
        )
        .await?;
    Ok(Json(contract_view(&action)))
}

/// Filters of the action list.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
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
    let limit = match params
        .limit
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => 50,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.min(500))
            .ok_or_else(|| ApiError::field("limit", "`limit` must be a whole number from 1"))?,
    };
    let actions = state.actions.list(&caller.tenant, status, limit).await?;
    Ok(Json(json!({ "actions": actions })))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PreparedAction>, ApiError> {
    caller.require(Scope::Read)?;
    state
        .actions
        .get(&caller.tenant, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound {
            detail: format!("no action `{id}` for this tenant"),
        })
}

async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Write)?;
    let action = state
        .actions
        .confirm(&caller.tenant, &caller.actor(), &id)
        .await?;
    Ok(Json(json!({ "action": contract_view(&action) })))
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Write)?;
    let action = state
        .actions
        .reject(&caller.tenant, &caller.actor(), &id)
        .await?;
    Ok(Json(json!({ "action": action })))
}

async fn for_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    parse_key(&key)?;
    let found = state
        .actions
        .for_item(&caller.tenant, &key)
        .await?
        .ok_or_else(|| ApiError::no_item(&key))?;
    Ok(Json(json!({
        "correlation_key": found.correlation_key,
        "available": found.available,
        "actions": found.actions,
    })))
}

/// A chat turn.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    conversation_id: Option<String>,
    message: String,
}

async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ChatBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let body = json_body(body)?;
    let Some(copilot) = &state.copilot else {
        return Err(ApiError::NotConfigured {
            detail: "no language model is configured: set CFACTORY_COPILOT_PROVIDER=anthropic \
                     with ANTHROPIC_API_KEY (and optionally CFACTORY_COPILOT_MODEL, \
                     CFACTORY_ANTHROPIC_BASE_URL), or CFACTORY_COPILOT_PROVIDER=openai with \
                     CFACTORY_COPILOT_MODEL and CFACTORY_OPENAI_BASE_URL (and \
                     CFACTORY_OPENAI_API_KEY when the server needs one). Proposals and \
                     actions work without a model."
                .into(),
        });
    };
    let now = state.clock.now();
    let mut conversation = match body.conversation_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => {
            let doc = state
                .conversations
                .load_conversation(&caller.tenant, id)
                .await?
                .ok_or_else(|| ApiError::NotFound {
                    detail: format!("no conversation `{id}` for this tenant"),
                })?;
            serde_json::from_value::<Conversation>(doc).map_err(|_| ApiError::Internal)?
        }
        _ => Conversation::new(
            cfactory_copilot::new_action_id().replacen("act_", "conv_", 1),
            caller.tenant.clone(),
            now,
        ),
    };
    let outcome = copilot
        .chat(&context(&caller), &mut conversation, &body.message)
        .await;
    // The conversation keeps every call, also those of a failed turn.
    let doc = serde_json::to_value(&conversation).map_err(|_| ApiError::Internal)?;
    state
        .conversations
        .save_conversation(&caller.tenant, &conversation.id, &doc, state.clock.now())
        .await?;
    let outcome = outcome.map_err(|e| match e {
        CopilotError::BadMessage => ApiError::field("message", e.to_string()),
        CopilotError::TenantMismatch => ApiError::NotFound {
            detail: "no such conversation for this tenant".into(),
        },
        CopilotError::Timeout(_) => ApiError::GatewayTimeout {
            detail: e.to_string(),
        },
        CopilotError::Model(m) => ApiError::BadGateway {
            detail: format!("the language model failed: {m}"),
        },
    })?;
    Ok(Json(json!({
        "conversation_id": conversation.id,
        "answer": outcome.answer,
        "trace": outcome.trace,
        "proposals": outcome.proposals,
        "end": outcome.end,
        "steps": outcome.steps,
        "usage": outcome.usage,
    })))
}

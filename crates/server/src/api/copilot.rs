//! The copilot's chat: one turn per request, answered as one JSON object or, when the
//! client sends `Accept: text/event-stream`, as server-sent events while the turn runs
//! (`start`, `text`, `tool_start`, `tool_end`, `proposal`, then `done` or `error`).
//!
//! Both answers run the same turn and end in [`finish_turn`], which saves the
//! conversation and records the turn's tokens and cost, also for a turn that failed or that
//! the client stopped by closing the stream (the model call in flight is then dropped,
//! which closes its connection to the provider).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cfactory_copilot::agent::MAX_USER_MESSAGE_CHARS;
use cfactory_copilot::{
    ChatOutcome, Conversation, Copilot, CopilotError, Delivery, TokenUsage, TurnEvent,
};
use cfactory_domain::actions::Door;
use cfactory_domain::ports::Scope;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::actions::context;
use super::dto;
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// How often a quiet stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/copilot/chat", post(chat))
}

/// A chat turn.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatBody {
    /// The conversation to continue; a new one when absent.
    conversation_id: Option<String>,
    /// The person's message.
    message: String,
}

/// One copilot turn: the model reads through CFactory's tools and may propose actions
/// (stored as prepared; a person confirms them). 503 when no model is configured.
///
/// With `Accept: text/event-stream` the turn streams as server-sent events, each `data:`
/// one JSON object (`ChatStreamEvent` names them): `start` {conversation_id, model};
/// `text` {delta, step} as the model writes; `tool_start` {id, name} when it calls a tool
/// and `tool_end` {id, name, ok, summary} when the tool has run; `proposal` (an action,
/// as the JSON answer's `proposals` hold them); and last `done` {turn, cost_usd}, whose
/// `turn` is exactly the JSON answer, or `error` (a problem document). Closing the stream
/// stops the turn. Errors found before the turn starts (no model, a bad message, an
/// unknown conversation) answer with their status as problem+json either way.
#[utoipa::path(
    post,
    path = "/api/copilot/chat",
    tag = "actions",
    operation_id = "copilotChat",
    request_body = ChatBody,
    responses(
        (status = 200, description = "The turn's answer, tool calls and proposals; or, with `Accept: text/event-stream`, the turn as it happens",
            content(
                (dto::ChatTurn = "application/json"),
                (dto::ChatStreamEvent = "text/event-stream"),
            )),
        (status = 404, description = "No such conversation for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "No language model is configured (`not-configured`), or the store is unavailable", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 502, description = "The language model failed", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 504, description = "The turn ran past its time limit", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<ChatBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let body = body.map(|Json(b)| b).map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
    })?;
    let Some(copilot) = state.copilot.clone() else {
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
    let streamed = wants_stream(&headers);
    if streamed {
        // A stream answers 200 at once: what would refuse the turn is checked first.
        let text = body.message.trim();
        if text.is_empty() || text.chars().count() > MAX_USER_MESSAGE_CHARS {
            return Err(turn_error(CopilotError::BadMessage));
        }
    }
    let mut conversation = load_conversation(&state, &caller, body.conversation_id).await?;
    if streamed {
        return Ok(stream_turn(state, caller, copilot, conversation, body.message).into_response());
    }
    let mut usage = TokenUsage::default();
    let outcome = copilot
        .turn(
            &context(&caller, Door::Copilot),
            &mut conversation,
            &body.message,
            Delivery::Whole,
            &mut |event| {
                if let TurnEvent::Usage(so_far) = event {
                    usage = so_far;
                }
            },
        )
        .await;
    finish_turn(
        &state,
        &caller,
        &copilot,
        &conversation,
        usage,
        how(&outcome),
    )
    .await?;
    let outcome = outcome.map_err(turn_error)?;
    Ok(Json(chat_turn(conversation.id, outcome)).into_response())
}

/// Whether the client asked for server-sent events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The conversation `id` names for this tenant, or a new one when there is no id.
async fn load_conversation(
    state: &AppState,
    caller: &Caller,
    id: Option<String>,
) -> Result<Conversation, ApiError> {
    match id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => {
            let doc = state
                .conversations
                .load_conversation(&caller.tenant, id)
                .await?
                .ok_or_else(|| ApiError::NotFound {
                    detail: format!("no conversation `{id}` for this tenant"),
                })?;
            serde_json::from_value::<Conversation>(doc).map_err(|_| ApiError::Internal)
        }
        _ => Ok(Conversation::new(
            cfactory_copilot::new_action_id().replacen("act_", "conv_", 1),
            caller.tenant.clone(),
            state.clock.now(),
        )),
    }
}

/// How a turn ended, for the usage record.
fn how(outcome: &Result<ChatOutcome, CopilotError>) -> &'static str {
    match outcome {
        Ok(_) => "answered",
        Err(_) => "failed",
    }
}

/// The end of every turn, whole or streamed, answered, failed or stopped: saves the
/// conversation (it keeps every call, also those of a failed turn) and records what the
/// turn spent. This is the one place a copilot turn's usage is recorded. Returns the
/// turn's cost at list price, when the model has one.
async fn finish_turn(
    state: &AppState,
    caller: &Caller,
    copilot: &Copilot,
    conversation: &Conversation,
    usage: TokenUsage,
    how: &'static str,
) -> Result<Option<f64>, ApiError> {
    // The conversation is saved before the usage line is written, so whoever reads the
    // line can already continue the conversation.
    let doc = serde_json::to_value(conversation).map_err(|_| ApiError::Internal)?;
    state
        .conversations
        .save_conversation(&caller.tenant, &conversation.id, &doc, state.clock.now())
        .await?;
    let model = copilot.model_name();
    let cost_usd = cfactory_copilot::list_cost_usd(&model, usage);
    state.metrics.copilot_turn(how, usage, cost_usd);
    tracing::info!(
        target: "cfactory::copilot",
        tenant = %caller.tenant,
        actor = %caller.actor(),
        conversation = %conversation.id,
        model = %model,
        input_tokens = usage.input_tokens,
        output_tokens = usage.output_tokens,
        cost_usd = cost_usd.unwrap_or(0.0),
        priced = cost_usd.is_some(),
        end = how,
        "copilot turn usage"
    );
    Ok(cost_usd)
}

/// The HTTP answer a failed turn gives.
fn turn_error(e: CopilotError) -> ApiError {
    match e {
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
    }
}

/// A finished turn as the wire has it.
fn chat_turn(conversation_id: String, outcome: ChatOutcome) -> dto::ChatTurn {
    dto::ChatTurn {
        conversation_id,
        answer: outcome.answer,
        trace: serde_json::to_value(&outcome.trace).unwrap_or_default(),
        proposals: outcome
            .proposals
            .iter()
            .map(dto::ActionView::from)
            .collect(),
        end: serde_json::to_value(outcome.end).unwrap_or_default(),
        steps: outcome.steps,
        usage: serde_json::to_value(outcome.usage).unwrap_or_default(),
    }
}

/// A named event whose data is `data` as JSON.
fn event(name: &'static str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// A turn's report as the stream's event.
fn stream_event(e: TurnEvent) -> Option<Event> {
    Some(match e {
        TurnEvent::Text { step, delta } => event("text", &dto::ChatText { delta, step }),
        TurnEvent::ToolStart { id, name } => event("tool_start", &dto::ChatToolStart { id, name }),
        TurnEvent::ToolEnd {
            id,
            name,
            ok,
            summary,
        } => event(
            "tool_end",
            &dto::ChatToolEnd {
                id,
                name,
                ok,
                summary,
            },
        ),
        TurnEvent::Proposal(action) => event("proposal", &dto::ActionView::from(&*action)),
        TurnEvent::Usage(_) => return None,
    })
}

/// Runs the turn beside the response and streams its events. The turn stops when the
/// client goes: the response's end of the channel is dropped, `closed` resolves, and the
/// turn's future (with the model call in flight) is dropped; the conversation and the
/// tokens spent until then are still saved and recorded.
fn stream_turn(
    state: AppState,
    caller: Caller,
    copilot: Copilot,
    mut conversation: Conversation,
    message: String,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        let _ = tx.send(event(
            "start",
            &dto::ChatStart {
                conversation_id: conversation.id.clone(),
                model: copilot.model_name(),
            },
        ));
        let ctx = context(&caller, Door::Copilot);
        let mut usage = TokenUsage::default();
        let outcome = {
            let mut watch = |e: TurnEvent| {
                if let TurnEvent::Usage(so_far) = e {
                    usage = so_far;
                }
                if let Some(event) = stream_event(e) {
                    let _ = tx.send(event);
                }
            };
            let turn = copilot.turn(
                &ctx,
                &mut conversation,
                &message,
                Delivery::Streamed,
                &mut watch,
            );
            tokio::select! {
                outcome = turn => Some(outcome),
                () = tx.closed() => None,
            }
        };
        let how = outcome.as_ref().map_or("stopped", how);
        let saved = finish_turn(&state, &caller, &copilot, &conversation, usage, how).await;
        let last = match (outcome, saved) {
            (None, _) => {
                tracing::info!(conversation = %conversation.id, "copilot turn stopped by the client");
                return;
            }
            (Some(_), Err(e)) => Event::default().event("error").data(e.problem_json()),
            (Some(Err(e)), Ok(_)) => Event::default()
                .event("error")
                .data(turn_error(e).problem_json()),
            (Some(Ok(outcome)), Ok(cost_usd)) => event(
                "done",
                &dto::ChatDone {
                    turn: chat_turn(conversation.id.clone(), outcome),
                    cost_usd,
                },
            ),
        };
        let _ = tx.send(last);
    });
    let events =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

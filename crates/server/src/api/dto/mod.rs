//! The wire format: named response types that map from the domain's values, so a change
//! in the domain does not change the API by accident. Each type's `ToSchema` is what
//! `/openapi.json` publishes for it. The action and copilot types live here; WorkItems
//! (also what the live stream sends) in [`workitem`], the audit chain's verdict in
//! [`audit`].

pub mod audit;
pub mod workitem;

pub use audit::ChainReport;
pub use workitem::WorkItem;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use cfactory_domain::actions::{ActionStep, PreparedAction, StepResult};

/// One request of an action.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Root-relative on the target service.
    pub endpoint: String,
    /// The JSON body (`null`: none); may hold `{{approver}}`/`{{confirmed_at}}`
    /// placeholders filled at confirm.
    #[schema(value_type = Object, nullable)]
    pub payload: Value,
}

impl From<&ActionStep> for StepView {
    fn from(s: &ActionStep) -> Self {
        Self {
            method: s.method.as_str().to_owned(),
            endpoint: s.endpoint.to_string(),
            payload: s.payload.clone(),
        }
    }
}

/// What one executed step got back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepResultView {
    /// The method sent.
    pub method: String,
    /// The endpoint called.
    pub endpoint: String,
    /// The HTTP status, when an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// A 2xx without `"success": false`.
    pub ok: bool,
    /// The upstream's answer as JSON (`null` when none or not JSON).
    #[schema(value_type = Object, nullable)]
    pub response: Value,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call took.
    pub duration_ms: u64,
}

impl From<&StepResult> for StepResultView {
    fn from(r: &StepResult) -> Self {
        Self {
            method: r.method.as_str().to_owned(),
            endpoint: r.endpoint.to_string(),
            status_code: r.status_code,
            ok: r.ok,
            response: r.response.clone(),
            error: r.error.clone(),
            duration_ms: r.duration_ms,
        }
    }
}

/// A proposal: what it will send, why, and where it is in its life.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    /// The action's id (`act_…`).
    pub id: String,
    /// `approve_gate`, `emit_issues`, `trigger_handoff`, `kick_handback`, `recover`,
    /// `recover_and_restart` or `reject_review`.
    pub kind: String,
    /// The WorkItem.
    pub correlation_key: String,
    /// `pfactory`, `aifactory` or `tfactory`.
    pub target_service: String,
    /// The first step's method.
    pub method: String,
    /// The first step's endpoint.
    pub endpoint: String,
    /// The first step's body.
    #[schema(value_type = Object, nullable)]
    pub payload: Value,
    /// Steps after the first, each sent only if the one before succeeded.
    pub follow_ups: Vec<StepView>,
    /// Why this call.
    pub rationale: String,
    /// `prepared`, `executing`, `executed`, `failed`, `rejected` or `expired`.
    pub status: String,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
    /// When it stops being confirmable.
    pub expires_at: DateTime<Utc>,
    /// The proposer's note.
    pub note: Option<String>,
    /// Who proposed it (`key:…` or `local`).
    pub proposed_by: String,
    /// Through which door it was proposed (`ui`, `api`, `copilot`, `mcp`); null on
    /// actions stored before doors were kept.
    pub proposed_via: Option<String>,
    /// Who confirmed or rejected it; null while it waits or after it expired.
    pub decided_by: Option<String>,
    /// Through which door it was confirmed or rejected.
    pub decided_via: Option<String>,
    /// Its tenant.
    pub tenant: String,
    /// Each executed step's result, in order.
    pub results: Vec<StepResultView>,
}

impl From<&PreparedAction> for ActionView {
    fn from(a: &PreparedAction) -> Self {
        Self {
            id: a.id.clone(),
            kind: a.kind.as_str().to_owned(),
            correlation_key: a.correlation_key.to_string(),
            target_service: a.target_service.as_str().to_owned(),
            method: a.method.as_str().to_owned(),
            endpoint: a.endpoint.to_string(),
            payload: a.payload.clone(),
            follow_ups: a.follow_ups.iter().map(StepView::from).collect(),
            rationale: a.rationale.clone(),
            status: a.status.as_str().to_owned(),
            created_at: a.created_at,
            expires_at: a.expires_at,
            note: a.note.clone(),
            proposed_by: a.proposed_by.clone(),
            proposed_via: a.proposed_via.map(|d| d.as_str().to_owned()),
            decided_by: a.decided_by.clone(),
            decided_via: a.decided_via.map(|d| d.as_str().to_owned()),
            tenant: a.tenant.to_string(),
            results: a.results.iter().map(StepResultView::from).collect(),
        }
    }
}

/// What a confirm would send, for the published advise contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    /// The first step's method.
    pub method: String,
    /// The first step's endpoint.
    pub endpoint: String,
    /// The first step's body.
    #[schema(value_type = Object, nullable)]
    pub payload: Value,
    /// The steps after it.
    pub follow_ups: Vec<StepView>,
}

/// An action with the published contract's `summary` and `preview` beside it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdvisedAction {
    /// The action.
    #[serde(flatten)]
    pub action: ActionView,
    /// The rationale, under the contract's name.
    pub summary: String,
    /// What a confirm sends first.
    pub preview: Preview,
}

impl From<&PreparedAction> for AdvisedAction {
    fn from(a: &PreparedAction) -> Self {
        let action = ActionView::from(a);
        Self {
            summary: action.rationale.clone(),
            preview: Preview {
                method: action.method.clone(),
                endpoint: action.endpoint.clone(),
                payload: action.payload.clone(),
                follow_ups: action.follow_ups.clone(),
            },
            action,
        }
    }
}

/// A page of actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionList {
    /// Newest first.
    pub actions: Vec<ActionView>,
    /// Actions left out because their stored state cannot be read (written by another
    /// version, edited or damaged); the log and `cfactory doctor` name each.
    pub unreadable: u64,
}

/// A confirmed action, as it ended (`executed` or `failed`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmed {
    /// The action with each step's result.
    pub action: AdvisedAction,
}

/// A rejected action.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// The action, now `rejected`.
    pub action: ActionView,
}

/// An item's proposals and what it allows now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemActionsView {
    /// The item's canonical key.
    pub correlation_key: String,
    /// Action kinds its state allows now.
    pub available: Vec<String>,
    /// Its proposals, newest first.
    pub actions: Vec<ActionView>,
}

/// One copilot turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatTurn {
    /// The conversation to continue with the next message.
    pub conversation_id: String,
    /// The model's answer, or what stopped it.
    pub answer: String,
    /// This turn's tool calls (name, input, result summary).
    #[schema(value_type = Vec<Object>)]
    pub trace: Value,
    /// Actions proposed this turn, stored as prepared; a confirm sends them.
    pub proposals: Vec<ActionView>,
    /// How the turn ended (`answered`, `step_limit`, …).
    #[schema(value_type = String)]
    pub end: Value,
    /// Model calls made.
    pub steps: u32,
    /// Tokens used.
    #[schema(value_type = Object)]
    pub usage: Value,
}

/// The first event of a streamed copilot turn (`start`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatStart {
    /// The conversation to continue with the next message (also after a stop).
    pub conversation_id: String,
    /// The model answering, as `provider:model`.
    pub model: String,
}

/// More of the model's text (`text`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatText {
    /// The text to append.
    pub delta: String,
    /// The model call it belongs to, from 1; each call's text starts afresh, and the
    /// answer is the last call's.
    pub step: u32,
}

/// The model called a tool (`tool_start`); it runs once the model's answer is complete.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatToolStart {
    /// The model's id for the call.
    pub id: String,
    /// The tool.
    pub name: String,
}

/// A tool call finished, or will not run (`tool_end`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatToolEnd {
    /// The model's id for the call.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// One line on what it did or why it failed.
    pub summary: String,
}

/// The turn's end (`done`): the answer exactly as the JSON answer has it, and its cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatDone {
    /// The same object `Accept: application/json` answers.
    pub turn: ChatTurn,
    /// The turn's tokens at the model's list price in US dollars; null for a model
    /// without a known price.
    pub cost_usd: Option<f64>,
}

/// One event of a streamed copilot turn: its SSE `event:` name and its `data:` JSON. A
/// turn sends `start`, then `text`, `tool_start`, `tool_end` and `proposal` as they
/// happen, and ends with `done` or `error` (a problem document with the status the JSON
/// answer would have had).
#[derive(Serialize, ToSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
// The schema of the stream for /openapi.json: the server writes each event on its own.
#[allow(clippy::large_enum_variant)]
pub enum ChatStreamEvent {
    /// The turn started.
    Start(ChatStart),
    /// More text.
    Text(ChatText),
    /// A tool call started.
    ToolStart(ChatToolStart),
    /// A tool call finished.
    ToolEnd(ChatToolEnd),
    /// An action was prepared; it waits for a person's confirm.
    Proposal(ActionView),
    /// The turn ended with an answer.
    Done(ChatDone),
    /// The turn failed.
    Error(crate::api::ProblemDoc),
}

#[cfg(test)]
mod tests;

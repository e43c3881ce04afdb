//! Advise-and-confirm actions: what the copilot (or a person, through the API) may propose
//! to do to an upstream service, and the port that keeps the proposals until a person
//! confirms or rejects them, or they expire.
//!
//! Its room in the hexagon: the domain. [`plan_action`] is a pure function from an action
//! kind, a WorkItem and its timeline to the exact upstream call the family's contracts
//! describe (`shared/contracts/README.md`, "The upstream services as their code serves
//! them"), or a [`Refusal`] saying why the item is not in a state where the action makes
//! sense. Nothing here sends a request: the server executes a confirmed action's steps
//! against the base URL it holds for [`PreparedAction::target_service`]. A proposal's
//! endpoint is always root-relative ([`Endpoint`]) and its method one of a fixed set
//! ([`HttpMethod`]), so a proposal cannot point anywhere but the target service. No caller
//! (and no language model) chooses the service, the method or the endpoint: only the
//! planner does, from the item's state.
//!
//! Values known only when a person confirms (who approved, and when) are written into
//! payloads as the placeholders [`APPROVER`] and [`CONFIRMED_AT`]; [`fill_placeholders`]
//! replaces them at confirm time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::event::Service;
use crate::ids::{CorrelationKey, TenantId};
use crate::ports::{StoreError, TimelineEntry};
use crate::taxonomy::StatusClass;
use crate::workitem::{DEFAULT_STALL_DEADLINE_SECONDS, Stage, WorkItem};

/// How long a proposal waits for a person before it expires: 15 minutes.
pub const DEFAULT_ACTION_TTL_SECONDS: i64 = 15 * 60;

/// Placeholder for the person who confirms, filled at confirm time.
pub const APPROVER: &str = "{{approver}}";

/// Placeholder for the moment of confirmation (RFC 3339, UTC), filled at confirm time.
pub const CONFIRMED_AT: &str = "{{confirmed_at}}";

/// Longest endpoint (path and query) a step may carry.
pub const MAX_ENDPOINT_CHARS: usize = 4096;

/// Longest note kept on a proposal, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Most failing tests listed in a handback's fix request.
const MAX_FAILING_TESTS: usize = 50;

/// Longest text kept from one upstream value (a test name, a halt reason).
const MAX_UPSTREAM_TEXT: usize = 300;

/// The things the copilot may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Pass the gate the item waits at: a PFactory plan approval, a TFactory test-plan
    /// approval, or opening and merging the PR of an AIFactory task in human review.
    ApproveGate,
    /// Hand an approved plan's issue to AIFactory (create-and-run).
    TriggerHandoff,
    /// Send a correction to AIFactory (apply-correction) built from failing verdicts.
    KickHandback,
    /// Reset an AIFactory task that stopped reporting to backlog, without restarting it.
    Recover,
    /// Reset a stopped AIFactory task and start it again (`autoRestart: true`).
    RecoverAndRestart,
    /// Have PFactory create an approved plan's GitHub issues (emit, not a dry run).
    EmitIssues,
    /// Turn down what waits for review: a PFactory plan, a TFactory test plan, or an
    /// AIFactory task in human review (deleted).
    RejectReview,
}

impl ActionKind {
    /// Every kind, in the order tools list them.
    pub const ALL: [ActionKind; 7] = [
        Self::ApproveGate,
        Self::EmitIssues,
        Self::TriggerHandoff,
        Self::KickHandback,
        Self::Recover,
        Self::RecoverAndRestart,
        Self::RejectReview,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApproveGate => "approve_gate",
            Self::TriggerHandoff => "trigger_handoff",
            Self::KickHandback => "kick_handback",
            Self::Recover => "recover",
            Self::RecoverAndRestart => "recover_and_restart",
            Self::EmitIssues => "emit_issues",
            Self::RejectReview => "reject_review",
        }
    }

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The copilot tool that proposes this kind: `propose_` and the kind.
    pub fn tool_name(self) -> &'static str {
        match self {
            Self::ApproveGate => "propose_approve_gate",
            Self::TriggerHandoff => "propose_trigger_handoff",
            Self::KickHandback => "propose_kick_handback",
            Self::Recover => "propose_recover",
            Self::RecoverAndRestart => "propose_recover_and_restart",
            Self::EmitIssues => "propose_emit_issues",
            Self::RejectReview => "propose_reject_review",
        }
    }

    /// The kind a tool name proposes, if it is one of the propose tools.
    pub fn from_tool_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tool_name() == name)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP methods a step may use; nothing else can be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// Parses the wire spelling (upper case only).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// It does not start with `/` (an absolute URL, a relative path, or nothing).
    #[error("must be a root-relative path starting with '/'")]
    NotRootRelative,
    /// It names a scheme (`http:`, `file:`, …).
    #[error("must not name a scheme")]
    Scheme,
    /// It contains `//`, which a URL parser may read as a new host.
    #[error("must not contain '//'")]
    DoubleSlash,
    /// It contains `..` (or an encoded dot or separator in the path).
    #[error("must not contain '..' or an encoded '.', '/' or '\\' in the path")]
    DotSegment,
    /// It contains whitespace, a control character, a backslash or a fragment.
    #[error("must not contain whitespace, control characters, '\\' or '#'")]
    BadCharacter,
    /// A `%` not followed by two hex digits.
    #[error("has a malformed percent-escape")]
    BadEscape,
    /// Longer than [`MAX_ENDPOINT_CHARS`].
    #[error("must be at most {MAX_ENDPOINT_CHARS} characters")]
    TooLong,
}

/// A root-relative path (with an optional query) on the target service: never a URL, so
/// a step can only reach the base URL CFactory holds for the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint(String);

impl Endpoint {
    /// Parses an endpoint: starts with `/`; no `//`, no scheme, no `..`, no encoded dot or
    /// separator in the path, no whitespace, control characters, `\` or `#`; well-formed
    /// percent-escapes; at most [`MAX_ENDPOINT_CHARS`] characters.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        if text.chars().count() > MAX_ENDPOINT_CHARS {
            return Err(EndpointError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '#')
        {
            return Err(EndpointError::BadCharacter);
        }
        if text.to_ascii_lowercase().contains("://") {
            return Err(EndpointError::Scheme);
        }
        if !text.starts_with('/') {
            return Err(EndpointError::NotRootRelative);
        }
        if text.contains("//") {
            return Err(EndpointError::DoubleSlash);
        }
        if text.contains("..") {
            return Err(EndpointError::DotSegment);
        }
        let path = text
            .split('?')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|e| path.contains(e)) {
            return Err(EndpointError::DotSegment);
        }
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !ok {
                    return Err(EndpointError::BadEscape);
                }
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The endpoint as text, to append to the service's base URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Endpoint {
    type Error = EndpointError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> Self {
        e.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One request of an action. `payload` is the JSON body; `null` means no body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionStep {
    /// The method.
    pub method: HttpMethod,
    /// The root-relative endpoint on the target service.
    pub endpoint: Endpoint,
    /// The JSON body (`null`: none), possibly holding placeholders.
    #[serde(default)]
    pub payload: Value,
}

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting for a person to confirm or reject it.
    Prepared,
    /// Claimed by a confirm whose steps are running; ends as executed or failed. Lets a
    /// server claim an action before it sends anything, so two confirms cannot both run it.
    Executing,
    /// Confirmed, and every step succeeded.
    Executed,
    /// Confirmed, and a step failed or was refused (the results say which and why).
    Failed,
    /// A person turned it down.
    Rejected,
    /// Nobody confirmed it before `expires_at`.
    Expired,
}

impl ActionStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "prepared" => Self::Prepared,
            "executing" => Self::Executing,
            "executed" => Self::Executed,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether nothing can happen to the action any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Prepared | Self::Executing)
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one executed step got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The method sent.
    pub method: HttpMethod,
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The HTTP status, when an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Whether the step succeeded (a 2xx without `"success": false`).
    pub ok: bool,
    /// The upstream's answer, as JSON (`null` when none or not JSON).
    #[serde(default)]
    pub response: Value,
    /// Why it failed: the upstream's reason, a timeout, no connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// A proposal, stored server-side until a person confirms or rejects it, or it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedAction {
    /// The action's id.
    pub id: String,
    /// What it does.
    pub kind: ActionKind,
    /// The WorkItem it acts on (its canonical key when proposed).
    pub correlation_key: CorrelationKey,
    /// The service the steps are sent to.
    pub target_service: Service,
    /// The first step's method.
    pub method: HttpMethod,
    /// The first step's endpoint.
    pub endpoint: Endpoint,
    /// The first step's body (`null`: none), possibly holding placeholders.
    pub payload: Value,
    /// Steps sent after the first, in order, each only if the one before succeeded.
    #[serde(default)]
    pub follow_ups: Vec<ActionStep>,
    /// Why this call, in the cockpit's words, for the person who confirms.
    pub rationale: String,
    /// Where the action is in its life.
    pub status: ActionStatus,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
    /// When it stops being confirmable.
    pub expires_at: DateTime<Utc>,
    /// The proposer's note, if any.
    #[serde(default)]
    pub note: Option<String>,
    /// Who proposed it (a key id, a user, `copilot`, `local`).
    pub proposed_by: String,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Each executed step's result, in order; empty until executed.
    #[serde(default)]
    pub results: Vec<StepResult>,
}

impl PreparedAction {
    /// Every step in order: the first, then the follow-ups.
    pub fn steps(&self) -> Vec<ActionStep> {
        let mut steps = vec![ActionStep {
            method: self.method,
            endpoint: self.endpoint.clone(),
            payload: self.payload.clone(),
        }];
        steps.extend(self.follow_ups.iter().cloned());
        steps
    }

    /// Every step with its placeholders filled for a confirm by `approver` at `at`.
    pub fn steps_for_confirm(&self, approver: &str, at: DateTime<Utc>) -> Vec<ActionStep> {
        self.steps()
            .into_iter()
            .map(|s| ActionStep {
                payload: fill_placeholders(&s.payload, approver, at),
                ..s
            })
            .collect()
    }

    /// Whether the action is past its expiry at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// Replaces [`APPROVER`] with `approver` and [`CONFIRMED_AT`] with `at` (RFC 3339, UTC, in
/// seconds) in every string of `value`, keys included. One pass: text a placeholder is
/// replaced by is never searched again.
pub fn fill_placeholders(value: &Value, approver: &str, at: DateTime<Utc>) -> Value {
    let when = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    fill(value, approver, &when)
}

fn fill(value: &Value, approver: &str, when: &str) -> Value {
    match value {
        Value::String(s) => Value::String(fill_text(s, approver, when)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill(v, approver, when)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (fill_text(k, approver, when), fill(v, approver, when)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill_text(text: &str, approver: &str, when: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix(APPROVER) {
            out.push_str(approver);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(CONFIRMED_AT) {
            out.push_str(when);
            rest = after;
        } else {
            out.push_str("{{");
            rest = &tail[2..];
        }
    }
    out.push_str(rest);
    out
}

/// Why an action cannot be proposed for an item, in words for the person (or model) that
/// asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The reason.
    pub reason: String,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A planned action before it has an id, a tenant and a proposer: what [`plan_action`]
/// returns. [`ActionPlan::prepare`] makes it a [`PreparedAction`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionPlan {
    /// What it does.
    pub kind: ActionKind,
    /// The item's canonical key.
    pub correlation_key: CorrelationKey,
    /// The service the steps go to.
    pub target_service: Service,
    /// The first step.
    pub step: ActionStep,
    /// Steps after the first.
    pub follow_ups: Vec<ActionStep>,
    /// Why this call.
    pub rationale: String,
    /// The proposer's note, cleaned.
    pub note: Option<String>,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl ActionPlan {
    /// The plan as a stored proposal in status `prepared`.
    pub fn prepare(
        self,
        id: impl Into<String>,
        tenant: TenantId,
        proposed_by: impl Into<String>,
    ) -> PreparedAction {
        PreparedAction {
            id: id.into(),
            kind: self.kind,
            correlation_key: self.correlation_key,
            target_service: self.target_service,
            method: self.step.method,
            endpoint: self.step.endpoint,
            payload: self.step.payload,
            follow_ups: self.follow_ups,
            rationale: self.rationale,
            status: ActionStatus::Prepared,
            created_at: self.created_at,
            expires_at: self.expires_at,
            note: self.note,
            proposed_by: proposed_by.into(),
            tenant,
            results: Vec::new(),
        }
    }
}

/// Plans `kind` for `item`, whose timeline (its recorded events, oldest first, each with
/// its raw JSON) is `timeline`, at the moment `now`; the proposal expires after `ttl`.
///
/// The upstream calls (from `shared/contracts/README.md` §3):
/// - `approve_gate`, by the gate the item waits at, furthest stage first: a TFactory test
///   plan awaiting approval → `POST /api/tasks/{spec}/approve-plan`; an AIFactory task in
///   `human_review` → `POST /api/tasks/{task}/worktree/create-pr`, then
///   `POST /api/tasks/{task}/worktree/merge`; a PFactory plan `awaiting_approval` →
///   `POST /api/plan/sessions/{session}/approve {approver, feedback?}`, refused when the
///   review gates on record have not passed.
/// - `trigger_handoff`: an approved plan with an issue and no coding task →
///   `POST /api/tasks/create-and-run?project_id=&title=&description=` with
///   `{auto_continue, complexity, baseBranch, provenance{…}}`.
/// - `kick_handback`: a stopped AIFactory task → `POST /api/tasks/{task}/apply-correction
///   {fix_request_md, source, confirm: true, correlation_key, tfactory_task_id?}`, the fix
///   request built from the latest failing TFactory verdicts and the note.
/// - `recover`: a stuck or silent AIFactory task → `POST /api/tasks/{task}/recover`.
/// - `reject_review`, like approve: `POST /api/tasks/{spec}/reject-plan`,
///   `DELETE /api/tasks/{task}`, or `POST /api/plan/sessions/{session}/reject {approver,
///   feedback}`.
///
/// The PFactory review gates are read from the newest PFactory entry of `timeline` that
/// carries a `review` block (`gates_passed`, `aggregate_score`, `threshold`, `lenses`) or
/// the published `review_gates` list; a caller that fetched the session's detail from
/// PFactory may append it as such an entry. With no review on record the approval is
/// still proposed, and its rationale says PFactory itself refuses it (409) until the
/// gates pass.
pub fn plan_action(
    kind: ActionKind,
    item: &WorkItem,
    timeline: &[TimelineEntry],
    note: Option<&str>,
    now: DateTime<Utc>,
    ttl: Duration,
    context: &PlanContext,
) -> Result<ActionPlan, Refusal> {
    let note = clean_note(note);
    let facts = Facts::new(item, timeline, now, context);
    let draft = match kind {
        ActionKind::ApproveGate => approve_gate(&facts, note.as_deref()),
        ActionKind::EmitIssues => emit_issues(&facts),
        ActionKind::TriggerHandoff => trigger_handoff(&facts, note.as_deref()),
        ActionKind::KickHandback => kick_handback(&facts, note.as_deref()),
        ActionKind::Recover => recover(&facts, false),
        ActionKind::RecoverAndRestart => recover(&facts, true),
        ActionKind::RejectReview => reject_review(&facts, note.as_deref()),
    }?;
    Ok(ActionPlan {
        kind,
        correlation_key: item.correlation_key.clone(),
        target_service: draft.service,
        step: draft.step,
        follow_ups: draft.follow_ups,
        rationale: draft.rationale,
        note,
        created_at: now,
        expires_at: now + ttl,
    })
}

/// The kinds that can be proposed for `item` at `now` without a note, in
/// [`ActionKind::ALL`] order: what the cockpit may offer as buttons, or suggest beside an
/// insight.
pub fn available_actions(
    item: &WorkItem,
    timeline: &[TimelineEntry],
    now: DateTime<Utc>,
    context: &PlanContext,
) -> Vec<ActionKind> {
    ActionKind::ALL
        .into_iter()
        .filter(|k| plan_action(*k, item, timeline, None, now, Duration::zero(), context).is_ok())
        .collect()
}

/// What the planner needs from the tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// AIFactory's project registry keys by repository (`acme/shop` → `shop`):
    /// create-and-run takes only a key of AIFactory's own registry.
    pub aifactory_projects: BTreeMap<String, String>,
}

/// What a planner decided: the service, the steps and why.
struct Draft {
    service: Service,
    step: ActionStep,
    follow_ups: Vec<ActionStep>,
    rationale: String,
}

/// The item, its timeline parsed once (newest first), and the moment.
struct Facts<'a> {
    item: &'a WorkItem,
    events: Vec<(&'a TimelineEntry, Value)>,
    now: DateTime<Utc>,
    context: &'a PlanContext,
}

impl<'a> Facts<'a> {
    fn new(
        item: &'a WorkItem,
        timeline: &'a [TimelineEntry],
        now: DateTime<Utc>,
        context: &'a PlanContext,
    ) -> Self {
        let mut events: Vec<(&TimelineEntry, Value)> = timeline
            .iter()
            .filter_map(|e| Some((e, serde_json::from_str::<Value>(&e.raw).ok()?)))
            .filter(|(_, v)| v.is_object())
            .collect();
        events.sort_by_key(|(e, _)| std::cmp::Reverse((e.time, e.seq)));
        Self {
            item,
            events,
            now,
            context,
        }
    }

    fn key(&self) -> &str {
        self.item.correlation_key.as_str()
    }

    /// The item's entries from `service`, newest first.
    fn entries_of(&self, service: Service) -> impl Iterator<Item = &(&'a TimelineEntry, Value)> {
        self.events
            .iter()
            .filter(move |(e, _)| e.service == service)
    }

    /// `#142` (or `acme/shop#142`) for issue keys, `pf-abc` otherwise.
    fn label(&self) -> String {
        match self.item.correlation_key.issue_ref() {
            Some((None, n)) => format!("#{n}"),
            Some((Some(repo), n)) => format!("{repo}#{n}"),
            None => format!("`{}`", self.key()),
        }
    }

    /// One line naming each stage's status, for refusals.
    fn stage_summary(&self) -> String {
        let parts: Vec<String> = self
            .item
            .stages
            .iter()
            .map(|(name, s)| {
                format!(
                    "{} {} ({})",
                    name.as_str(),
                    safe_token(&s.status),
                    s.status_class.as_str()
                )
            })
            .collect();
        if parts.is_empty() {
            "it has no stage yet".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The gate an item waits at.
enum Gate<'a> {
    /// A TFactory test plan waiting for approval.
    TestPlan(&'a Stage),
    /// An AIFactory task in human review.
    CodeReview(&'a Stage),
    /// A PFactory plan awaiting approval, or still being reviewed.
    Plan(&'a Stage),
}

fn tokens(status: &str) -> Vec<String> {
    status
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has_tokens(status: &str, wanted: &[&str]) -> bool {
    let t = tokens(status);
    wanted.iter().all(|w| t.iter().any(|x| x == w))
}

fn awaiting_approval(status: &str) -> bool {
    has_tokens(status, &["awaiting", "approval"])
}

fn in_human_review(status: &str) -> bool {
    has_tokens(status, &["human", "review"])
}

/// Whether TFactory's test plan for `stage` waits for approval: the newest TFactory event
/// of that spec that names a `plan_status` decides; else a status that says so, or
/// `planning` (where TFactory's plan gate sits).
fn test_plan_waiting(f: &Facts<'_>, stage: &Stage) -> bool {
    let named = f
        .entries_of(Service::Tfactory)
        .filter(|(e, _)| e.task_id == stage.task_id)
        .find_map(|(_, v)| v.get("plan_status").and_then(Value::as_str));
    match named {
        Some(plan_status) => awaiting_approval(plan_status),
        None => awaiting_approval(&stage.status) || stage.status.eq_ignore_ascii_case("planning"),
    }
}

fn find_gate<'a>(f: &Facts<'a>) -> Option<Gate<'a>> {
    let item: &'a WorkItem = f.item;
    let stages = &item.stages;
    if let Some(test) = &stages.test
        && !test.status_class.is_terminal()
        && test_plan_waiting(f, test)
    {
        return Some(Gate::TestPlan(test));
    }
    if let Some(code) = &stages.code
        && in_human_review(&code.status)
    {
        return Some(Gate::CodeReview(code));
    }
    if let Some(plan) = &stages.plan
        && (plan.awaits_approval() || plan.status_class == StatusClass::Review)
    {
        return Some(Gate::Plan(plan));
    }
    None
}

fn no_gate(f: &Facts<'_>, verb: &str) -> Refusal {
    Refusal::new(format!(
        "Nothing on {} waits at a gate to {verb}: {}. Gates are a PFactory plan awaiting \
         approval, a TFactory test plan awaiting approval, and an AIFactory task in human_review.",
        f.label(),
        f.stage_summary()
    ))
}

/// An id as one path segment: letters, digits and `-._~:@` only, not `.` or `..`.
fn segment(service: Service, id: &str) -> Result<String, Refusal> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id != "."
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ':' | '@'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Refusal::new(format!(
            "The {service} id `{}` has characters that cannot go in a URL path; act on it in {service} directly.",
            safe_token(id)
        )))
    }
}

fn step(method: HttpMethod, endpoint: String, payload: Value) -> Result<ActionStep, Refusal> {
    let endpoint = Endpoint::parse(&endpoint)
        .map_err(|e| Refusal::new(format!("The planned endpoint was refused: {e}.")))?;
    Ok(ActionStep {
        method,
        endpoint,
        payload,
    })
}

/// Percent-encodes a query value: everything but letters, digits, `-`, `_` and `~`.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short, single-line, harmless rendering of an upstream token (a status, an id) for
/// messages.
fn safe_token(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' '))
        .take(60)
        .collect()
}

/// Upstream text as one trimmed line of at most [`MAX_UPSTREAM_TEXT`] characters, without
/// backticks (it is quoted in Markdown code spans).
fn one_line(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| *c != '`')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.chars().count() > MAX_UPSTREAM_TEXT {
        s = s.chars().take(MAX_UPSTREAM_TEXT).collect::<String>() + "…";
    }
    s
}

/// The note trimmed, without control characters but newlines and tabs, at most
/// [`MAX_NOTE_CHARS`] characters; `None` when empty.
fn clean_note(note: Option<&str>) -> Option<String> {
    let text: String = note?
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(MAX_NOTE_CHARS)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

// ---- approve_gate -----------------------------------------------------------------

fn approve_gate(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    match find_gate(f).ok_or_else(|| no_gate(f, "approve"))? {
        Gate::TestPlan(test) => {
            let spec = segment(Service::Tfactory, &test.task_id)?;
            Ok(Draft {
                service: Service::Tfactory,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{spec}/approve-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "TFactory spec `{spec}` on {} is at its test-plan gate ({}). Approving the \
                     plan lets TFactory generate and run the tests. TFactory answers 409 if the \
                     plan no longer waits for approval.",
                    f.label(),
                    safe_token(&test.status)
                ),
            })
        }
        Gate::CodeReview(code) => approve_code(f, code),
        Gate::Plan(plan) => approve_plan(f, plan, note),
    }
}

fn approve_code(f: &Facts<'_>, code: &Stage) -> Result<Draft, Refusal> {
    let task = segment(Service::Aifactory, &code.task_id)?;
    if let Some(scan) = &code.injection_scan
        && scan.verdict.eq_ignore_ascii_case("flagged")
    {
        return Err(Refusal::new(format!(
            "AIFactory task `{task}` on {} is parked in human_review because its injection scan \
             flagged the input. Its change must not be merged from the cockpit: review the \
             flagged input in AIFactory first (or reject the review).",
            f.label()
        )));
    }
    let reason = review_reason(f, code);
    match reason.as_deref() {
        Some("completed") => {}
        Some("plan_review") => {
            return Ok(Draft {
                service: Service::Aifactory,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{task}/approve-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "AIFactory task `{task}` on {} waits in human_review for its own plan review \
                     (review_reason plan_review). Approving calls AIFactory's approve-plan, which \
                     lets the task start coding; nothing is merged.",
                    f.label()
                ),
            });
        }
        Some(r @ ("qa_rejected" | "errors")) => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review because {} (review_reason \
                 {r}): its work is not ready to merge. Kick a handback with what to fix instead.",
                f.label(),
                if r == "errors" {
                    "its run ended with errors"
                } else {
                    "its QA rejected the change"
                }
            )));
        }
        Some(r) => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review with review_reason `{}`: its \
                 work is unfinished or unreadable, so there is nothing to approve or merge. \
                 Recover it (optionally with a restart) or look at it in AIFactory.",
                f.label(),
                safe_token(r)
            )));
        }
        None => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} waits in human_review, but AIFactory has not said \
                 why (no review_reason on record). Only completed work may be merged: let \
                 CFactory read the task from AIFactory (refresh) and try again.",
                f.label()
            )));
        }
    }
    let test = f.item.stages.test.as_ref();
    // A failure older than the review state belongs to a run before the latest correction.
    if let Some(test) = test
        && test.failed()
        && test.at >= code.at
    {
        return Err(Refusal::new(format!(
            "TFactory's latest verdict on {} failed (spec `{}`, {}), so task `{task}`'s change is \
             not proven; kick a handback instead of merging it.",
            f.label(),
            safe_token(&test.task_id),
            safe_token(&test.status)
        )));
    }
    let verified = match test {
        Some(t) if t.at >= code.at => String::new(),
        _ => " TFactory has not verified this run yet.".to_owned(),
    };
    let pr = match f.item.links.pr_number {
        Some(n) => format!(" (PR #{n} is already linked; create-pr returns it)"),
        None => String::new(),
    };
    Ok(Draft {
        service: Service::Aifactory,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/worktree/create-pr"),
            Value::Null,
        )?,
        follow_ups: vec![step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/worktree/merge"),
            Value::Null,
        )?],
        rationale: format!(
            "AIFactory task `{task}` on {} finished and waits in human_review (review_reason \
             completed). Approving calls create-pr, which opens the pull request from the \
             worktree{pr} (or answers success: false with the error), then merge, which merges \
             the worktree branch into the base branch in AIFactory's local repository: it does \
             not merge the GitHub pull request.{verified}",
            f.label()
        ),
    })
}

/// Why an AIFactory task waits in human review: what AIFactory's API said on the stage,
/// else the newest event of that task that carries a `review_reason`.
fn review_reason(f: &Facts<'_>, code: &Stage) -> Option<String> {
    code.review_reason
        .clone()
        .or_else(|| {
            f.entries_of(Service::Aifactory)
                .filter(|(e, _)| e.task_id == code.task_id)
                .find_map(|(_, v)| {
                    v.get("review_reason")
                        .or_else(|| v.get("reviewReason"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        })
        .map(|r| r.trim().to_ascii_lowercase())
}

/// PFactory's review-gate result as an event (or a session detail) reported it.
struct Review {
    passed: bool,
    aggregate: Option<f64>,
    threshold: Option<f64>,
    blocking: Vec<String>,
}

fn read_review(v: &Value) -> Option<Review> {
    let names = |list: Option<&Vec<Value>>, keep: &dyn Fn(&Value) -> bool, key: &str| {
        list.into_iter()
            .flatten()
            .filter(|l| keep(l))
            .filter_map(|l| l.get(key).and_then(Value::as_str))
            .map(safe_token)
            .collect::<Vec<_>>()
    };
    let block = v
        .get("review")
        .filter(|r| r.is_object())
        .or_else(|| v.get("gates_passed").filter(|g| g.is_boolean()).map(|_| v));
    if let Some(r) = block {
        let lenses = r.get("lenses").and_then(Value::as_array);
        // A lens blocks when it says so, or (PFactory's real shape) when one of its
        // findings does.
        let blocking = names(
            lenses,
            &|l| {
                l.get("blocking").and_then(Value::as_bool) == Some(true)
                    || l.get("findings")
                        .and_then(Value::as_array)
                        .is_some_and(|f| {
                            f.iter()
                                .any(|x| x.get("blocking").and_then(Value::as_bool) == Some(true))
                        })
            },
            "lens",
        );
        let aggregate = r.get("aggregate_score").and_then(Value::as_f64);
        let threshold = r.get("threshold").and_then(Value::as_f64);
        let passed = match r.get("gates_passed").and_then(Value::as_bool) {
            Some(p) => p,
            None if lenses.is_some() || aggregate.is_some() => {
                blocking.is_empty()
                    && match (aggregate, threshold) {
                        (Some(a), Some(t)) => a >= t,
                        _ => true,
                    }
            }
            None => return None,
        };
        return Some(Review {
            passed,
            aggregate,
            threshold,
            blocking,
        });
    }
    let gates = v.get("review_gates").and_then(Value::as_array)?;
    if gates.is_empty() {
        return None;
    }
    let failing = names(
        Some(gates),
        &|g| g.get("verdict").and_then(Value::as_str) == Some("fail"),
        "name",
    );
    Some(Review {
        passed: failing.is_empty(),
        aggregate: None,
        threshold: None,
        blocking: failing,
    })
}

fn approve_plan(f: &Facts<'_>, plan: &Stage, note: Option<&str>) -> Result<Draft, Refusal> {
    let session = segment(Service::Pfactory, &plan.task_id)?;
    if !plan.awaits_approval() {
        return Err(Refusal::new(format!(
            "PFactory session `{session}` on {} is `{}`: its review gates are still running, \
             and it can be approved only once it is processed (gates evaluated) with the gates \
             passed. PFactory answers 400 before that.",
            f.label(),
            safe_token(&plan.status)
        )));
    }
    let review = f
        .entries_of(Service::Pfactory)
        .filter(|(e, _)| e.task_id == plan.task_id)
        .find_map(|(_, v)| read_review(v));
    let score = |r: &Review| match (r.aggregate, r.threshold) {
        (Some(a), Some(t)) => format!("aggregate score {a:.2} against threshold {t:.2}"),
        (Some(a), None) => format!("aggregate score {a:.2}"),
        _ => "no aggregate score".to_owned(),
    };
    let gates = match &review {
        Some(r) if !r.passed => {
            let blocking = if r.blocking.is_empty() {
                String::new()
            } else {
                format!("; blocking: {}", r.blocking.join(", "))
            };
            return Err(Refusal::new(format!(
                "PFactory's review gates have not passed for session `{session}` on {} ({}{}). \
                 PFactory refuses approval (409) until they pass: address the findings and \
                 re-run the review in PFactory, or reject the plan.",
                f.label(),
                score(r),
                blocking
            )));
        }
        Some(r) => format!("Its review gates passed ({}).", score(r)),
        None => "CFactory has no review-gate result on record for it; PFactory itself refuses \
                 the approval (409) if the gates have not passed."
            .to_owned(),
    };
    let mut payload = Map::new();
    payload.insert("approver".into(), json!(APPROVER));
    if let Some(n) = note {
        payload.insert("feedback".into(), json!(n));
    }
    Ok(Draft {
        service: Service::Pfactory,
        step: step(
            HttpMethod::Post,
            format!("/api/plan/sessions/{session}/approve"),
            Value::Object(payload),
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory session `{session}` on {} waits for sign-off (`{}`). {gates} Approving \
             records the person who confirms as the approver; it creates no GitHub issues: \
             emitting them is a separate action (emit_issues) once the plan is approved.",
            f.label(),
            safe_token(&plan.status)
        ),
    })
}

// ---- emit_issues ------------------------------------------------------------------

fn emit_issues(f: &Facts<'_>) -> Result<Draft, Refusal> {
    let item = f.item;
    let Some(plan) = &item.stages.plan else {
        return Err(Refusal::new(format!(
            "{} has no PFactory plan whose issues could be emitted.",
            f.label()
        )));
    };
    let session = segment(Service::Pfactory, &plan.task_id)?;
    if !plan.status.trim().eq_ignore_ascii_case("approved") {
        let why = if plan.status.trim().eq_ignore_ascii_case("emitted") {
            "its issues are already emitted".to_owned()
        } else if plan.awaits_approval() {
            "it is not approved yet: approve it first".to_owned()
        } else {
            "only an approved plan's issues are emitted".to_owned()
        };
        return Err(Refusal::new(format!(
            "PFactory session `{session}` on {} is `{}`: {why}.",
            f.label(),
            safe_token(&plan.status)
        )));
    }
    let Some(repo) = item
        .links
        .repo
        .clone()
        .or_else(|| item.project.as_deref().and_then(crate::ids::parse_repo))
    else {
        return Err(Refusal::new(format!(
            "{} names no GitHub repository (owner/name), which PFactory's emit needs.",
            f.label()
        )));
    };
    Ok(Draft {
        service: Service::Pfactory,
        step: step(
            HttpMethod::Post,
            format!("/api/plan/sessions/{session}/emit"),
            json!({"repo": repo, "dry_run": false}),
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory session `{session}` on {} is approved and its issues are not emitted \
             yet. Emit creates the epic and child issues in `{}` on GitHub; CFactory sends \
             dry_run: false explicitly, since PFactory's emit only previews by default.",
            f.label(),
            safe_token(&repo)
        ),
    })
}

// ---- trigger_handoff --------------------------------------------------------------

fn trigger_handoff(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    let item = f.item;
    let Some(plan) = &item.stages.plan else {
        return Err(Refusal::new(format!(
            "{} has no PFactory plan, so there is no approved plan to hand to AIFactory.",
            f.label()
        )));
    };
    if plan.status_class != StatusClass::Done {
        return Err(Refusal::new(format!(
            "PFactory's plan on {} is `{}` ({}): only an approved, emitted plan is handed off. {}",
            f.label(),
            safe_token(&plan.status),
            plan.status_class.as_str(),
            if awaiting_approval(&plan.status) {
                "Approve it first."
            } else {
                ""
            }
        )
        .trim_end()
        .to_owned()));
    }
    if let Some(code) = &item.stages.code {
        return Err(Refusal::new(format!(
            "AIFactory already has task `{}` for {} ({}); use recover or kick_handback instead \
             of a second handoff.",
            safe_token(&code.task_id),
            f.label(),
            safe_token(&code.status)
        )));
    }
    if let Some(task) = item.links.aifactory_task_ids.last() {
        return Err(Refusal::new(format!(
            "{} is already linked to AIFactory task `{}`; a second handoff would duplicate the work.",
            f.label(),
            safe_token(task)
        )));
    }
    if let Some(scan) = &plan.injection_scan
        && scan.verdict.eq_ignore_ascii_case("flagged")
    {
        return Err(Refusal::new(format!(
            "The injection scan flagged the plan on {}; it must be reviewed before coding starts.",
            f.label()
        )));
    }
    let Some(issue) = item
        .links
        .issue_number
        .or_else(|| item.correlation_key.issue_number())
    else {
        return Err(Refusal::new(format!(
            "{} has no GitHub issue yet; AIFactory's handoff carries the governed issue number.",
            f.label()
        )));
    };
    let Some(repo) = item.project.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(Refusal::new(format!(
            "{} names no repository, which AIFactory needs to create the task.",
            f.label()
        )));
    };
    let repo = one_line(repo);
    let registry = &f.context.aifactory_projects;
    let Some(project_id) = registry
        .get(&repo)
        .or_else(|| registry.get(&repo.to_ascii_lowercase()))
        .cloned()
    else {
        return Err(Refusal::new(format!(
            "AIFactory's create-and-run takes a key of AIFactory's own project registry, and \
             none is mapped for `{}`: add it to the settings (--aifactory-project {}=KEY) and \
             propose again. Nothing was sent.",
            one_line(&repo),
            one_line(&repo)
        )));
    };
    let session = item
        .links
        .session_id
        .clone()
        .unwrap_or_else(|| plan.task_id.clone());
    let title = item
        .title
        .as_deref()
        .map(one_line)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("Issue #{issue}"));
    let mut description = format!(
        "Governed issue #{issue} from PFactory session {}, handed off from CFactory.",
        one_line(&session)
    );
    if let Some(n) = note {
        description.push_str("\n\n");
        description.push_str(&n.chars().take(1000).collect::<String>());
    }
    let endpoint = format!(
        "/api/tasks/create-and-run?project_id={}&title={}&description={}",
        encode_query(&project_id),
        encode_query(&title),
        encode_query(&description)
    );
    let payload = json!({
        "auto_continue": true,
        "complexity": "standard",
        "baseBranch": "main",
        "provenance": {
            "session_id": session,
            "issue_number": issue,
            "repo": repo,
            "source": "cfactory",
            "correlation_key": f.key(),
            "approved_by": APPROVER,
            "approval_timestamp": CONFIRMED_AT,
        },
    });
    Ok(Draft {
        service: Service::Aifactory,
        step: step(HttpMethod::Post, endpoint, payload)?,
        follow_ups: Vec::new(),
        rationale: format!(
            "PFactory's plan for issue #{issue} is `{}` and no AIFactory task exists yet. The \
             handoff creates and starts a task in AIFactory project `{}` with provenance \
             (session `{}`, issue #{issue}, the repository, and the person who confirms as \
             approver). AIFactory answers 404 if the project key is not in its registry; it \
             ignores baseBranch and drops provenance fields it does not know.",
            safe_token(&plan.status),
            safe_token(&project_id),
            safe_token(&session)
        ),
    })
}

// ---- kick_handback ----------------------------------------------------------------

/// The latest failing TFactory run, as its event reported it.
struct Failing {
    spec: String,
    status: String,
    outcome: Option<String>,
    halt_reason: Option<String>,
    verification: Option<String>,
    tests: Vec<String>,
    at: DateTime<Utc>,
}

fn text_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn event_failed(v: &Value, status: &str) -> bool {
    let class = StatusClass::classify(status);
    let outcome_failed =
        text_at(v, &["outcome"]).is_some_and(|o| o.eq_ignore_ascii_case("failure"));
    let verdict_failed = text_at(v, &["evidence", "verdict"]) == Some("fail")
        || v.pointer("/verification/passed") == Some(&Value::Bool(false));
    matches!(class, StatusClass::Failed | StatusClass::Stuck) || outcome_failed || verdict_failed
}

fn failing_tests(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = one_line(t);
        if !t.is_empty() && !out.contains(&t) && out.len() < MAX_FAILING_TESTS {
            out.push(t);
        }
    };
    for path in [
        "/result/failing_tests",
        "/failing_tests",
        "/triage_report/failing_tests",
    ] {
        for t in v
            .pointer(path)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = t.as_str() {
                push(s);
            }
        }
    }
    for verdict in v
        .get("verdicts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let failed = verdict
            .get("verdict")
            .and_then(Value::as_str)
            .is_some_and(|s| matches!(s, "rejected" | "fail" | "failed"));
        let name = ["test_id", "test", "name"]
            .iter()
            .find_map(|k| verdict.get(*k).and_then(Value::as_str));
        if let (true, Some(name)) = (failed, name) {
            push(name);
        }
    }
    out
}

fn verification_line(v: &Value) -> Option<String> {
    let obj = v.get("verification")?.as_object()?;
    let parts: Vec<String> = obj
        .iter()
        .filter(|(_, x)| x.is_number() || x.is_boolean() || x.is_string())
        .map(|(k, x)| match x {
            Value::String(s) => format!("{}={}", safe_token(k), safe_token(s)),
            other => format!("{}={other}", safe_token(k)),
        })
        .collect();
    (!parts.is_empty()).then(|| one_line(&parts.join(", ")))
}

/// The newest TFactory run that reached a verdict (or stopped), when it failed; else, when
/// the item's test stage failed without a recorded event, what the stage says.
fn latest_failure(f: &Facts<'_>) -> Option<Failing> {
    let latest = f.entries_of(Service::Tfactory).find(|(e, v)| {
        let class = StatusClass::classify(&e.status);
        class != StatusClass::Running && class != StatusClass::Queued
            || v.get("outcome").is_some_and(|o| !o.is_null())
    });
    if let Some((e, v)) = latest {
        if !event_failed(v, &e.status) {
            return None;
        }
        return Some(Failing {
            spec: e.task_id.clone(),
            status: e.status.clone(),
            outcome: text_at(v, &["outcome"]).map(one_line),
            halt_reason: text_at(v, &["halt_reason"]).map(one_line),
            verification: verification_line(v),
            tests: failing_tests(v),
            at: e.time,
        });
    }
    let test = f.item.stages.test.as_ref().filter(|t| t.failed())?;
    Some(Failing {
        spec: test.task_id.clone(),
        status: test.status.clone(),
        outcome: test.outcome.as_deref().map(one_line),
        halt_reason: test.halt_reason.as_deref().map(one_line),
        verification: None,
        tests: Vec::new(),
        at: test.at,
    })
}

fn fix_request(failing: Option<&Failing>, note: Option<&str>) -> String {
    let Some(fail) = failing else {
        return note.unwrap_or_default().to_owned();
    };
    let mut md = String::from("## Failing verdicts from TFactory\n\n");
    md.push_str(&format!(
        "Spec `{}` reported `{}`{} at {}.\n",
        one_line(&fail.spec),
        one_line(&fail.status),
        fail.outcome
            .as_deref()
            .map(|o| format!(" (outcome `{o}`)"))
            .unwrap_or_default(),
        fail.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    if let Some(h) = &fail.halt_reason {
        md.push_str(&format!("\nHalt reason: {h}\n"));
    }
    if let Some(v) = &fail.verification {
        md.push_str(&format!("\nVerification: {v}\n"));
    }
    if fail.tests.is_empty() {
        md.push_str("\nNo failing test names were reported.\n");
    } else {
        md.push_str("\nFailing tests:\n\n");
        for t in &fail.tests {
            md.push_str(&format!("- `{t}`\n"));
        }
    }
    if let Some(n) = note {
        md.push_str("\n## Note\n\n");
        md.push_str(n);
        md.push('\n');
    }
    md
}

fn kick_handback(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    let item = f.item;
    let task = match (&item.stages.code, item.links.aifactory_task_ids.last()) {
        (Some(code), _) => code.task_id.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(Refusal::new(format!(
                "{} has no AIFactory task to send a correction to.",
                f.label()
            )));
        }
    };
    let task = segment(Service::Aifactory, &task)?;
    if let Some(code) = &item.stages.code
        && matches!(
            code.status_class,
            StatusClass::Running | StatusClass::Queued
        )
    {
        return Err(Refusal::new(format!(
            "AIFactory task `{task}` on {} is `{}`: a correction can start only once the current \
             run stops (AIFactory itself does not check, so CFactory does).",
            f.label(),
            safe_token(&code.status)
        )));
    }
    if let Some(test) = &item.stages.test
        && matches!(
            test.status_class,
            StatusClass::Running | StatusClass::Queued
        )
    {
        return Err(Refusal::new(format!(
            "TFactory spec `{}` on {} is still verifying (`{}`); wait for its verdict before \
             sending a correction.",
            safe_token(&test.task_id),
            f.label(),
            safe_token(&test.status)
        )));
    }
    let failing = latest_failure(f);
    if failing.is_none() && note.is_none() {
        return Err(Refusal::new(format!(
            "No failing TFactory verdict is on record for {} and no note says what to fix; \
             add a note describing the correction.",
            f.label()
        )));
    }
    let fix_request_md = fix_request(failing.as_ref(), note);
    let mut payload = json!({
        "fix_request_md": fix_request_md,
        "source": "cfactory",
        "confirm": true,
        "correlation_key": f.key(),
    });
    if let Some(fail) = &failing {
        payload["tfactory_task_id"] = json!(fail.spec);
    }
    let why = match &failing {
        Some(fail) => format!(
            "TFactory spec `{}` failed ({} failing test{} listed){}",
            safe_token(&fail.spec),
            fail.tests.len(),
            if fail.tests.len() == 1 { "" } else { "s" },
            if note.is_some() {
                ", plus the note"
            } else {
                ""
            }
        ),
        None => "no failing verdict is on record, so the fix request is the note alone".to_owned(),
    };
    Ok(Draft {
        service: Service::Aifactory,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/apply-correction"),
            payload,
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "{why}. The handback sends AIFactory task `{task}` on {} a fix request with \
             confirm: true, which starts a correction run ({} handback{} so far); while it \
             runs the task may read human_review with review_reason qa_rejected.",
            f.label(),
            item.handbacks,
            if item.handbacks == 1 { "" } else { "s" }
        ),
    })
}

// ---- recover ----------------------------------------------------------------------

fn recover(f: &Facts<'_>, restart: bool) -> Result<Draft, Refusal> {
    let Some(code) = &f.item.stages.code else {
        return Err(Refusal::new(format!(
            "{} has no AIFactory task to recover.",
            f.label()
        )));
    };
    let task = segment(Service::Aifactory, &code.task_id)?;
    // The caller's stall deadline decides when it filled `liveness` (which judges only
    // running and stuck stages); otherwise the default deadline does.
    let stalled =
        if f.item.liveness.last_activity_age_seconds.is_some() && code.status_class.can_stall() {
            f.item.liveness.stalled
        } else {
            (f.now - code.at).num_seconds() > DEFAULT_STALL_DEADLINE_SECONDS
        };
    // AI review is AIFactory's own QA step: it runs, and can hang, like coding does.
    let in_flight = code.status_class == StatusClass::Running
        || (code.status_class == StatusClass::Review && !in_human_review(&code.status));
    let why = match code.status_class {
        StatusClass::Stuck => format!(
            "AIFactory reports task `{task}` as `{}`",
            safe_token(&code.status)
        ),
        _ if in_flight && stalled => format!(
            "AIFactory task `{task}` is `{}` but has been silent for {}",
            safe_token(&code.status),
            age(f.now, code.at)
        ),
        _ if in_flight => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} is `{}` and reported {} ago; recover is for a task \
                 that stopped reporting.",
                f.label(),
                safe_token(&code.status),
                age(f.now, code.at)
            )));
        }
        StatusClass::Failed => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} failed (`{}`); recover resumes a stuck run, a \
                 failed one needs a correction (kick_handback).",
                f.label(),
                safe_token(&code.status)
            )));
        }
        class => {
            return Err(Refusal::new(format!(
                "AIFactory task `{task}` on {} is `{}` ({}), not stuck; there is nothing to recover.",
                f.label(),
                safe_token(&code.status),
                class.as_str()
            )));
        }
    };
    let (payload, what) = if restart {
        (
            json!({"autoRestart": true}),
            "Recover with autoRestart stops any running process, resets the task to backlog \
             and starts it again.",
        )
    } else {
        (
            Value::Null,
            "Recover stops any running process and resets the task to backlog without \
             restarting it; propose recover_and_restart to start it again.",
        )
    };
    Ok(Draft {
        service: Service::Aifactory,
        step: step(
            HttpMethod::Post,
            format!("/api/tasks/{task}/recover"),
            payload,
        )?,
        follow_ups: Vec::new(),
        rationale: format!(
            "{why}. {what} AIFactory refuses nothing here, so CFactory offers it only for a \
             stuck or silent task."
        ),
    })
}

// ---- reject_review ----------------------------------------------------------------

fn reject_review(f: &Facts<'_>, note: Option<&str>) -> Result<Draft, Refusal> {
    match find_gate(f).ok_or_else(|| no_gate(f, "reject"))? {
        Gate::TestPlan(test) => {
            let spec = segment(Service::Tfactory, &test.task_id)?;
            Ok(Draft {
                service: Service::Tfactory,
                step: step(
                    HttpMethod::Post,
                    format!("/api/tasks/{spec}/reject-plan"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "TFactory spec `{spec}` on {} is at its test-plan gate ({}). Rejecting the \
                     plan sends it back to TFactory's planner; no tests run from it.",
                    f.label(),
                    safe_token(&test.status)
                ),
            })
        }
        Gate::CodeReview(code) => {
            let task = segment(Service::Aifactory, &code.task_id)?;
            Ok(Draft {
                service: Service::Aifactory,
                step: step(
                    HttpMethod::Delete,
                    format!("/api/tasks/{task}"),
                    Value::Null,
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "AIFactory task `{task}` on {} waits in human_review. AIFactory has no \
                     separate reject: rejecting deletes the task and discards its unmerged work. \
                     The delete needs an admin token on AIFactory (a member token gets 403). To \
                     ask for changes instead, kick a handback with a note.",
                    f.label()
                ),
            })
        }
        Gate::Plan(plan) => {
            let session = segment(Service::Pfactory, &plan.task_id)?;
            let feedback = note.unwrap_or("Rejected from the CFactory cockpit.");
            Ok(Draft {
                service: Service::Pfactory,
                step: step(
                    HttpMethod::Post,
                    format!("/api/plan/sessions/{session}/reject"),
                    json!({"approver": APPROVER, "feedback": feedback}),
                )?,
                follow_ups: Vec::new(),
                rationale: format!(
                    "PFactory session `{session}` on {} is `{}`. Rejecting records the person who \
                     confirms and the feedback; PFactory emits no issues for a rejected plan.",
                    f.label(),
                    safe_token(&plan.status)
                ),
            })
        }
    }
}

// ---- the store port ---------------------------------------------------------------

/// Where proposals live until they are confirmed, rejected or expire.
#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Stores a new proposal. `Duplicate` when the tenant already has an action with its
    /// id; nothing changes then.
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError>;

    /// The tenant's action with this id; `None` when the tenant has none (an action of
    /// another tenant included).
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError>;

    /// At most `limit` of the tenant's actions, newest proposal first (ties by id,
    /// descending); only those in `status` when given.
    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<Vec<PreparedAction>, StoreError>;

    /// Atomic compare-and-set: when the tenant's action `id` is in status `from`, moves it
    /// to `to`, replaces its results with `results`, and returns it as stored now. `None`
    /// when there is no such action or its status is not `from`; nothing changes then, so
    /// of two concurrent moves from the same status exactly one wins.
    async fn transition(
        &self,
        tenant: &TenantId,
        id: &str,
        from: ActionStatus,
        to: ActionStatus,
        results: Vec<StepResult>,
    ) -> Result<Option<PreparedAction>, StoreError>;
}

type ActionMap = BTreeMap<(TenantId, String), PreparedAction>;

/// An [`ActionStore`] held in memory: the fake for tests and the in-memory store.
#[derive(Debug, Default)]
pub struct InMemoryActions {
    actions: Mutex<ActionMap>,
}

impl InMemoryActions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ActionMap>, StoreError> {
        self.actions
            .lock()
            .map_err(|_| StoreError::Unexpected("action store lock poisoned".into()))
    }
}

#[async_trait]
impl ActionStore for InMemoryActions {
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let key = (action.tenant.clone(), action.id.clone());
        if map.contains_key(&key) {
            return Err(StoreError::Duplicate(format!("action {}", action.id)));
        }
        map.insert(key, action.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError> {
        Ok(self.lock()?.get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<Vec<PreparedAction>, StoreError> {
        let map = self.lock()?;
        let mut found: Vec<PreparedAction> = map
            .values()
            .filter(|a| &a.tenant == tenant && status.is_none_or(|s| a.status == s))
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &str,
        from: ActionStatus,
        to: ActionStatus,
        results: Vec<StepResult>,
    ) -> Result<Option<PreparedAction>, StoreError> {
        let mut map = self.lock()?;
        match map.get_mut(&(tenant.clone(), id.to_owned())) {
            Some(action) if action.status == from => {
                action.status = to;
                action.results = results;
                Ok(Some(action.clone()))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CompletionEvent;
    use crate::ids::EventId;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    /// An item built from `events` (JSON objects missing `id`, `time`, `phase`,
    /// `correlation_key` get defaults), with the matching timeline.
    fn build(events: &[Value]) -> (WorkItem, Vec<TimelineEntry>) {
        let mut item = WorkItem::new(CorrelationKey::issue(142), t0());
        let mut timeline = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let mut e = e.clone();
            let minute = i64::try_from(i).unwrap();
            let obj = e.as_object_mut().unwrap();
            obj.entry("id").or_insert(json!(format!("evt-{i}")));
            obj.entry("time")
                .or_insert(json!((t0() + Duration::minutes(minute)).to_rfc3339()));
            obj.entry("phase").or_insert(json!("act"));
            obj.entry("correlation_key").or_insert(json!("142"));
            let raw = e.to_string();
            let event = CompletionEvent::parse(&raw).unwrap();
            item.apply_event(&event, event.time);
            timeline.push(TimelineEntry {
                seq: minute + 1,
                event_id: Some(EventId::parse(&format!("evt-{i}")).unwrap()),
                service: event.service,
                task_id: event.task_id.clone(),
                status: event.status.clone(),
                time: event.time,
                received_at: event.time,
                raw,
            });
        }
        (item, timeline)
    }

    fn plan(kind: ActionKind, events: &[Value], note: Option<&str>) -> Result<ActionPlan, Refusal> {
        let (item, timeline) = build(events);
        let now = t0() + Duration::minutes(30);
        plan_action(
            kind,
            &item,
            &timeline,
            note,
            now,
            Duration::seconds(DEFAULT_ACTION_TTL_SECONDS),
            &context(),
        )
    }

    /// The settings the tests plan with: `acme/shop` maps to AIFactory's project `shop`.
    fn context() -> PlanContext {
        PlanContext {
            aifactory_projects: [("acme/shop".to_owned(), "shop".to_owned())].into(),
        }
    }

    fn pf(status: &str, extra: Value) -> Value {
        let mut v = json!({
            "service": "pfactory", "task_id": "001-refund-flow", "status": status,
            "phase": "plan", "repo": "acme/shop", "title": "Refund flow",
            "correlation": {"session_id": "001-refund-flow", "issue_number": 142}
        });
        merge(&mut v, extra);
        v
    }

    fn af(status: &str, extra: Value) -> Value {
        let mut v = json!({
            "service": "aifactory", "task_id": "proj:001", "status": status,
            "correlation": {"aifactory_task_id": "proj:001"}
        });
        merge(&mut v, extra);
        v
    }

    fn tf(status: &str, extra: Value) -> Value {
        let mut v = json!({
            "service": "tfactory", "task_id": "spec-001", "status": status, "phase": "test"
        });
        merge(&mut v, extra);
        v
    }

    fn merge(v: &mut Value, extra: Value) {
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
    }

    fn emitted() -> Value {
        pf(
            "emitted",
            json!({"evidence": {"proof_kind": "issues", "epic_issue": 142, "child_count": 2}}),
        )
    }

    fn refused(r: Result<ActionPlan, Refusal>) -> String {
        match r {
            Ok(p) => panic!("expected a refusal, got {p:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn kinds_round_trip_and_name_their_tools() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse(k.as_str()), Some(k));
            assert_eq!(k.tool_name(), format!("propose_{}", k.as_str()));
            assert_eq!(ActionKind::from_tool_name(k.tool_name()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(ActionKind::parse("confirm"), None);
        assert_eq!(HttpMethod::parse("post"), None);
        assert_eq!(
            serde_json::to_value(HttpMethod::Delete).unwrap(),
            json!("DELETE")
        );
    }

    #[test]
    fn endpoints_are_root_relative_only() {
        for good in [
            "/api/tasks/proj:001/recover",
            "/api/tasks/create-and-run?project_id=shop&title=Fix%20it",
            "/api/plan/sessions/001-refund-flow/approve",
        ] {
            assert!(Endpoint::parse(good).is_ok(), "{good}");
        }
        let cases = [
            ("https://evil.example/api", EndpointError::Scheme),
            ("http://127.0.0.1:3101/api/tasks", EndpointError::Scheme),
            ("//evil.example/api", EndpointError::DoubleSlash),
            ("/api//tasks", EndpointError::DoubleSlash),
            ("/api/tasks/../keys", EndpointError::DotSegment),
            ("/api/tasks/..", EndpointError::DotSegment),
            ("/api/tasks/%2e%2e/keys", EndpointError::DotSegment),
            ("/api/tasks/a%2Fb", EndpointError::DotSegment),
            ("api/tasks", EndpointError::NotRootRelative),
            ("", EndpointError::NotRootRelative),
            ("/api/tasks/a b", EndpointError::BadCharacter),
            ("/api/tasks/a\nb", EndpointError::BadCharacter),
            ("/api\\tasks", EndpointError::BadCharacter),
            ("/api/tasks#x", EndpointError::BadCharacter),
            ("/api/tasks?x=%zz", EndpointError::BadEscape),
        ];
        for (bad, want) in cases {
            assert_eq!(Endpoint::parse(bad), Err(want), "{bad:?}");
        }
        assert_eq!(
            Endpoint::parse(&format!("/{}", "a".repeat(MAX_ENDPOINT_CHARS))),
            Err(EndpointError::TooLong)
        );
        // Deserialising validates too: a stored action cannot smuggle a URL in.
        let step: Result<ActionStep, _> = serde_json::from_value(
            json!({"method": "POST", "endpoint": "https://evil.example/x", "payload": null}),
        );
        assert!(step.is_err());
        let step: Result<ActionStep, _> =
            serde_json::from_value(json!({"method": "TRACE", "endpoint": "/x"}));
        assert!(step.is_err());
    }

    #[test]
    fn placeholders_are_filled_once_everywhere() {
        let at = t0();
        let v = json!({
            "approver": APPROVER,
            "nested": [{"when": CONFIRMED_AT}, "by {{approver}} at {{confirmed_at}}"],
            "untouched": "{{other}} {{", "n": 3
        });
        let filled = fill_placeholders(&v, "ada {{confirmed_at}}", at);
        assert_eq!(
            filled,
            json!({
                "approver": "ada {{confirmed_at}}",
                "nested": [{"when": "2026-06-01T12:00:00Z"},
                           "by ada {{confirmed_at}} at 2026-06-01T12:00:00Z"],
                "untouched": "{{other}} {{", "n": 3
            })
        );
    }

    #[test]
    fn approve_plan_with_passed_gates_goes_to_pfactory() {
        let review = json!({"review": {"gates_passed": true, "aggregate_score": 0.86,
            "threshold": 0.7, "lenses": [{"lens": "security", "blocking": false}]}});
        let p = plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", review)],
            Some("  ship it  "),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::Pfactory);
        assert_eq!(p.step.method, HttpMethod::Post);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/approve"
        );
        assert_eq!(
            p.step.payload,
            json!({"approver": APPROVER, "feedback": "ship it"})
        );
        assert!(p.follow_ups.is_empty());
        assert!(p.rationale.contains("0.86"), "{}", p.rationale);
        assert_eq!(p.note.as_deref(), Some("ship it"));
        assert_eq!(p.expires_at - p.created_at, Duration::minutes(15));
    }

    #[test]
    fn approve_plan_is_refused_while_gates_have_not_passed() {
        let review = json!({"review": {"gates_passed": false, "aggregate_score": 0.55,
            "threshold": 0.7, "lenses": [{"lens": "security", "blocking": true},
                                         {"lens": "feasibility", "blocking": false}]}});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", review)],
            None,
        ));
        assert!(why.contains("have not passed"), "{why}");
        assert!(why.contains("0.55") && why.contains("0.70"), "{why}");
        assert!(why.contains("blocking: security"), "{why}");
        // The published YAML's spelling of the gates counts too.
        let gates = json!({"review_gates": [{"name": "architecture", "verdict": "pass"},
                                            {"name": "security", "verdict": "fail"}]});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", gates)],
            None,
        ));
        assert!(why.contains("blocking: security"), "{why}");
        // PFactory's real shape marks the findings blocking, not the lens.
        let real = json!({"review": {"gates_passed": false, "aggregate_score": 0.6,
            "threshold": 0.7, "lenses": [
                {"lens": "scope", "score": 4, "findings": [{"blocking": false, "text": "ok"}]},
                {"lens": "risk", "score": 2, "findings": [{"blocking": true, "text": "no rollback"}]}]}});
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("processed", real)],
            None,
        ));
        assert!(why.contains("blocking: risk"), "{why}");
        assert!(!why.contains("scope"), "{why}");
    }

    #[test]
    fn approve_plan_still_in_review_or_without_a_result_on_record() {
        let why = refused(plan(
            ActionKind::ApproveGate,
            &[pf("reviewing", json!({}))],
            None,
        ));
        assert!(why.contains("still running"), "{why}");
        let p = plan(
            ActionKind::ApproveGate,
            &[pf("awaiting_approval", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(p.step.payload, json!({"approver": APPROVER}));
        assert!(
            p.rationale.contains("no review-gate result on record"),
            "{}",
            p.rationale
        );
        // A newer result on record wins over an older one.
        let old = pf(
            "awaiting_approval",
            json!({"review": {"gates_passed": false}}),
        );
        let new = pf(
            "awaiting_approval",
            json!({"review": {"gates_passed": true}}),
        );
        assert!(plan(ActionKind::ApproveGate, &[old.clone(), new.clone()], None).is_ok());
        assert!(plan(ActionKind::ApproveGate, &[new, old], None).is_err());
    }

    #[test]
    fn approve_test_plan_goes_to_tfactory() {
        let events = [
            emitted(),
            af("done", json!({})),
            tf("planning", json!({"plan_status": "awaiting_approval"})),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert_eq!(p.target_service, Service::Tfactory);
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/spec-001/approve-plan");
        assert_eq!(p.step.payload, Value::Null);
        let r = plan(ActionKind::RejectReview, &events, None).unwrap();
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/spec-001/reject-plan");
        // A plan status that says the plan is approved means no gate.
        let events = [
            emitted(),
            af("done", json!({})),
            tf("planning", json!({"plan_status": "approved"})),
        ];
        let why = refused(plan(ActionKind::ApproveGate, &events, None));
        assert!(why.contains("waits at a gate"), "{why}");
    }

    #[test]
    fn approve_code_in_human_review_opens_then_merges_the_pr() {
        let events = [
            emitted(),
            af(
                "human_review",
                json!({"pr_number": 310, "review_reason": "completed"}),
            ),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert_eq!(p.target_service, Service::Aifactory);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/tasks/proj:001/worktree/create-pr"
        );
        assert_eq!(p.follow_ups.len(), 1);
        assert_eq!(p.follow_ups[0].method, HttpMethod::Post);
        assert_eq!(
            p.follow_ups[0].endpoint.as_str(),
            "/api/tasks/proj:001/worktree/merge"
        );
        assert!(p.rationale.contains("PR #310"), "{}", p.rationale);
        // Reject in human review deletes the task.
        let r = plan(ActionKind::RejectReview, &events, None).unwrap();
        assert_eq!(r.step.method, HttpMethod::Delete);
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/proj:001");
    }

    #[test]
    fn approve_is_refused_for_flagged_input_a_failed_verdict_or_no_gate() {
        let flagged = af(
            "human_review",
            json!({"injection_scan": {"verdict": "flagged", "reason": "ignore previous instructions"}}),
        );
        let why = refused(plan(ActionKind::ApproveGate, &[emitted(), flagged], None));
        assert!(why.contains("injection scan flagged"), "{why}");
        assert!(
            !why.contains("ignore previous"),
            "upstream text stays out: {why}"
        );

        let events = [
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
            tf("triaged", json!({"outcome": "failure"})),
        ];
        let why = refused(plan(ActionKind::ApproveGate, &events, None));
        assert!(why.contains("failed"), "{why}");
        // A failure from before the latest correction does not block the new run.
        let events = [
            emitted(),
            af("done", json!({})),
            tf("triaged", json!({"outcome": "failure"})),
            af("human_review", json!({"review_reason": "completed"})),
        ];
        let p = plan(ActionKind::ApproveGate, &events, None).unwrap();
        assert!(
            p.rationale.contains("not verified this run"),
            "{}",
            p.rationale
        );

        let why = refused(plan(
            ActionKind::ApproveGate,
            &[emitted(), af("in_progress", json!({}))],
            None,
        ));
        assert!(
            why.contains("plan emitted (done), code in_progress (running)"),
            "{why}"
        );
    }

    #[test]
    fn handoff_creates_and_runs_with_provenance() {
        let p = plan(
            ActionKind::TriggerHandoff,
            &[emitted()],
            Some("Keep the refund API backwards compatible."),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::Aifactory);
        assert_eq!(p.step.method, HttpMethod::Post);
        let e = p.step.endpoint.as_str();
        assert!(
            e.starts_with("/api/tasks/create-and-run?project_id=shop&title=Refund%20flow&description=Governed%20issue%20%23142"),
            "{e}"
        );
        assert!(e.contains("backwards%20compatible%2E"), "{e}");
        assert_eq!(
            p.step.payload,
            json!({
                "auto_continue": true, "complexity": "standard", "baseBranch": "main",
                "provenance": {
                    "session_id": "001-refund-flow", "issue_number": 142, "repo": "acme/shop",
                    "source": "cfactory", "correlation_key": "142",
                    "approved_by": APPROVER, "approval_timestamp": CONFIRMED_AT
                }
            })
        );
        let filled = fill_placeholders(&p.step.payload, "ada", t0());
        assert_eq!(filled["provenance"]["approved_by"], "ada");
        assert_eq!(
            filled["provenance"]["approval_timestamp"],
            "2026-06-01T12:00:00Z"
        );
    }

    #[test]
    fn handoff_is_refused_unless_an_approved_plan_waits_for_code() {
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[pf("awaiting_approval", json!({}))],
            None,
        ));
        assert!(why.contains("Approve it first"), "{why}");
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[emitted(), af("in_progress", json!({}))],
            None,
        ));
        assert!(why.contains("already has task `proj:001`"), "{why}");
        let why = refused(plan(
            ActionKind::TriggerHandoff,
            &[af("done", json!({}))],
            None,
        ));
        assert!(why.contains("no PFactory plan"), "{why}");
        let no_repo = json!({
            "service": "pfactory", "task_id": "002-x", "status": "emitted", "phase": "plan"
        });
        let why = refused(plan(ActionKind::TriggerHandoff, &[no_repo], None));
        assert!(why.contains("names no repository"), "{why}");
    }

    #[test]
    fn handback_builds_the_fix_request_from_failing_verdicts_and_the_note() {
        let failing = tf(
            "triaged",
            json!({
                "outcome": "failure",
                "halt_reason": "tests_failed: 2 failing, handback to AIFactory (cycle 1/2)",
                "verification": {"passed": false, "mutation_score": 0.42},
                "result": {"failing_tests": ["unit::refund_test_1", "api::refund_`test`_2"]},
                "verdicts": [{"test_id": "unit::refund_test_1", "verdict": "rejected"},
                             {"test_id": "unit::ok_test", "verdict": "accepted"},
                             {"test_id": "browser::checkout", "verdict": "rejected"}],
            }),
        );
        let events = [emitted(), af("done", json!({})), failing];
        let p = plan(
            ActionKind::KickHandback,
            &events,
            Some("Mind the currency rounding."),
        )
        .unwrap();
        assert_eq!(p.target_service, Service::Aifactory);
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/tasks/proj:001/apply-correction"
        );
        let body = &p.step.payload;
        assert_eq!(body["confirm"], json!(true));
        assert_eq!(body["source"], json!("cfactory"));
        assert_eq!(body["correlation_key"], json!("142"));
        assert_eq!(body["tfactory_task_id"], json!("spec-001"));
        let md = body["fix_request_md"].as_str().unwrap();
        assert!(md.starts_with("## Failing verdicts from TFactory"), "{md}");
        assert!(md.contains("- `unit::refund_test_1`\n"), "{md}");
        assert!(
            md.contains("- `api::refund_test_2`\n"),
            "backticks stripped: {md}"
        );
        assert!(md.contains("- `browser::checkout`\n"), "{md}");
        assert_eq!(md.matches("unit::refund_test_1").count(), 1, "{md}");
        assert!(!md.contains("ok_test"), "{md}");
        assert!(md.contains("Halt reason: tests_failed: 2 failing"), "{md}");
        assert!(md.contains("mutation_score=0.42"), "{md}");
        assert!(
            md.ends_with("## Note\n\nMind the currency rounding.\n"),
            "{md}"
        );
        assert!(p.rationale.contains("3 failing tests"), "{}", p.rationale);
    }

    #[test]
    fn handback_with_no_failing_verdict_sends_the_note_alone() {
        let events = [
            emitted(),
            af("done", json!({})),
            tf("triaged", json!({"outcome": "failure"})),
            tf("triaged", json!({"outcome": "success"})),
        ];
        let p = plan(ActionKind::KickHandback, &events, Some("Rename the flag.")).unwrap();
        assert_eq!(p.step.payload["fix_request_md"], json!("Rename the flag."));
        assert!(p.step.payload.get("tfactory_task_id").is_none());
        let why = refused(plan(ActionKind::KickHandback, &events, None));
        assert!(why.contains("add a note"), "{why}");
    }

    #[test]
    fn handback_is_refused_while_code_runs_or_tests_verify_or_without_a_task() {
        let why = refused(plan(
            ActionKind::KickHandback,
            &[emitted(), af("in_progress", json!({}))],
            Some("x"),
        ));
        assert!(why.contains("current run stops"), "{why}");
        let why = refused(plan(
            ActionKind::KickHandback,
            &[emitted(), af("done", json!({})), tf("executing", json!({}))],
            Some("x"),
        ));
        assert!(why.contains("still verifying"), "{why}");
        let why = refused(plan(ActionKind::KickHandback, &[emitted()], Some("x")));
        assert!(why.contains("no AIFactory task"), "{why}");
    }

    #[test]
    fn recover_needs_a_stuck_or_silent_task() {
        // Reported at minute 1; planned at minute 30: silent past the stall deadline.
        let p = plan(
            ActionKind::Recover,
            &[emitted(), af("in_progress", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/proj:001/recover");
        assert!(p.rationale.contains("silent for 29m"), "{}", p.rationale);
        let p = plan(ActionKind::Recover, &[af("stuck", json!({}))], None).unwrap();
        assert_eq!(p.step.method, HttpMethod::Post);

        let (item, timeline) = build(&[emitted(), af("in_progress", json!({}))]);
        let soon = t0() + Duration::minutes(3);
        let why = plan_action(
            ActionKind::Recover,
            &item,
            &timeline,
            None,
            soon,
            Duration::minutes(15),
            &context(),
        )
        .unwrap_err()
        .reason;
        assert!(why.contains("reported 2m ago"), "{why}");
        let why = refused(plan(ActionKind::Recover, &[af("done", json!({}))], None));
        assert!(why.contains("not stuck"), "{why}");
        let why = refused(plan(
            ActionKind::Recover,
            &[af("qa_failed", json!({}))],
            None,
        ));
        assert!(why.contains("kick_handback"), "{why}");
        let why = refused(plan(ActionKind::Recover, &[emitted()], None));
        assert!(why.contains("no AIFactory task"), "{why}");
    }

    #[test]
    fn recover_follows_the_callers_liveness_and_covers_a_hung_ai_review() {
        let now = t0() + Duration::minutes(30);
        let ttl = Duration::minutes(15);
        let (mut item, timeline) = build(&[emitted(), af("in_progress", json!({}))]);
        // A caller whose deadline is an hour says the task is not stalled yet.
        item.refresh_liveness(now, Duration::hours(1));
        let why = plan_action(
            ActionKind::Recover,
            &item,
            &timeline,
            None,
            now,
            ttl,
            &context(),
        )
        .unwrap_err()
        .reason;
        assert!(why.contains("stopped reporting"), "{why}");
        item.refresh_liveness(now, Duration::minutes(5));
        assert!(
            plan_action(
                ActionKind::Recover,
                &item,
                &timeline,
                None,
                now,
                ttl,
                &context()
            )
            .is_ok()
        );
        // AI review runs like coding does, and can hang past the default deadline.
        let (mut item, timeline) = build(&[emitted(), af("ai_review", json!({}))]);
        item.refresh_liveness(now, Duration::hours(1));
        assert!(
            plan_action(
                ActionKind::Recover,
                &item,
                &timeline,
                None,
                now,
                ttl,
                &context()
            )
            .is_ok()
        );
        // Human review is a person's gate, never "stuck".
        let (item, timeline) = build(&[
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
        ]);
        assert!(
            plan_action(
                ActionKind::Recover,
                &item,
                &timeline,
                None,
                now,
                ttl,
                &context()
            )
            .is_err()
        );
    }

    #[test]
    fn available_actions_lists_what_can_be_proposed_now() {
        let now = t0() + Duration::minutes(30);
        let (item, timeline) = build(&[
            emitted(),
            af("human_review", json!({"review_reason": "completed"})),
        ]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::ApproveGate, ActionKind::RejectReview]
        );
        let (item, timeline) = build(&[emitted()]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::TriggerHandoff]
        );
        let failing = tf("triaged", json!({"outcome": "failure"}));
        let (item, timeline) = build(&[emitted(), af("done", json!({})), failing]);
        assert_eq!(
            available_actions(&item, &timeline, now, &context()),
            [ActionKind::KickHandback]
        );
    }

    #[test]
    fn reject_plan_goes_to_pfactory_with_feedback() {
        let p = plan(
            ActionKind::RejectReview,
            &[pf("awaiting_approval", json!({}))],
            Some("Out of scope this quarter."),
        )
        .unwrap();
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/reject"
        );
        assert_eq!(
            p.step.payload,
            json!({"approver": APPROVER, "feedback": "Out of scope this quarter."})
        );
        let p = plan(
            ActionKind::RejectReview,
            &[pf("reviewing", json!({}))],
            None,
        )
        .unwrap();
        assert_eq!(
            p.step.payload["feedback"],
            json!("Rejected from the CFactory cockpit.")
        );
        let why = refused(plan(ActionKind::RejectReview, &[emitted()], None));
        assert!(why.contains("waits at a gate to reject"), "{why}");
    }

    #[test]
    fn ids_that_cannot_be_a_path_segment_are_refused() {
        let evil = json!({
            "service": "aifactory", "task_id": "../../admin", "status": "stuck"
        });
        let why = refused(plan(ActionKind::Recover, &[evil], None));
        assert!(why.contains("cannot go in a URL path"), "{why}");
        let slash = json!({"service": "aifactory", "task_id": "a/b", "status": "stuck"});
        assert!(plan(ActionKind::Recover, &[slash], None).is_err());
    }

    #[test]
    fn a_prepared_action_serialises_as_the_issue_shows() {
        let p = plan(
            ActionKind::ApproveGate,
            &[
                emitted(),
                af("human_review", json!({"review_reason": "completed"})),
            ],
            None,
        )
        .unwrap();
        let action = p.prepare("act_1", TenantId::default_tenant(), "copilot");
        let v = serde_json::to_value(&action).unwrap();
        for field in [
            "id",
            "kind",
            "correlation_key",
            "target_service",
            "method",
            "endpoint",
            "payload",
            "follow_ups",
            "rationale",
            "status",
            "expires_at",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["kind"], json!("approve_gate"));
        assert_eq!(v["status"], json!("prepared"));
        assert_eq!(v["target_service"], json!("aifactory"));
        assert_eq!(v["method"], json!("POST"));
        assert_eq!(
            v["follow_ups"],
            json!([{"method": "POST", "endpoint": "/api/tasks/proj:001/worktree/merge", "payload": null}])
        );
        let back: PreparedAction = serde_json::from_value(v).unwrap();
        assert_eq!(back, action);
        assert_eq!(back.steps().len(), 2);
        assert!(!back.is_expired_at(back.expires_at - Duration::seconds(1)));
        assert!(back.is_expired_at(back.expires_at));
    }

    #[tokio::test]
    async fn the_in_memory_store_moves_an_action_exactly_once() {
        let store = InMemoryActions::new();
        let tenant = TenantId::default_tenant();
        let other = TenantId::parse("other").unwrap();
        let p = plan(ActionKind::Recover, &[af("stuck", json!({}))], None).unwrap();
        let a = p.clone().prepare("a1", tenant.clone(), "copilot");
        let mut b = p.prepare("a2", tenant.clone(), "copilot");
        b.created_at += Duration::seconds(1);
        store.save(&a).await.unwrap();
        store.save(&b).await.unwrap();
        assert!(matches!(
            store.save(&a).await,
            Err(StoreError::Duplicate(_))
        ));
        assert!(store.get(&other, "a1").await.unwrap().is_none());

        let listed = store.list(&tenant, None, 10).await.unwrap();
        assert_eq!(
            listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["a2", "a1"]
        );
        assert_eq!(store.list(&tenant, None, 1).await.unwrap().len(), 1);

        let result = StepResult {
            method: HttpMethod::Post,
            endpoint: Endpoint::parse("/api/tasks/proj:001/recover").unwrap(),
            status_code: Some(200),
            ok: true,
            response: json!({"success": true}),
            error: None,
            duration_ms: 5,
        };
        let moved = store
            .transition(
                &tenant,
                "a1",
                ActionStatus::Prepared,
                ActionStatus::Executed,
                vec![result],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.status, ActionStatus::Executed);
        assert_eq!(moved.results.len(), 1);
        let again = store
            .transition(
                &tenant,
                "a1",
                ActionStatus::Prepared,
                ActionStatus::Executed,
                vec![],
            )
            .await
            .unwrap();
        assert!(again.is_none(), "a second confirm loses");
        assert!(
            store
                .transition(
                    &other,
                    "a2",
                    ActionStatus::Prepared,
                    ActionStatus::Rejected,
                    vec![]
                )
                .await
                .unwrap()
                .is_none()
        );
        let prepared = store
            .list(&tenant, Some(ActionStatus::Prepared), 10)
            .await
            .unwrap();
        assert_eq!(prepared.len(), 1);
        assert_eq!(prepared[0].id, "a2");
    }

    #[test]
    fn approve_code_follows_aifactory_review_reason() {
        let with = |reason: Value| {
            [
                emitted(),
                af("human_review", json!({"review_reason": reason})),
            ]
        };
        let p = plan(ActionKind::ApproveGate, &with(json!("plan_review")), None).unwrap();
        assert_eq!(p.step.endpoint.as_str(), "/api/tasks/proj:001/approve-plan");
        assert!(p.follow_ups.is_empty(), "a plan review merges nothing");
        for reason in ["qa_rejected", "errors"] {
            let why = refused(plan(ActionKind::ApproveGate, &with(json!(reason)), None));
            assert!(why.contains("handback"), "{reason}: {why}");
            assert!(
                plan(
                    ActionKind::KickHandback,
                    &with(json!(reason)),
                    Some("fix it")
                )
                .is_ok()
            );
        }
        for reason in ["incomplete", "plan_unreadable"] {
            let why = refused(plan(ActionKind::ApproveGate, &with(json!(reason)), None));
            assert!(
                why.contains("nothing to approve or merge"),
                "{reason}: {why}"
            );
        }
        let why = refused(plan(ActionKind::ApproveGate, &with(Value::Null), None));
        assert!(why.contains("no review_reason"), "{why}");
        let merge = plan(ActionKind::ApproveGate, &with(json!("completed")), None).unwrap();
        assert!(
            merge
                .rationale
                .contains("does not merge the GitHub pull request"),
            "{}",
            merge.rationale
        );
    }

    #[test]
    fn a_processed_plan_is_approved_and_its_issues_emitted_separately() {
        let processed = pf(
            "processed",
            json!({"review": {"gates_passed": true,
            "aggregate_score": 0.9, "threshold": 0.7, "lenses": []}}),
        );
        let p = plan(
            ActionKind::ApproveGate,
            std::slice::from_ref(&processed),
            None,
        )
        .unwrap();
        assert_eq!(
            p.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/approve"
        );
        assert!(
            p.rationale.contains("creates no GitHub issues"),
            "{}",
            p.rationale
        );
        let why = refused(plan(ActionKind::EmitIssues, &[processed], None));
        assert!(why.contains("approve it first"), "{why}");
        let approved = pf("approved", json!({}));
        let e = plan(ActionKind::EmitIssues, &[approved], None).unwrap();
        assert_eq!(e.target_service, Service::Pfactory);
        assert_eq!(
            e.step.endpoint.as_str(),
            "/api/plan/sessions/001-refund-flow/emit"
        );
        assert_eq!(
            e.step.payload,
            json!({"repo": "acme/shop", "dry_run": false})
        );
        let why = refused(plan(ActionKind::EmitIssues, &[emitted()], None));
        assert!(why.contains("already emitted"), "{why}");
    }

    #[test]
    fn a_handoff_needs_aifactory_project_key_for_the_repository() {
        let (item, timeline) = build(&[emitted()]);
        let now = t0() + Duration::minutes(30);
        let why = plan_action(
            ActionKind::TriggerHandoff,
            &item,
            &timeline,
            None,
            now,
            Duration::minutes(15),
            &PlanContext::default(),
        )
        .unwrap_err()
        .reason;
        assert!(why.contains("--aifactory-project acme/shop=KEY"), "{why}");
        assert!(why.contains("Nothing was sent"), "{why}");
    }

    #[test]
    fn recover_resets_without_restart_unless_asked() {
        let stuck = [emitted(), af("stuck", json!({}))];
        let p = plan(ActionKind::Recover, &stuck, None).unwrap();
        assert_eq!(p.step.payload, Value::Null);
        assert!(
            p.rationale.contains("without restarting"),
            "{}",
            p.rationale
        );
        let r = plan(ActionKind::RecoverAndRestart, &stuck, None).unwrap();
        assert_eq!(r.step.endpoint.as_str(), "/api/tasks/proj:001/recover");
        assert_eq!(r.step.payload, json!({"autoRestart": true}));
    }
}

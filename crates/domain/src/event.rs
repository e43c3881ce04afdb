//! The RFC-0001 completion event (v1.3 with the 0001a evidence addendum), parsed from the
//! exact JSON a sender posted. The original text is kept beside the typed view, so
//! nothing a sender sent is lost, unknown fields included.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{CorrelationKey, EventId, Identifier, parse_issue_number, parse_repo};
use crate::taxonomy::StatusClass;

pub use crate::services::Service;

/// Why an event was refused. `field` names the offending field as a dotted path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body was not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// A required field was absent.
    #[error("missing required field `{field}`")]
    Missing {
        /// The field's path.
        field: String,
    },
    /// A field was present but not acceptable.
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field's path.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl EventError {
    /// The offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Malformed(_) => None,
            Self::Missing { field } | Self::Invalid { field, .. } => Some(field),
        }
    }

    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One worker's share of a task's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerUsage {
    /// The worker's id.
    pub worker_id: Option<String>,
    /// LLM provider.
    pub provider: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// Prompt tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Total tokens, as the real senders spell it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Tokens used, as the RFC text spells it (older senders).
    pub tokens: Option<u64>,
    /// Dollars: real when metered, notional otherwise.
    pub cost_usd: Option<f64>,
    /// `api` and `cloud` are metered; subscription and local runs are not.
    pub billing_mode: Option<String>,
}

impl WorkerUsage {
    /// The worker's total tokens: `total_tokens`, else `tokens`, else input + output.
    pub fn total(&self) -> u64 {
        self.total_tokens.or(self.tokens).unwrap_or_else(|| {
            self.input_tokens
                .unwrap_or(0)
                .saturating_add(self.output_tokens.unwrap_or(0))
        })
    }
}

/// TFactory's verification block: the level it achieved against the level it aimed for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verification {
    /// The level aimed for (`VAL-2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_level: Option<String>,
    /// The level reached (`VAL-0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_level: Option<String>,
    /// The sender's one-line claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Each level's status.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<VerificationLevel>,
}

/// One level of a verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationLevel {
    /// The level (`VAL-1`).
    pub level: String,
    /// `passed`, `failed`, `not_run`, …
    pub status: String,
    /// Why, when the sender said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an event reports: a stage's transition, or one worker of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A completion or snapshot: it decides the stage.
    Completion,
    /// One worker finished (AIFactory's `io.factory.aifactory.worker`): its usage only.
    Worker,
    /// A worker's heartbeat (`…worker_progress`): progress only.
    WorkerProgress,
}

/// A usage breakdown entry (`by_provider`, `by_model`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageBreakdown {
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Total tokens.
    #[serde(alias = "tokens")]
    pub total_tokens: Option<u64>,
    /// Dollars.
    pub cost_usd: Option<f64>,
}

/// The v1.1 `usage` block and its newer additions. Usage on snapshots is cumulative for
/// the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Total tokens (input + output when absent).
    pub total_tokens: Option<u64>,
    /// Dollars.
    pub cost_usd: Option<f64>,
    /// Model id.
    pub model: Option<String>,
    /// Per-worker usage.
    pub workers: Vec<WorkerUsage>,
    /// Usage by provider.
    pub by_provider: BTreeMap<String, UsageBreakdown>,
    /// Usage by model.
    pub by_model: BTreeMap<String, UsageBreakdown>,
    /// The sender's budget block, kept as sent.
    pub budget: Option<Value>,
}

impl Usage {
    /// Total tokens, falling back to input + output.
    pub fn total(&self) -> u64 {
        self.total_tokens.unwrap_or_else(|| {
            self.input_tokens
                .unwrap_or(0)
                .saturating_add(self.output_tokens.unwrap_or(0))
        })
    }
}

/// The chain links a sender knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// PFactory plan session.
    pub session_id: Option<String>,
    /// GitHub issue number.
    pub issue_number: Option<u64>,
    /// AIFactory task id.
    pub aifactory_task_id: Option<String>,
    /// Git branch.
    pub branch: Option<String>,
    /// Pull request number.
    pub pr_number: Option<u64>,
    /// TFactory spec id.
    pub tfactory_spec_id: Option<String>,
}

/// A prompt-injection scan verdict. Absence means no scan ran, never a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionScan {
    /// `pass`, `flagged` or `skipped`.
    pub verdict: String,
    /// What was flagged, or why the scan was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scanner id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    /// Untrusted sources inspected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources_scanned: Vec<String>,
}

/// The 0001a `evidence` block, in both the RFC's shape and TFactory's real one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// `tokens`, `tests`, `issues` or `artifact`.
    pub proof_kind: Option<String>,
    /// PFactory: the epic issue number.
    pub epic_issue: Option<Value>,
    /// PFactory: the child issues.
    pub child_issues: Option<Vec<Value>>,
    /// PFactory: how many child issues were emitted.
    pub child_count: Option<i64>,
    /// AIFactory: tokens spent.
    pub total_tokens: Option<i64>,
    /// AIFactory: dollars spent.
    pub cost_usd: Option<f64>,
    /// AIFactory: phases that completed.
    pub phases_completed: Option<Vec<Value>>,
    /// AIFactory: the worktree commit.
    pub worktree_sha: Option<String>,
    /// PFactory's contract path: the AIFactory task the plan was handed to.
    pub aifactory_task_id: Option<String>,
    /// TFactory (RFC): `pass`, `fail` or `flag`.
    pub verdict: Option<String>,
    /// TFactory (RFC): lanes that ran.
    pub lanes_run: Option<Vec<Value>>,
    /// TFactory (RFC): tests generated.
    pub tests_generated: Option<i64>,
    /// TFactory (RFC): tests executed.
    pub tests_executed: Option<i64>,
    /// TFactory (real): verdict count.
    pub verdicts: Option<i64>,
    /// TFactory (real): accepted count.
    pub accepted: Option<i64>,
    /// TFactory (real): flagged count.
    pub flagged: Option<i64>,
    /// TFactory (real): rejected count.
    pub rejected: Option<i64>,
}

/// A parsed completion event. `raw` is the JSON exactly as received.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionEvent {
    /// The CloudEvents id. An event sent without one gets [`content_id`] of its body, so
    /// a retry of the same body is a duplicate; `id_derived` records that it was derived.
    pub id: Option<EventId>,
    /// True when the sender sent no `id` and `id` is derived from the content (the item
    /// counts it in `flags.missing_event_id`).
    pub id_derived: bool,
    /// The key as sent.
    pub correlation_key: CorrelationKey,
    /// The emitting service.
    pub service: Service,
    /// The sender's local id.
    pub task_id: String,
    /// A completion, or a worker's report.
    pub kind: EventKind,
    /// The status; when the sender sent `null`, the `outcome` stands in.
    pub status: String,
    /// The phase; falls back to the status when `null`.
    pub phase: String,
    /// When the transition happened (`time`, or legacy `updated_at`).
    pub time: DateTime<Utc>,
    /// Work item title, when the sender gave one.
    pub title: Option<String>,
    /// Repository or project, when the sender gave one.
    pub project: Option<String>,
    /// The GitHub repository (`owner/name`, lower-cased) the event names, if any.
    pub repo: Option<String>,
    /// The usage block.
    pub usage: Option<Usage>,
    /// The correlation block.
    pub correlation: Correlation,
    /// The injection-scan block.
    pub injection_scan: Option<InjectionScan>,
    /// The evidence block.
    pub evidence: Option<Evidence>,
    /// TFactory's outcome (`success`, `failure`, `human_review`).
    pub outcome: Option<String>,
    /// TFactory's halt reason.
    pub halt_reason: Option<String>,
    /// TFactory's verification levels.
    pub verification: Option<Verification>,
    /// Why the task waits in review (AIFactory's `review_reason`), when sent.
    pub review_reason: Option<String>,
    /// A worker event's worker.
    pub worker: Option<WorkerUsage>,
    /// The JSON exactly as received.
    pub raw: String,
}

/// Largest accepted JSON text for one event.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The most tokens one figure of one event may report.
pub const MAX_TOKENS: u64 = 1_000_000_000_000;

/// The most dollars one figure of one event may report.
pub const MAX_COST_USD: f64 = 1_000_000.0;

/// The longest title (or other free text) kept on an item, in characters; longer text is
/// cut, the raw event keeping it whole.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// The earliest time an event may carry: anything before is a sender's bug.
pub fn earliest_time() -> DateTime<Utc> {
    DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01T00:00:00Z is representable")
}

fn check_tokens(field: &str, value: Option<u64>) -> Result<(), EventError> {
    match value {
        Some(n) if n > MAX_TOKENS => Err(EventError::invalid(
            field,
            format!("{n} tokens is more than one event may report ({MAX_TOKENS})"),
        )),
        _ => Ok(()),
    }
}

fn check_signed_tokens(field: &str, value: Option<i64>) -> Result<(), EventError> {
    match value {
        Some(n) if n < 0 => Err(EventError::invalid(field, "must not be negative")),
        Some(n) => check_tokens(field, u64::try_from(n).ok()),
        None => Ok(()),
    }
}

fn check_cost(field: &str, value: Option<f64>) -> Result<(), EventError> {
    match value {
        Some(c) if !c.is_finite() || c < 0.0 => Err(EventError::invalid(
            field,
            "must be a finite number of dollars, not negative",
        )),
        Some(c) if c > MAX_COST_USD => Err(EventError::invalid(
            field,
            format!("${c} is more than one event may report (${MAX_COST_USD})"),
        )),
        _ => Ok(()),
    }
}

fn check_breakdown(field: &str, b: &UsageBreakdown) -> Result<(), EventError> {
    check_tokens(&format!("{field}.input_tokens"), b.input_tokens)?;
    check_tokens(&format!("{field}.output_tokens"), b.output_tokens)?;
    check_tokens(&format!("{field}.total_tokens"), b.total_tokens)?;
    check_cost(&format!("{field}.cost_usd"), b.cost_usd)
}

fn check_worker(field: &str, w: &WorkerUsage) -> Result<(), EventError> {
    check_tokens(&format!("{field}.input_tokens"), w.input_tokens)?;
    check_tokens(&format!("{field}.output_tokens"), w.output_tokens)?;
    check_tokens(&format!("{field}.total_tokens"), w.total_tokens)?;
    check_tokens(&format!("{field}.tokens"), w.tokens)?;
    check_cost(&format!("{field}.cost_usd"), w.cost_usd)
}

/// Every usage figure finite, not negative and within one event's bounds, so no sum of
/// them can overflow or stop the stored document parsing.
fn check_usage(u: &Usage) -> Result<(), EventError> {
    check_tokens("usage.input_tokens", u.input_tokens)?;
    check_tokens("usage.output_tokens", u.output_tokens)?;
    check_tokens("usage.total_tokens", u.total_tokens)?;
    check_cost("usage.cost_usd", u.cost_usd)?;
    for (i, w) in u.workers.iter().enumerate() {
        check_worker(&format!("usage.workers.{i}"), w)?;
    }
    for (name, b) in &u.by_provider {
        check_breakdown(&format!("usage.by_provider.{name}"), b)?;
    }
    for (name, b) in &u.by_model {
        check_breakdown(&format!("usage.by_model.{name}"), b)?;
    }
    Ok(())
}

/// The id of an event sent without one: `sha256:` and the hex SHA-256 of its canonical
/// JSON (object keys sorted, no insignificant whitespace, strings and numbers as
/// `serde_json` writes them), so the same body, however it is spaced or ordered, has the
/// same id.
pub fn content_id(event: &Value) -> EventId {
    use sha2::{Digest, Sha256};
    let mut text = String::with_capacity(512);
    write_canonical(event, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let id = format!("sha256:{}", crate::audit::hex(&digest));
    EventId::parse(&id).expect("71 visible characters make an event id")
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Cuts free text to [`MAX_TEXT_CHARS`] characters.
fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => text[..at].to_owned(),
        None => text,
    }
}

impl CompletionEvent {
    /// Refuses an event dated more than `skew` after `now`: a sender's clock that far
    /// ahead would pin its stage, since the latest time wins. Every door checks it.
    pub fn check_not_ahead(
        &self,
        now: DateTime<Utc>,
        skew: chrono::Duration,
    ) -> Result<(), EventError> {
        let latest = now + skew;
        if self.time <= latest {
            return Ok(());
        }
        Err(EventError::invalid(
            "time",
            format!(
                "is more than {} s ahead of this server's clock ({})",
                skew.num_seconds(),
                latest.to_rfc3339()
            ),
        ))
    }

    /// Parses one event from the exact JSON text a sender posted.
    pub fn parse(raw: &str) -> Result<Self, EventError> {
        let value: Value =
            serde_json::from_str(raw).map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_value(&value, raw.to_owned())
    }

    /// Parses one event from an already-decoded JSON value; `raw` is its original text.
    pub fn from_value(value: &Value, raw: String) -> Result<Self, EventError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EventError::Malformed("an event must be a JSON object".into()))?;
        let get = |name: &str| obj.get(name).filter(|v| !v.is_null());

        let key_text = required_text(obj, "correlation_key")?;
        crate::ids::check_identifier_text(&key_text)
            .map_err(|e| EventError::invalid("correlation_key", e.to_string()))?;
        let correlation_key = CorrelationKey::parse(&key_text)
            .map_err(|e| EventError::invalid("correlation_key", e.to_string()))?;

        let service_text = required_text(obj, "service")?;
        let service = Service::parse(&service_text).ok_or_else(|| {
            EventError::invalid(
                "service",
                format!(
                    "unknown service `{service_text}`; expected pfactory, aifactory, tfactory or cfactory"
                ),
            )
        })?;

        let task_id = required_text(obj, "task_id")?;
        if task_id.trim().is_empty() {
            return Err(EventError::invalid("task_id", "must not be empty"));
        }
        if task_id == "." || task_id == ".." {
            return Err(EventError::invalid("task_id", "must not be `.` or `..`"));
        }
        crate::ids::check_identifier_text(&task_id)
            .map_err(|e| EventError::invalid("task_id", e.to_string()))?;

        let outcome = optional_text(obj, "outcome")?;
        if !obj.contains_key("status") {
            return Err(EventError::Missing {
                field: "status".into(),
            });
        }
        let status = match optional_text(obj, "status")? {
            Some(s) if !s.trim().is_empty() => s,
            _ => outcome.clone().ok_or_else(|| {
                EventError::invalid("status", "is null or empty and no `outcome` stands in")
            })?,
        };

        if !obj.contains_key("phase") {
            return Err(EventError::Missing {
                field: "phase".into(),
            });
        }
        let phase = optional_text(obj, "phase")?.unwrap_or_else(|| status.clone());

        let time = match (get("time"), get("updated_at")) {
            (Some(t), _) => parse_time("time", t)?,
            (None, Some(t)) => parse_time("updated_at", t)?,
            (None, None) => {
                return Err(EventError::Missing {
                    field: "time".into(),
                });
            }
        };

        if time < earliest_time() {
            let field = if get("time").is_some() {
                "time"
            } else {
                "updated_at"
            };
            return Err(EventError::invalid(
                field,
                "is before 2000-01-01, which no sender means",
            ));
        }

        let (id, id_derived) = match get("id") {
            None => (content_id(value), true),
            Some(v) => {
                let text =
                    scalar_text(v).ok_or_else(|| EventError::invalid("id", "must be a string"))?;
                crate::ids::check_visible_text(&text)
                    .map_err(|e| EventError::invalid("id", e.to_string()))?;
                let id =
                    EventId::parse(&text).map_err(|e| EventError::invalid("id", e.to_string()))?;
                (id, false)
            }
        };

        let usage = block::<Usage>(obj, "usage")?;
        if let Some(u) = &usage {
            check_usage(u)?;
        }
        let mut correlation = parse_correlation(get("correlation"))?;
        // TFactory also puts chain links at the top level.
        if correlation.branch.is_none() {
            correlation.branch = optional_text(obj, "branch")?;
        }
        if correlation.pr_number.is_none() {
            correlation.pr_number = loose_number(obj.get("pr_number"), "pr_number")?;
        }
        if correlation.tfactory_spec_id.is_none() && service == Service::TFACTORY {
            correlation.tfactory_spec_id = optional_text(obj, "spec_id")?;
        }
        let injection_scan = block::<InjectionScan>(obj, "injection_scan")?;
        let evidence = block::<Evidence>(obj, "evidence")?;
        if let Some(e) = &evidence {
            check_signed_tokens("evidence.total_tokens", e.total_tokens)?;
            check_cost("evidence.cost_usd", e.cost_usd)?;
        }
        let halt_reason = optional_text(obj, "halt_reason")?;
        let review_reason = optional_text(obj, "review_reason")?;
        let title = optional_text(obj, "title")?.map(cut);
        let correlation_obj = get("correlation").and_then(Value::as_object);
        let linked_text = |name: &str| {
            correlation_obj
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        let repo_text = optional_text(obj, "repo")?.filter(|s| !s.trim().is_empty());
        let project_id = optional_text(obj, "project_id")?
            .filter(|s| !s.trim().is_empty())
            .or_else(|| linked_text("project_id"));
        let key_repo = correlation_key.issue_ref().and_then(|(r, _)| r);
        let repo = key_repo.or_else(|| {
            [repo_text.clone(), linked_text("repo"), project_id.clone()]
                .into_iter()
                .flatten()
                .find_map(|t| parse_repo(&t))
        });
        let project = repo_text.or(project_id).or_else(|| repo.clone());
        let verification = block::<Verification>(obj, "verification")?;
        let worker = block::<WorkerUsage>(obj, "worker")?;
        if let Some(w) = &worker {
            check_worker("worker", w)?;
        }
        let kind = event_kind(
            get("type").and_then(Value::as_str),
            &phase,
            worker.is_some(),
        );

        Ok(Self {
            id: Some(id),
            id_derived,
            correlation_key,
            service,
            task_id,
            kind,
            status,
            phase,
            time,
            title,
            project,
            repo,
            usage,
            correlation,
            injection_scan,
            evidence,
            outcome,
            halt_reason,
            verification,
            review_reason,
            worker,
            raw,
        })
    }

    /// The lifecycle class of this event: its status's, except that a verdict in
    /// `outcome` wins (TFactory keeps `status: "triaged"` whatever the verdict):
    /// `failure` is failed and `human_review` is review.
    pub fn status_class(&self) -> StatusClass {
        self.service.classify(&self.status, self.outcome.as_deref())
    }

    /// The issue numbers this event says its unit of work is. PFactory's
    /// `correlation.issue_number` is the epic it created when its key already names the
    /// origin issue: a link then, not the unit's identity.
    pub fn claimed_issues(&self) -> BTreeSet<u64> {
        let mut out: BTreeSet<u64> = self.correlation_key.issue_number().into_iter().collect();
        if out.is_empty() || self.service != Service::PFACTORY {
            out.extend(self.correlation.issue_number);
        }
        out
    }

    /// Issues this event names as links of its unit rather than as its identity: the
    /// epic and child issues PFactory created.
    pub fn emitted_issues(&self) -> Vec<u64> {
        if self.service != Service::PFACTORY {
            return Vec::new();
        }
        let claimed = self.claimed_issues();
        let mut out: Vec<u64> = self
            .evidence
            .as_ref()
            .map(Evidence::emitted_issues)
            .unwrap_or_default();
        out.extend(self.correlation.issue_number);
        out.retain(|n| !claimed.contains(n));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether this event decides its stage (a worker's report never does).
    pub fn decides_stage(&self) -> bool {
        self.kind == EventKind::Completion
    }

    /// Every identifier this event can be found by: its key, its own task, each link.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut ids = vec![Identifier::key(&self.correlation_key)];
        if self.service != Service::CFACTORY {
            ids.push(Identifier::task(self.service.as_str(), &self.task_id));
        }
        for n in self
            .correlation_key
            .issue_number()
            .into_iter()
            .chain(self.correlation.issue_number)
        {
            ids.extend(issue_identifiers(self.repo.as_deref(), n));
        }
        if let Some(e) = &self.evidence {
            for n in e.emitted_issues() {
                ids.extend(issue_identifiers(self.repo.as_deref(), n));
            }
        }
        ids.extend(self.correlation.link_identifiers());
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Correlation {
    /// The identifiers of the chain links this block names: the plan session, the coding
    /// task and the test spec, each under the service that owns it. Events and API
    /// snapshots both find their unit through these.
    pub fn link_identifiers(&self) -> impl Iterator<Item = Identifier> + '_ {
        [
            (Service::PFACTORY, &self.session_id),
            (Service::AIFACTORY, &self.aifactory_task_id),
            (Service::TFACTORY, &self.tfactory_spec_id),
        ]
        .into_iter()
        .filter_map(|(service, id)| {
            id.as_deref()
                .map(|id| Identifier::task(service.as_str(), id))
        })
    }
}

/// The identifiers of an issue: its bare number, its repository-qualified key when the
/// repository is known, and its issue marker (which says when the bare number is
/// ambiguous).
pub fn issue_identifiers(repo: Option<&str>, number: u64) -> Vec<Identifier> {
    let mut ids = vec![
        Identifier::key(&CorrelationKey::issue(number)),
        Identifier::issue_marker(number),
    ];
    if let Some(r) = repo {
        ids.push(Identifier::key(&CorrelationKey::of_issue(Some(r), number)));
    }
    ids
}

/// The class of `status`, with a verdict in `outcome` winning (see
/// [`CompletionEvent::status_class`]).
pub fn class_with_outcome(status: &str, outcome: Option<&str>) -> StatusClass {
    let class = StatusClass::classify(status);
    match outcome.map(str::trim) {
        Some(o) if o.eq_ignore_ascii_case("failure") => StatusClass::Failed,
        Some(o) if o.eq_ignore_ascii_case("human_review") && class != StatusClass::Failed => {
            StatusClass::Review
        }
        _ => class,
    }
}

fn event_kind(kind: Option<&str>, phase: &str, has_worker: bool) -> EventKind {
    let last = kind.and_then(|t| t.rsplit('.').next()).unwrap_or("");
    if last == "worker_progress" || phase == "worker_progress" {
        EventKind::WorkerProgress
    } else if last == "worker" || (phase == "worker" && has_worker) {
        EventKind::Worker
    } else {
        EventKind::Completion
    }
}

impl Evidence {
    /// Issues PFactory says it created: the epic and its children.
    pub fn emitted_issues(&self) -> Vec<u64> {
        let number = |v: &Value| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_issue_number(s),
            _ => None,
        };
        let mut out: Vec<u64> = self.epic_issue.iter().filter_map(number).collect();
        for child in self.child_issues.iter().flatten() {
            let n = match child {
                Value::Object(o) => o
                    .get("number")
                    .or_else(|| o.get("issue_number"))
                    .and_then(number),
                v => number(v),
            };
            out.extend(n);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn required_text(obj: &serde_json::Map<String, Value>, field: &str) -> Result<String, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(EventError::Missing {
            field: field.to_owned(),
        }),
        Some(v) => scalar_text(v).ok_or_else(|| EventError::invalid(field, "must be a string")),
    }
}

fn optional_text(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_text(v)
            .map(Some)
            .ok_or_else(|| EventError::invalid(field, "must be a string")),
    }
}

fn parse_time(field: &str, value: &Value) -> Result<DateTime<Utc>, EventError> {
    let text = value
        .as_str()
        .ok_or_else(|| EventError::invalid(field, "must be an ISO-8601 timestamp string"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            // Some emitters send a naive UTC time without an offset.
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| {
            EventError::invalid(
                field,
                format!("`{text}` is not an ISO-8601 timestamp such as 2026-06-04T15:14:45Z"),
            )
        })
}

/// An integer that some senders spell as a string (`"142"`).
fn loose_number(value: Option<&Value>, field: &str) -> Result<Option<u64>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| EventError::invalid(field, "must be a positive integer")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_issue_number(s)
            .map(Some)
            .ok_or_else(|| EventError::invalid(field, "must be a positive integer")),
        Some(_) => Err(EventError::invalid(field, "must be a positive integer")),
    }
}

fn parse_correlation(value: Option<&Value>) -> Result<Correlation, EventError> {
    let Some(value) = value else {
        return Ok(Correlation::default());
    };
    let obj = value
        .as_object()
        .ok_or_else(|| EventError::invalid("correlation", "must be an object"))?;
    let text = |name: &str| -> Result<Option<String>, EventError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match scalar_text(v) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Ok(Some(s)),
                None => Err(EventError::invalid(
                    &format!("correlation.{name}"),
                    "must be a string",
                )),
            },
        }
    };
    Ok(Correlation {
        session_id: text("session_id")?,
        issue_number: loose_number(obj.get("issue_number"), "correlation.issue_number")?,
        aifactory_task_id: text("aifactory_task_id")?,
        branch: text("branch")?,
        pr_number: loose_number(obj.get("pr_number"), "correlation.pr_number")?,
        tfactory_spec_id: text("tfactory_spec_id")?,
    })
}

fn block<T: serde::de::DeserializeOwned>(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<T>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                field.to_owned()
            } else {
                format!("{field}.{path}")
            };
            EventError::Invalid {
                field,
                reason: e.into_inner().to_string(),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_without_an_id_is_named_by_its_content_whatever_its_layout() {
        let a = r#"{"correlation_key":"7","service":"aifactory","task_id":"t","status":"running","phase":"coding","time":"2026-11-01T10:00:00Z","usage":{"b":1,"a":[1,2]}}"#;
        let b = r#"{ "usage": {"a": [1, 2], "b": 1}, "time": "2026-11-01T10:00:00Z",
            "phase": "coding", "status": "running", "task_id": "t",
            "service": "aifactory", "correlation_key": "7" }"#;
        let (ea, eb) = (
            CompletionEvent::parse(a).unwrap(),
            CompletionEvent::parse(b).unwrap(),
        );
        assert!(ea.id_derived && eb.id_derived);
        let id = ea.id.clone().unwrap();
        assert_eq!(ea.id, eb.id);
        assert!(id.as_str().starts_with("sha256:"), "{id:?}");
        assert_eq!(id.as_str().len(), 7 + 64);
        let changed = CompletionEvent::parse(&a.replace("running", "done")).unwrap();
        assert_ne!(changed.id, ea.id, "different content, different id");
        let sent = CompletionEvent::parse(
            &a.replace("{\"correlation_key", "{\"id\":\"e-1\",\"correlation_key"),
        )
        .unwrap();
        assert!(!sent.id_derived);
        assert_eq!(sent.id.unwrap().as_str(), "e-1");
    }

    fn parse(v: Value) -> Result<CompletionEvent, EventError> {
        CompletionEvent::parse(&v.to_string())
    }

    fn refused_field(patch: Value) -> String {
        let mut v = base();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        match parse(v) {
            Ok(_) => panic!("accepted {patch}"),
            Err(e) => e.field().unwrap_or_default().to_owned(),
        }
    }

    #[test]
    fn usage_figures_out_of_bounds_are_refused_with_their_field() {
        assert_eq!(
            refused_field(json!({"usage": {"cost_usd": 1e308}})),
            "usage.cost_usd"
        );
        assert_eq!(
            refused_field(json!({"usage": {"cost_usd": -0.5}})),
            "usage.cost_usd"
        );
        assert_eq!(
            refused_field(json!({"usage": {"total_tokens": 1_000_000_000_001u64}})),
            "usage.total_tokens"
        );
        assert_eq!(
            refused_field(json!({"usage": {"workers": [{"cost_usd": 2e6}]}})),
            "usage.workers.0.cost_usd"
        );
        assert_eq!(
            refused_field(json!({"usage": {"by_model": {"m": {"input_tokens": u64::MAX}}}})),
            "usage.by_model.m.input_tokens"
        );
        assert_eq!(
            refused_field(json!({"worker": {"tokens": u64::MAX}})),
            "worker.tokens"
        );
        assert_eq!(
            refused_field(json!({"evidence": {"total_tokens": -1}})),
            "evidence.total_tokens"
        );
        // At the bounds is accepted.
        let mut v = base();
        v["usage"] = json!({"total_tokens": 1_000_000_000_000u64, "cost_usd": 1e6});
        assert!(parse(v).is_ok());
    }

    #[test]
    fn times_before_2000_task_ids_of_dots_and_look_alikes_are_refused() {
        assert_eq!(
            refused_field(json!({"time": "1999-12-31T23:59:59Z"})),
            "time"
        );
        assert_eq!(refused_field(json!({"task_id": ".."})), "task_id");
        assert_eq!(refused_field(json!({"task_id": "."})), "task_id");
        assert_eq!(refused_field(json!({"task_id": "t-1\u{200B}"})), "task_id");
        assert_eq!(refused_field(json!({"task_id": " t-1"})), "task_id");
        assert_eq!(
            refused_field(json!({"correlation_key": "142\u{200B}"})),
            "correlation_key"
        );
    }

    #[test]
    fn a_long_title_is_cut_and_the_raw_event_keeps_it() {
        let mut v = base();
        v["title"] = json!("é".repeat(1_500));
        let e = parse(v).unwrap();
        assert_eq!(e.title.as_deref().unwrap().chars().count(), MAX_TEXT_CHARS);
        assert!(e.raw.contains(&"é".repeat(1_500)));
    }

    fn base() -> Value {
        json!({
            "id": "evt-1", "specversion": "1.0", "source": "/aifactory",
            "type": "io.factory.aifactory.completion", "time": "2026-06-05T12:00:00Z",
            "correlation_key": "142", "service": "aifactory", "task_id": "proj:001",
            "status": "done", "phase": "act"
        })
    }

    #[test]
    fn parses_a_full_event_and_keeps_the_raw_text() {
        let mut v = base();
        v["usage"] = json!({"input_tokens": 2400, "output_tokens": 100, "cost_usd": 1.25,
            "model": "claude-sonnet-4-6",
            "workers": [{"worker_id": "w1", "provider": "anthropic", "tokens": 2500, "billing_mode": "api"}],
            "by_model": {"claude-sonnet-4-6": {"tokens": 2500, "cost_usd": 1.25}}});
        v["correlation"] =
            json!({"session_id": "s1", "issue_number": "142", "branch": "feat/x", "pr_number": 7});
        v["x_unknown"] = json!({"kept": true});
        let raw = v.to_string();
        let e = CompletionEvent::parse(&raw).unwrap();
        assert_eq!(e.raw, raw);
        assert_eq!(e.usage.as_ref().unwrap().total(), 2500);
        assert_eq!(
            e.usage.as_ref().unwrap().workers[0].billing_mode.as_deref(),
            Some("api")
        );
        assert_eq!(
            e.usage.as_ref().unwrap().by_model["claude-sonnet-4-6"].total_tokens,
            Some(2500)
        );
        assert_eq!(e.correlation.issue_number, Some(142));
        assert_eq!(e.correlation.pr_number, Some(7));
        assert_eq!(e.id.as_ref().unwrap().as_str(), "evt-1");
    }

    #[test]
    fn legacy_updated_at_is_accepted_and_one_time_is_required() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("time");
        v["updated_at"] = json!("2026-06-04T15:14:45+00:00");
        assert!(parse(v.clone()).is_ok());
        v.as_object_mut().unwrap().remove("updated_at");
        assert_eq!(parse(v).unwrap_err().field(), Some("time"));
    }

    #[test]
    fn a_bad_timestamp_names_its_field() {
        let mut v = base();
        v["time"] = json!("yesterday");
        assert_eq!(parse(v).unwrap_err().field(), Some("time"));
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        for field in ["correlation_key", "service", "task_id", "status", "phase"] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(field);
            let err = parse(v).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(matches!(err, EventError::Missing { .. }));
        }
    }

    #[test]
    fn unknown_service_and_long_key_are_refused() {
        let mut v = base();
        v["service"] = json!("qfactory");
        assert_eq!(parse(v).unwrap_err().field(), Some("service"));
        let mut v = base();
        v["correlation_key"] = json!("k".repeat(129));
        assert_eq!(parse(v).unwrap_err().field(), Some("correlation_key"));
    }

    #[test]
    fn null_status_takes_the_outcome() {
        let mut v = base();
        v["service"] = json!("tfactory");
        v["status"] = Value::Null;
        v["outcome"] = json!("failure");
        let e = parse(v.clone()).unwrap();
        assert_eq!(e.status, "failure");
        assert_eq!(e.status_class(), StatusClass::Failed);
        v.as_object_mut().unwrap().remove("outcome");
        assert_eq!(parse(v).unwrap_err().field(), Some("status"));
    }

    #[test]
    fn a_mistyped_block_field_names_its_path() {
        let mut v = base();
        v["usage"] = json!({"total_tokens": "many"});
        let err = parse(v).unwrap_err();
        assert_eq!(err.field(), Some("usage.total_tokens"));
    }

    #[test]
    fn not_an_object_is_malformed() {
        assert!(matches!(
            CompletionEvent::parse("[1,2]"),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            CompletionEvent::parse("{"),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn identifiers_cover_key_task_and_links() {
        let mut v = base();
        v["service"] = json!("tfactory");
        v["correlation_key"] = json!("tf-spec9");
        v["task_id"] = json!("spec9");
        v["correlation"] = json!({"aifactory_task_id": "proj:001", "session_id": "s1"});
        let ids: Vec<String> = parse(v)
            .unwrap()
            .identifiers()
            .iter()
            .map(|i| i.as_str().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "aifactory:proj:001",
                "key:tf-spec9",
                "pfactory:s1",
                "tfactory:spec9"
            ]
        );
    }
}

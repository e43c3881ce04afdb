//! The wire format of a WorkItem: what `GET /api/workitems/{key}`, each entry of the
//! list and each `workitem` frame of the live stream carry. Field names, which fields
//! are left out when empty, and enum spellings are those the domain's own serialisation
//! had when this module was written; `tests` pins the two together.
//!
//! A field that is always sent but may be `null` is `required` and nullable in the
//! schema; a field left out when empty is not `required`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use cfactory_domain::event as domain_event;
use cfactory_domain::proof as domain_proof;
use cfactory_domain::taxonomy as domain_taxonomy;
use cfactory_domain::workitem as domain;

/// The wire name of a service: `pfactory`, `aifactory`, `tfactory`, `cfactory`, or
/// another service registered beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Service(&'static str);

impl utoipa::PartialSchema for Service {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        name_schema("A service's wire name.", "aifactory")
    }
}

impl ToSchema for Service {}

impl From<domain_event::Service> for Service {
    fn from(s: domain_event::Service) -> Self {
        Self(s.as_str())
    }
}

/// A pipeline stage: `plan` (PFactory), `code` (AIFactory), `test` (TFactory), or the
/// stage of another service registered beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StageName(&'static str);

impl utoipa::PartialSchema for StageName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        name_schema("A stage's API spelling.", "code")
    }
}

impl ToSchema for StageName {}

/// A name drawn from the service table: a string, its example one of the family's.
fn name_schema(
    description: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .into()
}

impl From<domain::StageName> for StageName {
    fn from(s: domain::StageName) -> Self {
        Self(s.as_str())
    }
}

/// The lifecycle class of a status: `failed` and `done` are terminal, `review` waits on
/// a decision, `queued` has not started, `running` executes (or is unknown), `stuck` was
/// marked so by an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    /// Terminal and unhealthy.
    Failed,
    /// Terminal and healthy.
    Done,
    /// Parked for a human or AI decision; still in flight.
    Review,
    /// Not started.
    Queued,
    /// Executing, or an unknown status.
    Running,
    /// Marked stuck by an upstream.
    Stuck,
}

impl From<domain_taxonomy::StatusClass> for StatusClass {
    fn from(c: domain_taxonomy::StatusClass) -> Self {
        use domain_taxonomy::StatusClass as D;
        match c {
            D::Failed => Self::Failed,
            D::Done => Self::Done,
            D::Review => Self::Review,
            D::Queued => Self::Queued,
            D::Running => Self::Running,
            D::Stuck => Self::Stuck,
        }
    }
}

/// Whether a stage's success is backed by evidence: `proven` (a done-class status with
/// the evidence its stage owes), `unproven` (without it), `not_applicable` (not done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// A done-class status with the evidence its stage owes.
    Proven,
    /// A done-class status without it.
    Unproven,
    /// The stage is not in the done class.
    NotApplicable,
}

impl From<domain_proof::Proof> for Proof {
    fn from(p: domain_proof::Proof) -> Self {
        match p {
            domain_proof::Proof::Proven => Self::Proven,
            domain_proof::Proof::Unproven => Self::Unproven,
            domain_proof::Proof::NotApplicable => Self::NotApplicable,
        }
    }
}

/// Tokens and dollars: the same fields everywhere usage appears.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct UsageAmounts {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Metered dollars (billing modes `api` and `cloud`, or usage with no mode): spend.
    pub cost_usd: f64,
    /// Dollars a subscription or local worker reported: shown, never added to spend.
    pub notional_cost_usd: f64,
}

impl From<&domain::UsageAmounts> for UsageAmounts {
    fn from(u: &domain::UsageAmounts) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
            cost_usd: u.cost_usd,
            notional_cost_usd: u.notional_cost_usd,
        }
    }
}

/// One run's last usage figure, for services whose task usage is the sum of its runs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RunFigure {
    /// The time of the run's terminal event; null while the run is still going.
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    /// The time of the figure kept.
    pub at: DateTime<Utc>,
    /// The run's usage so far (its total once ended).
    pub amounts: UsageAmounts,
}

impl From<&domain::RunFigure> for RunFigure {
    fn from(r: &domain::RunFigure) -> Self {
        Self {
            ended_at: r.ended_at,
            at: r.at,
            amounts: (&r.amounts).into(),
        }
    }
}

/// One worker's share of a task's usage, as its latest report said.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkerUsage {
    /// The worker's id.
    #[schema(required = true)]
    pub worker_id: Option<String>,
    /// LLM provider.
    #[schema(required = true)]
    pub provider: Option<String>,
    /// Model id.
    #[schema(required = true)]
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
    #[schema(required = true)]
    pub tokens: Option<u64>,
    /// Dollars: real when metered, notional otherwise.
    #[schema(required = true)]
    pub cost_usd: Option<f64>,
    /// `api` and `cloud` are metered; subscription and local runs are not.
    #[schema(required = true)]
    pub billing_mode: Option<String>,
}

impl From<&domain_event::WorkerUsage> for WorkerUsage {
    fn from(w: &domain_event::WorkerUsage) -> Self {
        Self {
            worker_id: w.worker_id.clone(),
            provider: w.provider.clone(),
            model: w.model.clone(),
            input_tokens: w.input_tokens,
            output_tokens: w.output_tokens,
            total_tokens: w.total_tokens,
            tokens: w.tokens,
            cost_usd: w.cost_usd,
            billing_mode: w.billing_mode.clone(),
        }
    }
}

/// One task's usage: the running total of its current run plus the totals of the runs
/// before it (a correction after a handback starts a new run).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskUsage {
    /// The service.
    pub service: Service,
    /// The service's task id.
    pub task_id: String,
    /// The model the latest usage named.
    #[schema(required = true)]
    pub model: Option<String>,
    /// The time of the event the current run's total came from.
    pub at: DateTime<Utc>,
    /// The current run's running total.
    pub current: UsageAmounts,
    /// Earlier runs' totals.
    pub earlier_runs: UsageAmounts,
    /// How many runs were seen.
    pub runs: u32,
    /// The phase of the event the current total came from.
    #[schema(required = true)]
    pub phase: Option<String>,
    /// Per-worker usage of the latest event (provider, model, billing mode); left out
    /// when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerUsage>,
    /// Each run's last figure, oldest first, for services that sum their runs; left out
    /// when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run_figures: Vec<RunFigure>,
}

impl From<&domain::TaskUsage> for TaskUsage {
    fn from(t: &domain::TaskUsage) -> Self {
        Self {
            service: t.service.into(),
            task_id: t.task_id.clone(),
            model: t.model.clone(),
            at: t.at,
            current: (&t.current).into(),
            earlier_runs: (&t.earlier_runs).into(),
            runs: t.runs,
            phase: t.phase.clone(),
            workers: t.workers.iter().map(WorkerUsage::from).collect(),
            run_figures: t.run_figures.iter().map(RunFigure::from).collect(),
        }
    }
}

/// The sender's budget as its latest usage reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct BudgetState {
    /// The limit, in dollars.
    #[schema(required = true)]
    pub limit_usd: Option<f64>,
    /// What the sender counts as spent.
    #[schema(required = true)]
    pub spent_usd: Option<f64>,
    /// Whether the sender says the budget is exceeded.
    pub exceeded: bool,
    /// The time of the event that reported it.
    pub at: DateTime<Utc>,
}

impl From<&domain::BudgetState> for BudgetState {
    fn from(b: &domain::BudgetState) -> Self {
        Self {
            limit_usd: b.limit_usd,
            spent_usd: b.spent_usd,
            exceeded: b.exceeded,
            at: b.at,
        }
    }
}

/// A prompt-injection scan verdict. Absence means no scan ran, never a pass.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InjectionScan {
    /// `pass`, `flagged` or `skipped`.
    pub verdict: String,
    /// What was flagged, or why the scan was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scanner id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    /// Untrusted sources inspected; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources_scanned: Vec<String>,
}

impl From<&domain_event::InjectionScan> for InjectionScan {
    fn from(s: &domain_event::InjectionScan) -> Self {
        Self {
            verdict: s.verdict.clone(),
            reason: s.reason.clone(),
            scanner: s.scanner.clone(),
            sources_scanned: s.sources_scanned.clone(),
        }
    }
}

/// One level of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VerificationLevel {
    /// The level (`VAL-1`).
    pub level: String,
    /// `passed`, `failed`, `not_run`, …
    pub status: String,
    /// Why, when the sender said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&domain_event::VerificationLevel> for VerificationLevel {
    fn from(l: &domain_event::VerificationLevel) -> Self {
        Self {
            level: l.level.clone(),
            status: l.status.clone(),
            reason: l.reason.clone(),
        }
    }
}

/// TFactory's verification block: the level it achieved against the level it aimed for.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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
    /// Each level's status; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<VerificationLevel>,
}

impl From<&domain_event::Verification> for Verification {
    fn from(v: &domain_event::Verification) -> Self {
        Self {
            target_level: v.target_level.clone(),
            achieved_level: v.achieved_level.clone(),
            claim: v.claim.clone(),
            levels: v.levels.iter().map(VerificationLevel::from).collect(),
        }
    }
}

/// One stage: the event with the latest `time` that its service sent for this item (or
/// what the service's API said, when `from_api`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stage {
    /// The task the shown event came from.
    pub task_id: String,
    /// Its status as sent.
    pub status: String,
    /// Its status class.
    pub status_class: StatusClass,
    /// Its phase.
    pub phase: String,
    /// Its time.
    pub at: DateTime<Utc>,
    /// Evidence gate result.
    pub proof: Proof,
    /// The stage's usage (all of its service's tasks on this item).
    pub usage: UsageAmounts,
    /// The shown event's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The shown event's injection scan; absent means no scan ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection_scan: Option<InjectionScan>,
    /// TFactory's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// TFactory's halt reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// TFactory's verification: the level achieved against the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Why the task waits in review, as its service says (AIFactory's `review_reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<String>,
    /// The latest worker report or heartbeat of the shown task, when later than `at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<DateTime<Utc>>,
    /// Present (and `true`) when the stage shows what the service's API said (a poll or
    /// a live frame) rather than a completion event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_api: bool,
    /// When the stage's first event happened.
    pub started_at: DateTime<Utc>,
    /// When CFactory received the shown event (breaks ties between equal times).
    pub received_at: DateTime<Utc>,
}

impl From<&domain::Stage> for Stage {
    fn from(s: &domain::Stage) -> Self {
        Self {
            task_id: s.task_id.clone(),
            status: s.status.clone(),
            status_class: s.status_class.into(),
            phase: s.phase.clone(),
            at: s.at,
            proof: s.proof.into(),
            usage: (&s.usage).into(),
            event_id: s.event_id.as_ref().map(|id| id.as_str().to_owned()),
            injection_scan: s.injection_scan.as_ref().map(InjectionScan::from),
            outcome: s.outcome.clone(),
            halt_reason: s.halt_reason.clone(),
            verification: s.verification.as_ref().map(Verification::from),
            review_reason: s.review_reason.clone(),
            progress_at: s.progress_at,
            from_api: s.from_api,
            started_at: s.started_at,
            received_at: s.received_at,
        }
    }
}

/// The family's three stages, null where the stage has not started; a service registered
/// beside them adds its stage by name once it has started.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stages {
    /// PFactory's plan.
    #[schema(required = true)]
    pub plan: Option<Stage>,
    /// AIFactory's code.
    #[schema(required = true)]
    pub code: Option<Stage>,
    /// TFactory's test.
    #[schema(required = true)]
    pub test: Option<Stage>,
    /// The started stages of services registered beside the family's, by stage name
    /// (left out of the schema: the family's names are the only ones a client can know).
    #[serde(flatten)]
    #[schema(ignore)]
    pub registered: std::collections::BTreeMap<&'static str, Stage>,
}

impl From<&domain::Stages> for Stages {
    fn from(s: &domain::Stages) -> Self {
        Self {
            plan: s.plan().map(Stage::from),
            code: s.code().map(Stage::from),
            test: s.test().map(Stage::from),
            registered: domain::StageName::all()
                .filter(|n| !domain::StageName::FAMILY.contains(n))
                .filter_map(|n| Some((n.as_str(), Stage::from(s.get(n)?))))
                .collect(),
        }
    }
}

/// The chain links known for an item.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Links {
    /// PFactory plan session.
    #[schema(required = true)]
    pub session_id: Option<String>,
    /// GitHub issue number.
    #[schema(required = true)]
    pub issue_number: Option<u64>,
    /// AIFactory tasks.
    pub aifactory_task_ids: Vec<String>,
    /// Git branch.
    #[schema(required = true)]
    pub branch: Option<String>,
    /// Pull request.
    #[schema(required = true)]
    pub pr_number: Option<u64>,
    /// TFactory specs.
    pub tfactory_spec_ids: Vec<String>,
    /// The GitHub repository of the issue, when a sender named it.
    #[schema(required = true)]
    pub repo: Option<String>,
    /// Issues PFactory created for this unit (its epic and children): links, not units.
    pub emitted_issues: Vec<u64>,
}

impl From<&domain::Links> for Links {
    fn from(l: &domain::Links) -> Self {
        Self {
            session_id: l.session_id.clone(),
            issue_number: l.issue_number,
            aifactory_task_ids: l.aifactory_task_ids.clone(),
            branch: l.branch.clone(),
            pr_number: l.pr_number,
            tfactory_spec_ids: l.tfactory_spec_ids.clone(),
            repo: l.repo.clone(),
            emitted_issues: l.emitted_issues.clone(),
        }
    }
}

/// Two issue numbers claimed one unit of work; the event stayed on its own key.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CorrelationConflict {
    /// The event that carried the conflict.
    #[schema(required = true)]
    pub event_id: Option<String>,
    /// The issue numbers that disagreed.
    pub issue_numbers: Vec<u64>,
    /// Why, when it is not two numbers disagreeing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The event's time.
    pub at: DateTime<Utc>,
}

impl From<&domain::CorrelationConflict> for CorrelationConflict {
    fn from(c: &domain::CorrelationConflict) -> Self {
        Self {
            event_id: c.event_id.as_ref().map(|id| id.as_str().to_owned()),
            issue_numbers: c.issue_numbers.clone(),
            reason: c.reason.clone(),
            at: c.at,
        }
    }
}

/// Ingest findings kept on the item so anomalies can surface them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IngestFlags {
    /// Events recorded without an `id`.
    pub missing_event_id: u64,
    /// Correlation conflicts seen (all of them).
    pub correlation_conflict_count: u64,
    /// The most recent conflicts.
    pub correlation_conflicts: Vec<CorrelationConflict>,
}

impl From<&domain::IngestFlags> for IngestFlags {
    fn from(f: &domain::IngestFlags) -> Self {
        Self {
            missing_event_id: f.missing_event_id,
            correlation_conflict_count: f.correlation_conflict_count,
            correlation_conflicts: f
                .correlation_conflicts
                .iter()
                .map(CorrelationConflict::from)
                .collect(),
        }
    }
}

/// Whether an item is alive, computed at read time against the clock.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Liveness {
    /// The furthest started stage.
    #[schema(required = true)]
    pub active_stage: Option<StageName>,
    /// Seconds since the latest stage activity.
    #[schema(required = true)]
    pub last_activity_age_seconds: Option<i64>,
    /// A running or stuck stage silent past the stall deadline.
    pub stalled: bool,
}

impl From<&domain::Liveness> for Liveness {
    fn from(l: &domain::Liveness) -> Self {
        Self {
            active_stage: l.active_stage.map(StageName::from),
            last_activity_age_seconds: l.last_activity_age_seconds,
            stalled: l.stalled,
        }
    }
}

/// One unit of work across the three services: plan session → issue → coding task →
/// branch/PR → test spec, with one stage per service, usage, and liveness.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkItem {
    /// The canonical key.
    pub correlation_key: String,
    /// Keys merged into this item.
    pub aliases: Vec<String>,
    /// Title, when a sender gave one.
    #[schema(required = true)]
    pub title: Option<String>,
    /// Repository or project.
    #[schema(required = true)]
    pub project: Option<String>,
    /// Chain links.
    pub links: Links,
    /// Plan, code and test.
    pub stages: Stages,
    /// Usage over every task.
    pub usage_total: UsageAmounts,
    /// Usage per (service, task).
    pub usage_by_task: Vec<TaskUsage>,
    /// Events accepted onto this item.
    pub event_count: u64,
    /// Round trips from a failed test back to more coding (handbacks).
    pub handbacks: u32,
    /// Ingest findings.
    pub flags: IngestFlags,
    /// The sender's budget, as its latest usage reported it; left out when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetState>,
    /// Time of the earliest event.
    pub created_at: DateTime<Utc>,
    /// Time of the latest event.
    pub updated_at: DateTime<Utc>,
    /// Liveness at read time.
    pub liveness: Liveness,
}

impl From<&domain::WorkItem> for WorkItem {
    fn from(w: &domain::WorkItem) -> Self {
        Self {
            correlation_key: w.correlation_key.as_str().to_owned(),
            aliases: w.aliases.iter().map(|k| k.as_str().to_owned()).collect(),
            title: w.title.clone(),
            project: w.project.clone(),
            links: (&w.links).into(),
            stages: (&w.stages).into(),
            usage_total: (&w.usage_total).into(),
            usage_by_task: w.usage_by_task.iter().map(TaskUsage::from).collect(),
            event_count: w.event_count,
            handbacks: w.handbacks,
            flags: (&w.flags).into(),
            budget: w.budget.as_ref().map(BudgetState::from),
            created_at: w.created_at,
            updated_at: w.updated_at,
            liveness: (&w.liveness).into(),
        }
    }
}

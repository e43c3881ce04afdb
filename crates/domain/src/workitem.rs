//! The WorkItem: one unit of work threaded along plan session → issue → coding task →
//! branch/PR → test spec, with one stage per service, usage, and liveness.

use std::ops::AddAssign;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{
    CompletionEvent, EventKind, InjectionScan, Service, Usage, Verification, WorkerUsage,
};
use crate::ids::{CorrelationKey, EventId};
use crate::proof::{self, GateInput, Proof};
pub use crate::services::StageName;
use crate::services::UsageAccounting;
use crate::taxonomy::StatusClass;
use crate::upstream::TaskSnapshot;

/// Default silence after which a running stage counts as stalled.
pub const DEFAULT_STALL_DEADLINE_SECONDS: i64 = 900;

/// Most correlation conflicts kept on one item; older ones are summarised by the count.
const MAX_CONFLICTS_KEPT: usize = 20;

/// Tokens and dollars. The same fields everywhere usage appears.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub notional_cost_usd: f64,
}

impl UsageAmounts {
    /// The amounts an event's usage block reports, its dollars split into metered spend
    /// and notional dollars by each worker's billing mode.
    pub fn of(usage: &Usage) -> Self {
        let (cost_usd, notional_cost_usd) = crate::insights::split_dollars(usage);
        Self {
            input_tokens: usage.input_tokens.unwrap_or(0),
            output_tokens: usage.output_tokens.unwrap_or(0),
            total_tokens: usage.total(),
            cost_usd,
            notional_cost_usd,
        }
    }

    /// Every dollar the sender reported, metered or not.
    pub fn reported_usd(&self) -> f64 {
        self.cost_usd + self.notional_cost_usd
    }
}

impl AddAssign for UsageAmounts {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(rhs.total_tokens);
        self.cost_usd += rhs.cost_usd;
        self.notional_cost_usd += rhs.notional_cost_usd;
    }
}

/// One run's last usage figure, for services whose task usage is the sum of its runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunFigure {
    /// The time of the run's terminal event; `None` while the run is still going.
    pub ended_at: Option<DateTime<Utc>>,
    /// The time of the figure kept.
    pub at: DateTime<Utc>,
    /// The run's usage so far (its total once ended).
    pub amounts: UsageAmounts,
}

/// Most runs kept apart per task; older ones are folded together.
const MAX_RUNS_KEPT: usize = 100;

/// Files one usage figure of a run into `ledger`, ordered by time: a terminal event at
/// `at` ends the run that contains `at`, and each run keeps its latest figure. The result
/// does not depend on arrival order; a snapshot never outweighs its run's terminal.
fn file_run_figure(
    ledger: &mut Vec<RunFigure>,
    at: DateTime<Utc>,
    amounts: UsageAmounts,
    terminal: bool,
) {
    let figure = RunFigure {
        ended_at: terminal.then_some(at),
        at,
        amounts,
    };
    let Some(i) = ledger
        .iter()
        .position(|r| r.ended_at.is_none_or(|end| at <= end))
    else {
        ledger.push(figure);
        return;
    };
    let run = &mut ledger[i];
    match (terminal, run.ended_at) {
        // The same terminal again (a resend with a new id): the greater figure wins,
        // whatever the arrival order.
        (_, Some(end)) if end == at => {
            if terminal && figure_rank(&amounts) >= figure_rank(&run.amounts) {
                run.amounts = amounts;
            }
        }
        // A terminal inside run i: the figure kept there is later, so it belongs to the
        // run after this terminal.
        (true, _) if run.at > at => ledger.insert(i, figure),
        // A terminal at or after the open run's latest figure: it ends that run.
        (true, _) => *run = figure,
        // A snapshot: the run's latest figure wins (at the same time, the greater one).
        (false, _)
            if at > run.at
                || (at == run.at && figure_rank(&amounts) >= figure_rank(&run.amounts)) =>
        {
            run.at = at;
            run.amounts = amounts;
        }
        (false, _) => {}
    }
    while ledger.len() > MAX_RUNS_KEPT {
        let oldest = ledger.remove(0);
        ledger[0].amounts += oldest.amounts;
    }
}

/// How two figures reported at the same time are ordered: a running total only grows,
/// so the greater one is the later.
fn figure_rank(a: &UsageAmounts) -> (u64, u64, u64) {
    (
        a.total_tokens,
        a.input_tokens.saturating_add(a.output_tokens),
        a.cost_usd.to_bits(),
    )
}

/// One task's usage: the running total of its current run plus the totals of the runs
/// before it (a correction after a handback starts a new run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    /// The service.
    pub service: Service,
    /// The service's task id.
    pub task_id: String,
    /// The model the latest usage named.
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
    #[serde(default)]
    pub phase: Option<String>,
    /// Per-worker usage of the latest event (provider, model, billing mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerUsage>,
    /// Each run's last figure, oldest first, for services that sum their runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_figures: Vec<RunFigure>,
}

impl TaskUsage {
    /// Earlier runs plus the current one.
    pub fn total(&self) -> UsageAmounts {
        let mut t = self.earlier_runs;
        t += self.current;
        t
    }

    fn new(event: &CompletionEvent) -> Self {
        Self {
            service: event.service,
            task_id: event.task_id.clone(),
            model: None,
            at: event.time,
            current: UsageAmounts::default(),
            earlier_runs: UsageAmounts::default(),
            runs: 0,
            phase: None,
            workers: Vec::new(),
            run_figures: Vec::new(),
        }
    }

    /// Takes one usage figure under the service's accounting rule. Returns whether the
    /// figure is the task's latest (so its model and workers describe the task now).
    fn take(&mut self, at: DateTime<Utc>, amounts: UsageAmounts, terminal: bool) -> bool {
        // The latest by time; at the same time, the greater figure (a running total only
        // grows), so arrival order does not decide.
        let latest = self.runs == 0
            || at > self.at
            || (at == self.at && figure_rank(&amounts) >= figure_rank(&self.current));
        match self.service.rules().usage {
            UsageAccounting::SumOfRuns => {
                if self.run_figures.is_empty() && self.runs > 0 {
                    // A task recorded before runs were kept apart: its figures so far
                    // stand as one earlier run and the current one.
                    self.run_figures.push(RunFigure {
                        ended_at: Some(DateTime::<Utc>::MIN_UTC),
                        at: DateTime::<Utc>::MIN_UTC,
                        amounts: self.earlier_runs,
                    });
                    self.run_figures.push(RunFigure {
                        ended_at: None,
                        at: self.at,
                        amounts: self.current,
                    });
                }
                file_run_figure(&mut self.run_figures, at, amounts, terminal);
                self.sum_runs();
            }
            UsageAccounting::LatestTotal => {
                if latest {
                    self.current = amounts;
                    self.runs = 1;
                }
            }
        }
        if latest {
            self.at = at;
        }
        latest
    }

    fn sum_runs(&mut self) {
        let mut earlier = UsageAmounts::default();
        let (last, rest) = self.run_figures.split_last().expect("a run was just filed");
        for r in rest {
            earlier += r.amounts;
        }
        self.current = last.amounts;
        self.earlier_runs = earlier;
        self.runs = u32::try_from(self.run_figures.len()).unwrap_or(u32::MAX);
    }

    /// Folds in the same task's usage as another item recorded it (a merge).
    fn merge(&mut self, other: TaskUsage) {
        match self.service.rules().usage {
            UsageAccounting::SumOfRuns if !other.run_figures.is_empty() => {
                for r in other.run_figures {
                    self.take(r.at, r.amounts, r.ended_at.is_some());
                }
            }
            _ if other.at > self.at => *self = other,
            _ => {}
        }
    }

    /// Files one worker's own report among the task's workers.
    fn take_worker(&mut self, worker: &WorkerUsage) {
        match self
            .workers
            .iter_mut()
            .find(|w| w.worker_id.is_some() && w.worker_id == worker.worker_id)
        {
            Some(w) => *w = worker.clone(),
            None => self.workers.push(worker.clone()),
        }
    }
}

/// The sender's budget as its latest usage reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The limit, in dollars.
    pub limit_usd: Option<f64>,
    /// What the sender counts as spent.
    pub spent_usd: Option<f64>,
    /// Whether the sender says the budget is exceeded.
    pub exceeded: bool,
    /// The time of the event that reported it.
    pub at: DateTime<Utc>,
}

impl BudgetState {
    fn of(value: &serde_json::Value, at: DateTime<Utc>) -> Option<Self> {
        let obj = value.as_object()?;
        let number = |k: &str| {
            obj.get(k)
                .and_then(serde_json::Value::as_f64)
                .filter(|n| n.is_finite())
        };
        Some(Self {
            limit_usd: number("limit_usd"),
            spent_usd: number("spent_usd"),
            exceeded: obj
                .get("exceeded")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            at,
        })
    }
}

/// One stage: the event with the latest `time` that its service sent for this item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The shown event's injection scan; absent means no scan ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection_scan: Option<InjectionScan>,
    /// TFactory's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// TFactory's halt reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// TFactory's verification: the level achieved against the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Why the task waits in review, as its service says (AIFactory's `review_reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<String>,
    /// The latest worker report or heartbeat of the shown task, when later than `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<DateTime<Utc>>,
    /// Whether the stage shows what the service's API said (a poll or a live frame)
    /// rather than a completion event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_api: bool,
    /// When the stage's first event happened.
    pub started_at: DateTime<Utc>,
    /// When CFactory received the shown event (breaks ties between equal times).
    pub received_at: DateTime<Utc>,
}

impl Stage {
    /// Whether the stage ended in failure: a failed-class status, or a run that reported
    /// `outcome: "failure"` under a finished status (TFactory's `triaged` with failing
    /// tests or no verdict).
    pub fn failed(&self) -> bool {
        self.status_class == StatusClass::Failed
            || self
                .outcome
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("failure"))
    }

    /// Whether a plan waits for a person's sign-off: PFactory's `processed` (gates
    /// evaluated), a `review_reason` of `awaiting_approval`, or the contract's older
    /// `awaiting_approval` status.
    pub fn awaits_approval(&self) -> bool {
        let status = self.status.trim();
        status.eq_ignore_ascii_case("processed")
            || status.eq_ignore_ascii_case("awaiting_approval")
            || self
                .review_reason
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("awaiting_approval"))
            || {
                let lower = status.to_lowercase();
                let words: Vec<&str> = lower.split(['_', '-', ' ']).collect();
                words.contains(&"awaiting") && words.contains(&"approval")
            }
    }

    /// Whether the verify asked a person to look (`outcome: "human_review"`).
    pub fn needs_human_review(&self) -> bool {
        self.outcome
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("human_review"))
    }

    /// The latest sign of life: the shown event, or a later worker report.
    pub fn last_activity(&self) -> DateTime<Utc> {
        self.progress_at.map_or(self.at, |p| p.max(self.at))
    }
}

/// An item's stages, one slot per staged service in pipeline order. On the wire (and in
/// stored documents) an object with every known stage's name, `null` where it has not
/// started: `{"plan": …, "code": null, "test": null}`.
#[derive(Debug, Clone, Default)]
pub struct Stages {
    /// Indexed by [`StageName::slot`]; shorter when the later stages have not started.
    slots: Vec<Option<Stage>>,
}

impl Stages {
    /// The stage slot by name.
    pub fn get(&self, name: StageName) -> Option<&Stage> {
        self.slots.get(name.slot()).and_then(Option::as_ref)
    }

    /// PFactory's plan.
    pub fn plan(&self) -> Option<&Stage> {
        self.get(StageName::PLAN)
    }

    /// AIFactory's code.
    pub fn code(&self) -> Option<&Stage> {
        self.get(StageName::CODE)
    }

    /// TFactory's test.
    pub fn test(&self) -> Option<&Stage> {
        self.get(StageName::TEST)
    }

    /// Sets (or with `None` clears) a stage.
    pub fn set(&mut self, name: StageName, stage: Option<Stage>) {
        *self.slot(name) = stage;
    }

    fn get_mut(&mut self, name: StageName) -> Option<&mut Stage> {
        self.slots.get_mut(name.slot()).and_then(Option::as_mut)
    }

    fn slot(&mut self, name: StageName) -> &mut Option<Stage> {
        let i = name.slot();
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        &mut self.slots[i]
    }

    /// Present stages with their names, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = (StageName, &Stage)> {
        StageName::all().filter_map(|n| self.get(n).map(|s| (n, s)))
    }

    /// The furthest stage that has started.
    pub fn active(&self) -> Option<(StageName, &Stage)> {
        self.iter().last()
    }
}

/// Equal when the same stages are present and equal, however long the slots run.
impl PartialEq for Stages {
    fn eq(&self, other: &Self) -> bool {
        let len = self.slots.len().max(other.slots.len());
        (0..len).all(|i| {
            self.slots.get(i).and_then(Option::as_ref)
                == other.slots.get(i).and_then(Option::as_ref)
        })
    }
}

impl Serialize for Stages {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for name in StageName::all() {
            map.serialize_entry(name.as_str(), &self.get(name))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Stages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let named = std::collections::BTreeMap::<StageName, Option<Stage>>::deserialize(d)?;
        let mut stages = Stages::default();
        for (name, stage) in named {
            stages.set(name, stage);
        }
        Ok(stages)
    }
}

/// AIFactory's review reasons that stand for a run that ended (its API folds `qa_failed`
/// and `completed` into `human_review`).
const ENDED_RUN_REASONS: [&str; 3] = ["completed", "qa_rejected", "errors"];

impl Stage {
    /// Whether this event, though not later, tells more about the state `api` shows for
    /// the same task: the API's observation is stamped when it was read, so the event of
    /// that same state (the same status, or the terminal status the API folds into a
    /// review reason) may carry an earlier time. The event's details then show.
    fn details(&self, api: &Stage) -> bool {
        api.from_api
            && api.task_id == self.task_id
            && (api.status == self.status
                || (self.status_class.is_terminal()
                    && api
                        .review_reason
                        .as_deref()
                        .is_some_and(|r| ENDED_RUN_REASONS.contains(&r))))
    }
}

/// Rule 5: the later `time` wins. Between two events at the same time the terminal one
/// wins, then the greater event id, so the result does not depend on arrival order; a
/// status read from the service's API at the same time goes to the later arrival.
fn newer(candidate: &Stage, current: &Stage) -> bool {
    if candidate.at != current.at {
        return candidate.at > current.at;
    }
    if candidate.from_api || current.from_api {
        return candidate.received_at >= current.received_at;
    }
    (
        candidate.status_class.is_terminal(),
        candidate.event_id.as_ref(),
    ) >= (
        current.status_class.is_terminal(),
        current.event_id.as_ref(),
    )
}

/// The chain links known for an item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// PFactory plan session.
    pub session_id: Option<String>,
    /// GitHub issue number.
    pub issue_number: Option<u64>,
    /// AIFactory tasks.
    pub aifactory_task_ids: Vec<String>,
    /// Git branch.
    pub branch: Option<String>,
    /// Pull request.
    pub pr_number: Option<u64>,
    /// TFactory specs.
    pub tfactory_spec_ids: Vec<String>,
    /// The GitHub repository of the issue, when a sender named it.
    #[serde(default)]
    pub repo: Option<String>,
    /// Issues PFactory created for this unit (its epic and children): links, not units.
    #[serde(default)]
    pub emitted_issues: Vec<u64>,
}

/// Adds `value` to a sorted list without duplicates: the list reads the same whatever
/// order its values arrived in.
/// The most [`Round`]s an item keeps; past it the oldest go.
pub const MAX_ROUNDS: usize = 512;

/// A decisive coding report or test verdict, by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Round {
    /// The event's time.
    pub at: DateTime<Utc>,
    /// What it was.
    pub mark: RoundMark,
}

/// What a [`Round`] was. At equal times coding sorts before a verdict: the verdict is
/// taken to judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundMark {
    /// AIFactory reported on its coding run.
    Coding,
    /// TFactory's verify failed or asked for a person.
    TestFailed,
    /// Any other TFactory verdict or state (passed, running, queued).
    TestOther,
}

/// Handbacks in `rounds` (sorted by time): each failed or human-review verdict that
/// judged earlier coding and was followed by more coding before any other verdict is one
/// round trip back to AIFactory.
fn count_handbacks(rounds: &[Round]) -> u32 {
    let (mut coded, mut failed, mut count) = (false, false, 0u32);
    for round in rounds {
        match round.mark {
            RoundMark::Coding => {
                if failed {
                    count += 1;
                    failed = false;
                }
                coded = true;
            }
            RoundMark::TestFailed => failed = coded,
            RoundMark::TestOther => failed = false,
        }
    }
    count
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if let Err(at) = list.binary_search_by(|v| v.as_str().cmp(value)) {
        list.insert(at, value.to_owned());
    }
}

/// As [`push_unique`], for numbers.
fn push_unique_number(list: &mut Vec<u64>, value: u64) {
    if let Err(at) = list.binary_search(&value) {
        list.insert(at, value);
    }
}

/// Fills a single-valued link; when two values meet the smaller stays, so the link reads
/// the same whatever order they arrived in.
fn fill<T: Ord + Clone>(slot: &mut Option<T>, other: &Option<T>) {
    match (slot.as_ref(), other) {
        (_, None) => {}
        (None, Some(v)) => *slot = Some(v.clone()),
        (Some(mine), Some(v)) if v < mine => *slot = Some(v.clone()),
        _ => {}
    }
}

impl Links {
    fn absorb(&mut self, other: &Links) {
        fill(&mut self.session_id, &other.session_id);
        fill(&mut self.issue_number, &other.issue_number);
        for t in &other.aifactory_task_ids {
            push_unique(&mut self.aifactory_task_ids, t);
        }
        if self.branch.is_none() {
            self.branch.clone_from(&other.branch);
        }
        if self.pr_number.is_none() {
            self.pr_number = other.pr_number;
        }
        for t in &other.tfactory_spec_ids {
            push_unique(&mut self.tfactory_spec_ids, t);
        }
        fill(&mut self.repo, &other.repo);
        for n in &other.emitted_issues {
            push_unique_number(&mut self.emitted_issues, *n);
        }
    }
}

/// Two issue numbers claimed one unit of work; the event stayed on its own key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationConflict {
    /// The event that carried the conflict.
    pub event_id: Option<EventId>,
    /// The issue numbers that disagreed.
    pub issue_numbers: Vec<u64>,
    /// Why, when it is not two numbers disagreeing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The event's time.
    pub at: DateTime<Utc>,
}

/// Ingest findings kept on the item so anomalies can surface them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestFlags {
    /// Events recorded without an `id`.
    pub missing_event_id: u64,
    /// Correlation conflicts seen (all of them).
    pub correlation_conflict_count: u64,
    /// The most recent conflicts.
    pub correlation_conflicts: Vec<CorrelationConflict>,
}

/// Whether an item is alive, computed at read time against the clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// The furthest started stage.
    pub active_stage: Option<StageName>,
    /// Seconds since the latest stage activity.
    pub last_activity_age_seconds: Option<i64>,
    /// A running or stuck stage silent past the stall deadline.
    pub stalled: bool,
}

/// One unit of work across the three services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The canonical key.
    pub correlation_key: CorrelationKey,
    /// Keys merged into this item.
    pub aliases: Vec<CorrelationKey>,
    /// Title, when a sender gave one.
    pub title: Option<String>,
    /// Repository or project.
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
    /// Round trips from a failed test back to more coding (handbacks), counted from
    /// `rounds`.
    #[serde(default)]
    pub handbacks: u32,
    /// The decisive coding reports and test verdicts by time, newest [`MAX_ROUNDS`] kept,
    /// so handbacks are counted in time order whatever order the events arrive in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Round>,
    /// Ingest findings.
    pub flags: IngestFlags,
    /// The sender's budget, as its latest usage reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetState>,
    /// Time of the earliest event.
    pub created_at: DateTime<Utc>,
    /// Time of the latest event.
    pub updated_at: DateTime<Utc>,
    /// Liveness at read time.
    #[serde(default)]
    pub liveness: Liveness,
}

impl WorkItem {
    /// An empty item under `key`, first seen at `at`.
    pub fn new(key: CorrelationKey, at: DateTime<Utc>) -> Self {
        let links = Links {
            issue_number: key.issue_number(),
            repo: key.issue_ref().and_then(|(r, _)| r),
            ..Links::default()
        };
        Self {
            correlation_key: key,
            aliases: Vec::new(),
            title: None,
            project: None,
            links,
            stages: Stages::default(),
            usage_total: UsageAmounts::default(),
            usage_by_task: Vec::new(),
            event_count: 0,
            handbacks: 0,
            rounds: Vec::new(),
            flags: IngestFlags::default(),
            budget: None,
            created_at: at,
            updated_at: at,
            liveness: Liveness::default(),
        }
    }

    /// Rebuilds the item under `key` from its timeline (the stored events' raw JSON, any
    /// order) when its stored state can no longer be read: each event that still parses is
    /// applied in time order. What came only from the services' APIs and the keys of items
    /// merged into it come back with the next poll and the next event. `None` when no
    /// event parses.
    pub fn rebuild(key: CorrelationKey, raws: &[String]) -> Option<Self> {
        let mut events: Vec<CompletionEvent> = raws
            .iter()
            .filter_map(|raw| CompletionEvent::parse(raw).ok())
            .collect();
        events.sort_by(|a, b| (a.time, a.id.as_ref()).cmp(&(b.time, b.id.as_ref())));
        let first = events.first()?.time;
        let mut item = Self::new(key, first);
        for event in &events {
            item.apply_event(event, event.time);
        }
        Some(item)
    }

    /// Applies an accepted event: stage (rule 5), usage (rule 6), links and times. A
    /// worker's report or heartbeat touches only that worker's usage and the stage's
    /// progress, never the stage itself.
    pub fn apply_event(&mut self, event: &CompletionEvent, received_at: DateTime<Utc>) {
        self.event_count += 1;
        if event.id.is_none() || event.id_derived {
            self.flags.missing_event_id += 1;
        }
        self.created_at = self.created_at.min(event.time);
        self.updated_at = self.updated_at.max(event.time);
        if self.title.is_none() {
            self.title.clone_from(&event.title);
        }
        if self.project.is_none() {
            self.project.clone_from(&event.project);
        }
        self.absorb_links(event);
        let Some(name) = StageName::of(event.service) else {
            if let Some(usage) = &event.usage {
                self.record_usage(event, usage);
            }
            return;
        };
        if !event.decides_stage() {
            self.record_worker(event, name);
            return;
        }
        if let Some(usage) = &event.usage {
            self.record_usage(event, usage);
        }
        self.note_round(event, name);
        let class = event.status_class();
        let candidate = Stage {
            task_id: event.task_id.clone(),
            status: event.status.clone(),
            status_class: class,
            phase: event.phase.clone(),
            at: event.time,
            proof: proof::judge(GateInput {
                service: event.service,
                class,
                evidence: event.evidence.as_ref(),
                outcome: event.outcome.as_deref(),
                halt_reason: event.halt_reason.as_deref(),
            }),
            usage: UsageAmounts::default(),
            event_id: event.id.clone(),
            injection_scan: event.injection_scan.clone(),
            outcome: event.outcome.clone(),
            halt_reason: event.halt_reason.clone(),
            verification: event.verification.clone(),
            review_reason: event.review_reason.clone(),
            progress_at: None,
            from_api: false,
            started_at: event.time,
            received_at,
        };
        let slot = self.stages.slot(name);
        match slot {
            Some(current) => {
                let started_at = current.started_at.min(event.time);
                if newer(&candidate, current) || candidate.details(current) {
                    let same_run = current.task_id == candidate.task_id;
                    let progress = current
                        .progress_at
                        .filter(|p| *p > candidate.at && same_run);
                    // The service's own review reason (read from its API) stays while the
                    // status it explains does.
                    let reason = match candidate.review_reason {
                        None if same_run && current.status == candidate.status => {
                            current.review_reason.take()
                        }
                        _ => None,
                    };
                    *current = candidate;
                    current.progress_at = progress;
                    if current.review_reason.is_none() {
                        current.review_reason = reason;
                    }
                }
                current.started_at = started_at;
            }
            None => *slot = Some(candidate),
        }
        self.recompute_usage();
    }

    /// A worker's report or heartbeat: the worker's own usage goes on its task, and the
    /// stage showing that task notes the sign of life.
    fn record_worker(&mut self, event: &CompletionEvent, name: StageName) {
        if let Some(worker) = &event.worker
            && event.kind == EventKind::Worker
            && let Some(task) = self
                .usage_by_task
                .iter_mut()
                .find(|t| t.service == event.service && t.task_id == event.task_id)
        {
            task.take_worker(worker);
        }
        if let Some(stage) = self.stages.get_mut(name)
            && stage.task_id == event.task_id
            && event.time > stage.last_activity()
        {
            stage.progress_at = Some(event.time);
        }
        self.recompute_usage();
    }

    /// Notes a decisive coding report or test verdict in `rounds` and counts the
    /// handbacks again.
    fn note_round(&mut self, event: &CompletionEvent, stage: StageName) {
        let mark = if stage == StageName::CODE {
            RoundMark::Coding
        } else if stage == StageName::TEST {
            let outcome = event.outcome.as_deref().unwrap_or("");
            if event.status_class() == StatusClass::Failed
                || outcome.eq_ignore_ascii_case("failure")
                || outcome.eq_ignore_ascii_case("human_review")
            {
                RoundMark::TestFailed
            } else {
                RoundMark::TestOther
            }
        } else {
            return;
        };
        let round = Round {
            at: event.time,
            mark,
        };
        if let Err(at) = self.rounds.binary_search(&round) {
            self.rounds.insert(at, round);
            if self.rounds.len() > MAX_ROUNDS {
                self.rounds.remove(0);
            }
            self.handbacks = count_handbacks(&self.rounds);
        }
    }

    fn absorb_links(&mut self, event: &CompletionEvent) {
        let c = &event.correlation;
        let own = Links {
            session_id: c
                .session_id
                .clone()
                .or_else(|| (event.service == Service::PFACTORY).then(|| event.task_id.clone())),
            issue_number: event.claimed_issues().first().copied().or(c.issue_number),
            aifactory_task_ids: c
                .aifactory_task_id
                .iter()
                .cloned()
                .chain((event.service == Service::AIFACTORY).then(|| event.task_id.clone()))
                .collect(),
            branch: c.branch.clone(),
            pr_number: c.pr_number,
            tfactory_spec_ids: c
                .tfactory_spec_id
                .iter()
                .cloned()
                .chain((event.service == Service::TFACTORY).then(|| event.task_id.clone()))
                .collect(),
            repo: None,
            emitted_issues: Vec::new(),
        };
        // A later branch or PR replaces an earlier one; the rest only fills gaps.
        if own.branch.is_some() && event.time >= self.updated_at {
            self.links.branch.clone_from(&own.branch);
        }
        if own.pr_number.is_some() && event.time >= self.updated_at {
            self.links.pr_number = own.pr_number;
        }
        if self.links.issue_number.is_none() {
            self.links.issue_number = self.correlation_key.issue_number();
        }
        if self.links.repo.is_none() && self.correlation_key.issue_number().is_some() {
            self.links.repo.clone_from(&event.repo);
        }
        for n in event.emitted_issues() {
            push_unique_number(&mut self.links.emitted_issues, n);
        }
        self.links.absorb(&own);
    }

    /// Rule 6: each task's usage follows its service's accounting (see
    /// [`crate::services`]): AIFactory's runs are summed, each at its last figure by
    /// time; PFactory's and TFactory's latest running total by time is the task's.
    fn record_usage(&mut self, event: &CompletionEvent, usage: &Usage) {
        if let Some(budget) = usage
            .budget
            .as_ref()
            .and_then(|b| BudgetState::of(b, event.time))
            && self.budget.is_none_or(|b| event.time >= b.at)
        {
            self.budget = Some(budget);
        }
        let amounts = UsageAmounts::of(usage);
        let terminal = event.status_class().is_terminal();
        let i = match self
            .usage_by_task
            .iter()
            .position(|t| t.service == event.service && t.task_id == event.task_id)
        {
            Some(i) => i,
            None => {
                self.usage_by_task.push(TaskUsage::new(event));
                self.usage_by_task.len() - 1
            }
        };
        let task = &mut self.usage_by_task[i];
        if task.take(event.time, amounts, terminal) {
            task.phase = Some(event.phase.clone());
            if !usage.workers.is_empty() {
                task.workers.clone_from(&usage.workers);
            }
            if usage.model.as_deref().is_some_and(|m| !m.trim().is_empty()) {
                task.model.clone_from(&usage.model);
            }
        }
        self.recompute_usage();
    }

    fn recompute_usage(&mut self) {
        // One order whatever the arrival order: the list reads the same, and the
        // dollar sums add in the same order.
        self.usage_by_task.sort_by(|a, b| {
            (a.service.as_str(), &a.task_id).cmp(&(b.service.as_str(), &b.task_id))
        });
        let mut total = UsageAmounts::default();
        let mut per_stage = vec![UsageAmounts::default(); StageName::all().count()];
        for task in &self.usage_by_task {
            let t = task.total();
            total += t;
            if let Some(sum) =
                StageName::of(task.service).and_then(|stage| per_stage.get_mut(stage.slot()))
            {
                *sum += t;
            }
        }
        self.usage_total = total;
        for name in StageName::all() {
            if let Some(stage) = self.stages.get_mut(name) {
                stage.usage = per_stage[name.slot()];
            }
        }
    }

    /// Applies an upstream's task snapshot seen at `at`: no timeline entry, nothing
    /// rewritten when unchanged, a terminal stage never regressed, and an older snapshot
    /// never replacing a newer stage. Returns whether anything changed.
    pub fn apply_snapshot(
        &mut self,
        snap: &TaskSnapshot,
        at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> bool {
        let mut changed = false;
        if self.title.is_none() && snap.title.is_some() {
            self.title.clone_from(&snap.title);
            changed = true;
        }
        if self.project.is_none() && snap.project.is_some() {
            self.project.clone_from(&snap.project);
            changed = true;
        }
        let before = self.links.clone();
        let c = &snap.correlation;
        let own = Links {
            session_id: c
                .session_id
                .clone()
                .or_else(|| (snap.service == Service::PFACTORY).then(|| snap.task_id.clone())),
            issue_number: c.issue_number.or(snap.issue_number),
            aifactory_task_ids: c
                .aifactory_task_id
                .iter()
                .cloned()
                .chain((snap.service == Service::AIFACTORY).then(|| snap.task_id.clone()))
                .collect(),
            branch: c.branch.clone(),
            pr_number: c.pr_number,
            tfactory_spec_ids: c
                .tfactory_spec_id
                .iter()
                .cloned()
                .chain((snap.service == Service::TFACTORY).then(|| snap.task_id.clone()))
                .collect(),
            repo: None,
            emitted_issues: Vec::new(),
        };
        self.links.absorb(&own);
        changed |= self.links != before;

        if let Some(name) = StageName::of(snap.service) {
            // TFactory's finished verify that needs a person keeps `triaged`; the API's
            // `human_review` reason is its verdict, as `outcome` is on an event.
            let verdict = snap
                .review_reason
                .as_deref()
                .filter(|r| r.eq_ignore_ascii_case("human_review"));
            let class = snap.service.classify(&snap.status, verdict);
            let phase = snap.phase.clone().unwrap_or_else(|| snap.status.clone());
            let slot = self.stages.slot(name);
            let replace = match slot.as_ref() {
                None => true,
                Some(cur) => {
                    let same = cur.task_id == snap.task_id
                        && cur.status == snap.status
                        && cur.phase == phase
                        && (snap.review_reason.is_none()
                            || cur.review_reason == snap.review_reason);
                    let regress = cur.status_class.is_terminal() && !class.is_terminal();
                    !same && !regress && at >= cur.at
                }
            };
            if replace {
                let previous = slot.take();
                let same_task = previous.as_ref().is_some_and(|p| p.task_id == snap.task_id);
                let proof = match &previous {
                    // The run's evidence came with its event; a later snapshot of the same
                    // successful run keeps it.
                    Some(p) if same_task && p.status_class == class => p.proof,
                    _ if class == StatusClass::Done => Proof::Unproven,
                    _ => Proof::NotApplicable,
                };
                *slot = Some(Stage {
                    task_id: snap.task_id.clone(),
                    status: snap.status.clone(),
                    status_class: class,
                    phase,
                    at,
                    proof,
                    usage: UsageAmounts::default(),
                    event_id: previous
                        .as_ref()
                        .filter(|_| same_task)
                        .and_then(|p| p.event_id.clone()),
                    injection_scan: previous
                        .as_ref()
                        .filter(|_| same_task)
                        .and_then(|p| p.injection_scan.clone()),
                    outcome: None,
                    halt_reason: None,
                    verification: previous
                        .as_ref()
                        .filter(|_| same_task)
                        .and_then(|p| p.verification.clone()),
                    review_reason: snap.review_reason.clone(),
                    progress_at: None,
                    from_api: true,
                    started_at: previous.as_ref().map_or(at, |p| p.started_at.min(at)),
                    received_at,
                });
                changed = true;
                self.recompute_usage();
            }
        }
        if changed {
            self.created_at = self.created_at.min(at);
            self.updated_at = self.updated_at.max(at);
        }
        changed
    }

    /// Clears `service`'s stage when it is not terminal and its task is no longer in the
    /// service's complete task list. Returns whether it was cleared.
    pub fn clear_stage_if_gone(
        &mut self,
        service: Service,
        present: &std::collections::BTreeSet<String>,
    ) -> bool {
        let Some(name) = StageName::of(service) else {
            return false;
        };
        let slot = self.stages.slot(name);
        let gone = slot
            .as_ref()
            .is_some_and(|s| !s.status_class.is_terminal() && !present.contains(&s.task_id));
        if gone {
            *slot = None;
        }
        gone
    }

    /// Records that two issue numbers claimed this event's unit of work.
    pub fn record_conflict(
        &mut self,
        event: &CompletionEvent,
        issue_numbers: Vec<u64>,
        reason: Option<String>,
    ) {
        self.flags.correlation_conflict_count += 1;
        self.flags.correlation_conflicts.push(CorrelationConflict {
            event_id: event.id.clone(),
            issue_numbers,
            reason,
            at: event.time,
        });
        let excess = self
            .flags
            .correlation_conflicts
            .len()
            .saturating_sub(MAX_CONFLICTS_KEPT);
        self.flags.correlation_conflicts.drain(..excess);
    }

    /// Adds a key this item is also known by.
    pub fn add_alias(&mut self, key: &CorrelationKey) {
        if key != &self.correlation_key
            && let Err(at) = self.aliases.binary_search(key)
        {
            self.aliases.insert(at, key.clone());
        }
    }

    /// Rule 3: merges another item into this one (timeline moves in the store; here the
    /// stages, links, usage, aliases and counts).
    pub fn absorb(&mut self, other: WorkItem) {
        self.add_alias(&other.correlation_key);
        for alias in &other.aliases {
            self.add_alias(alias);
        }
        if self.title.is_none() {
            self.title = other.title;
        }
        if self.project.is_none() {
            self.project = other.project;
        }
        self.links.absorb(&other.links);
        for name in StageName::all() {
            let Some(theirs) = other.stages.get(name).cloned() else {
                continue;
            };
            let slot = self.stages.slot(name);
            match slot {
                Some(mine) => {
                    let started_at = mine.started_at.min(theirs.started_at);
                    if newer(&theirs, mine) {
                        *mine = theirs;
                    }
                    mine.started_at = started_at;
                }
                None => *slot = Some(theirs),
            }
        }
        for task in other.usage_by_task {
            match self
                .usage_by_task
                .iter_mut()
                .find(|t| t.service == task.service && t.task_id == task.task_id)
            {
                Some(mine) => mine.merge(task),
                None => self.usage_by_task.push(task),
            }
        }
        if let Some(theirs) = other.budget
            && self.budget.is_none_or(|b| theirs.at > b.at)
        {
            self.budget = Some(theirs);
        }
        self.event_count += other.event_count;
        self.rounds.extend(other.rounds);
        self.rounds.sort_unstable();
        self.rounds.dedup();
        if self.rounds.len() > MAX_ROUNDS {
            self.rounds.drain(..self.rounds.len() - MAX_ROUNDS);
        }
        self.handbacks = count_handbacks(&self.rounds);
        self.flags.missing_event_id += other.flags.missing_event_id;
        self.flags.correlation_conflict_count += other.flags.correlation_conflict_count;
        self.flags
            .correlation_conflicts
            .extend(other.flags.correlation_conflicts);
        self.created_at = self.created_at.min(other.created_at);
        self.updated_at = self.updated_at.max(other.updated_at);
        self.recompute_usage();
    }

    /// The earliest `at` among stages that can stall (running or stuck), if any.
    pub fn stall_clock(&self) -> Option<DateTime<Utc>> {
        self.stages
            .iter()
            .filter(|(_, s)| s.status_class.can_stall())
            .map(|(_, s)| s.last_activity())
            .min()
    }

    /// Fills `liveness` for the moment `now`.
    pub fn refresh_liveness(&mut self, now: DateTime<Utc>, stall_deadline: Duration) {
        let last = self.stages.iter().map(|(_, s)| s.last_activity()).max();
        self.liveness = Liveness {
            active_stage: self.stages.active().map(|(n, _)| n),
            last_activity_age_seconds: last.map(|t| (now - t).num_seconds().max(0)),
            stalled: self.stall_clock().is_some_and(|t| now - t > stall_deadline),
        };
    }

    /// Lower-cased text that list filters and search match against.
    pub fn search_text(&self) -> String {
        let mut parts: Vec<&str> = vec![self.correlation_key.as_str()];
        parts.extend(self.aliases.iter().map(CorrelationKey::as_str));
        parts.extend(self.title.as_deref());
        parts.extend(self.project.as_deref());
        parts.extend(self.links.branch.as_deref());
        parts.extend(self.links.session_id.as_deref());
        parts.extend(self.links.aifactory_task_ids.iter().map(String::as_str));
        parts.extend(self.links.tfactory_spec_ids.iter().map(String::as_str));
        let emitted: Vec<String> = self
            .links
            .emitted_issues
            .iter()
            .map(|n| format!("#{n}"))
            .collect();
        parts.extend(emitted.iter().map(String::as_str));
        parts.join("\u{1f}").to_lowercase()
    }
}

#[cfg(test)]
mod tests;

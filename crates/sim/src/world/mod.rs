//! The simulated world: every session, task and spec, the queue of steps ordered by
//! simulated time, and the units of work that walk plan → code → test.
//!
//! Nothing here does I/O: steps write envelopes to `outbox` and frames to the live
//! feeds; the driver delivers them. The REST handlers act on the same state.

mod plan;
mod spec;
mod task;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::config::{Scenario, SimConfig};
use crate::envelope::{Envelope, Meter, now_iso, sha, uuid};
use plan::{Approval, Child, Lens, PLAN_STATES, Plan};
use spec::{LaneRun, Spec, VERIFY_MS, VERIFY_STATES};
use task::{Progress, Stage, Subtask, Task};

/// Milliseconds between two units starting, at speed 1.0.
pub(crate) const STAGGER_MS: u64 = 1_000;

/// An envelope to deliver, and the scenario whose unit it completes, if any.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) event: Option<Value>,
    pub(crate) completes: Option<Scenario>,
}

/// The live feeds of one service: `/ws/events` frames and `/ws/progress` frames.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    pub(crate) events: broadcast::Sender<String>,
    pub(crate) progress: broadcast::Sender<String>,
}

impl Feed {
    fn new() -> Self {
        Self {
            events: broadcast::channel(1024).0,
            progress: broadcast::channel(1024).0,
        }
    }

    fn frame(&self, kind: &str, payload: Value) {
        let _ = self
            .events
            .send(json!({"type": kind, "payload": payload}).to_string());
    }

    fn status(&self, id: &str, status: &str) {
        self.frame("task:status", json!({"taskId": id, "status": status}));
    }

    #[allow(clippy::too_many_arguments)]
    fn progress(
        &self,
        id: &str,
        phase: &str,
        message: &str,
        subtask: Option<&str>,
        subtask_index: usize,
        subtask_total: usize,
        percentage: u32,
    ) {
        self.frame(
            "task:progress",
            json!({"taskId": id, "percentage": percentage}),
        );
        self.frame(
            "task:log",
            json!({"taskId": id, "log": message, "timestamp": now_iso()}),
        );
        let _ = self.progress.send(
            json!({
                "type": "progress",
                "task_id": id,
                "phase": phase,
                "message": message,
                "timestamp": now_iso(),
                "subtask": subtask,
                "subtask_index": subtask_index,
                "subtask_total": subtask_total,
                "percentage": percentage,
            })
            .to_string(),
        );
    }
}

/// Why a REST action was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    NotFound(String),
    Conflict(String),
}

/// One scheduled step.
#[derive(Debug, Clone)]
enum Step {
    UnitStart(usize),
    PlanAdvance(String),
    PlanAutoApprove(String),
    TaskCreate(usize),
    Build {
        task: String,
        run: u32,
        idx: usize,
    },
    BuildComplete {
        task: String,
        run: u32,
    },
    Handoff(String),
    Verify {
        spec: String,
        cycle: u32,
        idx: usize,
    },
    Correction(String),
}

/// One unit of work and the story it tells.
#[derive(Debug, Clone)]
struct Unit {
    scenario: Scenario,
    /// How many units before this one played the same scenario.
    occurrence: usize,
    title: String,
    repo: String,
    spec: Option<String>,
    held: Option<Value>,
    done: bool,
}

const TITLES: [&str; 12] = [
    "Add a refund flow to checkout",
    "Rate-limit the public search API",
    "Export audit logs as CSV",
    "Single sign-on with Okta",
    "Retry failed payment webhooks",
    "Dark mode for the dashboard",
    "Paginate the orders endpoint",
    "Cache product thumbnails at the edge",
    "Two-factor recovery codes",
    "Bulk-archive stale projects",
    "Slack alerts for failed deploys",
    "Per-tenant usage quotas",
];
const REPOS: [&str; 3] = ["acme/shop", "acme/platform", "acme/console"];
const SUBTASKS: [&str; 5] = [
    "Add the data model and migration",
    "Implement the service layer",
    "Expose the REST endpoint",
    "Wire up the UI",
    "Document the change",
];
const LANES: [&str; 5] = ["unit", "api", "integration", "browser", "mutation"];
const LENSES: [&str; 4] = ["architecture", "security", "best-practices", "feasibility"];

/// The whole simulated state.
pub(crate) struct World {
    rng: StdRng,
    /// The current simulated time, in milliseconds at speed 1.0.
    pub(crate) now: u64,
    pub(crate) plans: BTreeMap<String, Plan>,
    pub(crate) tasks: BTreeMap<String, Task>,
    pub(crate) specs: BTreeMap<String, Spec>,
    queue: BTreeMap<(u64, u64), Step>,
    seq: u64,
    units: Vec<Unit>,
    pub(crate) outbox: Vec<Outgoing>,
    pub(crate) aifactory_feed: Feed,
    pub(crate) tfactory_feed: Feed,
    next_issue: u64,
    next_task: u32,
    next_spec: u32,
    next_pr: u64,
}

impl World {
    /// A world with the units the configuration asks for scheduled, plus a few
    /// standing items a human can act on.
    pub(crate) fn new(config: &SimConfig) -> Self {
        let mut w = Self {
            rng: StdRng::seed_from_u64(config.seed),
            now: 0,
            plans: BTreeMap::new(),
            tasks: BTreeMap::new(),
            specs: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            units: Vec::new(),
            outbox: Vec::new(),
            aifactory_feed: Feed::new(),
            tfactory_feed: Feed::new(),
            next_issue: 142,
            next_task: 1,
            next_spec: 1,
            next_pr: 310,
        };
        let order = config.scenario_order();
        let mut seen: BTreeMap<Scenario, usize> = BTreeMap::new();
        for i in 0..config.unit_count() {
            let scenario = order[i % order.len()];
            let occurrence = *seen.entry(scenario).and_modify(|n| *n += 1).or_insert(0);
            let title = TITLES[w.rng.random_range(0..TITLES.len())].to_owned();
            let repo = REPOS[w.rng.random_range(0..REPOS.len())].to_owned();
            w.units.push(Unit {
                scenario,
                occurrence,
                title,
                repo,
                spec: None,
                held: None,
                done: false,
            });
            let start = i as u64 * STAGGER_MS + w.rng.random_range(0..200);
            w.schedule(start, Step::UnitStart(i));
        }
        w.standing_items();
        w
    }

    /// Items no unit drives: a plan whose gates fail, one waiting for a human's
    /// approval, and a TFactory spec waiting at its plan gate.
    fn standing_items(&mut self) {
        let mut failing = self.new_plan(
            "900-legacy-sso",
            "Replace legacy SSO",
            "acme/platform",
            None,
        );
        failing.board_state = "awaiting_approval";
        failing.lenses = self.lenses(false);
        failing.children = self.children(3);
        self.plans.insert(failing.session_id.clone(), failing);

        let mut ready = self.new_plan(
            "901-audit-export",
            "Export audit logs as CSV",
            "acme/console",
            None,
        );
        ready.board_state = "awaiting_approval";
        ready.lenses = self.lenses(true);
        ready.children = self.children(2);
        self.plans.insert(ready.session_id.clone(), ready);

        let spec = self.new_spec(
            None,
            "spec-900".into(),
            "Verify billing rounding",
            "acme/shop",
        );
        self.specs.insert(spec.spec_id.clone(), spec);
        if let Some(s) = self.specs.get_mut("spec-900") {
            s.status = "planning";
            s.plan_status = "awaiting_approval";
        }
    }

    fn schedule(&mut self, at: u64, step: Step) {
        self.seq += 1;
        self.queue.insert((at, self.seq), step);
    }

    /// A nominal duration with ±15 % jitter drawn from the seeded generator.
    fn jitter(&mut self, ms: u64) -> u64 {
        let f: f64 = self.rng.random_range(0.85..1.15);
        (ms as f64 * f) as u64
    }

    fn after(&mut self, ms: u64, step: Step) {
        let at = self.now + self.jitter(ms);
        self.schedule(at, step);
    }

    /// Runs every step due by `now`, in simulated-time order.
    pub(crate) fn run_due(&mut self, now: u64) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, _), step) = entry.remove_entry();
            self.now = self.now.max(at);
            self.run(step);
        }
        self.now = self.now.max(now);
    }

    /// The simulated time of the next step, if any.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.queue.keys().next().map(|k| k.0)
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::UnitStart(u) => self.unit_start(u),
            Step::PlanAdvance(s) => self.plan_advance(&s),
            Step::PlanAutoApprove(s) => {
                let waiting = self
                    .plans
                    .get(&s)
                    .is_some_and(|p| p.board_state == "awaiting_approval");
                if waiting {
                    let _ = self.approve_plan(&s, "sim-reviewer@factory.local", None);
                }
            }
            Step::TaskCreate(u) => self.unit_task_create(u),
            Step::Build { task, run, idx } => self.build_step(&task, run, idx),
            Step::BuildComplete { task, run } => self.build_complete(&task, run),
            Step::Handoff(task) => {
                let _ = self.aifactory_complete(&task);
            }
            Step::Verify { spec, cycle, idx } => self.verify_step(&spec, cycle, idx),
            Step::Correction(spec) => self.tfactory_handback(&spec),
        }
    }

    fn id(&mut self) -> String {
        uuid(&mut self.rng)
    }

    fn send(&mut self, event: Value) {
        self.outbox.push(Outgoing {
            event: Some(event),
            completes: None,
        });
    }

    /// Marks a unit's story told, riding on its last envelope (if it has one).
    fn complete(&mut self, unit: Option<usize>, event: Option<Value>) {
        let scenario = unit
            .and_then(|u| self.units.get_mut(u))
            .filter(|u| !u.done)
            .map(|u| {
                u.done = true;
                u.scenario
            });
        if event.is_some() || scenario.is_some() {
            self.outbox.push(Outgoing {
                event,
                completes: scenario,
            });
        }
    }

    fn scenario(&self, unit: Option<usize>) -> Option<(Scenario, usize)> {
        unit.and_then(|u| self.units.get(u))
            .map(|u| (u.scenario, u.occurrence))
    }

    // ---- PFactory -------------------------------------------------------------

    fn new_plan(&mut self, session_id: &str, title: &str, repo: &str, unit: Option<usize>) -> Plan {
        let now = now_iso();
        Plan {
            session_id: session_id.to_owned(),
            title: title.to_owned(),
            repo: repo.to_owned(),
            board_state: "draft",
            github_issue: None,
            created_at: now.clone(),
            updated_at: now,
            lenses: Vec::new(),
            threshold: 0.75,
            children: Vec::new(),
            approval: None,
            meter: Meter::new(0, 2.0),
            unit,
        }
    }

    fn lenses(&mut self, pass: bool) -> Vec<Lens> {
        LENSES
            .iter()
            .enumerate()
            .map(|(i, &lens)| {
                let blocking = !pass && lens == "security";
                let score = if blocking {
                    4.5
                } else {
                    f64::from(self.rng.random_range(78..96u32)) / 10.0
                };
                let findings = match (blocking, i) {
                    (true, _) => vec!["Tokens are logged in plain text (blocking)".to_owned()],
                    (false, 0) => vec!["Consider an outbox table for the webhook".to_owned()],
                    _ => Vec::new(),
                };
                Lens {
                    lens,
                    score,
                    max: 10.0,
                    blocking,
                    findings,
                }
            })
            .collect()
    }

    fn children(&mut self, n: usize) -> Vec<Child> {
        (0..n)
            .map(|i| Child {
                id: format!("T{}", i + 1),
                number: None,
                title: SUBTASKS[i % SUBTASKS.len()].to_owned(),
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("T{i}")]
                },
            })
            .collect()
    }

    fn unit_start(&mut self, u: usize) {
        let Some(unit) = self.units.get(u).cloned() else {
            return;
        };
        if unit.scenario == Scenario::Rekey {
            // Work started straight in AIFactory, before any issue exists.
            let provenance = json!({"source": "manual", "repo": unit.repo});
            let id = self.create_task(
                "proj",
                &unit.title,
                "Started from the AIFactory board",
                &unit.repo,
                provenance,
                Some(u),
            );
            self.start_run(&id);
            return;
        }
        let session = format!("{:03}-{}", u + 1, slug(&unit.title));
        let mut plan = self.new_plan(&session, &unit.title, &unit.repo, Some(u));
        plan.meter.charge("planner", 1_200, 300);
        self.plans.insert(session.clone(), plan);
        self.after(500, Step::PlanAdvance(session));
    }

    fn plan_advance(&mut self, session: &str) {
        let lenses = self.lenses(true);
        let n_children = self.rng.random_range(2..4);
        let children = self.children(n_children);
        let (input, output) = (
            self.rng.random_range(2_000..6_000),
            self.rng.random_range(400..1_200),
        );
        let Some(plan) = self.plans.get_mut(session) else {
            return;
        };
        let Some(pos) = PLAN_STATES.iter().position(|s| *s == plan.board_state) else {
            return;
        };
        let Some(&next) = PLAN_STATES.get(pos + 1) else {
            return;
        };
        plan.board_state = next;
        plan.updated_at = now_iso();
        plan.meter.charge("planner", input, output);
        match next {
            "decomposed" => plan.children = children,
            "reviewing" => plan.lenses = lenses,
            _ => {}
        }
        if matches!(next, "decomposed" | "awaiting_approval") {
            let event = self.pf_event(session, "plan");
            self.send(event);
        }
        if next == "awaiting_approval" {
            self.after(800, Step::PlanAutoApprove(session.to_owned()));
        } else {
            self.after(500, Step::PlanAdvance(session.to_owned()));
        }
    }

    fn pf_event(&mut self, session: &str, phase: &str) -> Value {
        let id = self.id();
        let Some(plan) = self.plans.get(session) else {
            return Value::Null;
        };
        let mut correlation =
            json!({"session_id": plan.session_id, "issue_number": plan.github_issue});
        let mut env = Envelope::new(
            id,
            "pfactory",
            session,
            &plan.correlation_key(),
            plan.board_state,
            phase,
        )
        .with("title", json!(plan.title))
        .with("repo", json!(plan.repo))
        .with("usage", plan.meter.to_json(session));
        if plan.board_state == "emitted" {
            let children: Vec<u64> = plan.children.iter().filter_map(|c| c.number).collect();
            correlation["session_id"] = json!(plan.session_id);
            env = env.with(
                "evidence",
                json!({
                    "proof_kind": "issues",
                    "epic_issue": plan.github_issue,
                    "child_issues": children,
                    "child_count": children.len(),
                }),
            );
        }
        env.with("correlation", correlation).into_value()
    }

    /// `POST /api/plan/sessions/{id}/approve`: refused unless the session waits for
    /// approval with its gates passed; otherwise approved and emitted as issues.
    pub(crate) fn approve_plan(
        &mut self,
        session: &str,
        approver: &str,
        feedback: Option<String>,
    ) -> Result<Value, Refusal> {
        let plan = self
            .plans
            .get(session)
            .ok_or_else(|| Refusal::NotFound(format!("session {session} not found")))?;
        if plan.board_state != "awaiting_approval" {
            return Err(Refusal::Conflict(format!(
                "session is {}, not awaiting_approval",
                plan.board_state
            )));
        }
        if !plan.gates_passed() {
            return Err(Refusal::Conflict(format!(
                "review gates have not passed (aggregate {:.2}, threshold {:.2}, blocking lenses present: {})",
                plan.aggregate_score(),
                plan.threshold,
                plan.lenses.iter().any(|l| l.blocking)
            )));
        }
        let epic = self.next_issue;
        let n = plan.children.len() as u64;
        self.next_issue += n + 1 + self.rng.random_range(0..3);
        let Some(plan) = self.plans.get_mut(session) else {
            return Err(Refusal::NotFound(session.to_owned()));
        };
        plan.approval = Some(Approval {
            decision: "approve",
            approver: approver.to_owned(),
            feedback,
            at: now_iso(),
        });
        plan.github_issue = Some(epic);
        for (i, c) in plan.children.iter_mut().enumerate() {
            c.number = Some(epic + 1 + i as u64);
        }
        plan.board_state = "emitted";
        plan.updated_at = now_iso();
        let unit = plan.unit;
        let event = self.pf_event(session, "emit");
        self.send(event);
        match unit {
            Some(u) => self.after(400, Step::TaskCreate(u)),
            None => {
                // A human approved a standing session: it goes on to code and test.
                let title = self
                    .plans
                    .get(session)
                    .map(|p| p.title.clone())
                    .unwrap_or_default();
                let repo = self
                    .plans
                    .get(session)
                    .map(|p| p.repo.clone())
                    .unwrap_or_default();
                self.units.push(Unit {
                    scenario: Scenario::Happy,
                    occurrence: usize::MAX,
                    title,
                    repo,
                    spec: None,
                    held: None,
                    done: false,
                });
                let u = self.units.len() - 1;
                if let Some(p) = self.plans.get_mut(session) {
                    p.unit = Some(u);
                }
                self.after(400, Step::TaskCreate(u));
            }
        }
        Ok(self
            .plans
            .get(session)
            .map(Plan::detail)
            .unwrap_or_default())
    }

    /// `POST /api/plan/sessions/{id}/reject`: refused once emitted or rejected.
    pub(crate) fn reject_plan(
        &mut self,
        session: &str,
        approver: &str,
        feedback: Option<String>,
    ) -> Result<Value, Refusal> {
        let plan = self
            .plans
            .get_mut(session)
            .ok_or_else(|| Refusal::NotFound(format!("session {session} not found")))?;
        if matches!(plan.board_state, "emitted" | "rejected") {
            return Err(Refusal::Conflict(format!(
                "session is already {}",
                plan.board_state
            )));
        }
        plan.approval = Some(Approval {
            decision: "reject",
            approver: approver.to_owned(),
            feedback,
            at: now_iso(),
        });
        plan.board_state = "rejected";
        plan.updated_at = now_iso();
        // The unit's story ends here untold: it does not count as completed.
        if let Some(u) = plan.unit.and_then(|u| self.units.get_mut(u)) {
            u.done = true;
        }
        let event = self.pf_event(session, "review");
        self.send(event);
        Ok(self
            .plans
            .get(session)
            .map(Plan::detail)
            .unwrap_or_default())
    }

    // ---- AIFactory ------------------------------------------------------------

    fn unit_task_create(&mut self, u: usize) {
        let Some(unit) = self.units.get(u).cloned() else {
            return;
        };
        let Some(plan) = self.plans.values().find(|p| p.unit == Some(u)).cloned() else {
            return;
        };
        let provenance = json!({
            "session_id": plan.session_id,
            "issue_number": plan.github_issue,
            "repo": plan.repo,
            "source": "pfactory",
            "approved_by": plan.approval.as_ref().map(|a| a.approver.clone()),
            "approval_timestamp": plan.approval.as_ref().map(|a| a.at.clone()),
        });
        let id = self.create_task(
            "proj",
            &unit.title,
            "Governed issue from PFactory",
            &unit.repo,
            provenance,
            Some(u),
        );
        self.start_run(&id);
    }

    /// Creates a task in the backlog; `provenance` is the create-and-run body's block.
    pub(crate) fn create_task(
        &mut self,
        project_id: &str,
        title: &str,
        description: &str,
        repo: &str,
        provenance: Value,
        unit: Option<usize>,
    ) -> String {
        let spec_no = format!("{:03}", self.next_task);
        self.next_task += 1;
        let id = format!("{project_id}:{spec_no}");
        let issue_number = provenance["issue_number"].as_u64();
        let session_id = provenance["session_id"].as_str().map(str::to_owned);
        let n = self.rng.random_range(2..=4);
        let subtasks = (0..n)
            .map(|i| Subtask {
                id: format!("subtask-{}", i + 1),
                title: SUBTASKS[i % SUBTASKS.len()].to_owned(),
                status: "pending",
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("subtask-{i}")]
                },
                started_at: None,
                completed_at: None,
            })
            .collect();
        let profile = self.rng.random_range(0..3);
        let branch = match issue_number {
            Some(n) => format!("af/{n}-{}", slug(title)),
            None => format!("af/{spec_no}-{}", slug(title)),
        };
        let now = now_iso();
        let task = Task {
            id: id.clone(),
            project_id: project_id.to_owned(),
            spec_no,
            title: title.to_owned(),
            description: description.to_owned(),
            repo: provenance["repo"].as_str().unwrap_or(repo).to_owned(),
            status: "backlog",
            branch,
            base_branch: "main".into(),
            issue_number,
            session_id,
            provenance,
            complexity: "standard".into(),
            model: "claude-sonnet-4-6".into(),
            auto_continue: true,
            progress: Progress {
                phase: "spec_creation",
                phase_progress: 0,
                overall: 0,
                current_subtask: None,
                message: "Queued".into(),
            },
            subtasks,
            run: 0,
            stages: Vec::new(),
            meter: Meter::new(profile, 10.0),
            pr_number: None,
            stalled: false,
            spec_id: None,
            corrections: Vec::new(),
            phases_completed: Vec::new(),
            worktree_sha: None,
            created_at: now.clone(),
            updated_at: now,
            unit,
        };
        self.tasks.insert(id.clone(), task);
        id
    }

    /// Starts a new build run of a task: the usage running total restarts.
    pub(crate) fn start_run(&mut self, id: &str) {
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        task.run += 1;
        task.stalled = false;
        task.meter.reset();
        task.phases_completed.clear();
        task.stages = if task.run == 1 {
            let mut s = vec![Stage::SpecCreation, Stage::Planning];
            s.extend((0..task.subtasks.len()).map(Stage::Coding));
            s.push(Stage::QaReview);
            s.push(Stage::Finish);
            s
        } else {
            let fixes = task.subtasks.len().min(2);
            let mut s: Vec<Stage> = (0..fixes).map(Stage::QaFixing).collect();
            s.push(Stage::QaReview);
            s.push(Stage::Finish);
            s
        };
        task.status = "in_progress";
        task.updated_at = now_iso();
        let run = task.run;
        let first = task.stages[0];
        self.aifactory_feed.status(id, "in_progress");
        let event = self.af_event(id, "act");
        self.send(event);
        self.after(
            first.duration_ms(),
            Step::Build {
                task: id.to_owned(),
                run,
                idx: 0,
            },
        );
    }

    fn build_step(&mut self, id: &str, run: u32, idx: usize) {
        let scenario = self.scenario(self.tasks.get(id).and_then(|t| t.unit));
        let (input, output) = (
            self.rng.random_range(3_000..9_000),
            self.rng.random_range(400..1_500),
        );
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        if task.run != run || task.stalled || !task.is_running() {
            return;
        }
        let Some(&stage) = task.stages.get(idx) else {
            return;
        };
        let unit = task.unit;
        let total = task.stages.len();
        let now = now_iso();
        task.updated_at = now.clone();

        // The pre-coder scan reads the issue text before any code is written.
        if stage == Stage::SpecCreation && scenario.map(|s| s.0) == Some(Scenario::Injection) {
            task.status = "human_review";
            task.progress.message = "Paused: prompt-injection scan flagged the issue text".into();
            self.aifactory_feed.status(id, "human_review");
            let event = self.af_event(id, "act");
            self.complete(unit, Some(event));
            return;
        }
        // A coder that stops reporting mid-way (the second stuck unit).
        if matches!(stage, Stage::Coding(1))
            && matches!(scenario, Some((Scenario::Stuck, o)) if o % 2 == 1)
        {
            // It never completes on its own: only a `recover` gets it going again.
            task.stalled = true;
            return;
        }
        if scenario.map(|s| s.0) != Some(Scenario::Unproven) {
            let role = match stage {
                Stage::SpecCreation | Stage::Planning => "planner",
                Stage::QaReview => "qa",
                _ => "coder",
            };
            task.meter.charge(role, input, output);
        }
        let phase = stage.phase();
        if !task.phases_completed.contains(&phase) && stage != Stage::Finish {
            task.phases_completed.push(phase);
        }
        let pct = ((idx + 1) * 100 / total) as u32;
        let (subtask, sub_idx, message) = match stage {
            Stage::Coding(i) | Stage::QaFixing(i) => {
                let st = &mut task.subtasks[i];
                if matches!(stage, Stage::Coding(_)) {
                    st.status = "completed";
                    st.started_at.get_or_insert_with(|| now.clone());
                    st.completed_at = Some(now.clone());
                    if let Some(next) = task.subtasks.get_mut(i + 1) {
                        next.status = "in_progress";
                        next.started_at = Some(now.clone());
                    }
                }
                let st = &task.subtasks[i];
                (Some(st.id.clone()), i, format!("{}: {}", phase, st.title))
            }
            Stage::Planning => {
                if let Some(first) = task.subtasks.first_mut() {
                    first.status = "in_progress";
                    first.started_at = Some(now.clone());
                }
                (None, 0, "Implementation plan written".to_owned())
            }
            Stage::SpecCreation => (None, 0, "Spec created from the issue".to_owned()),
            Stage::QaReview => (
                None,
                0,
                "QA reviewer checking acceptance criteria".to_owned(),
            ),
            Stage::Finish => (None, 0, "Build finished".to_owned()),
        };
        task.progress = Progress {
            phase,
            phase_progress: 100,
            overall: pct,
            current_subtask: subtask.clone(),
            message: message.clone(),
        };
        let sub_total = task.subtasks.len();
        let exec = json!({"phase": phase, "phaseProgress": 100, "overallProgress": pct, "currentSubtask": subtask, "message": message});
        self.aifactory_feed.frame(
            "task:update",
            json!({"taskId": id, "executionProgress": exec}),
        );
        if let Some(s) = &subtask {
            self.aifactory_feed.frame(
                "task:subtask-update",
                json!({"taskId": id, "subtaskId": s, "status": "completed"}),
            );
        }
        self.aifactory_feed.progress(
            id,
            phase,
            &message,
            subtask.as_deref(),
            sub_idx,
            sub_total,
            pct,
        );

        match stage {
            Stage::QaReview => {
                if let Some(t) = self.tasks.get_mut(id) {
                    t.status = "ai_review";
                }
                self.aifactory_feed.status(id, "ai_review");
                let event = self.af_event(id, "qa");
                let hold = scenario.map(|s| s.0) == Some(Scenario::OutOfOrder) && run == 1;
                match unit.and_then(|u| self.units.get_mut(u)).filter(|_| hold) {
                    Some(u) => u.held = Some(event),
                    None => self.send(event),
                }
            }
            Stage::Finish => {
                self.build_finish(id, scenario.map(|s| s.0));
                return;
            }
            _ => {}
        }
        let next = self
            .tasks
            .get(id)
            .and_then(|t| t.stages.get(idx + 1).copied());
        if let Some(next) = next {
            self.after(
                next.duration_ms(),
                Step::Build {
                    task: id.to_owned(),
                    run,
                    idx: idx + 1,
                },
            );
        }
    }

    fn build_finish(&mut self, id: &str, scenario: Option<Scenario>) {
        let sha = sha(&mut self.rng);
        let pr = self.next_pr;
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        let unit = task.unit;
        task.worktree_sha = Some(sha);
        if scenario == Some(Scenario::Failure) {
            task.status = "qa_failed";
            task.progress.phase = "failed";
            task.progress.message = "QA rejected the build after 3 fix attempts".into();
            self.aifactory_feed.status(id, "qa_failed");
            let event = self.af_event(id, "qa");
            self.complete(unit, Some(event));
            return;
        }
        task.status = "human_review";
        if task.pr_number.is_none() {
            task.pr_number = Some(pr);
            self.next_pr += 1;
        }
        let run = task.run;
        self.aifactory_feed.status(id, "human_review");
        self.after(
            300,
            Step::BuildComplete {
                task: id.to_owned(),
                run,
            },
        );
    }

    fn build_complete(&mut self, id: &str, run: u32) {
        let rekey_issue = self.next_issue;
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        if task.run != run {
            return;
        }
        let unit = task.unit;
        let merged = task.status == "merged";
        if task.status == "human_review" {
            task.status = "done";
            task.updated_at = now_iso();
            if task.issue_number.is_none() && unit.is_some() {
                // The PR gets linked to an issue: from now on the issue is the key.
                task.issue_number = Some(rekey_issue);
                self.next_issue += 1;
            }
        } else if !merged {
            return;
        }
        if !merged {
            self.aifactory_feed.status(id, "done");
            let event = self.af_event(id, "act");
            let retry = self.scenario(unit).map(|s| s.0) == Some(Scenario::Retry) && run == 1;
            if retry {
                self.send(event.clone());
            }
            self.send(event);
            if let Some(held) = unit
                .and_then(|u| self.units.get_mut(u))
                .and_then(|u| u.held.take())
            {
                self.send(held);
            }
        }
        self.after(300, Step::Handoff(id.to_owned()));
    }

    fn af_event(&mut self, id: &str, phase: &str) -> Value {
        let event_id = self.id();
        let scenario = self
            .scenario(self.tasks.get(id).and_then(|t| t.unit))
            .map(|s| s.0);
        let Some(task) = self.tasks.get(id) else {
            return Value::Null;
        };
        let scan = if scenario == Some(Scenario::Injection) {
            json!({
                "verdict": "flagged",
                "reason": "issue body embeds instructions to print repository secrets (\"ignore previous instructions…\")",
                "scanner": "aifactory-precoder-v1",
                "sources_scanned": ["issue_text", "repo_content"],
            })
        } else {
            json!({
                "verdict": "pass",
                "reason": "no instructions found in untrusted content",
                "scanner": "aifactory-precoder-v1",
                "sources_scanned": ["issue_text", "repo_content"],
            })
        };
        let mut env = Envelope::new(
            event_id,
            "aifactory",
            id,
            &task.correlation_key(),
            task.status,
            phase,
        )
        .with("title", json!(task.title))
        .with("repo", json!(task.repo))
        .with("branch", json!(task.branch))
        .with("run", json!(task.run))
        .with("usage", task.meter.to_json(id))
        .with("correlation", task.correlation())
        .with("injection_scan", scan);
        if let Some(p) = task.pr_number {
            env = env.with("pr_number", json!(p));
        }
        if matches!(task.status, "done" | "qa_failed" | "merged") {
            env = env.with(
                "evidence",
                json!({
                    "proof_kind": "tokens",
                    "total_tokens": task.meter.total_tokens(),
                    "cost_usd": task.meter.cost_usd(),
                    "phases_completed": task.phases_completed,
                    "worktree_sha": task.worktree_sha,
                }),
            );
        }
        env.into_value()
    }

    /// `POST /api/tasks/{id}/apply-correction` with `confirm: true`: a new build run.
    pub(crate) fn apply_correction(&mut self, id: &str, request: Value) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("task {id} not found")))?;
        if task.is_running() {
            return Err(Refusal::Conflict(format!(
                "task {id} is already running ({})",
                task.status
            )));
        }
        task.corrections.push(json!({
            "run": task.run + 1,
            "source": request["source"],
            "correlation_key": request["correlation_key"],
            "tfactory_task_id": request["tfactory_task_id"],
            "fix_request_md": request["fix_request_md"],
            "requested_at": now_iso(),
        }));
        self.start_run(id);
        let run = self.tasks.get(id).map(|t| t.run).unwrap_or_default();
        Ok(json!({"success": true, "task_id": id, "run": run, "status": "in_progress"}))
    }

    /// `POST /api/tasks/{id}/recover`: resumes a task that stopped reporting.
    pub(crate) fn recover(&mut self, id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("task {id} not found")))?;
        if !task.stalled {
            return Err(Refusal::Conflict(format!("task {id} is not stuck")));
        }
        task.stalled = false;
        task.updated_at = now_iso();
        let run = task.run;
        let idx = task
            .stages
            .iter()
            .position(|s| matches!(s, Stage::Coding(1)))
            .unwrap_or(0);
        self.aifactory_feed.status(id, "in_progress");
        self.after(
            500,
            Step::Build {
                task: id.to_owned(),
                run,
                idx,
            },
        );
        Ok(json!({"success": true, "task_id": id, "status": "in_progress"}))
    }

    /// `POST /api/tasks/{id}/worktree/create-pr`: only once the build is reviewable.
    pub(crate) fn create_pr(&mut self, id: &str) -> Result<Value, Refusal> {
        let pr = self.next_pr;
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("task {id} not found")))?;
        if !matches!(task.status, "human_review" | "done") {
            return Err(Refusal::Conflict(format!(
                "task is {}; nothing to open a PR for",
                task.status
            )));
        }
        if task.pr_number.is_none() {
            task.pr_number = Some(pr);
            self.next_pr += 1;
        }
        let n = task.pr_number.unwrap_or(pr);
        Ok(
            json!({"success": true, "pr_number": n, "pr_url": format!("https://github.com/{}/pull/{n}", task.repo)}),
        )
    }

    /// `POST /api/tasks/{id}/worktree/merge`: only in `human_review`.
    pub(crate) fn merge(&mut self, id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("task {id} not found")))?;
        if task.status != "human_review" {
            return Err(Refusal::Conflict(format!(
                "task is {}, not human_review",
                task.status
            )));
        }
        task.status = "merged";
        task.updated_at = now_iso();
        self.aifactory_feed.status(id, "merged");
        let event = self.af_event(id, "act");
        self.send(event);
        Ok(json!({"success": true, "task_id": id, "status": "merged"}))
    }

    /// `DELETE /api/tasks/{id}`: refused while a run is under way.
    pub(crate) fn delete_task(&mut self, id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get(id)
            .ok_or_else(|| Refusal::NotFound(format!("task {id} not found")))?;
        if task.is_running() {
            return Err(Refusal::Conflict(format!(
                "task {id} is running; stop it first"
            )));
        }
        self.tasks.remove(id);
        Ok(json!({"success": true, "deleted": id}))
    }

    // ---- TFactory -------------------------------------------------------------

    fn new_spec(&mut self, task: Option<&Task>, spec_id: String, title: &str, repo: &str) -> Spec {
        let n = self.rng.random_range(2..=4);
        let lanes = LANES[..n]
            .iter()
            .enumerate()
            .map(|(i, &lane)| LaneRun {
                id: format!("{spec_id}-{}", i + 1),
                lane,
                status: "pending",
                tests_generated: 0,
                tests_executed: 0,
            })
            .collect();
        let now = now_iso();
        Spec {
            spec_id,
            title: title.to_owned(),
            repo: repo.to_owned(),
            status: "pending",
            plan_status: "approved",
            aifactory_task_id: task.map(|t| t.id.clone()),
            project_id: task
                .map(|t| t.project_id.clone())
                .unwrap_or_else(|| "proj".into()),
            issue_number: task.and_then(|t| t.issue_number),
            session_id: task.and_then(|t| t.session_id.clone()),
            branch: task.map(|t| t.branch.clone()),
            pr_number: task.and_then(|t| t.pr_number),
            lanes,
            cycle: 0,
            max_cycles: 2,
            needs_human: false,
            verdict: None,
            verdicts: Vec::new(),
            failing_tests: Vec::new(),
            outcome: None,
            halt_reason: None,
            meter: Meter::new(0, 5.0),
            created_at: now.clone(),
            updated_at: now,
            unit: task.and_then(|t| t.unit),
        }
    }

    /// `POST /api/handback/aifactory-complete`: a build is ready to verify. Reuses
    /// the task's spec (a retest after a correction) or creates one.
    pub(crate) fn aifactory_complete(&mut self, task_id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get(task_id)
            .cloned()
            .ok_or_else(|| Refusal::NotFound(format!("aifactory task {task_id} not known")))?;
        let spec_id = match task.spec_id.clone() {
            Some(s) if self.specs.contains_key(&s) => s,
            _ => {
                let s = format!("spec-{:03}", self.next_spec);
                self.next_spec += 1;
                let spec = self.new_spec(Some(&task), s.clone(), &task.title, &task.repo);
                self.specs.insert(s.clone(), spec);
                if let Some(t) = self.tasks.get_mut(task_id) {
                    t.spec_id = Some(s.clone());
                }
                if let Some(u) = task.unit.and_then(|u| self.units.get_mut(u)) {
                    u.spec = Some(s.clone());
                }
                s
            }
        };
        let Some(spec) = self.specs.get_mut(&spec_id) else {
            return Err(Refusal::NotFound(spec_id));
        };
        if !matches!(
            spec.status,
            "pending" | "triaged" | "triaged_empty" | "triager_failed"
        ) {
            return Err(Refusal::Conflict(format!(
                "spec {spec_id} is {}",
                spec.status
            )));
        }
        spec.issue_number = task.issue_number;
        spec.pr_number = task.pr_number;
        spec.status = "pending";
        spec.outcome = None;
        spec.halt_reason = None;
        spec.verdict = None;
        spec.verdicts.clear();
        spec.failing_tests.clear();
        spec.meter.reset();
        for l in &mut spec.lanes {
            l.status = "pending";
            l.tests_executed = 0;
        }
        let cycle = spec.cycle;
        self.tfactory_feed.status(&spec_id, "pending");
        self.after(
            VERIFY_MS[0],
            Step::Verify {
                spec: spec_id.clone(),
                cycle,
                idx: 0,
            },
        );
        Ok(json!({"success": true, "spec_id": spec_id, "status": "pending"}))
    }

    /// `POST /api/tasks/{id}/approve-plan`: only while the test plan waits for it.
    pub(crate) fn approve_test_plan(&mut self, id: &str, approve: bool) -> Result<Value, Refusal> {
        let spec = self
            .specs
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("spec {id} not found")))?;
        if spec.plan_status != "awaiting_approval" {
            return Err(Refusal::Conflict(format!(
                "test plan is {}, not awaiting_approval",
                spec.plan_status
            )));
        }
        spec.updated_at = now_iso();
        if approve {
            spec.plan_status = "approved";
            let cycle = spec.cycle;
            self.after(
                VERIFY_MS[1],
                Step::Verify {
                    spec: id.to_owned(),
                    cycle,
                    idx: 1,
                },
            );
        } else {
            spec.plan_status = "rejected";
            spec.status = "pending";
        }
        Ok(self.specs.get(id).map(Spec::view).unwrap_or_default())
    }

    fn verify_step(&mut self, id: &str, cycle: u32, idx: usize) {
        let generated: Vec<u64> = (0..LANES.len())
            .map(|_| self.rng.random_range(3..9))
            .collect();
        let (input, output) = (
            self.rng.random_range(1_000..4_000),
            self.rng.random_range(200..900),
        );
        let Some(spec) = self.specs.get_mut(id) else {
            return;
        };
        if spec.cycle != cycle {
            return;
        }
        spec.updated_at = now_iso();
        let Some(&status) = VERIFY_STATES.get(idx) else {
            self.verify_finish(id);
            return;
        };
        spec.status = status;
        spec.meter.charge("planner", input, output);
        match status {
            "generating" => {
                for (l, g) in spec.lanes.iter_mut().zip(&generated) {
                    l.status = "in_progress";
                    l.tests_generated = *g;
                }
            }
            "executing" => {
                for l in &mut spec.lanes {
                    l.tests_executed = l.tests_generated;
                    l.status = "completed";
                }
            }
            _ => {}
        }
        let total = spec.lanes.len();
        let lane = spec
            .lanes
            .get(idx.min(total.saturating_sub(1)))
            .map(|l| l.id.clone());
        let pct = ((idx + 1) * 100 / (VERIFY_STATES.len() + 1)) as u32;
        self.tfactory_feed.status(id, status);
        self.tfactory_feed.frame(
            "task:update",
            json!({"taskId": id, "executionProgress": {"phase": status, "phaseProgress": 100, "overallProgress": pct}}),
        );
        self.tfactory_feed.progress(
            id,
            status,
            &format!("{status} ({} lanes)", total),
            lane.as_deref(),
            idx.min(total),
            total,
            pct,
        );
        let ms = VERIFY_MS.get(idx + 1).copied().unwrap_or(300);
        self.after(
            ms,
            Step::Verify {
                spec: id.to_owned(),
                cycle,
                idx: idx + 1,
            },
        );
    }

    fn verify_finish(&mut self, id: &str) {
        let unit = self.specs.get(id).and_then(|s| s.unit);
        let scenario = self.scenario(unit);
        let Some(spec) = self.specs.get_mut(id) else {
            return;
        };
        let cycle = spec.cycle;
        enum Result {
            Pass,
            Fail,
            Stuck,
            NoVerdict,
        }
        let result = match scenario {
            Some((Scenario::Handback, _)) if cycle == 0 => Result::Fail,
            Some((Scenario::Stuck, o)) if o % 2 == 0 && cycle < spec.max_cycles => Result::Fail,
            Some((Scenario::Stuck, o)) if o % 2 == 0 => Result::Stuck,
            Some((Scenario::Unproven, _)) => Result::NoVerdict,
            _ => Result::Pass,
        };
        let failing = match result {
            Result::Pass | Result::NoVerdict => 0,
            _ => 2 + cycle as usize,
        };
        let tests: Vec<(String, &str)> = spec
            .lanes
            .iter()
            .flat_map(|l| {
                (0..l.tests_executed)
                    .map(move |i| (format!("{}::{}_test_{}", l.lane, l.lane, i + 1), l.lane))
            })
            .collect();
        spec.failing_tests = tests.iter().take(failing).map(|t| t.0.clone()).collect();
        if matches!(result, Result::NoVerdict) {
            spec.verdicts.clear();
            spec.verdict = None;
        } else {
            spec.verdicts = tests
                .iter()
                .enumerate()
                .map(|(i, (name, lane))| {
                    let verdict = if i < failing {
                        "rejected"
                    } else if i % 7 == 6 {
                        "flagged"
                    } else {
                        "accepted"
                    };
                    json!({"test_id": name, "lane": lane, "verdict": verdict})
                })
                .collect();
            let passed = failing == 0;
            spec.verdict = Some(json!({
                "passed": passed,
                "coverage_delta": if passed { 4.2 } else { 0.8 },
                "stability": 1.0,
                "mutation_score": if passed { 0.81 } else { 0.42 },
                "lint": "pass",
                "semantic_relevance": 0.88,
            }));
        }
        let (status, outcome, halt): (&'static str, &'static str, Option<String>) = match result {
            Result::Pass => ("triaged", "success", None),
            Result::Fail => (
                "triaged",
                "failure",
                Some(format!(
                    "tests_failed: {failing} failing, handback to AIFactory (cycle {}/{})",
                    cycle + 1,
                    spec.max_cycles
                )),
            ),
            Result::Stuck => (
                "stuck",
                "human_review",
                Some(format!(
                    "needs_human: tests still failing after {} correction cycles",
                    spec.max_cycles
                )),
            ),
            Result::NoVerdict => (
                "triaged",
                "failure",
                Some("no_evidence: the evaluator produced no verdict".into()),
            ),
        };
        spec.status = status;
        spec.outcome = Some(outcome);
        spec.halt_reason = halt;
        spec.needs_human = matches!(result, Result::Stuck);
        self.tfactory_feed.status(id, status);
        let event = self.tf_event(id);
        match result {
            Result::Fail => {
                self.send(event);
                self.after(300, Step::Correction(id.to_owned()));
            }
            _ => self.complete(unit, Some(event)),
        }
    }

    fn tf_event(&mut self, id: &str) -> Value {
        let event_id = self.id();
        let Some(spec) = self.specs.get(id) else {
            return Value::Null;
        };
        let (accepted, flagged, rejected) = spec.verdict_counts();
        let executed: u64 = spec.lanes.iter().map(|l| l.tests_executed).sum();
        let generated: u64 = spec.lanes.iter().map(|l| l.tests_generated).sum();
        let verdict = spec.verdict.as_ref().map(|v| {
            if v["passed"] == json!(true) {
                "pass"
            } else {
                "fail"
            }
        });
        let lanes: Vec<&str> = spec.lanes.iter().map(|l| l.lane).collect();
        let evidence = if verdict.is_some() {
            json!({
                "proof_kind": "tests",
                "verdict": verdict,
                "lanes_run": lanes,
                "tests_generated": generated,
                "tests_executed": executed,
                "verdicts": spec.verdicts.len(),
                "accepted": accepted,
                "flagged": flagged,
                "rejected": rejected,
            })
        } else {
            json!({"proof_kind": "tests", "verdicts": 0, "accepted": 0, "flagged": 0, "rejected": 0})
        };
        Envelope::new(
            event_id,
            "tfactory",
            id,
            &spec.correlation_key(),
            spec.status,
            "test",
        )
        .with("title", json!(spec.title))
        .with("repo", json!(spec.repo))
        .with("branch", json!(spec.branch))
        .with("pr_number", json!(spec.pr_number))
        .with("project_id", json!(spec.project_id))
        .with("spec_id", json!(spec.spec_id))
        .with("outcome", json!(spec.outcome))
        .with("halt_reason", json!(spec.halt_reason))
        .with("needs_human", json!(spec.needs_human))
        .with("correction_cycle", json!(spec.cycle))
        .with("verification", json!(spec.verdict))
        .with("result", json!({"failing_tests": spec.failing_tests}))
        .with("emitted_at", json!(now_iso()))
        .with("usage", spec.meter.to_json(id))
        .with("correlation", spec.correlation())
        .with("evidence", evidence)
        .into_value()
    }

    /// TFactory routes the failing tests back to AIFactory as a correction.
    fn tfactory_handback(&mut self, spec_id: &str) {
        let Some(spec) = self.specs.get_mut(spec_id) else {
            return;
        };
        spec.cycle += 1;
        let Some(task) = spec.aifactory_task_id.clone() else {
            return;
        };
        let body = json!({
            "fix_request_md": format!("## Failing tests\n\n{}", spec.failing_tests.iter().map(|t| format!("- `{t}`")).collect::<Vec<_>>().join("\n")),
            "source": "tfactory",
            "confirm": true,
            "correlation_key": spec.correlation_key(),
            "tfactory_task_id": spec_id,
        });
        let _ = self.apply_correction(&task, body);
    }
}

/// A lower-case, dash-separated slug of a title.
fn slug(title: &str) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join("-")
}

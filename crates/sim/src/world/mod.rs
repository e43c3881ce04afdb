//! The simulated world: every session, task and spec, the queue of steps ordered by
//! simulated time, and the units of work that walk plan → code → test.
//!
//! Nothing here does I/O: steps write envelopes to `outbox` and frames to the live
//! feeds; the driver delivers them. The REST handlers act on the same state. Each
//! service's part of the story is in its own module (`pfactory`, `aifactory`,
//! `tfactory`); what their REST surfaces show is in `plan`, `task` and `spec`.

mod aifactory;
mod console;
mod pfactory;
mod plan;
mod spec;
mod task;
mod tfactory;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::config::{Scenario, SimConfig};
use crate::envelope::{now_iso, traceparent, uuid};
use plan::{PLAN_STEPS, Plan};
use spec::Spec;
use task::Task;

pub(crate) use console::{ConsoleView, console_banner, console_line};

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

    /// `task:status`; a task waiting in human review also says why (`reviewReason`).
    fn status(&self, id: &str, status: &str, review_reason: Option<&str>) {
        let mut payload = json!({"taskId": id, "status": status});
        if let Some(reason) = review_reason {
            payload["reviewReason"] = json!(reason);
        }
        self.frame("task:status", payload);
    }

    /// `task:error`: a run stopped on an error.
    fn error(&self, id: &str, message: &str) {
        self.frame("task:error", json!({"taskId": id, "error": message}));
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
    /// 400: the request makes no sense for the item as it stands.
    Invalid(String),
    /// 404: no such item.
    NotFound(String),
    /// 409: the item's state forbids it.
    Conflict(String),
}

/// One scheduled step.
#[derive(Debug, Clone)]
enum Step {
    UnitStart(usize),
    PlanAdvance(String),
    PlanAutoApprove(String),
    PlanAutoEmit(String),
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
    /// The existing issue the unit's plan came from: PFactory keys the unit
    /// `owner/repo#N`, AIFactory and TFactory by the bare `N`.
    origin_issue: Option<u64>,
    /// The plan goes to AIFactory on the contract path: no issue is created.
    contract: bool,
    /// The metered budget of its coding task, in dollars.
    budget_usd: f64,
    spec: Option<String>,
    /// An event an outbox holds back to deliver again later.
    held: Option<Value>,
    done: bool,
}

impl Unit {
    /// A unit with no origin issue, on the issue path, with the default budget.
    fn new(scenario: Scenario, occurrence: usize, title: String, repo: String) -> Self {
        Self {
            scenario,
            occurrence,
            title,
            repo,
            origin_issue: None,
            contract: false,
            budget_usd: 10.0,
            spec: None,
            held: None,
            done: false,
        }
    }
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
/// A repository the simulated services work on, and the names each service gives it.
#[derive(Debug)]
pub(crate) struct Project {
    /// `owner/name` on GitHub.
    pub(crate) repo: &'static str,
    /// TFactory's name for its pipeline workspace (`shop`).
    pub(crate) name: &'static str,
    /// The id TFactory's kanban registry (`projects.json`) keys the project by.
    pub(crate) kanban_id: &'static str,
}

/// Every repository units of work are about.
pub(crate) const PROJECTS: [Project; 3] = [
    Project {
        repo: "acme/shop",
        name: "shop",
        kanban_id: "3f6c1a2e-8b7d-4c1e-9a55-2d0c7e4b9f10",
    },
    Project {
        repo: "acme/platform",
        name: "platform",
        kanban_id: "7a2d9e41-5c3b-4f08-b1e6-0d4c8a9f2e73",
    },
    Project {
        repo: "acme/console",
        name: "console",
        kanban_id: "c81f4b06-2e9a-4d57-8c3f-6b1a0e5d7f29",
    },
];

/// The project a repository belongs to (the first one for a repository none names).
pub(crate) fn project(repo: &str) -> &'static Project {
    PROJECTS
        .iter()
        .find(|p| p.repo == repo)
        .unwrap_or(&PROJECTS[0])
}

/// The keys of AIFactory's project registry: `create-and-run` knows no other.
pub(crate) const AIFACTORY_PROJECTS: [&str; 1] = ["proj"];
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
    /// Build runs finished so far: every other one's worker event is stamped after
    /// its terminal event, as AIFactory's clock sometimes does.
    runs_ended: u64,
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
            runs_ended: 0,
        };
        let order = config.scenario_order();
        let mut seen: BTreeMap<Scenario, usize> = BTreeMap::new();
        for i in 0..config.unit_count() {
            let scenario = order[i % order.len()];
            let occurrence = *seen.entry(scenario).and_modify(|n| *n += 1).or_insert(0);
            let title = TITLES[w.rng.random_range(0..TITLES.len())].to_owned();
            let repo = PROJECTS[w.rng.random_range(0..PROJECTS.len())]
                .repo
                .to_owned();
            let mut unit = Unit::new(scenario, occurrence, title, repo);
            unit.contract = scenario == Scenario::Failure && occurrence == 0;
            // About half the plans start from an issue that already exists.
            if i % 2 == 0 && scenario != Scenario::Rekey && !unit.contract {
                unit.origin_issue = Some(w.next_issue);
                w.next_issue += 1;
            }
            if scenario == Scenario::Retry && occurrence == 0 {
                unit.budget_usd = 0.1;
            }
            w.units.push(unit);
            let start = i as u64 * STAGGER_MS + w.rng.random_range(0..200);
            w.schedule(start, Step::UnitStart(i));
        }
        w.standing_items();
        w
    }

    /// Items no unit drives, each waiting for a person: a processed plan whose gates
    /// fail and one whose gates pass, a coding task whose plan waits for AIFactory's
    /// own approval, a TFactory spec waiting at its plan gate and a spec-ingest with no
    /// test plan yet.
    fn standing_items(&mut self) {
        let mut failing = self.new_plan(
            "900-legacy-sso",
            "Replace legacy SSO",
            "acme/platform",
            None,
        );
        failing.step = PLAN_STEPS.len() - 1;
        failing.status = "processed";
        failing.lenses = self.lenses(false);
        failing.children = self.children(3);
        self.plans.insert(failing.session_id.clone(), failing);

        let mut ready = self.new_plan(
            "901-audit-export",
            "Export audit logs as CSV",
            "acme/console",
            None,
        );
        ready.step = PLAN_STEPS.len() - 1;
        ready.status = "processed";
        ready.lenses = self.lenses(true);
        ready.children = self.children(2);
        self.plans.insert(ready.session_id.clone(), ready);

        self.standing_task("900", "Rotate the signing keys", "acme/platform");

        let mut gated = self.new_spec(
            None,
            "spec-900".into(),
            Some("Verify billing rounding"),
            "acme/shop",
        );
        gated.phase = "planner_complete";
        gated.plan_status = "awaiting_approval";
        gated.plan_written = true;
        self.specs.insert(gated.spec_id.clone(), gated);

        let ingest = self.new_spec(None, "ingest-901".into(), None, "acme/shop");
        self.specs.insert(ingest.spec_id.clone(), ingest);
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
                let waiting = self.plans.get(&s).is_some_and(|p| p.status == "processed");
                if waiting
                    && self
                        .approve_plan(&s, "sim-reviewer@factory.local", None)
                        .is_ok()
                {
                    // A fixed pause, no jitter: the seeded draws stay as they were.
                    self.schedule(self.now + 300, Step::PlanAutoEmit(s));
                }
            }
            Step::PlanAutoEmit(s) => self.plan_auto_emit(&s),
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

    fn traceparent(&mut self) -> String {
        traceparent(&mut self.rng)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every envelope a run sends, in order, playing the schedule without waiting.
    fn play(config: &SimConfig) -> Vec<Value> {
        let mut w = World::new(config);
        let mut events = Vec::new();
        while let Some(at) = w.next_due().filter(|t| *t < 600_000) {
            w.run_due(at);
            events.extend(
                std::mem::take(&mut w.outbox)
                    .into_iter()
                    .filter_map(|o| o.event),
            );
        }
        events
    }

    fn only(scenario: Scenario) -> SimConfig {
        SimConfig {
            scenarios: vec![scenario],
            units: Some(1),
            ..SimConfig::default()
        }
    }

    #[test]
    fn a_plan_waits_processed_then_approved_and_the_driver_emits_it_live() {
        let mut w = World::new(&only(Scenario::Happy));
        let mut seen: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        while let Some(at) = w.next_due().filter(|t| *t < 600_000) {
            w.run_due(at);
            for p in w.plans.values() {
                let statuses = seen.entry(p.session_id.clone()).or_default();
                if statuses.last() != Some(&p.status) {
                    statuses.push(p.status);
                }
            }
        }
        let unit = seen
            .iter()
            .find(|(id, _)| id.starts_with("001-"))
            .expect("the unit's plan");
        assert_eq!(
            unit.1,
            &[
                "ingested",
                "processing",
                "reviewing",
                "processed",
                "approved",
                "emitted"
            ]
        );
        let detail = w.plans[unit.0].detail();
        assert_eq!(detail["emit_result"]["dry_run"], false);
        assert_eq!(
            detail["emit_result"]["epic_number"],
            detail["emitted_issue_number"]
        );
        // Nobody approves the standing sessions: they wait.
        assert_eq!(seen["900-legacy-sso"], ["processed"]);
        assert_eq!(seen["901-audit-export"], ["processed"]);
    }

    #[test]
    fn a_merge_with_no_commit_only_stages_and_a_full_one_is_done() {
        let mut w = World::new(&only(Scenario::Happy));
        let id = loop {
            let at = w.next_due().expect("the build reaches review");
            w.run_due(at);
            let reviewable = w
                .tasks
                .values()
                .find(|t| t.status == "human_review" && t.worktree_sha.is_some());
            if let Some(t) = reviewable {
                break t.id.clone();
            }
        };
        let staged = w.merge(&id, true).unwrap();
        assert_eq!(staged["data"]["staged"], true);
        assert_eq!(
            w.tasks[&id].board_status(),
            ("human_review", Some("completed"))
        );
        let merged = w.merge(&id, false).unwrap();
        assert_eq!(merged["data"]["merged"], true);
        assert_eq!(w.tasks[&id].board_status(), ("done", None));
        assert!(matches!(w.merge(&id, false), Err(Refusal::Conflict(_))));
    }

    #[test]
    fn about_half_the_plans_start_from_an_origin_issue_and_one_goes_by_contract() {
        let w = World::new(&SimConfig::default());
        let origin: Vec<&Unit> = w
            .units
            .iter()
            .filter(|u| u.origin_issue.is_some())
            .collect();
        assert_eq!(
            origin.len(),
            w.units.len() / 2 - 1,
            "every even unit but a rekey"
        );
        assert!(origin.iter().all(|u| u.scenario != Scenario::Rekey));
        let contract: Vec<&Unit> = w.units.iter().filter(|u| u.contract).collect();
        assert_eq!(contract.len(), 1);
        assert_eq!(contract[0].scenario, Scenario::Failure);
        assert_eq!(contract[0].origin_issue, None);
    }

    #[test]
    fn the_outbox_redelivers_the_first_runs_terminal_after_the_second() {
        let events = play(&only(Scenario::OutOfOrder));
        let done: Vec<&Value> = events
            .iter()
            .filter(|e| e["service"] == "aifactory" && e["status"] == "done")
            .collect();
        assert_eq!(done.len(), 3, "run 1, run 2, run 1 again");
        assert_eq!(done[0]["id"], done[2]["id"]);
        assert_ne!(done[0]["id"], done[1]["id"]);
        let tokens = |e: &Value| e["usage"]["total_tokens"].as_u64().unwrap();
        assert!(
            tokens(done[2]) > 2 * tokens(done[1]),
            "the older run was the bigger one"
        );
        // The re-delivery comes straight after the newer terminal.
        let at = |e: &Value| events.iter().rposition(|x| x == e).unwrap();
        assert_eq!(at(done[2]), at(done[1]) + 1);
    }

    #[test]
    fn a_correction_run_starts_its_usage_at_zero_while_tfactory_keeps_a_total() {
        let events = play(&only(Scenario::Handback));
        let af: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["service"] == "aifactory" && e["type"] == "io.factory.aifactory.completion"
            })
            .collect();
        let starts: Vec<usize> = af
            .iter()
            .enumerate()
            .filter(|(_, e)| e["status"] == "in_progress")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(starts.len(), 2, "the first run and the correction");
        assert_eq!(af[starts[1]]["usage"]["total_tokens"], 0);
        assert!(af[starts[1] - 1]["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert_eq!(af[starts[0]]["task_id"], af[starts[1]]["task_id"]);

        let tf: Vec<u64> = events
            .iter()
            .filter(|e| e["service"] == "tfactory")
            .map(|e| e["usage"]["total_tokens"].as_u64().unwrap())
            .collect();
        assert_eq!(tf.len(), 2);
        assert!(tf[1] > tf[0], "the retest adds to the spec's total: {tf:?}");
    }

    #[test]
    fn a_later_failure_unit_uses_no_tokens_and_is_downgraded_to_failed() {
        let events = play(&SimConfig {
            scenarios: vec![Scenario::Failure],
            units: Some(2),
            ..SimConfig::default()
        });
        let end = events
            .iter()
            .find(|e| e["status"] == "failed")
            .expect("the second failure unit");
        assert_eq!(end["usage"]["total_tokens"], 0);
        assert_eq!(end["evidence"]["total_tokens"], 0);
        assert!(
            end["halt_reason"]
                .as_str()
                .unwrap()
                .starts_with("no_evidence: build emitted 0 tokens")
        );
        // No model ran, so no worker reports.
        assert!(
            !events
                .iter()
                .any(|e| e["task_id"] == end["task_id"] && e["status"] == "worker_done")
        );
    }
}

//! TFactory's verification spec as its two REST surfaces show it: the pipeline's
//! own (`/api/tfactory/tasks`, keyed by spec id) and the older kanban board
//! (`/api/tasks`, keyed `<project uuid>:<spec>`).

use serde_json::{Value, json};

use super::{LANES, project};
use crate::envelope::Meter;

/// The pipeline status and phase each step of a verify run writes, in order:
/// planning, the lanes generating and then running their tests, evaluation, triage.
pub(crate) const VERIFY_STEPS: [(&str, &str); 5] = [
    ("pending", "planner_started"),
    ("evaluating", "evaluator_initial_started"),
    ("evaluating", "evaluator_initial_started"),
    ("evaluated", "evaluator_complete"),
    ("triaging", "triager_started"),
];

/// Nominal duration of each verify step at speed 1.0, in milliseconds.
pub(crate) const VERIFY_MS: [u64; 5] = [400, 600, 800, 400, 400];

/// One lane's tests, a subtask of the test plan.
#[derive(Debug, Clone)]
pub(crate) struct LaneRun {
    pub(crate) id: String,
    pub(crate) lane: &'static str,
    /// pending, in_progress, completed or failed.
    pub(crate) status: &'static str,
    pub(crate) tests_generated: u64,
    pub(crate) tests_executed: u64,
    pub(crate) started_at: Option<String>,
    pub(crate) completed_at: Option<String>,
}

impl LaneRun {
    /// The lane's state in `status_json.lane_progress`.
    fn progress(&self) -> &'static str {
        match self.status {
            "in_progress" => "running",
            "completed" => "passed",
            "failed" => "failed",
            _ => "pending",
        }
    }

    /// The subtask as the planner writes it into the test plan.
    fn plan_subtask(&self, title: &str) -> Value {
        let (language, framework) = match self.lane {
            "browser" => ("typescript", "playwright"),
            "mutation" => ("python", "mutmut"),
            _ => ("python", "pytest"),
        };
        let description = format!("Verify the {} lane of: {title}", self.lane);
        let mut v = json!({
            "id": self.id,
            "description": description,
            "status": self.status,
            "lane": self.lane,
            "rationale": description,
            "language": language,
            "framework": framework,
            "verification": {"type": "command"},
        });
        if let Some(t) = &self.started_at {
            v["started_at"] = json!(t);
        }
        if let Some(t) = &self.completed_at {
            v["completed_at"] = json!(t);
        }
        v
    }

    /// The subtask as the kanban board flattens it out of the plan.
    fn kanban_subtask(&self) -> Value {
        let title = format!("{} checks", self.lane);
        json!({
            "id": self.id,
            "title": title,
            "description": title,
            "status": self.status,
            "files": [],
            "verification": {"type": "command", "run": null, "scenario": null},
            "lane": self.lane,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        })
    }
}

/// One verification spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) spec_id: String,
    /// None for a spec-ingest that has not been planned.
    pub(crate) title: Option<String>,
    pub(crate) repo: String,
    /// The pipeline status: pending, evaluating, evaluated, triaging, triaged, stuck.
    pub(crate) status: &'static str,
    /// The free-form pipeline step (`created`, `evaluator_initial_started`, …).
    pub(crate) phase: &'static str,
    /// The test plan's gate: approved, awaiting_approval or rejected.
    pub(crate) plan_status: &'static str,
    /// Whether the planner has written `test_plan.json`.
    pub(crate) plan_written: bool,
    /// A verify run is under way.
    pub(crate) running: bool,
    /// What a kanban `recover` set, until the pipeline moves on.
    pub(crate) kanban_override: Option<&'static str>,
    /// The kanban status the live feed last reported.
    pub(crate) kanban_sent: Option<&'static str>,
    /// `spec_ingest` for a spec that came from a document, not from AIFactory.
    pub(crate) mode: Option<&'static str>,
    pub(crate) aifactory_task_id: Option<String>,
    pub(crate) project_id: String,
    pub(crate) issue_number: Option<u64>,
    pub(crate) branch: Option<String>,
    pub(crate) pr_number: Option<u64>,
    pub(crate) lanes: Vec<LaneRun>,
    pub(crate) cycle: u32,
    pub(crate) max_cycles: u32,
    pub(crate) needs_human: bool,
    pub(crate) verdict: Option<Value>,
    pub(crate) verdicts: Vec<Value>,
    pub(crate) failing_tests: Vec<String>,
    /// How the last verify run ended, once it has.
    pub(crate) ended: Option<Outcome>,
    pub(crate) halt_reason: Option<String>,
    pub(crate) meter: Meter,
    /// status.json's times: aware UTC.
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    /// The spec folder's file times the kanban board shows: naive local.
    pub(crate) created_local: String,
    pub(crate) updated_local: String,
    pub(crate) unit: Option<usize>,
}

impl Spec {
    /// The issue number once known, else the synthetic `tf-<spec>` key.
    pub(crate) fn correlation_key(&self) -> String {
        match self.issue_number {
            Some(n) => n.to_string(),
            None => format!("tf-{}", self.spec_id),
        }
    }

    /// The `correlation` block TFactory's events carry.
    pub(crate) fn event_correlation(&self) -> Value {
        json!({
            "issue_number": self.issue_number,
            "spec_id": self.spec_id,
            "branch": self.branch,
            "pr_number": self.pr_number,
        })
    }

    /// The `result` counts of the last verify; none when it produced no verdicts.
    pub(crate) fn result_counts(&self) -> Value {
        if self.ended == Some(Outcome::NoEvidence) {
            return json!({});
        }
        let (accepted, flagged, rejected) = self.verdict_counts();
        json!({
            "committed_count": accepted,
            "flagged_count": flagged,
            "rejected_count": rejected,
            "verdicts_count": self.verdicts.len(),
            "dedup_collision_count": 0,
        })
    }

    /// Verdict counts as TFactory's code reports them.
    pub(crate) fn verdict_counts(&self) -> (usize, usize, usize) {
        let count = |v: &str| {
            self.verdicts
                .iter()
                .filter(|x| x["verdict"] == json!(v))
                .count()
        };
        (count("accepted"), count("flagged"), count("rejected"))
    }

    /// The pipeline workspace's name: the project's, not a UUID.
    fn workspace(&self) -> &'static str {
        project(&self.repo).name
    }

    /// The id the kanban board and its live feed use: `<project uuid>:<spec>`.
    pub(crate) fn kanban_id(&self) -> String {
        format!("{}:{}", project(&self.repo).kanban_id, self.spec_id)
    }

    /// The kanban board's column and why it waits in review. The board knows none
    /// of the pipeline's words: a finished spec, triaged or stuck, reads `backlog`.
    pub(crate) fn kanban_status(&self) -> (&'static str, Option<&'static str>) {
        if let Some(status) = self.kanban_override {
            return (status, None);
        }
        if self.plan_status == "awaiting_approval" {
            return ("human_review", Some("plan_review"));
        }
        match (self.running, self.status) {
            (true, "evaluated" | "triaging") => ("ai_review", None),
            (true, _) => ("in_progress", None),
            _ => ("backlog", None),
        }
    }

    /// `status_json.lane_progress`: every lane, those outside the plan pending.
    fn lane_progress(&self) -> Value {
        let map: serde_json::Map<String, Value> = LANES
            .iter()
            .map(|&lane| {
                let state = self
                    .lanes
                    .iter()
                    .find(|l| l.lane == lane)
                    .map_or("pending", LaneRun::progress);
                (lane.to_owned(), json!(state))
            })
            .collect();
        Value::Object(map)
    }

    /// status.json verbatim: what the pipeline wrote for this spec.
    fn status_json(&self) -> Value {
        let mut v = json!({
            "task_id": self.spec_id,
            "project_id": self.workspace(),
            "spec_id": self.spec_id,
            "title": self.title,
            "status": self.status,
            "phase": self.phase,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "lane_progress": self.lane_progress(),
        });
        if let Some(branch) = &self.branch {
            v["branch"] = json!(branch);
            v["base_ref"] = json!("main");
        }
        if let Some(mode) = self.mode {
            v["mode"] = json!(mode);
            v["tenant"] = json!("default");
        }
        if let Some(outcome) = self.ended {
            if let Value::Object(counts) = self.result_counts() {
                for key in [
                    "committed_count",
                    "flagged_count",
                    "rejected_count",
                    "verdicts_count",
                ] {
                    if let Some(n) = counts.get(key) {
                        v[key] = n.clone();
                    }
                }
            }
            if outcome == Outcome::Stuck {
                v["stuck_reason"] = json!(format!(
                    "reached the correction-cycle cap ({})",
                    self.max_cycles
                ));
                v["needs_human"] = json!(true);
            } else {
                v["outcome"] = json!(outcome.outcome());
            }
        }
        v
    }

    /// Which reports exist for the spec.
    fn artefacts(&self) -> Value {
        let file = |path: &str, exists: bool| json!({"path": path, "exists": exists});
        let dir = |path: &str| json!({"path": path, "exists": false, "files": []});
        let triaged = self.ended.is_some();
        json!({
            "test_plan": file("test_plan.json", self.plan_written),
            "verdicts": file("findings/verdicts.json", !self.verdicts.is_empty()),
            "triage_report_json": file("findings/triage_report.json", triaged),
            "triage_report_md": file("findings/triage_report.md", triaged),
            "pr_comment_body": file("findings/pr_comment_body.md", triaged && self.pr_number.is_some()),
            "ac_fidelity_json": file("findings/ac_fidelity.json", false),
            "ac_fidelity_md": file("findings/ac_fidelity.md", false),
            "screenshots": dir("findings/screenshots"),
            "videos": dir("findings/videos"),
        })
    }

    /// A row of `GET /api/tfactory/tasks`: the issue only in
    /// `source.aifactory.github_issue`.
    pub(crate) fn pipeline_row(&self) -> Value {
        let mut aifactory = json!({"github_issue": self.issue_number});
        if let Some(task) = &self.aifactory_task_id {
            aifactory["task_id"] = json!(task);
        }
        json!({
            "task_id": self.spec_id,
            "project_id": self.workspace(),
            "spec_id": self.spec_id,
            "title": self.title,
            "status": self.status,
            "phase": self.phase,
            "tenant": "default",
            "updated_at": self.updated_at,
            "source": {"aifactory": aifactory},
        })
    }

    /// `GET /api/tfactory/tasks/{spec_id}`.
    pub(crate) fn pipeline_detail(&self) -> Value {
        json!({
            "task_id": self.spec_id,
            "project_id": self.workspace(),
            "spec_id": self.spec_id,
            "status_json": self.status_json(),
            "artefacts": self.artefacts(),
        })
    }

    /// `test_plan.json` as the planner writes it, once it has. Each phase is one
    /// acceptance criterion; lanes live on its subtasks and dependencies on the
    /// phases: the first phase holds the fast lanes, every later phase waits on all
    /// before it.
    pub(crate) fn test_plan(&self) -> Option<Value> {
        if !self.plan_written {
            return None;
        }
        let title = self.title.clone().unwrap_or_else(|| self.spec_id.clone());
        let first = if self.lanes.len() >= 3 { 2 } else { 1 };
        let mut groups: Vec<&[LaneRun]> = vec![&self.lanes[..first.min(self.lanes.len())]];
        groups.extend(self.lanes[first.min(self.lanes.len())..].chunks(1));
        let phases: Vec<Value> = groups
            .iter()
            .enumerate()
            .map(|(i, lanes)| {
                let subtasks: Vec<Value> = lanes.iter().map(|l| l.plan_subtask(&title)).collect();
                let names: Vec<&str> = lanes.iter().map(|l| l.lane).collect();
                let mut phase = json!({
                    "phase": i + 1,
                    "name": format!("AC{}: {} checks hold for {title}", i + 1, names.join(" and ")),
                    "type": "implementation",
                    "subtasks": subtasks,
                    "chunks": subtasks,
                });
                if i > 0 {
                    phase["depends_on"] = json!((1..=i).collect::<Vec<_>>());
                }
                phase
            })
            .collect();
        let acceptance: Vec<&Value> = phases.iter().map(|p| &p["name"]).collect();
        let status = match (self.running, self.ended) {
            (true, _) => "in_progress",
            (false, Some(Outcome::Stuck)) => "failed",
            (false, Some(_)) => "completed",
            (false, None) => "pending",
        };
        Some(json!({
            "feature": title,
            "workflow_type": "feature",
            "services_involved": [],
            "phases": phases,
            "final_acceptance": acceptance,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "spec_file": null,
            "status": status,
            "planStatus": self.plan_status,
        }))
    }

    fn kanban_subtasks(&self) -> Vec<Value> {
        if !self.plan_written {
            return Vec::new();
        }
        self.lanes.iter().map(LaneRun::kanban_subtask).collect()
    }

    /// The kanban `phase`: Auto-Claude's words, none while the spec waits.
    fn kanban_phase(&self) -> Option<&'static str> {
        match self.kanban_status().0 {
            "in_progress" => Some("coding"),
            "ai_review" => Some("qa_review"),
            _ => None,
        }
    }

    /// A row of TFactory's `GET /api/tasks`: snake_case, naive local times, the issue
    /// only in `metadata.githubIssueNumber`.
    pub(crate) fn kanban_row(&self) -> Value {
        let (status, review_reason) = self.kanban_status();
        let title = self.title.clone().unwrap_or_else(|| self.spec_id.clone());
        json!({
            "title": title,
            "description": title,
            "id": self.kanban_id(),
            "spec_id": self.spec_id,
            "project_id": project(&self.repo).kanban_id,
            "status": status,
            "phase": self.kanban_phase(),
            "subtasks": self.kanban_subtasks(),
            "created_at": self.created_local,
            "updated_at": self.updated_local,
            "worktree_path": null,
            "branch_name": null,
            "metadata": {
                "sourceType": null,
                "category": null,
                "priority": null,
                "complexity": null,
                "impact": null,
                "githubIssueNumber": self.issue_number,
                "affectedFiles": null,
                "acceptanceCriteria": null,
                "model": null,
                "thinkingLevel": null,
                "requireReviewBeforeCoding": null,
                "mode": null,
                "isAutoProfile": null,
                "phaseModels": null,
                "phaseThinking": null,
                "baseBranch": null,
                "archivedAt": null,
                "archivedInVersion": null,
                "selectedSkills": null,
            },
            "review_reason": review_reason,
            "repo": self.repo,
        })
    }

    /// TFactory's `GET /api/tasks/{project uuid}:{spec}`: the row in camelCase.
    pub(crate) fn kanban_detail(&self) -> Value {
        let (status, review_reason) = self.kanban_status();
        let title = self.title.clone().unwrap_or_else(|| self.spec_id.clone());
        let subtasks = self.kanban_subtasks();
        let done = self
            .lanes
            .iter()
            .filter(|l| self.plan_written && matches!(l.status, "completed" | "failed"))
            .count();
        let total = if self.plan_written {
            self.lanes.len()
        } else {
            0
        };
        let current = self
            .lanes
            .iter()
            .find(|l| self.plan_written && l.status == "in_progress")
            .map(|l| format!("{} checks", l.lane));
        json!({
            "id": self.kanban_id(),
            "specId": self.spec_id,
            "projectId": project(&self.repo).kanban_id,
            "title": title,
            "description": title,
            "status": status,
            "phase": self.kanban_phase(),
            "subtasks": subtasks,
            "logs": [],
            "createdAt": self.created_local,
            "updatedAt": self.updated_local,
            "worktreePath": null,
            "branchName": null,
            "reviewReason": review_reason,
            "specsPath": format!(
                "/srv/repos/{}/.tfactory/specs/{}",
                self.workspace(),
                self.spec_id
            ),
            "repo": null,
            "executionProgress": {
                "phase": self.kanban_phase().unwrap_or("idle"),
                "phaseProgress": 0,
                "overallProgress": (done * 100).checked_div(total).unwrap_or(0),
                "currentSubtask": current,
                "message": format!("{done}/{total} subtasks completed"),
                "startedAt": self.created_local,
            },
            "metadata": {"githubIssueNumber": self.issue_number},
        })
    }
}

/// How one verify run ended. A finished verify is `triaged` whatever its verdict: the
/// `outcome` carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// Tests ran and passed.
    Pass,
    /// Tests failed; a correction run follows.
    TestsFailed,
    /// A dependency change needs a person's review; a correction run follows.
    DependencyReview,
    /// The verify produced no verdicts and says so; a correction run follows.
    NoEvidence,
    /// A success with nothing counted and no halt reason: proves nothing.
    Unproven,
    /// Still failing after the last correction cycle.
    Stuck,
}

/// The level a verify aims for.
const TARGET_LEVEL: &str = "VAL-2";
const NO_SANDBOX: &str = "no disposable sandbox target provisioned; effectful verification against a real host was not run";

impl Outcome {
    /// The event's `status`.
    pub(crate) fn status(self) -> &'static str {
        match self {
            Outcome::Stuck => "stuck",
            _ => "triaged",
        }
    }

    /// The event's `phase`.
    pub(crate) fn phase(self) -> &'static str {
        match self {
            Outcome::Stuck => "needs_human",
            _ => "test",
        }
    }

    /// The event's `outcome`.
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Outcome::Pass | Outcome::Unproven => "success",
            Outcome::TestsFailed | Outcome::NoEvidence => "failure",
            Outcome::DependencyReview | Outcome::Stuck => "human_review",
        }
    }

    /// Whether the evaluator gave verdicts at all.
    pub(crate) fn has_verdicts(self) -> bool {
        !matches!(self, Outcome::NoEvidence | Outcome::Unproven)
    }

    /// Whether TFactory sends the work back to AIFactory for a correction run.
    pub(crate) fn hands_back(self) -> bool {
        matches!(
            self,
            Outcome::TestsFailed | Outcome::DependencyReview | Outcome::NoEvidence
        )
    }

    /// How many tests fail in correction cycle `cycle`.
    pub(crate) fn failing(self, cycle: u32) -> usize {
        match self {
            Outcome::TestsFailed | Outcome::Stuck => 2 + cycle as usize,
            _ => 0,
        }
    }

    /// The event's `halt_reason`.
    pub(crate) fn halt_reason(self, failing: usize, cycle: u32, max_cycles: u32) -> Option<String> {
        match self {
            Outcome::Pass | Outcome::Unproven => None,
            Outcome::TestsFailed => Some(format!(
                "tests_failed: {failing} failing, handback to AIFactory (cycle {}/{max_cycles})",
                cycle + 1
            )),
            Outcome::DependencyReview => Some(
                "dependency_review: the build adds a dependency (left-pad 1.3.0) that needs a person's review"
                    .into(),
            ),
            Outcome::NoEvidence => Some("no_evidence: verify produced no verdicts".into()),
            Outcome::Stuck => Some(format!(
                "needs_human: tests still failing after {max_cycles} correction cycles"
            )),
        }
    }

    /// The `verification` block: the level aimed for, the level reached, each level's
    /// status and the claim TFactory makes.
    pub(crate) fn verification(self, failing: usize) -> Value {
        let failed = format!("{failing} failing test(s) in the unit lane");
        let levels: [(&str, &str, Option<&str>); 4] = match self {
            Outcome::Pass => [
                ("VAL-0", "passed", None),
                ("VAL-1", "passed", None),
                ("VAL-2", "passed", None),
                ("VAL-3", "not_run", Some(NO_SANDBOX)),
            ],
            Outcome::TestsFailed | Outcome::Stuck => [
                ("VAL-0", "passed", None),
                ("VAL-1", "failed", Some(&failed)),
                ("VAL-2", "not_run", Some("blocked by the failing unit lane")),
                ("VAL-3", "not_run", Some(NO_SANDBOX)),
            ],
            Outcome::DependencyReview => [
                ("VAL-0", "passed", None),
                ("VAL-1", "passed", None),
                (
                    "VAL-2",
                    "needs_review",
                    Some("a new dependency awaits a person's review"),
                ),
                ("VAL-3", "not_run", Some(NO_SANDBOX)),
            ],
            Outcome::NoEvidence | Outcome::Unproven => [
                (
                    "VAL-0",
                    "not_run",
                    Some("no tests executed — toolchain/static unproven"),
                ),
                ("VAL-1", "not_run", Some("no unit lane ran in this verify")),
                (
                    "VAL-2",
                    "not_run",
                    Some("no api/integration/browser lane ran in this verify"),
                ),
                ("VAL-3", "not_run", Some(NO_SANDBOX)),
            ],
        };
        let achieved = levels
            .iter()
            .take_while(|l| l.1 == "passed")
            .last()
            .map_or("VAL-0", |l| l.0);
        let unproven: Vec<String> = levels
            .iter()
            .filter(|l| l.1 != "passed")
            .filter(|l| achieved != "VAL-0" || l.0 != "VAL-0")
            .map(|l| format!("{} {} ({})", l.0, l.1, l.2.unwrap_or_default()))
            .collect();
        let claim = if achieved == TARGET_LEVEL {
            format!(
                "Verified to {achieved}. NOT verified: {}.",
                unproven.join("; ")
            )
        } else if levels[0].1 == "passed" {
            format!("NOT VERIFIED beyond {achieved} — {}", unproven.join("; "))
        } else {
            format!(
                "NOT VERIFIED beyond static at best — {}",
                unproven.join("; ")
            )
        };
        let mut v = json!({
            "target_level": TARGET_LEVEL,
            "achieved_level": achieved,
            "levels": levels
                .iter()
                .map(|&(level, status, reason)| {
                    let mut l = json!({"level": level, "status": status, "reason": reason});
                    if level == "VAL-3" {
                        l["risk"] = json!("behaviour against a real host/cluster is unverified");
                    }
                    l
                })
                .collect::<Vec<_>>(),
            "claim": claim,
        });
        // Builds with the claim gate downgrade an empty verify themselves; the ones that
        // report an unproven success predate it.
        if self != Outcome::Unproven {
            let downgraded = self == Outcome::NoEvidence;
            v["_gate"] = json!({
                "violations": if downgraded {
                    vec![format!("overclaim:{TARGET_LEVEL}>actual:{achieved}")]
                } else {
                    Vec::new()
                },
                "downgraded": downgraded,
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_verify_is_triaged_whatever_its_outcome() {
        for o in [
            Outcome::Pass,
            Outcome::TestsFailed,
            Outcome::DependencyReview,
            Outcome::NoEvidence,
            Outcome::Unproven,
        ] {
            assert_eq!(o.status(), "triaged", "{o:?}");
            assert_eq!(o.phase(), "test");
        }
        assert_eq!(Outcome::Stuck.status(), "stuck");
        assert_eq!(Outcome::Stuck.phase(), "needs_human");
        assert_eq!(Outcome::DependencyReview.outcome(), "human_review");
        assert_eq!(Outcome::Unproven.outcome(), "success");
        assert_eq!(Outcome::Unproven.halt_reason(0, 0, 2), None);
        assert_eq!(
            Outcome::NoEvidence.halt_reason(0, 0, 2).as_deref(),
            Some("no_evidence: verify produced no verdicts")
        );
        assert!(
            Outcome::DependencyReview
                .halt_reason(0, 0, 2)
                .unwrap()
                .starts_with("dependency_review: ")
        );
    }

    #[test]
    fn verification_claims_only_the_levels_reached() {
        let pass = Outcome::Pass.verification(0);
        assert_eq!(pass["achieved_level"], "VAL-2");
        assert_eq!(pass["levels"].as_array().unwrap().len(), 4);
        assert!(
            pass["claim"]
                .as_str()
                .unwrap()
                .starts_with("Verified to VAL-2.")
        );
        assert_eq!(pass["_gate"]["downgraded"], false);

        let failed = Outcome::TestsFailed.verification(3);
        assert_eq!(failed["achieved_level"], "VAL-0");
        assert_eq!(failed["levels"][1]["status"], "failed");
        assert!(failed["claim"].as_str().unwrap().contains("3 failing"));

        let empty = Outcome::NoEvidence.verification(0);
        assert_eq!(empty["achieved_level"], "VAL-0");
        assert_eq!(empty["_gate"]["downgraded"], true);
        assert!(
            empty["claim"]
                .as_str()
                .unwrap()
                .starts_with("NOT VERIFIED beyond static at best")
        );
        assert!(Outcome::Unproven.verification(0).get("_gate").is_none());
    }
}

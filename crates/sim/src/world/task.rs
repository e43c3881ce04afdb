//! AIFactory's coding task as its REST surface shows it.

use serde_json::{Value, json};

use crate::envelope::Meter;

/// One step of a build run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stage {
    SpecCreation,
    Planning,
    Coding(usize),
    QaReview,
    QaFixing(usize),
    Finish,
}

impl Stage {
    /// The `executionProgress.phase` this stage reports.
    pub(crate) fn phase(self) -> &'static str {
        match self {
            Stage::SpecCreation => "spec_creation",
            Stage::Planning => "planning",
            Stage::Coding(_) => "coding",
            Stage::QaReview => "qa_review",
            Stage::QaFixing(_) => "qa_fixing",
            Stage::Finish => "completed",
        }
    }

    /// Nominal duration at speed 1.0, in milliseconds.
    pub(crate) fn duration_ms(self) -> u64 {
        match self {
            Stage::SpecCreation => 400,
            Stage::Planning => 600,
            Stage::Coding(_) => 500,
            Stage::QaReview => 600,
            Stage::QaFixing(_) => 400,
            Stage::Finish => 300,
        }
    }
}

/// One subtask of the implementation plan.
#[derive(Debug, Clone)]
pub(crate) struct Subtask {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) status: &'static str,
    pub(crate) depends_on: Vec<String>,
    pub(crate) started_at: Option<String>,
    pub(crate) completed_at: Option<String>,
}

/// `executionProgress`.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub(crate) phase: &'static str,
    pub(crate) phase_progress: u32,
    pub(crate) overall: u32,
    pub(crate) current_subtask: Option<String>,
    pub(crate) message: String,
}

/// One coding task (`project_id:spec_id`).
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) spec_no: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) repo: String,
    /// The simulator's own status, finer than the board's: `merged`, `qa_failed` and
    /// `failed` are reported in the webhook events; the REST surface folds them.
    pub(crate) status: &'static str,
    pub(crate) branch: String,
    pub(crate) issue_number: Option<u64>,
    pub(crate) provenance: Value,
    pub(crate) complexity: String,
    pub(crate) model: String,
    pub(crate) auto_continue: bool,
    pub(crate) progress: Progress,
    pub(crate) subtasks: Vec<Subtask>,
    pub(crate) run: u32,
    pub(crate) stages: Vec<Stage>,
    pub(crate) meter: Meter,
    /// Kept for TFactory's events; AIFactory's REST surface shows no PR number.
    pub(crate) pr_number: Option<u64>,
    pub(crate) stalled: bool,
    /// Its implementation plan waits for AIFactory's own approve-plan.
    pub(crate) awaiting_plan_review: bool,
    pub(crate) spec_id: Option<String>,
    pub(crate) corrections: Vec<Value>,
    /// The pre-coder prompt-injection scan's verdict (flagged or not), once it ran.
    pub(crate) injection_flagged: Option<bool>,
    /// Why the last run halted, sent with its terminal event.
    pub(crate) halt_reason: Option<String>,
    pub(crate) worktree_sha: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) unit: Option<usize>,
}

impl Task {
    /// The issue number once known (bare, even for an issue PFactory keys
    /// repository-qualified), else the synthetic `af-<spec>` key.
    pub(crate) fn correlation_key(&self) -> String {
        match self.issue_number {
            Some(n) => n.to_string(),
            None => format!("af-{}", self.spec_no),
        }
    }

    /// The `correlation` block AIFactory's events carry.
    pub(crate) fn event_correlation(&self) -> Value {
        json!({
            "issue_number": self.issue_number,
            "spec_id": self.spec_no,
            "project_id": self.project_id,
        })
    }

    /// Whether a build run is under way.
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.status, "in_progress" | "ai_review") && !self.stalled
    }

    /// The board column the REST surface and the live feed show, and why a task
    /// waits in human review: `qa_failed`, `failed` and a finished build are folded
    /// into `human_review`, a merged one reads `done`.
    pub(crate) fn board_status(&self) -> (&'static str, Option<&'static str>) {
        if self.awaiting_plan_review {
            return ("human_review", Some("plan_review"));
        }
        match self.status {
            "qa_failed" => ("human_review", Some("qa_rejected")),
            "failed" => ("human_review", Some("errors")),
            // Parked by the injection scan before any code was written.
            "human_review" if self.injection_flagged == Some(true) => {
                ("human_review", Some("errors"))
            }
            "human_review" => ("human_review", Some("completed")),
            "merged" | "done" => ("done", None),
            other => (other, None),
        }
    }

    /// The execution phase a row shows; none before the task started.
    fn phase(&self) -> Option<&'static str> {
        (self.status != "backlog").then_some(self.progress.phase)
    }

    /// The issue the task's provenance names (what a row's `github_issue` is).
    fn provenance_issue(&self) -> Option<u64> {
        self.provenance["issue_number"].as_u64()
    }

    fn worktree_path(&self) -> Option<String> {
        (self.run > 0).then(|| format!(".worktrees/{}", self.spec_no))
    }

    /// `executionProgress`.
    pub(crate) fn execution_progress(&self) -> Value {
        json!({
            "phase": self.progress.phase,
            "phaseProgress": self.progress.phase_progress,
            "overallProgress": self.progress.overall,
            "currentSubtask": self.progress.current_subtask,
            "message": self.progress.message,
        })
    }

    fn subtasks_json(&self) -> Vec<Value> {
        self.subtasks
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "title": s.title,
                    "description": s.title,
                    "status": s.status,
                    "files": [],
                    "verification": {"type": "command", "run": null, "scenario": null},
                    "depends_on": s.depends_on,
                    "service": null,
                    "started_at": s.started_at,
                    "completed_at": s.completed_at,
                })
            })
            .collect()
    }

    fn metadata(&self) -> Value {
        json!({
            "sourceType": self.provenance["source"].as_str(),
            "category": "feature",
            "priority": null,
            "complexity": self.complexity,
            "impact": null,
            "githubIssueNumber": self.issue_number,
            "affectedFiles": null,
            "acceptanceCriteria": null,
            "model": self.model,
            "thinkingLevel": null,
            "requireReviewBeforeCoding": self.awaiting_plan_review.then_some(true),
            "mode": null,
            "isAutoProfile": null,
            "phaseModels": null,
            "phaseThinking": null,
            "baseBranch": null,
            "archivedAt": null,
            "archivedInVersion": null,
            "selectedSkills": null,
        })
    }

    /// A row of `GET /api/tasks`: snake_case, no PR number.
    pub(crate) fn row(&self) -> Value {
        let (status, review_reason) = self.board_status();
        json!({
            "id": self.id,
            "spec_id": self.spec_no,
            "project_id": self.project_id,
            "title": self.title,
            "description": self.description,
            "status": status,
            "phase": self.phase(),
            "subtasks": self.subtasks_json(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "worktree_path": self.worktree_path(),
            "branch_name": self.branch,
            "metadata": self.metadata(),
            "review_reason": review_reason,
            "github_issue": self.provenance_issue(),
            "repo": self.repo,
        })
    }

    /// `GET /api/tasks/{project_id:spec_id}`: the same task in camelCase.
    pub(crate) fn detail(&self) -> Value {
        let (status, review_reason) = self.board_status();
        json!({
            "id": self.id,
            "specId": self.spec_no,
            "projectId": self.project_id,
            "title": self.title,
            "description": self.description,
            "status": status,
            "phase": self.phase(),
            "subtasks": self.subtasks_json(),
            "logs": [],
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "worktreePath": self.worktree_path(),
            "branchName": self.branch,
            "reviewReason": review_reason,
            "githubIssueNumber": self.issue_number,
            "repo": self.repo,
            "executionProgress": self.execution_progress(),
            "metadata": self.metadata(),
        })
    }
}

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
    pub(crate) status: &'static str,
    pub(crate) branch: String,
    pub(crate) base_branch: String,
    pub(crate) issue_number: Option<u64>,
    pub(crate) session_id: Option<String>,
    pub(crate) provenance: Value,
    pub(crate) complexity: String,
    pub(crate) model: String,
    pub(crate) auto_continue: bool,
    pub(crate) progress: Progress,
    pub(crate) subtasks: Vec<Subtask>,
    pub(crate) run: u32,
    pub(crate) stages: Vec<Stage>,
    pub(crate) meter: Meter,
    pub(crate) pr_number: Option<u64>,
    pub(crate) stalled: bool,
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

    /// Whether a build run is under way (a new one would be refused).
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.status, "in_progress" | "ai_review") && !self.stalled
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

    /// The correlation links this task's REST view shows.
    pub(crate) fn correlation(&self) -> Value {
        let mut c = json!({
            "issue_number": self.issue_number,
            "aifactory_task_id": self.id,
            "branch": self.branch,
        });
        if let Some(s) = &self.session_id {
            c["session_id"] = json!(s);
        }
        if let Some(p) = self.pr_number {
            c["pr_number"] = json!(p);
        }
        if let Some(s) = &self.spec_id {
            c["tfactory_spec_id"] = json!(s);
        }
        c
    }

    /// A task as `GET /api/tasks` and `GET /api/tasks/{id}` return it.
    pub(crate) fn view(&self) -> Value {
        json!({
            "id": self.id,
            "task_id": self.id,
            "specId": self.spec_no,
            "project_id": self.project_id,
            "title": self.title,
            "description": self.description,
            "repo": self.repo,
            "status": self.status,
            "phase": match self.status {
                "backlog" => "plan",
                "ai_review" | "qa_failed" => "qa",
                _ => "act",
            },
            "branchName": self.branch,
            "branch": self.branch,
            "baseBranch": self.base_branch,
            "issue_number": self.issue_number,
            "correlation_key": self.correlation_key(),
            "correlation": self.correlation(),
            "provenance": self.provenance,
            "complexity": self.complexity,
            "model": self.model,
            "auto_continue": self.auto_continue,
            "executionProgress": self.execution_progress(),
            "subtasks": self.subtasks.iter().map(|s| json!({
                "id": s.id,
                "title": s.title,
                "status": s.status,
                "depends_on": s.depends_on,
                "started_at": s.started_at,
                "completed_at": s.completed_at,
            })).collect::<Vec<_>>(),
            "run": self.run,
            "usage": self.meter.to_json(&self.id),
            "pr_number": self.pr_number,
            "prUrl": self.pr_number.map(|n| format!("https://github.com/{}/pull/{n}", self.repo)),
            "corrections": self.corrections,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

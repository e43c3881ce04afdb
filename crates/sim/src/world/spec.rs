//! TFactory's verification spec as its REST surface shows it.

use serde_json::{Value, json};

use crate::envelope::Meter;

/// The statuses a verification walks through, in order.
pub(crate) const VERIFY_STATES: [&str; 5] = [
    "planning",
    "generating",
    "executing",
    "evaluating",
    "triaging",
];

/// Nominal duration of each verification status at speed 1.0, in milliseconds.
pub(crate) const VERIFY_MS: [u64; 5] = [400, 600, 800, 400, 400];

/// One lane's subtask.
#[derive(Debug, Clone)]
pub(crate) struct LaneRun {
    pub(crate) id: String,
    pub(crate) lane: &'static str,
    pub(crate) status: &'static str,
    pub(crate) tests_generated: u64,
    pub(crate) tests_executed: u64,
}

/// One verification spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) spec_id: String,
    pub(crate) title: String,
    pub(crate) repo: String,
    pub(crate) status: &'static str,
    pub(crate) plan_status: &'static str,
    pub(crate) aifactory_task_id: Option<String>,
    pub(crate) project_id: String,
    pub(crate) issue_number: Option<u64>,
    pub(crate) session_id: Option<String>,
    pub(crate) branch: Option<String>,
    pub(crate) pr_number: Option<u64>,
    pub(crate) lanes: Vec<LaneRun>,
    pub(crate) cycle: u32,
    pub(crate) max_cycles: u32,
    pub(crate) needs_human: bool,
    pub(crate) verdict: Option<Value>,
    pub(crate) verdicts: Vec<Value>,
    pub(crate) failing_tests: Vec<String>,
    pub(crate) outcome: Option<&'static str>,
    pub(crate) halt_reason: Option<String>,
    pub(crate) meter: Meter,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
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

    /// The correlation links this spec knows.
    pub(crate) fn correlation(&self) -> Value {
        let mut c = json!({
            "issue_number": self.issue_number,
            "tfactory_spec_id": self.spec_id,
            "aifactory_task_id": self.aifactory_task_id,
        });
        if let Some(s) = &self.session_id {
            c["session_id"] = json!(s);
        }
        if let Some(b) = &self.branch {
            c["branch"] = json!(b);
        }
        if let Some(p) = self.pr_number {
            c["pr_number"] = json!(p);
        }
        c
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

    /// A spec as `GET /api/tasks` and `GET /api/tasks/{spec_id}` return it.
    pub(crate) fn view(&self) -> Value {
        let (accepted, flagged, rejected) = self.verdict_counts();
        json!({
            "spec_id": self.spec_id,
            "id": self.spec_id,
            "title": self.title,
            "repo": self.repo,
            "status": self.status,
            "phase": "test",
            "plan_status": self.plan_status,
            "correlation_key": self.correlation_key(),
            "correlation": self.correlation(),
            "aifactory_task_id": self.aifactory_task_id,
            "project_id": self.project_id,
            "issue_number": self.issue_number,
            "branch": self.branch,
            "pr_number": self.pr_number,
            "subtasks": self.lanes.iter().map(|l| json!({
                "id": l.id,
                "title": format!("{} tests", l.lane),
                "lane": l.lane,
                "status": l.status,
                "tests_generated": l.tests_generated,
                "tests_executed": l.tests_executed,
            })).collect::<Vec<_>>(),
            "correction_cycle": self.cycle,
            "max_correction_cycles": self.max_cycles,
            "needs_human": self.needs_human,
            "verdict": self.verdict,
            "verdicts": self.verdicts,
            "verdict_counts": {"accepted": accepted, "flagged": flagged, "rejected": rejected},
            "triage_report": if self.outcome.is_some() {
                json!({
                    "spec_id": self.spec_id,
                    "verdict": self.verdict,
                    "failing_tests": self.failing_tests,
                    "summary_markdown": format!(
                        "### TFactory triage for {}\n\n{} failing test(s).",
                        self.spec_id,
                        self.failing_tests.len()
                    ),
                })
            } else {
                Value::Null
            },
            "outcome": self.outcome,
            "halt_reason": self.halt_reason,
            "usage": self.meter.to_json(&self.spec_id),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

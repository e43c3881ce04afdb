//! PFactory's planning session as its REST surface shows it.

use serde_json::{Value, json};

use crate::envelope::Meter;

/// The board states a session walks through before it waits for a human.
pub(crate) const PLAN_STATES: [&str; 5] = [
    "draft",
    "enriched",
    "decomposed",
    "reviewing",
    "awaiting_approval",
];

/// One review lens (architecture, security, best-practices, feasibility).
#[derive(Debug, Clone)]
pub(crate) struct Lens {
    pub(crate) lens: &'static str,
    pub(crate) score: f64,
    pub(crate) max: f64,
    pub(crate) blocking: bool,
    pub(crate) findings: Vec<String>,
}

/// One child of the epic; `number` appears once the issues are emitted.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub(crate) id: String,
    pub(crate) number: Option<u64>,
    pub(crate) title: String,
    pub(crate) depends_on: Vec<String>,
}

/// The human decision on a session.
#[derive(Debug, Clone)]
pub(crate) struct Approval {
    pub(crate) decision: &'static str,
    pub(crate) approver: String,
    pub(crate) feedback: Option<String>,
    pub(crate) at: String,
}

/// One planning session.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) session_id: String,
    pub(crate) title: String,
    pub(crate) repo: String,
    pub(crate) board_state: &'static str,
    /// The epic issue the emit created.
    pub(crate) github_issue: Option<u64>,
    /// The existing issue the plan came from, if any: then the unit's identity.
    pub(crate) origin_issue: Option<u64>,
    /// On the contract path the plan goes straight to this AIFactory task, no issue.
    pub(crate) aifactory_task_id: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) lenses: Vec<Lens>,
    pub(crate) threshold: f64,
    pub(crate) children: Vec<Child>,
    pub(crate) approval: Option<Approval>,
    pub(crate) meter: Meter,
    pub(crate) unit: Option<usize>,
}

impl Plan {
    /// The mean lens score, 0–1.
    pub(crate) fn aggregate_score(&self) -> f64 {
        if self.lenses.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.lenses.iter().map(|l| l.score / l.max).sum();
        (sum / self.lenses.len() as f64 * 100.0).round() / 100.0
    }

    /// Whether the review gates let a human approve: reviewed, no blocking lens, and
    /// the aggregate at or above the threshold.
    pub(crate) fn gates_passed(&self) -> bool {
        !self.lenses.is_empty()
            && !self.lenses.iter().any(|l| l.blocking)
            && self.aggregate_score() >= self.threshold
    }

    /// The origin issue, repository-qualified, when the plan came from one; else the
    /// epic's number once emitted; else the synthetic `pf-<session>` key.
    pub(crate) fn correlation_key(&self) -> String {
        match (self.origin_issue, self.github_issue) {
            (Some(n), _) => format!("{}#{n}", self.repo),
            (None, Some(n)) => n.to_string(),
            (None, None) => format!("pf-{}", self.session_id),
        }
    }

    /// The status and phase PFactory's completion event reports for the board state:
    /// its code knows `ingested`, `processed`, `emitted` and `rejected`, not the board's
    /// finer steps.
    pub(crate) fn event_status(&self) -> (&'static str, &'static str) {
        match self.board_state {
            "awaiting_approval" => ("processed", "processed"),
            "emitted" => ("emitted", "emit"),
            "rejected" => ("rejected", "review"),
            _ => ("ingested", "ingested"),
        }
    }

    /// The `emitted` evidence: the issues created, or the AIFactory task handed the
    /// plan on the contract path. A single-issue plan has `child_count: 0`.
    pub(crate) fn evidence(&self) -> Value {
        match &self.aifactory_task_id {
            Some(task) => json!({"proof_kind": "contract", "aifactory_task_id": task}),
            None => json!({
                "proof_kind": "issues",
                "epic_issue": self.github_issue,
                "child_count": self.children.iter().filter(|c| c.number.is_some()).count(),
            }),
        }
    }

    /// A row of `GET /api/plan/sessions` (both spellings of id and status).
    pub(crate) fn row(&self) -> Value {
        json!({
            "session_id": self.session_id,
            "id": self.session_id,
            "board_state": self.board_state,
            "status": self.board_state,
            "github_issue": self.github_issue,
            "repo": self.repo,
            "title": self.title,
            "correlation_key": self.correlation_key(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// `GET /api/plan/sessions/{id}`: the row plus epic, review and emit result.
    pub(crate) fn detail(&self) -> Value {
        let mut v = self.row();
        let children: Vec<Value> = self
            .children
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "number": c.number,
                    "title": c.title,
                    "depends_on": c.depends_on,
                })
            })
            .collect();
        let emitted = self.board_state == "emitted";
        let child_numbers: Vec<u64> = self.children.iter().filter_map(|c| c.number).collect();
        let human_approval = match &self.approval {
            Some(a) => json!({
                "required": true,
                "status": if a.decision == "approve" { "approved" } else { "rejected" },
                "approver": a.approver,
                "feedback": a.feedback,
                "decided_at": a.at,
            }),
            None => json!({"required": true, "status": "pending"}),
        };
        let reviewed = !self.lenses.is_empty();
        v["epic"] = json!({
            "number": self.github_issue,
            "title": self.title,
            "children": if self.board_state == "draft" || self.board_state == "enriched" {
                Vec::new()
            } else {
                children
            },
        });
        v["emit_result"] = if emitted {
            json!({
                "epic_issue": self.github_issue,
                "child_numbers": child_numbers,
                "correlation_key": self.correlation_key(),
                "issues": self.github_issue
                    .into_iter()
                    .chain(child_numbers.iter().copied())
                    .map(|n| json!({
                        "number": n,
                        "url": format!("https://github.com/{}/issues/{n}", self.repo),
                    }))
                    .collect::<Vec<_>>(),
            })
        } else {
            Value::Null
        };
        v["review"] = if reviewed {
            json!({
                "gates_passed": self.gates_passed(),
                "aggregate_score": self.aggregate_score(),
                "threshold": self.threshold,
                "lenses": self.lenses.iter().map(|l| json!({
                    "lens": l.lens,
                    "score": l.score,
                    "max": l.max,
                    "blocking": l.blocking,
                    "findings": l.findings,
                })).collect::<Vec<_>>(),
                "human_approval": human_approval,
            })
        } else {
            Value::Null
        };
        // The published YAML's spelling of the same gates.
        v["review_gates"] = json!(
            self.lenses
                .iter()
                .map(|l| {
                    let ratio = l.score / l.max;
                    json!({
                        "name": l.lens,
                        "score": (ratio * 100.0).round() / 100.0,
                        "verdict": if l.blocking { "fail" } else if ratio < 0.8 { "warn" } else { "pass" },
                        "citations": l.findings.iter().map(|f| json!({"source": "review", "quote": f})).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>()
        );
        v["tasks"] = json!(
            self.children
                .iter()
                .map(|c| json!({"id": c.id, "title": c.title, "acceptance_criteria": []}))
                .collect::<Vec<_>>()
        );
        v
    }
}

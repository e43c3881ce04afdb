//! PFactory's planning session as its REST surface shows it.

use serde_json::{Value, json};

use crate::envelope::Meter;

/// The lifecycle status of each processing step before a session waits for a
/// person's sign-off (decomposing is part of `processing`).
pub(crate) const PLAN_STEPS: [&str; 5] = [
    "ingested",
    "processing",
    "processing",
    "reviewing",
    "processed",
];

/// One observation of a review lens.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) title: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) blocking: bool,
}

/// One review lens (architecture, security, best-practices, feasibility).
#[derive(Debug, Clone)]
pub(crate) struct Lens {
    pub(crate) lens: &'static str,
    /// 0–1; the gates want every lens at or above the threshold.
    pub(crate) score: f64,
    pub(crate) findings: Vec<Finding>,
}

impl Lens {
    fn blocking(&self) -> bool {
        self.findings.iter().any(|f| f.blocking)
    }
}

/// One child issue of the epic; `number` appears once a live emit created it.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    /// Stable within the epic (`C1`, `C2`, …): what `depends_on` names.
    pub(crate) key: String,
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
    /// The lifecycle: ingested, processing, reviewing, processed, approved,
    /// rejected, emitted.
    pub(crate) status: &'static str,
    /// How far processing got, an index into [`PLAN_STEPS`].
    pub(crate) step: usize,
    /// The epic issue a live emit created.
    pub(crate) github_issue: Option<u64>,
    /// The existing issue the plan came from, if any: then the unit's identity.
    pub(crate) origin_issue: Option<u64>,
    /// On the contract path the plan goes straight to this AIFactory task, no issue.
    pub(crate) aifactory_task_id: Option<String>,
    pub(crate) created_at: String,
    /// Only PFactory's completion events carry it; the REST surface has none.
    pub(crate) updated_at: String,
    pub(crate) lenses: Vec<Lens>,
    pub(crate) threshold: f64,
    pub(crate) children: Vec<Child>,
    pub(crate) approval: Option<Approval>,
    /// Whether the last emit was a dry run; none before any emit.
    pub(crate) emit_dry_run: Option<bool>,
    pub(crate) meter: Meter,
    pub(crate) unit: Option<usize>,
}

impl Plan {
    /// Whether processing finished: the epic and the review exist.
    pub(crate) fn processed(&self) -> bool {
        !matches!(self.status, "ingested" | "processing" | "reviewing")
    }

    /// The board column PFactory projects the lifecycle onto.
    pub(crate) fn board_state(&self) -> &'static str {
        match self.status {
            "approved" | "emitted" => "done",
            "rejected" | "processed" => "human_review",
            "processing" => "in_progress",
            "reviewing" => "ai_review",
            _ => "backlog",
        }
    }

    /// The mean lens score, 0–1. Informational: the gates judge every lens alone.
    pub(crate) fn aggregate_score(&self) -> f64 {
        if self.lenses.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.lenses.iter().map(|l| l.score).sum();
        (sum / self.lenses.len() as f64 * 10_000.0).round() / 10_000.0
    }

    /// Whether the review gates let a person approve: reviewed, every lens at or
    /// above the threshold and no blocking finding.
    pub(crate) fn gates_passed(&self) -> bool {
        !self.lenses.is_empty()
            && self
                .lenses
                .iter()
                .all(|l| l.score >= self.threshold && !l.blocking())
    }

    /// Why the gates fail, for a refusal.
    pub(crate) fn gate_failures(&self) -> String {
        self.lenses
            .iter()
            .filter(|l| l.score < self.threshold || l.blocking())
            .map(|l| {
                let blocking: Vec<&str> = l
                    .findings
                    .iter()
                    .filter(|f| f.blocking)
                    .map(|f| f.title)
                    .collect();
                format!(
                    "{} scored {:.2} (blocking: {})",
                    l.lens,
                    l.score,
                    if blocking.is_empty() {
                        "none".to_owned()
                    } else {
                        blocking.join("; ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The origin issue, repository-qualified, when the plan came from one; else the
    /// epic's number once emitted; else the synthetic `pf-<session>` key. What the
    /// completion events carry.
    pub(crate) fn correlation_key(&self) -> String {
        match (self.origin_issue, self.github_issue) {
            (Some(n), _) => format!("{}#{n}", self.repo),
            (None, Some(n)) => n.to_string(),
            (None, None) => format!("pf-{}", self.session_id),
        }
    }

    /// The key the REST surface shows: the origin issue's from the start, any other
    /// only once the session ended (emitted or rejected).
    fn rest_correlation_key(&self) -> Option<String> {
        let ended = matches!(self.status, "emitted" | "rejected");
        (self.origin_issue.is_some() || ended).then(|| self.correlation_key())
    }

    /// The status and phase PFactory's completion event reports: its code sends
    /// `ingested`, `processed`, `emitted` and `rejected` only.
    pub(crate) fn event_status(&self) -> (&'static str, &'static str) {
        match self.status {
            "processed" => ("processed", "processed"),
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

    /// The per-lens review a list row carries (findings without their prose).
    fn review_summary(&self) -> Value {
        if !self.processed() {
            return Value::Null;
        }
        json!({
            "gates_passed": self.gates_passed(),
            "threshold": self.threshold,
            "aggregate_score": self.aggregate_score(),
            "lenses": self.lenses.iter().map(|l| json!({
                "lens": l.lens,
                "score": l.score,
                "findings": l.findings.iter().map(|f| json!({
                    "title": f.title,
                    "severity": f.severity,
                    "blocking": f.blocking,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// A row of `GET /api/plan/sessions`: no `updated_at`, no `repo`.
    pub(crate) fn row(&self) -> Value {
        json!({
            "session_id": self.session_id,
            "tenant_id": "default",
            "title": self.title,
            "status": self.status,
            "board_state": self.board_state(),
            "target_kind": "software",
            "plan_type": "feature",
            "children": if self.processed() { self.children.len() } else { 0 },
            "gates_passed": self.processed().then(|| self.gates_passed()),
            "review": self.review_summary(),
            "created_at": self.created_at,
            "correlation_key": self.rest_correlation_key(),
            "issue_number": self.github_issue,
            "origin_issue_number": self.origin_issue,
            "aifactory_task_id": self.aifactory_task_id,
            "injection_scan": null,
        })
    }

    fn epic(&self) -> Value {
        if !self.processed() {
            return Value::Null;
        }
        json!({
            "plan_id": self.session_id,
            "epic_title": self.title,
            "epic_body": format!("Epic for: {}", self.title),
            "children": self.children.iter().map(|c| json!({
                "key": c.key,
                "title": c.title,
                "body": "",
                "kind": "feature",
                "labels": [],
                "depends_on": c.depends_on,
                "complexity": "standard",
                "acceptance_criteria": [],
            })).collect::<Vec<_>>(),
            "summary": "",
        })
    }

    fn review(&self) -> Value {
        if !self.processed() {
            return Value::Null;
        }
        let approved = self.approval.as_ref().filter(|a| a.decision == "approve");
        let feedback: Vec<&str> = self
            .approval
            .iter()
            .filter_map(|a| a.feedback.as_deref())
            .collect();
        json!({
            "plan_id": self.session_id,
            "lenses": self.lenses.iter().map(|l| json!({
                "lens": l.lens,
                "score": l.score,
                "max": 1.0,
                "blocking": l.blocking(),
                "findings": l.findings.iter().map(|f| json!({
                    "title": f.title,
                    "detail": "",
                    "severity": f.severity,
                    "source": l.lens,
                    "blocking": f.blocking,
                    "citations": [],
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "threshold": self.threshold,
            "aggregate_score": self.aggregate_score(),
            "gates_passed": self.gates_passed(),
            "code_gates_applied": true,
            "human_approval": {
                "approved": approved.is_some(),
                "approved_by": approved.map_or("", |a| a.approver.as_str()),
                "approved_at": approved.map_or("", |a| a.at.as_str()),
                "plan_hash": "",
                "valid": approved.is_some(),
                "review_count": usize::from(self.approval.is_some()),
                "feedback": feedback,
            },
        })
    }

    /// The last emit's result: a dry run plans the issues and creates none; a live
    /// emit maps each child's key to the issue it created.
    fn emit_result(&self) -> Value {
        let Some(dry_run) = self.emit_dry_run else {
            return Value::Null;
        };
        let planned: Vec<Value> = if dry_run {
            self.children
                .iter()
                .map(|c| json!({"key": c.key, "title": c.title, "depends_on": c.depends_on}))
                .collect()
        } else {
            Vec::new()
        };
        let child_numbers: serde_json::Map<String, Value> = self
            .children
            .iter()
            .filter_map(|c| Some((c.key.clone(), json!(c.number?))))
            .collect();
        json!({
            "dry_run": dry_run,
            "epic_number": if dry_run { None } else { self.github_issue },
            "child_numbers": if dry_run { serde_json::Map::new() } else { child_numbers },
            "planned": planned,
            "errors": [],
            "warnings": [],
        })
    }

    /// `GET /api/plan/sessions/{id}` (and the answer to approve, reject and emit):
    /// the whole session.
    pub(crate) fn detail(&self) -> Value {
        json!({
            "session_id": self.session_id,
            "status": self.status,
            "tenant_id": "default",
            "plan": {
                "plan_id": self.session_id,
                "title": self.title,
                "description": "",
                "source_format": "markdown",
                "source_channel": if self.origin_issue.is_some() { "github_issue" } else { "portal" },
                "criteria": [],
                "target_kind": "software",
                "plan_type": "feature",
                "ingested_at": self.created_at,
            },
            "repo": self.repo,
            "base_ref": null,
            "epic": self.epic(),
            "artifacts": [],
            "review": self.review(),
            "emit_result": self.emit_result(),
            "contract_result": self.aifactory_task_id.as_ref().map(|t| json!({
                "ok": true,
                "dry_run": false,
                "response": {"task_id": t},
            })),
            "created_at": self.created_at,
            "correlation_key": self.rest_correlation_key(),
            "emitted_issue_number": self.github_issue,
            "origin_issue_number": self.origin_issue,
            "aifactory_task_id": self.aifactory_task_id,
            "usage": self.meter.totals_json(),
            "injection_scan": null,
        })
    }
}

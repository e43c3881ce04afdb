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
    /// How the last verify run ended, once it has.
    pub(crate) ended: Option<Outcome>,
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

    /// The correlation links this spec's REST view shows.
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
            "triage_report": if self.ended.is_some() {
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
            "outcome": self.ended.map(Outcome::outcome),
            "halt_reason": self.halt_reason,
            "usage": self.meter.to_json(&self.spec_id),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
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

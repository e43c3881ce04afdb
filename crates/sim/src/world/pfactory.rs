//! PFactory's side of the world: planning sessions, their review and approval, and
//! the completion events PFactory sends.

use rand::Rng;
use serde_json::{Value, json};

use super::plan::{Approval, Child, Lens, PLAN_STATES, Plan};
use super::{LENSES, Refusal, SUBTASKS, Step, Unit, World, slug};
use crate::config::Scenario;
use crate::envelope::{Envelope, Meter, now_iso};

impl World {
    pub(super) fn new_plan(
        &mut self,
        session_id: &str,
        title: &str,
        repo: &str,
        unit: Option<usize>,
    ) -> Plan {
        let now = now_iso();
        Plan {
            session_id: session_id.to_owned(),
            title: title.to_owned(),
            repo: repo.to_owned(),
            board_state: "draft",
            github_issue: None,
            origin_issue: None,
            aifactory_task_id: None,
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

    pub(super) fn lenses(&mut self, pass: bool) -> Vec<Lens> {
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

    pub(super) fn children(&mut self, n: usize) -> Vec<Child> {
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

    pub(super) fn unit_start(&mut self, u: usize) {
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
        plan.origin_issue = unit.origin_issue;
        plan.meter.charge("planner", None, (1_200, 300), 500);
        self.plans.insert(session.clone(), plan);
        let event = self.pf_event(&session);
        self.send(event);
        self.after(500, Step::PlanAdvance(session));
    }

    pub(super) fn plan_advance(&mut self, session: &str) {
        let lenses = self.lenses(true);
        // Every third unit's plan is a single issue: an epic with no children.
        let single = self
            .plans
            .get(session)
            .and_then(|p| p.unit)
            .is_some_and(|u| u % 3 == 2);
        let n_children = if single {
            0
        } else {
            self.rng.random_range(2..4)
        };
        let children = self.children(n_children);
        let tokens = (
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
        plan.meter.charge("planner", None, tokens, 500);
        match next {
            "decomposed" => plan.children = children,
            "reviewing" => plan.lenses = lenses,
            _ => {}
        }
        if next == "awaiting_approval" {
            let event = self.pf_event(session);
            self.send(event);
            self.after(800, Step::PlanAutoApprove(session.to_owned()));
        } else {
            self.after(500, Step::PlanAdvance(session.to_owned()));
        }
    }

    /// PFactory's completion event for the session as it stands: no `id`, no `time`,
    /// no CloudEvents attributes, only `updated_at`; usage is the session's running
    /// total.
    fn pf_event(&self, session: &str) -> Value {
        let Some(plan) = self.plans.get(session) else {
            return Value::Null;
        };
        let (status, phase) = plan.event_status();
        let mut env = Envelope::new("pfactory", session, &plan.correlation_key(), status, phase)
            .updated_at(&plan.updated_at)
            .with(
                "correlation",
                json!({
                    "session_id": plan.session_id,
                    "issue_number": plan.github_issue,
                    "aifactory_task_id": plan.aifactory_task_id,
                }),
            )
            .with("usage", plan.meter.totals_json());
        if status == "emitted" {
            env = env.with("evidence", plan.evidence());
        }
        env.into_value()
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
        let contract = plan
            .unit
            .and_then(|u| self.units.get(u))
            .is_some_and(|u| u.contract);
        let (title, repo, unit) = (plan.title.clone(), plan.repo.clone(), plan.unit);
        // The contract path hands the plan straight to AIFactory: a task, no issue.
        let handed_to = contract.then(|| {
            let provenance = json!({
                "session_id": session,
                "issue_number": null,
                "repo": repo,
                "source": "pfactory",
                "approved_by": approver,
            });
            self.create_task(
                "proj",
                &title,
                "Plan handed over by contract",
                &repo,
                provenance,
                unit,
            )
        });
        let epic = self.next_issue;
        if handed_to.is_none() {
            let n = self.plans.get(session).map_or(0, |p| p.children.len()) as u64;
            self.next_issue += n + 1 + self.rng.random_range(0..3);
        }
        let Some(plan) = self.plans.get_mut(session) else {
            return Err(Refusal::NotFound(session.to_owned()));
        };
        plan.approval = Some(Approval {
            decision: "approve",
            approver: approver.to_owned(),
            feedback,
            at: now_iso(),
        });
        if handed_to.is_none() {
            plan.github_issue = Some(epic);
            for (i, c) in plan.children.iter_mut().enumerate() {
                c.number = Some(epic + 1 + i as u64);
            }
        }
        plan.aifactory_task_id = handed_to;
        plan.board_state = "emitted";
        plan.updated_at = now_iso();
        let event = self.pf_event(session);
        self.send(event);
        let u = match unit {
            Some(u) => u,
            None => {
                // A human approved a standing session: it goes on to code and test.
                self.units
                    .push(Unit::new(Scenario::Happy, usize::MAX, title, repo));
                let u = self.units.len() - 1;
                if let Some(p) = self.plans.get_mut(session) {
                    p.unit = Some(u);
                }
                u
            }
        };
        self.after(400, Step::TaskCreate(u));
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
        let event = self.pf_event(session);
        self.send(event);
        Ok(self
            .plans
            .get(session)
            .map(Plan::detail)
            .unwrap_or_default())
    }
}

//! PFactory's side of the world: planning sessions, their review, approval and emit,
//! and the completion events PFactory sends.

use rand::Rng;
use serde_json::{Value, json};

use super::plan::{Approval, Child, Finding, Lens, PLAN_STEPS, Plan};
use super::{AIFACTORY_PROJECTS, LENSES, Refusal, SUBTASKS, Step, Unit, World, slug};
use crate::config::Scenario;
use crate::envelope::{Envelope, Meter, now_iso, now_utc_offset};

impl World {
    pub(super) fn new_plan(
        &mut self,
        session_id: &str,
        title: &str,
        repo: &str,
        unit: Option<usize>,
    ) -> Plan {
        Plan {
            session_id: session_id.to_owned(),
            title: title.to_owned(),
            repo: repo.to_owned(),
            status: PLAN_STEPS[0],
            step: 0,
            github_issue: None,
            origin_issue: None,
            aifactory_task_id: None,
            created_at: now_utc_offset(),
            updated_at: now_iso(),
            lenses: Vec::new(),
            threshold: 0.75,
            children: Vec::new(),
            approval: None,
            emit_dry_run: None,
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
                    0.45
                } else {
                    f64::from(self.rng.random_range(78..96u32)) / 100.0
                };
                let findings = match (blocking, i) {
                    (true, _) => vec![Finding {
                        title: "Tokens are logged in plain text",
                        severity: "high",
                        blocking: true,
                    }],
                    (false, 0) => vec![Finding {
                        title: "Consider an outbox table for the webhook",
                        severity: "info",
                        blocking: false,
                    }],
                    _ => Vec::new(),
                };
                Lens {
                    lens,
                    score,
                    findings,
                }
            })
            .collect()
    }

    pub(super) fn children(&mut self, n: usize) -> Vec<Child> {
        (0..n)
            .map(|i| Child {
                key: format!("C{}", i + 1),
                number: None,
                title: SUBTASKS[i % SUBTASKS.len()].to_owned(),
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("C{i}")]
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
                AIFACTORY_PROJECTS[0],
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

    /// One step of processing; the epic and the review appear when it is
    /// `processed`, and the driver approves a session that waits for sign-off.
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
        if plan.status != PLAN_STEPS[plan.step] {
            return;
        }
        let Some(&next) = PLAN_STEPS.get(plan.step + 1) else {
            return;
        };
        plan.step += 1;
        plan.status = next;
        plan.updated_at = now_iso();
        plan.meter.charge("planner", None, tokens, 500);
        if next == "processed" {
            plan.children = children;
            plan.lenses = lenses;
            let event = self.pf_event(session);
            self.send(event);
            self.after(500, Step::PlanAutoApprove(session.to_owned()));
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

    /// `POST /api/plan/sessions/{id}/approve`: records a person's sign-off once the
    /// session is processed (400 before) and its gates pass (409 while they fail).
    /// It creates no issues: that is the emit's work.
    pub(crate) fn approve_plan(
        &mut self,
        session: &str,
        approver: &str,
        feedback: Option<String>,
    ) -> Result<Value, Refusal> {
        let plan = self
            .plans
            .get_mut(session)
            .ok_or_else(|| Refusal::NotFound(format!("unknown session '{session}'")))?;
        if !plan.processed() {
            return Err(Refusal::Invalid(
                "process the plan before approving".to_owned(),
            ));
        }
        if plan.status == "emitted" {
            return Err(Refusal::Conflict(format!(
                "session '{session}' is already emitted"
            )));
        }
        if !plan.gates_passed() {
            return Err(Refusal::Conflict(format!(
                "review gates have not passed: every lens must score at least {:.2} with no blocking finding; failing: {}",
                plan.threshold,
                plan.gate_failures()
            )));
        }
        plan.approval = Some(Approval {
            decision: "approve",
            approver: approver.to_owned(),
            feedback,
            at: now_utc_offset(),
        });
        plan.status = "approved";
        plan.updated_at = now_iso();
        Ok(plan.detail())
    }

    /// `POST /api/plan/sessions/{id}/emit {repo, dry_run}`: a dry run plans the
    /// issues and creates none; a live emit of an approved session creates the epic
    /// and its children, and the work goes on to code.
    pub(crate) fn emit_plan(
        &mut self,
        session: &str,
        repo: &str,
        dry_run: bool,
    ) -> Result<Value, Refusal> {
        let plan = self
            .plans
            .get_mut(session)
            .ok_or_else(|| Refusal::NotFound(format!("unknown session '{session}'")))?;
        if !plan.processed() {
            return Err(Refusal::Invalid(
                "process the plan before emitting".to_owned(),
            ));
        }
        if plan.status == "emitted" {
            // Idempotent: what the first live emit created is all there is.
            return Ok(plan.detail());
        }
        if dry_run {
            plan.emit_dry_run = Some(true);
            return Ok(plan.detail());
        }
        if plan.status != "approved" {
            return Err(Refusal::Invalid(format!(
                "session '{session}' is {}: a live emit needs an approved plan",
                plan.status
            )));
        }
        let n = plan.children.len() as u64;
        let epic = self.next_issue;
        self.next_issue += n + 1 + self.rng.random_range(0..3);
        let Some(plan) = self.plans.get_mut(session) else {
            return Err(Refusal::NotFound(session.to_owned()));
        };
        plan.repo = repo.to_owned();
        plan.github_issue = Some(epic);
        for (i, c) in plan.children.iter_mut().enumerate() {
            c.number = Some(epic + 1 + i as u64);
        }
        plan.emit_dry_run = Some(false);
        self.emitted(session);
        Ok(self
            .plans
            .get(session)
            .map(Plan::detail)
            .unwrap_or_default())
    }

    /// The contract path: an approved plan goes straight to an AIFactory task, and no
    /// issue is created.
    fn emit_contract(&mut self, session: &str) {
        let Some(plan) = self.plans.get(session).filter(|p| p.status == "approved") else {
            return;
        };
        let approver = plan.approval.as_ref().map(|a| a.approver.clone());
        let (title, repo, unit) = (plan.title.clone(), plan.repo.clone(), plan.unit);
        let provenance = json!({
            "session_id": session,
            "issue_number": null,
            "repo": repo,
            "source": "pfactory",
            "approved_by": approver,
        });
        let task = self.create_task(
            AIFACTORY_PROJECTS[0],
            &title,
            "Plan handed over by contract",
            &repo,
            provenance,
            unit,
        );
        if let Some(plan) = self.plans.get_mut(session) {
            plan.aifactory_task_id = Some(task);
        }
        self.emitted(session);
    }

    /// A session's live emit is done: it says so, and its work goes on to code.
    fn emitted(&mut self, session: &str) {
        let Some(plan) = self.plans.get_mut(session) else {
            return;
        };
        plan.status = "emitted";
        plan.updated_at = now_iso();
        let (title, repo, unit) = (plan.title.clone(), plan.repo.clone(), plan.unit);
        let event = self.pf_event(session);
        self.send(event);
        let u = match unit {
            Some(u) => u,
            None => {
                // A person emitted a standing session: it goes on to code and test.
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
    }

    /// The driver's emit of a session it approved: live, never a dry run.
    pub(super) fn plan_auto_emit(&mut self, session: &str) {
        let Some(plan) = self.plans.get(session).filter(|p| p.status == "approved") else {
            return;
        };
        let contract = plan
            .unit
            .and_then(|u| self.units.get(u))
            .is_some_and(|u| u.contract);
        if contract {
            self.emit_contract(session);
        } else {
            let repo = plan.repo.clone();
            let _ = self.emit_plan(session, &repo, false);
        }
    }

    /// `POST /api/plan/sessions/{id}/reject {approver, feedback}`: 400 before the
    /// session is processed, 409 once it ended.
    pub(crate) fn reject_plan(
        &mut self,
        session: &str,
        approver: &str,
        feedback: String,
    ) -> Result<Value, Refusal> {
        let plan = self
            .plans
            .get_mut(session)
            .ok_or_else(|| Refusal::NotFound(format!("unknown session '{session}'")))?;
        if !plan.processed() {
            return Err(Refusal::Invalid(
                "process the plan before rejecting".to_owned(),
            ));
        }
        if matches!(plan.status, "emitted" | "rejected") {
            return Err(Refusal::Conflict(format!(
                "session '{session}' is already {}",
                plan.status
            )));
        }
        plan.approval = Some(Approval {
            decision: "reject",
            approver: approver.to_owned(),
            feedback: Some(feedback),
            at: now_utc_offset(),
        });
        plan.status = "rejected";
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

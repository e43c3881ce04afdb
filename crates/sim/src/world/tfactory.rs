//! TFactory's side of the world: verification specs, their verify runs and the
//! handback to AIFactory, and the events TFactory sends.

use chrono::Utc;
use rand::Rng;
use serde_json::{Value, json};

use super::spec::{LaneRun, Outcome, Spec, VERIFY_MS, VERIFY_STEPS};
use super::task::Task;
use super::{AIFACTORY_PROJECTS, LANES, Refusal, Step, World};
use crate::config::Scenario;
use crate::envelope::{Envelope, Meter, iso, now_local_naive, now_utc_offset};

impl World {
    /// A spec with its lanes chosen and nothing run; without a task it is a
    /// spec-ingest.
    pub(super) fn new_spec(
        &mut self,
        task: Option<&Task>,
        spec_id: String,
        title: Option<&str>,
        repo: &str,
    ) -> Spec {
        let n = self.rng.random_range(2..=4);
        let lanes = LANES[..n]
            .iter()
            .enumerate()
            .map(|(i, &lane)| LaneRun {
                id: format!("{spec_id}-{}", i + 1),
                lane,
                status: "pending",
                tests_generated: 0,
                tests_executed: 0,
                started_at: None,
                completed_at: None,
            })
            .collect();
        let (now, local) = (now_utc_offset(), now_local_naive());
        Spec {
            spec_id,
            title: title.map(str::to_owned),
            repo: repo.to_owned(),
            status: "pending",
            phase: "created",
            plan_status: "approved",
            plan_written: false,
            running: false,
            kanban_override: None,
            kanban_sent: None,
            mode: task.is_none().then_some("spec_ingest"),
            aifactory_task_id: task.map(|t| t.id.clone()),
            project_id: task
                .map(|t| t.project_id.clone())
                .unwrap_or_else(|| AIFACTORY_PROJECTS[0].into()),
            issue_number: task.and_then(|t| t.issue_number),
            branch: task.map(|t| t.branch.clone()),
            pr_number: task.and_then(|t| t.pr_number),
            lanes,
            cycle: 0,
            max_cycles: 2,
            needs_human: false,
            verdict: None,
            verdicts: Vec::new(),
            failing_tests: Vec::new(),
            ended: None,
            halt_reason: None,
            meter: Meter::new(0, 5.0),
            created_at: now.clone(),
            updated_at: now,
            created_local: local.clone(),
            updated_local: local,
            unit: task.and_then(|t| t.unit),
        }
    }

    /// `task:status` on the live feed when a spec's kanban column changed: the kanban
    /// id and the board's status, never the pipeline's.
    fn tf_kanban_frame(&mut self, id: &str) {
        let Some(spec) = self.specs.get_mut(id) else {
            return;
        };
        let (status, _) = spec.kanban_status();
        if spec.kanban_sent != Some(status) {
            spec.kanban_sent = Some(status);
            let kanban_id = spec.kanban_id();
            self.tfactory_feed.status(&kanban_id, status, None);
        }
    }

    /// Stamps a change on a spec: status.json's time and the folder's.
    fn touch(spec: &mut Spec) {
        spec.updated_at = now_utc_offset();
        spec.updated_local = now_local_naive();
    }

    /// `POST /api/handback/aifactory-complete`: a build is ready to verify. Reuses
    /// the task's spec (a retest after a correction) or creates one.
    pub(crate) fn aifactory_complete(&mut self, task_id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get(task_id)
            .cloned()
            .ok_or_else(|| Refusal::NotFound(format!("aifactory task {task_id} not known")))?;
        let spec_id = match task.spec_id.clone() {
            Some(s) if self.specs.contains_key(&s) => s,
            _ => {
                let s = format!("spec-{:03}", self.next_spec);
                self.next_spec += 1;
                let spec = self.new_spec(Some(&task), s.clone(), Some(&task.title), &task.repo);
                self.specs.insert(s.clone(), spec);
                if let Some(t) = self.tasks.get_mut(task_id) {
                    t.spec_id = Some(s.clone());
                }
                if let Some(u) = task.unit.and_then(|u| self.units.get_mut(u)) {
                    u.spec = Some(s.clone());
                }
                s
            }
        };
        let Some(spec) = self.specs.get_mut(&spec_id) else {
            return Err(Refusal::NotFound(spec_id));
        };
        if !matches!(
            spec.status,
            "pending" | "triaged" | "triaged_empty" | "triager_failed"
        ) {
            return Err(Refusal::Conflict(format!(
                "spec {spec_id} is {}",
                spec.status
            )));
        }
        spec.issue_number = task.issue_number;
        spec.pr_number = task.pr_number;
        spec.status = "pending";
        spec.phase = if spec.cycle == 0 {
            "created"
        } else {
            "handback_received"
        };
        spec.kanban_override = None;
        Self::touch(spec);
        spec.ended = None;
        spec.halt_reason = None;
        spec.verdict = None;
        spec.verdicts.clear();
        spec.failing_tests.clear();
        // No meter reset: TFactory's usage is the spec's total over all its verify runs.
        for l in &mut spec.lanes {
            l.status = "pending";
            l.tests_executed = 0;
            l.started_at = None;
            l.completed_at = None;
        }
        let cycle = spec.cycle;
        self.tf_kanban_frame(&spec_id);
        self.after(
            VERIFY_MS[0],
            Step::Verify {
                spec: spec_id.clone(),
                cycle,
                idx: 0,
            },
        );
        Ok(json!({"success": true, "spec_id": spec_id, "status": "pending"}))
    }

    /// `POST /api/tasks/{id}/approve-plan` (or `reject-plan`): only while the test
    /// plan waits for it.
    pub(crate) fn approve_test_plan(&mut self, id: &str, approve: bool) -> Result<Value, Refusal> {
        let spec = self
            .specs
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound("Task not found".to_owned()))?;
        if spec.plan_status != "awaiting_approval" {
            return Err(Refusal::Conflict(format!(
                "test plan is {}, not awaiting_approval",
                spec.plan_status
            )));
        }
        Self::touch(spec);
        spec.kanban_override = None;
        if approve {
            spec.plan_status = "approved";
            spec.running = true;
            let cycle = spec.cycle;
            self.after(
                VERIFY_MS[1],
                Step::Verify {
                    spec: id.to_owned(),
                    cycle,
                    idx: 1,
                },
            );
        } else {
            spec.plan_status = "rejected";
        }
        self.tf_kanban_frame(id);
        Ok(self
            .specs
            .get(id)
            .map(Spec::kanban_detail)
            .unwrap_or_default())
    }

    /// `POST /api/tasks/{id}/recover {targetStatus}` on the kanban board: the spec
    /// reads `targetStatus` (the backlog unless told) until the pipeline moves it on.
    pub(crate) fn recover_spec(
        &mut self,
        id: &str,
        target: Option<&str>,
    ) -> Result<Value, Refusal> {
        let spec = self
            .specs
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound("Task not found".to_owned()))?;
        let target = match target {
            Some("in_progress") => "in_progress",
            Some("ai_review") => "ai_review",
            Some("human_review") => "human_review",
            Some("done") => "done",
            _ => "backlog",
        };
        spec.kanban_override = Some(target);
        Self::touch(spec);
        let kanban_id = spec.kanban_id();
        self.tf_kanban_frame(id);
        Ok(json!({
            "success": true,
            "data": {
                "task_id": kanban_id,
                "message": format!("Task recovered and reset to {target}"),
                "newStatus": target,
                "autoRestarted": false,
                "autoRestartError": null,
                "recovered": true,
            },
        }))
    }

    /// One step of a verify run: planning writes the test plan, the lanes generate
    /// and run their tests, then evaluation and triage.
    pub(super) fn verify_step(&mut self, id: &str, cycle: u32, idx: usize) {
        let generated: Vec<u64> = (0..LANES.len())
            .map(|_| self.rng.random_range(3..9))
            .collect();
        let tokens = (
            self.rng.random_range(1_000..4_000),
            self.rng.random_range(200..900),
        );
        let Some(spec) = self.specs.get_mut(id) else {
            return;
        };
        if spec.cycle != cycle {
            return;
        }
        Self::touch(spec);
        let Some(&(status, phase)) = VERIFY_STEPS.get(idx) else {
            self.verify_finish(id);
            return;
        };
        spec.status = status;
        spec.phase = phase;
        spec.running = true;
        spec.kanban_override = None;
        spec.meter.charge(
            "planner",
            None,
            tokens,
            VERIFY_MS.get(idx).copied().unwrap_or(300),
        );
        let now = now_utc_offset();
        match idx {
            1 => {
                spec.plan_written = true;
                for (l, g) in spec.lanes.iter_mut().zip(&generated) {
                    l.status = "in_progress";
                    l.tests_generated = *g;
                    l.started_at = Some(now.clone());
                }
            }
            2 => {
                for l in &mut spec.lanes {
                    l.tests_executed = l.tests_generated;
                    l.status = "completed";
                    l.completed_at = Some(now.clone());
                }
            }
            _ => {}
        }
        self.tf_kanban_frame(id);
        let ms = VERIFY_MS.get(idx + 1).copied().unwrap_or(300);
        self.after(
            ms,
            Step::Verify {
                spec: id.to_owned(),
                cycle,
                idx: idx + 1,
            },
        );
    }

    fn verify_finish(&mut self, id: &str) {
        let unit = self.specs.get(id).and_then(|s| s.unit);
        let scenario = self.scenario(unit);
        let Some(spec) = self.specs.get_mut(id) else {
            return;
        };
        let cycle = spec.cycle;
        let outcome = match scenario {
            Some((Scenario::Handback, o)) if cycle == 0 && o % 2 == 0 => Outcome::DependencyReview,
            Some((Scenario::Handback | Scenario::OutOfOrder, _)) if cycle == 0 => {
                Outcome::TestsFailed
            }
            Some((Scenario::Stuck, o)) if o % 2 == 0 && cycle >= spec.max_cycles => Outcome::Stuck,
            Some((Scenario::Stuck, o)) if o % 2 == 0 && cycle == 1 => Outcome::NoEvidence,
            Some((Scenario::Stuck, o)) if o % 2 == 0 => Outcome::TestsFailed,
            Some((Scenario::Unproven, _)) => Outcome::Unproven,
            _ => Outcome::Pass,
        };
        let failing = outcome.failing(cycle);
        let tests: Vec<(String, &str)> = spec
            .lanes
            .iter()
            .flat_map(|l| {
                (0..l.tests_executed)
                    .map(move |i| (format!("{}::{}_test_{}", l.lane, l.lane, i + 1), l.lane))
            })
            .collect();
        spec.failing_tests = tests.iter().take(failing).map(|t| t.0.clone()).collect();
        if outcome.has_verdicts() {
            spec.verdicts = tests
                .iter()
                .enumerate()
                .map(|(i, (name, lane))| {
                    let verdict = if i < failing {
                        "rejected"
                    } else if i % 7 == 6 {
                        "flagged"
                    } else {
                        "accepted"
                    };
                    json!({"test_id": name, "lane": lane, "verdict": verdict})
                })
                .collect();
            let passed = failing == 0;
            spec.verdict = Some(json!({
                "passed": passed,
                "coverage_delta": if passed { 4.2 } else { 0.8 },
                "stability": 1.0,
                "mutation_score": if passed { 0.81 } else { 0.42 },
                "lint": "pass",
                "semantic_relevance": 0.88,
            }));
        } else {
            spec.verdicts.clear();
            spec.verdict = None;
        }
        // A lane with a failing test failed.
        for l in &mut spec.lanes {
            let prefix = format!("{}::", l.lane);
            if spec.failing_tests.iter().any(|t| t.starts_with(&prefix)) {
                l.status = "failed";
            }
        }
        spec.status = outcome.status();
        spec.phase = if outcome == Outcome::Stuck {
            "evaluator_complete"
        } else {
            "triager_complete"
        };
        spec.running = false;
        spec.ended = Some(outcome);
        spec.halt_reason = outcome.halt_reason(failing, cycle, spec.max_cycles);
        spec.needs_human = outcome == Outcome::Stuck;
        self.tf_kanban_frame(id);
        let event = self.tf_event(id);
        if outcome.hands_back() {
            self.send(event);
            self.after(300, Step::Correction(id.to_owned()));
        } else {
            self.complete(unit, Some(event));
        }
    }

    /// TFactory's event for the spec's last verify: the CloudEvents envelope plus its
    /// own top-level fields; usage is the spec's total over every verify run.
    fn tf_event(&mut self, id: &str) -> Value {
        let (event_id, trace) = (self.id(), self.traceparent());
        let Some(spec) = self.specs.get(id) else {
            return Value::Null;
        };
        let Some(outcome) = spec.ended else {
            return Value::Null;
        };
        let (accepted, flagged, rejected) = spec.verdict_counts();
        let now = Utc::now();
        let env = Envelope::new(
            "tfactory",
            id,
            &spec.correlation_key(),
            outcome.status(),
            outcome.phase(),
        )
        .cloud_event(event_id, "completion", now, trace)
        .with("correlation", spec.event_correlation())
        .with("project_id", json!(spec.project_id))
        .with("spec_id", json!(spec.spec_id))
        .with("outcome", json!(outcome.outcome()))
        .with("repo", json!(spec.repo))
        .with("branch", json!(spec.branch))
        .with("pr_number", json!(spec.pr_number))
        .with("result", spec.result_counts())
        .with("usage", spec.meter.totals_json())
        .with("emitted_at", json!(iso(now)))
        .with(
            "evidence",
            json!({
                "proof_kind": "tests",
                "verdicts": spec.verdicts.len(),
                "accepted": accepted,
                "flagged": flagged,
                "rejected": rejected,
            }),
        )
        .with(
            "verification",
            outcome.verification(spec.failing_tests.len()),
        );
        match &spec.halt_reason {
            Some(h) => env.with("halt_reason", json!(h)).into_value(),
            None => env.into_value(),
        }
    }

    /// TFactory routes the failing tests back to AIFactory as a correction.
    pub(super) fn tfactory_handback(&mut self, spec_id: &str) {
        let Some(spec) = self.specs.get_mut(spec_id) else {
            return;
        };
        spec.cycle += 1;
        let Some(task) = spec.aifactory_task_id.clone() else {
            return;
        };
        let body = json!({
            "fix_request_md": format!("## Failing tests\n\n{}", spec.failing_tests.iter().map(|t| format!("- `{t}`")).collect::<Vec<_>>().join("\n")),
            "source": "tfactory",
            "confirm": true,
            "correlation_key": spec.correlation_key(),
            "tfactory_task_id": spec_id,
        });
        let _ = self.apply_correction(&task, body);
    }
}

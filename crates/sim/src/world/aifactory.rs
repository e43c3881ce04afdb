//! AIFactory's side of the world: coding tasks and their build runs, the REST actions
//! on them, and the events AIFactory sends.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::task::{Progress, Stage, Subtask, Task};
use super::{AIFACTORY_PROJECTS, Refusal, SUBTASKS, Step, World, slug};
use crate::config::Scenario;
use crate::envelope::{Envelope, Meter, PROFILES, now_iso, sha};

impl World {
    pub(super) fn unit_task_create(&mut self, u: usize) {
        let Some(unit) = self.units.get(u).cloned() else {
            return;
        };
        let Some(plan) = self.plans.values().find(|p| p.unit == Some(u)).cloned() else {
            return;
        };
        // On the contract path PFactory already handed the plan to a task.
        if let Some(id) = plan
            .aifactory_task_id
            .filter(|id| self.tasks.contains_key(id))
        {
            self.start_run(&id);
            return;
        }
        let provenance = json!({
            "session_id": plan.session_id,
            // The issue the plan came from is the one the code is for; else the epic.
            "issue_number": plan.origin_issue.or(plan.github_issue),
            "repo": plan.repo,
            "source": "pfactory",
            "approved_by": plan.approval.as_ref().map(|a| a.approver.clone()),
            "approval_timestamp": plan.approval.as_ref().map(|a| a.at.clone()),
        });
        let id = self.create_task(
            AIFACTORY_PROJECTS[0],
            &unit.title,
            "Governed issue from PFactory",
            &unit.repo,
            provenance,
            Some(u),
        );
        self.start_run(&id);
    }

    /// Creates a task in the backlog; `provenance` is the create-and-run body's block.
    pub(crate) fn create_task(
        &mut self,
        project_id: &str,
        title: &str,
        description: &str,
        repo: &str,
        provenance: Value,
        unit: Option<usize>,
    ) -> String {
        let spec_no = format!("{:03}", self.next_task);
        self.next_task += 1;
        let id = format!("{project_id}:{spec_no}");
        let issue_number = provenance["issue_number"].as_u64();
        let n = self.rng.random_range(2..=4);
        let subtasks = (0..n)
            .map(|i| Subtask {
                id: format!("subtask-{}", i + 1),
                title: SUBTASKS[i % SUBTASKS.len()].to_owned(),
                status: "pending",
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("subtask-{i}")]
                },
                started_at: None,
                completed_at: None,
            })
            .collect();
        // Tasks take the provider mixes in turn, so every billing mode shows.
        let mut profile = self.next_task as usize % PROFILES.len();
        let budget_usd = unit
            .and_then(|u| self.units.get(u))
            .map_or(10.0, |u| u.budget_usd);
        if budget_usd < 1.0 {
            // A tight budget only shows with metered workers.
            profile = 0;
        }
        let branch = match issue_number {
            Some(n) => format!("af/{n}-{}", slug(title)),
            None => format!("af/{spec_no}-{}", slug(title)),
        };
        let now = now_iso();
        let task = Task {
            id: id.clone(),
            project_id: project_id.to_owned(),
            spec_no,
            title: title.to_owned(),
            description: description.to_owned(),
            repo: provenance["repo"].as_str().unwrap_or(repo).to_owned(),
            status: "backlog",
            branch,
            issue_number,
            provenance,
            complexity: "standard".into(),
            model: "claude-sonnet-4-6".into(),
            auto_continue: true,
            progress: Progress {
                phase: "spec_creation",
                phase_progress: 0,
                overall: 0,
                current_subtask: None,
                message: "Queued".into(),
            },
            subtasks,
            run: 0,
            stages: Vec::new(),
            meter: Meter::new(profile, budget_usd),
            pr_number: None,
            stalled: false,
            awaiting_plan_review: false,
            spec_id: None,
            corrections: Vec::new(),
            injection_flagged: None,
            halt_reason: None,
            worktree_sha: None,
            created_at: now.clone(),
            updated_at: now,
            unit,
        };
        self.tasks.insert(id.clone(), task);
        id
    }

    /// Starts a new build run of a task: the usage running total restarts.
    pub(crate) fn start_run(&mut self, id: &str) {
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        task.run += 1;
        task.stalled = false;
        task.meter.reset();
        task.halt_reason = None;
        task.stages = if task.run == 1 {
            let mut s = vec![Stage::SpecCreation, Stage::Planning];
            s.extend((0..task.subtasks.len()).map(Stage::Coding));
            s.push(Stage::QaReview);
            s.push(Stage::Finish);
            s
        } else {
            let fixes = task.subtasks.len().min(2);
            let mut s: Vec<Stage> = (0..fixes).map(Stage::QaFixing).collect();
            s.push(Stage::QaReview);
            s.push(Stage::Finish);
            s
        };
        task.status = "in_progress";
        task.updated_at = now_iso();
        let run = task.run;
        let first = task.stages[0];
        self.af_status_frame(id);
        let event = self.af_event(id);
        self.send(event);
        self.after(
            first.duration_ms(),
            Step::Build {
                task: id.to_owned(),
                run,
                idx: 0,
            },
        );
    }

    pub(super) fn build_step(&mut self, id: &str, run: u32, idx: usize) {
        let scenario = self.scenario(self.tasks.get(id).and_then(|t| t.unit));
        // A correction run fixes what failed: a fraction of the first run's work.
        let share = if run == 1 { 1 } else { 4 };
        let tokens = (
            self.rng.random_range(3_000..9_000) / share,
            self.rng.random_range(400..1_500) / share,
        );
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        if task.run != run || task.stalled || !task.is_running() {
            return;
        }
        let Some(&stage) = task.stages.get(idx) else {
            return;
        };
        let unit = task.unit;
        let total = task.stages.len();
        let now = now_iso();
        task.updated_at = now.clone();

        // The pre-coder scan reads the issue text before any code is written.
        let flagged = scenario.map(|s| s.0) == Some(Scenario::Injection);
        if stage == Stage::SpecCreation {
            task.injection_flagged = Some(flagged);
        }
        if stage == Stage::SpecCreation && flagged {
            task.status = "human_review";
            task.progress.message = "Paused: prompt-injection scan flagged the issue text".into();
            self.af_status_frame(id);
            let event = self.af_event(id);
            self.complete(unit, Some(event));
            return;
        }
        // A coder that stops reporting mid-way (the second stuck unit).
        if matches!(stage, Stage::Coding(1))
            && matches!(scenario, Some((Scenario::Stuck, o)) if o % 2 == 1)
        {
            // It never completes on its own: only a `recover` with `autoRestart` starts
            // it again.
            task.stalled = true;
            return;
        }
        // A build that never ran a model (the odd failure units) uses no tokens.
        let idle = matches!(scenario, Some((Scenario::Failure, o)) if o % 2 == 1);
        if !idle {
            let role = match stage {
                Stage::SpecCreation | Stage::Planning => "planner",
                Stage::QaReview => "qa",
                _ => "coder",
            };
            let subtask = match stage {
                Stage::Coding(i) | Stage::QaFixing(i) => task.subtasks.get(i).map(|s| s.id.clone()),
                _ => None,
            };
            task.meter
                .charge(role, subtask.as_deref(), tokens, stage.duration_ms());
        }
        let phase = stage.phase();
        let pct = ((idx + 1) * 100 / total) as u32;
        let (subtask, sub_idx, message) = match stage {
            Stage::Coding(i) | Stage::QaFixing(i) => {
                let st = &mut task.subtasks[i];
                if matches!(stage, Stage::Coding(_)) {
                    st.status = "completed";
                    st.started_at.get_or_insert_with(|| now.clone());
                    st.completed_at = Some(now.clone());
                    if let Some(next) = task.subtasks.get_mut(i + 1) {
                        next.status = "in_progress";
                        next.started_at = Some(now.clone());
                    }
                }
                let st = &task.subtasks[i];
                (Some(st.id.clone()), i, format!("{}: {}", phase, st.title))
            }
            Stage::Planning => {
                if let Some(first) = task.subtasks.first_mut() {
                    first.status = "in_progress";
                    first.started_at = Some(now.clone());
                }
                (None, 0, "Implementation plan written".to_owned())
            }
            Stage::SpecCreation => (None, 0, "Spec created from the issue".to_owned()),
            Stage::QaReview => (
                None,
                0,
                "QA reviewer checking acceptance criteria".to_owned(),
            ),
            Stage::Finish => (None, 0, "Build finished".to_owned()),
        };
        task.progress = Progress {
            phase,
            phase_progress: 100,
            overall: pct,
            current_subtask: subtask.clone(),
            message: message.clone(),
        };
        let sub_total = task.subtasks.len();
        let exec = json!({"phase": phase, "phaseProgress": 100, "overallProgress": pct, "currentSubtask": subtask, "message": message});
        self.aifactory_feed.frame(
            "task:update",
            json!({"taskId": id, "executionProgress": exec}),
        );
        if let Some(s) = &subtask {
            self.aifactory_feed.frame(
                "task:subtask-update",
                json!({"taskId": id, "subtaskId": s, "status": "completed"}),
            );
        }
        self.aifactory_feed.progress(
            id,
            phase,
            &message,
            subtask.as_deref(),
            sub_idx,
            sub_total,
            pct,
        );

        match stage {
            Stage::Coding(_) | Stage::QaFixing(_) => {
                let event = self.af_heartbeat(id);
                self.send(event);
            }
            Stage::QaReview => {
                if let Some(t) = self.tasks.get_mut(id) {
                    t.status = "ai_review";
                }
                self.af_status_frame(id);
                let event = self.af_event(id);
                self.send(event);
            }
            Stage::Finish => {
                self.build_finish(id, scenario);
                return;
            }
            _ => {}
        }
        let next = self
            .tasks
            .get(id)
            .and_then(|t| t.stages.get(idx + 1).copied());
        if let Some(next) = next {
            self.after(
                next.duration_ms(),
                Step::Build {
                    task: id.to_owned(),
                    run,
                    idx: idx + 1,
                },
            );
        }
    }

    fn build_finish(&mut self, id: &str, scenario: Option<(Scenario, usize)>) {
        let sha = sha(&mut self.rng);
        let pr = self.next_pr;
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        let unit = task.unit;
        task.worktree_sha = Some(sha);
        if let Some((Scenario::Failure, occurrence)) = scenario {
            let (status, halt) = if occurrence % 2 == 0 {
                (
                    "qa_failed",
                    "no_progress: QA found the same 2 acceptance criteria failing after 3 fix attempts",
                )
            } else {
                // AIFactory downgrades a run that used no tokens itself.
                (
                    "failed",
                    "no_evidence: build emitted 0 tokens (did not run)",
                )
            };
            task.status = status;
            task.halt_reason = Some(halt.to_owned());
            task.progress.phase = "failed";
            task.progress.message = halt.to_owned();
            self.af_status_frame(id);
            self.aifactory_feed.error(id, halt);
            let (worker, terminal) = self.af_run_end(id);
            if let Some(w) = worker {
                self.send(w);
            }
            self.complete(unit, Some(terminal));
            return;
        }
        task.status = "human_review";
        if task.pr_number.is_none() {
            task.pr_number = Some(pr);
            self.next_pr += 1;
        }
        let run = task.run;
        self.af_status_frame(id);
        self.after(
            300,
            Step::BuildComplete {
                task: id.to_owned(),
                run,
            },
        );
    }

    pub(super) fn build_complete(&mut self, id: &str, run: u32) {
        let rekey_issue = self.next_issue;
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        if task.run != run {
            return;
        }
        let unit = task.unit;
        let merged = task.status == "merged";
        if task.status == "human_review" {
            task.status = "done";
            task.updated_at = now_iso();
            if task.issue_number.is_none() && unit.is_some() {
                // The PR gets linked to an issue: from now on the issue is the key.
                task.issue_number = Some(rekey_issue);
                self.next_issue += 1;
            }
        } else if !merged {
            return;
        }
        if !merged {
            self.af_status_frame(id);
            let (worker, terminal) = self.af_run_end(id);
            if let Some(w) = worker {
                self.send(w);
            }
            let scenario = self.scenario(unit).map(|s| s.0);
            if scenario == Some(Scenario::Retry) && run == 1 {
                // The acknowledgement was lost: the outbox delivers the event again.
                self.send(terminal.clone());
            }
            self.send(terminal.clone());
            if scenario == Some(Scenario::OutOfOrder) {
                // The outbox re-delivers run 1's terminal event after run 2's.
                let older = unit.and_then(|u| self.units.get_mut(u)).and_then(|u| {
                    let older = u.held.take();
                    if older.is_none() {
                        u.held = Some(terminal);
                    }
                    older
                });
                if let Some(older) = older {
                    self.send(older);
                }
            }
        }
        self.after(300, Step::Handoff(id.to_owned()));
    }

    /// The events that end a build run, in the order AIFactory posts them: the coder's
    /// worker event (none when no model ran), then the run's terminal event. Every
    /// other run the worker event is stamped a few milliseconds after the terminal.
    fn af_run_end(&mut self, id: &str) -> (Option<Value>, Value) {
        let terminal_at = Utc::now();
        let worker_at = if self.runs_ended % 2 == 1 {
            terminal_at + TimeDelta::milliseconds(4)
        } else {
            terminal_at - TimeDelta::milliseconds(1)
        };
        self.runs_ended += 1;
        let worker = self.af_worker_event(id, worker_at);
        let terminal = self.af_event_at(id, terminal_at);
        (worker, terminal)
    }

    /// The head every AIFactory event shares: CloudEvents attributes, key, repo and
    /// correlation.
    fn af_envelope(
        &mut self,
        id: &str,
        kind: &str,
        (status, phase): (&str, &str),
        at: DateTime<Utc>,
    ) -> Option<Envelope> {
        let (event_id, trace) = (self.id(), self.traceparent());
        let task = self.tasks.get(id)?;
        Some(
            Envelope::new("aifactory", id, &task.correlation_key(), status, phase)
                .cloud_event(event_id, kind, at, trace)
                .with("repo", json!(task.repo))
                .with("correlation", task.event_correlation()),
        )
    }

    /// A snapshot or terminal event of the task's current run; usage is the run's so far.
    fn af_event(&mut self, id: &str) -> Value {
        self.af_event_at(id, Utc::now())
    }

    fn af_event_at(&mut self, id: &str, at: DateTime<Utc>) -> Value {
        let status = self.tasks.get(id).map_or("", |t| t.status);
        let Some(env) = self.af_envelope(id, "completion", (status, "act"), at) else {
            return Value::Null;
        };
        let Some(task) = self.tasks.get(id) else {
            return Value::Null;
        };
        let mut env = env.with("usage", task.meter.to_json(id));
        // Absent until the scan has run: absence never reads as a pass.
        match task.injection_flagged {
            Some(true) => {
                env = env.with(
                    "injection_scan",
                    json!({
                        "verdict": "flagged",
                        "reason": "issue body embeds instructions to print repository secrets (\"ignore previous instructions…\")",
                        "scanner": "aifactory-precoder-v1",
                        "sources_scanned": ["issue_text", "repo_content"],
                    }),
                );
            }
            Some(false) => {
                env = env.with(
                    "injection_scan",
                    json!({
                        "verdict": "pass",
                        "reason": "no instructions found in untrusted content",
                        "scanner": "aifactory-precoder-v1",
                        "sources_scanned": ["issue_text", "repo_content"],
                    }),
                );
            }
            None => {}
        }
        if matches!(task.status, "done" | "failed" | "qa_failed" | "merged") {
            env = env.with(
                "evidence",
                json!({
                    "proof_kind": "tokens",
                    "total_tokens": task.meter.total_tokens(),
                    "cost_usd": task.meter.cost_usd(),
                }),
            );
        }
        if let Some(h) = &task.halt_reason {
            env = env.with("halt_reason", json!(h));
        }
        env.into_value()
    }

    /// A heartbeat while the run works, with the run's usage so far.
    fn af_heartbeat(&mut self, id: &str) -> Value {
        let status = self.tasks.get(id).map_or("", |t| t.status);
        let Some(env) = self.af_envelope(
            id,
            "worker_progress",
            (status, "worker_progress"),
            Utc::now(),
        ) else {
            return Value::Null;
        };
        let usage = self
            .tasks
            .get(id)
            .map(|t| t.meter.to_json(id))
            .unwrap_or_default();
        env.with("usage", usage).into_value()
    }

    /// One worker's report of its part of the run; it says nothing of the run's status.
    fn af_worker_event(&mut self, id: &str, at: DateTime<Utc>) -> Option<Value> {
        let block = self
            .tasks
            .get(id)?
            .meter
            .worker("coder")
            .filter(|w| w.input + w.output > 0)?
            .block(&format!("{id}-coder"));
        let env = self.af_envelope(id, "worker", ("worker_done", "worker"), at)?;
        Some(env.with("worker", block).into_value())
    }

    /// `task:status` with the task's board column (and why it waits in review).
    fn af_status_frame(&self, id: &str) {
        if let Some(task) = self.tasks.get(id) {
            let (status, reason) = task.board_status();
            self.aifactory_feed.status(id, status, reason);
        }
    }

    /// A task whose implementation plan waits for AIFactory's own approve-plan.
    pub(super) fn standing_task(&mut self, spec_no: &str, title: &str, repo: &str) {
        let id = format!("{}:{spec_no}", AIFACTORY_PROJECTS[0]);
        let now = now_iso();
        let subtasks = SUBTASKS[..3]
            .iter()
            .enumerate()
            .map(|(i, title)| Subtask {
                id: format!("subtask-{}", i + 1),
                title: (*title).to_owned(),
                status: "pending",
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("subtask-{i}")]
                },
                started_at: None,
                completed_at: None,
            })
            .collect();
        let task = Task {
            id: id.clone(),
            project_id: AIFACTORY_PROJECTS[0].to_owned(),
            spec_no: spec_no.to_owned(),
            title: title.to_owned(),
            description: "Started from the AIFactory board".into(),
            repo: repo.to_owned(),
            status: "human_review",
            branch: format!("af/{spec_no}-{}", slug(title)),
            issue_number: None,
            provenance: json!({"source": "manual", "repo": repo}),
            complexity: "standard".into(),
            model: "claude-sonnet-4-6".into(),
            auto_continue: true,
            progress: Progress {
                phase: "planning",
                phase_progress: 100,
                overall: 20,
                current_subtask: None,
                message: "Implementation plan written; waiting for approval".into(),
            },
            subtasks,
            run: 1,
            stages: Vec::new(),
            meter: Meter::new(0, 10.0),
            pr_number: None,
            stalled: false,
            awaiting_plan_review: true,
            spec_id: None,
            corrections: Vec::new(),
            injection_flagged: Some(false),
            halt_reason: None,
            worktree_sha: None,
            created_at: now.clone(),
            updated_at: now,
            unit: None,
        };
        self.tasks.insert(id, task);
    }

    /// `POST /api/tasks/{id}/approve-plan`: coding starts from the approved plan.
    pub(crate) fn approve_task_plan(&mut self, id: &str) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))?;
        if !task.awaiting_plan_review {
            return Err(Refusal::Conflict(format!(
                "Task {id} has no plan waiting for review"
            )));
        }
        task.awaiting_plan_review = false;
        task.status = "in_progress";
        task.updated_at = now_iso();
        task.stages = (0..task.subtasks.len()).map(Stage::Coding).collect();
        task.stages.push(Stage::QaReview);
        task.stages.push(Stage::Finish);
        if let Some(first) = task.subtasks.first_mut() {
            first.status = "in_progress";
            first.started_at = Some(now_iso());
        }
        let (run, first) = (task.run, task.stages[0]);
        self.af_status_frame(id);
        let event = self.af_event(id);
        self.send(event);
        self.after(
            first.duration_ms(),
            Step::Build {
                task: id.to_owned(),
                run,
                idx: 0,
            },
        );
        Ok(json!({"success": true, "data": {"task_id": id, "status": "in_progress"}}))
    }

    /// `POST /api/tasks/{id}/apply-correction` with `confirm: true`: a new build run,
    /// whatever the task is doing (a running one is restarted).
    pub(crate) fn apply_correction(&mut self, id: &str, request: Value) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))?;
        task.corrections.push(json!({
            "run": task.run + 1,
            "source": request["source"],
            "correlation_key": request["correlation_key"],
            "tfactory_task_id": request["tfactory_task_id"],
            "triage": request["triage"],
            "fix_request_md": request["fix_request_md"],
            "requested_at": now_iso(),
        }));
        task.awaiting_plan_review = false;
        self.start_run(id);
        Ok(json!({"success": true, "task_id": id, "status": "in_progress"}))
    }

    /// `POST /api/tasks/{id}/recover`: stops whatever runs and puts the task back in
    /// `target` (the backlog unless told otherwise), restarting it only when asked.
    /// It refuses nothing but an unknown task.
    pub(crate) fn recover(
        &mut self,
        id: &str,
        target: Option<&str>,
        auto_restart: bool,
    ) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))?;
        let target = match target {
            Some("in_progress") => "in_progress",
            Some("ai_review") => "ai_review",
            Some("human_review") => "human_review",
            Some("done") => "done",
            _ => "backlog",
        };
        // Dropping the stages stops the run: its pending steps find nothing to do.
        task.stages.clear();
        task.stalled = false;
        task.awaiting_plan_review = false;
        task.status = target;
        task.updated_at = now_iso();
        if auto_restart {
            self.start_run(id);
        } else {
            self.af_status_frame(id);
        }
        let new_status = self.tasks.get(id).map_or(target, |t| t.board_status().0);
        Ok(json!({
            "success": true,
            "data": {
                "task_id": id,
                "message": format!("Task recovered and reset to {target}"),
                "newStatus": new_status,
                "autoRestarted": auto_restart,
                "autoRestartError": null,
                "recovered": true,
            },
        }))
    }

    /// `POST /api/tasks/{id}/worktree/create-pr`: the open PR (opened now if need
    /// be), or `{success: false, error}` while there is no finished build to open it for.
    pub(crate) fn create_pr(&mut self, id: &str) -> Result<Value, Refusal> {
        let pr = self.next_pr;
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))?;
        if task.worktree_sha.is_none() {
            return Ok(json!({
                "success": false,
                "error": format!("No worktree with a finished build for task {id}"),
            }));
        }
        let existed = task.pr_number.is_some();
        if !existed {
            task.pr_number = Some(pr);
            self.next_pr += 1;
        }
        let n = task.pr_number.unwrap_or(pr);
        Ok(json!({
            "success": true,
            "data": {
                "prNumber": n,
                "prUrl": format!("https://github.com/{}/pull/{n}", task.repo),
                "alreadyExists": existed,
            },
        }))
    }

    /// `POST /api/tasks/{id}/worktree/merge {noCommit?}`: merges the build's worktree
    /// into the base branch locally (with `noCommit`, only stages the changes).
    pub(crate) fn merge(&mut self, id: &str, no_commit: bool) -> Result<Value, Refusal> {
        let task = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))?;
        if task.status != "human_review" || task.worktree_sha.is_none() {
            return Err(Refusal::Conflict(format!(
                "Task {id} has no finished build waiting for review"
            )));
        }
        if no_commit {
            return Ok(json!({
                "success": true,
                "data": {"merged": false, "staged": true, "message": "Changes staged in the main repository; nothing committed"},
            }));
        }
        task.status = "merged";
        task.updated_at = now_iso();
        self.af_status_frame(id);
        let event = self.af_event(id);
        self.send(event);
        Ok(json!({
            "success": true,
            "data": {"merged": true, "staged": false, "message": "Merged into the base branch"},
        }))
    }

    /// `DELETE /api/tasks/{id}`.
    pub(crate) fn delete_task(&mut self, id: &str) -> Result<(), Refusal> {
        self.tasks
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Refusal::NotFound(format!("Task {id} not found")))
    }
}

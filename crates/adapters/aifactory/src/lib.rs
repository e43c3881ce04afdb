//! CFactory's AIFactory adapter: coding tasks as Upstream snapshots, health, execution
//! graphs, live feeds and the running agents' consoles.
//!
//! An adapter in the hexagon: it implements the domain's [`Upstream`] port over
//! AIFactory's REST and WebSocket surface through `cfactory-upstream-http`, and maps
//! AIFactory's rows onto the domain's types: the real list's snake_case rows
//! (`branch_name`, `github_issue`, `review_reason`), its camelCase detail (`branchName`,
//! `githubIssueNumber`, `executionProgress`), and the published YAML's spellings.

use std::sync::Arc;

use async_trait::async_trait;
use cfactory_domain::StatusClass;
use cfactory_domain::actions::{ActionStep, StepResult};
use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::ports::{AgentConsoles, ConsoleStream, LiveSink, Upstream};
use cfactory_domain::upstream::{
    ConsoleList, HealthReport, LiveConsole, ProcessGraph, ProcessNode, TaskList, TaskSnapshot,
    UpstreamError,
};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::fields::{as_text, list, number, text, time, unwrap_object};
use cfactory_upstream_http::{
    UpstreamClient, UpstreamConfig, follow_feeds, open_console, path_segment, probe, read_task_list,
};
use serde_json::Value;

const LIST_PATH: &str = "/api/tasks";
const FEEDS: [&str; 2] = ["/ws/events", "/ws/progress"];
/// `{"rmux": bool}`: whether AIFactory serves its running agents' consoles.
const CAPABILITIES_PATH: &str = "/api/capabilities";

/// Where a row may carry the GitHub issue it works on: the list's `github_issue` (from
/// the task's provenance), the detail's `githubIssueNumber`, then older spellings.
const ISSUE_FIELDS: [&str; 12] = [
    "github_issue",
    "github_issue.number",
    "githubIssueNumber",
    "provenance.issue_number",
    "metadata.provenance.issue_number",
    "correlation.issue_number",
    "issue_number",
    "issueNumber",
    "githubIssue",
    "metadata.issue_number",
    "metadata.githubIssueNumber",
    "correlation_key",
];

/// AIFactory, the coding service, seen through its REST API and live feeds.
#[derive(Debug, Clone)]
pub struct AIFactory {
    client: UpstreamClient,
}

impl AIFactory {
    /// An adapter for the AIFactory at `config`.
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            client: UpstreamClient::new(config),
        }
    }
}

#[async_trait]
impl Upstream for AIFactory {
    async fn send_step(&self, step: &ActionStep) -> StepResult {
        self.client.send_step(Service::AIFACTORY, step).await
    }

    fn service(&self) -> Service {
        Service::AIFACTORY
    }

    #[tracing::instrument(skip(self), fields(service = "aifactory"))]
    async fn probe(&self) -> HealthReport {
        probe(&self.client, Service::AIFACTORY, &[LIST_PATH.to_owned()]).await
    }

    #[tracing::instrument(skip(self), fields(service = "aifactory"))]
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError> {
        read_task_list(
            &self.client,
            &[LIST_PATH.to_owned()],
            &["tasks", "items", "data"],
            task_snapshot,
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(service = "aifactory"))]
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError> {
        let body = self
            .client
            .get_json(&format!("{LIST_PATH}/{}", path_segment(task_id)))
            .await?;
        let task = unwrap_object(&body, &["task"]);
        Ok(ProcessGraph {
            service: Service::AIFACTORY,
            stage: StageName::CODE,
            task_id: task_id.to_owned(),
            nodes: subtask_nodes(task),
        })
    }

    async fn follow(&self, sink: Arc<dyn LiveSink>) {
        follow_feeds(&self.client, Service::AIFACTORY, &FEEDS, sink).await;
    }

    fn agent_consoles(&self) -> Option<&dyn AgentConsoles> {
        Some(self)
    }
}

/// AIFactory serves a running task's terminal (its rmux pane) as a WebSocket at
/// `/api/tasks/{id}/agent-console/ws` when `GET /api/capabilities` says `rmux: true`:
/// first a `{"type":"connected","connection_id":…}` text frame, then the pane's bytes.
#[async_trait]
impl AgentConsoles for AIFactory {
    #[tracing::instrument(skip(self), fields(service = "aifactory"))]
    async fn live_consoles(&self) -> Result<ConsoleList, UpstreamError> {
        let capabilities = match self.client.get_json(CAPABILITIES_PATH).await {
            Ok(body) => body,
            // A build without the route serves no consoles.
            Err(UpstreamError::NotFound) => return Ok(ConsoleList::default()),
            Err(e) => return Err(e),
        };
        if capabilities.get("rmux").and_then(Value::as_bool) != Some(true) {
            return Ok(ConsoleList::default());
        }
        let running = self
            .list_tasks()
            .await?
            .tasks
            .into_iter()
            .filter(|t| Service::AIFACTORY.classify(&t.status, None) == StatusClass::Running)
            .map(|t| LiveConsole {
                task_id: t.task_id,
                status: t.status,
                title: t.title,
            })
            .collect();
        Ok(ConsoleList {
            enabled: true,
            running,
        })
    }

    #[tracing::instrument(skip(self), fields(service = "aifactory"))]
    async fn open_console(&self, task_id: &str) -> Result<Box<dyn ConsoleStream>, UpstreamError> {
        let path = format!("{LIST_PATH}/{}/agent-console/ws", path_segment(task_id));
        let socket = open_console(self.client.config(), &path, is_connected_frame).await?;
        Ok(Box::new(socket))
    }
}

/// The console's handshake frame, `{"type":"connected","connection_id":…}`: AIFactory's
/// own bookkeeping, not terminal output.
fn is_connected_frame(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("connected"))
}

/// The task id `project_id:spec_id`, from an explicit id or composed from its parts.
fn task_id_of(row: &Value) -> Option<String> {
    let explicit = text(row, &["task_id", "taskId", "id"]);
    if explicit.as_deref().is_some_and(|id| id.contains(':')) {
        return explicit;
    }
    let project = text(row, &["project_id", "projectId"]);
    let spec = text(row, &["spec_id", "specId"]);
    match (project, spec) {
        (Some(p), Some(s)) => Some(format!("{p}:{s}")),
        _ => explicit,
    }
}

/// One task row as a snapshot; `None` when it has no id.
fn task_snapshot(row: &Value) -> Option<TaskSnapshot> {
    let task_id = task_id_of(row)?;
    let issue_number = number(row, &ISSUE_FIELDS);
    Some(TaskSnapshot {
        service: Service::AIFACTORY,
        task_id,
        issue_number,
        status: text(row, &["status"]).unwrap_or_else(|| "unknown".into()),
        phase: text(
            row,
            &[
                "executionProgress.phase",
                "execution_progress.phase",
                "phase",
            ],
        ),
        title: text(row, &["title", "name", "feature"]),
        // AIFactory's own project registry key first, as its events name the project.
        project: text(
            row,
            &[
                "project_id",
                "projectId",
                "project",
                "projectName",
                "project_name",
                "repo",
                "provenance.repo",
            ],
        ),
        updated_at: time(row, &["updatedAt", "updated_at", "createdAt", "created_at"]),
        correlation: Correlation {
            session_id: text(
                row,
                &[
                    "provenance.session_id",
                    "metadata.provenance.session_id",
                    "correlation.session_id",
                    "session_id",
                ],
            ),
            issue_number,
            aifactory_task_id: None,
            branch: text(
                row,
                &[
                    "branch_name",
                    "branchName",
                    "branch",
                    "worktree.branch",
                    "correlation.branch",
                ],
            ),
            pr_number: number(
                row,
                &[
                    "prNumber",
                    "pr_number",
                    "correlation.pr_number",
                    "pr.number",
                ],
            ),
            tfactory_spec_id: text(
                row,
                &[
                    "tfactory_spec_id",
                    "tfactorySpecId",
                    "correlation.tfactory_spec_id",
                ],
            ),
        },
        // Why a task waits in `human_review` (AIFactory folds `qa_failed` and
        // `completed` into it): plan_review, errors, qa_rejected, incomplete,
        // completed, plan_unreadable.
        review_reason: text(row, &["review_reason", "reviewReason"]),
    })
}

/// The task's subtasks (or, failing those, its phases' subtasks) as graph nodes.
fn subtask_nodes(task: &Value) -> Vec<ProcessNode> {
    let mut subtasks: Vec<&Value> = list(task, &["subtasks"]).iter().collect();
    if subtasks.is_empty() {
        subtasks = list(task, &["phases", "plan.phases"])
            .iter()
            .flat_map(|phase| list(phase, &["subtasks"]))
            .collect();
    }
    subtasks
        .iter()
        .enumerate()
        .map(|(i, sub)| ProcessNode {
            id: text(sub, &["id", "subtask_id", "subtaskId"]).unwrap_or_else(|| i.to_string()),
            label: text(sub, &["title", "name", "description"])
                .unwrap_or_else(|| format!("Subtask {}", i + 1)),
            status: text(sub, &["status", "state"]).unwrap_or_else(|| "pending".into()),
            started_at: time(sub, &["started_at", "startedAt"]),
            finished_at: time(
                sub,
                &["completed_at", "completedAt", "finished_at", "finishedAt"],
            ),
            deps: list(sub, &["depends_on", "dependsOn", "dependencies"])
                .iter()
                .filter_map(as_text)
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_connected_handshake_is_a_control_frame() {
        assert!(is_connected_frame(
            r#"{"type":"connected","connection_id":"3f2c"}"#
        ));
        assert!(!is_connected_frame(r#"{"type":"output"}"#));
        assert!(!is_connected_frame("connected"));
        assert!(!is_connected_frame("\u{1b}[32m$ cargo test\r\n"));
    }

    #[test]
    fn camel_case_rows_map() {
        let t = task_snapshot(&json!({
            "id": "shop:003", "status": "in_progress", "title": "Refunds",
            "executionProgress": {"phase": "coding", "phaseProgress": 30},
            "branchName": "af/142-refunds", "projectName": "shop",
            "provenance": {"issue_number": 142, "session_id": "001-refund"},
            "updatedAt": "2026-02-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(t.task_id, "shop:003");
        assert_eq!(t.phase.as_deref(), Some("coding"));
        assert_eq!(t.issue_number, Some(142));
        assert_eq!(t.correlation.branch.as_deref(), Some("af/142-refunds"));
        assert_eq!(t.correlation.session_id.as_deref(), Some("001-refund"));
        assert_eq!(t.project.as_deref(), Some("shop"));
        assert!(t.updated_at.is_some());
    }

    #[test]
    fn the_real_list_row_maps() {
        let t = task_snapshot(&json!({
            "id": "shop:003-refunds", "project_id": "shop", "spec_id": "003-refunds",
            "status": "human_review", "review_reason": "qa_rejected", "phase": "qa_review",
            "branch_name": "auto-claude/003-refunds", "github_issue": 142,
            "repo": "acme/shop", "subtasks": []
        }))
        .unwrap();
        assert_eq!(t.task_id, "shop:003-refunds");
        assert_eq!(t.status, "human_review");
        assert_eq!(t.review_reason.as_deref(), Some("qa_rejected"));
        assert_eq!(t.phase.as_deref(), Some("qa_review"));
        assert_eq!(
            t.correlation.branch.as_deref(),
            Some("auto-claude/003-refunds")
        );
        assert_eq!(t.issue_number, Some(142));
        assert_eq!(t.project.as_deref(), Some("shop"));
        assert_eq!(t.key().unwrap().as_str(), "142");
        assert_eq!(t.correlation.pr_number, None);
    }

    #[test]
    fn the_camel_case_detail_maps() {
        let t = task_snapshot(&json!({
            "id": "shop:003-refunds", "specId": "003-refunds", "projectId": "shop",
            "status": "human_review", "reviewReason": "plan_review",
            "branchName": "auto-claude/003-refunds", "githubIssueNumber": 142,
            "executionProgress": {"phase": "planning", "phaseProgress": 100,
                                  "overallProgress": 20, "currentSubtask": null,
                                  "message": "plan ready"}
        }))
        .unwrap();
        assert_eq!(t.issue_number, Some(142));
        assert_eq!(t.review_reason.as_deref(), Some("plan_review"));
        assert_eq!(t.phase.as_deref(), Some("planning"));
        assert_eq!(
            t.correlation.branch.as_deref(),
            Some("auto-claude/003-refunds")
        );
        assert_eq!(t.project.as_deref(), Some("shop"));
    }

    #[test]
    fn snake_case_rows_and_composed_ids() {
        let t = task_snapshot(&json!({
            "project_id": "proj", "spec_id": "001", "id": "001", "status": "merged",
            "correlation_key": "77", "branch": "af/77", "pr_number": 9
        }))
        .unwrap();
        assert_eq!(t.task_id, "proj:001");
        assert_eq!(t.issue_number, Some(77));
        assert_eq!(t.correlation.pr_number, Some(9));
        let u = task_snapshot(
            &json!({"task_id": "p:2", "status": "backlog", "correlation_key": "af-p:2"}),
        )
        .unwrap();
        assert_eq!(u.issue_number, None);
        assert_eq!(u.key().unwrap().as_str(), "af-p:2");
    }

    #[test]
    fn subtasks_and_phase_subtasks_become_nodes() {
        let nodes = subtask_nodes(&json!({"subtasks": [
            {"id": "s1", "title": "model", "status": "completed"},
            {"id": "s2", "description": "api", "depends_on": ["s1"]}
        ]}));
        assert_eq!(nodes[1].deps, ["s1"]);
        assert_eq!(nodes[1].label, "api");
        assert_eq!(nodes[1].status, "pending");
        let nodes = subtask_nodes(&json!({"phases": [
            {"subtasks": [{"id": "a"}]}, {"subtasks": [{"id": "b", "dependsOn": ["a"]}]}
        ]}));
        assert_eq!(
            nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(nodes[1].deps, ["a"]);
    }
}

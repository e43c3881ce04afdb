//! CFactory's TFactory adapter: verification specs as Upstream snapshots, health, execution
//! graphs and live feeds.
//!
//! An adapter in the hexagon: it implements the domain's [`Upstream`] port over TFactory's
//! REST and WebSocket surface through `cfactory-upstream-http`, and maps TFactory's spec
//! rows onto the domain's types, keeping the links back to AIFactory and the issue.

use std::sync::Arc;

use async_trait::async_trait;
use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{
    HealthReport, ProcessGraph, ProcessNode, TaskList, TaskSnapshot, UpstreamError,
};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::fields::{as_text, list, number, text, time, unwrap_object};
use cfactory_upstream_http::{
    UpstreamClient, UpstreamConfig, follow_feeds, path_segment, probe, read_task_list,
};
use serde_json::Value;

/// Where TFactory serves its specs: its code's path first, the published YAML's after.
const LIST_PATHS: [&str; 2] = ["/api/tasks", "/api/specs"];
const FEEDS: [&str; 2] = ["/ws/events", "/ws/progress"];
/// Lanes in the order the graph groups them; unknown lanes come last.
const LANES: [&str; 5] = ["unit", "api", "integration", "browser", "mutation"];

/// TFactory, the verification service, seen through its REST API and live feeds.
#[derive(Debug, Clone)]
pub struct TFactory {
    client: UpstreamClient,
}

impl TFactory {
    /// An adapter for the TFactory at `config`.
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            client: UpstreamClient::new(config),
        }
    }
}

#[async_trait]
impl Upstream for TFactory {
    fn service(&self) -> Service {
        Service::Tfactory
    }

    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn probe(&self) -> HealthReport {
        probe(&self.client, Service::Tfactory, &list_paths()).await
    }

    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError> {
        read_task_list(
            &self.client,
            &list_paths(),
            &["tasks", "specs", "items", "data"],
            spec_snapshot,
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError> {
        let id = path_segment(task_id);
        let paths: Vec<String> = LIST_PATHS.iter().map(|p| format!("{p}/{id}")).collect();
        let (_, body) = self.client.get_first(&paths).await?;
        let spec = unwrap_object(&body, &["task", "spec"]);
        Ok(ProcessGraph {
            service: Service::Tfactory,
            stage: StageName::Test,
            task_id: task_id.to_owned(),
            nodes: lane_nodes(spec),
        })
    }

    async fn follow(&self, sink: Arc<dyn LiveSink>) {
        follow_feeds(&self.client, Service::Tfactory, &FEEDS, sink).await;
    }
}

fn list_paths() -> Vec<String> {
    LIST_PATHS.iter().map(|p| (*p).to_owned()).collect()
}

/// One spec row as a snapshot; `None` when it has no id. A null status falls back to the
/// row's `outcome`.
fn spec_snapshot(row: &Value) -> Option<TaskSnapshot> {
    let spec_id = text(row, &["spec_id", "specId", "id", "task_id", "taskId"])?;
    let issue_number = number(
        row,
        &[
            "issue_number",
            "issueNumber",
            "github_issue",
            "correlation.issue_number",
            "provenance.issue_number",
            "metadata.issue_number",
            "correlation_key",
        ],
    );
    Some(TaskSnapshot {
        service: Service::Tfactory,
        task_id: spec_id,
        issue_number,
        status: text(row, &["status", "outcome"]).unwrap_or_else(|| "unknown".into()),
        phase: text(row, &["phase", "executionProgress.phase"]),
        title: text(row, &["title", "name", "feature"]),
        project: text(
            row,
            &["repo", "project", "projectName", "project_id", "projectId"],
        ),
        updated_at: time(row, &["updated_at", "updatedAt", "created_at", "createdAt"]),
        correlation: Correlation {
            session_id: text(
                row,
                &[
                    "session_id",
                    "correlation.session_id",
                    "provenance.session_id",
                ],
            ),
            issue_number,
            aifactory_task_id: text(
                row,
                &[
                    "aifactory_task_id",
                    "aifactoryTaskId",
                    "source_task_id",
                    "correlation.aifactory_task_id",
                    "provenance.aifactory_task_id",
                    "metadata.aifactory_task_id",
                ],
            ),
            branch: text(row, &["branch", "branchName", "correlation.branch"]),
            pr_number: number(row, &["pr_number", "prNumber", "correlation.pr_number"]),
            tfactory_spec_id: None,
        },
        review_reason: None,
    })
}

/// One node per subtask, labelled with its lane and grouped lane by lane.
fn lane_nodes(spec: &Value) -> Vec<ProcessNode> {
    let mut subtasks: Vec<&Value> = list(spec, &["subtasks"]).iter().collect();
    if subtasks.is_empty() {
        subtasks = list(spec, &["phases", "plan.phases"])
            .iter()
            .flat_map(|phase| list(phase, &["subtasks"]))
            .collect();
    }
    let mut nodes: Vec<(usize, ProcessNode)> = subtasks
        .iter()
        .enumerate()
        .map(|(i, sub)| {
            let lane = text(sub, &["lane", "test_type", "type"]);
            let title = text(sub, &["title", "name", "description"])
                .unwrap_or_else(|| format!("Subtask {}", i + 1));
            let rank = lane
                .as_deref()
                .and_then(|l| LANES.iter().position(|k| k.eq_ignore_ascii_case(l)))
                .unwrap_or(LANES.len());
            let node = ProcessNode {
                id: text(sub, &["id", "subtask_id", "subtaskId"]).unwrap_or_else(|| i.to_string()),
                label: match lane {
                    Some(lane) => format!("{lane} · {title}"),
                    None => title,
                },
                status: text(sub, &["status", "state"]).unwrap_or_else(|| "pending".into()),
                started_at: time(sub, &["started_at", "startedAt"]),
                finished_at: time(sub, &["completed_at", "completedAt", "finished_at"]),
                deps: list(sub, &["depends_on", "dependsOn", "dependencies"])
                    .iter()
                    .filter_map(as_text)
                    .collect(),
            };
            (rank, node)
        })
        .collect();
    nodes.sort_by_key(|(rank, _)| *rank);
    nodes.into_iter().map(|(_, node)| node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_rows_keep_their_links() {
        let s = spec_snapshot(&json!({
            "spec_id": "spec-001", "status": "triaged", "correlation_key": "142",
            "aifactory_task_id": "shop:003", "branch": "af/142", "pr_number": 7,
            "repo": "o/r", "created_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(s.task_id, "spec-001");
        assert_eq!(s.issue_number, Some(142));
        assert_eq!(s.correlation.aifactory_task_id.as_deref(), Some("shop:003"));
        assert_eq!(s.correlation.pr_number, Some(7));
        assert_eq!(s.project.as_deref(), Some("o/r"));

        let t =
            spec_snapshot(&json!({"id": "spec-2", "status": null, "outcome": "failure"})).unwrap();
        assert_eq!(t.status, "failure");
        assert_eq!(t.key().unwrap().as_str(), "tf-spec-2");
    }

    #[test]
    fn subtasks_are_grouped_by_lane() {
        let nodes = lane_nodes(&json!({"subtasks": [
            {"id": "m1", "lane": "mutation", "title": "kill mutants"},
            {"id": "u1", "lane": "unit", "title": "parser", "status": "passed"},
            {"id": "x", "title": "untagged"},
            {"id": "u2", "lane": "unit", "title": "lexer", "depends_on": ["u1"]}
        ]}));
        let ids: Vec<_> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2", "m1", "x"]);
        assert_eq!(nodes[0].label, "unit · parser");
        assert_eq!(nodes[1].deps, ["u1"]);
        assert_eq!(nodes[3].label, "untagged");
    }
}

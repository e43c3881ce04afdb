//! CFactory's PFactory adapter: plan sessions as Upstream snapshots, health and execution
//! graphs.
//!
//! An adapter in the hexagon: it implements the domain's [`Upstream`] port over PFactory's
//! REST surface through `cfactory-upstream-http`, and maps PFactory's rows onto the
//! domain's types. PFactory has no live feed the cockpit follows.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{
    HealthReport, ProcessGraph, ProcessNode, TaskList, TaskSnapshot, UpstreamError,
};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::fields::{as_number, list, number, text, time, unwrap_object};
use cfactory_upstream_http::{UpstreamClient, UpstreamConfig, path_segment, probe, read_task_list};
use serde_json::Value;

/// Where PFactory serves its sessions: its code's path first, the published YAML's after.
const LIST_PATHS: [&str; 2] = ["/api/plan/sessions", "/api/plans"];

/// PFactory, the planning service, seen through its REST API.
#[derive(Debug, Clone)]
pub struct PFactory {
    client: UpstreamClient,
}

impl PFactory {
    /// An adapter for the PFactory at `config`.
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            client: UpstreamClient::new(config),
        }
    }
}

#[async_trait]
impl Upstream for PFactory {
    fn service(&self) -> Service {
        Service::Pfactory
    }

    #[tracing::instrument(skip(self), fields(service = "pfactory"))]
    async fn probe(&self) -> HealthReport {
        probe(&self.client, Service::Pfactory, &list_paths()).await
    }

    #[tracing::instrument(skip(self), fields(service = "pfactory"))]
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError> {
        read_task_list(
            &self.client,
            &list_paths(),
            &["sessions", "plans", "items", "data"],
            session_snapshot,
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(service = "pfactory"))]
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError> {
        let id = path_segment(task_id);
        let paths: Vec<String> = LIST_PATHS.iter().map(|p| format!("{p}/{id}")).collect();
        let (_, body) = self.client.get_first(&paths).await?;
        let session = unwrap_object(&body, &["session", "plan"]);
        Ok(ProcessGraph {
            service: Service::Pfactory,
            stage: StageName::Plan,
            task_id: task_id.to_owned(),
            nodes: session_nodes(session),
        })
    }

    async fn follow(&self, _sink: Arc<dyn LiveSink>) {}
}

fn list_paths() -> Vec<String> {
    LIST_PATHS.iter().map(|p| (*p).to_owned()).collect()
}

/// One session row as a snapshot; `None` when it has no id.
fn session_snapshot(row: &Value) -> Option<TaskSnapshot> {
    let session_id = text(row, &["session_id", "sessionId", "id"])?;
    let issue_number = number(
        row,
        &[
            "github_issue",
            "github_issue.number",
            "issue_number",
            "epic_issue",
            "emit_result.epic_issue",
            "correlation_key",
        ],
    );
    Some(TaskSnapshot {
        service: Service::Pfactory,
        task_id: session_id.clone(),
        issue_number,
        status: text(row, &["board_state", "status", "state"]).unwrap_or_else(|| "unknown".into()),
        phase: text(row, &["phase"]),
        title: text(row, &["title", "name"]),
        project: text(row, &["repo", "repository", "project"]),
        updated_at: time(row, &["updated_at", "updatedAt", "created_at", "createdAt"]),
        correlation: Correlation {
            session_id: Some(session_id),
            issue_number,
            ..Correlation::default()
        },
        review_reason: None,
    })
}

/// The epic's children (or, in the published shape, the plan's tasks) as graph nodes.
/// A child's id is its issue number once emitted, else its position; `depends_on` may name
/// either, or the child's own id or title.
fn session_nodes(session: &Value) -> Vec<ProcessNode> {
    let children = list(session, &["epic.children", "children"]);
    let fallback_status = text(session, &["board_state", "status"]);
    if children.is_empty() {
        return list(session, &["tasks"])
            .iter()
            .enumerate()
            .map(|(i, task)| ProcessNode {
                id: text(task, &["id"]).unwrap_or_else(|| i.to_string()),
                label: text(task, &["title", "name"]).unwrap_or_else(|| format!("Task {}", i + 1)),
                status: text(task, &["status"])
                    .or_else(|| fallback_status.clone())
                    .unwrap_or_else(|| "unknown".into()),
                started_at: None,
                finished_at: None,
                deps: deps_of(task).iter().map(ref_text).collect(),
            })
            .collect();
    }
    let emitted = list(session, &["emit_result.child_numbers"]);
    let ids: Vec<String> = children
        .iter()
        .enumerate()
        .map(|(i, child)| {
            number(child, &["number", "issue_number", "github_issue"])
                .or_else(|| emitted.get(i).and_then(as_number))
                .map_or_else(|| i.to_string(), |n| n.to_string())
        })
        .collect();
    // Every way a dependency may name a child, resolved to that child's node id.
    let mut names: HashMap<String, &str> = HashMap::new();
    for (i, child) in children.iter().enumerate() {
        let id = ids[i].as_str();
        for alias in [
            Some(i.to_string()),
            text(child, &["id"]),
            text(child, &["title"]),
            Some(id.to_owned()),
        ]
        .into_iter()
        .flatten()
        {
            names.entry(alias).or_insert(id);
        }
    }
    children
        .iter()
        .enumerate()
        .map(|(i, child)| ProcessNode {
            id: ids[i].clone(),
            label: text(child, &["title", "name", "summary"])
                .unwrap_or_else(|| format!("Child {}", i + 1)),
            status: text(child, &["status", "state"])
                .or_else(|| fallback_status.clone())
                .unwrap_or_else(|| "unknown".into()),
            started_at: time(child, &["started_at", "created_at"]),
            finished_at: time(child, &["finished_at", "closed_at"]),
            deps: deps_of(child)
                .iter()
                .map(|dep| {
                    let name = ref_text(dep);
                    names.get(&name).map_or(name, |id| (*id).to_owned())
                })
                .collect(),
        })
        .collect()
}

fn deps_of(node: &Value) -> &[Value] {
    list(node, &["depends_on", "dependsOn", "dependencies"])
}

fn ref_text(dep: &Value) -> String {
    match dep {
        Value::String(s) => s.trim().trim_start_matches('#').to_owned(),
        Value::Object(_) => text(dep, &["number", "id", "title"]).unwrap_or_default(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_rows_map_with_aliases() {
        let a = session_snapshot(&json!({
            "session_id": "001-refund", "board_state": "emitted", "github_issue": 142,
            "repo": "o/r", "title": "Refunds", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(a.task_id, "001-refund");
        assert_eq!(a.status, "emitted");
        assert_eq!(a.issue_number, Some(142));
        assert_eq!(a.project.as_deref(), Some("o/r"));
        assert_eq!(a.correlation.session_id.as_deref(), Some("001-refund"));
        assert!(a.updated_at.is_some());

        let b =
            session_snapshot(&json!({"id": "002", "status": "draft", "correlation_key": "pf-002"}))
                .unwrap();
        assert_eq!((b.task_id.as_str(), b.status.as_str()), ("002", "draft"));
        assert_eq!(b.issue_number, None);
        assert_eq!(b.key().unwrap().as_str(), "pf-002");

        assert!(session_snapshot(&json!({"title": "no id"})).is_none());
    }

    #[test]
    fn children_become_nodes_with_resolved_deps() {
        let nodes = session_nodes(&json!({
            "board_state": "emitted",
            "epic": {"children": [
                {"title": "schema", "depends_on": []},
                {"title": "api", "depends_on": [0]},
                {"number": 150, "title": "ui", "depends_on": ["api", 0]}
            ]},
            "emit_result": {"child_numbers": [148, 149]}
        }));
        let ids: Vec<_> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["148", "149", "150"]);
        assert_eq!(nodes[1].deps, ["148"]);
        assert_eq!(nodes[2].deps, ["149", "148"]);
        assert_eq!(nodes[2].label, "ui");
        assert_eq!(nodes[0].status, "emitted");
    }

    #[test]
    fn unemitted_children_are_numbered_by_position() {
        let nodes = session_nodes(&json!({
            "epic": {"children": [{"title": "a"}, {"title": "b", "depends_on": ["0"]}]}
        }));
        assert_eq!(nodes[0].id, "0");
        assert_eq!(nodes[1].deps, ["0"]);
    }
}

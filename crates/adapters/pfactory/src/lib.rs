//! CFactory's PFactory adapter: plan sessions as Upstream snapshots, health and execution
//! graphs.
//!
//! An adapter in the hexagon: it implements the domain's [`Upstream`] port over PFactory's
//! REST surface through `cfactory-upstream-http`, and maps PFactory's rows onto the
//! domain's types: the real server's shapes first (`status` the lifecycle, `board_state`
//! only a board column, children keyed `C1`…), the published contract's spellings after.
//! PFactory has no live feed the cockpit follows.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cfactory_domain::actions::{ActionStep, StepResult};
use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::ids::CorrelationKey;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{
    HealthReport, ProcessGraph, ProcessNode, TaskList, TaskSnapshot, UpstreamError,
};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::fields::{as_number, list, number, pick, text, time, unwrap_object};
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
    async fn send_step(&self, step: &ActionStep) -> StepResult {
        self.client.send_step(Service::PFACTORY, step).await
    }

    fn service(&self) -> Service {
        Service::PFACTORY
    }

    #[tracing::instrument(skip(self), fields(service = "pfactory"))]
    async fn probe(&self) -> HealthReport {
        probe(&self.client, Service::PFACTORY, &list_paths()).await
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
        let session = session_of(&body);
        Ok(ProcessGraph {
            service: Service::PFACTORY,
            stage: StageName::PLAN,
            task_id: task_id.to_owned(),
            nodes: session_nodes(session),
        })
    }

    async fn follow(&self, _sink: Arc<dyn LiveSink>) {}
}

fn list_paths() -> Vec<String> {
    LIST_PATHS.iter().map(|p| (*p).to_owned()).collect()
}

/// The session in a detail body. The real detail is the session itself, whose `plan`
/// field is the ingested plan, not a wrapper: only a body without a session id of its
/// own is unwrapped.
fn session_of(body: &Value) -> &Value {
    if text(body, &["session_id", "sessionId", "id"]).is_some() {
        body
    } else {
        unwrap_object(body, &["session", "plan"])
    }
}

/// Lifecycle statuses that wait for a person's sign-off: PFactory's `processed` (gates
/// evaluated) and the published contract's older `awaiting_approval`.
const AWAITING_APPROVAL: [&str; 2] = ["processed", "awaiting_approval"];

/// Where a row names the epic PFactory emitted: the real list's `issue_number`, the
/// detail's `emit_result.epic_number`, the published contract's `github_issue`.
const EPIC_FIELDS: [&str; 8] = [
    "issue_number",
    "epic_number",
    "emit_result.epic_number",
    "epic_issue",
    "emit_result.epic_issue",
    "github_issue",
    "github_issue.number",
    "githubIssueNumber",
];

/// One session row as a snapshot; `None` when it has no id.
///
/// The snapshot is keyed as PFactory's completion events are: by the origin issue the
/// plan came from when there is one, else by the epic it emitted, else `pf-<session>`.
/// The epic is a link only when no origin issue names the unit.
fn session_snapshot(row: &Value) -> Option<TaskSnapshot> {
    let session_id = text(row, &["session_id", "sessionId", "id"])?;
    // `status` is the lifecycle; `board_state` is a board column, read only from older
    // rows that carry nothing else.
    let status = text(row, &["status", "state", "board_state"]).unwrap_or_else(|| "unknown".into());
    let review_reason = AWAITING_APPROVAL
        .iter()
        .any(|s| status.eq_ignore_ascii_case(s))
        .then(|| "awaiting_approval".to_owned());
    let issues = PlanIssues::of(row);
    Some(TaskSnapshot {
        service: Service::PFACTORY,
        task_id: session_id.clone(),
        issue_number: issues.origin.or(issues.epic),
        status,
        phase: text(row, &["phase"]),
        title: text(row, &["title", "name"]),
        project: text(row, &["repo", "repository", "project"]).or(issues.repo),
        updated_at: time(row, &["updated_at", "updatedAt", "created_at", "createdAt"]),
        correlation: Correlation {
            session_id: Some(session_id),
            issue_number: if issues.origin.is_some() {
                None
            } else {
                issues.epic
            },
            // Set when the plan went to AIFactory on the contract path, with no issue.
            aifactory_task_id: text(row, &["aifactory_task_id", "aifactoryTaskId"]),
            ..Correlation::default()
        },
        review_reason,
    })
}

/// The issues a session row names.
#[derive(Debug, PartialEq)]
struct PlanIssues {
    /// The issue the plan came from, the unit's identity when known.
    origin: Option<u64>,
    /// The epic PFactory emitted for it.
    epic: Option<u64>,
    /// The repository its correlation key names (`acme/shop#7150`).
    repo: Option<String>,
}

impl PlanIssues {
    /// Reads `origin_issue_number`, the epic, and `correlation_key`, which follows the
    /// origin issue (`"acme/shop#7150"` or `"7150"`) or, without one, the epic or
    /// `pf-<session>`: a key naming an issue other than the epic names the origin.
    fn of(row: &Value) -> Self {
        let epic = number(row, &EPIC_FIELDS);
        let key = text(row, &["correlation_key", "correlationKey"])
            .and_then(|k| CorrelationKey::parse(&k).ok())
            .and_then(|k| k.issue_ref());
        let (repo, key_issue) = match key {
            Some((repo, n)) => (repo, Some(n)),
            None => (None, None),
        };
        let origin = number(row, &["origin_issue_number", "originIssueNumber"])
            .or(key_issue.filter(|n| Some(*n) != epic));
        Self { origin, epic, repo }
    }
}

/// The epic's children (or, in the published shape, the plan's tasks) as graph nodes.
///
/// A child's node id is its key (`C1`, …), which its siblings' `depends_on` name; older
/// shapes without keys fall back to the child's issue number, else its position, and
/// their dependencies may name a position, an id, a title or a number. A child's issue
/// number comes from the child itself or from `emit_result.child_numbers`, a map from
/// key to number (or, in older shapes, a list in child order).
fn session_nodes(session: &Value) -> Vec<ProcessNode> {
    let children = list(session, &["epic.children", "children"]);
    let fallback_status = text(session, &["status", "state", "board_state"]);
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
    let numbers: Vec<Option<u64>> = children
        .iter()
        .enumerate()
        .map(|(i, child)| child_number(session, child, i))
        .collect();
    let ids: Vec<String> = children
        .iter()
        .zip(&numbers)
        .enumerate()
        .map(|(i, (child, n))| {
            text(child, &["key"])
                .or_else(|| n.map(|n| n.to_string()))
                .unwrap_or_else(|| i.to_string())
        })
        .collect();
    // Every way a dependency may name a child, resolved to that child's node id.
    let mut names: HashMap<String, &str> = HashMap::new();
    for (i, child) in children.iter().enumerate() {
        let id = ids[i].as_str();
        for alias in [
            Some(id.to_owned()),
            Some(i.to_string()),
            text(child, &["id"]),
            text(child, &["title"]),
            numbers[i].map(|n| n.to_string()),
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
        .map(|(i, child)| {
            let title = text(child, &["title", "name", "summary"])
                .unwrap_or_else(|| format!("Child {}", i + 1));
            ProcessNode {
                id: ids[i].clone(),
                label: match numbers[i] {
                    Some(n) => format!("#{n} {title}"),
                    None => title,
                },
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
            }
        })
        .collect()
}

/// The issue emitted for the `i`th child: its own number, else its entry in
/// `emit_result.child_numbers` (by key in a map, by position in a list).
fn child_number(session: &Value, child: &Value, i: usize) -> Option<u64> {
    number(child, &["number", "issue_number", "github_issue"]).or_else(|| {
        match pick(session, &["emit_result.child_numbers"])? {
            Value::Object(by_key) => by_key.get(&text(child, &["key"])?).and_then(as_number),
            Value::Array(in_order) => in_order.get(i).and_then(as_number),
            _ => None,
        }
    })
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
    fn older_session_rows_map_with_aliases() {
        let a = session_snapshot(&json!({
            "session_id": "001-refund", "board_state": "emitted", "github_issue": 142,
            "repo": "o/r", "title": "Refunds", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(a.task_id, "001-refund");
        assert_eq!(a.status, "emitted");
        assert_eq!(a.issue_number, Some(142));
        assert_eq!(a.correlation.issue_number, Some(142));
        assert_eq!(a.project.as_deref(), Some("o/r"));
        assert_eq!(a.correlation.session_id.as_deref(), Some("001-refund"));
        assert!(a.updated_at.is_some());

        let b =
            session_snapshot(&json!({"id": "002", "status": "draft", "correlation_key": "pf-002"}))
                .unwrap();
        assert_eq!((b.task_id.as_str(), b.status.as_str()), ("002", "draft"));
        assert_eq!(b.issue_number, None);
        assert_eq!(b.key().unwrap().as_str(), "pf-002");

        let c = session_snapshot(&json!({"id": "003", "status": "awaiting_approval"})).unwrap();
        assert_eq!(c.review_reason.as_deref(), Some("awaiting_approval"));

        let d = session_snapshot(&json!({"session_id": "004", "status": "emitted",
            "issue_number": null, "aifactory_task_id": "9d2ce435:031-hello"}))
        .unwrap();
        assert_eq!(
            d.correlation.aifactory_task_id.as_deref(),
            Some("9d2ce435:031-hello")
        );
        assert_eq!(d.key().unwrap().as_str(), "pf-004");

        assert!(session_snapshot(&json!({"title": "no id"})).is_none());
    }

    #[test]
    fn the_lifecycle_is_the_status_and_the_board_column_is_not() {
        let row = json!({"session_id": "014", "status": "processed", "board_state": "human_review",
                         "created_at": "2026-03-02T09:00:00Z"});
        let s = session_snapshot(&row).unwrap();
        assert_eq!(s.status, "processed");
        assert_eq!(s.review_reason.as_deref(), Some("awaiting_approval"));
        assert_eq!(
            s.updated_at.unwrap().to_rfc3339(),
            "2026-03-02T09:00:00+00:00"
        );
        for status in ["reviewing", "approved", "emitted", "discarded"] {
            let s = session_snapshot(&json!({"id": "1", "status": status, "board_state": "done"}))
                .unwrap();
            assert_eq!((s.status.as_str(), s.review_reason), (status, None));
        }
    }

    #[test]
    fn the_origin_issue_is_the_identity_and_the_epic_a_link_without_one() {
        let of = |row| PlanIssues::of(&row);
        assert_eq!(
            of(json!({"issue_number": 7151, "origin_issue_number": 7150,
                      "correlation_key": "acme/shop#7150"})),
            PlanIssues {
                origin: Some(7150),
                epic: Some(7151),
                repo: Some("acme/shop".into())
            }
        );
        assert_eq!(
            of(json!({"issue_number": 7151, "correlation_key": "7150"})).origin,
            Some(7150)
        );
        assert_eq!(
            of(json!({"issue_number": 7160, "correlation_key": "7160"})),
            PlanIssues {
                origin: None,
                epic: Some(7160),
                repo: None
            }
        );
        assert_eq!(
            of(json!({"issue_number": null, "origin_issue_number": null,
                      "correlation_key": "pf-9"})),
            PlanIssues {
                origin: None,
                epic: None,
                repo: None
            }
        );

        let s = session_snapshot(&json!({"session_id": "015", "status": "emitted",
            "issue_number": 7151, "origin_issue_number": 7150, "correlation_key": "acme/shop#7150"}))
        .unwrap();
        assert_eq!(s.issue_number, Some(7150));
        assert_eq!(s.correlation.issue_number, None);
        assert_eq!(s.key().unwrap().as_str(), "acme/shop#7150");
    }

    #[test]
    fn keyed_children_become_nodes_numbered_from_the_child_map() {
        let nodes = session_nodes(&json!({
            "status": "emitted", "board_state": "done",
            "epic": {"children": [
                {"key": "C1", "title": "schema", "depends_on": []},
                {"key": "C2", "title": "api", "depends_on": ["C1"]},
                {"key": "C3", "title": "ui", "depends_on": ["C2", "C1"]}
            ]},
            "emit_result": {"epic_number": 7151, "child_numbers": {"C3": 7154, "C1": 7152, "C2": 7153}}
        }));
        let ids: Vec<_> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["C1", "C2", "C3"]);
        assert_eq!(nodes[2].deps, ["C2", "C1"]);
        assert_eq!(nodes[0].label, "#7152 schema");
        assert_eq!(nodes[2].label, "#7154 ui");
        assert_eq!(nodes[1].status, "emitted");
    }

    #[test]
    fn older_children_are_numbered_by_position_in_the_list() {
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
        assert_eq!(nodes[2].label, "#150 ui");
        assert_eq!(nodes[0].status, "emitted");
    }

    #[test]
    fn the_detail_is_the_session_and_its_plan_field_no_wrapper() {
        let real = json!({"session_id": "015", "plan": {"plan_id": "015"},
                          "epic": {"children": [{"key": "C1", "title": "a"}]}});
        assert_eq!(session_nodes(session_of(&real))[0].id, "C1");
        let wrapped = json!({"session": {"id": "016", "tasks": [{"id": "t1", "title": "x"}]}});
        assert_eq!(session_nodes(session_of(&wrapped))[0].id, "t1");
    }

    #[test]
    fn unemitted_children_are_numbered_by_position() {
        let nodes = session_nodes(&json!({
            "epic": {"children": [{"title": "a"}, {"title": "b", "depends_on": ["0"]}]}
        }));
        assert_eq!(nodes[0].id, "0");
        assert_eq!(nodes[1].deps, ["0"]);
        assert_eq!(nodes[1].label, "b");
    }
}

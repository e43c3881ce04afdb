//! CFactory's TFactory adapter: verification specs as Upstream snapshots, health, execution
//! graphs and live feeds.
//!
//! An adapter in the hexagon: it implements the domain's [`Upstream`] port over TFactory's
//! REST and WebSocket surface through `cfactory-upstream-http`, as the real web server
//! serves it (not as the published contract has it). TFactory has two task lists: the
//! verification specs of its own pipeline at `/api/tfactory/tasks` (keyed by bare spec
//! id, statuses such as `evaluating`, `triaged`, `stuck`) and an older kanban board at
//! `/api/tasks` (keyed `project_id:spec`, statuses flattened to board columns). Both are
//! read; where they hold the same spec the verification row wins.

mod graph;
mod live;
mod rows;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cfactory_domain::actions::{ActionStep, StepResult};
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{
    HealthReport, ProcessGraph, ProcessNode, TaskList, TaskSnapshot, UpstreamError,
};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::{
    UpstreamClient, UpstreamConfig, follow_feeds_in, path_segment, probe_with_token_check,
    read_task_list,
};
use futures::StreamExt;
use serde_json::Value;

pub use chrono_tz::Tz;

use crate::rows::{Verdict, VerdictCache};

/// The verification specs: the list a cockpit wants.
const SPECS: &str = "/api/tfactory/tasks";
/// The older kanban board.
const BOARD: &str = "/api/tasks";
/// Answers without a token, so it tells only that the server is up.
const HEALTH: &str = "/api/health";
const FEEDS: [&str; 2] = ["/ws/events", "/ws/progress"];
/// Spec details read at once while a list is hydrated.
const DETAIL_READS: usize = 4;

/// A time-zone name that is not in the IANA database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: expected an IANA name such as UTC or Europe/Berlin")]
pub struct UnknownTimeZone(String);

/// Parses an IANA time-zone name (`UTC`, `Europe/Berlin`) for
/// [`TFactory::with_timezone`].
pub fn parse_timezone(name: &str) -> Result<Tz, UnknownTimeZone> {
    Tz::from_str(name.trim()).map_err(|_| UnknownTimeZone(name.trim().to_owned()))
}

/// TFactory, the verification service, seen through its REST API and live feeds.
#[derive(Debug, Clone)]
pub struct TFactory {
    client: UpstreamClient,
    zone: Tz,
    twins: Arc<live::Twins>,
    verdicts: Arc<Mutex<VerdictCache>>,
}

impl TFactory {
    /// An adapter for the TFactory at `config` whose server runs on UTC.
    pub fn new(config: UpstreamConfig) -> Self {
        Self::with_timezone(config, Tz::UTC)
    }

    /// An adapter for the TFactory at `config` whose server runs in `zone`: TFactory
    /// writes file times and some timestamps without an offset, in its local time.
    pub fn with_timezone(config: UpstreamConfig, zone: Tz) -> Self {
        Self {
            client: UpstreamClient::new(config),
            zone,
            twins: Arc::default(),
            verdicts: Arc::default(),
        }
    }

    /// The zone zone-less times are read in.
    pub fn timezone(&self) -> Tz {
        self.zone
    }

    /// Reads `path`'s list, each row mapped by `map`.
    async fn read_list(
        &self,
        path: &str,
        map: fn(&Value, &Tz) -> Option<TaskSnapshot>,
    ) -> Result<TaskList, UpstreamError> {
        let zone = self.zone;
        read_task_list(&self.client, &[path.to_owned()], &["tasks"], |row| {
            map(row, &zone)
        })
        .await
    }

    /// Puts each triaged spec's verdict (does it need a reviewer?) on its row, reading
    /// the details of specs that changed since the last read. A detail that fails is
    /// named in `failures`; its row stays, without a review reason.
    async fn add_verdicts(&self, tasks: &mut [TaskSnapshot], failures: &mut Vec<String>) {
        let wanted: Vec<(usize, String)> = {
            let cache = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
            tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.status == rows::TRIAGED && cache.get(t).is_none())
                .map(|(i, t)| (i, t.task_id.clone()))
                .collect()
        };
        let read: Vec<(usize, String, Result<Value, UpstreamError>)> =
            futures::stream::iter(wanted)
                .map(|(i, id)| async move {
                    let body = self
                        .client
                        .get_json(&format!("{SPECS}/{}", path_segment(&id)))
                        .await;
                    (i, id, body)
                })
                .buffer_unordered(DETAIL_READS)
                .collect()
                .await;
        let mut cache = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        for (i, id, body) in read {
            match body {
                Ok(detail) => cache.put(&tasks[i], Verdict::of_detail(&detail)),
                // Gone between the list and its detail: the next poll drops it.
                Err(UpstreamError::NotFound) => {}
                Err(error) => {
                    tracing::warn!(spec_id = %id, %error, "a spec's detail failed");
                    failures.push(format!("GET {SPECS}/{id}: {error}"));
                }
            }
        }
        let listed: HashSet<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        cache.retain_listed(&listed);
        for task in tasks.iter_mut() {
            if task.status == rows::TRIAGED
                && let Some(verdict) = cache.get(task)
            {
                verdict.apply(task);
            }
        }
    }

    /// One node per subtask of kanban task `kanban_id` (`project_id:spec`).
    async fn board_nodes(&self, kanban_id: &str) -> Result<Vec<ProcessNode>, UpstreamError> {
        let body = self
            .client
            .get_json(&format!("{BOARD}/{}", path_segment(kanban_id)))
            .await?;
        Ok(graph::subtask_nodes(&body, &self.zone))
    }

    /// The lanes of verification spec `spec_id`: from its test plan, else from its kanban
    /// twin's subtasks, else from its `lane_progress` alone.
    async fn spec_nodes(&self, spec_id: &str) -> Result<Vec<ProcessNode>, UpstreamError> {
        let id = path_segment(spec_id);
        let detail_path = format!("{SPECS}/{id}");
        let plan_path = format!("{SPECS}/{id}/test-plan.json");
        let (detail, plan) = futures::join!(
            self.client.get_json(&detail_path),
            self.client.get_json(&plan_path)
        );
        let detail = detail?;
        let progress = detail
            .get("status_json")
            .and_then(|s| s.get("lane_progress"));
        match plan {
            Ok(plan) => Ok(graph::plan_nodes(&plan, progress, &self.zone)),
            Err(UpstreamError::NotFound) => {
                if let Some(kanban_id) = self.twins.kanban_of(spec_id) {
                    let nodes = self.board_nodes(&kanban_id).await?;
                    if !nodes.is_empty() {
                        return Ok(nodes);
                    }
                }
                Ok(graph::progress_nodes(progress))
            }
            Err(error) => Err(error),
        }
    }
}

/// `path`'s rows when it answered. A 404 means this build serves no such list, which
/// counts as an empty one; any other failure is named in `failures` and leaves the
/// result incomplete, so the rows it would have held are not taken as gone.
fn answered(
    path: &str,
    list: Result<TaskList, UpstreamError>,
    failures: &mut Vec<String>,
) -> TaskList {
    match list {
        Ok(list) => list,
        Err(UpstreamError::NotFound) => {
            tracing::debug!(path, "the server has no such list");
            TaskList {
                complete: true,
                ..TaskList::default()
            }
        }
        Err(error) => {
            tracing::warn!(path, %error, "a task list failed; reporting the other");
            failures.push(format!("GET {path}: {error}"));
            TaskList::default()
        }
    }
}

#[async_trait]
impl Upstream for TFactory {
    async fn send_step(&self, step: &ActionStep) -> StepResult {
        self.client.send_step(Service::TFACTORY, step).await
    }

    fn service(&self) -> Service {
        Service::TFACTORY
    }

    /// `GET /api/health` says whether the server is up; as it answers any token, the
    /// verification list then says whether the token is good.
    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn probe(&self) -> HealthReport {
        probe_with_token_check(
            &self.client,
            Service::TFACTORY,
            &[HEALTH.to_owned()],
            &[SPECS.to_owned(), BOARD.to_owned()],
        )
        .await
    }

    /// Both lists, verification specs first. When one fails and the other answers, the
    /// other's rows come back with `complete: false` and the failed route in `failures`.
    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError> {
        let (specs, board) = futures::join!(
            self.read_list(SPECS, rows::verification_snapshot),
            self.read_list(BOARD, rows::kanban_snapshot)
        );
        if let (Err(specs), Err(board)) = (&specs, &board) {
            let error = if *specs == UpstreamError::NotFound {
                board
            } else {
                specs
            };
            return Err(error.clone());
        }
        let board_answered = !matches!(&board, Err(e) if *e != UpstreamError::NotFound);
        let mut failures = Vec::new();
        let mut specs = answered(SPECS, specs, &mut failures);
        let board = answered(BOARD, board, &mut failures);
        let complete = specs.complete && board.complete;
        self.add_verdicts(&mut specs.tasks, &mut failures).await;
        let merged = rows::merge(specs.tasks, board.tasks);
        // A board that failed says nothing about twins: keep the last ones known.
        if board_answered {
            self.twins.replace(merged.twins);
        }
        Ok(TaskList {
            tasks: merged.tasks,
            complete,
            failures,
        })
    }

    /// A `project_id:spec` id is a kanban task (its subtasks); a bare id is a
    /// verification spec (its lanes).
    #[tracing::instrument(skip(self), fields(service = "tfactory"))]
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError> {
        let nodes = if task_id.contains(':') {
            self.board_nodes(task_id).await?
        } else {
            self.spec_nodes(task_id).await?
        };
        Ok(ProcessGraph {
            service: Service::TFACTORY,
            stage: StageName::TEST,
            task_id: task_id.to_owned(),
            nodes,
        })
    }

    async fn follow(&self, sink: Arc<dyn LiveSink>) {
        let sink: Arc<dyn LiveSink> = Arc::new(live::ReportedIds::new(sink, self.twins.clone()));
        follow_feeds_in(&self.client, Service::TFACTORY, &FEEDS, sink, &self.zone).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_read_by_their_iana_names() {
        assert_eq!(parse_timezone(" Europe/Berlin "), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_timezone("UTC"), Ok(Tz::UTC));
        assert_eq!(
            parse_timezone("Mars/Olympus"),
            Err(UnknownTimeZone("Mars/Olympus".into()))
        );
    }
}

//! What the cockpit learns from the upstream services' own APIs (as opposed to their
//! completion webhooks): task snapshots for hydration, health, execution graphs and live
//! progress. The `Upstream` port in [`crate::ports`] returns these; adapters map each
//! service's wire format onto them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Correlation, Service};
use crate::ids::{CorrelationKey, Identifier};
use crate::workitem::StageName;

/// One row of an upstream's task list, in the cockpit's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The service the row came from.
    pub service: Service,
    /// The service's own id (session id, task id, spec id).
    pub task_id: String,
    /// The GitHub issue the row names, if any.
    pub issue_number: Option<u64>,
    /// The status as the service spells it.
    pub status: String,
    /// The phase, when the service reports one.
    pub phase: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Repository or project.
    pub project: Option<String>,
    /// The service's own updated time for the row, when it has one.
    pub updated_at: Option<DateTime<Utc>>,
    /// Chain links the row carries.
    pub correlation: Correlation,
    /// Why a task waits in review, as the service says it (AIFactory's `review_reason`:
    /// `plan_review`, `errors`, `qa_rejected`, `incomplete`, `completed`,
    /// `plan_unreadable`; TFactory's `human_review` outcome).
    #[serde(default)]
    pub review_reason: Option<String>,
}

impl TaskSnapshot {
    /// The key the service's own completion events would use: the issue number when the
    /// row carries one, else the synthetic `pf-`/`af-`/`tf-` key.
    pub fn key(&self) -> Option<CorrelationKey> {
        if let Some(n) = self.issue_number {
            return Some(CorrelationKey::of_issue(self.repo().as_deref(), n));
        }
        let prefix = self.service.synthetic_prefix()?;
        CorrelationKey::parse(&format!("{prefix}{}", self.task_id)).ok()
    }

    /// The GitHub repository the row names (`owner/name`), if its project is one.
    pub fn repo(&self) -> Option<String> {
        self.project.as_deref().and_then(crate::ids::parse_repo)
    }

    /// Every identifier the row can be found by.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut ids = Vec::new();
        if let Some(k) = self.key() {
            ids.push(Identifier::key(&k));
        }
        ids.push(Identifier::task(self.service.as_str(), &self.task_id));
        let c = &self.correlation;
        for n in c.issue_number.into_iter().chain(self.issue_number) {
            ids.extend(crate::event::issue_identifiers(self.repo().as_deref(), n));
        }
        ids.extend(c.link_identifiers());
        ids.sort();
        ids.dedup();
        ids
    }
}

/// A service's task list as read by one poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskList {
    /// The rows.
    pub tasks: Vec<TaskSnapshot>,
    /// Whether every page was read successfully, so absence from the list means the task
    /// is gone.
    pub complete: bool,
    /// Routes that failed while others answered, each as `"GET /api/tasks: HTTP 500"`:
    /// the service is then degraded, not offline.
    pub failures: Vec<String>,
}

/// How a service answered its health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Answered.
    Online,
    /// Answered 401 or 403.
    Unauthorized,
    /// No connection.
    Offline,
    /// Anything else (5xx, garbage, timeout).
    Error,
    /// Answering, but a route it needs failed (named in the detail).
    Degraded,
    /// Not probed yet.
    Unknown,
}

/// One health probe's result. `detail` never carries the upstream's URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The service.
    pub service: Service,
    /// The verdict.
    pub status: Health,
    /// What went wrong, without URLs.
    pub detail: Option<String>,
    /// Round-trip time of the probe.
    pub latency_ms: Option<u64>,
    /// When it was probed.
    pub checked_at: DateTime<Utc>,
}

/// One node of an execution graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessNode {
    /// Node id (subtask id, lane, child issue).
    pub id: String,
    /// What it shows.
    pub label: String,
    /// Status as the upstream spells it.
    pub status: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Ids of the nodes it depends on.
    pub deps: Vec<String>,
}

/// The execution graph of one upstream task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessGraph {
    /// The service that reported it.
    pub service: Service,
    /// The stage it belongs to.
    pub stage: StageName,
    /// The task.
    pub task_id: String,
    /// Its nodes.
    pub nodes: Vec<ProcessNode>,
}

/// A live update from an upstream's WebSocket feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveUpdate {
    /// A task's status changed.
    Status {
        /// The task.
        task_id: String,
        /// Its new status.
        status: String,
        /// Why it waits in review, when the frame says (`reviewReason`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review_reason: Option<String>,
        /// When it was seen.
        at: DateTime<Utc>,
    },
    /// A task made progress.
    Progress {
        /// The task.
        task_id: String,
        /// Its phase.
        phase: Option<String>,
        /// Percent done, 0–100.
        percent: Option<f64>,
        /// A message.
        message: Option<String>,
        /// When it was seen.
        at: DateTime<Utc>,
    },
}

/// The state of one live feed, as its follower last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FeedState {
    /// Connected and receiving.
    Connected,
    /// The server refused the feed: an HTTP 401/403 on the upgrade, or a close right
    /// after the handshake with an auth close code (TFactory's 4001 for a bad token).
    Unauthorized {
        /// What the server said, without URLs or tokens.
        detail: String,
    },
    /// Disconnected for another reason; the follower retries with backoff.
    Disconnected {
        /// Why, without URLs or tokens.
        detail: String,
    },
}

/// Why a call to an upstream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// 401 or 403.
    #[error("unauthorized")]
    Unauthorized,
    /// No connection could be made.
    #[error("offline: {0}")]
    Offline(String),
    /// The call timed out.
    #[error("timed out")]
    Timeout,
    /// The service refused (409, or 200 with `success: false`).
    #[error("refused: {0}")]
    Refused(String),
    /// The task does not exist there.
    #[error("not found")]
    NotFound,
    /// Another HTTP status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body was not what the contract says.
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl UpstreamError {
    /// The health verdict this failure implies.
    pub fn health(&self) -> Health {
        match self {
            Self::Unauthorized => Health::Unauthorized,
            Self::Offline(_) => Health::Offline,
            _ => Health::Error,
        }
    }
}

/// A task whose agent console a service serves now: one of its running tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveConsole {
    /// The service's own task id.
    pub task_id: String,
    /// The task's status as the service spells it (a running one).
    pub status: String,
    /// The task's title, when the service gives one.
    pub title: Option<String>,
}

/// What a service says of its agent consoles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleList {
    /// Whether the service serves consoles at all (AIFactory's `rmux` capability).
    pub enabled: bool,
    /// Its running tasks, each with a console; empty when not `enabled`.
    pub running: Vec<LiveConsole>,
}

/// One chunk of an agent's terminal output, exactly as the service sent it: ANSI bytes in
/// a binary frame, or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleOutput {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl ConsoleOutput {
    /// The chunk's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Binary(b) => b.len(),
        }
    }

    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

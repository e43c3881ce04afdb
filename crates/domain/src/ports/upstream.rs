//! The [`Upstream`] port: one upstream service seen through its own REST and WebSocket
//! surface.
//!
//! Its room in the hexagon: an outbound port; the pfactory, aifactory and tfactory adapter
//! crates implement it.

use async_trait::async_trait;

use std::sync::Arc;

use super::{AgentConsoles, LiveSink};
use crate::actions::{ActionStep, StepResult};
use crate::event::Service;
use crate::upstream::{HealthReport, ProcessGraph, TaskList, UpstreamError};

/// One upstream service (PFactory, AIFactory, TFactory, or a fourth one), seen through its
/// own REST and WebSocket surface.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The service this adapter speaks to.
    fn service(&self) -> Service;

    /// Probes the service: online, unauthorized (401/403), offline (no connection) or
    /// error (anything else). Never fails; never puts the URL in `detail`.
    async fn probe(&self) -> HealthReport;

    /// Reads the whole task list, every page. `complete` is false when any page failed
    /// after the first; an error when none could be read.
    async fn list_tasks(&self) -> Result<TaskList, UpstreamError>;

    /// The execution graph of one task; `NotFound` when the service has no such task.
    async fn process(&self, task_id: &str) -> Result<ProcessGraph, UpstreamError>;

    /// Follows the service's live feeds, reconnecting with capped, jittered backoff, and
    /// hands every understood frame to `sink`; garbage frames are logged and skipped. Runs
    /// until the returned future is dropped. Returns at once for a service with no feed.
    async fn follow(&self, sink: Arc<dyn LiveSink>);

    /// Sends one step of a confirmed action to this service, once, with the adapter's
    /// token, timeouts, redirect and size rules; see
    /// [`StepSender::send_step`](super::StepSender::send_step) for what it reports.
    async fn send_step(&self, step: &ActionStep) -> StepResult;

    /// The service's agent consoles, when its adapter can watch them; `None` (the
    /// default) for a service that serves none.
    fn agent_consoles(&self) -> Option<&dyn AgentConsoles> {
        None
    }
}

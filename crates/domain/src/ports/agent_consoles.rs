//! The [`AgentConsoles`] port: watching a coding agent's terminal while its task runs.
//!
//! Its room in the hexagon: an outbound port, offered by the upstream adapters whose
//! service serves consoles (AIFactory, through [`Upstream::agent_consoles`]); the server
//! relays a console to a browser, read-only.
//!
//! [`Upstream::agent_consoles`]: super::Upstream::agent_consoles

use async_trait::async_trait;

use crate::upstream::{ConsoleList, ConsoleOutput, UpstreamError};

/// A service's agent consoles: which running tasks have one, and a stream of one's output.
#[async_trait]
pub trait AgentConsoles: Send + Sync {
    /// Whether the service serves consoles now and, when it does, its running tasks.
    /// A service that does not say (no capability route, or no flag) is not `enabled` and
    /// lists nothing; a service that cannot be asked fails with its [`UpstreamError`].
    async fn live_consoles(&self) -> Result<ConsoleList, UpstreamError>;

    /// Opens the console of the running task `task_id`, read-only: nothing is ever sent
    /// to it but protocol answers (pongs). `NotFound` when the service has no console
    /// for the task, `Unauthorized` when it refuses the credentials, another error when
    /// it cannot be reached. Dropping the stream closes the connection.
    async fn open_console(&self, task_id: &str) -> Result<Box<dyn ConsoleStream>, UpstreamError>;
}

/// One open console: its output, chunk by chunk, as the service sends it.
#[async_trait]
pub trait ConsoleStream: Send {
    /// The next chunk of output, unchanged (the service's own control frames left out);
    /// `Ok(None)` once the service ended the console normally; `NotFound` when it closed
    /// it as having no session for the task; another error when the connection failed.
    /// Waits as long as the agent is silent.
    async fn next(&mut self) -> Result<Option<ConsoleOutput>, UpstreamError>;
}

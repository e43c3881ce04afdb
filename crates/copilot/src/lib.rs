//! CFactory's copilot: it answers "where is #142 and why is it stuck?" by calling
//! CFactory's own functions as tools, and prepares actions that run only when a person
//! confirms them.
//!
//! Its room in the hexagon: beside the server, inside the adapters' ring. It depends on
//! the domain (its ports, insights and the action planner) and never on an adapter crate
//! or the server; the server hands it the ports ([`CopilotPorts`]) and a model.
//!
//! - [`tools`]: the tool registry (read tools and propose tools), used by the agent loop,
//!   and the MCP endpoint alike.
//! - [`model`]: the [`LanguageModel`] port and its provider-neutral messages.
//! - [`providers`]: the Anthropic Messages and OpenAI-compatible providers, and
//!   [`ModelConfig::from_env`].
//! - [`agent`]: the bounded agent loop, [`Copilot::chat`] (whole answers) and
//!   [`Copilot::turn`] (streamed, reporting [`TurnEvent`]s), and the [`Conversation`] it
//!   keeps.
//!
//! Nothing here executes an action: a proposal is stored as prepared through the domain's
//! `ActionService`, which alone executes it when a person confirms.

pub mod agent;
mod input;
pub mod model;
pub mod providers;
pub mod tools;

pub use agent::{
    ChatOutcome, Conversation, Copilot, CopilotError, Delivery, Limits, ToolCallRecord, TurnEnd,
    TurnEvent,
};
pub use model::{
    Block, ChatRequest, ChatResponse, LanguageModel, Message, ModelError, ModelEvent, ModelStream,
    ResponseBuilder, Role, StopReason, TokenUsage, events_of,
};
pub use providers::{
    AnthropicModel, ApiKey, ConfigError, ModelConfig, OpenAiModel, Provider, RetryPolicy, Sleeper,
    TokioSleeper, build_model, list_cost_usd,
};
pub use tools::{
    CopilotPorts, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSpec, UNTRUSTED_DATA_KEY,
    new_action_id, propose_tool_names, read_tool_names, untrusted,
};

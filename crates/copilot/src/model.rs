//! The language-model port: a provider-neutral chat with tool use. The agent loop speaks
//! only these types; each provider in [`crate::providers`] maps them onto its wire format.
//!
//! The shapes follow the Anthropic Messages API (content blocks `text`, `tool_use`,
//! `tool_result`), which the OpenAI-compatible provider translates to `tool_calls` and
//! `role: "tool"` messages.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::ToolSpec;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person, or tool results handed back to the model.
    User,
    /// The model.
    Assistant,
}

/// One block of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        /// The call's id, echoed by its result.
        id: String,
        /// The tool.
        name: String,
        /// The tool's input.
        input: Value,
    },
    /// A tool call's result, handed back to the model.
    ToolResult {
        /// The id of the call it answers.
        tool_use_id: String,
        /// The result, as text (JSON for CFactory's tools).
        content: String,
        /// Whether the call failed.
        #[serde(default)]
        is_error: bool,
    },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said, block by block.
    pub content: Vec<Block>,
}

impl Message {
    /// A person's text.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }

    /// The model's blocks.
    pub fn assistant(content: Vec<Block>) -> Self {
        Self {
            role: Role::Assistant,
            content,
        }
    }

    /// The text blocks joined by newlines.
    pub fn text(&self) -> String {
        text_of(&self.content)
    }
}

/// The text blocks of `blocks`, joined by newlines.
pub fn text_of(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One request to a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The system prompt.
    pub system: String,
    /// The conversation so far, oldest first; the last message is the user's.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// The most tokens the answer may use.
    pub max_tokens: u32,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer (Anthropic `end_turn`, OpenAI `stop`).
    EndTurn,
    /// It wants tool calls (Anthropic `tool_use`, OpenAI `tool_calls`).
    ToolUse,
    /// It ran out of `max_tokens` (Anthropic `max_tokens`, OpenAI `length`).
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// Anything else (a refusal, a content filter, an unknown reason).
    Other,
}

/// Tokens one call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl TokenUsage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text and tool calls, in order.
    pub content: Vec<Block>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: TokenUsage,
}

impl ChatResponse {
    /// The text blocks joined by newlines.
    pub fn text(&self) -> String {
        text_of(&self.content)
    }
}

/// Why a model call failed. Messages never carry an API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// 401 or 403: the key is missing, wrong or not allowed.
    #[error("the model provider refused the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 429, or Anthropic's 529 overload.
    #[error("the model provider is rate limiting or overloaded (HTTP {status}): {message}")]
    RateLimited {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// Another non-success status.
    #[error("the model provider answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// No answer in time.
    #[error("the model provider did not answer in time")]
    Timeout,
    /// No connection could be made, or it broke.
    #[error("the model provider could not be reached: {0}")]
    Transport(String),
    /// The answer was not what the API documents.
    #[error("the model provider's answer was malformed: {0}")]
    Malformed(String),
}

/// A chat model that can call tools.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// Which provider and model, for logs and traces (`anthropic:claude-…`).
    fn describe(&self) -> String;

    /// One completion of `request`: the model's text and tool calls, why it stopped and the
    /// tokens it used. Fails with [`ModelError`] on any transport, status or format error;
    /// never retries.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError>;
}

//! The language-model port: a provider-neutral chat with tool use. The agent loop speaks
//! only these types; each provider in [`crate::providers`] maps them onto its wire format.
//!
//! The shapes follow the Anthropic Messages API (content blocks `text`, `tool_use`,
//! `tool_result`), which the OpenAI-compatible provider translates to `tool_calls` and
//! `role: "tool"` messages.
//!
//! A model answers whole ([`LanguageModel::complete`]) or as a stream of [`ModelEvent`]s
//! ([`LanguageModel::stream`]); a [`ResponseBuilder`] folds a stream back into the
//! [`ChatResponse`] the whole answer would have been.

use std::collections::HashMap;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
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
    /// 429, 503, or Anthropic's 529 overload (after the provider's retries, if any).
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

/// One piece of a streamed answer. `index` numbers the answer's blocks (text or tool
/// call) in the order they start; pieces of one block share its index.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// More text of the text block `index`.
    TextDelta {
        /// The block.
        index: usize,
        /// The text to append.
        text: String,
    },
    /// The model starts the tool call `index`.
    ToolCallStart {
        /// The block.
        index: usize,
        /// The call's id, echoed by its result.
        id: String,
        /// The tool.
        name: String,
    },
    /// More of the tool call `index`'s input, a fragment of its JSON text.
    ToolCallArgsDelta {
        /// The block.
        index: usize,
        /// The fragment.
        json: String,
    },
    /// The tool call `index` is complete.
    ToolCallEnd {
        /// The block.
        index: usize,
    },
    /// The tokens this call has used so far (each report replaces the one before).
    Usage(TokenUsage),
    /// The model stopped, and why; always the stream's last event.
    Stop(StopReason),
}

/// A streamed answer: [`ModelEvent`]s until [`ModelEvent::Stop`], or an error that ends
/// it (a provider's error event, a broken connection, a malformed event). Dropping it
/// closes the connection to the provider.
pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// The events a whole answer would have streamed, in order.
pub fn events_of(response: ChatResponse) -> Vec<ModelEvent> {
    let mut events = Vec::new();
    for (index, block) in response.content.into_iter().enumerate() {
        match block {
            Block::Text { text } => events.push(ModelEvent::TextDelta { index, text }),
            Block::ToolUse { id, name, input } => {
                events.push(ModelEvent::ToolCallStart { index, id, name });
                events.push(ModelEvent::ToolCallArgsDelta {
                    index,
                    json: input.to_string(),
                });
                events.push(ModelEvent::ToolCallEnd { index });
            }
            Block::ToolResult { .. } => {}
        }
    }
    events.push(ModelEvent::Usage(response.usage));
    events.push(ModelEvent::Stop(response.stop_reason));
    events
}

/// A block while it streams.
#[derive(Debug)]
enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

/// Folds a [`ModelStream`]'s events into the [`ChatResponse`] they make.
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    blocks: Vec<Partial>,
    by_index: HashMap<usize, usize>,
    usage: TokenUsage,
    stop: Option<StopReason>,
}

impl ResponseBuilder {
    /// Takes one event. Fails with [`ModelError::Malformed`] on a piece of a block that
    /// never started as that kind of block, or on anything after the stop.
    pub fn push(&mut self, event: ModelEvent) -> Result<(), ModelError> {
        if self.stop.is_some() {
            return Err(ModelError::Malformed("an event after the stop".into()));
        }
        match event {
            ModelEvent::TextDelta { index, text } => {
                let at = match self.by_index.get(&index) {
                    Some(&at) => at,
                    None => self.start(index, Partial::Text(String::new())),
                };
                match &mut self.blocks[at] {
                    Partial::Text(t) => t.push_str(&text),
                    Partial::Tool { .. } => return Err(mismatch(index, "text")),
                }
            }
            ModelEvent::ToolCallStart { index, id, name } => {
                if self.by_index.contains_key(&index) {
                    return Err(ModelError::Malformed(format!(
                        "block {index} started twice"
                    )));
                }
                self.start(
                    index,
                    Partial::Tool {
                        id,
                        name,
                        json: String::new(),
                    },
                );
            }
            ModelEvent::ToolCallArgsDelta { index, json } => {
                match self.by_index.get(&index).map(|&at| &mut self.blocks[at]) {
                    Some(Partial::Tool { json: j, .. }) => j.push_str(&json),
                    _ => return Err(mismatch(index, "tool input")),
                }
            }
            ModelEvent::ToolCallEnd { index } => {
                if !matches!(
                    self.by_index.get(&index).map(|&at| &self.blocks[at]),
                    Some(Partial::Tool { .. })
                ) {
                    return Err(mismatch(index, "tool call end"));
                }
            }
            ModelEvent::Usage(usage) => self.usage = usage,
            ModelEvent::Stop(reason) => self.stop = Some(reason),
        }
        Ok(())
    }

    fn start(&mut self, index: usize, block: Partial) -> usize {
        self.blocks.push(block);
        self.by_index.insert(index, self.blocks.len() - 1);
        self.blocks.len() - 1
    }

    /// The tokens reported so far.
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// The answer, block for block as the events made it: the answer a whole call would
    /// have given for the same events. A tool input that is not JSON reaches the tool as a
    /// string (which the tool refuses, so the model sees an error it can correct); an empty
    /// one is `{}`. Fails when the stream ended before its stop.
    pub fn finish(self) -> Result<ChatResponse, ModelError> {
        let stop_reason = self.stop.ok_or_else(|| {
            ModelError::Malformed("the answer ended before the model stopped".into())
        })?;
        let content = self
            .blocks
            .into_iter()
            .map(|b| match b {
                Partial::Text(text) => Block::Text { text },
                Partial::Tool { id, name, json } => Block::ToolUse {
                    id,
                    name,
                    input: tool_input(json),
                },
            })
            .collect();
        Ok(ChatResponse {
            content,
            stop_reason,
            usage: self.usage,
        })
    }
}

fn mismatch(index: usize, what: &str) -> ModelError {
    ModelError::Malformed(format!(
        "{what} for block {index}, which is not of that kind"
    ))
}

fn tool_input(json: String) -> Value {
    if json.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(&json).unwrap_or(Value::String(json))
}

/// A chat model that can call tools.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// Which provider and model, for logs and traces (`anthropic:claude-…`).
    fn describe(&self) -> String;

    /// One completion of `request`: the model's text and tool calls, why it stopped and the
    /// tokens it used. Fails with [`ModelError`] on any transport, status or format error
    /// (after the provider's retries of 429, 503 and 529, where it has any).
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError>;

    /// One completion of `request` as it is generated. Fails before the first event when
    /// the call cannot start (the same errors as [`Self::complete`]); an error after that
    /// ends the stream. The default streams the whole answer of [`Self::complete`].
    async fn stream(&self, request: &ChatRequest) -> Result<ModelStream, ModelError> {
        let response = self.complete(request).await?;
        Ok(Box::pin(futures::stream::iter(
            events_of(response).into_iter().map(Ok),
        )))
    }
}

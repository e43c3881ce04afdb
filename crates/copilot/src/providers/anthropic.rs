//! The Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; tools as `{name, description, input_schema}`; the
//! model's calls as `tool_use` blocks and their results as `tool_result` blocks in a user
//! message; `stop_reason` `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`.
//!
//! Streamed (`"stream": true`), the answer comes as server-sent events: `message_start`
//! (the input tokens), per content block a `content_block_start` (`text` or `tool_use`),
//! `content_block_delta`s (`text_delta`, or `input_json_delta` fragments of the tool's
//! input) and a `content_block_stop`; then `message_delta` (the stop reason and the
//! output tokens so far) and `message_stop`. `ping`s may come at any time, an `error`
//! event ends the answer, and event types not listed here are skipped.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sse::SseEvent;
use super::{
    ApiKey, RetryPolicy, WireEvents, body_of, error_event, event_stream, http_client, send,
};
use crate::model::{
    Block, ChatRequest, ChatResponse, LanguageModel, ModelError, ModelEvent, ModelStream, Role,
    StopReason, TokenUsage,
};

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A Claude model behind the Anthropic Messages API (or a server speaking it).
#[derive(Debug, Clone)]
pub struct AnthropicModel {
    http: reqwest::Client,
    url: String,
    api_key: ApiKey,
    model: String,
    retries: RetryPolicy,
}

impl AnthropicModel {
    /// A client for `model` at `base_url` (e.g. `https://api.anthropic.com`), each call
    /// bounded by `timeout`; it does not retry until given a policy.
    pub fn new(base_url: &str, api_key: ApiKey, model: &str, timeout: Duration) -> Self {
        Self {
            http: http_client(timeout),
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
            model: model.to_owned(),
            retries: RetryPolicy::none(),
        }
    }

    /// Retries busy answers (429, 503, 529) by `policy`.
    pub fn with_retries(mut self, policy: RetryPolicy) -> Self {
        self.retries = policy;
        self
    }

    async fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ModelError> {
        let mut body = wire_request(&self.model, request);
        body.stream = stream;
        send(&self.retries, || {
            let http = self
                .http
                .post(&self.url)
                .header("x-api-key", self.api_key.expose())
                .header("anthropic-version", ANTHROPIC_VERSION)
                .json(&body);
            if stream {
                http.header("accept", "text/event-stream")
            } else {
                http
            }
        })
        .await
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    system: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlockOut<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlockOut<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

#[derive(Deserialize)]
struct WireResponse {
    content: Vec<WireBlockIn>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlockIn {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tools and anything newer: not for the loop.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

fn wire_request<'a>(model: &'a str, request: &'a ChatRequest) -> WireRequest<'a> {
    let messages = request
        .messages
        .iter()
        .filter_map(|m| {
            let content: Vec<WireBlockOut<'_>> = m
                .content
                .iter()
                .filter_map(|b| match b {
                    // The API refuses empty text blocks.
                    Block::Text { text } if text.trim().is_empty() => None,
                    Block::Text { text } => Some(WireBlockOut::Text { text }),
                    Block::ToolUse { id, name, input } => {
                        Some(WireBlockOut::ToolUse { id, name, input })
                    }
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => Some(WireBlockOut::ToolResult {
                        tool_use_id,
                        content,
                        is_error: *is_error,
                    }),
                })
                .collect();
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            (!content.is_empty()).then_some(WireMessage { role, content })
        })
        .collect();
    WireRequest {
        model,
        max_tokens: request.max_tokens,
        system: &request.system,
        messages,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                name: &t.name,
                description: &t.description,
                input_schema: &t.input_schema,
            })
            .collect(),
        stream: false,
    }
}

fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        _ => StopReason::Other,
    }
}

/// A whole answer's body as the loop's response.
fn parse_response(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let wire: WireResponse =
        serde_json::from_slice(bytes).map_err(|e| ModelError::Malformed(e.to_string()))?;
    let content = wire
        .content
        .into_iter()
        .filter_map(|b| match b {
            WireBlockIn::Text { text } => Some(Block::Text { text }),
            WireBlockIn::ToolUse { id, name, input } => Some(Block::ToolUse { id, name, input }),
            WireBlockIn::Other => None,
        })
        .collect();
    let usage = wire.usage.map_or_else(TokenUsage::default, |u| TokenUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
    });
    Ok(ChatResponse {
        content,
        stop_reason: stop_reason(wire.stop_reason.as_deref()),
        usage,
    })
}

/// The parts of a streamed event this client reads; the rest of each is skipped.
#[derive(Deserialize)]
struct StreamData {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    message: Option<StreamMessage>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    usage: Option<StreamUsage>,
}

#[derive(Deserialize)]
struct StreamMessage {
    #[serde(default)]
    usage: Option<StreamUsage>,
}

#[derive(Deserialize)]
struct StreamUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// Which kind each content block is: `true` for a tool call. Blocks of other kinds
/// (thinking, server tools) are not kept, and their deltas skipped.
#[derive(Debug, Default)]
pub(super) struct AnthropicStream {
    blocks: HashMap<usize, bool>,
    usage: TokenUsage,
    stop: Option<StopReason>,
}

impl AnthropicStream {
    fn usage(&mut self, usage: Option<StreamUsage>, out: &mut Vec<ModelEvent>) {
        let Some(u) = usage else { return };
        if let Some(n) = u.input_tokens {
            self.usage.input_tokens = n;
        }
        if let Some(n) = u.output_tokens {
            self.usage.output_tokens = n;
        }
        out.push(ModelEvent::Usage(self.usage));
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl WireEvents for AnthropicStream {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<ModelEvent>) -> Result<bool, ModelError> {
        let kind = event.event.as_str();
        if kind == "error" {
            return Err(error_event(&event.data));
        }
        if !matches!(
            kind,
            "message_start"
                | "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
                | "message_delta"
                | "message_stop"
        ) {
            return Ok(false);
        }
        let data: StreamData = serde_json::from_str(&event.data)
            .map_err(|e| ModelError::Malformed(format!("{kind} event: {e}")))?;
        let index = || {
            data.index
                .ok_or_else(|| ModelError::Malformed(format!("{kind} event without an index")))
        };
        match kind {
            "message_start" => self.usage(data.message.and_then(|m| m.usage), out),
            "content_block_start" => {
                let index = index()?;
                let block = data.content_block.as_ref().unwrap_or(&Value::Null);
                match str_of(block, "type") {
                    Some("text") => {
                        self.blocks.insert(index, false);
                        let text = str_of(block, "text").unwrap_or_default();
                        out.push(ModelEvent::TextDelta {
                            index,
                            text: text.to_owned(),
                        });
                    }
                    Some("tool_use") => {
                        let (Some(id), Some(name)) = (str_of(block, "id"), str_of(block, "name"))
                        else {
                            return Err(ModelError::Malformed(
                                "a tool_use block without its id or name".into(),
                            ));
                        };
                        self.blocks.insert(index, true);
                        out.push(ModelEvent::ToolCallStart {
                            index,
                            id: id.to_owned(),
                            name: name.to_owned(),
                        });
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = index()?;
                let delta = data.delta.as_ref().unwrap_or(&Value::Null);
                match (self.blocks.get(&index), str_of(delta, "type")) {
                    (Some(false), Some("text_delta")) => out.push(ModelEvent::TextDelta {
                        index,
                        text: str_of(delta, "text").unwrap_or_default().to_owned(),
                    }),
                    (Some(true), Some("input_json_delta")) => {
                        out.push(ModelEvent::ToolCallArgsDelta {
                            index,
                            json: str_of(delta, "partial_json").unwrap_or_default().to_owned(),
                        });
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = index()?;
                if self.blocks.get(&index) == Some(&true) {
                    out.push(ModelEvent::ToolCallEnd { index });
                }
            }
            "message_delta" => {
                if let Some(reason) = data.delta.as_ref().and_then(|d| str_of(d, "stop_reason")) {
                    self.stop = Some(stop_reason(Some(reason)));
                }
                self.usage(data.usage, out);
            }
            _ => {
                // message_stop
                out.push(ModelEvent::Stop(self.stop.unwrap_or(StopReason::Other)));
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn on_end(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        // A stop reason already given makes the answer whole without its message_stop.
        match self.stop {
            Some(reason) => {
                out.push(ModelEvent::Stop(reason));
                Ok(())
            }
            None => Err(ModelError::Malformed(
                "the stream ended before the answer was complete".into(),
            )),
        }
    }
}

#[async_trait]
impl LanguageModel for AnthropicModel {
    fn describe(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let response = self.post(request, false).await?;
        parse_response(&body_of(response).await?)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ModelStream, ModelError> {
        let response = self.post(request, true).await?;
        event_stream(response, AnthropicStream::default(), parse_response).await
    }
}

//! The Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; tools as `{name, description, input_schema}`; the
//! model's calls as `tool_use` blocks and their results as `tool_result` blocks in a user
//! message; `stop_reason` `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiKey, http_client, send};
use crate::model::{
    Block, ChatRequest, ChatResponse, LanguageModel, ModelError, Role, StopReason, TokenUsage,
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
}

impl AnthropicModel {
    /// A client for `model` at `base_url` (e.g. `https://api.anthropic.com`), each call
    /// bounded by `timeout`.
    pub fn new(base_url: &str, api_key: ApiKey, model: &str, timeout: Duration) -> Self {
        Self {
            http: http_client(timeout),
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
            model: model.to_owned(),
        }
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

#[async_trait]
impl LanguageModel for AnthropicModel {
    fn describe(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let body = wire_request(&self.model, request);
        let bytes = send(
            self.http
                .post(&self.url)
                .header("x-api-key", self.api_key.expose())
                .header("anthropic-version", ANTHROPIC_VERSION)
                .json(&body),
        )
        .await?;
        let wire: WireResponse =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::Malformed(e.to_string()))?;
        let content = wire
            .content
            .into_iter()
            .filter_map(|b| match b {
                WireBlockIn::Text { text } => Some(Block::Text { text }),
                WireBlockIn::ToolUse { id, name, input } => {
                    Some(Block::ToolUse { id, name, input })
                }
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
}

//! OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, LiteLLM and others):
//! `POST {base}/chat/completions` with an optional bearer key; tools as
//! `{type: "function", function: {name, description, parameters}}`; the model's calls as
//! `tool_calls` whose `arguments` is a JSON string; results as `role: "tool"` messages
//! with `tool_call_id`; `finish_reason` `stop`, `tool_calls`, `length`.
//!
//! Compatible servers bend the format: some send `arguments` as an object, or no call id,
//! or `finish_reason: "stop"` beside tool calls. All three are accepted; arguments that
//! are not JSON reach the tool as a string, which the tool refuses, so the model sees an
//! error it can correct.
//!
//! Streamed (`"stream": true` with `stream_options.include_usage`), the answer comes as
//! `data:` lines of `chat.completion.chunk`s: `choices[0].delta.content` pieces of text,
//! `delta.tool_calls` fragments keyed by `index` (the first carries the call's `id` and
//! `function.name`, later ones more of `function.arguments`), a `finish_reason`, a last
//! chunk with `usage` and no choices, then `data: [DONE]`.

use std::collections::BTreeMap;
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

/// A model behind an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    http: reqwest::Client,
    url: String,
    api_key: Option<ApiKey>,
    model: String,
    retries: RetryPolicy,
}

impl OpenAiModel {
    /// A client for `model` at `base_url` (e.g. `https://api.openai.com/v1`,
    /// `http://localhost:11434/v1`), each call bounded by `timeout`; it does not retry
    /// until given a policy.
    pub fn new(base_url: &str, api_key: Option<ApiKey>, model: &str, timeout: Duration) -> Self {
        Self {
            http: http_client(timeout),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
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
        let body = WireRequest {
            model: &self.model,
            max_tokens: request.max_tokens,
            messages: wire_messages(request),
            tools: request
                .tools
                .iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.input_schema,
                    },
                })
                .collect(),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        send(&self.retries, || {
            let mut http = self.http.post(&self.url).json(&body);
            if let Some(key) = &self.api_key {
                http = http.bearer_auth(key.expose());
            }
            if stream {
                http = http.header("accept", "text/event-stream");
            }
            http
        })
        .await
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage {
    role: &'static str,
    /// Text, or `null` for an assistant turn that only calls tools.
    content: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

#[derive(Serialize)]
struct WireCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall,
}

#[derive(Serialize)]
struct WireFunctionCall {
    name: String,
    /// The input as a JSON string.
    arguments: String,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Deserialize)]
struct WireResponse {
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireReply,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireReply {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireCallIn>>,
}

#[derive(Deserialize)]
struct WireCallIn {
    #[serde(default)]
    id: Option<String>,
    function: WireFunctionIn,
}

#[derive(Deserialize)]
struct WireFunctionIn {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Prefix of a failed tool's result: the format has no error flag.
const ERROR_PREFIX: &str = "ERROR: ";

fn wire_messages(request: &ChatRequest) -> Vec<WireMessage> {
    let mut out = Vec::new();
    if !request.system.is_empty() {
        out.push(WireMessage {
            role: "system",
            content: Value::String(request.system.clone()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    for message in &request.messages {
        match message.role {
            Role::User => {
                // Tool results first: they answer the assistant turn just before.
                for block in &message.content {
                    if let Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } = block
                    {
                        let text = if *is_error {
                            format!("{ERROR_PREFIX}{content}")
                        } else {
                            content.clone()
                        };
                        out.push(WireMessage {
                            role: "tool",
                            content: Value::String(text),
                            tool_calls: Vec::new(),
                            tool_call_id: Some(tool_use_id.clone()),
                        });
                    }
                }
                let text = message.text();
                if !text.trim().is_empty() {
                    out.push(WireMessage {
                        role: "user",
                        content: Value::String(text),
                        tool_calls: Vec::new(),
                        tool_call_id: None,
                    });
                }
            }
            Role::Assistant => {
                let text = message.text();
                let tool_calls: Vec<WireCall> = message
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => Some(WireCall {
                            id: id.clone(),
                            kind: "function",
                            function: WireFunctionCall {
                                name: name.clone(),
                                arguments: input.to_string(),
                            },
                        }),
                        _ => None,
                    })
                    .collect();
                if text.trim().is_empty() && tool_calls.is_empty() {
                    continue;
                }
                out.push(WireMessage {
                    role: "assistant",
                    content: if text.trim().is_empty() {
                        Value::Null
                    } else {
                        Value::String(text)
                    },
                    tool_calls,
                    tool_call_id: None,
                });
            }
        }
    }
    out
}

fn finish_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}

fn tool_input(arguments: Option<Value>) -> Value {
    match arguments {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Some(other) => other,
    }
}

/// A call id for a server that sent none.
fn made_up_id(i: usize) -> String {
    format!("call_{i}_{:08x}", rand::random::<u32>())
}

/// A whole answer's body as the loop's response.
fn parse_response(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let wire: WireResponse =
        serde_json::from_slice(bytes).map_err(|e| ModelError::Malformed(e.to_string()))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Malformed("no choices in the answer".into()))?;
    let mut content = Vec::new();
    if let Some(text) = choice.message.content.filter(|t| !t.trim().is_empty()) {
        content.push(Block::Text { text });
    }
    let calls = choice.message.tool_calls.unwrap_or_default();
    let has_calls = !calls.is_empty();
    for (i, call) in calls.into_iter().enumerate() {
        content.push(Block::ToolUse {
            id: call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| made_up_id(i)),
            name: call.function.name,
            input: tool_input(call.function.arguments),
        });
    }
    let mut stop_reason = finish_reason(choice.finish_reason.as_deref());
    if has_calls && stop_reason == StopReason::EndTurn {
        stop_reason = StopReason::ToolUse;
    }
    let usage = wire.usage.map_or_else(TokenUsage::default, |u| TokenUsage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
    });
    Ok(ChatResponse {
        content,
        stop_reason,
        usage,
    })
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChunkCall>>,
}

#[derive(Deserialize)]
struct ChunkCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChunkFunction>,
}

#[derive(Deserialize)]
struct ChunkFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// The text is block 0; tool call `i` is block `i + 1`.
#[derive(Debug, Default)]
pub(super) struct OpenAiStream {
    /// Tool calls started, by their `index`: whether each has ended.
    calls: BTreeMap<usize, bool>,
    finish: Option<String>,
}

impl OpenAiStream {
    fn end_calls(&mut self, out: &mut Vec<ModelEvent>) {
        for (i, ended) in &mut self.calls {
            if !*ended {
                *ended = true;
                out.push(ModelEvent::ToolCallEnd { index: i + 1 });
            }
        }
    }

    fn stop(&mut self, out: &mut Vec<ModelEvent>) {
        self.end_calls(out);
        let mut reason = finish_reason(self.finish.as_deref());
        if !self.calls.is_empty() && reason == StopReason::EndTurn {
            reason = StopReason::ToolUse;
        }
        out.push(ModelEvent::Stop(reason));
    }
}

impl WireEvents for OpenAiStream {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<ModelEvent>) -> Result<bool, ModelError> {
        if event.event == "error" {
            return Err(error_event(&event.data));
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.stop(out);
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| ModelError::Malformed(format!("a streamed chunk: {e}")))?;
        if chunk.error.is_some() {
            return Err(error_event(data));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(ModelEvent::TextDelta { index: 0, text });
                }
                for (n, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    let i = call.index.unwrap_or(n);
                    let function = call.function;
                    if let std::collections::btree_map::Entry::Vacant(call_slot) =
                        self.calls.entry(i)
                    {
                        call_slot.insert(false);
                        out.push(ModelEvent::ToolCallStart {
                            index: i + 1,
                            id: call
                                .id
                                .filter(|id| !id.is_empty())
                                .unwrap_or_else(|| made_up_id(i)),
                            name: function
                                .as_ref()
                                .and_then(|f| f.name.clone())
                                .unwrap_or_default(),
                        });
                    }
                    let fragment = match function.and_then(|f| f.arguments) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s,
                        Some(other) => other.to_string(),
                    };
                    if !fragment.is_empty() {
                        out.push(ModelEvent::ToolCallArgsDelta {
                            index: i + 1,
                            json: fragment,
                        });
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
                self.end_calls(out);
            }
        }
        if let Some(u) = chunk.usage {
            out.push(ModelEvent::Usage(TokenUsage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            }));
        }
        Ok(false)
    }

    fn on_end(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        // Some compatible servers end the body after the finish reason without [DONE].
        if self.finish.is_none() {
            return Err(ModelError::Malformed(
                "the stream ended before the answer was complete".into(),
            ));
        }
        self.stop(out);
        Ok(())
    }
}

#[async_trait]
impl LanguageModel for OpenAiModel {
    fn describe(&self) -> String {
        format!("openai:{}", self.model)
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let response = self.post(request, false).await?;
        parse_response(&body_of(response).await?)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ModelStream, ModelError> {
        let response = self.post(request, true).await?;
        event_stream(response, OpenAiStream::default(), parse_response).await
    }
}

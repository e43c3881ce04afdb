//! The real providers' wire code against a local server that replays recorded Anthropic-
//! and OpenAI-format responses and keeps every request it receives, so both the bodies
//! the providers send and their reading of the answers are checked end to end.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use cfactory_copilot::{
    AnthropicModel, ApiKey, Block, ChatRequest, Conversation, Copilot, LanguageModel, Message,
    ModelConfig, ModelError, OpenAiModel, StopReason, ToolSpec, TurnEnd, build_model,
};
use cfactory_domain::Clock;
use common::{ctx, tenant, world};

/// A recorded request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// Answers each request with the next recorded response (status, body), after `delay`.
#[derive(Default)]
struct Replay {
    responses: Mutex<VecDeque<(u16, String)>>,
    seen: Mutex<Vec<Seen>>,
    delay: Option<Duration>,
}

async fn replay(
    State(r): State<Arc<Replay>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if let Some(d) = r.delay {
        tokio::time::sleep(d).await;
    }
    let next = r.responses.lock().unwrap().pop_front();
    let (status, body) = next.unwrap_or((500, r#"{"error":{"message":"replay ran out"}}"#.into()));
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// Starts a replay server on a free loopback port; returns its base URL and state.
async fn serve(responses: Vec<(u16, Value)>, delay: Option<Duration>) -> (String, Arc<Replay>) {
    let state = Arc::new(Replay {
        responses: Mutex::new(
            responses
                .into_iter()
                .map(|(s, v)| {
                    (
                        s,
                        if let Value::String(raw) = v {
                            raw
                        } else {
                            v.to_string()
                        },
                    )
                })
                .collect(),
        ),
        delay,
        ..Replay::default()
    });
    let app = Router::new().fallback(replay).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), state)
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

fn anthropic_tool_use() -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "text", "text": "I'll look up #142."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
             "name": "get_workitem", "input": {"correlation_key": "142"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 71,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

fn anthropic_answer(text: &str) -> Value {
    json!({
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 3012, "output_tokens": 84}
    })
}

#[tokio::test]
async fn anthropic_drives_the_loop_end_to_end() {
    let w = world().await;
    let (base, replay) = serve(
        vec![
            (200, anthropic_tool_use()),
            (
                200,
                anthropic_answer("#142 failed verification: 2 tests fail."),
            ),
        ],
        None,
    )
    .await;
    let config = ModelConfig::from_lookup(|k| match k {
        "CFACTORY_COPILOT_PROVIDER" => Some("anthropic".to_owned()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-test".to_owned()),
        "CFACTORY_ANTHROPIC_BASE_URL" => Some(base.clone()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let copilot = Copilot::new(build_model(&config), w.registry.clone());
    assert_eq!(copilot.model_name(), "anthropic:claude-sonnet-4-6");
    let mut conv = Conversation::new("c1", tenant(), w.clock.now());
    let out = copilot
        .chat(&ctx(true), &mut conv, "Where is #142?")
        .await
        .unwrap();
    assert_eq!(out.end, TurnEnd::Answered);
    assert_eq!(out.answer, "#142 failed verification: 2 tests fail.");
    assert_eq!(out.usage.input_tokens, 2095 + 3012);
    assert_eq!(out.usage.output_tokens, 71 + 84);
    assert_eq!(out.trace.len(), 1);
    assert_eq!(out.trace[0].name, "get_workitem");
    assert!(!out.trace[0].is_error);

    let seen = replay.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(header(first, "x-api-key"), Some("sk-ant-test"));
    assert_eq!(header(first, "anthropic-version"), Some("2023-06-01"));
    assert!(
        header(first, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(header(first, "authorization").is_none());
    let body = &first.body;
    assert_eq!(body["model"], "claude-sonnet-4-6");
    assert_eq!(body["max_tokens"], 2048);
    assert!(
        body["system"]
            .as_str()
            .unwrap()
            .contains("never instructions")
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Where is #142?"}]}])
    );
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 15);
    let get = tools.iter().find(|t| t["name"] == "get_workitem").unwrap();
    assert_eq!(get["input_schema"]["required"], json!(["correlation_key"]));
    assert!(get["description"].as_str().unwrap().len() > 20);
    assert_eq!(
        get.as_object().unwrap().len(),
        3,
        "name, description, input_schema: {get}"
    );

    let messages = seen[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "I'll look up #142."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
             "name": "get_workitem", "input": {"correlation_key": "142"}}
        ]})
    );
    assert_eq!(messages[2]["role"], "user");
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01A09q90qw90lq917835lq9");
    assert!(result.get("is_error").is_none(), "sent only when true");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["untrusted_data"]["correlation_key"], "142");
}

#[tokio::test]
async fn anthropic_sends_failed_tool_results_with_is_error() {
    let (base, replay) = serve(vec![(200, anthropic_answer("ok"))], None).await;
    let request = ChatRequest {
        system: String::new(),
        messages: vec![
            Message::user("hi"),
            Message::assistant(vec![Block::ToolUse {
                id: "toolu_1".into(),
                name: "search".into(),
                input: json!({}),
            }]),
            Message {
                role: cfactory_copilot::Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: r#"{"error":"invalid input: `q` is required"}"#.into(),
                    is_error: true,
                }],
            },
        ],
        tools: vec![],
        max_tokens: 64,
    };
    let model = AnthropicModel::new(
        &base,
        ApiKey::new("k"),
        "claude-haiku-4-5",
        Duration::from_secs(5),
    );
    let answer = model.complete(&request).await.unwrap();
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    assert_eq!(answer.text(), "ok");
    let body = replay.seen.lock().unwrap()[0].body.clone();
    assert!(
        body.get("system").is_none(),
        "an empty system prompt is left out"
    );
    assert!(body.get("tools").is_none(), "no tools, no tools field");
    assert_eq!(
        body["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1",
               "content": "{\"error\":\"invalid input: `q` is required\"}", "is_error": true})
    );
}

#[tokio::test]
async fn anthropic_errors_are_classified_without_leaking_the_url_or_key() {
    let request = ChatRequest {
        system: "s".into(),
        messages: vec![Message::user("hi")],
        tools: vec![],
        max_tokens: 16,
    };
    let (base, _r) = serve(
        vec![
            (
                401,
                json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            ),
            (
                529,
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
            (200, Value::String("{not json".into())),
            (200, json!({"content": [{"type": "thinking", "thinking": "hmm"}], "stop_reason": "refusal"})),
        ],
        None,
    )
    .await;
    let model = AnthropicModel::new(&base, ApiKey::new("sk-secret"), "m", Duration::from_secs(5));
    let e = model.complete(&request).await.unwrap_err();
    assert_eq!(
        e,
        ModelError::Unauthorized {
            status: 401,
            message: "invalid x-api-key".into()
        }
    );
    assert!(matches!(
        model.complete(&request).await.unwrap_err(),
        ModelError::RateLimited { status: 529, .. }
    ));
    assert!(matches!(
        model.complete(&request).await.unwrap_err(),
        ModelError::Malformed(_)
    ));
    let odd = model.complete(&request).await.unwrap();
    assert!(odd.content.is_empty(), "unknown blocks are skipped");
    assert_eq!(odd.stop_reason, StopReason::Other);

    let (slow, _r) = serve(
        vec![(200, anthropic_answer("late"))],
        Some(Duration::from_secs(3)),
    )
    .await;
    let model = AnthropicModel::new(
        &slow,
        ApiKey::new("sk-secret"),
        "m",
        Duration::from_millis(300),
    );
    assert_eq!(
        model.complete(&request).await.unwrap_err(),
        ModelError::Timeout
    );

    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let model = AnthropicModel::new(
        &format!("http://127.0.0.1:{port}"),
        ApiKey::new("sk-secret"),
        "m",
        Duration::from_secs(2),
    );
    let e = model.complete(&request).await.unwrap_err();
    assert!(matches!(e, ModelError::Transport(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        !text.contains(&port.to_string()) && !text.contains("sk-secret"),
        "{text}"
    );
}

fn openai_tool_calls() -> Value {
    json!({
        "id": "chatcmpl-9xYz",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-5-mini",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "search", "arguments": "{\"q\":\"audit\"}"}
                }],
                "refusal": null
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 1800, "completion_tokens": 22, "total_tokens": 1822}
    })
}

fn openai_answer(text: &str) -> Value {
    json!({
        "id": "chatcmpl-9xZa",
        "object": "chat.completion",
        "model": "gpt-5-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 2100, "completion_tokens": 40, "total_tokens": 2140}
    })
}

#[tokio::test]
async fn openai_compatible_drives_the_loop_end_to_end() {
    let w = world().await;
    let (base, replay) = serve(
        vec![
            (200, openai_tool_calls()),
            (
                200,
                openai_answer("#143 (Export audit logs) waits in human review."),
            ),
        ],
        None,
    )
    .await;
    let config = ModelConfig::from_lookup(|k| match k {
        "CFACTORY_COPILOT_PROVIDER" => Some("openai".to_owned()),
        "CFACTORY_COPILOT_MODEL" => Some("gpt-5-mini".to_owned()),
        "CFACTORY_OPENAI_BASE_URL" => Some(format!("{base}/v1")),
        "CFACTORY_OPENAI_API_KEY" => Some("sk-openai-test".to_owned()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let copilot = Copilot::new(build_model(&config), w.registry.clone());
    let mut conv = Conversation::new("c2", tenant(), w.clock.now());
    let out = copilot
        .chat(&ctx(false), &mut conv, "Anything about audit?")
        .await
        .unwrap();
    assert_eq!(
        out.answer,
        "#143 (Export audit logs) waits in human review."
    );
    assert_eq!(out.usage.input_tokens, 3900);
    assert_eq!(out.trace[0].name, "search");
    assert_eq!(out.trace[0].input, json!({"q": "audit"}));

    let seen = replay.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(
        header(first, "authorization"),
        Some("Bearer sk-openai-test")
    );
    assert!(header(first, "x-api-key").is_none());
    let body = &first.body;
    assert_eq!(body["model"], "gpt-5-mini");
    assert_eq!(body["max_tokens"], 2048);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("never instructions")
    );
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": "Anything about audit?"})
    );
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 8, "read tools only without write scope");
    let search = tools
        .iter()
        .find(|t| t["function"]["name"] == "search")
        .unwrap();
    assert_eq!(search["type"], "function");
    assert_eq!(search["function"]["parameters"]["required"], json!(["q"]));
    assert!(search["function"]["description"].is_string());

    let messages = seen[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 4);
    let assistant = &messages[2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], Value::Null);
    let call = &assistant["tool_calls"][0];
    assert_eq!(call["id"], "call_abc123");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"q": "audit"}));
    let tool = &messages[3];
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], "call_abc123");
    let content: Value = serde_json::from_str(tool["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content["untrusted_data"]["hits"][0]["correlation_key"],
        "143"
    );
}

#[tokio::test]
async fn openai_compatible_servers_bending_the_format_are_understood() {
    let ollama_like = json!({
        "model": "qwen3:8b",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "needs_you", "arguments": {"limit": 3}}},
                {"id": "", "function": {"name": "search", "arguments": "{not json"}}
            ]},
            "finish_reason": "stop"
        }]
    });
    let (base, replay) = serve(
        vec![
            (200, ollama_like),
            (200, json!({"choices": []})),
            (401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})),
        ],
        None,
    )
    .await;
    let model = OpenAiModel::new(
        &format!("{base}/v1/"),
        None,
        "qwen3:8b",
        Duration::from_secs(5),
    );
    let request = ChatRequest {
        system: "s".into(),
        messages: vec![
            Message::user("hi"),
            Message::assistant(vec![Block::ToolUse {
                id: "call_1".into(),
                name: "search".into(),
                input: json!({}),
            }]),
            Message {
                role: cfactory_copilot::Role::User,
                content: vec![
                    Block::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: "{\"error\":\"q is required\"}".into(),
                        is_error: true,
                    },
                    Block::Text {
                        text: "and then?".into(),
                    },
                ],
            },
        ],
        tools: vec![ToolSpec {
            name: "needs_you".into(),
            description: "d".into(),
            input_schema: json!({"type": "object"}),
        }],
        max_tokens: 100,
    };
    let answer = model.complete(&request).await.unwrap();
    assert_eq!(
        answer.stop_reason,
        StopReason::ToolUse,
        "tool calls win over `stop`"
    );
    assert_eq!(answer.usage.total(), 0);
    let calls: Vec<(&String, &String, &Value)> = answer
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id, name, input)),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls.len(),
        2,
        "empty text is not a block: {:?}",
        answer.content
    );
    assert!(!calls[0].0.is_empty() && !calls[1].0.is_empty() && calls[0].0 != calls[1].0);
    assert_eq!(calls[0].2, &json!({"limit": 3}));
    assert_eq!(
        calls[1].2,
        &json!("{not json"),
        "left for the tool to refuse"
    );

    let seen = replay.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert!(
        header(&seen, "authorization").is_none(),
        "no key, no header"
    );
    let messages = seen.body["messages"].as_array().unwrap();
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "ERROR: {\"error\":\"q is required\"}"})
    );
    assert_eq!(messages[4], json!({"role": "user", "content": "and then?"}));

    assert!(matches!(
        model.complete(&request).await.unwrap_err(),
        ModelError::Malformed(m) if m.contains("no choices")
    ));
    assert_eq!(
        model.complete(&request).await.unwrap_err(),
        ModelError::Unauthorized {
            status: 401,
            message: "Incorrect API key provided".into()
        }
    );
}

//! Streamed answers end to end: both providers read server-sent events from a local server
//! that plays the provider, sending the recorded shapes of their streams cut into chunks
//! at awkward byte boundaries (inside a field name, a UTF-8 character, a CRLF); busy
//! answers retried after the wait the provider asks for, with the waits seen through an
//! injected sleeper; a stream dropped mid-answer closes the provider's connection; and a
//! streamed turn ends with the same answer, trace and proposals as a whole one.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

use cfactory_copilot::{
    AnthropicModel, ApiKey, Block, ChatRequest, ChatResponse, Conversation, Copilot, Delivery,
    LanguageModel, Message, ModelError, ModelEvent, OpenAiModel, ResponseBuilder, RetryPolicy,
    Sleeper, StopReason, TokenUsage, TurnEnd, TurnEvent,
};
use cfactory_domain::{Clock, FakeClock};
use common::{ctx, tenant, world};

/// One answer of the fake provider.
#[derive(Clone)]
enum Reply {
    /// 200 `text/event-stream`, the body sent in chunks of `chunk` bytes.
    Events { body: String, chunk: usize },
    /// 200 `text/event-stream` that starts with `head` and then sends a `ping` every
    /// 20 ms until the client goes; `closed` is notified when the body is dropped.
    Endless { head: String, closed: Arc<Notify> },
    /// A JSON answer with this status and these headers.
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
}

#[derive(Default)]
struct Provider {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<(HeaderMap, Value)>>,
}

/// Notifies when dropped: the body stream of an endless answer holds one.
struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

async fn answer(State(p): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    p.seen.lock().unwrap().push((
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ));
    let next = p.replies.lock().unwrap().pop_front();
    match next {
        Some(Reply::Events { body, chunk }) => {
            let chunks: Vec<Result<Bytes, Infallible>> = body
                .as_bytes()
                .chunks(chunk)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        Some(Reply::Endless { head, closed }) => {
            let guard = OnDrop(closed);
            let pings = futures::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Ok::<_, Infallible>(Bytes::from_static(
                        b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
                    )),
                    guard,
                ))
            });
            let body = futures::stream::once(async move { Ok(Bytes::from(head)) }).chain(pings);
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(body),
            )
                .into_response()
        }
        Some(Reply::Json {
            status,
            headers,
            body,
        }) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, "the script ran out").into_response(),
    }
}

async fn provider(replies: Vec<Reply>) -> (String, Arc<Provider>) {
    let state = Arc::new(Provider {
        replies: Mutex::new(replies.into()),
        ..Provider::default()
    });
    let app = Router::new().fallback(answer).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

/// Server-sent events as a provider writes them, lines ending in `eol`.
fn sse(events: &[(&str, Value)], eol: &str) -> String {
    events
        .iter()
        .map(|(name, data)| {
            let mut e = String::new();
            if !name.is_empty() {
                e.push_str(&format!("event: {name}{eol}"));
            }
            e.push_str(&format!("data: {data}{eol}{eol}"));
            e
        })
        .collect()
}

/// Anthropic's stream of a text block (with a non-ASCII character to cut through) and a
/// `get_workitem` call whose input arrives in three fragments.
fn anthropic_tool_stream(eol: &str) -> String {
    sse(
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 2095, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "I'll look up "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "#142 — now."}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_workitem", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"correlation_"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "key\": \"14"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "2\"}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 71}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
        eol,
    )
}

fn anthropic_text_stream(text: &str, input_tokens: u64, output_tokens: u64) -> String {
    let (a, b) = text.split_at(text.len() / 2);
    sse(
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_02", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": a}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": b}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output_tokens}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
        "\n",
    )
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "s".into(),
        messages: vec![Message::user("Where is #142?")],
        tools: vec![],
        max_tokens: 256,
    }
}

/// Every event of a stream, and the error that ended it, if one did.
async fn drain(model: &dyn LanguageModel) -> (Vec<ModelEvent>, Option<ModelError>) {
    let mut stream = model.stream(&request()).await.unwrap();
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing after an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

fn fold(events: Vec<ModelEvent>) -> ChatResponse {
    let mut b = ResponseBuilder::default();
    for e in events {
        b.push(e).unwrap();
    }
    b.finish().unwrap()
}

fn anthropic(base: &str) -> AnthropicModel {
    AnthropicModel::new(
        base,
        ApiKey::new("sk-ant-test"),
        "claude-sonnet-4-6",
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn anthropic_text_and_a_tool_call_stream_in_any_cut() {
    let want = ChatResponse {
        content: vec![
            Block::Text {
                text: "I'll look up #142 — now.".into(),
            },
            Block::ToolUse {
                id: "toolu_01A09q90qw90lq917835lq9".into(),
                name: "get_workitem".into(),
                input: json!({"correlation_key": "142"}),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: TokenUsage {
            input_tokens: 2095,
            output_tokens: 71,
        },
    };
    for (eol, chunk) in [
        ("\n", 1),
        ("\r\n", 7),
        ("\r\n", 1),
        ("\n", 13),
        ("\r", 5),
        ("\n", 4096),
    ] {
        let (base, seen) = provider(vec![Reply::Events {
            body: anthropic_tool_stream(eol),
            chunk,
        }])
        .await;
        let (events, error) = drain(&anthropic(&base)).await;
        assert_eq!(error, None, "{eol:?} / {chunk}");
        // Deltas arrive in order, the tool call is announced before its input, and the
        // stop comes last.
        let texts: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::TextDelta { text, .. } if !text.is_empty() => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["I'll look up ", "#142 — now."]);
        let start = events
            .iter()
            .position(
                |e| matches!(e, ModelEvent::ToolCallStart { name, .. } if name == "get_workitem"),
            )
            .unwrap();
        let end = events
            .iter()
            .position(|e| matches!(e, ModelEvent::ToolCallEnd { index: 1 }))
            .unwrap();
        assert!(start < end);
        assert_eq!(events.last(), Some(&ModelEvent::Stop(StopReason::ToolUse)));
        assert_eq!(fold(events), want, "{eol:?} / {chunk}");

        let (headers, body) = seen.seen.lock().unwrap()[0].clone();
        assert_eq!(body["stream"], true);
        assert_eq!(body["model"], "claude-sonnet-4-6");
        assert_eq!(headers["accept"], "text/event-stream");
        assert_eq!(headers["x-api-key"], "sk-ant-test");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
    }
    // The whole answer asks for no stream.
    let (base, seen) = provider(vec![Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}),
    }])
    .await;
    anthropic(&base).complete(&request()).await.unwrap();
    assert!(seen.seen.lock().unwrap()[0].1.get("stream").is_none());
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> (&'static str, Value) {
    (
        "",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1767225600,
               "model": "gpt-5-mini", "choices": [{"index": 0, "delta": delta, "logprobs": null,
               "finish_reason": finish}], "usage": null}),
    )
}

#[tokio::test]
async fn openai_text_tool_call_fragments_and_usage_stream_in_any_cut() {
    let mut events = vec![
        openai_chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        ),
        openai_chunk(json!({"content": "Searching"}), None),
        openai_chunk(json!({"content": " for “audit”."}), None),
        openai_chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_abc123", "type": "function",
                   "function": {"name": "search", "arguments": ""}}]}),
            None,
        ),
        openai_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\""}}]}),
            None,
        ),
        openai_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ": \"audit\"}"}}]}),
            None,
        ),
        openai_chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_def456", "type": "function",
                   "function": {"name": "needs_you", "arguments": "{}"}}]}),
            None,
        ),
        openai_chunk(json!({}), Some("tool_calls")),
    ];
    events.push((
        "",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-5-mini",
               "choices": [], "usage": {"prompt_tokens": 1800, "completion_tokens": 22, "total_tokens": 1822}}),
    ));
    let mut body = sse(&events, "\n");
    body.push_str("data: [DONE]\n\n");
    let want = ChatResponse {
        content: vec![
            Block::Text {
                text: "Searching for “audit”.".into(),
            },
            Block::ToolUse {
                id: "call_abc123".into(),
                name: "search".into(),
                input: json!({"q": "audit"}),
            },
            Block::ToolUse {
                id: "call_def456".into(),
                name: "needs_you".into(),
                input: json!({}),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: TokenUsage {
            input_tokens: 1800,
            output_tokens: 22,
        },
    };
    for chunk in [1, 3, 11, 64, 100_000] {
        let (base, seen) = provider(vec![Reply::Events {
            body: body.clone(),
            chunk,
        }])
        .await;
        let model = OpenAiModel::new(
            &format!("{base}/v1"),
            Some(ApiKey::new("sk-openai-test")),
            "gpt-5-mini",
            Duration::from_secs(10),
        );
        let (events, error) = drain(&model).await;
        assert_eq!(error, None, "{chunk}");
        assert_eq!(events.last(), Some(&ModelEvent::Stop(StopReason::ToolUse)));
        assert!(
            events.contains(&ModelEvent::Usage(want.usage)),
            "the usage chunk is read"
        );
        assert_eq!(fold(events), want, "{chunk}");
        let (headers, body) = seen.seen.lock().unwrap()[0].clone();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(headers["authorization"], "Bearer sk-openai-test");
        assert_eq!(headers["accept"], "text/event-stream");
    }
}

#[tokio::test]
async fn streams_that_break_or_end_early_are_errors() {
    // Anthropic's error event after some text: the text arrives, then the error, and the
    // stream is over; a stream already under way is never retried.
    let body = sse(
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}}),
            ),
            (
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "never read"}}),
            ),
        ],
        "\n",
    );
    let (base, seen) = provider(vec![Reply::Events { body, chunk: 9 }]).await;
    let model = anthropic(&base).with_retries(RetryPolicy {
        sleeper: Arc::new(Waits::default()),
        ..RetryPolicy::standard()
    });
    let (events, error) = drain(&model).await;
    assert!(events.contains(&ModelEvent::TextDelta {
        index: 0,
        text: "Partial".into()
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ModelEvent::TextDelta { text, .. } if text == "never read"))
    );
    assert_eq!(
        error,
        Some(ModelError::RateLimited {
            status: 529,
            message: "Overloaded".into()
        })
    );
    assert_eq!(seen.seen.lock().unwrap().len(), 1);

    // An OpenAI-compatible error chunk, and a stream cut before the finish.
    let cut = sse(&[openai_chunk(json!({"content": "Hal"}), None)], "\n");
    let failing =
        "data: {\"error\": {\"message\": \"model crashed\", \"code\": 500}}\n\n".to_owned();
    let (base, _) = provider(vec![
        Reply::Events {
            body: failing,
            chunk: 5,
        },
        Reply::Events {
            body: cut,
            chunk: 5,
        },
    ])
    .await;
    let model = OpenAiModel::new(&base, None, "qwen3:8b", Duration::from_secs(10));
    let (_, error) = drain(&model).await;
    assert!(
        matches!(&error, Some(ModelError::Status { status: 500, message }) if message == "model crashed"),
        "{error:?}"
    );
    let (events, error) = drain(&model).await;
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&error, Some(ModelError::Malformed(m)) if m.contains("ended before")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_answers_json_to_a_stream_request_is_read_whole() {
    let (base, _) = provider(vec![Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole."}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
    }])
    .await;
    let model = OpenAiModel::new(&base, None, "llama3", Duration::from_secs(10));
    let (events, error) = drain(&model).await;
    assert_eq!(error, None);
    let answer = fold(events);
    assert_eq!(answer.text(), "Whole.");
    assert_eq!(answer.usage.total(), 7);
}

/// Records the waits asked for and returns at once.
#[derive(Default)]
struct Waits(Mutex<Vec<Duration>>);

#[async_trait]
impl Sleeper for Waits {
    async fn sleep(&self, wait: Duration) {
        self.0.lock().unwrap().push(wait);
    }
}

fn busy(status: u16, retry_after: Option<&str>) -> Reply {
    Reply::Json {
        status,
        headers: retry_after
            .map(|v| vec![("retry-after", v.to_owned())])
            .unwrap_or_default(),
        body: json!({"type": "error", "error": {"type": if status == 429 { "rate_limit_error" } else { "overloaded_error" }, "message": if status == 429 { "Rate limited" } else { "Overloaded" }}}),
    }
}

#[tokio::test]
async fn busy_answers_are_retried_after_the_wait_they_ask_for() {
    let waits = Arc::new(Waits::default());
    let clock = Arc::new(FakeClock::at(
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
    ));
    let policy = RetryPolicy {
        sleeper: waits.clone(),
        clock: clock.clone() as Arc<dyn Clock>,
        ..RetryPolicy::standard()
    };

    // 429 with `Retry-After: 1`, then the stream: one retry after one second.
    let (base, seen) = provider(vec![
        busy(429, Some("1")),
        Reply::Events {
            body: anthropic_text_stream("Here it is.", 40, 5),
            chunk: 16,
        },
    ])
    .await;
    let model = anthropic(&base).with_retries(policy.clone());
    let (events, error) = drain(&model).await;
    assert_eq!(error, None);
    assert_eq!(fold(events).text(), "Here it is.");
    assert_eq!(seen.seen.lock().unwrap().len(), 2);
    assert_eq!(*waits.0.lock().unwrap(), [Duration::from_secs(1)]);

    // A whole answer is retried the same way; an HTTP date is measured from the clock.
    waits.0.lock().unwrap().clear();
    let (base, seen) = provider(vec![
        busy(503, Some("Mon, 01 Jun 2026 12:00:05 GMT")),
        Reply::Json {
            status: 200,
            headers: vec![],
            body: json!({"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}),
        },
    ])
    .await;
    let answer = anthropic(&base)
        .with_retries(policy.clone())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(answer.text(), "ok");
    assert_eq!(seen.seen.lock().unwrap().len(), 2);
    assert_eq!(*waits.0.lock().unwrap(), [Duration::from_secs(5)]);

    // 529 three times: backoffs of 1 s and 2 s, then an error naming the status.
    waits.0.lock().unwrap().clear();
    let (base, seen) = provider(vec![busy(529, None), busy(529, None), busy(529, None)]).await;
    let model = anthropic(&base).with_retries(policy.clone());
    let Err(error) = model.stream(&request()).await else {
        panic!("529 three times must fail");
    };
    assert_eq!(
        error,
        ModelError::RateLimited {
            status: 529,
            message: "Overloaded (gave up after 3 attempts)".into()
        }
    );
    assert!(error.to_string().contains("HTTP 529"), "{error}");
    assert_eq!(seen.seen.lock().unwrap().len(), 3);
    assert_eq!(
        *waits.0.lock().unwrap(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );

    // A wait past the cap is not taken.
    waits.0.lock().unwrap().clear();
    let (base, seen) = provider(vec![busy(429, Some("120"))]).await;
    let model = OpenAiModel::new(&base, None, "gpt-5-mini", Duration::from_secs(10))
        .with_retries(policy.clone());
    let error = model.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::RateLimited { status: 429, message } if message.contains("asked to wait 120 s, longer than the 30 s")),
        "{error:?}"
    );
    assert_eq!(seen.seen.lock().unwrap().len(), 1);
    assert!(waits.0.lock().unwrap().is_empty());

    // Other failures are not retried.
    let (base, seen) = provider(vec![Reply::Json {
        status: 500,
        headers: vec![("retry-after", "1".into())],
        body: json!({"error": {"message": "boom"}}),
    }])
    .await;
    let error = anthropic(&base)
        .with_retries(policy)
        .stream(&request())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ModelError::Status { status: 500, .. }));
    assert_eq!(seen.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn dropping_a_stream_closes_the_provider_connection() {
    let closed = Arc::new(Notify::new());
    let head = sse(
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Thinking"}}),
            ),
        ],
        "\n",
    );
    let (base, _) = provider(vec![Reply::Endless {
        head,
        closed: closed.clone(),
    }])
    .await;
    let model = anthropic(&base);
    let mut stream = model.stream(&request()).await.unwrap();
    loop {
        match stream.next().await {
            Some(Ok(ModelEvent::TextDelta { text, .. })) if text == "Thinking" => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), closed.notified())
        .await
        .expect("the provider sees its connection closed");
}

/// The fake provider of a turn: a tool call (`propose_kick_handback` on #142), then an
/// answer; streamed or whole as each request asks.
async fn turn_provider() -> (String, Arc<Provider>) {
    let first_stream = sse(
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 900, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Preparing "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a handback."}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_7", "name": "propose_kick_handback", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"correlation_key\": \"142\", "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"note\": \"Fix the rounding.\"}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 40}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
        "\r\n",
    );
    let first_whole = json!({"content": [
            {"type": "text", "text": "Preparing a handback."},
            {"type": "tool_use", "id": "toolu_7", "name": "propose_kick_handback",
             "input": {"correlation_key": "142", "note": "Fix the rounding."}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 900, "output_tokens": 40}});
    let answer = "The handback for #142 is prepared; confirm it in the cockpit.";
    let second_whole = json!({"content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1300, "output_tokens": 20}});
    provider(vec![
        Reply::Events {
            body: first_stream,
            chunk: 10,
        },
        Reply::Events {
            body: anthropic_text_stream(answer, 1300, 20),
            chunk: 10,
        },
        Reply::Json {
            status: 200,
            headers: vec![],
            body: first_whole,
        },
        Reply::Json {
            status: 200,
            headers: vec![],
            body: second_whole,
        },
    ])
    .await
}

/// `messages` with every tool result's text blanked.
fn without_results(messages: &[Message]) -> Vec<Message> {
    let mut messages = messages.to_vec();
    for b in messages.iter_mut().flat_map(|m| m.content.iter_mut()) {
        if let Block::ToolResult { content, .. } = b {
            content.clear();
        }
    }
    messages
}

#[tokio::test]
async fn a_streamed_turn_reports_as_it_goes_and_ends_as_a_whole_turn_would() {
    let (base, seen) = turn_provider().await;
    let model = Arc::new(anthropic(&base));
    let w = world().await;
    let copilot = Copilot::new(model, w.registry.clone());

    let mut events = Vec::new();
    let mut streamed_conv = Conversation::new("c-s", tenant(), w.clock.now());
    let streamed = copilot
        .turn(
            &ctx(true),
            &mut streamed_conv,
            "Kick #142 back",
            Delivery::Streamed,
            &mut |e| events.push(e),
        )
        .await
        .unwrap();
    let mut whole_conv = Conversation::new("c-w", tenant(), w.clock.now());
    let whole = copilot
        .chat(&ctx(true), &mut whole_conv, "Kick #142 back")
        .await
        .unwrap();
    let sent = seen.seen.lock().unwrap().clone();
    assert_eq!(
        sent.iter()
            .map(|(_, b)| b["stream"] == true)
            .collect::<Vec<_>>(),
        [true, true, false, false]
    );

    // The same answer, trace and conversation; a proposal each (two stored actions).
    assert_eq!(streamed.end, TurnEnd::Answered);
    assert_eq!(streamed.answer, whole.answer);
    assert_eq!(streamed.usage, whole.usage);
    assert_eq!(streamed.usage.input_tokens, 2200);
    assert_eq!(streamed.steps, whole.steps);
    assert_eq!(streamed.trace.len(), 1);
    assert_eq!(streamed.trace[0].input, whole.trace[0].input);
    // The proposals' action ids differ in the tool results; everything else is the same.
    assert_eq!(
        without_results(&streamed_conv.messages),
        without_results(&whole_conv.messages)
    );
    assert_eq!(streamed.proposals.len(), 1);
    assert_eq!(whole.proposals.len(), 1);
    assert_eq!(streamed.proposals[0].kind, whole.proposals[0].kind);

    // What the watcher saw, in order: the first call's text in pieces, the tool starting,
    // the tool's proposal and its end, then the answer's text; usage growing throughout.
    let texts: Vec<(u32, &str)> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::Text { step, delta } => Some((*step, delta.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(texts[..2], [(1, "Preparing "), (1, "a handback.")]);
    let second: String = texts
        .iter()
        .filter(|(s, _)| *s == 2)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(second, streamed.answer);
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::ToolStart { .. } => Some("tool_start"),
            TurnEvent::Proposal(_) => Some("proposal"),
            TurnEvent::ToolEnd { ok: true, .. } => Some("tool_end"),
            TurnEvent::ToolEnd { ok: false, .. } => Some("tool_failed"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["tool_start", "proposal", "tool_end"]);
    let Some(TurnEvent::Proposal(p)) = events.iter().find(|e| matches!(e, TurnEvent::Proposal(_)))
    else {
        unreachable!()
    };
    assert_eq!(p.id, streamed.proposals[0].id);
    let usages: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::Usage(u) => Some(u.total()),
            _ => None,
        })
        .collect();
    assert!(usages.windows(2).all(|w| w[0] <= w[1]), "{usages:?}");
    assert_eq!(usages.last(), Some(&streamed.usage.total()));
    assert!(
        usages.first().is_some_and(|&u| u < streamed.usage.total()),
        "the input tokens are known before the call ends: {usages:?}"
    );
}

//! The copilot's chat as server-sent events, black-box: the built server against a local
//! stand-in for the Anthropic Messages API that streams when asked (`"stream": true`) and
//! answers whole otherwise, from the same script. The stream's text arrives in order, the
//! proposal and the tool's start and end are events, and `done` carries exactly the JSON
//! answer; a client that closes the stream stops the turn and its call to the provider,
//! and the turn's tokens are still recorded.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{Server, Store, event};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The stand-in's state: every request body, and a signal for a stalled stream's end.
#[derive(Default)]
struct Model {
    seen: Mutex<Vec<Value>>,
    closed: Notify,
}

/// Notifies when dropped: the stalled stream's body holds one.
struct OnDrop(Arc<Model>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.closed.notify_one();
    }
}

const FIRST_TEXT: &str = "Preparing a handback for 301.";

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// One answer as Anthropic streams it: text in word-sized deltas, then tool calls.
fn streamed(text: &str, calls: &[(&str, &str, Value)], usage: (u64, u64), stop: &str) -> String {
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": usage.0, "output_tokens": 1}}}),
    )];
    events.push((
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    for word in text.split_inclusive(' ') {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    for (i, (id, name, input)) in calls.iter().enumerate() {
        let index = i + 1;
        let json = input.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
        events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": a}})));
        events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": b}})));
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": usage.1}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    sse(&events)
}

/// The stand-in's answer: a `propose_kick_handback` call on 301 first, then an answer that
/// says whether the tool prepared an action. A message with "stall" gets a stream that
/// sends one piece of text and then only pings, every 20 ms, until the client goes.
async fn messages(State(model): State<Arc<Model>>, Json(body): Json<Value>) -> Response {
    model.seen.lock().unwrap().push(body.clone());
    let stream = body["stream"] == true;
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    let result = last["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_result"))
        .cloned();
    if stream && last.to_string().contains("stall") {
        let head = sse(&[
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 77, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Thinking"}}),
            ),
        ]);
        let pings = futures::stream::unfold(OnDrop(model.clone()), |guard| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((
                Ok::<_, Infallible>(Bytes::from_static(
                    b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
                )),
                guard,
            ))
        });
        let body = futures::stream::once(async move { Ok(Bytes::from(head)) }).chain(pings);
        return (
            [("content-type", "text/event-stream")],
            Body::from_stream(body),
        )
            .into_response();
    }
    let (text, calls, usage, stop) = match &result {
        None => (
            FIRST_TEXT.to_owned(),
            vec![(
                "tu_1",
                "propose_kick_handback",
                json!({"correlation_key": "301", "note": "Fix the retry logic."}),
            )],
            (50, 10),
            "tool_use",
        ),
        Some(result) => (
            format!(
                "Prepared: {}. Confirm it in the cockpit.",
                if result.to_string().contains("action_id") {
                    "yes"
                } else {
                    "no"
                }
            ),
            vec![],
            (80, 12),
            "end_turn",
        ),
    };
    if stream {
        let body = streamed(&text, &calls, usage, stop);
        return ([("content-type", "text/event-stream")], body).into_response();
    }
    let mut content = vec![json!({"type": "text", "text": text})];
    for (id, name, input) in calls {
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Json(
        json!({"id": "msg_w", "type": "message", "role": "assistant", "model": "claude-test",
        "content": content, "stop_reason": stop,
        "usage": {"input_tokens": usage.0, "output_tokens": usage.1}}),
    )
    .into_response()
}

async fn fake_anthropic() -> (String, Arc<Model>) {
    let model = Arc::new(Model::default());
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .with_state(model.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, model)
}

/// A server whose copilot talks to the stand-in, with 301 (coded, then failed its tests:
/// a handback candidate) in its read model.
async fn start() -> (Server, Arc<Model>, Store) {
    let (url, model) = fake_anthropic().await;
    let store = Store::sqlite();
    let env = [
        ("CFACTORY_COPILOT_PROVIDER", "anthropic"),
        ("ANTHROPIC_API_KEY", "sk-test"),
        ("CFACTORY_ANTHROPIC_BASE_URL", url.as_str()),
    ];
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &env).unwrap();
    let t = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let mut code = event("c301", "301", "aifactory", "t301", "done", &t(30));
    code["title"] = json!("Retry logic 301");
    let mut test = event("x301", "301", "tfactory", "s301", "failed", &t(20));
    test["outcome"] = json!("failure");
    test["correlation"] = json!({"aifactory_task_id": "t301"});
    let (status, body) = server
        .post_raw("/api/events", &json!([code, test]).to_string(), None)
        .await;
    assert!(status == 200 || status == 202, "{body}");
    for _ in 0..200 {
        let (_, item) = server.get("/api/workitems/301").await;
        if item["stages"]["test"].is_object() {
            return (server, model, store);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the read model never caught up");
}

/// Every event of a finished stream body: (event name, data).
fn parse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            let name = name?;
            Some((name, serde_json::from_str(&data.join("\n")).unwrap()))
        })
        .collect()
}

/// `v` with the values that differ between two runs of the same script (ids, times,
/// durations, the tool's output naming its action) set to null.
fn steady(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let volatile = matches!(
                        k.as_str(),
                        "conversation_id"
                            | "id"
                            | "ms"
                            | "at"
                            | "output"
                            | "created_at"
                            | "expires_at"
                    );
                    (k.clone(), if volatile { Value::Null } else { steady(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(steady).collect()),
        other => other.clone(),
    }
}

/// Waits until the server logs a line containing every one of `parts`.
async fn logged(server: &Server, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = server
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            server.log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_streamed_turn_sends_its_text_tools_and_proposal_and_ends_with_the_json_answer() {
    let (server, model, _store) = start().await;
    let response = server
        .http
        .post(server.url("/api/copilot/chat"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "Kick 301 back to AIFactory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();

    assert_eq!(names.first(), Some(&"start"));
    assert_eq!(events[0].1["model"], "anthropic:claude-sonnet-4-6");
    let conversation = events[0].1["conversation_id"].as_str().unwrap().to_owned();
    // Text deltas in order, step by step.
    let text_of = |step: u64| -> String {
        events
            .iter()
            .filter(|(n, d)| n == "text" && d["step"] == step)
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect()
    };
    assert_eq!(text_of(1), FIRST_TEXT);
    assert!(
        events
            .iter()
            .filter(|(n, d)| n == "text" && d["step"] == 1)
            .count()
            > 3,
        "the text arrives in pieces"
    );
    let answer = "Prepared: yes. Confirm it in the cockpit.";
    assert_eq!(text_of(2), answer);
    // The tool starts, prepares its proposal and ends, between the two steps' text.
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    let last_first_text = names
        .iter()
        .zip(&events)
        .rposition(|(n, (_, d))| *n == "text" && d["step"] == 1)
        .unwrap();
    let first_second_text = names
        .iter()
        .zip(&events)
        .position(|(n, (_, d))| *n == "text" && d["step"] == 2)
        .unwrap();
    assert!(last_first_text < at("tool_start"));
    assert!(at("tool_start") < at("proposal") && at("proposal") < at("tool_end"));
    assert!(at("tool_end") < first_second_text);
    assert_eq!(
        events[at("tool_start")].1,
        json!({"id": "tu_1", "name": "propose_kick_handback"})
    );
    let end = &events[at("tool_end")].1;
    assert_eq!(
        (end["name"].as_str(), end["ok"].as_bool()),
        (Some("propose_kick_handback"), Some(true))
    );
    let proposal = &events[at("proposal")].1;
    assert_eq!(proposal["kind"], "kick_handback");
    assert_eq!(proposal["correlation_key"], "301");
    assert_eq!(proposal["status"], "prepared");
    assert!(
        end["summary"]
            .as_str()
            .unwrap()
            .contains(proposal["id"].as_str().unwrap())
    );

    assert_eq!(names.last(), Some(&"done"));
    let done = &events.last().unwrap().1;
    let turn = &done["turn"];
    assert_eq!(turn["conversation_id"], conversation.as_str());
    assert_eq!(turn["answer"], answer);
    assert_eq!(turn["proposals"][0]["id"], proposal["id"]);
    assert_eq!(
        turn["usage"],
        json!({"input_tokens": 130, "output_tokens": 22})
    );
    // Claude Sonnet's list price, $3 and $15 per million tokens.
    let cost = done["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0007).abs() < 1e-9, "{cost}");
    let seen: Vec<Value> = model.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|b| b["stream"] == true));

    // The same script answered whole is the same turn.
    let whole = server
        .http
        .post(server.url("/api/copilot/chat"))
        .json(&json!({"message": "Kick 301 back to AIFactory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert!(
        whole.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(steady(turn), steady(&whole));
    assert_ne!(whole["conversation_id"], turn["conversation_id"]);
    assert!(model.seen.lock().unwrap()[2].get("stream").is_none());

    // Both turns' tokens are recorded the same way.
    for conversation in [
        conversation.as_str(),
        whole["conversation_id"].as_str().unwrap(),
    ] {
        let line = logged(&server, &["copilot turn usage", conversation]).await;
        assert!(
            line.contains("input_tokens=130") && line.contains("output_tokens=22"),
            "{line}"
        );
        assert!(line.contains("answered"), "{line}");
    }

    // Errors found before the turn starts keep their status.
    let empty = server
        .http
        .post(server.url("/api/copilot/chat"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    let unknown = server
        .http
        .post(server.url("/api/copilot/chat"))
        .header("accept", "text/event-stream")
        .json(&json!({"conversation_id": "conv_nope", "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn closing_the_stream_stops_the_turn_and_its_provider_call_and_keeps_the_usage() {
    let (server, model, _store) = start().await;
    let mut response = server
        .http
        .post(server.url("/api/copilot/chat"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "stall, please"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = String::new();
    while !body.contains("event: text") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the first text arrives")
            .unwrap()
            .expect("the stream stays open");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (_, start) = parse_events(&body).into_iter().next().unwrap();
    let conversation = start["conversation_id"].as_str().unwrap().to_owned();
    assert!(body.contains("Thinking"));
    drop(response);

    tokio::time::timeout(Duration::from_secs(10), model.closed.notified())
        .await
        .expect("the provider sees its connection closed once the client goes");
    let line = logged(&server, &["copilot turn usage", &conversation]).await;
    assert!(line.contains("stopped"), "{line}");
    assert!(
        line.contains("input_tokens=77"),
        "the tokens spent so far: {line}"
    );

    // The stopped turn's message stays in the conversation, which goes on.
    let next = server
        .http
        .post(server.url("/api/copilot/chat"))
        .json(&json!({"conversation_id": conversation, "message": "and now?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    let seen = model.seen.lock().unwrap();
    let history = seen.last().unwrap()["messages"].to_string();
    assert!(
        history.contains("stall, please") && history.contains("and now?"),
        "{history}"
    );
}

//! Advise and confirm end to end: proposals send nothing; a confirm executes once against
//! a stand-in upstream; refusals, rejects and expiries; the audit chain; the MCP endpoint;
//! the copilot chat against a server speaking the Anthropic wire format; insight cards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use common::{Server, Store, event};
use serde_json::{Value, json};

/// A stand-in AIFactory: corrections succeed except on task `busy` (409, running);
/// recover answers 200 with `success: false`. Counts every call.
async fn fake_aifactory() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    async fn correction(
        State(calls): State<Arc<AtomicUsize>>,
        Path(id): Path<String>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(body["confirm"], true, "a correction is sent confirmed");
        if id == "busy" {
            (
                StatusCode::CONFLICT,
                Json(json!({"detail": "task busy is running; stop it first"})),
            )
        } else {
            (
                StatusCode::OK,
                Json(json!({"success": true, "task_id": id})),
            )
        }
    }
    async fn recover(State(calls): State<Arc<AtomicUsize>>) -> Json<Value> {
        calls.fetch_add(1, Ordering::SeqCst);
        Json(json!({"success": false, "error": "nothing to recover"}))
    }
    let app = Router::new()
        .route("/api/tasks/{id}/apply-correction", post(correction))
        .route("/api/tasks/{id}/recover", post(recover))
        .with_state(calls.clone());
    (serve(app).await, calls)
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A server on `store` whose AIFactory is `upstream`, with polling off.
fn start_with_aifactory(store: &Store, upstream: &str) -> Server {
    Server::start_with(
        store,
        &["--aifactory-url", upstream, "--poll-interval-seconds", "0"],
        &[],
    )
    .unwrap()
}

/// Items: 300 and 301 coded then failed their tests (300's task is busy upstream); 302's
/// coding task is stuck.
async fn seed(server: &Server, key: Option<&str>) {
    let t = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let mut events = Vec::new();
    for (n, task) in [(300, "busy"), (301, "t301")] {
        let k = n.to_string();
        let mut code = event(&format!("c{n}"), &k, "aifactory", task, "done", &t(30));
        code["title"] = json!(format!("Retry logic {n}"));
        code["evidence"] = json!({"total_tokens": 100, "phases_completed": ["act"]});
        events.push(code);
        let mut test = event(
            &format!("x{n}"),
            &k,
            "tfactory",
            &format!("s{n}"),
            "failed",
            &t(20),
        );
        test["outcome"] = json!("failure");
        test["correlation"] = json!({"aifactory_task_id": task});
        events.push(test);
    }
    events.push(event("c302", "302", "aifactory", "t302", "stuck", &t(60)));
    let (status, body) = server
        .post_raw("/api/events", &Value::Array(events).to_string(), key)
        .await;
    assert!(status == 200 || status == 202, "{body}");
}

/// Waits until the read model holds the seeded items (it applies commits in the
/// background).
async fn settled(server: &Server, key: Option<&str>) {
    for _ in 0..200 {
        let (_, s) = server.get_with("/api/search?q=Retry", key).await;
        if s["count"] == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the read model never caught up");
}

async fn post_json(server: &Server, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = server.http.post(server.url(path)).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn propose(server: &Server, kind: &str, key: &str, note: Option<&str>) -> (u16, Value) {
    post_json(
        server,
        "/api/actions/propose",
        json!({"kind": kind, "correlation_key": key, "note": note}),
        None,
    )
    .await
}

#[tokio::test]
async fn a_proposal_sends_nothing_until_one_confirm_runs_it_once() {
    let (upstream, calls) = fake_aifactory().await;
    let store = Store::sqlite();
    let server = start_with_aifactory(&store, &upstream);
    seed(&server, None).await;

    let (_, offered) = server.get("/api/workitems/301/actions").await;
    assert!(
        offered["available"]
            .as_array()
            .unwrap()
            .contains(&json!("kick_handback")),
        "{offered}"
    );
    let (status, action) =
        propose(&server, "kick_handback", "301", Some("retry with backoff")).await;
    assert_eq!(status, 201, "{action}");
    assert_eq!(action["status"], "prepared");
    assert_eq!(action["target_service"], "aifactory");
    assert_eq!(action["method"], "POST");
    assert_eq!(action["endpoint"], "/api/tasks/t301/apply-correction");
    assert_eq!(action["payload"]["confirm"], true);
    assert!(
        action["payload"]["fix_request_md"]
            .as_str()
            .unwrap()
            .contains("retry with backoff")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "proposing sends nothing");

    // Two confirms at once: exactly one runs it.
    let id = action["id"].as_str().unwrap().to_owned();
    let path = format!("/api/actions/{id}/confirm");
    let (a, b) = tokio::join!(
        post_json(&server, &path, json!({}), None),
        post_json(&server, &path, json!({}), None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let done = if a.0 == 200 { a.1 } else { b.1 };
    assert_eq!(done["action"]["status"], "executed", "{done}");
    assert_eq!(done["action"]["results"][0]["status_code"], 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent exactly once");
    let (status, again) = post_json(&server, &path, json!({}), None).await;
    assert_eq!(status, 409);
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already executed"),
        "{again}"
    );

    // An upstream refusal is a failed action carrying the upstream's reason.
    let (_, busy) = propose(&server, "kick_handback", "300", None).await;
    let (status, failed) = post_json(
        &server,
        &format!("/api/actions/{}/confirm", busy["id"].as_str().unwrap()),
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["action"]["status"], "failed");
    assert_eq!(failed["action"]["results"][0]["status_code"], 409);
    assert!(
        failed["action"]["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("running"),
        "{failed}"
    );

    // A reject closes it; a confirm after that is refused.
    let (_, rec) = propose(&server, "recover", "302", None).await;
    assert_eq!(rec["endpoint"], "/api/tasks/t302/recover", "{rec}");
    let rec_id = rec["id"].as_str().unwrap();
    let (status, rejected) = post_json(
        &server,
        &format!("/api/actions/{rec_id}/reject"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(
        (status, &rejected["action"]["status"]),
        (200, &json!("rejected"))
    );
    let (status, _) = post_json(
        &server,
        &format!("/api/actions/{rec_id}/confirm"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the rejected recover was never sent"
    );

    // Refusals and bad input.
    let (status, refused) = propose(&server, "kick_handback", "302", None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("note"),
        "{refused}"
    );
    let (status, bad) = propose(&server, "deploy_to_prod", "301", None).await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("kind")));
    let (status, _) = propose(&server, "recover", "999", None).await;
    assert_eq!(status, 404);

    // The published contract's routes do the same.
    let (status, advised) = post_json(
        &server,
        "/api/copilot/actions",
        json!({"correlation_key": "302", "intent": "recover"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{advised}");
    assert_eq!(advised["preview"]["endpoint"], "/api/tasks/t302/recover");
    let (status, contract_confirm) = post_json(
        &server,
        &format!(
            "/api/copilot/actions/{}/confirm",
            advised["id"].as_str().unwrap()
        ),
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{contract_confirm}");
    assert_eq!(
        contract_confirm["action"]["status"], "failed",
        "success:false is a failure"
    );
    assert!(
        contract_confirm["action"]["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("nothing to recover")
    );

    // Every decision is on the audit chain, which verifies.
    let (_, audit) = server.get("/api/audit?limit=50").await;
    let kinds: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["kind"].as_str()?, e["action_id"].as_str()?)))
        .collect();
    assert!(
        kinds.contains(&("action.confirmed", id.as_str())),
        "{audit}"
    );
    assert!(kinds.contains(&("action.rejected", rec_id)), "{audit}");
    let (_, chain) = server.get("/api/audit/chain").await;
    assert_eq!(chain["verdict"], "ok");
    let (_, listed) = server.get("/api/actions?status=executed").await;
    assert_eq!(listed["actions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unconfirmed_action_expires_and_the_expiry_is_audited() {
    let (upstream, calls) = fake_aifactory().await;
    let store = Store::postgres().await;
    let server = Server::start_with(
        &store,
        &[
            "--aifactory-url",
            &upstream,
            "--poll-interval-seconds",
            "0",
            "--action-ttl-seconds",
            "1",
        ],
        &[],
    )
    .unwrap();
    seed(&server, None).await;
    let (_, action) = propose(&server, "kick_handback", "301", Some("again")).await;
    let id = action["id"].as_str().unwrap();
    // Wait for the expiry itself (listing expires actions past their expiry), with a
    // deadline, rather than for a guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = server.get("/api/actions?limit=50").await;
        let now = list["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id))
            .cloned()
            .unwrap_or(Value::Null);
        if now["status"] == "expired" {
            break;
        }
        assert_eq!(now["status"], "prepared", "{now}");
        assert!(
            std::time::Instant::now() < deadline,
            "the action never expired: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, late) = post_json(
        &server,
        &format!("/api/actions/{id}/confirm"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, 409, "{late}");
    assert!(
        late["detail"].as_str().unwrap().contains("expired"),
        "{late}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let (_, expired) = server.get("/api/actions?status=expired").await;
    assert_eq!(expired["actions"][0]["id"], id);
    let (_, audit) = server.get("/api/audit").await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "action.expired" && e["action_id"] == id),
        "{audit}"
    );
}

/// One MCP request over Streamable HTTP, which asks the client to accept JSON and SSE.
async fn rpc(server: &Server, key: &str, method: &str, params: Value) -> Value {
    let r = server
        .http
        .post(server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(key)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], 7, "{body}");
    body
}

#[tokio::test]
async fn mcp_lists_and_calls_tools_by_scope_and_never_confirms() {
    let store = Store::sqlite();
    let reader = store.create_key("read,ingest", None);
    let writer = store.create_key("read,write", None);
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    seed(&server, Some(&reader)).await;
    settled(&server, Some(&reader)).await;

    let init = rpc(
        &server,
        &reader,
        "initialize",
        json!({"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
    )
    .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "cfactory");
    assert!(init["result"]["capabilities"]["tools"].is_object());

    let names = |list: &Value| -> Vec<String> {
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let read_list = names(&rpc(&server, &reader, "tools/list", json!({})).await);
    assert!(read_list.contains(&"search".to_owned()));
    assert!(
        !read_list.iter().any(|n| n.starts_with("propose_")),
        "{read_list:?}"
    );
    let write_list = names(&rpc(&server, &writer, "tools/list", json!({})).await);
    assert!(write_list.contains(&"propose_kick_handback".to_owned()));
    assert!(
        !write_list.iter().any(|n| n.contains("confirm")),
        "{write_list:?}"
    );

    let found = rpc(
        &server,
        &reader,
        "tools/call",
        json!({"name": "search", "arguments": {"q": "Retry logic 301"}}),
    )
    .await;
    assert_eq!(found["result"]["isError"], false, "{found}");
    assert!(
        found["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("301")
    );

    let denied = rpc(
        &server,
        &reader,
        "tools/call",
        json!({"name": "propose_kick_handback", "arguments": {"correlation_key": "301"}}),
    )
    .await;
    assert_eq!(denied["result"]["isError"], true);
    let proposed = rpc(&server, &writer, "tools/call",
        json!({"name": "propose_kick_handback", "arguments": {"correlation_key": "301", "note": "fix it"}}))
    .await;
    assert_eq!(proposed["result"]["isError"], false, "{proposed}");
    let (_, prepared) = server
        .get_with("/api/actions?status=prepared", Some(&reader))
        .await;
    assert_eq!(
        prepared["actions"].as_array().unwrap().len(),
        1,
        "stored, not executed"
    );

    let bad = rpc(
        &server,
        &reader,
        "tools/call",
        json!({"name": "search", "arguments": {}}),
    )
    .await;
    assert_eq!(
        bad["result"]["isError"], true,
        "a missing field is a tool error: {bad}"
    );
    let unknown = rpc(&server, &reader, "resources/list", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601);
    let (status, _) = post_json(
        &server,
        "/mcp",
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        None,
    )
    .await;
    assert_eq!(status, 401, "authenticated like the rest of the API");
}

/// A stand-in for the Anthropic Messages API: first a `search` tool call, then an answer
/// that quotes what the tool returned. Records each request body.
async fn fake_anthropic() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    async fn messages(
        State(seen): State<Arc<std::sync::Mutex<Vec<Value>>>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(body.clone());
            seen.len()
        };
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let tool_result = last["content"]
            .as_array()
            .and_then(|c| c.iter().find(|b| b["type"] == "tool_result"))
            .cloned();
        Json(match tool_result {
            None => json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant",
                "model": "claude-test", "stop_reason": "tool_use",
                "content": [{"type": "text", "text": "Looking it up."},
                    {"type": "tool_use", "id": format!("tu_{n}"), "name": "search",
                     "input": {"q": "Retry logic"}}],
                "usage": {"input_tokens": 50, "output_tokens": 10}}),
            Some(result) => json!({"id": format!("msg_{n}"), "type": "message",
                "role": "assistant", "model": "claude-test", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": format!("Found: {}",
                    if result.to_string().contains("301") { "301" } else { "nothing" })}],
                "usage": {"input_tokens": 80, "output_tokens": 12}}),
        })
    }
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .with_state(seen.clone());
    (serve(app).await, seen)
}

#[tokio::test]
async fn the_chat_answers_503_without_a_model_and_runs_tools_with_one() {
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    let (status, body) =
        post_json(&server, "/api/copilot/chat", json!({"message": "hi"}), None).await;
    assert_eq!(status, 503);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("CFACTORY_COPILOT_PROVIDER"),
        "{body}"
    );
    server.terminate();

    let (model_url, seen) = fake_anthropic().await;
    let env = [
        ("CFACTORY_COPILOT_PROVIDER", "anthropic"),
        ("ANTHROPIC_API_KEY", "sk-test"),
        ("CFACTORY_ANTHROPIC_BASE_URL", model_url.as_str()),
    ];
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &env).unwrap();
    seed(&server, None).await;
    settled(&server, None).await;
    let (status, turn) = post_json(
        &server,
        "/api/copilot/chat",
        json!({"message": "where is the retry work?"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["answer"], "Found: 301", "{turn}");
    assert_eq!(turn["trace"][0]["name"], "search");
    assert_eq!(turn["trace"][0]["is_error"], false);
    let conversation = turn["conversation_id"].as_str().unwrap().to_owned();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "tool call, then the answer");
        assert!(
            seen[0]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "search")
        );
    }
    let (status, second) = post_json(
        &server,
        "/api/copilot/chat",
        json!({"conversation_id": conversation, "message": "and again?"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let seen = seen.lock().unwrap();
    let history = seen[2]["messages"].to_string();
    assert!(
        history.contains("where is the retry work?"),
        "the conversation persisted"
    );
    assert!(history.contains("Found: 301"));
}

#[tokio::test]
async fn insight_cards_suggest_a_fitting_proposal() {
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    seed(&server, None).await;
    let mut cards = Value::Null;
    for _ in 0..100 {
        let (_, c) = server.get("/api/insights").await;
        if c["cards"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["correlation_key"] == "301"))
        {
            cards = c;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let card = cards["cards"]
        .as_array()
        .unwrap_or_else(|| panic!("no card for 301"))
        .iter()
        .find(|c| c["correlation_key"] == "301" && c["kind"] == "failure")
        .unwrap_or_else(|| panic!("{cards}"))
        .clone();
    assert_eq!(card["suggested"]["kind"], "kick_handback", "{card}");
    let stuck = cards["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["correlation_key"] == "302")
        .cloned();
    if let Some(stuck) = stuck {
        assert_eq!(stuck["suggested"]["kind"], "recover", "{stuck}");
    }
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_fails_the_action_once_without_a_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    async fn silent(State(calls): State<Arc<AtomicUsize>>) -> Json<Value> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        Json(json!({"success": true}))
    }
    let app = Router::new()
        .route("/api/tasks/{id}/apply-correction", post(silent))
        .with_state(calls.clone());
    let upstream = serve(app).await;

    let store = Store::sqlite();
    let server = start_with_aifactory(&store, &upstream);
    seed(&server, None).await;
    settled(&server, None).await;
    let (status, action) = propose(&server, "kick_handback", "301", None).await;
    assert_eq!(status, 201, "{action}");
    let path = format!("/api/actions/{}/confirm", action["id"].as_str().unwrap());
    let (status, confirmed) = post_json(&server, &path, json!({}), None).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["action"]["status"], "failed", "{confirmed}");
    let error = confirmed["action"]["results"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("did not answer within 15 s"), "{confirmed}");
    assert!(error.contains("not retried"), "{confirmed}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the step is sent once");
    let (status, _) = post_json(&server, &path, json!({}), None).await;
    assert_eq!(status, 409, "a failed action is not confirmed again");
}

/// The agent that proposes cannot approve: `write` proposes and rejects, `approve`
/// confirms, and the action names both people and their doors.
#[tokio::test]
async fn an_agent_with_write_proposes_but_only_an_approver_confirms() {
    let (upstream, calls) = fake_aifactory().await;
    let store = Store::sqlite();
    let agent = store.create_key("read,write,ingest", None);
    let approver = store.create_key("read,approve", None);
    let server = start_with_aifactory(&store, &upstream);
    seed(&server, Some(&agent)).await;
    settled(&server, Some(&agent)).await;

    let proposed = rpc(
        &server,
        &agent,
        "tools/call",
        json!({"name": "propose_kick_handback", "arguments": {"correlation_key": "301"}}),
    )
    .await;
    assert_eq!(proposed["result"]["isError"], false, "{proposed}");
    let (_, listed) = server
        .get_with("/api/actions?status=prepared", Some(&agent))
        .await;
    let id = listed["actions"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["actions"][0]["proposed_via"], "mcp");

    // The agent's key, over HTTP and through the copilot alias: 403, nothing sent.
    for path in [
        format!("/api/actions/{id}/confirm"),
        format!("/api/copilot/actions/{id}/confirm"),
    ] {
        let (status, body) = post_json(&server, &path, json!({}), Some(&agent)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("approve"),
            "{body}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // An approver cannot reject (write) but confirms.
    let (status, _) = post_json(
        &server,
        &format!("/api/actions/{id}/reject"),
        json!({}),
        Some(&approver),
    )
    .await;
    assert_eq!(status, 403);
    let (status, done) = post_json(
        &server,
        &format!("/api/actions/{id}/confirm"),
        json!({}),
        Some(&approver),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (_, action) = server
        .get_with(&format!("/api/actions/{id}"), Some(&approver))
        .await;
    assert_eq!(action["status"], "executed");
    assert!(action["proposed_by"].as_str().unwrap().starts_with("key:"));
    assert_eq!(action["proposed_via"], "mcp");
    assert_eq!(action["decided_via"], "api");
    assert_ne!(action["decided_by"], action["proposed_by"]);
    let (_, audit) = server.get_with("/api/audit", Some(&approver)).await;
    let actor = audit["entries"][0]["actor"].as_str().unwrap();
    assert!(
        actor.contains("via api; proposed by key:") && actor.ends_with("via mcp"),
        "{actor}"
    );
}

/// `--require-second-approver`: whoever proposed may not also confirm.
#[tokio::test]
async fn four_eyes_refuses_a_confirm_by_the_proposer() {
    let (upstream, calls) = fake_aifactory().await;
    let store = Store::sqlite();
    let lead = store.create_key("read,write,approve,ingest", None);
    let second = store.create_key("read,approve", None);
    let server = Server::start_with(
        &store,
        &[
            "--aifactory-url",
            &upstream,
            "--poll-interval-seconds",
            "0",
            "--require-second-approver",
        ],
        &[],
    )
    .unwrap();
    seed(&server, Some(&lead)).await;
    settled(&server, Some(&lead)).await;
    let (status, action) = post_json(
        &server,
        "/api/actions/propose",
        json!({"kind": "kick_handback", "correlation_key": "301"}),
        Some(&lead),
    )
    .await;
    assert_eq!(status, 201, "{action}");
    let path = format!("/api/actions/{}/confirm", action["id"].as_str().unwrap());
    let (status, body) = post_json(&server, &path, json!({}), Some(&lead)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("second person"),
        "{body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let (status, done) = post_json(&server, &path, json!({}), Some(&second)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

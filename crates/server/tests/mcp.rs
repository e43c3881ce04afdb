//! `/mcp` end to end against the built server: the official Rust MCP SDK's own client
//! over Streamable HTTP (the `initialize` handshake and the per-request `server/discover`
//! lifecycle), the transport's rules on raw HTTP (versions, headers, methods, sizes), the
//! browser guard and keys in front of it, and tenancy. Scopes and "never confirm" are also
//! covered by `tests/actions.rs`.

mod common;

use std::time::Duration;

use common::{Server, Store, event};
use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// What a Streamable HTTP client must accept.
const ACCEPT: &str = "application/json, text/event-stream";

/// Work item 301 ("Retry logic 301": a done coding task whose tests failed) for the
/// tenant of `key`, waited for until search finds it.
async fn seed(server: &Server, key: &str) {
    let at = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let mut code = event("c301", "301", "aifactory", "t301", "done", &at(30));
    code["title"] = json!("Retry logic 301");
    let mut test = event("x301", "301", "tfactory", "s301", "failed", &at(20));
    test["outcome"] = json!("failure");
    test["correlation"] = json!({"aifactory_task_id": "t301"});
    let events = json!([code, test]).to_string();
    let (status, body) = server.post_raw("/api/events", &events, Some(key)).await;
    assert!(status == 200 || status == 202, "{status}: {body}");
    for _ in 0..200 {
        let (_, found) = server
            .get_with("/api/search?q=Retry%20logic", Some(key))
            .await;
        if found["count"] == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the read model never caught up");
}

/// One raw POST to `/mcp` with `key`, the transport's `Accept`, and `headers`.
async fn post(
    server: &Server,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut req = server
        .http
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn connect(
    server: &Server,
    key: &str,
    lifecycle: ClientLifecycleMode,
) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(key);
    ().serve_with_lifecycle(
        StreamableHttpClientTransport::from_config(config),
        lifecycle,
    )
    .await
    .expect("the client connects")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .expect("tools/call answers")
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test]
async fn the_sdks_client_initializes_lists_and_calls_tools_by_scope() {
    let store = Store::sqlite();
    let reader = store.create_key("read,ingest", None);
    let writer = store.create_key("read,write", None);
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    seed(&server, &reader).await;

    let client = connect(&server, &reader, ClientLifecycleMode::Initialize).await;
    let info = client
        .peer_info()
        .expect("the handshake gave the server's info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "cfactory");
    assert_eq!(
        info.protocol_version,
        ProtocolVersion::LATEST_WITH_INITIALIZE
    );
    assert!(info.capabilities.tools.is_some());
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert!(names.contains(&"search".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("propose_")),
        "a read key sees no propose tool: {names:?}"
    );
    let found = call(&client, "search", json!({"q": "Retry logic"})).await;
    assert_eq!(found.is_error, Some(false), "{found:?}");
    assert!(text(&found).contains("301"), "{found:?}");
    assert!(found.structured_content.is_some());
    let denied = call(
        &client,
        "propose_kick_handback",
        json!({"correlation_key": "301"}),
    )
    .await;
    assert_eq!(denied.is_error, Some(true));
    assert!(text(&denied).contains("write scope"), "{denied:?}");
    client.cancel().await.unwrap();

    // Per-request negotiation (2026-07-28): no handshake, `server/discover` first.
    let modern = vec![ProtocolVersion::V_2026_07_28];
    let client = connect(
        &server,
        &writer,
        ClientLifecycleMode::Discover {
            preferred_versions: modern,
        },
    )
    .await;
    let tools = client.list_all_tools().await.unwrap();
    let propose = tools
        .iter()
        .find(|t| t.name == "propose_kick_handback")
        .expect("a write key sees the propose tools");
    assert_eq!(propose.input_schema["required"], json!(["correlation_key"]));
    assert!(
        !tools.iter().any(|t| t.name.contains("confirm")),
        "there is no confirm tool"
    );
    let proposed = call(
        &client,
        "propose_kick_handback",
        json!({"correlation_key": "301", "note": "retry with backoff"}),
    )
    .await;
    assert_eq!(proposed.is_error, Some(false), "{proposed:?}");
    client.cancel().await.unwrap();
    let (_, prepared) = server
        .get_with("/api/actions?status=prepared", Some(&reader))
        .await;
    let actions = prepared["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "stored, not executed: {prepared}");
    assert_eq!(actions[0]["proposed_via"], "mcp");
    assert_eq!(actions[0]["note"], "retry with backoff");
}

#[tokio::test]
async fn mcp_tools_see_only_the_callers_tenant() {
    let store = Store::sqlite();
    let ours = store.create_key("read,write,ingest", None);
    let theirs = store.create_key("read,write", Some("acme"));
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    seed(&server, &ours).await;

    let client = connect(&server, &theirs, ClientLifecycleMode::Initialize).await;
    let found = call(&client, "search", json!({"q": "Retry logic"})).await;
    assert_eq!(found.is_error, Some(false), "{found:?}");
    assert!(
        !text(&found).contains("301"),
        "another tenant's item: {found:?}"
    );
    let item = call(&client, "get_workitem", json!({"correlation_key": "301"})).await;
    assert_eq!(item.is_error, Some(true), "{item:?}");
    let proposed = call(
        &client,
        "propose_recover",
        json!({"correlation_key": "301"}),
    )
    .await;
    assert_eq!(proposed.is_error, Some(true), "{proposed:?}");
    client.cancel().await.unwrap();

    let client = connect(&server, &ours, ClientLifecycleMode::Initialize).await;
    let item = call(&client, "get_workitem", json!({"correlation_key": "301"})).await;
    assert_eq!(item.is_error, Some(false), "{item:?}");
    assert!(text(&item).contains("Retry logic 301"));
    client.cancel().await.unwrap();
    let (_, actions) = server.get_with("/api/actions", Some(&ours)).await;
    assert_eq!(actions["actions"], json!([]), "nothing proposed here");
}

#[tokio::test]
async fn the_transport_negotiates_versions_and_refuses_what_it_does_not_speak() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let server = Server::start(&store);
    let initialize = |version: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}})
        .to_string()
    };

    // A version the server speaks is agreed to; one it does not is answered with its own.
    for (asked, agreed) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let r = post(&server, Some(&key), &[], &initialize(asked)).await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], agreed, "{body}");
        assert_eq!(body["result"]["serverInfo"]["name"], "cfactory");
    }
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let r = post(
        &server,
        Some(&key),
        &[("mcp-protocol-version", "2025-06-18")],
        ping,
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 2);
    let r = post(
        &server,
        Some(&key),
        &[("mcp-protocol-version", "1999-01-01")],
        ping,
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("1999-01-01"));
    // The header must agree with the version `initialize` names.
    let r = post(
        &server,
        Some(&key),
        &[("mcp-protocol-version", "2025-06-18")],
        &initialize("2025-03-26"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);

    // Stateless: no session id, no stream to open, notifications only acknowledged.
    let r = post(&server, Some(&key), &[], &initialize("2025-06-18")).await;
    assert!(r.headers().get("mcp-session-id").is_none());
    let get = server
        .http
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        post(&server, Some(&key), &[], note).await.status().as_u16(),
        202
    );

    // Protocol errors are JSON-RPC errors.
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"confirm_action","arguments":{}}}"#;
    let body: Value = post(&server, Some(&key), &[], call)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("confirm_action")
    );
    let list = r#"{"jsonrpc":"2.0","id":4,"method":"resources/list"}"#;
    let body: Value = post(&server, Some(&key), &[], list)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], -32601, "{body}");

    // What the transport itself refuses: never a 5xx.
    let refused = [
        ("not JSON-RPC", r#"{"hello":"world"}"#.to_owned()),
        ("not JSON", "{".to_owned()),
        ("a batch", format!("[{ping}]")),
        (
            "a response",
            r#"{"jsonrpc":"2.0","id":9,"result":{}}"#.to_owned(),
        ),
        (
            "over 1 MiB",
            json!({"jsonrpc": "2.0", "id": 5, "method": "ping",
                   "params": {"pad": "x".repeat(1 << 20)}})
            .to_string(),
        ),
    ];
    for (what, body) in refused {
        let status = post(&server, Some(&key), &[], &body)
            .await
            .status()
            .as_u16();
        assert!((400..500).contains(&status), "{what}: {status}");
    }
    let json_only = server
        .http
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .bearer_auth(&key)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status().as_u16(), 406, "Accept must list both");
    for accept in [Some("*/*"), None] {
        let mut req = server
            .http
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .bearer_auth(&key)
            .body(ping);
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "a client that takes anything: {accept:?}"
        );
    }
}

#[tokio::test]
async fn mcp_takes_keys_with_read_scope_from_no_foreign_page() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let ingest_only = store.create_key("ingest", None);
    let server = Server::start(&store);
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

    let r = post(&server, None, &[], ping).await;
    assert_eq!(r.status().as_u16(), 401);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("API key"),
        "{problem}"
    );
    let r = post(&server, Some("cfk_not_a_key"), &[], ping).await;
    assert_eq!(r.status().as_u16(), 401);
    let r = post(&server, Some(&ingest_only), &[], ping).await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("`read`"));
    let r = server
        .http
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("x-api-key", &key)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "X-API-Key works too");

    // A web page cannot reach the MCP endpoint, even with a key.
    let r = post(
        &server,
        Some(&key),
        &[("origin", "http://evil.example")],
        ping,
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("evil.example"));
}

//! Live agent consoles over the wire: the built server pointed at local AIFactories that
//! serve capabilities, a task list and each running task's console WebSocket the way the
//! real one does (a `connected` text frame, then the pane's bytes). Two tenants, each with
//! its own AIFactory and token, hold an item under the same key. What a browser sees is
//! read back through `/api/live-agents` and `/api/live-agents/{key}/ws`; what reached the
//! AIFactories is what they recorded.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Server, Store, event};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN_A: &str = "tok-acme-7f3a";
const TOKEN_B: &str = "tok-globex-91c2";

/// Terminal output the relay test's console sends: ANSI colour around bytes that are not
/// UTF-8, so only a byte-exact relay passes.
const PANE: &[u8] = b"\x1b[32m$ cargo test\x1b[0m \xff\xfe\r\n";
const TEXT: &str = "plain text frame \u{e9}\r\n";
const PANE_2: &[u8] = b"\x1b[1;36m\xe2\x97\x8f Edit\x1b[0m src/retry.rs\r\n";
/// The size of one frame of the flooding console.
const FLOOD_FRAME: usize = 64 * 1024;

/// What `/api/capabilities` answers.
#[derive(Debug, Clone, Copy)]
enum Caps {
    /// `{"rmux": true}`.
    On,
    /// `{"rmux": false}`.
    Off,
    /// 404: a build without the route.
    Absent,
    /// `{}`: no flag at all.
    Silent,
}

/// One console connection as the fake AIFactory saw it.
#[derive(Debug, Clone, Default)]
struct Visit {
    task: String,
    authorization: Option<String>,
    /// Text and binary frames the relay sent up (it must send none).
    received: Vec<String>,
    /// Bytes of output written to the relay.
    sent: usize,
    /// The connection is over.
    ended: bool,
}

/// A local AIFactory: capabilities, the task list and the consoles.
struct Fake {
    token: &'static str,
    caps: Mutex<Caps>,
    /// (task id, status, title)
    tasks: Vec<(&'static str, &'static str, &'static str)>,
    visits: Mutex<Vec<Visit>>,
}

type Shared = Arc<Fake>;

impl Fake {
    fn new(token: &'static str, tasks: Vec<(&'static str, &'static str, &'static str)>) -> Shared {
        Arc::new(Self {
            token,
            caps: Mutex::new(Caps::On),
            tasks,
            visits: Mutex::default(),
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        authorization(headers).as_deref() == Some(&format!("Bearer {}", self.token))
    }

    fn set_caps(&self, caps: Caps) {
        *self.caps.lock().unwrap() = caps;
    }

    fn visits(&self) -> Vec<Visit> {
        self.visits.lock().unwrap().clone()
    }

    fn update(&self, i: usize, change: impl FnOnce(&mut Visit)) {
        change(&mut self.visits.lock().unwrap()[i]);
    }

    async fn serve(self: &Shared) -> String {
        let app = Router::new()
            .route("/api/capabilities", get(capabilities))
            .route("/api/tasks", get(tasks))
            .route("/api/tasks/{id}/agent-console/ws", get(console))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "Invalid token"})),
    )
        .into_response()
}

async fn capabilities(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    if !fake.authorized(&headers) {
        return unauthorized();
    }
    let caps = *fake.caps.lock().unwrap();
    match caps {
        Caps::On => axum::Json(json!({"rmux": true})).into_response(),
        Caps::Off => axum::Json(json!({"rmux": false})).into_response(),
        Caps::Silent => axum::Json(json!({})).into_response(),
        Caps::Absent => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "Not Found"})),
        )
            .into_response(),
    }
}

async fn tasks(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    if !fake.authorized(&headers) {
        return unauthorized();
    }
    let rows: Vec<Value> = fake
        .tasks
        .iter()
        .map(|(id, status, title)| {
            let (project, spec) = id.split_once(':').unwrap();
            json!({"id": id, "project_id": project, "spec_id": spec, "status": status,
                   "title": title, "subtasks": []})
        })
        .collect();
    axum::Json(json!({"total": rows.len(), "tasks": rows})).into_response()
}

async fn console(
    State(fake): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let visit = {
        let mut visits = fake.visits.lock().unwrap();
        visits.push(Visit {
            task: id.clone(),
            authorization: authorization(&headers),
            ..Visit::default()
        });
        visits.len() - 1
    };
    if !fake.authorized(&headers) {
        return unauthorized();
    }
    ws.on_upgrade(move |socket| async move {
        play(socket, &fake, visit, &id).await;
        fake.update(visit, |v| v.ended = true);
    })
}

fn close(code: u16, reason: &str) -> AxumMessage {
    AxumMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn connected() -> AxumMessage {
    AxumMessage::Text(r#"{"type":"connected","connection_id":"c-42"}"#.into())
}

/// Each task's console behaves as its name says.
async fn play(mut socket: WebSocket, fake: &Fake, visit: usize, task: &str) {
    match task.split_once(':').map_or(task, |(_, spec)| spec) {
        // No session after all: closed before anything is said, as the real one does.
        "005-gone" => {
            let _ = socket.send(close(4004, "no rmux session")).await;
        }
        // Writes as fast as it can until the relay lets go of it.
        "004-floods" => {
            let _ = socket.send(connected()).await;
            let chunk = vec![b'x'; FLOOD_FRAME];
            loop {
                let sent = tokio::time::timeout(
                    Duration::from_secs(30),
                    socket.send(AxumMessage::Binary(chunk.clone().into())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
                fake.update(visit, |v| v.sent += FLOOD_FRAME);
            }
        }
        // Says a line, then ends the console normally.
        "002-ends" => {
            let _ = socket.send(connected()).await;
            let _ = socket
                .send(AxumMessage::Binary(PANE_2.to_vec().into()))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = socket.send(close(1000, "session ended")).await;
        }
        // Says a line, then fails.
        "003-fails" => {
            let _ = socket.send(connected()).await;
            let _ = socket
                .send(AxumMessage::Binary(PANE_2.to_vec().into()))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = socket.send(close(1011, "pane died")).await;
        }
        // Sends its frames, then records whatever comes up until the relay goes away.
        _ => {
            let frames = [
                connected(),
                AxumMessage::Binary(PANE.to_vec().into()),
                AxumMessage::Text(TEXT.into()),
                AxumMessage::Binary(PANE_2.to_vec().into()),
            ];
            for frame in frames {
                if socket.send(frame).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(message)) = socket.recv().await {
                let seen = match message {
                    AxumMessage::Text(t) => format!("text:{}", t.as_str()),
                    AxumMessage::Binary(b) => format!("binary:{b:?}"),
                    AxumMessage::Close(_) => break,
                    AxumMessage::Ping(_) | AxumMessage::Pong(_) => continue,
                };
                fake.update(visit, |v| v.received.push(seen));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The cockpit
// ---------------------------------------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Cockpit {
    server: Server,
    acme: String,
    globex: String,
    ingest_only: String,
    a: Shared,
    b: Shared,
    _store: Store,
}

/// Acme's items and tasks: (key, task, status in CFactory). AIFactory A also lists
/// globex's task as running, which no item of acme's works on.
const ACME_ITEMS: [(&str, &str, &str); 8] = [
    ("601", "shop:001-relay", "in_progress"),
    ("602", "shop:002-ends", "in_progress"),
    ("603", "shop:003-fails", "in_progress"),
    ("604", "shop:004-floods", "in_progress"),
    ("605", "shop:005-gone", "in_progress"),
    // Running here, done at AIFactory: no console.
    ("606", "shop:006-idle", "in_progress"),
    // Done here (the read model), still listed as running at AIFactory: no console.
    ("607", "shop:007-finished", "done"),
    // Not started here, and unknown to AIFactory: no console.
    ("608", "shop:008-queued", "backlog"),
];

/// Starts AIFactory A (acme's, token A) and B (globex's, token B), the server with A as
/// acme's through the start flags and B set by globex's administrator, and files each
/// tenant's items.
async fn cockpit() -> Cockpit {
    let a = Fake::new(
        TOKEN_A,
        vec![
            ("shop:001-relay", "in_progress", "Relay the pane"),
            ("shop:002-ends", "in_progress", "Ends soon"),
            ("shop:003-fails", "in_progress", "Fails soon"),
            ("shop:004-floods", "in_progress", "Floods"),
            ("shop:005-gone", "in_progress", "Gone"),
            ("shop:006-idle", "done", "Idle"),
            ("shop:007-finished", "in_progress", "Finished"),
            ("shop:009-other", "in_progress", "Globex's task"),
        ],
    );
    let b = Fake::new(
        TOKEN_B,
        vec![
            ("shop:009-other", "in_progress", "Globex's task"),
            ("shop:001-relay", "in_progress", "Acme's task"),
        ],
    );
    let (url_a, url_b) = (a.serve().await, b.serve().await);
    let store = Store::sqlite();
    let acme = store.create_key("read,ingest", Some("acme"));
    let ingest_only = store.create_key("ingest", Some("acme"));
    let globex = store.create_key("admin", Some("globex"));
    let server = Server::start_with(
        &store,
        &[
            "--tenant",
            "acme",
            "--aifactory-url",
            &url_a,
            "--aifactory-token",
            TOKEN_A,
            "--poll-interval-seconds",
            "0",
        ],
        &[],
    )
    .unwrap();
    let put = server
        .http
        .put(server.url("/api/services/aifactory"))
        .header("x-api-key", &globex)
        .json(&json!({"url": url_b, "token": TOKEN_B}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().await.unwrap());

    let at = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let acme_events: Vec<Value> = ACME_ITEMS
        .iter()
        .map(|(key, task, status)| {
            let mut e = event(&format!("acme-{key}"), key, "aifactory", task, status, &at);
            e["title"] = json!(format!("Acme item {key}"));
            e
        })
        .collect();
    let (status, body) = server
        .post_raw(
            "/api/events",
            &Value::Array(acme_events).to_string(),
            Some(&acme),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Globex holds an item under the same key, working on its own task.
    let mut globex_event = event(
        "globex-601",
        "601",
        "aifactory",
        "shop:009-other",
        "in_progress",
        &at,
    );
    globex_event["title"] = json!("Globex item 601");
    let (status, body) = server
        .post_raw("/api/events", &globex_event.to_string(), Some(&globex))
        .await;
    assert_eq!(status, 202, "{body}");
    Cockpit {
        server,
        acme,
        globex,
        ingest_only,
        a,
        b,
        _store: store,
    }
}

impl Cockpit {
    /// `GET /api/live-agents` with `key`.
    async fn live(&self, key: &str) -> Value {
        let (status, body) = self.server.get_with("/api/live-agents", Some(key)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The live list once `ok` holds for it (10 s at most).
    async fn live_when(&self, key: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let body = self.live(key).await;
            if ok(&body) {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `/api/live-agents/{item}/ws` with `key` and extra headers; the HTTP status
    /// when the upgrade is refused.
    async fn open(&self, item: &str, key: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
        let url = format!(
            "{}/api/live-agents/{item}/ws",
            self.server.api.replace("http://", "ws://")
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
        for (k, v) in headers {
            request.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket failed: {e}"),
        }
    }
}

/// The next data or close frame (pings skipped), within 10 s.
async fn next(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket has not ended without a close frame")
            .expect("a good frame");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// The close frame's code and reason; panics on anything else.
fn closed(message: Message) -> (u16, String) {
    match message {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Waits (30 s at most) until `fake` has seen a console of `task` end; that visit.
async fn ended(fake: &Fake, task: &str) -> Visit {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = fake
            .visits()
            .into_iter()
            .find(|v| v.task == task && v.ended)
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task}'s console never ended: {:?}",
            fake.visits()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_tenant_lists_its_own_running_agents_only() {
    let c = cockpit().await;
    let keys = |body: &Value| -> Vec<(String, String)> {
        body["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["correlation_key"].as_str().unwrap().to_owned(),
                    a["task_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let acme = c
        .live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    assert_eq!(acme["enabled"], true);
    assert_eq!(acme["detail"], Value::Null);
    let mut listed = keys(&acme);
    listed.sort();
    assert_eq!(
        listed,
        [
            ("601", "shop:001-relay"),
            ("602", "shop:002-ends"),
            ("603", "shop:003-fails"),
            ("604", "shop:004-floods"),
            ("605", "shop:005-gone"),
        ]
        .map(|(k, t)| (k.to_owned(), t.to_owned()))
    );
    let first = acme["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["correlation_key"] == "601")
        .unwrap();
    assert_eq!(first["title"], "Acme item 601");
    assert_eq!(first["service"], "aifactory");
    assert_eq!(first["status"], "in_progress");
    assert!(first["started_at"].as_str().is_some());

    let globex = c
        .live_when(&c.globex, |b| !b["agents"].as_array().unwrap().is_empty())
        .await;
    assert_eq!(
        keys(&globex),
        [("601".to_owned(), "shop:009-other".to_owned())]
    );
    assert_eq!(globex["agents"][0]["title"], "Globex item 601");

    for body in [&acme, &globex] {
        let text = body.to_string();
        assert!(!text.contains(TOKEN_A) && !text.contains(TOKEN_B), "{text}");
    }
    let (status, _) = c
        .server
        .get_with("/api/live-agents", Some(&c.ingest_only))
        .await;
    assert_eq!(status, 403, "the list needs the read scope");
    let (status, _) = c.server.get("/api/live-agents").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_console_relays_the_upstream_bytes_read_only_and_keeps_the_token_upstream() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    let mut socket = c.open("601", &c.acme, &[]).await.unwrap();
    // The `connected` handshake stays upstream; the output passes byte for byte.
    let frames = [
        next(&mut socket).await,
        next(&mut socket).await,
        next(&mut socket).await,
    ];
    assert_eq!(frames[0], Message::Binary(PANE.to_vec().into()));
    assert_eq!(frames[1], Message::Text(TEXT.into()));
    assert_eq!(frames[2], Message::Binary(PANE_2.to_vec().into()));

    // Whatever the browser types goes nowhere.
    socket
        .send(Message::Text("rm -rf /\r".into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(vec![3u8, 4].into()))
        .await
        .unwrap();
    socket.close(None).await.unwrap();
    let visit = ended(&c.a, "shop:001-relay").await;
    assert_eq!(
        visit.received,
        Vec::<String>::new(),
        "the browser reached the upstream"
    );
    assert_eq!(
        visit.authorization.as_deref(),
        Some(format!("Bearer {TOKEN_A}").as_str())
    );
    for frame in &frames {
        let bytes = match frame {
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Binary(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(TOKEN_A) && !text.contains("Bearer"),
            "{text}"
        );
    }

    // Globex's item under the same key relays globex's own task from its own AIFactory.
    let mut socket = c.open("601", &c.globex, &[]).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(PANE.to_vec().into())
    );
    socket.close(None).await.unwrap();
    let visit = ended(&c.b, "shop:009-other").await;
    assert_eq!(
        visit.authorization.as_deref(),
        Some(format!("Bearer {TOKEN_B}").as_str())
    );
    assert!(
        c.a.visits().iter().all(|v| v.task != "shop:009-other"
            && v.authorization.as_deref() != Some(&format!("Bearer {TOKEN_B}"))),
        "globex reached acme's AIFactory: {:?}",
        c.a.visits()
    );
    assert!(c.b.visits().iter().all(|v| v.task != "shop:001-relay"));
}

#[tokio::test]
async fn items_without_a_live_console_close_with_4404_and_a_reason() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    for (item, says) in [
        ("999", "no work item 999"),
        ("606", "no running agent"),
        ("607", "no running agent"),
        ("608", "no running agent"),
        ("605", "no console"),
    ] {
        let mut socket = c.open(item, &c.acme, &[]).await.unwrap();
        let (code, reason) = closed(next(&mut socket).await);
        assert_eq!(code, 4404, "{item}: {reason}");
        assert!(reason.contains(says), "{item}: {reason}");
    }
    // Globex has no item 602: acme's console is not globex's to watch.
    let mut socket = c.open("602", &c.globex, &[]).await.unwrap();
    assert_eq!(closed(next(&mut socket).await).0, 4404);
    assert!(c.a.visits().iter().all(|v| v.task != "shop:002-ends"));
}

#[tokio::test]
async fn consoles_are_off_unless_aifactory_says_rmux_true() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    for caps in [Caps::Off, Caps::Absent, Caps::Silent] {
        c.a.set_caps(caps);
        let body = c.live(&c.acme).await;
        assert_eq!(body["enabled"], false, "{caps:?}: {body}");
        assert_eq!(body["agents"], json!([]), "{caps:?}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("does not serve agent consoles"),
            "{caps:?}: {body}"
        );
        let mut socket = c.open("601", &c.acme, &[]).await.unwrap();
        let (code, reason) = closed(next(&mut socket).await);
        assert_eq!(code, 4404, "{caps:?}: {reason}");
        assert!(reason.contains("does not serve agent consoles"), "{reason}");
    }
    assert!(
        c.a.visits().is_empty(),
        "a console was opened while rmux was off"
    );
    c.a.set_caps(Caps::On);
    assert_eq!(c.live(&c.acme).await["enabled"], true);
}

#[tokio::test]
async fn the_end_of_a_console_closes_the_browser_clearly() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    let mut socket = c.open("602", &c.acme, &[]).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(PANE_2.to_vec().into())
    );
    assert_eq!(
        closed(next(&mut socket).await),
        (1000, "console ended".to_owned())
    );

    let mut socket = c.open("603", &c.acme, &[]).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(PANE_2.to_vec().into())
    );
    let (code, reason) = closed(next(&mut socket).await);
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("pane died"), "{reason}");
    assert!(
        !reason.contains("127.0.0.1"),
        "the reason names the upstream: {reason}"
    );
}

#[tokio::test]
async fn a_browser_that_does_not_read_is_dropped_and_the_upstream_let_go() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    let mut socket = c.open("604", &c.acme, &[]).await.unwrap();
    // Read nothing: the relay must give up on this browser and close the console.
    let visit = ended(&c.a, "shop:004-floods").await;
    assert!(visit.sent > 0);
    let mut relayed = 0usize;
    let close = loop {
        match next(&mut socket).await {
            Message::Binary(b) => relayed += b.len(),
            other => break other,
        }
    };
    let (code, reason) = closed(close);
    assert_eq!(code, 4408, "{reason}");
    assert!(reason.contains("too slow"), "{reason}");
    assert!(
        relayed <= visit.sent,
        "{relayed} relayed of {} sent",
        visit.sent
    );
}

#[tokio::test]
async fn the_console_needs_the_read_scope_and_the_cockpits_own_origin() {
    let c = cockpit().await;
    c.live_when(&c.acme, |b| b["agents"].as_array().unwrap().len() >= 5)
        .await;
    assert_eq!(c.open("601", &c.ingest_only, &[]).await.err(), Some(403));
    assert_eq!(
        c.open("601", &c.acme, &[("origin", "http://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let own = c.server.api.clone();
    let mut socket = c.open("601", &c.acme, &[("origin", &own)]).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(PANE.to_vec().into())
    );
    socket.close(None).await.unwrap();
    assert!(
        c.a.visits().iter().all(|v| v.task == "shop:001-relay"),
        "a refused browser reached the upstream: {:?}",
        c.a.visits()
    );
    assert_eq!(c.a.visits().len(), 1);
}

//! The built server pointed at a local TFactory that answers as the real web server did
//! (`crates/adapters/tfactory/tests/data`, seed set A): every captured exchange served
//! with its recorded status, content type and body, the captured `/ws/events` and
//! `/ws/progress` frames, and the recorded refusals of a wrong token (`/ws/events`
//! accepted and then closed with 4001, `/ws/progress` refused with 403). What the cockpit
//! makes of it is read back through its own API: the verification specs as WorkItems
//! keyed to join TFactory's completion events, a completion event landing on the
//! hydrated item, the process graph from the test plan, and the services view for a
//! good token, a wrong one, and a kanban list that fails.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Server, Store};
use serde_json::{Value, json};

/// The token the replay takes as good (the captures show it as `Bearer <token>`).
const TOKEN: &str = "tf-token";

/// The kanban board's own statuses, which a verification spec must never show.
const KANBAN: [&str; 5] = [
    "backlog",
    "in_progress",
    "ai_review",
    "human_review",
    "done",
];

// ---------------------------------------------------------------------------------------
// The replayed TFactory
// ---------------------------------------------------------------------------------------

/// One recorded answer.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn respond(&self) -> Response {
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, &self.content_type)
            .body(Body::from(self.body.clone()))
            .unwrap()
    }
}

/// The TFactory captures, as copied into the adapter crate.
fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/tfactory/tests/data")
}

fn read_json(relative: &str) -> Value {
    let path = captures().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The frames one captured feed carried, in order (`open`/`close` markers left out).
fn frames(relative: &str) -> Vec<String> {
    read_json(relative)["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.get("frame"))
        .map(Value::to_string)
        .collect()
}

/// One HTTP request the replay served: its request line and its Authorization header.
type Served = (String, Option<String>);

/// The replayed server, with a record of what was asked of it.
#[derive(Clone)]
struct Replay {
    /// `(method, path, variant)` → answer; the variant is `""`, `no-token`, `bad-token`
    /// or `after-recover`.
    answers: Arc<HashMap<(String, String, String), Answer>>,
    /// `(method, path)` → an answer that replaces the captured one for every token.
    overrides: Arc<HashMap<(String, String), Answer>>,
    /// Every HTTP request served: `(request line, Authorization header)`.
    requests: Arc<Mutex<Vec<Served>>>,
}

impl Replay {
    /// Every exchange listed in `index.json`.
    fn captured() -> Self {
        let index = read_json("index.json");
        let mut answers = HashMap::new();
        for exchange in index["exchanges"].as_array().unwrap() {
            let recorded = read_json(exchange["file"].as_str().unwrap());
            let answer = Answer {
                status: u16::try_from(recorded["status"].as_u64().unwrap()).unwrap(),
                content_type: recorded["response_headers"]["content-type"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                body: serde_json::to_vec(&recorded["body"]).unwrap(),
            };
            let key = (
                recorded["method"].as_str().unwrap().to_owned(),
                recorded["path"].as_str().unwrap().to_owned(),
                exchange["variant"].as_str().unwrap().to_owned(),
            );
            answers.insert(key, answer);
        }
        Self {
            answers: Arc::new(answers),
            overrides: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// The same server, answering `method path` with `answer` whatever the token.
    fn answering(mut self, method: &str, path: &str, answer: Answer) -> Self {
        Arc::make_mut(&mut self.overrides).insert((method.to_owned(), path.to_owned()), answer);
        self
    }

    /// The Authorization headers the cockpit sent on `request` (`GET /api/...`).
    fn authorizations(&self, request: &str) -> Vec<Option<String>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(line, _)| line == request)
            .map(|(_, auth)| auth.clone())
            .collect()
    }

    fn answer(&self, method: &Method, path: &str, variant: &str) -> Answer {
        let key = |variant: &str| (method.to_string(), path.to_owned(), variant.to_owned());
        if let Some(answer) = self.overrides.get(&(method.to_string(), path.to_owned())) {
            return answer.clone();
        }
        if let Some(answer) = self.answers.get(&key(variant)) {
            return answer.clone();
        }
        if !variant.is_empty() && path != "/api/health" {
            // Auth comes before routing on the real server: any /api route without a good
            // token answers as the captured list did.
            return self.answers[&("GET".into(), "/api/tasks".into(), variant.into())].clone();
        }
        // What the real server answers for a route it does not have.
        self.answers[&("GET".into(), "/api/specs".into(), String::new())].clone()
    }

    /// Serves the replay on a free loopback port; the base URL.
    async fn serve(self) -> String {
        let app = Router::new()
            .route("/ws/events", get(events))
            .route("/ws/progress", get(progress))
            .fallback(http)
            .with_state(self);
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

/// Which capture a request's `Authorization` header selects.
fn variant(headers: &HeaderMap) -> &'static str {
    match authorization(headers) {
        None => "no-token",
        Some(v) if v == format!("Bearer {TOKEN}") => "",
        Some(_) => "bad-token",
    }
}

async fn http(
    State(replay): State<Replay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    replay
        .requests
        .lock()
        .unwrap()
        .push((format!("{method} {path}"), authorization(&headers)));
    replay.answer(&method, &path, variant(&headers)).respond()
}

/// Sends `frames`, then keeps the socket open as the real server does.
async fn replay_frames(mut socket: WebSocket, frames: Vec<String>) {
    for frame in frames {
        if socket.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
    }
    while let Some(Ok(_)) = socket.recv().await {}
}

/// `/ws/events`: a good token hears the captured frames; any other is accepted and then
/// closed with 4001 `Unauthorized`, as `ws/auth-failures.json` records.
async fn events(headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let good = variant(&headers).is_empty();
    ws.on_upgrade(move |mut socket| async move {
        if good {
            replay_frames(socket, frames("ws/events.json")).await;
        } else {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 4001,
                    reason: "Unauthorized".into(),
                })))
                .await;
        }
    })
}

/// `/ws/progress`: a good token hears the captured frames; any other is refused with
/// HTTP 403 before the upgrade.
async fn progress(headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if !variant(&headers).is_empty() {
        return StatusCode::FORBIDDEN.into_response();
    }
    ws.on_upgrade(|socket| replay_frames(socket, frames("ws/progress.json")))
}

// ---------------------------------------------------------------------------------------
// The cockpit
// ---------------------------------------------------------------------------------------

/// The server, watching only TFactory at `base` with `token`, polling every second.
fn start(store: &Store, base: &str, token: &str) -> Server {
    Server::start_with(
        store,
        &[
            "--tfactory-url",
            base,
            "--tfactory-token",
            token,
            "--poll-interval-seconds",
            "1",
        ],
        &[],
    )
    .unwrap()
}

/// Polls `GET path` until `ok` holds (20 s at most); the last body.
async fn wait_for(server: &Server, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.get(path).await;
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: GET {path} still answers {status} {body}\nserver log:\n{}",
            server.log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_ok(server: &Server, path: &str) -> Value {
    let (status, body) = server.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The WorkItem list by key.
async fn items(server: &Server) -> BTreeMap<String, Value> {
    let body = get_ok(server, "/api/workitems?limit=500").await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["correlation_key"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

/// TFactory's entry in `/api/services`.
fn tfactory_view(services: &Value) -> Value {
    services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "tfactory")
        .cloned()
        .unwrap_or_else(|| panic!("no tfactory in {services}"))
}

/// TFactory's row of a `POST /api/refresh` report.
async fn refresh(server: &Server) -> Value {
    let (status, body) = server.post("/api/refresh", "{}").await;
    assert_eq!(status, 200, "POST /api/refresh: {body}");
    tfactory_view(&body)
}

/// `(key, test task, test status)` of every item.
fn test_stages(items: &BTreeMap<String, Value>) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(key, item)| {
            let test = &item["stages"]["test"];
            (
                key.clone(),
                test["task_id"].as_str().unwrap_or("-").to_owned(),
                test["status"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn row(key: &str, task: &str, status: &str) -> (String, String, String) {
    (key.to_owned(), task.to_owned(), status.to_owned())
}

/// The five verification specs, as the captured list has them.
fn hydrated_specs() -> Vec<(String, String, String)> {
    vec![
        row("142", "142-checkout-retry", "evaluating"),
        row("143", "143-login-flow", "triaged"),
        row("144", "144-cart-totals", "stuck"),
        row("145", "145-price-badge", "triaged"),
        row("tf-ingest-007", "ingest-007", "pending"),
    ]
}

/// TFactory's completion event for spec `142-checkout-retry`, in the shape of TFactory's
/// documented v1.2 envelope, later than the spec's last status.json update.
fn completion_142() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-senders/literal/tf-docs-envelope-v1.2.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let fields = [
        ("id", json!("6d0f3c1e-5a8b-4f2d-9c7e-1b2a3c4d5e6f")),
        ("correlation_key", json!("142")),
        ("task_id", json!("142-checkout-retry")),
        ("spec_id", json!("142-checkout-retry")),
        ("correlation_id", json!(142)),
        ("project_id", json!("shop")),
        ("repo", json!("acme/shop")),
        ("branch", json!("af/142-checkout-retry")),
        ("pr_number", json!(18)),
        ("updated_at", json!("2026-12-04T11:00:00+00:00")),
        ("time", json!("2026-12-04T11:00:00+00:00")),
        ("emitted_at", json!("2026-12-04T11:00:02+00:00")),
        (
            "traceparent",
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ),
        (
            "correlation",
            json!({
                "issue_number": 142,
                "spec_id": "142-checkout-retry",
                "branch": "af/142-checkout-retry",
                "pr_number": 18
            }),
        ),
    ];
    for (name, value) in fields {
        assert!(event.get(name).is_some(), "the envelope has no `{name}`");
        event[name] = value;
    }
    event
}

// ---------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------

/// The main check, on either store.
async fn specs_hydrate_and_join_completion_events(store: Store) {
    let replay = Replay::captured();
    let server = start(&store, &replay.clone().serve().await, TOKEN);

    // Every verification spec becomes a WorkItem: the issue ones under the bare number
    // their completion events carry, the spec-ingest one under its synthetic key, each
    // with the pipeline's status on its test stage.
    let list = wait_for(
        &server,
        "/api/workitems?limit=500",
        "the five verification specs",
        |b| b["count"] == 5,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 5, "{list}");
    let hydrated = items(&server).await;
    assert_eq!(test_stages(&hydrated), hydrated_specs());
    for (key, item) in &hydrated {
        let status = item["stages"]["test"]["status"].as_str().unwrap();
        assert!(!KANBAN.contains(&status), "{key}: the kanban's `{status}`");
        assert!(item["stages"]["plan"].is_null(), "{key}: {item}");
        assert!(item["stages"]["code"].is_null(), "{key}: {item}");
        assert_eq!(item["project"], "shop", "{key}");
    }
    let classes: Vec<_> = ["142", "144", "145", "tf-ingest-007"]
        .iter()
        .map(|k| {
            (
                *k,
                hydrated[*k]["stages"]["test"]["status_class"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("142", "running"),
            ("144", "stuck"),
            ("145", "done"),
            ("tf-ingest-007", "queued")
        ]
    );
    assert!(
        hydrated["145"]["stages"]["test"]["review_reason"].is_null(),
        "a clean triaged spec needs no reviewer: {}",
        hydrated["145"]
    );

    // The cockpit read the replay with the token it was given.
    let auths = replay.authorizations("GET /api/tfactory/tasks");
    assert!(!auths.is_empty(), "the verification list was never read");
    assert!(
        auths
            .iter()
            .all(|a| a.as_deref() == Some("Bearer tf-token")),
        "{auths:?}"
    );

    // One item by the number a completion event would carry.
    let retry = get_ok(&server, "/api/workitems/142").await;
    assert_eq!(retry["correlation_key"], "142");
    assert_eq!(retry["title"], "Checkout retries on 502");
    assert_eq!(retry["links"]["issue_number"], 142);
    assert_eq!(
        retry["links"]["tfactory_spec_ids"],
        json!(["142-checkout-retry"])
    );
    let ingest = get_ok(&server, "/api/workitems/tf-ingest-007").await;
    assert_eq!(ingest["stages"]["test"]["task_id"], "ingest-007");
    assert!(ingest["links"]["issue_number"].is_null(), "{ingest}");

    // The process graph of 142 comes from its test plan: one node per lane, browser
    // (phase 2) waiting on unit and api (phase 1); the statuses are lane_progress.
    let graph = get_ok(&server, "/api/workitems/142/process").await;
    assert_eq!(
        (
            &graph["available"],
            &graph["service"],
            &graph["stage"],
            &graph["task_id"]
        ),
        (
            &json!(true),
            &json!("tfactory"),
            &json!("test"),
            &json!("142-checkout-retry")
        ),
        "{graph}"
    );
    let nodes: Vec<_> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].clone(), n["status"].clone(), n["deps"].clone()))
        .collect();
    assert_eq!(
        nodes,
        [
            (json!("unit"), json!("passed"), json!([])),
            (json!("api"), json!("running"), json!([])),
            (json!("browser"), json!("pending"), json!(["unit", "api"])),
        ],
        "{graph}"
    );

    // TFactory online, both live feeds connected; the other services not configured.
    let services = wait_for(
        &server,
        "/api/services",
        "TFactory online with both feeds connected",
        |b| {
            let tf = tfactory_view(b);
            tf["health"]["status"] == "online"
                && tf["feeds"]["/ws/events"]["state"] == "connected"
                && tf["feeds"]["/ws/progress"]["state"] == "connected"
        },
    )
    .await;
    let tf = tfactory_view(&services);
    assert_eq!(tf["configured"], true, "{tf}");
    assert!(tf["health"]["detail"].is_null(), "{tf}");
    for other in services["services"].as_array().unwrap() {
        if other["service"] != "tfactory" {
            assert_eq!(other["configured"], false, "{other}");
        }
    }

    // TFactory's completion event for the spec lands on the hydrated item.
    let event = completion_142();
    let (status, answer) = server
        .post("/api/events/completion", &event.to_string())
        .await;
    assert!(status < 300, "{status} {answer}");
    // The event names its repository, so its key may come back repository-qualified;
    // either way it is the hydrated item's.
    let key = answer["correlation_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(key == "142" || key == "acme/shop#142", "{answer}");
    let report = refresh(&server).await;
    assert_eq!(
        (
            &report["health"],
            &report["tasks"],
            &report["complete"],
            &report["error"]
        ),
        (&json!("online"), &json!(5), &json!(true), &Value::Null),
        "{report}"
    );
    let joined = items(&server).await;
    let mut expected: Vec<&str> = ["143", "144", "145", "tf-ingest-007"].into();
    expected.push(&key);
    expected.sort_unstable();
    assert_eq!(
        joined.keys().collect::<Vec<_>>(),
        expected,
        "the event must land on the hydrated item, not open one of its own"
    );
    let retry = get_ok(&server, "/api/workitems/142").await;
    assert_eq!(retry["correlation_key"], json!(key), "{retry}");
    assert_eq!(retry["event_count"], 1, "{retry}");
    let test = &retry["stages"]["test"];
    assert_eq!(
        (
            &test["task_id"],
            &test["status"],
            &test["outcome"],
            &test["event_id"]
        ),
        (
            &json!("142-checkout-retry"),
            &json!("triaged"),
            &json!("success"),
            &event["id"]
        ),
        "the event is newer than the spec's status.json: {retry}"
    );
    let timeline = get_ok(&server, "/api/workitems/142/timeline").await;
    assert_eq!(timeline["correlation_key"], json!(key), "{timeline}");
    assert_eq!(timeline["event_count"], 1, "{timeline}");

    // Last, as it is the check most likely to fail: the triaged spec that needs a
    // reviewer (outcome human_review, flagged_count 2) carries the reason on its test
    // stage and reads as review, not done.
    let login = get_ok(&server, "/api/workitems/143").await;
    let test = &login["stages"]["test"];
    assert_eq!(
        (
            &test["status"],
            &test["review_reason"],
            &test["status_class"]
        ),
        (&json!("triaged"), &json!("human_review"), &json!("review")),
        "143's test stage: {test}"
    );
    let review = get_ok(&server, "/api/workitems?status=review&limit=500").await;
    let keys: Vec<_> = review["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["correlation_key"].clone())
        .collect();
    assert_eq!(keys, [json!("143")], "{review}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_hydrate_and_join_completion_events_on_sqlite() {
    specs_hydrate_and_join_completion_events(Store::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_hydrate_and_join_completion_events_on_postgres() {
    specs_hydrate_and_join_completion_events(Store::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_serves_hydration_of_the_same_sqlite_file_is_seen_within_2_seconds() {
    let store = Store::sqlite();
    // This server watches nothing; the other one, on the same file, hydrates from TFactory.
    let watcher = Server::start(&store);
    let replay = Replay::captured();
    let poller = start(&store, &replay.clone().serve().await, TOKEN);
    // Hydration appends no event: only the poller's own store reads show it at first.
    wait_for(
        &poller,
        "/api/workitems?limit=500",
        "the hydrated specs",
        |b| b["count"] == 5,
    )
    .await;
    let hydrated = Instant::now();
    // The watcher's read model (search and insights, not a store read) hears of it.
    loop {
        let (_, found) = watcher.get("/api/search?q=143-login-flow").await;
        if found["count"] == 1 {
            break;
        }
        assert!(
            hydrated.elapsed() < Duration::from_secs(2),
            "the other server's hydration was not seen: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, rollups) = watcher.get("/api/rollups").await;
    assert_eq!(rollups["items"], 5, "{rollups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_the_feed_and_health_unauthorized() {
    let replay = Replay::captured();
    let store = Store::sqlite();
    let server = start(&store, &replay.clone().serve().await, "wrong");

    let services = wait_for(
        &server,
        "/api/services",
        "TFactory and its event feed unauthorized",
        |b| {
            let tf = tfactory_view(b);
            tf["health"]["status"] == "unauthorized"
                && tf["feeds"]["/ws/events"]["state"] == "unauthorized"
                && tf["feeds"]["/ws/progress"]["state"] == "unauthorized"
        },
    )
    .await;
    let tf = tfactory_view(&services);
    assert_eq!(
        tf["feeds"],
        json!({
            "/ws/events": {
                "state": "unauthorized",
                "detail": "closed with code 4001 (Unauthorized)"
            },
            "/ws/progress": {
                "state": "unauthorized",
                "detail": "the server refused the upgrade with HTTP 403"
            }
        }),
        "{tf}"
    );
    let detail = tf["health"]["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("127.0.0.1"), "{detail}");
    assert!(!detail.contains("wrong"), "{detail}");

    // Nothing hydrates from a server that refuses the token.
    let report = refresh(&server).await;
    assert_eq!(report["health"], "unauthorized", "{report}");
    assert_eq!(report["tasks"], 0, "{report}");
    assert_eq!(get_ok(&server, "/api/workitems").await["count"], 0);

    // Every request carried the wrong token, never the good one.
    let auths: Vec<_> = replay
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(line, _)| line != "GET /api/health")
        .map(|(_, auth)| auth.clone())
        .collect();
    assert!(!auths.is_empty());
    assert!(
        auths.iter().all(|a| a.as_deref() == Some("Bearer wrong")),
        "{auths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_kanban_list_degrades_tfactory_but_the_specs_hydrate() {
    let replay = Replay::captured().answering(
        "GET",
        "/api/tasks",
        Answer {
            status: 500,
            content_type: "text/plain; charset=utf-8".into(),
            body: b"Internal Server Error".to_vec(),
        },
    );
    let store = Store::sqlite();
    let server = start(&store, &replay.clone().serve().await, TOKEN);

    let services = wait_for(&server, "/api/services", "TFactory degraded", |b| {
        tfactory_view(b)["health"]["status"] == "degraded"
    })
    .await;
    let tf = tfactory_view(&services);
    let detail = tf["health"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("GET /api/tasks"), "{tf}");
    assert!(detail.contains("500"), "{tf}");
    assert!(!detail.contains("/api/tfactory/tasks"), "{tf}");
    assert!(!detail.contains("127.0.0.1"), "{tf}");

    let report = refresh(&server).await;
    assert_eq!(
        (&report["health"], &report["tasks"], &report["complete"]),
        (&json!("degraded"), &json!(5), &json!(false)),
        "{report}"
    );
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("GET /api/tasks")),
        "{report}"
    );

    // The verification specs hydrate all the same.
    wait_for(
        &server,
        "/api/workitems?limit=500",
        "the five verification specs",
        |b| b["count"] == 5,
    )
    .await;
    assert_eq!(test_stages(&items(&server).await), hydrated_specs());
    assert!(replay.authorizations("GET /api/tasks").len() >= 2);
}

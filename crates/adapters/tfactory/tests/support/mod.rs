//! A local TFactory that answers as the real one did: every exchange captured under
//! `tests/data/http` is served with its recorded status, content type and body, picked
//! by the request's token (the good one, none, or a wrong one), and the captured frames
//! of `tests/data/ws` are replayed on `/ws/events` and `/ws/progress`, with the recorded
//! refusals for a missing or wrong token.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_tfactory::{TFactory, Tz};
use cfactory_upstream_http::UpstreamConfig;
use serde_json::Value;

/// The token the replayed server takes as good (the captures show it as `<token>`).
pub const TOKEN: &str = "tf-token";

/// The kanban project's id in the captures.
pub const PROJECT: &str = "3f6c1a2e-8b7d-4c1e-9a55-2d0c7e4b9f10";

/// One recorded answer.
#[derive(Clone, Debug)]
pub struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    /// An answer the captures do not hold, such as the 500 the real server gives on a
    /// broken project file.
    pub fn new(status: u16, content_type: &str, body: &str) -> Self {
        Self {
            status,
            content_type: content_type.to_owned(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn respond(&self) -> Response {
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, &self.content_type)
            .body(Body::from(self.body.clone()))
            .unwrap()
    }
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read_json(relative: &str) -> Value {
    let text = std::fs::read_to_string(data().join(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The frames one captured feed carried, in order.
fn frames(relative: &str) -> Vec<String> {
    read_json(relative)["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.get("frame"))
        .map(Value::to_string)
        .collect()
}

/// The replayed server, with a record of what was asked of it.
#[derive(Clone)]
pub struct Replay {
    /// `(method, path, variant)` → answer; the variant is `""`, `no-token`,
    /// `bad-token` or `after-recover`.
    answers: Arc<HashMap<(String, String, String), Answer>>,
    /// `(method, path)` → an answer that replaces the captured one for every token.
    overrides: Arc<HashMap<(String, String), Answer>>,
    /// Every HTTP request line served (`GET /api/tasks`).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// WebSocket dials per feed path.
    pub dials: Arc<Mutex<HashMap<String, usize>>>,
}

impl Replay {
    /// Every exchange listed in `index.json`.
    pub fn captured() -> Self {
        let index = read_json("index.json");
        let mut answers = HashMap::new();
        for exchange in index["exchanges"].as_array().unwrap() {
            let file = exchange["file"].as_str().unwrap();
            let recorded = read_json(file);
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
            dials: Arc::default(),
        }
    }

    /// The same server, answering `method path` with `answer` whatever the token.
    pub fn answering(mut self, method: &str, path: &str, answer: Answer) -> Self {
        Arc::make_mut(&mut self.overrides).insert((method.to_owned(), path.to_owned()), answer);
        self
    }

    /// The captured answer to `GET path` with the good token.
    pub fn captured_answer(&self, path: &str) -> Answer {
        self.answers[&("GET".to_owned(), path.to_owned(), String::new())].clone()
    }

    /// How many times `request` (`GET /api/...`) was served.
    pub fn count(&self, request: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == request)
            .count()
    }

    /// How many times the feed at `path` was dialled.
    pub fn dials(&self, path: &str) -> usize {
        self.dials.lock().unwrap().get(path).copied().unwrap_or(0)
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
            // Auth comes before routing on the real server: any /api route without a
            // good token answers as the captured list did.
            return self.answers[&("GET".into(), "/api/tasks".into(), variant.into())].clone();
        }
        // What the real server answers for a route it does not have.
        self.answers[&("GET".into(), "/api/specs".into(), String::new())].clone()
    }

    /// Serves the replay on a free local port; the base URL.
    pub async fn serve(self) -> String {
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

/// Which capture a request's `Authorization` header selects.
fn variant(headers: &HeaderMap) -> &'static str {
    match headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap())
    {
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
        .push(format!("{method} {path}"));
    replay.answer(&method, &path, variant(&headers)).respond()
}

fn dialled(replay: &Replay, path: &str) {
    *replay
        .dials
        .lock()
        .unwrap()
        .entry(path.to_owned())
        .or_default() += 1;
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
/// closed with 4001, as `ws/auth-failures.json` records.
async fn events(
    State(replay): State<Replay>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    dialled(&replay, "/ws/events");
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
async fn progress(
    State(replay): State<Replay>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    dialled(&replay, "/ws/progress");
    if !variant(&headers).is_empty() {
        return StatusCode::FORBIDDEN.into_response();
    }
    ws.on_upgrade(|socket| replay_frames(socket, frames("ws/progress.json")))
}

/// A TFactory adapter for `base` with `token`, reading zone-less times in `zone`.
pub fn tfactory(base: &str, token: Option<&str>, zone: Tz) -> TFactory {
    let config =
        UpstreamConfig::new(base, token.map(str::to_owned), Duration::from_secs(5)).unwrap();
    TFactory::with_timezone(config, zone)
}

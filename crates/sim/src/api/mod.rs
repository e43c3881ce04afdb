//! The three services' HTTP and WebSocket surfaces, as the real servers serve them.
//! Handlers only translate between the wire and the [`crate::world::World`].

pub(crate) mod aifactory;
pub(crate) mod pfactory;
pub(crate) mod tfactory;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::driver::Shared;
use crate::world::{Feed, Refusal};

/// The state every handler sees.
pub(crate) type AppState = Arc<Shared>;

/// Adds the health routes, the bearer-token check and the state to a service's router.
pub(crate) fn finish(router: Router<AppState>, shared: AppState) -> Router {
    router
        .route("/api/health", get(health))
        .route("/health", get(health))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .with_state(shared)
}

/// `GET /api/health`: answers with or without a token.
async fn health() -> Response {
    reply(
        StatusCode::OK,
        json!({
            "status": "healthy",
            "version": "sim",
            "provider_auth": {
                "providers": [
                    {"name": "anthropic", "configured": true, "validity": "valid"},
                    {"name": "openai", "configured": false},
                    {"name": "ollama", "configured": false},
                ],
                "any_configured": true,
                "any_invalid": false,
            },
        }),
    )
}

/// The token a request presents: `Authorization: Bearer <token>` or the legacy
/// `?token=`.
fn presented(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let by_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned());
    by_header.or_else(|| {
        uri.query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
    })
}

/// Whether a presented token lets a request in; the refusal's message otherwise.
fn authorize(shared: &Shared, token: Option<&str>) -> Result<(), &'static str> {
    let Some(required) = &shared.token else {
        return Ok(());
    };
    match token {
        None => Err("Missing Authorization header"),
        Some(t) if t == required || shared.admin_token.as_deref() == Some(t) => Ok(()),
        Some(_) => Err("Invalid token"),
    }
}

/// Whether a request may do what only an administrator may: any request when no
/// admin token is configured, else only one presenting it.
pub(crate) fn is_admin(shared: &Shared, headers: &HeaderMap, uri: &Uri) -> bool {
    shared
        .admin_token
        .as_deref()
        .is_none_or(|admin| presented(headers, uri).as_deref() == Some(admin))
}

/// 401 `{"error": …}` unless the request carries the configured token. Health
/// answers anyone; `/ws/events` completes its handshake and closes with 4001 itself;
/// the other feeds refuse the handshake with 403.
async fn require_token(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/api/health" | "/health" | "/ws/events") {
        return next.run(req).await;
    }
    let token = presented(req.headers(), req.uri());
    if let Err(why) = authorize(&shared, token.as_deref()) {
        if path.starts_with("/ws/") {
            return StatusCode::FORBIDDEN.into_response();
        }
        return reply(StatusCode::UNAUTHORIZED, json!({"error": why}));
    }
    next.run(req).await
}

/// A JSON answer with a status.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A refusal the way the FastAPI servers answer: 400, 404 or 409 with a `detail`.
pub(crate) fn refused(r: Refusal) -> Response {
    let (status, detail) = match r {
        Refusal::Invalid(m) => (StatusCode::BAD_REQUEST, m),
        Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m),
        Refusal::Conflict(m) => (StatusCode::CONFLICT, m),
    };
    reply(status, json!({"detail": detail}))
}

/// FastAPI's 422 for a missing field.
pub(crate) fn missing(field: &str, place: &str) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"detail": [{"loc": [place, field], "msg": "Field required", "type": "missing"}]}),
    )
}

/// Parses a JSON body leniently: an empty or malformed body reads as `{}`.
pub(crate) fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
}

/// Where a service's live feeds come from.
#[derive(Clone, Copy)]
pub(crate) struct FeedSource {
    /// The service's feeds.
    pub(crate) feed: fn(&Shared) -> &Feed,
    /// The ids of the runs the service's own server started, for `running_tasks`.
    pub(crate) running: fn(&Shared) -> Vec<String>,
}

/// `/ws/events`, `/ws/progress` and `/ws/tasks/{id}/progress` for one service.
pub(crate) fn feed_routes(router: Router<AppState>, source: FeedSource) -> Router<AppState> {
    router
        .route(
            "/ws/events",
            get(
                move |ws: WebSocketUpgrade,
                      State(s): State<AppState>,
                      headers: HeaderMap,
                      uri: Uri| async move {
                    let allowed = authorize(&s, presented(&headers, &uri).as_deref()).is_ok();
                    let rx = (source.feed)(&s).events.subscribe();
                    let (quiet, stop) = (s.ping_every(), s.shutdown.clone());
                    ws.on_upgrade(move |socket| async move {
                        if allowed {
                            events_pump(socket, rx, quiet, stop).await;
                        } else {
                            unauthorized(socket).await;
                        }
                    })
                },
            ),
        )
        .route(
            "/ws/progress",
            get(move |ws: WebSocketUpgrade, State(s): State<AppState>| async move {
                let rx = (source.feed)(&s).progress.subscribe();
                ws.on_upgrade(move |socket| progress_pump(socket, rx, None, s, source))
            }),
        )
        .route(
            "/ws/tasks/{id}/progress",
            get(
                move |ws: WebSocketUpgrade, State(s): State<AppState>, Path(id): Path<String>| async move {
                    let rx = (source.feed)(&s).progress.subscribe();
                    ws.on_upgrade(move |socket| progress_pump(socket, rx, Some(id), s, source))
                },
            ),
        )
}

/// What `/ws/events` does with a client that brought no valid token.
async fn unauthorized(mut socket: WebSocket) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4001,
            reason: "Unauthorized".into(),
        })))
        .await;
}

/// Forwards `/ws/events` frames to one client and sends `{"type": "ping"}` whenever
/// the client has said nothing for `quiet` (a text `ping` is answered `pong`).
async fn events_pump(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<String>,
    quiet: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if *stop.borrow_and_update() {
        return;
    }
    let keepalive = tokio::time::sleep(quiet);
    tokio::pin!(keepalive);
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = &mut keepalive => {
                let ping = json!({"type": "ping"}).to_string();
                if socket.send(Message::Text(ping.into())).await.is_err() {
                    break;
                }
                keepalive.as_mut().reset(tokio::time::Instant::now() + quiet);
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "ping" && socket.send(Message::Text("pong".into())).await.is_err() {
                        break;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + quiet);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

/// `/ws/progress`: `connected`, then a `heartbeat` every few seconds and the
/// `progress` frames (only one task's, for `/ws/tasks/{id}/progress`).
async fn progress_pump(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<String>,
    only: Option<String>,
    shared: AppState,
    source: FeedSource,
) {
    let mut stop = shared.shutdown.clone();
    if *stop.borrow_and_update() {
        return;
    }
    let connected = json!({
        "type": "connected",
        "running_tasks": (source.running)(&shared),
        "message": "Connected to unified progress stream",
    });
    if socket
        .send(Message::Text(connected.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ticker = tokio::time::interval(shared.heartbeat_every());
    ticker.tick().await;
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    let wanted = only.as_ref().is_none_or(|id| {
                        serde_json::from_str::<Value>(&text)
                            .is_ok_and(|v| v["task_id"].as_str() == Some(id))
                    });
                    if wanted && socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ticker.tick() => {
                let beat = json!({"type": "heartbeat", "running_tasks": (source.running)(&shared)});
                if socket.send(Message::Text(beat.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

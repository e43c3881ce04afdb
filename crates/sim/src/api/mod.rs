//! The three services' HTTP and WebSocket surfaces, as their code serves them (and
//! the published YAML's spellings where those differ). Handlers only translate
//! between the wire and the [`crate::world::World`].

pub(crate) mod aifactory;
pub(crate) mod pfactory;
pub(crate) mod tfactory;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::driver::Shared;
use crate::world::{Feed, Refusal};

/// The state every handler sees.
pub(crate) type AppState = Arc<Shared>;

/// Adds the bearer-token check and the state to a service's router.
pub(crate) fn finish(router: Router<AppState>, shared: AppState) -> Router {
    router
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .with_state(shared)
}

/// 401 unless the request carries the configured token, as `Authorization:
/// Bearer <token>` or the legacy `?token=`.
async fn require_token(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &shared.token {
        let by_header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        let by_query = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=") == Some(token))
        });
        if !by_header && !by_query {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"detail": "Not authenticated"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// A JSON answer with a status.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A refusal the way current builds answer: 404 or 409 with a `detail`.
pub(crate) fn refused(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(m) => reply(
            StatusCode::NOT_FOUND,
            json!({"detail": m, "error": "not_found"}),
        ),
        Refusal::Conflict(m) => reply(
            StatusCode::CONFLICT,
            json!({"success": false, "detail": m, "error": m}),
        ),
    }
}

/// A refusal the way older AIFactory builds answer: 200 with `success: false`.
pub(crate) fn refused_legacy(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(m) => reply(
            StatusCode::NOT_FOUND,
            json!({"detail": m, "error": "not_found"}),
        ),
        Refusal::Conflict(m) => reply(StatusCode::OK, json!({"success": false, "error": m})),
    }
}

/// Parses a JSON body leniently: an empty or malformed body reads as `{}`.
pub(crate) fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
}

/// `/ws/events`, `/ws/progress` and `/ws/tasks/{id}/progress` for one service.
pub(crate) fn feed_routes(
    router: Router<AppState>,
    pick: fn(&Shared) -> &Feed,
) -> Router<AppState> {
    router
        .route(
            "/ws/events",
            get(move |ws: WebSocketUpgrade, State(s): State<AppState>| async move {
                let rx = pick(&s).events.subscribe();
                upgrade(ws, &s, rx, None)
            }),
        )
        .route(
            "/ws/progress",
            get(move |ws: WebSocketUpgrade, State(s): State<AppState>| async move {
                let rx = pick(&s).progress.subscribe();
                upgrade(ws, &s, rx, None)
            }),
        )
        .route(
            "/ws/tasks/{id}/progress",
            get(
                move |ws: WebSocketUpgrade, State(s): State<AppState>, Path(id): Path<String>| async move {
                    let rx = pick(&s).progress.subscribe();
                    upgrade(ws, &s, rx, Some(id))
                },
            ),
        )
}

fn upgrade(
    ws: WebSocketUpgrade,
    shared: &Shared,
    rx: broadcast::Receiver<String>,
    only: Option<String>,
) -> Response {
    let ping = shared.ping_every();
    let stop = shared.shutdown.clone();
    ws.on_upgrade(move |socket| pump(socket, rx, only, ping, stop))
}

/// Forwards feed frames to one client (optionally only one task's), pings it, and
/// closes on shutdown.
async fn pump(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<String>,
    only: Option<String>,
    ping: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(ping);
    ticker.tick().await;
    if *stop.borrow_and_update() {
        return;
    }
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
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
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

//! The cockpit WebSocket at `/api/ws` and `/ws/cockpit`: read scope, same-origin only
//! for browsers, a bounded snapshot first, then every change of the caller's tenant as
//! the hub publishes it, with pings to keep proxies from closing an idle socket.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{ListQuery, Scope};
use serde_json::json;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// Items in the first frame.
pub const SNAPSHOT_ITEMS: u32 = 100;
/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// How often a stream asks whether its credential still holds: a revoked key, an ended
/// session or a first key ending open mode closes the stream (4401) within this.
pub const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// The close code of a stream whose credential no longer holds.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Upgrades to the cockpit stream: a WebSocket that sends a snapshot, then every change
/// of the caller's tenant. Only the cockpit's own origin may open it (a browser's
/// `Origin` must match `Host`). Also served at `/ws/cockpit`.
#[utoipa::path(
    get,
    path = "/api/ws",
    tag = "live",
    operation_id = "cockpitStream",
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "A foreign origin, or the key lacks the read scope", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let ws = ws.map_err(|e| ApiError::BadRequest {
        detail: format!("this route upgrades to a WebSocket: {}", e.body_text()),
    })?;
    if !crate::guard::browser_origin_allowed(&state.own_names, &headers) {
        return Err(ApiError::Forbidden {
            detail: "this WebSocket only accepts the cockpit's own origin".into(),
        });
    }
    let tenant = caller.tenant;
    let credential = caller.credential;
    Ok(ws.on_upgrade(move |socket| stream(socket, state, tenant, credential)))
}

async fn snapshot(state: &AppState, tenant: &TenantId) -> Option<String> {
    let now = state.clock.now();
    let query = ListQuery {
        stage: None,
        status: None,
        service: None,
        text: None,
        limit: SNAPSHOT_ITEMS,
        cursor: None,
        stalled_before: now - state.stall_deadline,
    };
    match state.work.list(tenant, &query).await {
        Ok(page) => {
            let items: Vec<_> = page
                .items
                .into_iter()
                .map(|mut i| {
                    i.refresh_liveness(now, state.stall_deadline);
                    crate::api::dto::WorkItem::from(&i)
                })
                .collect();
            Some(
                json!({
                    "type": "snapshot",
                    "counts": {"workitems": page.count, "stalled": page.stalled_count},
                    "items": items,
                    "next_cursor": page.next_cursor.map(|c| c.encode()),
                })
                .to_string(),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "cockpit snapshot failed");
            None
        }
    }
}

async fn stream(
    mut socket: WebSocket,
    state: AppState,
    tenant: TenantId,
    credential: crate::auth::Credential,
) {
    // Subscribe before reading the snapshot so no change falls between the two.
    let mut sub = state.hub.subscribe(&tenant);
    let Some(first) = snapshot(&state, &tenant).await else {
        let _ = socket
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1011,
                reason: "the store is unavailable".into(),
            })))
            .await;
        state.hub.unsubscribe(&tenant, sub.id);
        return;
    };
    if socket.send(Message::Text(first.into())).await.is_err() {
        state.hub.unsubscribe(&tenant, sub.id);
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    loop {
        tokio::select! {
            _ = recheck.tick() => {
                // A store that cannot answer is not a revocation: keep serving and ask again.
                if let Ok(false) = credential.still_holds(&state).await {
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: CLOSE_UNAUTHORIZED,
                        reason: "the key or session no longer holds; sign in again".into(),
                    }))).await;
                    break;
                }
            }
            frame = sub.frames.recv() => match frame {
                Some(frame) => {
                    if socket.send(Message::Text(frame.as_ref().into())).await.is_err() {
                        break;
                    }
                }
                None => {
                    // The hub dropped this client for falling behind.
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1013,
                        reason: "client fell behind; reconnect".into(),
                    }))).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.hub.unsubscribe(&tenant, sub.id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_the_cockpits_own_origin_opens_the_stream() {
        use crate::guard::{OwnNames, browser_origin_allowed};
        let names = OwnNames::default();
        let allowed = |origin, host| browser_origin_allowed(&names, &headers(origin, host));
        assert!(allowed(None, "127.0.0.1:3110"));
        assert!(allowed(Some("http://127.0.0.1:3110"), "127.0.0.1:3110"));
        assert!(!allowed(Some("http://evil.example"), "127.0.0.1:3110"));
        assert!(!allowed(Some("http://127.0.0.1:3111"), "127.0.0.1:3110"));
        assert!(!allowed(Some("null"), "127.0.0.1:3110"));
    }
}

//! Live feeds: follows an upstream's `/ws/events` and `/ws/progress` WebSockets, turns the
//! frames it understands into [`LiveUpdate`]s, and reconnects with capped, jittered
//! exponential backoff for as long as the caller keeps the future.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use cfactory_domain::event::Service;
use cfactory_domain::ports::LiveSink;
use cfactory_domain::upstream::LiveUpdate;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

use crate::client::UpstreamClient;
use crate::fields;

/// First reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A connection that stayed up this long was healthy, even if it carried nothing.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The services ping every 30 s; this much silence means the connection is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(75);

/// Follows each of `paths` (e.g. `/ws/events`, `/ws/progress`) on `client`'s upstream
/// at once, handing every understood frame to `sink` as `service`'s update. Garbage and
/// unknown frames are logged and skipped; a dropped or refused connection is retried
/// after a backoff that doubles from 250 ms to 30 s (with jitter) and starts over after
/// a healthy connection. Never returns: drop the future to stop.
pub async fn follow_feeds(
    client: &UpstreamClient,
    service: Service,
    paths: &[&str],
    sink: Arc<dyn LiveSink>,
) {
    futures::future::join_all(
        paths
            .iter()
            .map(|path| follow_one(client, service, path, sink.clone())),
    )
    .await;
}

async fn follow_one(
    client: &UpstreamClient,
    service: Service,
    path: &str,
    sink: Arc<dyn LiveSink>,
) {
    let mut backoff = Backoff::new();
    loop {
        match connect(client, path).await {
            Ok(socket) => {
                tracing::info!(service = %service, feed = path, "live feed connected");
                if pump(socket, service, path, sink.as_ref()).await {
                    backoff.reset();
                }
            }
            Err(error) => {
                tracing::warn!(service = %service, feed = path, %error, "live feed could not connect");
            }
        }
        let delay = backoff.next_delay();
        tracing::debug!(service = %service, feed = path, ?delay, "live feed reconnecting");
        tokio::time::sleep(delay).await;
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(client: &UpstreamClient, path: &str) -> Result<Socket, String> {
    let config = client.config();
    let url = config.ws_url(path);
    if url.starts_with("wss://") {
        ensure_tls_provider();
    }
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| config.scrub(&e.to_string()))?;
    if let Some(token) = config.token() {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    match tokio::time::timeout(config.timeout(), tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(config.scrub(&e.to_string())),
        Err(_) => Err("handshake timed out".to_owned()),
    }
}

/// wss:// needs one rustls crypto provider for the process; the workspace compiles two,
/// so pick one unless someone already did.
fn ensure_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads `socket` until it closes, fails or goes silent. Returns whether the connection
/// was healthy (stayed up a while, or carried an understood frame).
async fn pump(mut socket: Socket, service: Service, path: &str, sink: &dyn LiveSink) -> bool {
    let opened = Instant::now();
    let mut understood = false;
    loop {
        let message = match tokio::time::timeout(IDLE_LIMIT, socket.next()).await {
            Err(_) => {
                tracing::warn!(service = %service, feed = path, "live feed went silent");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                tracing::warn!(service = %service, feed = path, %error, "live feed failed");
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text.as_str().to_owned(),
            Message::Binary(bytes) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => text,
                Err(_) => {
                    tracing::warn!(service = %service, feed = path, "skipped a binary frame");
                    continue;
                }
            },
            Message::Ping(data) => {
                // tungstenite queues the pong itself; sending it now keeps it prompt.
                let _ = socket.send(Message::Pong(data)).await;
                continue;
            }
            Message::Close(_) => break,
            Message::Pong(_) | Message::Frame(_) => continue,
        };
        match parse_frame(&text) {
            Frame::Update(update) => {
                understood = true;
                sink.live_update(service, update);
            }
            Frame::Ignored(kind) => {
                tracing::trace!(service = %service, feed = path, kind, "ignored a frame");
            }
            Frame::Garbage(why) => {
                tracing::warn!(service = %service, feed = path, why, "skipped a garbage frame");
            }
        }
    }
    understood || opened.elapsed() >= HEALTHY_AFTER
}

/// What one text frame meant.
#[derive(Debug, PartialEq)]
enum Frame {
    /// A status or progress update.
    Update(LiveUpdate),
    /// A well-formed frame of a type the cockpit does not use.
    Ignored(String),
    /// Not JSON, or a known type missing what it needs.
    Garbage(&'static str),
}

fn parse_frame(text: &str) -> Frame {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Frame::Garbage("not JSON");
    };
    let Some(kind) = frame.get("type").and_then(Value::as_str) else {
        return Frame::Garbage("no type");
    };
    let payload = frame.get("payload").unwrap_or(&frame);
    let task_id = fields::text(payload, &["taskId", "task_id", "id"]);
    let now = Utc::now();
    let update = match kind {
        "task:status" => {
            let Some(status) = fields::text(payload, &["status"]) else {
                return Frame::Garbage("task:status without a status");
            };
            task_id.map(|task_id| LiveUpdate::Status {
                task_id,
                status,
                review_reason: fields::text(payload, &["reviewReason", "review_reason"]),
                at: now,
            })
        }
        "task:progress" => task_id.map(|task_id| LiveUpdate::Progress {
            task_id,
            phase: fields::text(payload, &["phase"]),
            percent: percent(payload, &["percentage", "progress", "percent"]),
            message: fields::text(payload, &["message"]),
            at: now,
        }),
        "task:update" => task_id.map(|task_id| LiveUpdate::Progress {
            task_id,
            phase: fields::text(payload, &["executionProgress.phase", "phase"]),
            percent: percent(
                payload,
                &[
                    "executionProgress.phaseProgress",
                    "executionProgress.overallProgress",
                ],
            ),
            message: fields::text(payload, &["executionProgress.message"]),
            at: now,
        }),
        "progress" => task_id.map(|task_id| LiveUpdate::Progress {
            task_id,
            phase: fields::text(payload, &["phase"]),
            percent: percent(payload, &["percentage", "percent", "progress"]),
            message: progress_message(payload),
            at: fields::time(payload, &["timestamp"]).unwrap_or(now),
        }),
        other => return Frame::Ignored(other.to_owned()),
    };
    match update {
        Some(update) => Frame::Update(update),
        None => Frame::Garbage("no task id"),
    }
}

fn percent(payload: &Value, paths: &[&str]) -> Option<f64> {
    fields::float(payload, paths).map(|p| p.clamp(0.0, 100.0))
}

/// The progress message, with the subtask position when the frame gives one
/// (the domain's update has no field of its own for it).
fn progress_message(payload: &Value) -> Option<String> {
    let message = fields::text(payload, &["message"]);
    let subtask = fields::text(payload, &["subtask"]);
    let position = match (
        fields::number(payload, &["subtask_index"]),
        fields::number(payload, &["subtask_total"]),
    ) {
        (Some(i), Some(n)) => Some(format!("{}/{n}", i + 1)),
        _ => None,
    };
    match (message, subtask, position) {
        (Some(m), None, None) => Some(m),
        (m, s, p) => {
            let head = [s, p].into_iter().flatten().collect::<Vec<_>>().join(" ");
            match (m, head.is_empty()) {
                (None, true) => None,
                (None, false) => Some(format!("subtask {head}")),
                (Some(m), true) => Some(m),
                (Some(m), false) => Some(format!("{m} (subtask {head})")),
            }
        }
    }
}

/// Exponential backoff from [`BACKOFF_START`] to [`BACKOFF_CAP`], each delay drawn from
/// its upper half so reconnecting clients spread out.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn new() -> Self {
        Self { attempt: 0 }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_delay(&mut self) -> Duration {
        let ceiling = BACKOFF_START
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(BACKOFF_CAP);
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(text: &str) -> LiveUpdate {
        match parse_frame(text) {
            Frame::Update(u) => u,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn event_frames() {
        let LiveUpdate::Status {
            task_id, status, ..
        } = update(r#"{"type":"task:status","payload":{"taskId":"p:001","status":"ai_review"}}"#)
        else {
            panic!("not a status")
        };
        assert_eq!((task_id.as_str(), status.as_str()), ("p:001", "ai_review"));

        let LiveUpdate::Progress {
            task_id, percent, ..
        } = update(r#"{"type":"task:progress","payload":{"taskId":"p:002","percentage":40}}"#)
        else {
            panic!("not progress")
        };
        assert_eq!((task_id.as_str(), percent), ("p:002", Some(40.0)));

        let LiveUpdate::Progress { phase, percent, .. } = update(
            r#"{"type":"task:update","payload":{"taskId":"p:3","executionProgress":{"phase":"coding","phaseProgress":55.5}}}"#,
        ) else {
            panic!("not progress")
        };
        assert_eq!((phase.as_deref(), percent), (Some("coding"), Some(55.5)));
    }

    #[test]
    fn progress_frames() {
        let LiveUpdate::Progress {
            task_id,
            phase,
            percent,
            message,
            at,
        } = update(
            r#"{"type":"progress","task_id":"spec-1","phase":"qa_review","message":"checking","timestamp":"2026-03-01T10:00:00Z","subtask":"s2","subtask_index":1,"subtask_total":4,"percentage":250}"#,
        )
        else {
            panic!("not progress")
        };
        assert_eq!(task_id, "spec-1");
        assert_eq!(phase.as_deref(), Some("qa_review"));
        assert_eq!(percent, Some(100.0));
        assert_eq!(message.as_deref(), Some("checking (subtask s2 2/4)"));
        assert_eq!(at.to_rfc3339(), "2026-03-01T10:00:00+00:00");
    }

    #[test]
    fn garbage_and_unknown_frames_are_not_updates() {
        assert_eq!(parse_frame("{nope"), Frame::Garbage("not JSON"));
        assert_eq!(parse_frame(r#"{"payload":{}}"#), Frame::Garbage("no type"));
        assert_eq!(
            parse_frame(r#"{"type":"task:log","payload":{"taskId":"a"}}"#),
            Frame::Ignored("task:log".into())
        );
        assert_eq!(
            parse_frame(r#"{"type":"task:status","payload":{"status":"done"}}"#),
            Frame::Garbage("no task id")
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first <= BACKOFF_START && first >= BACKOFF_START / 2);
        for _ in 0..20 {
            assert!(b.next_delay() <= BACKOFF_CAP);
        }
        assert!(b.next_delay() >= BACKOFF_CAP / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_START);
    }
}

//! Live feeds: follows an upstream's `/ws/events` and `/ws/progress` WebSockets, turns the
//! frames it understands into [`LiveUpdate`]s, tells the sink each feed's state
//! (connected, refused as unauthorized, disconnected), and reconnects with capped,
//! jittered exponential backoff for as long as the caller keeps the future.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use cfactory_domain::event::Service;
use cfactory_domain::ports::LiveSink;
use cfactory_domain::upstream::{FeedState, LiveUpdate};
use chrono::{TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::client::UpstreamClient;
use crate::config::UpstreamConfig;
use crate::fields;

/// First reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest reconnect delay, and the delay after the server refused the credentials.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A connection that stayed up this long was healthy, even if it carried nothing.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The services ping every 30 s; this much silence means the connection is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(75);
/// A feed that neither spoke nor closed this long after the handshake was accepted.
/// TFactory completes the handshake and only then closes a bad token's socket, and its
/// `/ws/events` says nothing until its first ping, so "connected" waits for a frame or
/// this long.
const SETTLE: Duration = Duration::from_secs(2);
/// Close codes that mean the server refused the credentials after the handshake:
/// TFactory's 4001, the 4003/4401/4403 others use, and 1008 (policy violation).
const AUTH_CLOSE_CODES: [u16; 5] = [1008, 4001, 4003, 4401, 4403];

/// Follows each of `paths` (e.g. `/ws/events`, `/ws/progress`) on `client`'s upstream
/// at once, handing every understood frame to `sink` as `service`'s update and every
/// change of a feed's state to [`LiveSink::feed_state`]. Garbage and unknown frames are
/// logged and skipped; a dropped connection is retried after a backoff that doubles
/// from 250 ms to 30 s (with jitter) and starts over after a healthy connection; a feed
/// refused as unauthorized (HTTP 401/403 on the upgrade, or an auth close code right
/// after it) is retried only after the longest backoff. Zone-less frame times are read
/// as UTC. Never returns: drop the future to stop.
pub async fn follow_feeds(
    client: &UpstreamClient,
    service: Service,
    paths: &[&str],
    sink: Arc<dyn LiveSink>,
) {
    follow_feeds_in(client, service, paths, sink, &Utc).await;
}

/// [`follow_feeds`] for an upstream whose frames carry zone-less times in `zone`, the
/// zone its server runs in.
pub async fn follow_feeds_in<Z: TimeZone + Sync>(
    client: &UpstreamClient,
    service: Service,
    paths: &[&str],
    sink: Arc<dyn LiveSink>,
    zone: &Z,
) {
    futures::future::join_all(
        paths
            .iter()
            .map(|path| follow_one(client, service, path, sink.as_ref(), zone)),
    )
    .await;
}

async fn follow_one<Z: TimeZone + Sync>(
    client: &UpstreamClient,
    service: Service,
    path: &str,
    sink: &dyn LiveSink,
    zone: &Z,
) {
    let mut backoff = Backoff::new();
    let mut states = FeedStates {
        service,
        path,
        sink,
        last: None,
    };
    loop {
        let end = match connect(client.config(), path).await {
            Ok(socket) => {
                let session = pump(socket, client.config(), path, &mut states, zone).await;
                if session.healthy {
                    backoff.reset();
                }
                session.end
            }
            Err(end) => end,
        };
        if matches!(end, FeedState::Unauthorized { .. }) {
            backoff.refused();
        }
        states.report(end);
        let delay = backoff.next_delay();
        tracing::debug!(service = %service, feed = path, ?delay, "live feed reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// Hands a feed's state to the sink when it changes, and logs the change once, so a
/// feed refused again and again is reported once, not once per attempt.
struct FeedStates<'a> {
    service: Service,
    path: &'a str,
    sink: &'a dyn LiveSink,
    last: Option<FeedState>,
}

impl FeedStates<'_> {
    fn report(&mut self, state: FeedState) {
        let (service, feed) = (self.service, self.path);
        if self.last.as_ref() == Some(&state) {
            tracing::debug!(service = %service, feed, ?state, "live feed state unchanged");
            return;
        }
        match &state {
            FeedState::Connected => tracing::info!(service = %service, feed, "live feed connected"),
            FeedState::Unauthorized { detail } => {
                tracing::warn!(service = %service, feed, detail, "live feed refused: unauthorized");
            }
            FeedState::Disconnected { detail } => {
                tracing::warn!(service = %service, feed, detail, "live feed disconnected");
            }
        }
        self.sink.feed_state(self.service, self.path, state.clone());
        self.last = Some(state);
    }

    fn update(&self, update: LiveUpdate) {
        self.sink.live_update(self.service, update);
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Dials `path`; a refusal comes back as the feed's state: unauthorized for an HTTP
/// 401/403 answer to the upgrade, disconnected for anything else.
async fn connect(config: &UpstreamConfig, path: &str) -> Result<Socket, FeedState> {
    let disconnected = |detail: String| FeedState::Disconnected { detail };
    let request = ws_request(config, path).map_err(disconnected)?;
    match tokio::time::timeout(config.timeout(), tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
            if matches!(response.status().as_u16(), 401 | 403) =>
        {
            Err(FeedState::Unauthorized {
                detail: format!(
                    "the server refused the upgrade with HTTP {}",
                    response.status().as_u16()
                ),
            })
        }
        Ok(Err(e)) => Err(disconnected(config.scrub(&e.to_string()))),
        Err(_) => Err(disconnected("handshake timed out".to_owned())),
    }
}

/// The upgrade request for `path` on `config`'s upstream, with its bearer token; why
/// not, without the URL, when it cannot be built.
pub(crate) fn ws_request(
    config: &UpstreamConfig,
    path: &str,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
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
    Ok(request)
}

/// reqwest and wss:// need one rustls crypto provider for the process: install ring (the
/// only one compiled in) unless someone already did.
pub(crate) fn ensure_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How one connection went.
struct Session {
    /// It stayed up a while, or carried an understood frame.
    healthy: bool,
    /// Why it ended.
    end: FeedState,
}

/// Reads `socket` until it closes, fails or goes silent, reporting the feed connected
/// once it has spoken or stayed open for [`SETTLE`].
async fn pump<Z: TimeZone>(
    mut socket: Socket,
    config: &UpstreamConfig,
    path: &str,
    states: &mut FeedStates<'_>,
    zone: &Z,
) -> Session {
    let service = states.service;
    let disconnected = |detail: String| FeedState::Disconnected { detail };
    let opened = Instant::now();
    let mut understood = false;
    let mut settled = false;
    let end = loop {
        let wait = if settled {
            IDLE_LIMIT
        } else {
            SETTLE.saturating_sub(opened.elapsed())
        };
        let message = match tokio::time::timeout(wait, socket.next()).await {
            Err(_) if !settled => {
                settled = true;
                states.report(FeedState::Connected);
                continue;
            }
            Err(_) => break disconnected("the feed went silent".to_owned()),
            Ok(None) => break disconnected("the server ended the connection".to_owned()),
            Ok(Some(Err(error))) => break disconnected(config.scrub(&error.to_string())),
            Ok(Some(Ok(message))) => message,
        };
        if let Message::Close(frame) = &message {
            break closed(frame.as_ref(), config);
        }
        if !settled {
            settled = true;
            states.report(FeedState::Connected);
        }
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
            Message::Close(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        match parse_frame(&text, zone) {
            Frame::Update(update) => {
                understood = true;
                states.update(update);
            }
            Frame::Keepalive(kind) => {
                tracing::trace!(service = %service, feed = path, kind, "keepalive frame");
            }
            Frame::Ignored(kind) => {
                tracing::debug!(service = %service, feed = path, kind, "ignored a frame");
            }
            Frame::Garbage(why) => {
                tracing::warn!(service = %service, feed = path, why, "skipped a garbage frame");
            }
        }
    };
    Session {
        healthy: understood || opened.elapsed() >= HEALTHY_AFTER,
        end,
    }
}

/// The state a close frame leaves the feed in.
fn closed(frame: Option<&CloseFrame>, config: &UpstreamConfig) -> FeedState {
    let Some(frame) = frame else {
        return FeedState::Disconnected {
            detail: "the server closed the connection".to_owned(),
        };
    };
    let code = u16::from(frame.code);
    let reason = config.scrub(frame.reason.as_str().trim());
    let detail = if reason.is_empty() {
        format!("closed with code {code}")
    } else {
        format!("closed with code {code} ({reason})")
    };
    if AUTH_CLOSE_CODES.contains(&code) {
        FeedState::Unauthorized { detail }
    } else {
        FeedState::Disconnected { detail }
    }
}

/// What one text frame meant.
#[derive(Debug, PartialEq)]
enum Frame {
    /// A status or progress update.
    Update(LiveUpdate),
    /// A frame that only says the feed is alive (`ping`, `connected`, `heartbeat`).
    Keepalive(String),
    /// A well-formed frame of a type the cockpit does not use.
    Ignored(String),
    /// Not JSON, or a known type missing what it needs.
    Garbage(&'static str),
}

/// Frame types that only keep the connection alive: `/ws/events` sends `ping` after
/// 30 s of silence, `/ws/progress` sends `connected` then a `heartbeat` every 5 s.
const KEEPALIVES: [&str; 4] = ["ping", "pong", "connected", "heartbeat"];

fn parse_frame<Z: TimeZone>(text: &str, zone: &Z) -> Frame {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Frame::Garbage("not JSON");
    };
    let Some(kind) = frame.get("type").and_then(Value::as_str) else {
        return Frame::Garbage("no type");
    };
    if KEEPALIVES.contains(&kind) {
        return Frame::Keepalive(kind.to_owned());
    }
    let payload = frame.get("payload").unwrap_or(&frame);
    let task_id = fields::text(payload, &["taskId", "task_id", "id"]);
    let now = Utc::now();
    let progress = |task_id, message| LiveUpdate::Progress {
        task_id,
        phase: None,
        percent: None,
        message,
        at: now,
    };
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
        // An agent run failed; the status change, if any, comes as its own task:status.
        "task:error" => task_id.map(|task_id| {
            let error = fields::text(payload, &["error", "message"]);
            progress(
                task_id,
                Some(error.map_or_else(|| "error".to_owned(), |e| format!("error: {e}"))),
            )
        }),
        "task:subtask-update" => {
            let (Some(subtask), Some(status)) = (
                fields::text(payload, &["subtaskId", "subtask_id"]),
                fields::text(payload, &["status"]),
            ) else {
                return Frame::Garbage("task:subtask-update without a subtask or status");
            };
            task_id.map(|task_id| progress(task_id, Some(format!("subtask {subtask}: {status}"))))
        }
        "progress" => task_id.map(|task_id| LiveUpdate::Progress {
            task_id,
            phase: fields::text(payload, &["phase"]),
            percent: percent(payload, &["percentage", "percent", "progress"]),
            message: progress_message(payload),
            at: fields::time_in(payload, &["timestamp"], zone).unwrap_or(now),
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

    /// The server refused the credentials: retrying soon cannot help, so the next delay
    /// is the longest.
    fn refused(&mut self) {
        let to_cap = (BACKOFF_CAP.as_millis() / BACKOFF_START.as_millis()).ilog2() + 1;
        self.attempt = self.attempt.max(to_cap);
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
        match parse_frame(text, &Utc) {
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
        assert_eq!(parse_frame("{nope", &Utc), Frame::Garbage("not JSON"));
        assert_eq!(
            parse_frame(r#"{"payload":{}}"#, &Utc),
            Frame::Garbage("no type")
        );
        assert_eq!(
            parse_frame(r#"{"type":"task:log","payload":{"taskId":"a"}}"#, &Utc),
            Frame::Ignored("task:log".into())
        );
        assert_eq!(
            parse_frame(
                r#"{"type":"task:status","payload":{"status":"done"}}"#,
                &Utc
            ),
            Frame::Garbage("no task id")
        );
    }

    #[test]
    fn error_and_subtask_frames_are_progress() {
        let LiveUpdate::Progress {
            task_id, message, ..
        } = update(
            r#"{"type":"task:error","payload":{"taskId":"shop:004","error":"agent crashed"}}"#,
        )
        else {
            panic!("not progress")
        };
        assert_eq!(task_id, "shop:004");
        assert_eq!(message.as_deref(), Some("error: agent crashed"));

        let LiveUpdate::Progress {
            task_id, message, ..
        } = update(
            r#"{"type":"task:subtask-update","payload":{"taskId":"shop:004","subtaskId":"1.2","status":"completed","previousStatus":"in_progress"}}"#,
        )
        else {
            panic!("not progress")
        };
        assert_eq!(task_id, "shop:004");
        assert_eq!(message.as_deref(), Some("subtask 1.2: completed"));
        assert_eq!(
            parse_frame(
                r#"{"type":"task:subtask-update","payload":{"taskId":"a"}}"#,
                &Utc
            ),
            Frame::Garbage("task:subtask-update without a subtask or status")
        );
    }

    #[test]
    fn review_reason_rides_on_status_frames() {
        let LiveUpdate::Status { review_reason, .. } = update(
            r#"{"type":"task:status","payload":{"taskId":"p:1","status":"human_review","reviewReason":"qa_rejected"}}"#,
        ) else {
            panic!("not a status")
        };
        assert_eq!(review_reason.as_deref(), Some("qa_rejected"));
    }

    #[test]
    fn keepalive_frames_are_not_garbage() {
        for (frame, kind) in [
            (r#"{"type":"ping"}"#, "ping"),
            (
                r#"{"type":"connected","running_tasks":[],"message":"Connected to unified progress stream"}"#,
                "connected",
            ),
            (r#"{"type":"heartbeat","running_tasks":[]}"#, "heartbeat"),
        ] {
            assert_eq!(parse_frame(frame, &Utc), Frame::Keepalive(kind.into()));
        }
    }

    #[test]
    fn zone_less_progress_times_are_read_in_the_zone() {
        let plus_one = chrono::FixedOffset::east_opt(3600).unwrap();
        let Frame::Update(LiveUpdate::Progress { at, .. }) = parse_frame(
            r#"{"type":"progress","task_id":"s","timestamp":"2026-03-01T10:00:00"}"#,
            &plus_one,
        ) else {
            panic!("not progress")
        };
        assert_eq!(at.to_rfc3339(), "2026-03-01T09:00:00+00:00");
    }

    #[test]
    fn auth_close_codes_mean_unauthorized() {
        let config =
            UpstreamConfig::new("http://tf.internal:8000", None, Duration::from_secs(1)).unwrap();
        let frame = |code: u16, reason: &str| CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        assert_eq!(
            closed(Some(&frame(4001, "Unauthorized")), &config),
            FeedState::Unauthorized {
                detail: "closed with code 4001 (Unauthorized)".into()
            }
        );
        assert_eq!(
            closed(Some(&frame(1000, "")), &config),
            FeedState::Disconnected {
                detail: "closed with code 1000".into()
            }
        );
        assert_eq!(
            closed(Some(&frame(1011, "lost tf.internal:8000")), &config),
            FeedState::Disconnected {
                detail: "closed with code 1011 (lost <upstream>)".into()
            }
        );
    }

    #[test]
    fn a_refusal_waits_the_longest_delay() {
        let mut b = Backoff::new();
        b.refused();
        let delay = b.next_delay();
        assert!(
            delay >= BACKOFF_CAP / 2 && delay <= BACKOFF_CAP,
            "{delay:?}"
        );
        b.reset();
        assert!(b.next_delay() <= BACKOFF_START);
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

//! Live agent consoles: which of a tenant's WorkItems have a running agent whose
//! terminal its service serves now, and the read-only relay of one such console to a
//! browser.
//!
//! An item has a live console when its stage of a console-serving service (AIFactory's
//! code stage) shows a running status in the read model and that service lists the
//! stage's task as running. Only the caller's tenant's items and services are asked. The
//! relay opens the console through the service's adapter (which holds the URL and token:
//! neither reaches the browser), passes every chunk of output through unchanged, drops
//! whatever the browser sends, and closes a browser that falls a bounded buffer behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use cfactory_domain::ports::{ConsoleStream, Upstream};
use cfactory_domain::upstream::{ConsoleOutput, UpstreamError};
use cfactory_domain::{CorrelationKey, Service, StageName, StatusClass, TenantId};
use chrono::{DateTime, Utc};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Credential;
use crate::live::ws::{CLOSE_UNAUTHORIZED, PING_EVERY, RECHECK_EVERY};
use crate::readmodel::{NotLoaded, read};
use crate::state::AppState;

/// Frames a browser may fall behind the console before it is closed.
pub const BUFFER_FRAMES: usize = 256;
/// Bytes of output a browser may fall behind the console before it is closed.
pub const BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// The close code for an item with no live console (nothing to relay).
pub const CLOSE_NO_CONSOLE: u16 = 4404;
/// The close code for a browser that fell [`BUFFER_FRAMES`] or [`BUFFER_BYTES`] behind.
pub const CLOSE_TOO_SLOW: u16 = 4408;
/// How long a closing browser gets to take what is queued and the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// A close reason's limit in bytes, set by the WebSocket protocol.
const MAX_REASON_BYTES: usize = 123;

/// One live console as the cockpit lists it.
#[derive(Clone)]
pub struct LiveAgent {
    /// The WorkItem whose agent it is.
    pub key: CorrelationKey,
    /// The service that runs the agent.
    pub service: Service,
    /// The service's task id.
    pub task_id: String,
    /// The item's title, else the task's.
    pub title: Option<String>,
    /// The task's status as the service reports it.
    pub status: String,
    /// When the item's stage started.
    pub started_at: DateTime<Utc>,
    upstream: Arc<dyn Upstream>,
}

/// A tenant's live consoles, and why there are none where the services say so.
pub struct LiveAgents {
    /// Whether any configured service of the tenant serves consoles now.
    pub enabled: bool,
    /// The items with a live console, newest stage first.
    pub agents: Vec<LiveAgent>,
    /// Why consoles are off or incomplete, one line per service (never a URL).
    pub notes: Vec<String>,
}

/// The tenant's items with a live console: every configured service whose adapter
/// watches consoles is asked which of its tasks run now, and the items whose stage of
/// that service runs one of them (by the read model) are listed. A service that cannot
/// be asked leaves a note and lists nothing.
pub async fn live_agents(state: &AppState, tenant: &TenantId) -> Result<LiveAgents, NotLoaded> {
    let mut enabled = false;
    let mut notes = Vec::new();
    let mut running = Vec::new();
    for service in Service::upstreams() {
        let Some(upstream) = state.upstreams.upstream(tenant, service).await else {
            continue;
        };
        let Some(consoles) = upstream.agent_consoles() else {
            continue;
        };
        match consoles.live_consoles().await {
            Ok(list) if list.enabled => {
                enabled = true;
                running.push((service, upstream.clone(), list.running));
            }
            Ok(_) => notes.push(format!("{service} does not serve agent consoles")),
            Err(e) => {
                tracing::warn!(%service, %tenant, error = %e, "live consoles could not be listed");
                notes.push(format!(
                    "{service} could not be asked for its consoles: {e}"
                ));
            }
        }
    }
    if running.is_empty() && notes.is_empty() {
        notes.push("no configured service serves agent consoles".to_owned());
    }
    let view = state.model.tenant(tenant).await?;
    let view = read(&view);
    let mut agents = Vec::new();
    for (service, upstream, tasks) in running {
        let Some(stage) = StageName::of(service) else {
            continue;
        };
        for item in view.fleet.items() {
            let Some(current) = item.stages.get(stage) else {
                continue;
            };
            if current.status_class != StatusClass::Running {
                continue;
            }
            let Some(task) = tasks.iter().find(|t| t.task_id == current.task_id) else {
                continue;
            };
            agents.push(LiveAgent {
                key: item.correlation_key.clone(),
                service,
                task_id: current.task_id.clone(),
                title: item.title.clone().or_else(|| task.title.clone()),
                status: task.status.clone(),
                started_at: current.started_at,
                upstream: upstream.clone(),
            });
        }
    }
    agents.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| a.key.as_str().cmp(b.key.as_str()))
    });
    Ok(LiveAgents {
        enabled,
        agents,
        notes,
    })
}

/// How a relay ended.
enum End {
    /// The service ended the console.
    Ended,
    /// The service had no console for the task after all.
    NoConsole,
    /// The console failed.
    Failed(UpstreamError),
    /// The browser fell too far behind.
    TooSlow,
    /// The browser's key or session no longer holds.
    Revoked,
    /// The browser went away.
    Left,
}

/// `reason` cut to what a close frame may carry.
fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].into(),
    }
}

/// Closes a socket that never relayed anything.
async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let close = Message::Close(Some(close_frame(code, reason)));
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(close)).await;
}

/// Relays the live console of `tenant`'s item `key` to `socket`, read-only, until the
/// console or the browser ends, the browser falls behind, or its credential stops
/// holding. Closes with [`CLOSE_NO_CONSOLE`] when the item has no live console, 1000
/// `console ended` when the service ends it, 1011 when it fails, [`CLOSE_TOO_SLOW`] for
/// a browser that fell behind and 4401 for a revoked key or ended session.
pub async fn relay(
    socket: WebSocket,
    state: AppState,
    tenant: TenantId,
    credential: Credential,
    key: String,
) {
    let item = match state.work.get(&tenant, &key).await {
        Ok(Some(item)) => item,
        Ok(None) => {
            return refuse(socket, CLOSE_NO_CONSOLE, &format!("no work item {key}")).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: the store failed");
            return refuse(socket, 1011, "the store is unavailable").await;
        }
    };
    let live = match live_agents(&state, &tenant).await {
        Ok(live) => live,
        Err(NotLoaded) => return refuse(socket, 1011, "the cockpit is still loading").await,
    };
    let Some(agent) = live
        .agents
        .into_iter()
        .find(|a| a.key == item.correlation_key)
    else {
        let reason = if live.enabled {
            format!("work item {key} has no running agent with a console")
        } else {
            live.notes.join("; ")
        };
        return refuse(socket, CLOSE_NO_CONSOLE, &reason).await;
    };
    let Some(consoles) = agent.upstream.agent_consoles() else {
        return refuse(socket, CLOSE_NO_CONSOLE, "the service serves no consoles").await;
    };
    let console = match consoles.open_console(&agent.task_id).await {
        Ok(console) => console,
        Err(UpstreamError::NotFound) => {
            let reason = format!(
                "{} has no console for task {}",
                agent.service, agent.task_id
            );
            return refuse(socket, CLOSE_NO_CONSOLE, &reason).await;
        }
        Err(e) => {
            tracing::warn!(service = %agent.service, task = %agent.task_id, error = %e, "console could not be opened");
            let reason = format!("the console could not be opened: {e}");
            return refuse(socket, 1011, &reason).await;
        }
    };
    tracing::info!(%tenant, key = %agent.key, service = %agent.service, task = %agent.task_id, "console relay opened");
    let end = pump(socket, console, &state, &credential).await;
    let how = match &end {
        End::Ended => "ended".to_owned(),
        End::NoConsole => "no console".to_owned(),
        End::Failed(e) => format!("failed: {e}"),
        End::TooSlow => "browser too slow".to_owned(),
        End::Revoked => "credential revoked".to_owned(),
        End::Left => "browser left".to_owned(),
    };
    tracing::info!(%tenant, key = %agent.key, task = %agent.task_id, end = %how, "console relay closed");
}

/// Queued frames' bytes, shared by the relay and its writer.
type Queued = Arc<AtomicUsize>;

fn size_of(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// Moves the console's output into the browser's queue and watches the browser, until
/// one of them ends; then closes the browser as the end says.
async fn pump(
    socket: WebSocket,
    mut console: Box<dyn ConsoleStream>,
    state: &AppState,
    credential: &Credential,
) -> End {
    let (sink, mut inbox) = socket.split();
    let (queue, outbox) = mpsc::channel::<Message>(BUFFER_FRAMES);
    let (abandon, abandoned) = oneshot::channel::<CloseFrame>();
    let queued: Queued = Arc::default();
    let mut writer = tokio::spawn(write_out(sink, outbox, abandoned, queued.clone()));
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    let mut relayed = false;
    let end = loop {
        tokio::select! {
            output = console.next() => match output {
                Ok(Some(chunk)) => {
                    let size = chunk.len();
                    if queued.fetch_add(size, Ordering::SeqCst) + size > BUFFER_BYTES {
                        break End::TooSlow;
                    }
                    let message = match chunk {
                        ConsoleOutput::Text(text) => Message::Text(text.into()),
                        ConsoleOutput::Binary(bytes) => Message::Binary(bytes.into()),
                    };
                    match queue.try_send(message) {
                        Ok(()) => relayed = true,
                        Err(mpsc::error::TrySendError::Full(_)) => break End::TooSlow,
                        Err(mpsc::error::TrySendError::Closed(_)) => break End::Left,
                    }
                }
                Ok(None) => break End::Ended,
                Err(UpstreamError::NotFound) if !relayed => break End::NoConsole,
                Err(UpstreamError::NotFound) => break End::Ended,
                Err(e) => break End::Failed(e),
            },
            incoming = inbox.next() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break End::Left,
                // Read-only: whatever the browser sends goes nowhere.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => match queue.try_send(Message::Ping(Vec::new().into())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => break End::TooSlow,
                Err(mpsc::error::TrySendError::Closed(_)) => break End::Left,
            },
            _ = recheck.tick() => {
                // A store that cannot answer is not a revocation: keep relaying, ask again.
                if let Ok(false) = credential.still_holds(state).await {
                    break End::Revoked;
                }
            }
        }
    };
    // The service's connection closes now, whatever the browser still has to take.
    drop(console);
    let (close, flush) = match &end {
        End::Ended => (Some(close_frame(1000, "console ended")), true),
        End::NoConsole => (
            Some(close_frame(
                CLOSE_NO_CONSOLE,
                "the service has no console for this task",
            )),
            true,
        ),
        End::Failed(e) => (
            Some(close_frame(1011, &format!("console failed: {e}"))),
            true,
        ),
        End::TooSlow => (
            Some(close_frame(
                CLOSE_TOO_SLOW,
                "too slow: the browser fell behind the console",
            )),
            false,
        ),
        End::Revoked => (
            Some(close_frame(
                CLOSE_UNAUTHORIZED,
                "the key or session no longer holds; sign in again",
            )),
            false,
        ),
        End::Left => (None, false),
    };
    match close {
        Some(frame) if flush => {
            // After what is queued; a browser that cannot take it in time is cut.
            let sent = tokio::time::timeout(CLOSE_GRACE, queue.send(Message::Close(Some(frame))));
            if !matches!(sent.await, Ok(Ok(()))) {
                let _ = abandon.send(close_frame(
                    CLOSE_TOO_SLOW,
                    "too slow: the browser fell behind the console",
                ));
            }
        }
        Some(frame) => {
            let _ = abandon.send(frame);
        }
        None => writer.abort(),
    }
    drop(queue);
    if tokio::time::timeout(CLOSE_GRACE * 2, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    end
}

/// Sends the queue to the browser in order. When the relay abandons the browser, what
/// is queued is skipped and only the close frame is tried, briefly.
async fn write_out(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Message>,
    mut abandoned: oneshot::Receiver<CloseFrame>,
    queued: Queued,
) {
    loop {
        let message = tokio::select! {
            biased;
            frame = &mut abandoned => return close_now(&mut sink, frame.ok()).await,
            message = outbox.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let size = size_of(&message);
        let closing = matches!(message, Message::Close(_));
        tokio::select! {
            biased;
            frame = &mut abandoned => return close_now(&mut sink, frame.ok()).await,
            sent = sink.send(message) => {
                if sent.is_err() || closing {
                    return;
                }
            }
        }
        queued.fetch_sub(size, Ordering::SeqCst);
    }
}

async fn close_now(sink: &mut SplitSink<WebSocket, Message>, frame: Option<CloseFrame>) {
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let frame = close_frame(4404, &long);
        assert!(frame.reason.len() <= MAX_REASON_BYTES);
        assert!(long.starts_with(frame.reason.as_str()));
        assert_eq!(
            close_frame(1000, "console ended").reason.as_str(),
            "console ended"
        );
    }
}

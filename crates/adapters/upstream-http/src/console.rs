//! Agent consoles: a read-only WebSocket whose frames are a running agent's terminal
//! output. Opens it with the upstream's bearer token and handshake timeout, hands each
//! text or binary frame over unchanged (leaving out the service's own control frames),
//! answers pings, and sends nothing else: whatever a watcher types never gets here.

use async_trait::async_trait;
use cfactory_domain::ports::ConsoleStream;
use cfactory_domain::upstream::{ConsoleOutput, UpstreamError};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use crate::client::check_path;
use crate::config::UpstreamConfig;
use crate::feed::{Socket, ws_request};

/// Largest console frame taken from an upstream; a larger one fails the stream, so a
/// broken or hostile service cannot make CFactory hold a huge message per watcher.
pub const MAX_CONSOLE_FRAME_BYTES: usize = 1024 * 1024;

/// Close codes that say the service has no console session for the task (the family's
/// 4004, and 4404).
const NO_SESSION_CLOSE_CODES: [u16; 2] = [4004, 4404];
/// Close codes that say the service refused the credentials.
const AUTH_CLOSE_CODES: [u16; 5] = [1008, 4001, 4003, 4401, 4403];

/// Tells the service's own control frames (a text frame such as AIFactory's
/// `{"type":"connected","connection_id":…}`) from terminal output.
pub type IsControlFrame = fn(&str) -> bool;

/// An open console of one task.
pub struct ConsoleSocket {
    socket: Socket,
    config: UpstreamConfig,
    is_control: IsControlFrame,
}

impl std::fmt::Debug for ConsoleSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSocket")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Opens the console WebSocket at `path` on `config`'s upstream within its timeout.
/// An HTTP 401/403 answer to the upgrade is `Unauthorized`, a 404 `NotFound`, another
/// status `Status`; no connection is `Offline` (the message never carries the URL).
pub async fn open_console(
    config: &UpstreamConfig,
    path: &str,
    is_control: IsControlFrame,
) -> Result<ConsoleSocket, UpstreamError> {
    check_path(path)?;
    let request = ws_request(config, path).map_err(UpstreamError::Offline)?;
    let limits = WebSocketConfig::default()
        .max_message_size(Some(MAX_CONSOLE_FRAME_BYTES))
        .max_frame_size(Some(MAX_CONSOLE_FRAME_BYTES));
    let handshake = tokio_tungstenite::connect_async_with_config(request, Some(limits), true);
    match tokio::time::timeout(config.timeout(), handshake).await {
        Ok(Ok((socket, _response))) => Ok(ConsoleSocket {
            socket,
            config: config.clone(),
            is_control,
        }),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            Err(match response.status().as_u16() {
                401 | 403 => UpstreamError::Unauthorized,
                404 => UpstreamError::NotFound,
                other => UpstreamError::Status(other),
            })
        }
        Ok(Err(e)) => Err(UpstreamError::Offline(config.scrub(&e.to_string()))),
        Err(_) => Err(UpstreamError::Timeout),
    }
}

#[async_trait]
impl ConsoleStream for ConsoleSocket {
    async fn next(&mut self) -> Result<Option<ConsoleOutput>, UpstreamError> {
        loop {
            let message = match self.socket.next().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(UpstreamError::Offline(self.config.scrub(&e.to_string())));
                }
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) if (self.is_control)(text.as_str()) => {}
                Message::Text(text) => return Ok(Some(ConsoleOutput::Text(text.to_string()))),
                Message::Binary(bytes) => return Ok(Some(ConsoleOutput::Binary(bytes.to_vec()))),
                Message::Ping(data) => {
                    // tungstenite queues the pong; sending it now keeps it prompt.
                    let _ = self.socket.send(Message::Pong(data)).await;
                }
                Message::Close(frame) => return closed(frame.as_ref(), &self.config),
                Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// What a close frame from the service means for the stream.
fn closed(
    frame: Option<&CloseFrame>,
    config: &UpstreamConfig,
) -> Result<Option<ConsoleOutput>, UpstreamError> {
    let Some(frame) = frame else {
        return Ok(None);
    };
    let code = u16::from(frame.code);
    match code {
        1000 | 1001 => Ok(None),
        c if NO_SESSION_CLOSE_CODES.contains(&c) => Err(UpstreamError::NotFound),
        c if AUTH_CLOSE_CODES.contains(&c) => Err(UpstreamError::Unauthorized),
        c => {
            let reason = config.scrub(frame.reason.as_str().trim());
            Err(UpstreamError::Offline(if reason.is_empty() {
                format!("the console closed with code {c}")
            } else {
                format!("the console closed with code {c} ({reason})")
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn close_codes_say_how_the_console_ended() {
        let config =
            UpstreamConfig::new("http://af.internal:3102", None, Duration::from_secs(1)).unwrap();
        let frame = |code: u16, reason: &str| CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        assert_eq!(closed(None, &config), Ok(None));
        assert_eq!(closed(Some(&frame(1000, "")), &config), Ok(None));
        assert_eq!(closed(Some(&frame(1001, "going away")), &config), Ok(None));
        assert_eq!(
            closed(Some(&frame(4004, "no rmux session")), &config),
            Err(UpstreamError::NotFound)
        );
        assert_eq!(
            closed(Some(&frame(4001, "Unauthorized")), &config),
            Err(UpstreamError::Unauthorized)
        );
        assert_eq!(
            closed(Some(&frame(1011, "pane lost at af.internal:3102")), &config),
            Err(UpstreamError::Offline(
                "the console closed with code 1011 (pane lost at <upstream>)".into()
            ))
        );
    }
}

//! Server-sent events as the HTML standard defines their parsing: lines end in CRLF, LF or
//! CR; `field: value` lines (one space after the colon dropped), `data` lines joined by
//! newlines, comment lines starting with `:`, and a blank line that dispatches the event.
//! Bytes arrive in whatever pieces the network cuts them into, so a line, a UTF-8
//! character or a CRLF may be split across two chunks.

use crate::model::ModelError;

/// Longest event (or line) kept, in bytes: a provider's events are a few kilobytes.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field, `message` when there was none.
    pub event: String,
    /// The `data` lines, joined by `\n`.
    pub data: String,
}

/// Turns chunks of bytes into events.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last chunk ended in CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// Whether the first line was seen (a byte-order mark may start it).
    started: bool,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds `chunk`, appending every event it completes to `out`. Fails on an event
    /// longer than the limit.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ModelError> {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..at]);
            self.end_line(out);
            if rest[at] == b'\r' {
                match rest.get(at + 1) {
                    Some(b'\n') => rest = &rest[at + 2..],
                    Some(_) => rest = &rest[at + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[at + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        let pending = self.line.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_EVENT_BYTES {
            return Err(ModelError::Malformed(format!(
                "a streamed event longer than {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let bytes = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if !self.started {
            self.started = true;
            if let Some(stripped) = line.strip_prefix('\u{feff}') {
                line = stripped.to_owned();
            }
        }
        if line.is_empty() {
            let event = self.event.take();
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `id` and `retry` serve reconnecting clients; a model call never reconnects.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    /// Every event of `text` fed in pieces of `size` bytes.
    fn decode_in(text: &[u8], size: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in text.chunks(size) {
            d.feed(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_fields_and_comments() {
        let text = b": a comment\nevent: ping\ndata: {}\n\nevent:message_stop\ndata:{\"type\":\"message_stop\"}\nid: 7\nretry: 100\n\n";
        assert_eq!(
            decode_in(text, text.len()),
            vec![
                ev("ping", "{}"),
                ev("message_stop", "{\"type\":\"message_stop\"}")
            ]
        );
    }

    #[test]
    fn multi_line_data_and_defaults() {
        let text = b"data: first\ndata:  second\ndata\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode_in(text, 3),
            vec![ev("message", "first\n second\n"), ev("message", "[DONE]")]
        );
    }

    #[test]
    fn every_line_ending_and_every_split_give_the_same_events() {
        let body = "event: content_block_delta\ndata: {\"text\":\"héllo ✓\"}\n\n: keep-alive\n\ndata: a\ndata: b\n\nevent: x\n\n";
        let want = vec![
            ev("content_block_delta", "{\"text\":\"héllo ✓\"}"),
            ev("message", "a\nb"),
        ];
        for ending in ["\n", "\r\n", "\r"] {
            let text = body.replace('\n', ending);
            for size in 1..=text.len() {
                assert_eq!(
                    decode_in(text.as_bytes(), size),
                    want,
                    "{ending:?} / {size}"
                );
            }
        }
    }

    #[test]
    fn a_byte_order_mark_and_an_unfinished_event_are_dropped() {
        let text = "\u{feff}data: x\n\ndata: never dispatched";
        assert_eq!(decode_in(text.as_bytes(), 2), vec![ev("message", "x")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..5 {
            result = d.feed(&chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ModelError::Malformed(m)) if m.contains("longer than")));
    }
}

//! Text the planner quotes, made safe: upstream tokens and values as short single lines,
//! the proposer's note cleaned and bounded, and an age in a few characters.
//!
//! Its room in the hexagon: pure domain functions inside the planner; no I/O.

use chrono::{DateTime, Utc};

/// Longest note kept on a proposal, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Longest text kept from one upstream value (a test name, a halt reason).
const MAX_UPSTREAM_TEXT: usize = 300;

/// A short, single-line, harmless rendering of an upstream token (a status, an id) for
/// messages.
pub(super) fn safe_token(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' '))
        .take(60)
        .collect()
}

/// Upstream text as one trimmed line of at most [`MAX_UPSTREAM_TEXT`] characters, without
/// backticks (it is quoted in Markdown code spans).
pub(super) fn one_line(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| *c != '`')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.chars().count() > MAX_UPSTREAM_TEXT {
        s = s.chars().take(MAX_UPSTREAM_TEXT).collect::<String>() + "…";
    }
    s
}

/// The note trimmed, without control characters but newlines and tabs, at most
/// [`MAX_NOTE_CHARS`] characters; `None` when empty.
pub(super) fn clean_note(note: Option<&str>) -> Option<String> {
    let text: String = note?
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(MAX_NOTE_CHARS)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub(super) fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

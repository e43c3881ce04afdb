//! Placeholders for what is known only when a person confirms (who approved, and when),
//! written into payloads at planning time, and [`fill_placeholders`], which fills them at
//! confirm time.
//!
//! Its room in the hexagon: a pure domain function over JSON; no I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Placeholder for the person who confirms, filled at confirm time.
pub const APPROVER: &str = "{{approver}}";

/// Placeholder for the moment of confirmation (RFC 3339, UTC), filled at confirm time.
pub const CONFIRMED_AT: &str = "{{confirmed_at}}";

/// Replaces [`APPROVER`] with `approver` and [`CONFIRMED_AT`] with `at` (RFC 3339, UTC, in
/// seconds) in every string of `value`, keys included. One pass: text a placeholder is
/// replaced by is never searched again.
pub fn fill_placeholders(value: &Value, approver: &str, at: DateTime<Utc>) -> Value {
    let when = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    fill(value, approver, &when)
}

fn fill(value: &Value, approver: &str, when: &str) -> Value {
    match value {
        Value::String(s) => Value::String(fill_text(s, approver, when)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill(v, approver, when)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (fill_text(k, approver, when), fill(v, approver, when)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill_text(text: &str, approver: &str, when: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix(APPROVER) {
            out.push_str(approver);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(CONFIRMED_AT) {
            out.push_str(when);
            rest = after;
        } else {
            out.push_str("{{");
            rest = &tail[2..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixtures::t0;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_once_everywhere() {
        let at = t0();
        let v = json!({
            "approver": APPROVER,
            "nested": [{"when": CONFIRMED_AT}, "by {{approver}} at {{confirmed_at}}"],
            "untouched": "{{other}} {{", "n": 3
        });
        let filled = fill_placeholders(&v, "ada {{confirmed_at}}", at);
        assert_eq!(
            filled,
            json!({
                "approver": "ada {{confirmed_at}}",
                "nested": [{"when": "2026-06-01T12:00:00Z"},
                           "by ada {{confirmed_at}} at 2026-06-01T12:00:00Z"],
                "untouched": "{{other}} {{", "n": 3
            })
        );
    }
}

//! The requests a plan sends, built so they stay on the target service: an upstream id as
//! one path segment, a step whose endpoint parses as an [`Endpoint`], a query value
//! percent-encoded.
//!
//! Its room in the hexagon: pure domain logic inside the planner; it builds requests and
//! sends none.

use serde_json::Value;

use super::Refusal;
use super::text::safe_token;
use crate::actions::{ActionStep, Endpoint, HttpMethod};
use crate::event::Service;

/// An id as one path segment: letters, digits and `-._~:@` only, not `.` or `..`.
pub(super) fn segment(service: Service, id: &str) -> Result<String, Refusal> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id != "."
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ':' | '@'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Refusal::new(format!(
            "The {service} id `{}` has characters that cannot go in a URL path; act on it in {service} directly.",
            safe_token(id)
        )))
    }
}

pub(super) fn step(
    method: HttpMethod,
    endpoint: String,
    payload: Value,
) -> Result<ActionStep, Refusal> {
    let endpoint = Endpoint::parse(&endpoint)
        .map_err(|e| Refusal::new(format!("The planned endpoint was refused: {e}.")))?;
    Ok(ActionStep {
        method,
        endpoint,
        payload,
    })
}

/// Percent-encodes a query value: everything but letters, digits, `-`, `_` and `~`.
pub(super) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::actions::ActionKind;
    use crate::actions::fixtures::{plan, refused};
    use serde_json::json;

    #[test]
    fn ids_that_cannot_be_a_path_segment_are_refused() {
        let evil = json!({
            "service": "aifactory", "task_id": "../../admin", "status": "stuck"
        });
        let why = refused(plan(ActionKind::Recover, &[evil], None));
        assert!(why.contains("cannot go in a URL path"), "{why}");
        let slash = json!({"service": "aifactory", "task_id": "a/b", "status": "stuck"});
        assert!(plan(ActionKind::Recover, &[slash], None).is_err());
    }
}

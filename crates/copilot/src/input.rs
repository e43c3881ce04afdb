//! Reading a tool's JSON input field by field, so every refusal names the field.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use cfactory_domain::CorrelationKey;

use crate::tools::ToolError;

/// A tool's input object, checked against the fields the tool accepts.
pub(crate) struct Input {
    fields: Map<String, Value>,
}

fn bad(field: &str, reason: impl Into<String>) -> ToolError {
    ToolError::BadInput {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Input {
    /// `value` as an object whose fields are all in `allowed`; `null` counts as `{}`.
    pub(crate) fn new(value: Value, allowed: &[&str]) -> Result<Self, ToolError> {
        let fields = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err(bad("input", "must be a JSON object")),
        };
        if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            let expected = if allowed.is_empty() {
                "this tool takes no input".to_owned()
            } else {
                format!("expected one of: {}", allowed.join(", "))
            };
            return Err(bad(extra, format!("unknown field; {expected}")));
        }
        Ok(Self { fields })
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }

    /// An optional string, trimmed; empty counts as absent.
    pub(crate) fn opt_str(
        &self,
        field: &str,
        max_chars: usize,
    ) -> Result<Option<String>, ToolError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.chars().count() > max_chars {
                    return Err(bad(
                        field,
                        format!("must be at most {max_chars} characters"),
                    ));
                }
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Some(_) => Err(bad(field, "must be a string")),
        }
    }

    /// A required string.
    pub(crate) fn req_str(&self, field: &str, max_chars: usize) -> Result<String, ToolError> {
        self.opt_str(field, max_chars)?
            .ok_or_else(|| bad(field, "is required"))
    }

    /// A correlation key, given as a string (`"142"`, `"#142"`, `"pf-abc"`) or an issue
    /// number.
    pub(crate) fn key(&self, field: &str) -> Result<Option<CorrelationKey>, ToolError> {
        let text = match self.get(field) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(_) => return Err(bad(field, "must be a string such as \"142\" or \"pf-abc\"")),
        };
        let text = match text.strip_prefix('#') {
            Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => digits.to_owned(),
            _ => text,
        };
        CorrelationKey::parse(&text)
            .map(Some)
            .map_err(|e| bad(field, e.to_string()))
    }

    /// A required correlation key.
    pub(crate) fn req_key(&self, field: &str) -> Result<CorrelationKey, ToolError> {
        self.key(field)?.ok_or_else(|| bad(field, "is required"))
    }

    /// An optional integer in `min..=max`, `default` when absent. A numeric string is
    /// accepted too.
    pub(crate) fn int(
        &self,
        field: &str,
        min: u32,
        max: u32,
        default: u32,
    ) -> Result<u32, ToolError> {
        let n = match self.get(field) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        n.filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(field, format!("must be an integer from {min} to {max}")))
    }

    /// An optional value of a closed set, parsed by `parse`.
    pub(crate) fn choice<T>(
        &self,
        field: &str,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ToolError> {
        match self.opt_str(field, 64)? {
            None => Ok(None),
            Some(s) => parse(&s.to_ascii_lowercase())
                .map(Some)
                .ok_or_else(|| bad(field, format!("must be one of: {}", names.join(", ")))),
        }
    }

    /// An optional moment: RFC 3339, or a date (`2026-06-01`, midnight UTC).
    pub(crate) fn time(&self, field: &str) -> Result<Option<DateTime<Utc>>, ToolError> {
        let Some(text) = self.opt_str(field, 64)? else {
            return Ok(None);
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Some(t.and_utc()))
            .ok_or_else(|| bad(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: ToolError) -> String {
        match e {
            ToolError::BadInput { field, .. } => field,
            other => panic!("not a bad input: {other}"),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let e = Input::new(json!({"limt": 3}), &["limit"]).err().unwrap();
        assert_eq!(field_of(e), "limt");
        assert_eq!(
            field_of(Input::new(json!([1]), &[]).err().unwrap()),
            "input"
        );
        let i = Input::new(
            json!({"limit": 0, "key": true, "since": "yesterday"}),
            &["limit", "key", "since"],
        )
        .unwrap();
        assert_eq!(field_of(i.int("limit", 1, 50, 10).unwrap_err()), "limit");
        assert_eq!(field_of(i.key("key").unwrap_err()), "key");
        assert_eq!(field_of(i.time("since").unwrap_err()), "since");
        assert_eq!(field_of(i.req_key("missing").unwrap_err()), "missing");
    }

    #[test]
    fn keys_and_numbers_are_read_leniently() {
        let i = Input::new(
            json!({"a": 142, "b": "#142", "c": " pf-abc ", "n": "7", "t": "2026-06-01"}),
            &["a", "b", "c", "n", "t"],
        )
        .unwrap();
        assert_eq!(i.req_key("a").unwrap().as_str(), "142");
        assert_eq!(i.req_key("b").unwrap().as_str(), "142");
        assert_eq!(i.req_key("c").unwrap().as_str(), "pf-abc");
        assert_eq!(i.int("n", 1, 50, 10).unwrap(), 7);
        assert_eq!(i.int("absent", 1, 50, 10).unwrap(), 10);
        assert_eq!(
            i.time("t").unwrap().unwrap().to_rfc3339(),
            "2026-06-01T00:00:00+00:00"
        );
    }
}

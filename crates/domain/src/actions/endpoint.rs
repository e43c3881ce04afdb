//! Where a step may go: the [`HttpMethod`]s it may use and the root-relative [`Endpoint`]
//! on the target service, checked when parsed and when deserialised, so a proposal cannot
//! point anywhere but the service CFactory holds a base URL for.
//!
//! Its room in the hexagon: domain value types; pure, no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest endpoint (path and query) a step may carry.
pub const MAX_ENDPOINT_CHARS: usize = 4096;

/// The HTTP methods a step may use; nothing else can be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// Parses the wire spelling (upper case only).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// It does not start with `/` (an absolute URL, a relative path, or nothing).
    #[error("must be a root-relative path starting with '/'")]
    NotRootRelative,
    /// It names a scheme (`http:`, `file:`, …).
    #[error("must not name a scheme")]
    Scheme,
    /// It contains `//`, which a URL parser may read as a new host.
    #[error("must not contain '//'")]
    DoubleSlash,
    /// It contains `..` (or an encoded dot or separator in the path).
    #[error("must not contain '..' or an encoded '.', '/' or '\\' in the path")]
    DotSegment,
    /// It contains whitespace, a control character, a backslash or a fragment.
    #[error("must not contain whitespace, control characters, '\\' or '#'")]
    BadCharacter,
    /// A `%` not followed by two hex digits.
    #[error("has a malformed percent-escape")]
    BadEscape,
    /// Longer than [`MAX_ENDPOINT_CHARS`].
    #[error("must be at most {MAX_ENDPOINT_CHARS} characters")]
    TooLong,
}

/// A root-relative path (with an optional query) on the target service: never a URL, so
/// a step can only reach the base URL CFactory holds for the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint(String);

impl Endpoint {
    /// Parses an endpoint: starts with `/`; no `//`, no scheme, no `..`, no encoded dot or
    /// separator in the path, no whitespace, control characters, `\` or `#`; well-formed
    /// percent-escapes; at most [`MAX_ENDPOINT_CHARS`] characters.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        if text.chars().count() > MAX_ENDPOINT_CHARS {
            return Err(EndpointError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '#')
        {
            return Err(EndpointError::BadCharacter);
        }
        if text.to_ascii_lowercase().contains("://") {
            return Err(EndpointError::Scheme);
        }
        if !text.starts_with('/') {
            return Err(EndpointError::NotRootRelative);
        }
        if text.contains("//") {
            return Err(EndpointError::DoubleSlash);
        }
        if text.contains("..") {
            return Err(EndpointError::DotSegment);
        }
        let path = text
            .split('?')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|e| path.contains(e))
            || path.split('/').any(|s| s == ".")
        {
            return Err(EndpointError::DotSegment);
        }
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !ok {
                    return Err(EndpointError::BadEscape);
                }
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The endpoint as text, to append to the service's base URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Endpoint {
    type Error = EndpointError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> Self {
        e.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionStep;
    use serde_json::json;

    #[test]
    fn endpoints_are_root_relative_only() {
        for good in [
            "/api/tasks/proj:001/recover",
            "/api/tasks/create-and-run?project_id=shop&title=Fix%20it",
            "/api/plan/sessions/001-refund-flow/approve",
        ] {
            assert!(Endpoint::parse(good).is_ok(), "{good}");
        }
        let cases = [
            ("https://evil.example/api", EndpointError::Scheme),
            ("http://127.0.0.1:3101/api/tasks", EndpointError::Scheme),
            ("//evil.example/api", EndpointError::DoubleSlash),
            ("/api//tasks", EndpointError::DoubleSlash),
            ("/api/tasks/../keys", EndpointError::DotSegment),
            ("/api/tasks/..", EndpointError::DotSegment),
            ("/api/tasks/./recover", EndpointError::DotSegment),
            ("/api/tasks/%2e%2e/keys", EndpointError::DotSegment),
            ("/api/tasks/a%2Fb", EndpointError::DotSegment),
            ("api/tasks", EndpointError::NotRootRelative),
            ("", EndpointError::NotRootRelative),
            ("/api/tasks/a b", EndpointError::BadCharacter),
            ("/api/tasks/a\nb", EndpointError::BadCharacter),
            ("/api\\tasks", EndpointError::BadCharacter),
            ("/api/tasks#x", EndpointError::BadCharacter),
            ("/api/tasks?x=%zz", EndpointError::BadEscape),
        ];
        for (bad, want) in cases {
            assert_eq!(Endpoint::parse(bad), Err(want), "{bad:?}");
        }
        assert_eq!(
            Endpoint::parse(&format!("/{}", "a".repeat(MAX_ENDPOINT_CHARS))),
            Err(EndpointError::TooLong)
        );
        // Deserialising validates too: a stored action cannot smuggle a URL in.
        let step: Result<ActionStep, _> = serde_json::from_value(
            json!({"method": "POST", "endpoint": "https://evil.example/x", "payload": null}),
        );
        assert!(step.is_err());
        let step: Result<ActionStep, _> =
            serde_json::from_value(json!({"method": "TRACE", "endpoint": "/x"}));
        assert!(step.is_err());
    }
}

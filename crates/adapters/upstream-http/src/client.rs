//! A bearer-authenticated JSON client that turns every failure into an [`UpstreamError`]
//! whose message never carries the upstream's URL.

use std::error::Error as _;

use cfactory_domain::upstream::UpstreamError;
use reqwest::StatusCode;
use serde_json::Value;

use crate::config::UpstreamConfig;

/// Longest refusal reason kept from an upstream body.
const MAX_REASON_CHARS: usize = 200;

/// A JSON client for one upstream: sends `Authorization: Bearer <token>`, applies the
/// configured timeout, and classifies failures (401/403 unauthorized, no connection
/// offline, 404 not found, 409 or `"success": false` refused, other statuses, bad JSON).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
    config: UpstreamConfig,
}

impl UpstreamClient {
    /// A client for `config`'s upstream.
    pub fn new(config: UpstreamConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .build()
            // Building fails only when TLS cannot initialise, and then no client can be
            // had at all; the default one is the last resort.
            .unwrap_or_default();
        Self { http, config }
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// `GET path` (which starts with `/`) and its JSON body.
    pub async fn get_json(&self, path: &str) -> Result<Value, UpstreamError> {
        self.send(self.http.get(self.config.http_url(path))).await
    }

    /// `POST path` with a JSON body, and the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, UpstreamError> {
        self.send(self.http.post(self.config.http_url(path)).json(body))
            .await
    }

    /// `GET` each of `paths` in turn while the upstream answers 404, for services whose
    /// published and served paths differ; the first other answer wins.
    pub async fn get_first(&self, paths: &[String]) -> Result<(usize, Value), UpstreamError> {
        let mut last = UpstreamError::NotFound;
        for (i, path) in paths.iter().enumerate() {
            match self.get_json(path).await {
                Ok(value) => return Ok((i, value)),
                Err(UpstreamError::NotFound) => last = UpstreamError::NotFound,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, UpstreamError> {
        let mut request = request
            .timeout(self.config.timeout())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = self.config.token() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        classify(&self.config, status, &bytes)
    }

    fn transport(&self, err: &reqwest::Error) -> UpstreamError {
        let text = self.config.scrub(&describe(err));
        if err.is_connect() {
            UpstreamError::Offline(text)
        } else if err.is_timeout() {
            UpstreamError::Timeout
        } else if err.is_decode() || err.is_body() {
            UpstreamError::Malformed(text)
        } else {
            UpstreamError::Offline(text)
        }
    }
}

/// An error's whole cause chain, without the request URL.
fn describe(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let head = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_body() || err.is_decode() {
        "body could not be read"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        head.to_owned()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

fn classify(
    config: &UpstreamConfig,
    status: StatusCode,
    body: &[u8],
) -> Result<Value, UpstreamError> {
    let json = serde_json::from_slice::<Value>(body);
    match status.as_u16() {
        401 | 403 => return Err(UpstreamError::Unauthorized),
        404 => return Err(UpstreamError::NotFound),
        409 => {
            let reason = json.ok().and_then(|v| reason_of(&v));
            return Err(UpstreamError::Refused(
                config.scrub(&reason.unwrap_or_else(|| "conflict".to_owned())),
            ));
        }
        s if !status.is_success() => return Err(UpstreamError::Status(s)),
        _ => {}
    }
    let value = json.map_err(|e| UpstreamError::Malformed(format!("body is not JSON: {e}")))?;
    if value.get("success").and_then(Value::as_bool) == Some(false) {
        let reason = reason_of(&value).unwrap_or_else(|| "the service refused".to_owned());
        return Err(UpstreamError::Refused(config.scrub(&reason)));
    }
    Ok(value)
}

fn reason_of(body: &Value) -> Option<String> {
    ["error", "detail", "message", "reason"]
        .iter()
        .find_map(|k| match body.get(*k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .map(|s| s.chars().take(MAX_REASON_CHARS).collect())
}

/// Percent-encodes one path segment (an upstream's task id) so `/`, `?`, `#` and spaces
/// in it cannot change the path; `:` and `@` stay, as RFC 3986 allows.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> UpstreamConfig {
        UpstreamConfig::new("http://up.internal:9", None, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn statuses_map_to_errors() {
        let c = cfg();
        let s = |n| StatusCode::from_u16(n).unwrap();
        assert_eq!(classify(&c, s(401), b""), Err(UpstreamError::Unauthorized));
        assert_eq!(
            classify(&c, s(403), b"{}"),
            Err(UpstreamError::Unauthorized)
        );
        assert_eq!(classify(&c, s(404), b""), Err(UpstreamError::NotFound));
        assert_eq!(classify(&c, s(502), b"{}"), Err(UpstreamError::Status(502)));
        assert_eq!(
            classify(
                &c,
                s(409),
                br#"{"detail":"gates not passed at http://up.internal:9"}"#
            ),
            Err(UpstreamError::Refused(
                "gates not passed at <upstream>".into()
            ))
        );
        assert_eq!(
            classify(&c, s(200), br#"{"success":false,"error":"busy"}"#),
            Err(UpstreamError::Refused("busy".into()))
        );
        assert!(matches!(
            classify(&c, s(200), b"<html>"),
            Err(UpstreamError::Malformed(_))
        ));
        assert_eq!(
            classify(&c, s(200), br#"{"success":true}"#),
            Ok(serde_json::json!({"success": true}))
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("proj:001"), "proj:001");
        assert_eq!(path_segment("a/b c?#"), "a%2Fb%20c%3F%23");
    }
}

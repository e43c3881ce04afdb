//! A bearer-authenticated JSON client that turns every failure into an [`UpstreamError`]
//! whose message never carries the upstream's URL.

use std::error::Error as _;
use std::time::{Duration, Instant};

use cfactory_domain::Service;
use cfactory_domain::actions::{ActionStep, HttpMethod, StepResult};
use cfactory_domain::upstream::UpstreamError;
use reqwest::StatusCode;
use serde_json::Value;

use crate::config::UpstreamConfig;

/// Longest refusal reason kept from an upstream body.
const MAX_REASON_CHARS: usize = 200;

/// Longest failure reason a confirmed step keeps from an upstream body.
const MAX_STEP_REASON_CHARS: usize = 500;

/// Largest body read from an upstream; a longer one fails as malformed, so a hostile or
/// broken service cannot make CFactory buffer without bound.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long one step of a confirmed action may take before it counts as failed: longer
/// than a read, since an upstream may do its work before it answers. A timed-out step is
/// not retried: the upstream may have acted, and a person decides what happens next.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// A JSON client for one upstream: sends `Authorization: Bearer <token>`, applies the
/// configured timeout, follows no redirect (the token goes to the configured host only),
/// reads at most [`MAX_BODY_BYTES`], and classifies failures (401/403 unauthorized, no connection
/// offline, 404 not found, 409 or `"success": false` refused, other statuses, bad JSON).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
    config: UpstreamConfig,
}

impl UpstreamClient {
    /// A client for `config`'s upstream.
    pub fn new(config: UpstreamConfig) -> Self {
        crate::feed::ensure_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .redirect(reqwest::redirect::Policy::none())
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

    /// `GET path` (which starts with `/`) and its JSON body. A path with a dot segment or
    /// an encoded separator is refused before anything is sent.
    pub async fn get_json(&self, path: &str) -> Result<Value, UpstreamError> {
        check_path(path)?;
        self.send(self.http.get(self.config.http_url(path))).await
    }

    /// `POST path` with a JSON body, and the JSON answer; paths as for [`Self::get_json`].
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, UpstreamError> {
        check_path(path)?;
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
        let bytes = read_capped(response).await.map_err(|e| match e {
            BodyError::Transport(e) => self.transport(&e),
            BodyError::TooLarge => UpstreamError::Malformed(format!(
                "body is larger than {} MiB",
                MAX_BODY_BYTES / (1024 * 1024)
            )),
        })?;
        classify(&self.config, status, &bytes)
    }

    /// Sends one step of a confirmed action once (never retried: the upstream may have
    /// acted) within [`STEP_TIMEOUT`]. A 2xx without `"success": false` succeeds; a
    /// refusal (409, `success: false`, any other status) fails with the upstream's
    /// reason; a timeout or no connection fails. Never carries the URL or token.
    pub async fn send_step(&self, service: Service, step: &ActionStep) -> StepResult {
        let started = Instant::now();
        let result =
            |status_code: Option<u16>, response: Value, error: Option<String>| StepResult {
                method: step.method,
                endpoint: step.endpoint.clone(),
                status_code,
                ok: error.is_none(),
                response,
                error,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
        let method = match step.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = self
            .http
            .request(method, self.config.http_url(step.endpoint.as_str()))
            .timeout(STEP_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        if !step.payload.is_null() {
            request = request.json(&step.payload);
        }
        if let Some(token) = self.config.token() {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                let error = format!(
                    "{service} did not answer within {} s; not retried (it may have acted)",
                    STEP_TIMEOUT.as_secs()
                );
                return result(None, Value::Null, Some(error));
            }
            Err(e) => {
                let error = format!("cannot reach {service}: {}", self.transport(&e));
                return result(None, Value::Null, Some(error));
            }
        };
        let status = response.status().as_u16();
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let error = format!(
                    "the answer is larger than {} MiB",
                    MAX_BODY_BYTES / (1024 * 1024)
                );
                return result(Some(status), Value::Null, Some(error));
            }
            Err(BodyError::Transport(e)) => {
                let error = format!("the answer could not be read: {}", self.transport(&e));
                return result(Some(status), Value::Null, Some(error));
            }
        };
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let refused = json.get("success") == Some(&Value::Bool(false));
        if (200..300).contains(&status) && !refused {
            return result(Some(status), json, None);
        }
        let text = String::from_utf8_lossy(&body);
        let reason = if json.is_null() && !text.trim().is_empty() {
            truncate(text.trim(), MAX_STEP_REASON_CHARS)
        } else {
            step_reason(&json)
                .map(|r| truncate(&r, MAX_STEP_REASON_CHARS))
                .unwrap_or_else(|| format!("the service answered {status}"))
        };
        result(Some(status), json, Some(self.config.scrub(&reason)))
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

/// Why a body was not read.
enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

/// The whole body, refusing one over [`MAX_BODY_BYTES`] as soon as it gets there.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A refusal's reason as the family's services give it: `detail`, `error`, `message` or
/// `reason`, as text or as an object's `message`.
fn step_reason(body: &Value) -> Option<String> {
    ["detail", "error", "message", "reason"]
        .iter()
        .find_map(|k| match body.get(*k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
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

/// Refuses a path that could leave the route it names once a server decodes or
/// normalises it: a `.` or `..` segment (also percent-encoded) or an encoded `/` or `\`.
/// Paths are built from event data (task ids), so this is where a hostile id stops.
pub fn check_path(path: &str) -> Result<(), UpstreamError> {
    let route = path.split('?').next().unwrap_or_default();
    for segment in route.split('/') {
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        if dots == "." || dots == ".." || lower.contains("%2f") || lower.contains("%5c") {
            return Err(UpstreamError::Refused(format!(
                "refused to call a path with a dot segment or an encoded separator (`{segment}`)"
            )));
        }
    }
    Ok(())
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
    fn dot_segments_and_encoded_separators_are_refused() {
        for bad in [
            "/api/tasks/../keys",
            "/api/tasks/./recover",
            "/api/tasks/%2e%2E/keys",
            "/api/tasks/.%2e",
            "/api/tasks/a%2Fb",
            "/api/tasks/a%5cb",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for ok in [
            "/api/tasks/proj:001",
            "/api/tasks/v1.2/x",
            "/api/tasks?since=..",
            "/",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        assert!(check_path(&format!("/api/tasks/{}", path_segment(".."))).is_err());
        assert!(check_path(&format!("/api/tasks/{}", path_segment("a/b"))).is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("proj:001"), "proj:001");
        assert_eq!(path_segment("a/b c?#"), "a%2Fb%20c%3F%23");
    }
}

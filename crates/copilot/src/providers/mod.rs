//! The language-model providers and their configuration: the Anthropic Messages API and
//! OpenAI-compatible chat completions (OpenAI, Ollama, vLLM and others).
//!
//! Both speak HTTP through `reqwest` with typed serde structs for each wire format. The
//! rig-core crate (0.44, the newest that builds on this toolchain) was evaluated first: it
//! does expose tool calls, base-URL overrides and `is_error` tool results, but it declares
//! rust-version 1.95 where this workspace declares 1.94, brings ~117k lines across a dozen
//! providers plus its own derive macros, schemars, uuid and url for two endpoints, and
//! changes its API between minor releases (0.44 → 0.46). Two small typed clients keep the
//! wire visible, testable against a local replay server, and inside this crate.
//!
//! Both answer whole or streamed (server-sent events, read by [`sse`]); both retry a call
//! turned away as busy before anything of it was read ([`RetryPolicy`]).

mod anthropic;
mod openai;
mod retry;
mod sse;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

pub use anthropic::AnthropicModel;
pub use openai::OpenAiModel;
pub use retry::{RetryPolicy, Sleeper, TokioSleeper};

use crate::model::{
    ChatResponse, LanguageModel, ModelError, ModelEvent, ModelStream, TokenUsage, events_of,
};
use sse::{SseDecoder, SseEvent};

/// Anthropic's API, when `CFACTORY_ANTHROPIC_BASE_URL` is not set.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The model used with Anthropic when `CFACTORY_COPILOT_MODEL` is not set.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-6";
/// OpenAI's API, when `CFACTORY_OPENAI_BASE_URL` is not set.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// How long one model call may take.
pub const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest provider error message kept.
const MAX_ERROR_CHARS: usize = 300;

/// Which wire format to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The Anthropic Messages API.
    Anthropic,
    /// OpenAI-compatible chat completions.
    OpenAi,
}

impl Provider {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
        }
    }
}

/// An API key. Never printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why the copilot's model configuration was refused; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `CFACTORY_COPILOT_PROVIDER` is neither `anthropic` nor `openai`.
    #[error("CFACTORY_COPILOT_PROVIDER must be `anthropic` or `openai`, not `{0}`")]
    UnknownProvider(String),
    /// A variable the provider needs is not set.
    #[error("{var} must be set when CFACTORY_COPILOT_PROVIDER is {provider}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// The provider that needs it.
        provider: &'static str,
    },
    /// A base URL that is not an http(s) URL without query or fragment.
    #[error("{var} must be an http:// or https:// URL without query or fragment")]
    BadUrl {
        /// The variable.
        var: &'static str,
    },
}

/// Which model the copilot talks to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The wire format.
    pub provider: Provider,
    /// The model id.
    pub model: String,
    /// The API's base URL, without a trailing `/` (Anthropic: the host, to which
    /// `/v1/messages` is added; OpenAI-compatible: up to `/v1`, to which
    /// `/chat/completions` is added).
    pub base_url: String,
    /// The key, when the provider takes one.
    pub api_key: Option<ApiKey>,
    /// How long one call may take.
    pub timeout: Duration,
}

impl ModelConfig {
    /// Reads the configuration from the process environment: `CFACTORY_COPILOT_PROVIDER`
    /// (`anthropic` | `openai`), `CFACTORY_COPILOT_MODEL`, `CFACTORY_ANTHROPIC_API_KEY`
    /// (else `ANTHROPIC_API_KEY`), `CFACTORY_ANTHROPIC_BASE_URL`, `CFACTORY_OPENAI_BASE_URL`,
    /// `CFACTORY_OPENAI_API_KEY` (else `OPENAI_API_KEY`). `None` when no provider is
    /// configured.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], reading variables through `lookup`. Empty values count as
    /// unset. Anthropic needs a key and defaults the model to
    /// [`DEFAULT_ANTHROPIC_MODEL`]; OpenAI-compatible needs `CFACTORY_COPILOT_MODEL` and
    /// takes a key only when the server wants one (Ollama does not).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(provider) = get("CFACTORY_COPILOT_PROVIDER") else {
            return Ok(None);
        };
        let model = get("CFACTORY_COPILOT_MODEL");
        let config = match provider.to_ascii_lowercase().as_str() {
            "anthropic" => {
                // The provider's own variable is the usual fallback for ours.
                let key = get("CFACTORY_ANTHROPIC_API_KEY")
                    .or_else(|| get("ANTHROPIC_API_KEY"))
                    .ok_or(ConfigError::Missing {
                        var: "CFACTORY_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)",
                        provider: "anthropic",
                    })?;
                Self {
                    provider: Provider::Anthropic,
                    model: model.unwrap_or_else(|| DEFAULT_ANTHROPIC_MODEL.to_owned()),
                    base_url: base_url(
                        "CFACTORY_ANTHROPIC_BASE_URL",
                        get("CFACTORY_ANTHROPIC_BASE_URL"),
                        DEFAULT_ANTHROPIC_BASE_URL,
                    )?,
                    api_key: Some(ApiKey::new(key)),
                    timeout: DEFAULT_MODEL_TIMEOUT,
                }
            }
            "openai" => Self {
                provider: Provider::OpenAi,
                model: model.ok_or(ConfigError::Missing {
                    var: "CFACTORY_COPILOT_MODEL",
                    provider: "openai",
                })?,
                base_url: base_url(
                    "CFACTORY_OPENAI_BASE_URL",
                    get("CFACTORY_OPENAI_BASE_URL"),
                    DEFAULT_OPENAI_BASE_URL,
                )?,
                api_key: get("CFACTORY_OPENAI_API_KEY")
                    .or_else(|| get("OPENAI_API_KEY"))
                    .map(ApiKey::new),
                timeout: DEFAULT_MODEL_TIMEOUT,
            },
            _ => return Err(ConfigError::UnknownProvider(provider)),
        };
        Ok(Some(config))
    }
}

fn base_url(
    var: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let url = value.unwrap_or_else(|| default.to_owned());
    let lower = url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let host_ok = url
        .split("://")
        .nth(1)
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err(ConfigError::BadUrl { var });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The provider `config` names, ready to call, retrying busy answers by
/// [`RetryPolicy::standard`].
pub fn build_model(config: &ModelConfig) -> Arc<dyn LanguageModel> {
    match config.provider {
        Provider::Anthropic => Arc::new(
            AnthropicModel::new(
                &config.base_url,
                config.api_key.clone().unwrap_or_else(|| ApiKey::new("")),
                &config.model,
                config.timeout,
            )
            .with_retries(RetryPolicy::standard()),
        ),
        Provider::OpenAi => Arc::new(
            OpenAiModel::new(
                &config.base_url,
                config.api_key.clone(),
                &config.model,
                config.timeout,
            )
            .with_retries(RetryPolicy::standard()),
        ),
    }
}

/// List prices in US dollars per million tokens (input, output) of the hosted models whose
/// id starts with the first column; the first match wins, so longer ids come first.
const LIST_PRICES: [(&str, f64, f64); 9] = [
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
];

/// What `usage` cost at list price on the model `described` (as
/// [`LanguageModel::describe`] names it: `anthropic:claude-sonnet-4-6`), rounded to a
/// hundredth of a cent; `None` for a model without a known price (a local or self-hosted
/// one, say).
pub fn list_cost_usd(described: &str, usage: TokenUsage) -> Option<f64> {
    let model = described.split_once(':').map_or(described, |(_, m)| m);
    let (_, per_in, per_out) = LIST_PRICES
        .iter()
        .find(|(prefix, _, _)| model.starts_with(prefix))?;
    let dollars =
        (usage.input_tokens as f64 * per_in + usage.output_tokens as f64 * per_out) / 1_000_000.0;
    Some((dollars * 10_000.0).round() / 10_000.0)
}

/// A reqwest client with `timeout`; the default client if TLS cannot initialise (then no
/// client could do better). TLS uses ring, installed as the process's rustls provider
/// unless one already is.
fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// A transport failure, without the URL.
fn transport_error(err: reqwest::Error) -> ModelError {
    if err.is_timeout() {
        return ModelError::Timeout;
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ModelError::Transport(truncate(&text))
}

fn truncate(text: &str) -> String {
    let mut t: String = text.chars().take(MAX_ERROR_CHARS).collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        t.push('…');
    }
    t
}

/// The error for a non-success answer: the provider's own message (`error.message`,
/// `error` as text, or the body), classified by status.
fn status_error(status: u16, body: &[u8]) -> ModelError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .or_else(|| v.get("error").and_then(Value::as_str))
                .or_else(|| v.get("message").and_then(Value::as_str))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message = truncate(&message);
    match status {
        401 | 403 => ModelError::Unauthorized { status, message },
        _ if retry::retryable(status) => ModelError::RateLimited { status, message },
        _ => ModelError::Status { status, message },
    }
}

/// `error` with a note on why no further attempt was made.
fn gave_up(error: ModelError, why: String) -> ModelError {
    match error {
        ModelError::RateLimited { status, message } => ModelError::RateLimited {
            status,
            message: format!("{message} ({why})"),
        },
        other => other,
    }
}

/// Sends the request `build` makes and returns the 2xx answer, its body unread; a 429,
/// 503 or 529 is tried again as `policy` allows, any other status fails at once with the
/// classified error.
async fn send(
    policy: &RetryPolicy,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, ModelError> {
    let mut attempt = 1;
    loop {
        let response = build().send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let code = status.as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let asked = retry::requested_wait(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            policy.clock.now(),
        );
        let body = response.bytes().await.map_err(transport_error)?;
        let error = status_error(code, &body);
        if !retry::retryable(code) || policy.max_attempts <= 1 {
            return Err(error);
        }
        if attempt >= policy.max_attempts {
            return Err(gave_up(error, format!("gave up after {attempt} attempts")));
        }
        let wait = asked.unwrap_or_else(|| policy.backoff(attempt));
        if wait > policy.max_wait {
            return Err(gave_up(
                error,
                format!(
                    "it asked to wait {:.0} s, longer than the {:.0} s CFactory waits",
                    wait.as_secs_f64().ceil(),
                    policy.max_wait.as_secs_f64()
                ),
            ));
        }
        tracing::warn!(
            status = code,
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "model provider busy; trying again"
        );
        policy.sleeper.sleep(wait).await;
        attempt += 1;
    }
}

/// The whole body of a 2xx answer.
async fn body_of(response: reqwest::Response) -> Result<Vec<u8>, ModelError> {
    Ok(response.bytes().await.map_err(transport_error)?.to_vec())
}

/// How one provider's streamed events become [`ModelEvent`]s.
trait WireEvents: Send + 'static {
    /// Takes one event, appending what it means to `out`; `true` once the answer is
    /// complete (nothing after it is read).
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<ModelEvent>) -> Result<bool, ModelError>;

    /// The body ended before the answer was complete: the last events, or why that is an
    /// error.
    fn on_end(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), ModelError>;
}

/// A 2xx answer to a streaming request as [`ModelEvent`]s, read through `wire`. A server
/// that answered JSON anyway (some OpenAI-compatible ones ignore `stream`) is read whole
/// with `whole` and streamed as that answer's events.
async fn event_stream(
    response: reqwest::Response,
    wire: impl WireEvents,
    whole: fn(&[u8]) -> Result<ChatResponse, ModelError>,
) -> Result<ModelStream, ModelError> {
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if is_json {
        let answer = whole(&body_of(response).await?)?;
        return Ok(Box::pin(futures::stream::iter(
            events_of(answer).into_iter().map(Ok),
        )));
    }
    let reader = Reader {
        body: Box::pin(response.bytes_stream()),
        sse: SseDecoder::default(),
        wire,
        ready: VecDeque::new(),
        ended: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        reader,
        |mut r| async move {
            loop {
                if let Some(item) = r.ready.pop_front() {
                    if item.is_err() {
                        r.ready.clear();
                        r.ended = true;
                    }
                    return Some((item, r));
                }
                if r.ended {
                    return None;
                }
                r.pull().await;
            }
        },
    )))
}

/// The state of one streamed answer.
struct Reader<B, W> {
    body: B,
    sse: SseDecoder,
    wire: W,
    ready: VecDeque<Result<ModelEvent, ModelError>>,
    ended: bool,
}

impl<B, C, W> Reader<B, W>
where
    B: Stream<Item = reqwest::Result<C>> + Unpin,
    C: AsRef<[u8]>,
    W: WireEvents,
{
    /// Reads the next chunk and queues what it completes.
    async fn pull(&mut self) {
        let mut out = Vec::new();
        let outcome = match self.body.next().await {
            Some(Ok(chunk)) => {
                let mut events = Vec::new();
                let fed = self.sse.feed(chunk.as_ref(), &mut events);
                let mut outcome = Ok(false);
                for event in events {
                    outcome = self.wire.on_event(event, &mut out);
                    if !matches!(outcome, Ok(false)) {
                        break;
                    }
                }
                match (outcome, fed) {
                    (Ok(false), Err(e)) => Err(e),
                    (outcome, _) => outcome,
                }
            }
            Some(Err(e)) => Err(transport_error(e)),
            None => self.wire.on_end(&mut out).map(|()| true),
        };
        self.ready.extend(out.into_iter().map(Ok));
        match outcome {
            Ok(false) => {}
            Ok(true) => self.ended = true,
            Err(e) => {
                self.ready.push_back(Err(e));
                self.ended = true;
            }
        }
    }
}

/// The error a provider's `error` event names by its type (Anthropic's
/// `{"type": "error", "error": {"type": "overloaded_error", "message": …}}`, or an
/// OpenAI-compatible `{"error": {"message": …, "code": …}}` chunk), classified as the
/// status that type answers over HTTP.
fn error_event(data: &str) -> ModelError {
    let parsed: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let kind = parsed
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => parsed
            .pointer("/error/code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c))
            .unwrap_or(500),
    };
    let body = if parsed.is_null() {
        data.as_bytes().to_vec()
    } else {
        parsed.to_string().into_bytes()
    };
    status_error(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<ModelConfig>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ModelConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_provider_means_no_model() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(
            config(&[
                ("ANTHROPIC_API_KEY", "sk-x"),
                ("CFACTORY_COPILOT_PROVIDER", " ")
            ]),
            Ok(None)
        );
    }

    #[test]
    fn anthropic_needs_a_key_and_defaults_the_rest() {
        assert_eq!(
            config(&[("CFACTORY_COPILOT_PROVIDER", "anthropic")]),
            Err(ConfigError::Missing {
                var: "CFACTORY_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)",
                provider: "anthropic"
            })
        );
        let c = config(&[
            ("CFACTORY_COPILOT_PROVIDER", "Anthropic"),
            ("ANTHROPIC_API_KEY", "sk-x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.provider, Provider::Anthropic);
        assert_eq!(c.model, DEFAULT_ANTHROPIC_MODEL);
        assert_eq!(c.base_url, DEFAULT_ANTHROPIC_BASE_URL);
        assert!(!format!("{c:?}").contains("sk-x"), "the key never prints");
        let c = config(&[
            ("CFACTORY_COPILOT_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "sk-x"),
            ("CFACTORY_COPILOT_MODEL", "claude-haiku-4-5"),
            ("CFACTORY_ANTHROPIC_BASE_URL", "http://127.0.0.1:9999/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.model, "claude-haiku-4-5");
        assert_eq!(c.base_url, "http://127.0.0.1:9999");
    }

    #[test]
    fn openai_compatible_needs_a_model_and_takes_an_optional_key() {
        assert_eq!(
            config(&[("CFACTORY_COPILOT_PROVIDER", "openai")]),
            Err(ConfigError::Missing {
                var: "CFACTORY_COPILOT_MODEL",
                provider: "openai"
            })
        );
        let c = config(&[
            ("CFACTORY_COPILOT_PROVIDER", "openai"),
            ("CFACTORY_COPILOT_MODEL", "qwen3:8b"),
            ("CFACTORY_OPENAI_BASE_URL", "http://localhost:11434/v1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.provider, Provider::OpenAi);
        assert_eq!(c.base_url, "http://localhost:11434/v1");
        assert_eq!(c.api_key, None);
        let c = config(&[
            ("CFACTORY_COPILOT_PROVIDER", "openai"),
            ("CFACTORY_COPILOT_MODEL", "gpt-5"),
            ("CFACTORY_OPENAI_API_KEY", "sk-o"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.base_url, DEFAULT_OPENAI_BASE_URL);
        assert_eq!(c.api_key, Some(ApiKey::new("sk-o")));
    }

    #[test]
    fn the_providers_own_key_names_are_the_fallback_for_ours() {
        let openai = |vars: &[(&str, &str)]| {
            let mut all = vec![
                ("CFACTORY_COPILOT_PROVIDER", "openai"),
                ("CFACTORY_COPILOT_MODEL", "gpt-5"),
            ];
            all.extend_from_slice(vars);
            config(&all).unwrap().unwrap().api_key
        };
        assert_eq!(
            openai(&[("OPENAI_API_KEY", "sk-usual")]),
            Some(ApiKey::new("sk-usual"))
        );
        assert_eq!(
            openai(&[
                ("OPENAI_API_KEY", "sk-usual"),
                ("CFACTORY_OPENAI_API_KEY", "sk-ours")
            ]),
            Some(ApiKey::new("sk-ours"))
        );
        let anthropic = config(&[
            ("CFACTORY_COPILOT_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "sk-usual"),
            ("CFACTORY_ANTHROPIC_API_KEY", "sk-ours"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(anthropic.api_key, Some(ApiKey::new("sk-ours")));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(
            config(&[("CFACTORY_COPILOT_PROVIDER", "gemini")]),
            Err(ConfigError::UnknownProvider("gemini".into()))
        );
        for bad in [
            "ftp://x",
            "localhost:11434",
            "http://",
            "http://x/v1?key=1",
            "http:///v1",
        ] {
            assert_eq!(
                config(&[
                    ("CFACTORY_COPILOT_PROVIDER", "openai"),
                    ("CFACTORY_COPILOT_MODEL", "m"),
                    ("CFACTORY_OPENAI_BASE_URL", bad),
                ]),
                Err(ConfigError::BadUrl {
                    var: "CFACTORY_OPENAI_BASE_URL"
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn provider_errors_keep_the_message_and_classify_the_status() {
        let anthropic = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            status_error(401, anthropic),
            ModelError::Unauthorized {
                status: 401,
                message: "invalid x-api-key".into()
            }
        );
        assert!(matches!(
            status_error(529, b"{}"),
            ModelError::RateLimited { .. }
        ));
        assert_eq!(
            status_error(500, b"  upstream exploded "),
            ModelError::Status {
                status: 500,
                message: "upstream exploded".into()
            }
        );
        assert_eq!(
            status_error(404, br#"{"error":"model 'x' not found"}"#),
            ModelError::Status {
                status: 404,
                message: "model 'x' not found".into()
            }
        );
    }
}

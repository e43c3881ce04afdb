//! The API's one error type, answered as `application/problem+json` (RFC 9457). 5xx
//! bodies never carry internals; the log gets the cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cfactory_domain::EventError;
use cfactory_domain::ports::StoreError;
use serde::Serialize;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (or not the JSON shape the endpoint takes).
    #[error("{detail}")]
    BadRequest {
        /// What was wrong.
        detail: String,
    },
    /// Well-formed but not acceptable: a missing or invalid field or parameter.
    #[error("{detail}")]
    Unprocessable {
        /// The offending field or parameter, as a dotted path.
        field: Option<String>,
        /// What was wrong.
        detail: String,
    },
    /// The body or one event is over its limit.
    #[error("{detail}")]
    TooLarge {
        /// Which limit.
        detail: String,
    },
    /// No such resource for this tenant.
    #[error("{detail}")]
    NotFound {
        /// What was looked for.
        detail: String,
    },
    /// No credentials, or unknown ones.
    #[error("{detail}")]
    Unauthorized {
        /// Why.
        detail: String,
    },
    /// The key lacks the scope.
    #[error("{detail}")]
    Forbidden {
        /// Why.
        detail: String,
    },
    /// The request names a host this server does not answer to (DNS rebinding).
    #[error("{detail}")]
    Misdirected {
        /// Which host.
        detail: String,
    },
    /// The body is not in a media type the route takes.
    #[error("{detail}")]
    UnsupportedMediaType {
        /// What the route takes.
        detail: String,
    },
    /// The request conflicts with the resource's state (an action already decided).
    #[error("{detail}")]
    Conflict {
        /// Why.
        detail: String,
    },
    /// A feature is not configured (no language model).
    #[error("{detail}")]
    NotConfigured {
        /// How to configure it.
        detail: String,
    },
    /// A service CFactory called failed.
    #[error("{detail}")]
    BadGateway {
        /// What failed.
        detail: String,
    },
    /// A service CFactory called did not answer in time.
    #[error("{detail}")]
    GatewayTimeout {
        /// What timed out.
        detail: String,
    },
    /// Over a request limit: retry after `retry_after` seconds.
    #[error("{detail}")]
    TooManyRequests {
        /// Which limit.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The store is down: nothing was written.
    #[error("the store is unavailable")]
    Unavailable,
    /// The request took longer than `--request-timeout-seconds`; what it did before
    /// the deadline may have been committed (a retry of an ingest is a duplicate).
    #[error("{detail}")]
    TimedOut {
        /// The limit that was met.
        detail: String,
    },
    /// A stored row no longer decodes: reported, never the bare internal error.
    #[error("{detail}")]
    Unreadable {
        /// What cannot be read.
        detail: String,
    },
    /// A bug or an unexpected store failure.
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// A 404 for the item under `key`.
    pub fn no_item(key: &str) -> Self {
        Self::NotFound {
            detail: format!("no work item `{key}`"),
        }
    }

    /// An event's parse error, its field prefixed with `path` (e.g. `[3]` in a batch).
    pub fn from_event(error: EventError, path: &str) -> Self {
        match error {
            EventError::Malformed(detail) => Self::BadRequest {
                detail: if path.is_empty() {
                    detail
                } else {
                    format!("{path}: {detail}")
                },
            },
            other => {
                let field = other.field().map(|f| format!("{path}{}", dotted(path, f)));
                Self::Unprocessable {
                    detail: match &field {
                        Some(f) if !path.is_empty() => format!("{other} (at `{f}`)"),
                        _ => other.to_string(),
                    },
                    field,
                }
            }
        }
    }

    /// The `application/problem+json` body this error answers with (also the data of a
    /// stream's `error` event).
    pub fn problem_json(&self) -> String {
        let (status, slug, title) = self.parts();
        let field = match self {
            Self::Unprocessable { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = Problem {
            kind: format!("https://cfactory.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            field,
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Unprocessable { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable content",
            ),
            Self::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Content too large",
            ),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Misdirected { .. } => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected",
                "Misdirected request",
            ),
            Self::UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::NotConfigured { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-configured",
                "Not configured",
            ),
            Self::BadGateway { .. } => (StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway"),
            Self::GatewayTimeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "Gateway timeout",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::TimedOut { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timed-out",
                "Request timed out",
            ),
            Self::Unreadable { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "unreadable",
                "Stored state unreadable",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

fn dotted(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!(".{field}")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Self::Unavailable
            }
            StoreError::Unreadable(cause) => {
                tracing::error!(%cause, "stored state unreadable");
                Self::Unreadable {
                    detail: "its stored state cannot be read (written by another version, \
                             edited or damaged); the log names it, and new events for it \
                             are kept on its timeline"
                        .into(),
                }
            }
            other => {
                tracing::error!(cause = %other, "store error");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        let mut response = (status, self.problem_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unavailable | Self::TimedOut { .. }) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let Self::TooManyRequests { retry_after, .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if matches!(self, Self::Unauthorized { .. }) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cfactory\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_errors_name_their_field_inside_a_batch() {
        let e = ApiError::from_event(
            EventError::Missing {
                field: "status".into(),
            },
            "[3]",
        );
        match e {
            ApiError::Unprocessable { field, detail } => {
                assert_eq!(field.as_deref(), Some("[3].status"));
                assert!(detail.contains("status"), "{detail}");
            }
            other => panic!("expected 422, got {other:?}"),
        }
        assert!(matches!(
            ApiError::from_event(EventError::Malformed("eof".into()), ""),
            ApiError::BadRequest { .. }
        ));
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let r = ApiError::from(StoreError::Unavailable("down".into())).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}

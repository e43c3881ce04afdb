//! SCIM's error responses (RFC 7644 §3.12): `urn:ietf:params:scim:api:messages:2.0:Error`
//! bodies with the status as a string and a `scimType` where the RFC names one, sent as
//! `application/scim+json`. Everything under `/scim/v2` fails this way, 401 and 403
//! included; 5xx bodies never carry internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cfactory_domain::ports::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;

/// The media type of every SCIM body.
pub const SCIM_JSON: &str = "application/scim+json";

/// The schema URN of an error body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimErrorDoc {
    /// Always `["urn:ietf:params:scim:api:messages:2.0:Error"]`.
    pub schemas: Vec<String>,
    /// The HTTP status, as a string.
    pub status: String,
    /// The kind of error the RFC names (`uniqueness`, `invalidFilter`, `invalidValue`,
    /// `invalidSyntax`, `noTarget`, `mutability`, `invalidPath`, `tooMany`), when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// What went wrong.
    pub detail: String,
}

/// Why a SCIM request failed.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 `invalidValue`: a missing or unacceptable attribute value.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }

    /// 400 `invalidFilter`: a filter this server cannot read or does not support.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }

    /// 400 `invalidSyntax`: a body that is not JSON or not a SCIM message of its kind.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }

    /// 400 `invalidPath`: a PATCH path this server cannot read.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }

    /// 400 `noTarget`: a PATCH operation with nothing to act on.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }

    /// 409 `uniqueness`: a user name or display name taken in the tenant.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    /// 409 without a type: a resource that kept changing under a PATCH; the client sends
    /// it again.
    pub fn kept_changing(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, None, detail)
    }

    /// 404: no such resource in the caller's tenant.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// 501: a feature this server does not offer.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, None, detail)
    }

    /// 415: a body not declared as SCIM or plain JSON.
    pub fn media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "send the body as `Content-Type: application/scim+json` (or application/json)",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `scimType`, if any.
    #[cfg(test)]
    pub fn into_response_type(self) -> Option<&'static str> {
        self.scim_type
    }
}

impl From<ApiError> for ScimError {
    fn from(error: ApiError) -> Self {
        let detail = error.to_string();
        match error {
            ApiError::Unauthorized { .. } => Self::new(StatusCode::UNAUTHORIZED, None, detail),
            ApiError::Forbidden { .. } => Self::new(StatusCode::FORBIDDEN, None, detail),
            ApiError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, None, detail),
            ApiError::TooManyRequests { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, Some("tooMany"), detail)
            }
            ApiError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the store is unavailable; try again shortly",
            ),
            ApiError::Unreadable { .. } | ApiError::Internal => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
            ApiError::BadRequest { .. } | ApiError::Unprocessable { .. } => {
                Self::invalid_syntax(detail)
            }
            other => {
                let response = other.into_response();
                Self::new(response.status(), None, detail)
            }
        }
    }
}

impl From<StoreError> for ScimError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Duplicate(_) => {
                Self::uniqueness("a resource of this tenant already has that unique value")
            }
            other => ApiError::from(other).into(),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let body = ScimErrorDoc {
            schemas: vec![ERROR_SCHEMA.to_owned()],
            status: self.status.as_u16().to_string(),
            scim_type: self.scim_type.map(str::to_owned),
            detail: self.detail,
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cfactory-scim\""),
            );
        }
        response
    }
}

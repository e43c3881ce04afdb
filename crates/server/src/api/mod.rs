//! The HTTP API: one router per area, merged by [`router`]; probes and the OpenAPI
//! document generated from the handlers' annotations.

pub mod actions;
pub mod audit;
pub mod events;
pub mod insights;
pub mod mcp;
pub mod services;
pub mod workitems;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::problem::ApiError;
use crate::state::AppState;

/// An `application/problem+json` body (RFC 9457).
#[derive(Serialize, ToSchema)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The offending field or parameter, for 422s.
    pub field: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "CFactory API",
        description = "The cockpit over PFactory, AIFactory and TFactory: completion-event ingress, WorkItems, timelines and usage."
    ),
    paths(
        events::ingest,
        workitems::list,
        workitems::one,
        workitems::timeline,
        workitems::usage,
        services::list,
        services::set_url,
        services::refresh,
        services::process,
        insights::rollups,
        insights::tokens,
        insights::anomalies,
        insights::needs,
        insights::needs_count,
        insights::search,
        insights::activity,
        insights::cards,
        audit::page,
        audit::chain,
        health,
        ready,
        metrics,
    ),
    components(schemas(ProblemDoc, services::SetUrl)),
    modifiers(&Security),
    tags(
        (name = "events", description = "Completion-event ingress (RFC-0001)"),
        (name = "workitems", description = "WorkItems and their timelines"),
        (name = "usage", description = "Tokens and spend"),
        (name = "insights", description = "Rollups, cost, anomalies, needs-you, search and activity"),
        (name = "audit", description = "The HMAC-chained audit log"),
        (name = "services", description = "The upstream services: health, URLs, refresh"),
        (name = "ops", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// Every API route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(events::router())
        .merge(workitems::router())
        .merge(services::router())
        .merge(insights::router())
        .merge(audit::router())
        .merge(actions::router())
        .merge(mcp::router())
        .merge(crate::session::router())
        .route("/api/ws", get(crate::live::ws::upgrade))
        .route("/ws/cockpit", get(crate::live::ws::upgrade))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "The process is up")))]
pub async fn health() -> impl IntoResponse {
    Json(Status {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: the store answers.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses(
        (status = 200, description = "The store answers"),
        (status = 503, description = "The store does not answer", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if let Err(e) = state.work.ping().await {
        state.metrics.store_error();
        tracing::warn!(cause = %e, "readiness check failed");
        return Err(ApiError::Unavailable);
    }
    if !state.model.is_loaded() {
        return Err(ApiError::Unavailable);
    }
    Ok(Json(Status {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = (StatusCode::OK, state.metrics.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

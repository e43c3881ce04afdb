//! The HTTP API: one router per area, merged by [`router`]; probes and the OpenAPI
//! document generated from the handlers' annotations.

pub mod actions;
pub mod agents;
pub mod audit;
pub mod copilot;
pub mod dto;
pub mod events;
pub mod groups;
pub mod insights;
pub mod mcp;
pub mod paging;
pub mod roles;
pub mod services;
pub mod users;
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

/// Paths that serve the same operation as another, documented as such: the ingest
/// alias and the cockpit stream's second address.
const ALIASES: [(&str, &str, &str); 2] = [
    ("/api/events", "/api/events/completion", "ingestEventsAlias"),
    ("/ws/cockpit", "/api/ws", "cockpitStreamAlias"),
];

/// A problem+json response.
fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDoc")))
                .build(),
        )
        .build()
}

/// Adds the errors every operation of a kind can give, where its own annotation does
/// not already say: 401 and 403 on authenticated operations, 400 (unreadable body) and
/// 422 on those with a body, 503 (store unavailable) on every `/api` operation; and
/// documents the alias paths.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.delete.as_mut()),
                (true, item.patch.as_mut()),
            ];
            for (changes, op) in ops {
                let Some(op) = op else { continue };
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem(description).into());
                };
                if secured {
                    add("401", "No key, or an unknown or revoked one");
                    add("403", "The key lacks the scope this operation needs");
                }
                // SCIM's operations document their own errors, in SCIM's format.
                if has_body && !path.starts_with(crate::scim::PREFIX) {
                    add("400", "The body is not JSON, or not JSON of this shape");
                    add(
                        "415",
                        "The body is not declared `Content-Type: application/json`",
                    );
                    add("422", "A missing or invalid field, named in `field`");
                }
                if changes {
                    add("403", "A browser's `Origin` that is not this server's own");
                }
                add(
                    "421",
                    "In open mode, a `Host` that is not one of this server's own names",
                );
                if path != "/health" && path != "/ready" {
                    add(
                        "429",
                        "Over a request limit for this key, session or address; see \
                         Retry-After",
                    );
                }
                if path.starts_with("/api/") {
                    add("503", "The store is unavailable; try again shortly");
                }
            }
        }
        for (alias, of, operation_id) in ALIASES {
            if let Some(mut item) = openapi.paths.paths.get(of).cloned() {
                for op in [item.get.as_mut(), item.post.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    op.operation_id = Some(operation_id.to_owned());
                    op.description = Some(format!(
                        "The same operation as `{of}`, at the address some senders use."
                    ));
                }
                openapi.paths.paths.insert(alias.to_owned(), item);
            }
        }
    }
}

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::session::COOKIE))),
        );
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
        description = "The cockpit over PFactory, AIFactory and TFactory: completion-event ingress, WorkItems, timelines, usage, insights, advise-and-confirm actions, the copilot, MCP and the live stream."
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
        actions::list,
        actions::propose,
        actions::one,
        actions::confirm,
        actions::reject,
        actions::for_item,
        actions::propose_contract,
        actions::confirm_advised,
        copilot::chat,
        mcp::message,
        mcp::stream,
        crate::session::current,
        crate::session::sign_in,
        crate::session::sign_out,
        crate::sso::methods,
        crate::sso::login,
        crate::sso::callback,
        users::list,
        users::set_active,
        users::delete,
        groups::list,
        roles::list,
        crate::scim::search_everything,
        crate::scim::users::service_provider_config,
        crate::scim::users::resource_types,
        crate::scim::users::resource_type,
        crate::scim::users::schemas,
        crate::scim::users::schema,
        crate::scim::users::list,
        crate::scim::users::search,
        crate::scim::users::create,
        crate::scim::users::one,
        crate::scim::users::replace,
        crate::scim::users::change,
        crate::scim::users::remove,
        crate::scim::groups::list,
        crate::scim::groups::search,
        crate::scim::groups::create,
        crate::scim::groups::one,
        crate::scim::groups::replace,
        crate::scim::groups::change,
        crate::scim::groups::remove,
        crate::live::ws::upgrade,
        agents::list,
        agents::console,
        health,
        ready,
        metrics,
        openapi,
    ),
    components(schemas(ProblemDoc, services::SetUrl)),
    modifiers(&Security, &CommonResponses),
    tags(
        (name = "events", description = "Completion-event ingress (RFC-0001)"),
        (name = "workitems", description = "WorkItems and their timelines"),
        (name = "usage", description = "Tokens and spend"),
        (name = "insights", description = "Rollups, cost, anomalies, needs-you, search and activity"),
        (name = "audit", description = "The HMAC-chained audit log"),
        (name = "services", description = "The upstream services: health, URLs, refresh"),
        (name = "actions", description = "Advise and confirm: proposals, confirms, rejects, and the copilot's chat"),
        (name = "mcp", description = "The Model Context Protocol endpoint over the copilot's tools"),
        (name = "session", description = "Browser sign-in: with an API key, or single sign-on (OpenID Connect)"),
        (name = "users", description = "The people who sign in by single sign-on, their provisioned groups and the [roles] table"),
        (name = "scim", description = "SCIM 2.0 provisioning of users and groups (RFC 7643, RFC 7644), for a key with the `scim` scope"),
        (name = "live", description = "The cockpit's WebSocket stream and the live agent consoles"),
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
        .merge(copilot::router())
        .merge(agents::router())
        .merge(mcp::router())
        .merge(crate::session::router())
        .merge(crate::sso::router())
        .merge(users::router())
        .merge(groups::router())
        .merge(roles::router())
        .merge(crate::scim::router())
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn metrics(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<Response, ApiError> {
    caller.require(cfactory_domain::ports::Scope::Metrics)?;
    let sampled = crate::metrics::Sampled {
        read_model: state.model.footprint(),
        store: state.stores.load(),
        ws_clients: state.hub.client_count(),
        ws_connections: state.hub.subscribed_count(),
        ws_dropped: state.hub.dropped_count(),
        upstreams: state.upstreams.health_tally().await,
    };
    let body = state.metrics.render(&sampled);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi", responses((status = 200, description = "The OpenAPI 3.1 description of every route", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The OpenAPI document as pretty JSON with a final newline: what `cfactory openapi`
/// prints and `ui/src/api/openapi.json` holds.
pub fn openapi_document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

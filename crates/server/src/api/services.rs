//! The caller's tenant's upstream services as the cockpit sees them: their health and
//! URLs, a poll round on demand, and a WorkItem's execution graph from the service of its
//! furthest stage. Every route reads or changes the caller's own tenant's registry only.
//! No answer here carries an upstream URL in an error or a token at all, and `/process`
//! never answers 5xx for an upstream's failure.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use cfactory_domain::Service;
use cfactory_domain::ports::Scope;
use cfactory_domain::upstream::UpstreamError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::live::upstreams::{RoundReport, ServiceView, SetError, TokenChange};
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/services", get(list))
        .route("/api/services/{name}", put(set_url))
        .route("/api/refresh", post(refresh))
        .route("/api/workitems/{correlationKey}/process", get(process))
}

/// Every watched service of the caller's tenant with its URL and latest health.
#[utoipa::path(
    get,
    path = "/api/services",
    tag = "services",
    responses((status = 200, description = "Each upstream's URL and health", body = ServiceList)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ServiceList>, ApiError> {
    caller.require(Scope::Read)?;
    let services: Vec<ServiceView> = state.upstreams.views(&caller.tenant).await;
    Ok(Json(ServiceList { services }))
}

/// The watched services.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList {
    /// Each with `service`, `url`, `configured`, `token_set`, `health` and its live
    /// `feeds`; never a token.
    #[schema(value_type = Vec<Object>)]
    services: Vec<ServiceView>,
}

/// What a poll round did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundList {
    /// Per service: its health and how many tasks were read and filed.
    #[schema(value_type = Vec<Object>)]
    services: Vec<RoundReport>,
}

/// An item's execution graph, or why there is none.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessAnswer {
    /// Whether a graph came back.
    available: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The service that runs the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    service: Option<cfactory_domain::Service>,
    /// The stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    stage: Option<cfactory_domain::StageName>,
    /// The upstream's task id.
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<String>,
    /// The graph's nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    nodes: Option<Value>,
}

/// A new base URL for a service, and optionally its token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUrl {
    /// An absolute http:// or https:// URL.
    pub url: String,
    /// The bearer token for the URL's origin. Absent: the current token is kept if the
    /// origin stays the same and dropped if it changes. Empty: no token is sent.
    #[serde(default)]
    pub token: Option<String>,
}

/// Points one of the caller's tenant's services at a new base URL, with its token (stored,
/// then probed at once). Audited with the old and new origin, never the token.
#[utoipa::path(
    put,
    path = "/api/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "pfactory, aifactory or tfactory")),
    request_body = SetUrl,
    responses(
        (status = 200, description = "The service with its fresh probe", body = Object),
        (status = 403, description = "The key lacks the admin scope", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "Not a watched service", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Not an http(s) URL, or a link-local or cloud metadata host", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn set_url(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<SetUrl>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ServiceView>, ApiError> {
    caller.require(Scope::Admin)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
    })?;
    let service = Service::parse(&name)
        .filter(|s| crate::live::upstreams::watched(*s))
        .ok_or_else(|| ApiError::NotFound {
            detail: format!("no watched service `{name}` (pfactory, aifactory, tfactory)"),
        })?;
    let change = state
        .upstreams
        .set(
            &caller.tenant,
            service,
            &body.url,
            TokenChange::from_field(body.token),
            (&state.auditor, &caller.actor()),
        )
        .await
        .map_err(|e| match e {
            SetError::NotHttp | SetError::Metadata => ApiError::field("url", e.to_string()),
            SetError::UnknownService => ApiError::NotFound {
                detail: format!("no watched service `{name}`"),
            },
            SetError::Store(e) | SetError::Audit(e) => ApiError::from(e),
        })?;
    Ok(Json(change.view))
}

/// Runs one poll round now.
#[utoipa::path(
    post,
    path = "/api/refresh",
    tag = "services",
    responses((status = 200, description = "What the round did per service", body = RoundList)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RoundList>, ApiError> {
    caller.require(Scope::Write)?;
    let services: Vec<RoundReport> = state.upstreams.round(&caller.tenant).await;
    for report in services.iter().filter(|r| r.configured) {
        state.metrics.upstream_poll(report.service, report.took);
    }
    Ok(Json(RoundList { services }))
}

fn unavailable(reason: impl Into<String>) -> Json<ProcessAnswer> {
    Json(ProcessAnswer {
        available: false,
        reason: Some(reason.into()),
        service: None,
        stage: None,
        task_id: None,
        nodes: None,
    })
}

/// The execution graph of the item's furthest stage, from the service that runs it.
#[utoipa::path(
    get,
    path = "/api/workitems/{correlationKey}/process",
    tag = "workitems",
    params(("correlationKey" = String, Path, description = "The item's key or an alias")),
    responses(
        (status = 200, description = "`{available: true, service, stage, task_id, nodes}` or `{available: false, reason}`", body = ProcessAnswer),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn process(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<ProcessAnswer>, ApiError> {
    caller.require(Scope::Read)?;
    let item = match state.work.get(&caller.tenant, &key).await {
        Ok(Some(item)) => item,
        Ok(None) => return Err(ApiError::no_item(&key)),
        Err(e) => {
            tracing::warn!(error = %e, "process: the store failed");
            return Ok(unavailable("the store is unavailable"));
        }
    };
    let Some((stage, current)) = item.stages.active() else {
        return Ok(unavailable("no stage has started"));
    };
    let service = stage.service();
    let Some(upstream) = state.upstreams.upstream(&caller.tenant, service).await else {
        return Ok(unavailable(format!("{service} is not configured")));
    };
    match upstream.process(&current.task_id).await {
        Ok(graph) => Ok(Json(ProcessAnswer {
            available: true,
            reason: None,
            service: Some(graph.service),
            stage: Some(graph.stage),
            task_id: Some(graph.task_id),
            nodes: Some(serde_json::to_value(&graph.nodes).unwrap_or_default()),
        })),
        Err(e) => Ok(unavailable(match e {
            UpstreamError::NotFound => format!("{service} has no task {}", current.task_id),
            other => format!("{service}: {other}"),
        })),
    }
}

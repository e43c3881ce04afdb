//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) at `/scim/v2`: an identity provider's
//! provisioning client (Okta, Entra ID, …) creates, changes and removes the tenant's
//! users and groups with an API key holding the `scim` scope. The server side only:
//! requests are read into the user port's types ([`resources`]), filters and PATCH paths
//! are parsed here ([`filter`], [`patch`]), failures answer in SCIM's error format
//! ([`error`]), and every write goes to the store and then the audit chain, naming the
//! key.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
pub mod patch;
pub mod resources;
pub mod users;

use std::hash::{Hash as _, Hasher as _};
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{Scope, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::state::AppState;
use error::{SCIM_JSON, ScimError};
use resources::{Base, LIST_SCHEMA};

/// Where SCIM is served.
pub const PREFIX: &str = "/scim/v2";

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(users::service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(users::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(users::resource_type))
        .route("/scim/v2/Schemas", get(users::schemas))
        .route("/scim/v2/Schemas/{id}", get(users::schema))
        .route("/scim/v2/Users", get(users::list).post(users::create))
        .route("/scim/v2/Users/.search", axum::routing::post(users::search))
        .route(
            "/scim/v2/Users/{id}",
            get(users::one)
                .put(users::replace)
                .patch(users::change)
                .delete(users::remove),
        )
        .route("/scim/v2/Groups", get(groups::list).post(groups::create))
        .route(
            "/scim/v2/Groups/.search",
            axum::routing::post(groups::search),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get(groups::one)
                .put(groups::replace)
                .patch(groups::change)
                .delete(groups::remove),
        )
        .route("/scim/v2/.search", axum::routing::post(search_everything))
        .route("/scim/v2", axum::routing::any(no_such_endpoint))
        .route("/scim/v2/{*rest}", axum::routing::any(no_such_endpoint))
}

/// A search across resource types at once (`POST /scim/v2/.search`): not offered; search
/// `/Users/.search` or `/Groups/.search`.
#[utoipa::path(
    post,
    path = "/scim/v2/.search",
    tag = "scim",
    operation_id = "scimSearchAll",
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM SearchRequest"),
    responses(
        (status = 501, description = "Not offered: search one resource type", body = error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn search_everything(_scim: ScimCaller) -> ScimError {
    ScimError::not_implemented(
        "searching several resource types at once is not offered: POST to /Users/.search or /Groups/.search",
    )
}

async fn no_such_endpoint() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

/// A caller allowed to provision: an API key (or session) with the `scim` scope, for its
/// own tenant. Refusals answer in SCIM's error format.
pub struct ScimCaller {
    /// The caller.
    pub caller: Caller,
    /// This server's `/scim/v2` address as the caller reached it.
    pub base: Base,
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Scope::Scim)?;
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let scheme = if crate::session::over_https(state, &parts.headers, &parts.uri) {
            "https"
        } else {
            "http"
        };
        let base = match &state.own_names.public {
            Some(public) => format!("{}{PREFIX}", public.origin()),
            None => format!("{scheme}://{host}{PREFIX}"),
        };
        Ok(Self {
            caller,
            base: Base(base),
        })
    }
}

impl ScimCaller {
    /// Appends `kind` about resource `target` to the tenant's audit chain, naming the key.
    pub async fn audit(&self, state: &AppState, kind: &str, target: &str) -> Result<(), ScimError> {
        let mut entry = crate::audit::record(&self.caller.actor(), kind, state.clock.now());
        entry.target = Some(target.to_owned());
        state
            .auditor
            .record(&self.caller.tenant, entry)
            .await
            .map_err(ScimError::from)?;
        Ok(())
    }
}

/// A request body: a JSON object, declared `application/scim+json` or `application/json`.
pub struct ScimBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ScimError> {
        if let Some(declared) = request.headers().get(header::CONTENT_TYPE) {
            let media = declared
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media != "application/json" && media != SCIM_JSON {
                return Err(ScimError::media_type());
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ScimError::invalid_syntax(format!("the body cannot be read: {e}")))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ScimError::invalid_syntax("the body must be a JSON object")),
            Err(e) => Err(ScimError::invalid_syntax(format!(
                "the body is not JSON: {e}"
            ))),
        }
    }
}

/// A SCIM answer: `application/scim+json`, with `Location` for a created resource.
pub struct ScimJson<T> {
    status: StatusCode,
    body: T,
    location: Option<String>,
}

impl<T: Serialize> ScimJson<T> {
    /// 200 with `body`.
    pub fn ok(body: T) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            location: None,
        }
    }

    /// 201 with `body`, found at `location`.
    pub fn created(body: T, location: String) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
            location: Some(location),
        }
    }
}

impl<T: Serialize> IntoResponse for ScimJson<T> {
    fn into_response(self) -> Response {
        let Ok(text) = serde_json::to_string(&self.body) else {
            return ScimError::from(StoreError::Unexpected("unserializable".into()))
                .into_response();
        };
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

/// A list's query (RFC 7644 §3.4.2).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// `ATTRIBUTE eq "VALUE"`.
    pub filter: Option<String>,
    /// The 1-based index of the first resource answered (default 1).
    pub start_index: Option<String>,
    /// How many resources at most (default and most: 200).
    pub count: Option<String>,
    /// Answer only these attributes (comma-separated; `id` always).
    pub attributes: Option<String>,
    /// Leave these attributes out (comma-separated).
    pub excluded_attributes: Option<String>,
}

/// The schema URN of a search request.
pub const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A `POST …/.search` body (RFC 7644 §3.4.3) read as the same query a GET takes.
pub fn search_params(body: &Map<String, Value>) -> Result<ListParams, ScimError> {
    use patch::get_ci;
    let listed = matches!(get_ci(body, "schemas"), Some(Value::Array(s)) if s.iter().any(|v| v.as_str() == Some(SEARCH_SCHEMA)));
    if !listed {
        return Err(ScimError::invalid_syntax(format!(
            "a search body's schemas must hold {SEARCH_SCHEMA}"
        )));
    }
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        Ok(match get_ci(body, name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(_) => {
                return Err(ScimError::invalid_value(format!(
                    "`{name}` has the wrong type"
                )));
            }
        })
    };
    Ok(ListParams {
        filter: text("filter")?,
        start_index: text("startIndex")?,
        count: text("count")?,
        attributes: text("attributes")?,
        excluded_attributes: text("excludedAttributes")?,
    })
}

/// Attribute selection on a single resource.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ResourceParams {
    /// Answer only these attributes (comma-separated; `id` always).
    pub attributes: Option<String>,
    /// Leave these attributes out (comma-separated).
    pub excluded_attributes: Option<String>,
}

/// A list answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse {
    /// `["urn:ietf:params:scim:api:messages:2.0:ListResponse"]`.
    pub schemas: Vec<&'static str>,
    /// How many resources match, over all pages.
    #[serde(rename = "totalResults")]
    pub total_results: usize,
    /// How many this page holds.
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: usize,
    /// The 1-based index of this page's first resource.
    #[serde(rename = "startIndex")]
    pub start_index: usize,
    /// This page's resources.
    #[serde(rename = "Resources")]
    #[schema(value_type = Vec<Object>)]
    pub resources: Vec<Map<String, Value>>,
}

/// One page of `all` as `params` asks: 1-based `startIndex` (below 1 counts as 1) and
/// `count` (negative counts as 0, at most [`discovery::MAX_RESULTS`]).
pub fn page(all: Vec<Map<String, Value>>, params: &ListParams) -> Result<ListResponse, ScimError> {
    let number = |name: &str, text: &Option<String>| -> Result<Option<i64>, ScimError> {
        text.as_deref()
            .map(|t| {
                t.trim().parse::<i64>().map_err(|_| {
                    ScimError::invalid_value(format!("`{name}` must be a whole number"))
                })
            })
            .transpose()
    };
    let start = number("startIndex", &params.start_index)?
        .unwrap_or(1)
        .max(1);
    let count = number("count", &params.count)?
        .map_or(discovery::MAX_RESULTS, |c| {
            usize::try_from(c.max(0)).unwrap_or(0)
        })
        .min(discovery::MAX_RESULTS);
    let total = all.len();
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let resources: Vec<Map<String, Value>> = all
        .into_iter()
        .skip(skip)
        .take(count)
        .map(|r| {
            resources::select(
                r,
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(ListResponse {
        schemas: vec![LIST_SCHEMA],
        total_results: total,
        items_per_page: resources.len(),
        start_index: usize::try_from(start).unwrap_or(1),
        resources,
    })
}

/// A new resource id: `prefix` and 16 random letters and digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::keys::random_text(16))
}

/// A caseless comparison for attributes whose `caseExact` is false.
pub fn same_text(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// PATCHes to one resource take turns within this process (one lock per stripe, a
/// resource's stripe chosen by its tenant and id; ids are unique across resource types),
/// so two of them never read the same state and write over each other's change. A group's
/// PATCH also checks the version it read, for another process writing the same store.
static PATCH_TURNS: LazyLock<[tokio::sync::Mutex<()>; 64]> =
    LazyLock::new(|| std::array::from_fn(|_| tokio::sync::Mutex::new(())));

/// The lock a PATCH of the tenant's resource `id` holds from its read to its write.
pub fn patch_turn(tenant: &TenantId, id: &str) -> &'static tokio::sync::Mutex<()> {
    let mut hasher = std::hash::DefaultHasher::new();
    (tenant.as_str(), id).hash(&mut hasher);
    let turns = &*PATCH_TURNS;
    // The remainder is below the stripe count, so it fits.
    #[allow(clippy::cast_possible_truncation)]
    &turns[(hasher.finish() % turns.len() as u64) as usize]
}

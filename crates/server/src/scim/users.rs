//! `/scim/v2/Users` and the discovery endpoints: list with a filter and pages, create,
//! read, replace, PATCH and delete a tenant's users.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cfactory_domain::ports::{ProvisionedUser, StoreError, User, UserSource};
use serde_json::{Map, Value};

use super::discovery::{self, ResourceTypeDoc, SchemaDoc, ServiceProviderConfig};
use super::error::ScimError;
use super::filter::{Equality, parse_filter};
use super::resources::{
    self, Base, USER_ATTRIBUTES, USER_MULTI_VALUED, UserResource, as_object, user_resource,
};
use super::{ListParams, ListResponse, ResourceParams, ScimBody, ScimCaller, ScimJson};
use crate::state::AppState;

/// The ServiceProviderConfig: what this server offers.
#[utoipa::path(
    get,
    path = "/scim/v2/ServiceProviderConfig",
    tag = "scim",
    operation_id = "scimServiceProviderConfig",
    responses(
        (status = 200, description = "What this server offers", body = ServiceProviderConfig, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn service_provider_config(scim: ScimCaller) -> ScimJson<ServiceProviderConfig> {
    ScimJson::ok(discovery::service_provider_config(&scim.base))
}

/// The resource types: User and Group.
#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes",
    tag = "scim",
    operation_id = "scimResourceTypes",
    responses(
        (status = 200, description = "The resource types", body = ListResponse, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn resource_types(scim: ScimCaller) -> Result<ScimJson<ListResponse>, ScimError> {
    let all = discovery::resource_types(&scim.base)
        .iter()
        .map(as_object)
        .collect();
    Ok(ScimJson::ok(super::page(all, &ListParams::default())?))
}

/// One resource type, `User` or `Group`.
#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes/{id}",
    tag = "scim",
    operation_id = "scimResourceType",
    params(("id" = String, Path, description = "`User` or `Group`")),
    responses(
        (status = 200, description = "The resource type", body = ResourceTypeDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such resource type", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn resource_type(
    scim: ScimCaller,
    Path(id): Path<String>,
) -> Result<ScimJson<ResourceTypeDoc>, ScimError> {
    discovery::resource_types(&scim.base)
        .into_iter()
        .find(|t| t.id == id)
        .map(ScimJson::ok)
        .ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))
}

/// The schemas of User and Group.
#[utoipa::path(
    get,
    path = "/scim/v2/Schemas",
    tag = "scim",
    operation_id = "scimSchemas",
    responses(
        (status = 200, description = "The schemas", body = ListResponse, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn schemas(scim: ScimCaller) -> Result<ScimJson<ListResponse>, ScimError> {
    let all = discovery::schemas(&scim.base)
        .iter()
        .map(as_object)
        .collect();
    Ok(ScimJson::ok(super::page(all, &ListParams::default())?))
}

/// One schema, by its URN.
#[utoipa::path(
    get,
    path = "/scim/v2/Schemas/{id}",
    tag = "scim",
    operation_id = "scimSchema",
    params(("id" = String, Path, description = "The schema's URN")),
    responses(
        (status = 200, description = "The schema", body = SchemaDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such schema", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn schema(
    scim: ScimCaller,
    Path(id): Path<String>,
) -> Result<ScimJson<SchemaDoc>, ScimError> {
    discovery::schemas(&scim.base)
        .into_iter()
        .find(|s| s.id == id)
        .map(ScimJson::ok)
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))
}

/// Whether `user`, as rendered, matches `filter`; an attribute this server does not
/// filter on is refused.
fn user_matches(resource: &UserResource, filter: &Equality) -> Result<bool, ScimError> {
    let same = super::same_text;
    Ok(if filter.names("userName") {
        same(&resource.user_name, &filter.value)
    } else if filter.names("displayName") {
        resource
            .display_name
            .as_deref()
            .is_some_and(|d| same(d, &filter.value))
    } else if filter.names("externalId") {
        resource.external_id.as_deref() == Some(filter.value.as_str())
    } else if filter.names("id") {
        resource.id == filter.value
    } else if filter.names("emails") || filter.names("emails.value") {
        resource
            .emails
            .iter()
            .any(|e| same(&e.value, &filter.value))
    } else if filter.names("active") {
        resource.active.to_string() == filter.value.to_ascii_lowercase()
    } else {
        return Err(ScimError::invalid_filter(format!(
            "Users cannot be filtered by `{}`: use userName, displayName, externalId, id, \
             emails or active",
            filter.attribute
        )));
    })
}

fn query<T: Default>(params: Result<Query<T>, QueryRejection>) -> Result<T, ScimError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| ScimError::invalid_value(e.body_text()))
}

/// The tenant's users, filtered and paged.
#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scimListUsers",
    params(ListParams),
    responses(
        (status = 200, description = "A page of the tenant's users", body = ListResponse, content_type = "application/scim+json"),
        (status = 400, description = "An unsupported filter (`invalidFilter`) or page", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    scim: ScimCaller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<ScimJson<ListResponse>, ScimError> {
    let params = query(params)?;
    listed(&state, &scim, &params).await
}

/// The tenant's users as a search body asks (`POST …/.search`): the same as a GET's query.
#[utoipa::path(
    post,
    path = "/scim/v2/Users/.search",
    tag = "scim",
    operation_id = "scimSearchUsers",
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM SearchRequest"),
    responses(
        (status = 200, description = "A page of the tenant's users", body = ListResponse, content_type = "application/scim+json"),
        (status = 400, description = "An unsupported filter (`invalidFilter`), page or body", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    scim: ScimCaller,
    ScimBody(body): ScimBody,
) -> Result<ScimJson<ListResponse>, ScimError> {
    let params = super::search_params(&body)?;
    listed(&state, &scim, &params).await
}

async fn listed(
    state: &AppState,
    scim: &ScimCaller,
    params: &ListParams,
) -> Result<ScimJson<ListResponse>, ScimError> {
    let filter = params.filter.as_deref().map(parse_filter).transpose()?;
    let users = state.users.users(&scim.caller.tenant).await?;
    let mut all = Vec::new();
    for user in &users {
        let resource = user_resource(&scim.base, user);
        if let Some(filter) = &filter
            && !user_matches(&resource, filter)?
        {
            continue;
        }
        all.push(as_object(&resource));
    }
    Ok(ScimJson::ok(super::page(all, params)?))
}

async fn found(state: &AppState, scim: &ScimCaller, id: &str) -> Result<User, ScimError> {
    state
        .users
        .user(&scim.caller.tenant, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user `{id}`")))
}

fn selected(base: &Base, user: &User, params: &ResourceParams) -> Map<String, Value> {
    resources::select(
        as_object(&user_resource(base, user)),
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )
}

fn taken(user: &ProvisionedUser) -> impl FnOnce(StoreError) -> ScimError + '_ {
    move |e| match e {
        StoreError::Duplicate(_) => ScimError::uniqueness(format!(
            "the tenant already has a user named `{}` (or with its externalId)",
            user.user_name
        )),
        other => other.into(),
    }
}

/// The person a POST describes when they signed in by single sign-on before provisioning
/// knew them: the one user of the tenant made by a sign-in and not yet provisioned whose
/// subject is the POST's externalId (or userName, as [`ProvisionedUser::subject`]: an
/// Okta user's id is also its OpenID subject), or whose email is the POST's email or
/// userName. `None` when there is none, or more than one (which one would be a guess).
async fn signed_in_before(
    state: &AppState,
    scim: &ScimCaller,
    user: &ProvisionedUser,
) -> Result<Option<User>, ScimError> {
    let same_email = |email: &str| {
        email.eq_ignore_ascii_case(&user.user_name)
            || user
                .email
                .as_deref()
                .is_some_and(|e| email.eq_ignore_ascii_case(e))
    };
    let mut matching = state
        .users
        .users(&scim.caller.tenant)
        .await?
        .into_iter()
        .filter(|u| u.source == UserSource::Sso && u.user_name.is_none())
        .filter(|u| u.subject == user.subject() || u.email.as_deref().is_some_and(same_email));
    Ok(match (matching.next(), matching.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    })
}

/// Creates a user, or adopts the one a person's earlier sign-in made
/// ([`signed_in_before`]): that user keeps their id, subject and sessions and takes the
/// POST's attributes, so provisioning turned on after people signed in links them instead
/// of refusing them or making a second user.
#[utoipa::path(
    post,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scimCreateUser",
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM User"),
    responses(
        (status = 201, description = "The user, with `Location`: new, or the one the person's earlier single sign-on made, now provisioned", body = UserResource, content_type = "application/scim+json"),
        (status = 400, description = "A missing or invalid attribute (`invalidValue`, `invalidSyntax`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The userName is taken (`uniqueness`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    scim: ScimCaller,
    ScimBody(body): ScimBody,
) -> Result<ScimJson<UserResource>, ScimError> {
    let user = resources::read_user(&body, true)?;
    let adopted = match signed_in_before(&state, &scim, &user).await? {
        Some(earlier) => state
            .users
            .replace_user(&scim.caller.tenant, &earlier.id, &user, state.clock.now())
            .await
            .map_err(taken(&user))?,
        None => None,
    };
    let (stored, kind) = match adopted {
        Some(stored) => (stored, "scim.user.adopted"),
        // No earlier sign-in, or its user was deleted in between: a new user.
        None => {
            let stored = state
                .users
                .provision_user(
                    &scim.caller.tenant,
                    &user,
                    &super::new_id("usr"),
                    state.clock.now(),
                )
                .await
                .map_err(taken(&user))?;
            (stored, "scim.user.created")
        }
    };
    scim.audit(&state, kind, &stored.id).await?;
    let resource = user_resource(&scim.base, &stored);
    let location = resource.meta.location.clone();
    Ok(ScimJson::created(resource, location))
}

/// One user.
#[utoipa::path(
    get,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimGetUser",
    params(("id" = String, Path, description = "The user's id"), ResourceParams),
    responses(
        (status = 200, description = "The user", body = UserResource, content_type = "application/scim+json"),
        (status = 404, description = "No such user in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    scim: ScimCaller,
    Path(id): Path<String>,
    params: Result<Query<ResourceParams>, QueryRejection>,
) -> Result<ScimJson<Map<String, Value>>, ScimError> {
    let params = query(params)?;
    let user = found(&state, &scim, &id).await?;
    Ok(ScimJson::ok(selected(&scim.base, &user, &params)))
}

async fn store_replacement(
    state: &AppState,
    scim: &ScimCaller,
    id: &str,
    user: &ProvisionedUser,
    kind: &str,
) -> Result<ScimJson<UserResource>, ScimError> {
    let stored = state
        .users
        .replace_user(&scim.caller.tenant, id, user, state.clock.now())
        .await
        .map_err(taken(user))?
        .ok_or_else(|| ScimError::not_found(format!("no user `{id}`")))?;
    scim.audit(state, kind, id).await?;
    if !stored.active {
        tracing::info!(user = %id, "provisioning deactivated a user; their sessions ended");
    }
    Ok(ScimJson::ok(user_resource(&scim.base, &stored)))
}

/// Replaces a user; `active: false` ends their sessions at once.
#[utoipa::path(
    put,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimReplaceUser",
    params(("id" = String, Path, description = "The user's id")),
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM User"),
    responses(
        (status = 200, description = "The user as stored", body = UserResource, content_type = "application/scim+json"),
        (status = 400, description = "A missing or invalid attribute", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such user in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The userName is taken (`uniqueness`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn replace(
    State(state): State<AppState>,
    scim: ScimCaller,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Result<ScimJson<UserResource>, ScimError> {
    let user = resources::read_user(&body, true)?;
    store_replacement(&state, &scim, &id, &user, "scim.user.replaced").await
}

/// Changes a user with a PatchOp (add, replace, remove; with or without `path`).
#[utoipa::path(
    patch,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimPatchUser",
    params(("id" = String, Path, description = "The user's id")),
    request_body(content = super::patch::PatchRequest, content_type = "application/scim+json", description = "A SCIM PatchOp"),
    responses(
        (status = 200, description = "The user as stored", body = UserResource, content_type = "application/scim+json"),
        (status = 400, description = "An operation that cannot apply (`noTarget`, `invalidPath`, `invalidValue`, `invalidSyntax`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such user in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The userName is taken (`uniqueness`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn change(
    State(state): State<AppState>,
    scim: ScimCaller,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Result<ScimJson<UserResource>, ScimError> {
    let request: super::patch::PatchRequest = serde_json::from_value(Value::Object(body))
        .map_err(|e| ScimError::invalid_syntax(format!("not a PatchOp: {e}")))?;
    // From the read to the write, no other PATCH of this user in this process runs.
    let _turn = super::patch_turn(&scim.caller.tenant, &id).lock().await;
    let current = found(&state, &scim, &id).await?;
    let mut doc = as_object(&user_resource(&scim.base, &current));
    super::patch::apply(&mut doc, &request, &USER_MULTI_VALUED, &USER_ATTRIBUTES)?;
    let user = resources::read_user(&doc, false)?;
    store_replacement(&state, &scim, &id, &user, "scim.user.patched").await
}

/// Deletes a user with their sessions and memberships.
#[utoipa::path(
    delete,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimDeleteUser",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted; their sessions ended"),
        (status = 404, description = "No such user in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    scim: ScimCaller,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    if !state.users.delete_user(&scim.caller.tenant, &id).await? {
        return Err(ScimError::not_found(format!("no user `{id}`")));
    }
    scim.audit(&state, "scim.user.deleted", &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! `/scim/v2/Groups`: list with a filter and pages, create, read, replace, PATCH (members
//! added and removed one by one, as Okta and Entra send them) and delete a tenant's
//! groups. A group's display name is what the `[roles]` table maps to scopes, so a change
//! of membership changes what its members may do at their next request.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cfactory_domain::ports::{Group, GroupDraft, GroupReplacement, StoreError};
use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{Equality, parse_filter};
use super::resources::{
    self, GROUP_ATTRIBUTES, GROUP_MULTI_VALUED, GroupResource, as_object, group_resource,
};
use super::{ListParams, ListResponse, ResourceParams, ScimBody, ScimCaller, ScimJson};
use crate::state::AppState;

fn group_matches(resource: &GroupResource, filter: &Equality) -> Result<bool, ScimError> {
    Ok(if filter.names("displayName") {
        super::same_text(&resource.display_name, &filter.value)
    } else if filter.names("externalId") {
        resource.external_id.as_deref() == Some(filter.value.as_str())
    } else if filter.names("id") {
        resource.id == filter.value
    } else if filter.names("members") || filter.names("members.value") {
        resource.members.iter().any(|m| m.value == filter.value)
    } else {
        return Err(ScimError::invalid_filter(format!(
            "Groups cannot be filtered by `{}`: use displayName, externalId, id or \
             members.value",
            filter.attribute
        )));
    })
}

fn query<T: Default>(params: Result<Query<T>, QueryRejection>) -> Result<T, ScimError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| ScimError::invalid_value(e.body_text()))
}

/// The tenant's groups, filtered and paged.
#[utoipa::path(
    get,
    path = "/scim/v2/Groups",
    tag = "scim",
    operation_id = "scimListGroups",
    params(ListParams),
    responses(
        (status = 200, description = "A page of the tenant's groups", body = ListResponse, content_type = "application/scim+json"),
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

/// The tenant's groups as a search body asks (`POST …/.search`): the same as a GET's query.
#[utoipa::path(
    post,
    path = "/scim/v2/Groups/.search",
    tag = "scim",
    operation_id = "scimSearchGroups",
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM SearchRequest"),
    responses(
        (status = 200, description = "A page of the tenant's groups", body = ListResponse, content_type = "application/scim+json"),
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
    let groups = state.users.groups(&scim.caller.tenant).await?;
    let mut all = Vec::new();
    for group in &groups {
        let resource = group_resource(&scim.base, group);
        if let Some(filter) = &filter
            && !group_matches(&resource, filter)?
        {
            continue;
        }
        all.push(as_object(&resource));
    }
    Ok(ScimJson::ok(super::page(all, params)?))
}

async fn found(state: &AppState, scim: &ScimCaller, id: &str) -> Result<Group, ScimError> {
    state
        .users
        .group(&scim.caller.tenant, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group `{id}`")))
}

/// Refuses members that are not users of the caller's tenant.
async fn check_members(
    state: &AppState,
    scim: &ScimCaller,
    group: &GroupDraft,
) -> Result<(), ScimError> {
    if group.members.is_empty() {
        return Ok(());
    }
    let known: HashSet<String> = state
        .users
        .users(&scim.caller.tenant)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    match group.members.iter().find(|m| !known.contains(*m)) {
        Some(unknown) => Err(ScimError::invalid_value(format!(
            "member `{unknown}` is not a user of this tenant"
        ))),
        None => Ok(()),
    }
}

fn taken(group: &GroupDraft) -> impl FnOnce(StoreError) -> ScimError + '_ {
    move |e| match e {
        StoreError::Duplicate(_) => ScimError::uniqueness(format!(
            "the tenant already has a group named `{}`",
            group.display_name
        )),
        other => other.into(),
    }
}

/// Creates a group.
#[utoipa::path(
    post,
    path = "/scim/v2/Groups",
    tag = "scim",
    operation_id = "scimCreateGroup",
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM Group"),
    responses(
        (status = 201, description = "The group, with `Location`", body = GroupResource, content_type = "application/scim+json"),
        (status = 400, description = "A missing or invalid attribute, or a member that is not a user of the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The displayName is taken (`uniqueness`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 401, description = "No key, or an unknown or revoked one", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 403, description = "The key lacks the `scim` scope", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    scim: ScimCaller,
    ScimBody(body): ScimBody,
) -> Result<ScimJson<GroupResource>, ScimError> {
    let group = resources::read_group(&body, true)?;
    check_members(&state, &scim, &group).await?;
    let stored = state
        .users
        .create_group(
            &scim.caller.tenant,
            &group,
            &super::new_id("grp"),
            state.clock.now(),
        )
        .await
        .map_err(taken(&group))?;
    scim.audit(&state, "scim.group.created", &stored.id).await?;
    let resource = group_resource(&scim.base, &stored);
    let location = resource.meta.location.clone();
    Ok(ScimJson::created(resource, location))
}

/// One group.
#[utoipa::path(
    get,
    path = "/scim/v2/Groups/{id}",
    tag = "scim",
    operation_id = "scimGetGroup",
    params(("id" = String, Path, description = "The group's id"), ResourceParams),
    responses(
        (status = 200, description = "The group", body = GroupResource, content_type = "application/scim+json"),
        (status = 404, description = "No such group in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
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
    let group = found(&state, &scim, &id).await?;
    Ok(ScimJson::ok(resources::select(
        as_object(&group_resource(&scim.base, &group)),
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )))
}

/// Stores `group` as group `id`, only while it is at version `read` when that is given;
/// `None` when it has moved on. Audited as `kind`.
async fn store_replacement(
    state: &AppState,
    scim: &ScimCaller,
    id: &str,
    group: &GroupDraft,
    read: Option<i64>,
    kind: &str,
) -> Result<Option<ScimJson<GroupResource>>, ScimError> {
    check_members(state, scim, group).await?;
    let stored = match state
        .users
        .replace_group(&scim.caller.tenant, id, group, state.clock.now(), read)
        .await
        .map_err(taken(group))?
    {
        GroupReplacement::Replaced(stored) => stored,
        GroupReplacement::Missing => {
            return Err(ScimError::not_found(format!("no group `{id}`")));
        }
        GroupReplacement::Stale => return Ok(None),
    };
    scim.audit(state, kind, id).await?;
    Ok(Some(ScimJson::ok(group_resource(&scim.base, &stored))))
}

/// How many times a PATCH reads, changes and writes a group that another server process
/// keeps changing before it gives up with 409.
const PATCH_ATTEMPTS: u32 = 16;

/// Replaces a group, its members included.
#[utoipa::path(
    put,
    path = "/scim/v2/Groups/{id}",
    tag = "scim",
    operation_id = "scimReplaceGroup",
    params(("id" = String, Path, description = "The group's id")),
    request_body(content = Object, content_type = "application/scim+json", description = "A SCIM Group"),
    responses(
        (status = 200, description = "The group as stored", body = GroupResource, content_type = "application/scim+json"),
        (status = 400, description = "A missing or invalid attribute, or a member that is not a user of the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such group in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The displayName is taken (`uniqueness`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
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
) -> Result<ScimJson<GroupResource>, ScimError> {
    let group = resources::read_group(&body, true)?;
    // A replacement names the whole group: it does not depend on what was there.
    store_replacement(&state, &scim, &id, &group, None, "scim.group.replaced")
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group `{id}`")))
}

/// Changes a group with a PatchOp: members added, or removed by
/// `members[value eq "…"]`, the name replaced.
#[utoipa::path(
    patch,
    path = "/scim/v2/Groups/{id}",
    tag = "scim",
    operation_id = "scimPatchGroup",
    params(("id" = String, Path, description = "The group's id")),
    request_body(content = super::patch::PatchRequest, content_type = "application/scim+json", description = "A SCIM PatchOp"),
    responses(
        (status = 200, description = "The group as stored", body = GroupResource, content_type = "application/scim+json"),
        (status = 400, description = "An operation that cannot apply (`noTarget`, `invalidPath`, `invalidValue`, `invalidSyntax`)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 404, description = "No such group in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
        (status = 409, description = "The displayName is taken (`uniqueness`), or the group kept changing under the PATCH (no `scimType`; send it again)", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
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
) -> Result<ScimJson<GroupResource>, ScimError> {
    let request: super::patch::PatchRequest = serde_json::from_value(Value::Object(body))
        .map_err(|e| ScimError::invalid_syntax(format!("not a PatchOp: {e}")))?;
    // The operations apply to the group as read, and the result is stored only if the
    // group is still that version; otherwise they apply again to what is there now, so
    // two PATCHes at the same instant (members added by each) both take effect.
    let _turn = super::patch_turn(&scim.caller.tenant, &id).lock().await;
    for attempt in 0..PATCH_ATTEMPTS {
        if attempt > 0 {
            // Another process won the last round: give it a moment before the next read.
            tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
        }
        let current = found(&state, &scim, &id).await?;
        let mut doc = as_object(&group_resource(&scim.base, &current));
        super::patch::apply(&mut doc, &request, &GROUP_MULTI_VALUED, &GROUP_ATTRIBUTES)?;
        let group = resources::read_group(&doc, false)?;
        let read = Some(current.version);
        if let Some(stored) =
            store_replacement(&state, &scim, &id, &group, read, "scim.group.patched").await?
        {
            return Ok(stored);
        }
    }
    Err(ScimError::kept_changing(format!(
        "group `{id}` changed under this PATCH {PATCH_ATTEMPTS} times in a row; send it again"
    )))
}

/// Deletes a group; its members lose what it granted at their next request.
#[utoipa::path(
    delete,
    path = "/scim/v2/Groups/{id}",
    tag = "scim",
    operation_id = "scimDeleteGroup",
    params(("id" = String, Path, description = "The group's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group in the tenant", body = super::error::ScimErrorDoc, content_type = "application/scim+json"),
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
    if !state.users.delete_group(&scim.caller.tenant, &id).await? {
        return Err(ScimError::not_found(format!("no group `{id}`")));
    }
    scim.audit(&state, "scim.group.deleted", &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

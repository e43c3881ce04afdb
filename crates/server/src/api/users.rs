//! The people of the caller's tenant (admin): who they are, where they came from (a
//! sign-in by single sign-on, or provisioning over SCIM), their groups, the scopes those
//! groups grant now and when they last signed in (`GET /api/users`); deactivating or
//! reactivating one (`PATCH /api/users/{id}`) and deleting one (`DELETE
//! /api/users/{id}`), each ending their sessions and audited.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use cfactory_domain::ports::{Scope, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/users", get(list)).route(
        "/api/users/{id}",
        axum::routing::patch(set_active).delete(delete),
    )
}

/// A provisioned group a person is a member of.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserGroupView {
    /// The group's id (`grp_…`).
    pub id: String,
    /// The group's name, which the `[roles]` table maps.
    pub display_name: String,
}

/// A person of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Their CFactory id (`usr_…`).
    pub id: String,
    /// The identity provider's subject identifier.
    pub subject: String,
    /// Their email, as the provider last said.
    pub email: Option<String>,
    /// Their display name, as the provider last said.
    pub display_name: Option<String>,
    /// The groups their last sign-in named, sorted.
    pub groups: Vec<String>,
    /// The provisioned (SCIM) groups they are a member of, by name.
    pub scim_groups: Vec<UserGroupView>,
    /// What their groups (both kinds) grant now under the `[roles]` table (empty:
    /// nothing, or single sign-on is not configured).
    pub scopes: Vec<&'static str>,
    /// Whether they may sign in.
    pub active: bool,
    /// `sso` when their first sign-in made them, `scim` when provisioning did.
    pub source: &'static str,
    /// The provisioning's user name (`null` for a person made by signing in).
    pub user_name: Option<String>,
    /// The provisioning client's own id for them.
    pub external_id: Option<String>,
    /// When they were first stored.
    pub created_at: DateTime<Utc>,
    /// When they last signed in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// The tenant's people.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Oldest first.
    pub users: Vec<UserView>,
}

/// What `PATCH /api/users/{id}` changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Whether they may sign in; `false` ends their sessions at once.
    pub active: bool,
}

fn view(state: &AppState, user: User) -> UserView {
    let scopes = state
        .sso
        .as_ref()
        .map(|sso| sso.settings.roles.scopes_for(&user.role_groups()))
        .unwrap_or_default();
    UserView {
        scopes: scopes.iter().map(|s| s.as_str()).collect(),
        scim_groups: user
            .memberships
            .iter()
            .map(|g| UserGroupView {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
            })
            .collect(),
        source: user.source.as_str(),
        id: user.id,
        subject: user.subject,
        email: user.email,
        display_name: user.display_name,
        groups: user.groups,
        active: user.active,
        user_name: user.user_name,
        external_id: user.external_id,
        created_at: user.created_at,
        last_sign_in_at: user.last_sign_in_at,
    }
}

/// The people of the caller's tenant, signed in by single sign-on or provisioned, oldest
/// first, with the scopes their groups grant now and when they last signed in.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    operation_id = "listUsers",
    responses((status = 200, description = "The tenant's users", body = UserList)),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    caller.require(Scope::Admin)?;
    let users = state.users.users(&caller.tenant).await?;
    Ok(Json(UserList {
        users: users.into_iter().map(|u| view(&state, u)).collect(),
    }))
}

fn no_user(id: &str) -> ApiError {
    ApiError::NotFound {
        detail: format!("no user `{id}` in this tenant"),
    }
}

async fn audit(state: &AppState, caller: &Caller, kind: &str, id: &str) -> Result<(), ApiError> {
    let mut entry = crate::audit::record(&caller.actor(), kind, state.clock.now());
    entry.target = Some(id.to_owned());
    state.auditor.record(&caller.tenant, entry).await?;
    Ok(())
}

/// Deactivates a person (ending every session of theirs at once) or reactivates them.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "setUserActive",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The user as stored", body = UserView),
        (status = 404, description = "No such user in the tenant", body = super::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn set_active(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(change): Json<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Scope::Admin)?;
    let changed = state
        .users
        .set_user_active(&caller.tenant, &id, change.active, state.clock.now())
        .await?;
    if !changed {
        return Err(no_user(&id));
    }
    let kind = if change.active {
        "user.activated"
    } else {
        "user.deactivated"
    };
    audit(&state, &caller, kind, &id).await?;
    let user = state
        .users
        .user(&caller.tenant, &id)
        .await?
        .ok_or_else(|| no_user(&id))?;
    Ok(Json(view(&state, user)))
}

/// Deletes a person with their sessions and group memberships.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "deleteUser",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted; their sessions ended"),
        (status = 404, description = "No such user in the tenant", body = super::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    if !state.users.delete_user(&caller.tenant, &id).await? {
        return Err(no_user(&id));
    }
    audit(&state, &caller, "user.deleted", &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

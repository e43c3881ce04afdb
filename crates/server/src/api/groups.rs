//! The tenant's provisioned (SCIM) groups for the cockpit's People view (`GET
//! /api/groups`, admin): their members, and the scopes the `[roles]` table maps each
//! group's name to.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use cfactory_domain::ports::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/groups", get(list))
}

/// A member of a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMemberView {
    /// The user's id (`usr_…`).
    pub id: String,
    /// How the user is named: email, else display name, else subject.
    pub label: String,
}

/// A provisioned group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Its id (`grp_…`).
    pub id: String,
    /// Its name.
    pub display_name: String,
    /// The provisioning client's own id for it.
    pub external_id: Option<String>,
    /// Its members.
    pub members: Vec<GroupMemberView>,
    /// The scopes the `[roles]` table maps its name to (empty: none, or single sign-on
    /// is not configured).
    pub scopes: Vec<&'static str>,
}

/// The tenant's groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// Oldest first.
    pub groups: Vec<GroupView>,
}

/// The tenant's provisioned groups, oldest first, with members and mapped scopes.
#[utoipa::path(
    get,
    path = "/api/groups",
    tag = "users",
    operation_id = "listGroups",
    responses((status = 200, description = "The tenant's groups", body = GroupList)),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GroupList>, ApiError> {
    caller.require(Scope::Admin)?;
    let groups = state.users.groups(&caller.tenant).await?;
    let groups = groups
        .into_iter()
        .map(|g| {
            let scopes = state
                .sso
                .as_ref()
                .map(|sso| {
                    sso.settings
                        .roles
                        .scopes_for(std::slice::from_ref(&g.display_name))
                })
                .unwrap_or_default();
            GroupView {
                scopes: scopes.iter().map(|s| s.as_str()).collect(),
                members: g
                    .members
                    .into_iter()
                    .map(|m| GroupMemberView {
                        id: m.user_id,
                        label: m.label,
                    })
                    .collect(),
                id: g.id,
                display_name: g.display_name,
                external_id: g.external_id,
            }
        })
        .collect();
    Ok(Json(GroupList { groups }))
}

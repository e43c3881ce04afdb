//! The `[roles]` table as the server holds it (`GET /api/roles`, admin): which group
//! names grant which scopes, and whether single sign-on is configured at all.

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
    Router::new().route("/api/roles", get(list))
}

/// One row of the `[roles]` table.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    /// The group name (from the sign-in's groups claim or a provisioned group).
    pub group: String,
    /// The scopes it grants, sorted.
    pub scopes: Vec<&'static str>,
}

/// The `[roles]` table.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// By group name.
    pub roles: Vec<RoleView>,
    /// Whether single sign-on is configured (without it the table is empty).
    pub sso: bool,
}

/// The `[roles]` table: group names and the scopes they grant.
#[utoipa::path(
    get,
    path = "/api/roles",
    tag = "users",
    operation_id = "listRoles",
    responses((status = 200, description = "The [roles] table", body = RoleList)),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RoleList>, ApiError> {
    caller.require(Scope::Admin)?;
    let roles = state
        .sso
        .as_ref()
        .map(|sso| {
            let table = &sso.settings.roles;
            table
                .groups()
                .map(|group| RoleView {
                    group: group.to_owned(),
                    scopes: table
                        .scopes_for(&[group.to_owned()])
                        .iter()
                        .map(|s| s.as_str())
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(RoleList {
        roles,
        sso: state.sso.is_some(),
    }))
}

//! The people of the caller's tenant who signed in by single sign-on (`GET /api/users`,
//! admin): who they are, their groups, the scopes those groups grant now, and when they
//! last signed in.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use cfactory_domain::ports::{Scope, User};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/users", get(list))
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
    /// Their groups, sorted.
    pub groups: Vec<String>,
    /// What their groups grant now under the `[roles]` table (empty: nothing, or single
    /// sign-on is not configured).
    pub scopes: Vec<&'static str>,
    /// Whether they may sign in.
    pub active: bool,
    /// When they first signed in.
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

fn view(state: &AppState, user: User) -> UserView {
    let scopes = state
        .sso
        .as_ref()
        .map(|sso| sso.settings.roles.scopes_for(&user.groups))
        .unwrap_or_default();
    UserView {
        scopes: scopes.iter().map(|s| s.as_str()).collect(),
        id: user.id,
        subject: user.subject,
        email: user.email,
        display_name: user.display_name,
        groups: user.groups,
        active: user.active,
        created_at: user.created_at,
        last_sign_in_at: user.last_sign_in_at,
    }
}

/// The people of the caller's tenant who signed in by single sign-on, oldest first, with
/// the scopes their groups grant now and when they last signed in.
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

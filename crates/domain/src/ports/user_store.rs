//! The [`UserStore`] port: the people of each tenant who sign in through single sign-on
//! ([`User`]), and their browser sessions ([`UserSession`]). A session names its user, not
//! the scopes it started with: every request reads the user again, so a deactivated user
//! is refused at once and a change of groups changes what they may do at their next
//! request. Only hashes of session tokens are stored.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it. Provisioning (SCIM) adds its writes here, beside the sign-in's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::ids::TenantId;

/// A person of a tenant, known from their identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Public id (`usr_…`), unique across tenants.
    pub id: String,
    /// The tenant they act for.
    pub tenant: TenantId,
    /// The identity provider's subject identifier (`sub`), unique within the tenant.
    pub subject: String,
    /// Their email address, as the provider last said.
    pub email: Option<String>,
    /// Their display name, as the provider last said.
    pub display_name: Option<String>,
    /// Their groups, sorted and without repeats; the `[roles]` table maps them to scopes.
    pub groups: Vec<String>,
    /// Whether they may sign in; an inactive user's sessions are refused.
    pub active: bool,
    /// When the user was first stored.
    pub created_at: DateTime<Utc>,
    /// When anything about the user last changed.
    pub updated_at: DateTime<Utc>,
    /// When they last signed in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl User {
    /// How the cockpit and the audit log name the person: the email, else the display
    /// name, else the subject.
    pub fn label(&self) -> &str {
        self.email
            .as_deref()
            .or(self.display_name.as_deref())
            .unwrap_or(&self.subject)
    }
}

/// What a sign-in says about a person: the identity provider's claims, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInProfile {
    /// The subject identifier (`sub`).
    pub subject: String,
    /// The email claim.
    pub email: Option<String>,
    /// The name claim.
    pub display_name: Option<String>,
    /// The groups claim.
    pub groups: Vec<String>,
}

/// Groups as a [`User`] keeps them: trimmed, empty ones dropped, sorted, no repeats.
pub fn normalize_groups(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A browser signed in as a user. The store holds the hash of the cookie's token only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// Hex SHA-256 of the session cookie's token.
    pub token_sha256: String,
    /// The user's tenant.
    pub tenant: TenantId,
    /// The user's id.
    pub user_id: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Where users and their browser sessions live.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Records a sign-in, at `at`, of the tenant's person with `profile.subject`: stores
    /// a new active user with id `new_id` when the subject is unknown, else replaces the
    /// user's email, display name and groups with the profile's (keeping `active` as it
    /// is); either way stamps `last_sign_in_at`. Returns the user as stored; the caller
    /// refuses an inactive one. `Duplicate` when a new user's id is taken.
    async fn record_sign_in(
        &self,
        tenant: &TenantId,
        profile: &SignInProfile,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError>;

    /// The tenant's user with this id; `None` when the tenant has none by that id.
    async fn user(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError>;

    /// The tenant's users, oldest first (by creation, then id).
    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError>;

    /// Sets whether the user may sign in, at `at`; deactivating ends every session of
    /// theirs in the same write. `false` when the tenant has no such user.
    async fn set_user_active(
        &self,
        tenant: &TenantId,
        id: &str,
        active: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Stores a user's browser session and drops every session that has ended by `now`.
    /// `Duplicate` when a session with this token hash exists.
    async fn create_user_session(
        &self,
        session: &UserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The user of the session with this token hash, while the session lasts (its end is
    /// after `now`) and the user exists and is active; `None` otherwise.
    async fn find_user_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;

    /// Signs a user's session out; `false` when there was no such session.
    async fn end_user_session(&self, token_sha256: &str) -> Result<bool, StoreError>;
}

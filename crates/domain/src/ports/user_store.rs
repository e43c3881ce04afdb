//! The [`UserStore`] port: the people of each tenant who sign in through single sign-on
//! ([`User`]), and their browser sessions ([`UserSession`]). A session names its user, not
//! the scopes it started with: every request reads the user again, so a deactivated user
//! is refused at once and a change of groups changes what they may do at their next
//! request. Only hashes of session tokens are stored.
//!
//! Provisioning (SCIM) writes here too, beside the sign-in: it creates, replaces and
//! deletes users ([`ProvisionedUser`]) and keeps groups with members ([`Group`]). A
//! person's groups for the `[roles]` table are their sign-in's groups and the provisioned
//! groups they are a member of, together ([`User::role_groups`]).
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

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
    /// Who made the user: their first sign-in, or provisioning.
    pub source: UserSource,
    /// The provisioning's user name (SCIM `userName`), unique within the tenant without
    /// regard to case; `None` for a user made by signing in.
    pub user_name: Option<String>,
    /// The provisioning client's own id for the person (SCIM `externalId`).
    pub external_id: Option<String>,
    /// Their name in parts, as provisioning said.
    pub name: PersonName,
    /// The provisioned groups they are a member of, by display name.
    pub memberships: Vec<GroupRef>,
}

/// Who made a [`User`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserSource {
    /// Their first sign-in by single sign-on.
    Sso,
    /// Provisioning (SCIM).
    Scim,
}

impl UserSource {
    /// The stored and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sso => "sso",
            Self::Scim => "scim",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sso" => Some(Self::Sso),
            "scim" => Some(Self::Scim),
            _ => None,
        }
    }
}

/// A person's name in parts (SCIM `name`); every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Given name.
    pub given: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// The whole name, formatted for display.
    pub formatted: Option<String>,
}

impl PersonName {
    /// Whether no part is set.
    pub fn is_empty(&self) -> bool {
        self.given.is_none() && self.family.is_none() && self.formatted.is_none()
    }
}

/// A group a user is a member of, as the user names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    /// The group's id (`grp_…`).
    pub id: String,
    /// The group's display name, which the `[roles]` table maps.
    pub display_name: String,
}

/// How the cockpit and the audit log name a person, from what is known of them: the
/// email, else the display name, else the subject.
pub fn person_label<'a>(
    email: Option<&'a str>,
    display_name: Option<&'a str>,
    subject: &'a str,
) -> &'a str {
    email.or(display_name).unwrap_or(subject)
}

impl User {
    /// How the cockpit and the audit log name the person: the email, else the display
    /// name, else the subject.
    pub fn label(&self) -> &str {
        person_label(
            self.email.as_deref(),
            self.display_name.as_deref(),
            &self.subject,
        )
    }

    /// The groups the `[roles]` table maps for this person: their sign-in's groups and
    /// the display names of the provisioned groups they are a member of, sorted, once.
    pub fn role_groups(&self) -> Vec<String> {
        let mut all = self.groups.clone();
        all.extend(self.memberships.iter().map(|g| g.display_name.clone()));
        normalize_groups(&all)
    }

    /// Whether the user may be bound to a first sign-in whose email is `email`: made by
    /// provisioning, never signed in, and named by that email (without regard to case).
    pub fn awaits_sign_in_as(&self, email: &str) -> bool {
        self.source == UserSource::Scim
            && self.last_sign_in_at.is_none()
            && self
                .user_name
                .as_deref()
                .is_some_and(|name| name.to_lowercase() == email.to_lowercase())
    }
}

/// What provisioning says about a person: the writable attributes of a SCIM User.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedUser {
    /// The user name, unique within the tenant without regard to case.
    pub user_name: String,
    /// The client's own id for the person.
    pub external_id: Option<String>,
    /// Their name in parts.
    pub name: PersonName,
    /// Their display name.
    pub display_name: Option<String>,
    /// Their (primary) email.
    pub email: Option<String>,
    /// Whether they may sign in.
    pub active: bool,
}

impl ProvisionedUser {
    /// The subject a provisioned user is stored under until they first sign in: the
    /// external id when given, else the user name.
    pub fn subject(&self) -> &str {
        self.external_id.as_deref().unwrap_or(&self.user_name)
    }
}

/// A member of a [`Group`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The user's id.
    pub user_id: String,
    /// How the user is named ([`User::label`]).
    pub label: String,
}

/// A provisioned group of a tenant's users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Public id (`grp_…`), unique across tenants.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Its name, unique within the tenant without regard to case; the `[roles]` table
    /// maps it to scopes.
    pub display_name: String,
    /// The provisioning client's own id for it.
    pub external_id: Option<String>,
    /// Its members, by user id.
    pub members: Vec<GroupMember>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it, or who belongs to it, last changed.
    pub updated_at: DateTime<Utc>,
    /// 1 when stored, one more at each replacement: a writer that read version `n`
    /// replaces the group only while it is still `n` ([`UserStore::replace_group`]).
    pub version: i64,
}

/// What [`UserStore::replace_group`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupReplacement {
    /// Replaced: the group as it is stored now.
    Replaced(Group),
    /// The tenant has no such group.
    Missing,
    /// The group is no longer at the version the writer read; nothing was written.
    Stale,
}

/// What provisioning says about a group: the writable attributes of a SCIM Group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDraft {
    /// Its name.
    pub display_name: String,
    /// The client's own id for it.
    pub external_id: Option<String>,
    /// The ids of its members.
    pub members: Vec<String>,
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
    /// Records a sign-in, at `at`, of the tenant's person with `profile.subject`: when the
    /// subject is unknown but a provisioned user [`User::awaits_sign_in_as`] the profile's
    /// email, binds that user to the subject; stores a new active user with id `new_id`
    /// when there is neither, else replaces the user's email, display name and groups
    /// with the profile's (keeping `active` as it is); either way stamps
    /// `last_sign_in_at`. Returns the user as stored; the caller
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

    /// The user a sign-in by `subject` with `email` would record: the tenant's user with
    /// that subject, else (with an email) the one that [`User::awaits_sign_in_as`] it;
    /// `None` when the sign-in would make a new user. [`UserStore::record_sign_in`] binds
    /// the second kind to the sign-in's subject.
    async fn sign_in_user(
        &self,
        tenant: &TenantId,
        subject: &str,
        email: Option<&str>,
    ) -> Result<Option<User>, StoreError>;

    /// Stores a new active-or-not user made by provisioning, at `at`, with id `new_id`
    /// and subject [`ProvisionedUser::subject`]. `Duplicate` when the tenant has a user
    /// by that user name (without regard to case) or subject, or the id is taken.
    async fn provision_user(
        &self,
        tenant: &TenantId,
        user: &ProvisionedUser,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError>;

    /// Replaces the provisioned attributes of the tenant's user `id` at `at` (the subject,
    /// sign-in groups and memberships stay); making them inactive ends every session of
    /// theirs in the same write. `None` when the tenant has no such user; `Duplicate`
    /// when another of its users has the user name (without regard to case).
    async fn replace_user(
        &self,
        tenant: &TenantId,
        id: &str,
        user: &ProvisionedUser,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;

    /// Deletes the tenant's user `id` with their sessions and memberships, in one write.
    /// `false` when the tenant has no such user.
    async fn delete_user(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;

    /// Stores a new group with id `new_id` at `at`; member ids that name no user of the
    /// tenant are left out. `Duplicate` when the tenant has a group by that display name
    /// (without regard to case) or the id is taken.
    async fn create_group(
        &self,
        tenant: &TenantId,
        group: &GroupDraft,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Group, StoreError>;

    /// The tenant's group with this id, members by user id; `None` when it has none.
    async fn group(&self, tenant: &TenantId, id: &str) -> Result<Option<Group>, StoreError>;

    /// The tenant's groups, oldest first (by creation, then id).
    async fn groups(&self, tenant: &TenantId) -> Result<Vec<Group>, StoreError>;

    /// Replaces the tenant's group `id` (name, external id and members, as in
    /// [`UserStore::create_group`]) at `at`, one version up. With `read`, only while the
    /// group is at that version (`Stale` otherwise, and nothing is written): a
    /// read-change-write cannot lose a change made in between. `Duplicate` when another
    /// of its groups has the display name.
    async fn replace_group(
        &self,
        tenant: &TenantId,
        id: &str,
        group: &GroupDraft,
        at: DateTime<Utc>,
        read: Option<i64>,
    ) -> Result<GroupReplacement, StoreError>;

    /// Deletes the tenant's group `id` and its memberships. `false` when it has none.
    async fn delete_group(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}

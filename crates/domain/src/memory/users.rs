//! The in-memory store's users, their sessions and provisioned groups ([`UserStore`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::ids::TenantId;
use crate::ports::{
    Group, GroupDraft, GroupMember, GroupRef, GroupReplacement, PersonName, ProvisionedUser,
    SignInProfile, StoreError, User, UserSession, UserSource, UserStore, normalize_groups,
};

/// A group as kept here: members by user id.
#[derive(Clone)]
struct StoredGroup {
    id: String,
    tenant: TenantId,
    display_name: String,
    external_id: Option<String>,
    members: BTreeSet<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

/// Users by id (kept without their memberships), sessions by token hash, groups by id.
#[derive(Default)]
pub(super) struct Users {
    users: BTreeMap<String, User>,
    sessions: HashMap<String, UserSession>,
    groups: BTreeMap<String, StoredGroup>,
}

impl Users {
    fn by_subject(&mut self, tenant: &TenantId, subject: &str) -> Option<&mut User> {
        self.users
            .values_mut()
            .find(|u| &u.tenant == tenant && u.subject == subject)
    }

    /// The id of the user a sign-in lands on (see [`UserStore::sign_in_user`]).
    fn sign_in_target(
        &self,
        tenant: &TenantId,
        subject: &str,
        email: Option<&str>,
    ) -> Option<String> {
        let mine = || self.users.values().filter(move |u| &u.tenant == tenant);
        mine()
            .find(|u| u.subject == subject)
            .or_else(|| {
                let email = email?;
                mine().find(|u| u.awaits_sign_in_as(email))
            })
            .map(|u| u.id.clone())
    }

    /// The user as the port hands it out: with their memberships.
    fn full(&self, user: &User) -> User {
        let mut memberships: Vec<GroupRef> = self
            .groups
            .values()
            .filter(|g| g.tenant == user.tenant && g.members.contains(&user.id))
            .map(|g| GroupRef {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
            })
            .collect();
        memberships.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
        User {
            memberships,
            ..user.clone()
        }
    }

    fn group_view(&self, group: &StoredGroup) -> Group {
        Group {
            id: group.id.clone(),
            tenant: group.tenant.clone(),
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            members: group
                .members
                .iter()
                .filter_map(|id| self.users.get(id))
                .map(|u| GroupMember {
                    user_id: u.id.clone(),
                    label: u.label().to_owned(),
                })
                .collect(),
            created_at: group.created_at,
            updated_at: group.updated_at,
            version: group.version,
        }
    }

    fn has_user(&self, tenant: &TenantId, id: &str) -> bool {
        self.users.get(id).is_some_and(|u| &u.tenant == tenant)
    }

    fn has_group(&self, tenant: &TenantId, id: &str) -> bool {
        self.groups.get(id).is_some_and(|g| &g.tenant == tenant)
    }

    fn user_name_taken(&self, tenant: &TenantId, name: &str, except: Option<&str>) -> bool {
        let name = name.to_lowercase();
        self.users.values().any(|u| {
            &u.tenant == tenant
                && Some(u.id.as_str()) != except
                && u.user_name.as_deref().map(str::to_lowercase) == Some(name.clone())
        })
    }

    fn group_name_taken(&self, tenant: &TenantId, name: &str, except: Option<&str>) -> bool {
        let name = name.to_lowercase();
        self.groups.values().any(|g| {
            &g.tenant == tenant
                && Some(g.id.as_str()) != except
                && g.display_name.to_lowercase() == name
        })
    }

    /// The draft's members that are users of the tenant.
    fn members_of(&self, tenant: &TenantId, draft: &GroupDraft) -> BTreeSet<String> {
        draft
            .members
            .iter()
            .filter(|id| self.users.get(*id).is_some_and(|u| &u.tenant == tenant))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl UserStore for InMemoryStore {
    async fn record_sign_in(
        &self,
        tenant: &TenantId,
        profile: &SignInProfile,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if let Some(id) = users.sign_in_target(tenant, &profile.subject, profile.email.as_deref())
            && let Some(user) = users.users.get_mut(&id)
        {
            user.subject.clone_from(&profile.subject);
            user.email.clone_from(&profile.email);
            user.display_name.clone_from(&profile.display_name);
            user.groups = normalize_groups(&profile.groups);
            user.updated_at = at;
            user.last_sign_in_at = Some(at);
            let user = user.clone();
            return Ok(users.full(&user));
        }
        if users.users.contains_key(new_id) {
            return Err(StoreError::Duplicate(format!("user {new_id}")));
        }
        let user = User {
            id: new_id.to_owned(),
            tenant: tenant.clone(),
            subject: profile.subject.clone(),
            email: profile.email.clone(),
            display_name: profile.display_name.clone(),
            groups: normalize_groups(&profile.groups),
            active: true,
            created_at: at,
            updated_at: at,
            last_sign_in_at: Some(at),
            source: UserSource::Sso,
            user_name: None,
            external_id: None,
            name: PersonName::default(),
            memberships: Vec::new(),
        };
        users.users.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        Ok(state
            .users
            .users
            .get(id)
            .filter(|u| &u.tenant == tenant)
            .map(|u| state.users.full(u)))
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let state = self.lock();
        let mut out: Vec<User> = state
            .users
            .users
            .values()
            .filter(|u| &u.tenant == tenant)
            .map(|u| state.users.full(u))
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn set_user_active(
        &self,
        tenant: &TenantId,
        id: &str,
        active: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        let Some(user) = users.users.get_mut(id).filter(|u| &u.tenant == tenant) else {
            return Ok(false);
        };
        user.active = active;
        user.updated_at = at;
        if !active {
            users
                .sessions
                .retain(|_, s| !(&s.tenant == tenant && s.user_id == id));
        }
        Ok(true)
    }

    async fn create_user_session(
        &self,
        session: &UserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let sessions = &mut state.users.sessions;
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.contains_key(&session.token_sha256) {
            return Err(StoreError::Duplicate("session".into()));
        }
        sessions.insert(session.token_sha256.clone(), session.clone());
        Ok(())
    }

    async fn find_user_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        let users = &state.users;
        Ok(users
            .sessions
            .get(token_sha256)
            .filter(|s| s.expires_at > now)
            .and_then(|s| {
                users
                    .users
                    .get(&s.user_id)
                    .filter(|u| u.tenant == s.tenant && u.active)
            })
            .map(|u| users.full(u)))
    }

    async fn end_user_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        Ok(self.lock().users.sessions.remove(token_sha256).is_some())
    }

    async fn sign_in_user(
        &self,
        tenant: &TenantId,
        subject: &str,
        email: Option<&str>,
    ) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        let users = &state.users;
        Ok(users
            .sign_in_target(tenant, subject, email)
            .and_then(|id| users.users.get(&id))
            .map(|u| users.full(u)))
    }

    async fn provision_user(
        &self,
        tenant: &TenantId,
        user: &ProvisionedUser,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if users.user_name_taken(tenant, &user.user_name, None) {
            return Err(StoreError::Duplicate(format!(
                "user name {}",
                user.user_name
            )));
        }
        if users.by_subject(tenant, user.subject()).is_some() {
            return Err(StoreError::Duplicate(format!("subject {}", user.subject())));
        }
        if users.users.contains_key(new_id) {
            return Err(StoreError::Duplicate(format!("user {new_id}")));
        }
        let stored = User {
            id: new_id.to_owned(),
            tenant: tenant.clone(),
            subject: user.subject().to_owned(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            groups: Vec::new(),
            active: user.active,
            created_at: at,
            updated_at: at,
            last_sign_in_at: None,
            source: UserSource::Scim,
            user_name: Some(user.user_name.clone()),
            external_id: user.external_id.clone(),
            name: user.name.clone(),
            memberships: Vec::new(),
        };
        users.users.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    async fn replace_user(
        &self,
        tenant: &TenantId,
        id: &str,
        user: &ProvisionedUser,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if !users.has_user(tenant, id) {
            return Ok(None);
        }
        if users.user_name_taken(tenant, &user.user_name, Some(id)) {
            return Err(StoreError::Duplicate(format!(
                "user name {}",
                user.user_name
            )));
        }
        let Some(stored) = users.users.get_mut(id) else {
            return Ok(None);
        };
        stored.user_name = Some(user.user_name.clone());
        stored.external_id.clone_from(&user.external_id);
        stored.name = user.name.clone();
        stored.display_name.clone_from(&user.display_name);
        stored.email.clone_from(&user.email);
        stored.active = user.active;
        stored.updated_at = at;
        let stored = stored.clone();
        if !user.active {
            users
                .sessions
                .retain(|_, s| !(&s.tenant == tenant && s.user_id == id));
        }
        Ok(Some(users.full(&stored)))
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if !users.has_user(tenant, id) {
            return Ok(false);
        }
        users.users.remove(id);
        users
            .sessions
            .retain(|_, s| !(&s.tenant == tenant && s.user_id == id));
        for group in users.groups.values_mut() {
            group.members.remove(id);
        }
        Ok(true)
    }

    async fn create_group(
        &self,
        tenant: &TenantId,
        group: &GroupDraft,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Group, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if users.group_name_taken(tenant, &group.display_name, None) {
            return Err(StoreError::Duplicate(format!(
                "group {}",
                group.display_name
            )));
        }
        if users.groups.contains_key(new_id) {
            return Err(StoreError::Duplicate(format!("group {new_id}")));
        }
        let stored = StoredGroup {
            id: new_id.to_owned(),
            tenant: tenant.clone(),
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            members: users.members_of(tenant, group),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let view = users.group_view(&stored);
        users.groups.insert(stored.id.clone(), stored);
        Ok(view)
    }

    async fn group(&self, tenant: &TenantId, id: &str) -> Result<Option<Group>, StoreError> {
        let state = self.lock();
        Ok(state
            .users
            .groups
            .get(id)
            .filter(|g| &g.tenant == tenant)
            .map(|g| state.users.group_view(g)))
    }

    async fn groups(&self, tenant: &TenantId) -> Result<Vec<Group>, StoreError> {
        let state = self.lock();
        let mut out: Vec<Group> = state
            .users
            .groups
            .values()
            .filter(|g| &g.tenant == tenant)
            .map(|g| state.users.group_view(g))
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn replace_group(
        &self,
        tenant: &TenantId,
        id: &str,
        group: &GroupDraft,
        at: DateTime<Utc>,
        read: Option<i64>,
    ) -> Result<GroupReplacement, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if !users.has_group(tenant, id) {
            return Ok(GroupReplacement::Missing);
        }
        if read.is_some_and(|v| users.groups.get(id).is_some_and(|g| g.version != v)) {
            return Ok(GroupReplacement::Stale);
        }
        if users.group_name_taken(tenant, &group.display_name, Some(id)) {
            return Err(StoreError::Duplicate(format!(
                "group {}",
                group.display_name
            )));
        }
        let members = users.members_of(tenant, group);
        let Some(stored) = users.groups.get_mut(id) else {
            return Ok(GroupReplacement::Missing);
        };
        stored.display_name.clone_from(&group.display_name);
        stored.external_id.clone_from(&group.external_id);
        stored.members = members;
        stored.updated_at = at;
        stored.version += 1;
        let stored = stored.clone();
        Ok(GroupReplacement::Replaced(users.group_view(&stored)))
    }

    async fn delete_group(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let users = &mut state.users;
        if !users.has_group(tenant, id) {
            return Ok(false);
        }
        users.groups.remove(id);
        Ok(true)
    }
}

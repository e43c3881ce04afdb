//! The in-memory store's users and their sessions ([`UserStore`]).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::ids::TenantId;
use crate::ports::{SignInProfile, StoreError, User, UserSession, UserStore, normalize_groups};

/// Users by id, and sessions by token hash.
#[derive(Default)]
pub(super) struct Users {
    users: BTreeMap<String, User>,
    sessions: HashMap<String, UserSession>,
}

impl Users {
    fn by_subject(&mut self, tenant: &TenantId, subject: &str) -> Option<&mut User> {
        self.users
            .values_mut()
            .find(|u| &u.tenant == tenant && u.subject == subject)
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
        if let Some(user) = users.by_subject(tenant, &profile.subject) {
            user.email.clone_from(&profile.email);
            user.display_name.clone_from(&profile.display_name);
            user.groups = normalize_groups(&profile.groups);
            user.updated_at = at;
            user.last_sign_in_at = Some(at);
            return Ok(user.clone());
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
        };
        users.users.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .lock()
            .users
            .users
            .get(id)
            .filter(|u| &u.tenant == tenant)
            .cloned())
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let mut out: Vec<User> = self
            .lock()
            .users
            .users
            .values()
            .filter(|u| &u.tenant == tenant)
            .cloned()
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
            .cloned())
    }

    async fn end_user_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        Ok(self.lock().users.sessions.remove(token_sha256).is_some())
    }
}

//! The [`ApiKeyStore`] port: where API keys and browser sessions live, with what it keeps:
//! [`Scope`], [`ApiKey`] and [`BrowserSession`]. Only hashes are stored, never a key or a
//! session's token.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::ids::TenantId;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read WorkItems, timelines, usage.
    Read,
    /// Change things: refresh, propose and reject actions.
    Write,
    /// Post completion events.
    Ingest,
    /// Confirm proposed actions, which sends them to the pipeline: a person's decision,
    /// kept apart from `write` so an agent that proposes cannot also approve.
    Approve,
    /// Read `/metrics`.
    Metrics,
    /// Provision the tenant's users and groups over SCIM 2.0 (`/scim/v2`), and nothing
    /// else: the identity provider's provisioning client holds it.
    Scim,
    /// Everything, including keys and the upstream services' addresses and tokens.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Self::Read,
        Self::Write,
        Self::Ingest,
        Self::Approve,
        Self::Metrics,
        Self::Scim,
        Self::Admin,
    ];

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "read" => Self::Read,
            "write" => Self::Write,
            "ingest" => Self::Ingest,
            "approve" => Self::Approve,
            "metrics" => Self::Metrics,
            "scim" => Self::Scim,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Ingest => "ingest",
            Self::Approve => "approve",
            Self::Metrics => "metrics",
            Self::Scim => "scim",
            Self::Admin => "admin",
        }
    }
}

/// A stored API key (never the key itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id, shown in lists and the audit log.
    pub id: String,
    /// A human name.
    pub name: Option<String>,
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key grants `scope` (admin grants everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// Where API keys live.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key under the hex SHA-256 of its secret. `Duplicate` when the id or
    /// the hash exists.
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError>;

    /// The unrevoked key with this hash; `None` when unknown or revoked.
    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with this id; `false` when there is no such unrevoked key.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Whether any unrevoked key exists (no key means open mode).
    async fn has_active_keys(&self) -> Result<bool, StoreError>;

    /// Stores a browser session and drops every session that has ended by `now`.
    /// `Duplicate` when a session with this token hash exists.
    async fn create_session(
        &self,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The key hash of the session with this token hash, while it lasts (its end is
    /// after `now`); `None` when unknown, ended or signed out.
    async fn find_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Signs a session out; `false` when there was no such session.
    async fn end_session(&self, token_sha256: &str) -> Result<bool, StoreError>;

    /// Stores a webhook signing secret. `Duplicate` when its id exists.
    async fn create_webhook_secret(&self, secret: &WebhookSecret) -> Result<(), StoreError>;

    /// Webhook secrets, revoked ones included, oldest first: the tenant's, or every
    /// tenant's when `tenant` is `None`.
    async fn list_webhook_secrets(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookSecret>, StoreError>;

    /// Revokes the webhook secret with this id; `false` when there is no such unrevoked
    /// secret.
    async fn revoke_webhook_secret(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// A webhook signing secret (Standard Webhooks): the HMAC-SHA256 key a sender signs its
/// deliveries with. Unlike a key it must be kept whole, since checking a signature needs
/// it; it is shown once when made and never answered by the API.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    /// Public id (`whk_…`), shown in lists.
    pub id: String,
    /// The tenant whose deliveries it signs.
    pub tenant: TenantId,
    /// A human name.
    pub name: Option<String>,
    /// The HMAC key: the decoded bytes after `whsec_`.
    pub key: Vec<u8>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl WebhookSecret {
    /// The key as stores keep it: lower-case hex.
    pub fn key_hex(&self) -> String {
        crate::audit::hex(&self.key)
    }

    /// A key read back from a store's hex; `None` when it is not hex.
    pub fn key_from_hex(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("key", &"***")
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// A browser signed in with an API key. The store holds hashes only: neither the
/// cookie's token nor the key can be read back from it. The key is looked up again on
/// every request, so revoking it ends its sessions at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Hex SHA-256 of the session cookie's token.
    pub token_sha256: String,
    /// Hex SHA-256 of the API key it signed in with.
    pub key_sha256: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

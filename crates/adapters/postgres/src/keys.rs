//! The API-key port over the `api_keys` table: keys are stored by the SHA-256 of their
//! secret, never the secret.
//!
//! Every API request asks for its key, so while the change listener is connected the
//! active keys are held in memory ([`KeyCache`]). Creating or revoking a key notifies
//! [`KEYS_CHANNEL`] in the same transaction, from any process, and each listening
//! process drops its copy; a listener that loses its connection drops it too, so a
//! change is never missed, only re-read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{
    ApiKey, ApiKeyStore, BrowserSession, Scope, ServiceRegistry, StoreError, StoredService,
    WebhookSecret,
};
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::error::{corrupt, store_error};

type KeyRow = (
    String,
    Option<String>,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// A key row led by the hash of its secret.
type HashedKeyRow = (
    String,
    String,
    Option<String>,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

const KEY_COLUMNS: &str = "id, name, tenant_id, scopes, created_at, revoked_at";

fn key_from_row(row: KeyRow) -> Result<ApiKey, StoreError> {
    let (id, name, tenant, scopes, created_at, revoked_at) = row;
    Ok(ApiKey {
        id,
        name,
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("key tenant", e))?,
        scopes: scopes
            .iter()
            .map(|s| Scope::parse(s).ok_or_else(|| corrupt("key scope", s)))
            .collect::<Result<_, _>>()?,
        created_at,
        revoked_at,
    })
}

/// The channel key changes are announced on.
pub(crate) const KEYS_CHANNEL: &str = "cfactory_keys";

/// Active keys by the hash of their secret.
type ActiveKeys = Arc<HashMap<String, ApiKey>>;

/// The active keys, held while a listener hears every key change.
#[derive(Default)]
pub(crate) struct KeyCache {
    state: StdMutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Whether a listener is connected and listening on [`KEYS_CHANNEL`].
    listening: bool,
    /// Bumped on every change and listener transition, so a read that raced one is
    /// not kept.
    generation: u64,
    active: Option<ActiveKeys>,
}

impl KeyCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The listener started (`true`) or lost its connection (`false`).
    pub fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.listening = listening;
        state.generation += 1;
        state.active = None;
    }

    /// A key changed somewhere: read them again next time.
    pub fn invalidate(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.active = None;
    }

    /// The held keys, or the generation a fresh read may be kept under (`None` when
    /// nothing can be held because no listener runs).
    fn lookup(&self) -> Result<ActiveKeys, Option<u64>> {
        let state = self.state();
        match &state.active {
            Some(active) if state.listening => Ok(active.clone()),
            _ => Err(state.listening.then_some(state.generation)),
        }
    }

    fn keep(&self, generation: u64, active: ActiveKeys) {
        let mut state = self.state();
        if state.listening && state.generation == generation {
            state.active = Some(active);
        }
    }
}

impl PgStore {
    /// The active keys from memory, or read whole and kept when a listener runs;
    /// `None` when no listener runs (callers then ask the table directly).
    async fn active_keys(&self) -> Result<Option<ActiveKeys>, StoreError> {
        let cache = self.inner.feed.keys();
        let generation = match cache.lookup() {
            Ok(active) => return Ok(Some(active)),
            Err(None) => return Ok(None),
            Err(Some(generation)) => generation,
        };
        let sql =
            format!("SELECT secret_sha256, {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL");
        let rows: Vec<HashedKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)?;
        let mut active = HashMap::with_capacity(rows.len());
        for (hash, id, name, tenant, scopes, created_at, revoked_at) in rows {
            let key = key_from_row((id, name, tenant, scopes, created_at, revoked_at))?;
            active.insert(hash, key);
        }
        let active = Arc::new(active);
        cache.keep(generation, active.clone());
        Ok(Some(active))
    }
}

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "WITH created AS ( \
                 INSERT INTO api_keys (id, name, tenant_id, scopes, secret_sha256, created_at, \
                     revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)) \
             SELECT pg_notify($8, '')",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.tenant.as_str())
        .bind(&scopes)
        .bind(secret_sha256)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(KEYS_CHANNEL)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        self.inner.feed.keys().invalidate();
        Ok(())
    }

    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        if let Some(active) = self.active_keys().await? {
            return Ok(active.get(secret_sha256).cloned());
        }
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL"
        );
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(secret_sha256)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        row.map(key_from_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked: i64 = sqlx::query_scalar(
            "WITH revoked AS ( \
                 UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING id) \
             SELECT count(*) FROM revoked, pg_notify($3, '') AS n",
        )
        .bind(id)
        .bind(at)
        .bind(KEYS_CHANNEL)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_error)?;
        self.inner.feed.keys().invalidate();
        Ok(revoked > 0)
    }

    async fn has_active_keys(&self) -> Result<bool, StoreError> {
        if let Some(active) = self.active_keys().await? {
            return Ok(!active.is_empty());
        }
        let (any,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)")
                .fetch_one(&self.inner.pool)
                .await
                .map_err(store_error)?;
        Ok(any)
    }

    async fn create_session(
        &self,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH ended AS (DELETE FROM browser_sessions WHERE expires_at <= $4) \
             INSERT INTO browser_sessions (token_sha256, key_sha256, expires_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(&session.token_sha256)
        .bind(&session.key_sha256)
        .bind(session.expires_at)
        .bind(now)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| match store_error(e) {
            StoreError::Duplicate(_) => StoreError::Duplicate("session".into()),
            other => other,
        })?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT key_sha256 FROM browser_sessions WHERE token_sha256 = $1 AND expires_at > $2",
        )
        .bind(token_sha256)
        .bind(now)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(store_error)
    }

    async fn end_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM browser_sessions WHERE token_sha256 = $1")
            .bind(token_sha256)
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_webhook_secret(&self, secret: &WebhookSecret) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_secrets (id, tenant_id, name, secret, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&secret.id)
        .bind(secret.tenant.as_str())
        .bind(&secret.name)
        .bind(secret.key_hex())
        .bind(secret.created_at)
        .bind(secret.revoked_at)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn list_webhook_secrets(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookSecret>, StoreError> {
        type Row = (
            String,
            String,
            Option<String>,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, name, secret, created_at, revoked_at FROM webhook_secrets \
             WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(id, tenant, name, secret, created_at, revoked_at)| {
                Ok(WebhookSecret {
                    tenant: TenantId::parse(&tenant)
                        .map_err(|e| corrupt("webhook secret tenant", e))?,
                    key: WebhookSecret::key_from_hex(&secret)
                        .ok_or_else(|| corrupt("webhook secret", "not hex"))?,
                    id,
                    name,
                    created_at,
                    revoked_at,
                })
            })
            .collect()
    }

    async fn revoke_webhook_secret(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_secrets SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl ServiceRegistry for PgStore {
    async fn stored_services(&self) -> Result<Vec<StoredService>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT tenant_id, name, url, token FROM service_settings ORDER BY tenant_id, name",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(tenant, service, url, token)| {
                Ok(StoredService {
                    tenant: TenantId::parse(&tenant).map_err(|e| corrupt("service tenant", e))?,
                    service,
                    url,
                    token,
                })
            })
            .collect()
    }

    async fn set_stored_service(
        &self,
        setting: &StoredService,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_settings (tenant_id, name, url, token, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET url = EXCLUDED.url, \
             token = EXCLUDED.token, updated_at = EXCLUDED.updated_at",
        )
        .bind(setting.tenant.as_str())
        .bind(&setting.service)
        .bind(&setting.url)
        .bind(setting.token.as_deref())
        .bind(at)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

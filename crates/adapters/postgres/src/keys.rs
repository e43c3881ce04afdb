//! The API-key port over the `api_keys` table: keys are stored by the SHA-256 of their
//! secret, never the secret.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKey, ApiKeyStore, Scope, ServiceRegistry, StoreError};
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

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn create_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, name, tenant_id, scopes, secret_sha256, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.tenant.as_str())
        .bind(&scopes)
        .bind(secret_sha256)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_key(&self, secret_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
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
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&self.inner.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn has_active_keys(&self) -> Result<bool, StoreError> {
        let (any,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)")
                .fetch_one(&self.inner.pool)
                .await
                .map_err(store_error)?;
        Ok(any)
    }
}

#[async_trait]
impl ServiceRegistry for PgStore {
    async fn service_urls(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as("SELECT name, url FROM services ORDER BY name")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)
    }

    async fn set_service_url(
        &self,
        service: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO services (name, url, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, updated_at = EXCLUDED.updated_at",
        )
        .bind(service)
        .bind(url)
        .bind(at)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

//! The user port over `users`, `user_groups` and `user_sessions`. A sign-in is one
//! upsert on `(tenant_id, subject)`, so two sign-ins of the same person at once make one
//! user.

use std::collections::HashMap;

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{
    SignInProfile, StoreError, User, UserSession, UserStore, normalize_groups,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::PgStore;
use crate::error::{corrupt, store_error};

type UserRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

const USER_COLUMNS: &str = "u.id, u.tenant_id, u.subject, u.email, u.display_name, u.active, \
                            u.created_at, u.updated_at, u.last_sign_in_at";

fn user_from(row: UserRow, groups: Vec<String>) -> Result<User, StoreError> {
    let (id, tenant, subject, email, display_name, active, created_at, updated_at, last) = row;
    Ok(User {
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("user tenant", e))?,
        subject,
        email,
        display_name,
        groups,
        active,
        created_at,
        updated_at,
        last_sign_in_at: last,
        id,
    })
}

async fn groups_of(conn: &mut PgConnection, id: &str) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT group_name FROM user_groups WHERE user_id = $1 ORDER BY group_name")
        .bind(id)
        .fetch_all(conn)
        .await
        .map_err(store_error)
}

/// The user with this id and their groups, read on `conn`.
async fn read_user(conn: &mut PgConnection, id: &str) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    match row {
        Some(row) => {
            let groups = groups_of(conn, id).await?;
            user_from(row, groups).map(Some)
        }
        None => Ok(None),
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn record_sign_in(
        &self,
        tenant: &TenantId,
        profile: &SignInProfile,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let groups = normalize_groups(&profile.groups);
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let id: String = sqlx::query_scalar(
            "INSERT INTO users (id, tenant_id, subject, email, display_name, active, \
             created_at, updated_at, last_sign_in_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6, $6) \
             ON CONFLICT (tenant_id, subject) DO UPDATE SET email = EXCLUDED.email, \
             display_name = EXCLUDED.display_name, updated_at = EXCLUDED.updated_at, \
             last_sign_in_at = EXCLUDED.last_sign_in_at \
             RETURNING id",
        )
        .bind(new_id)
        .bind(tenant.as_str())
        .bind(&profile.subject)
        .bind(&profile.email)
        .bind(&profile.display_name)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match store_error(e) {
            StoreError::Duplicate(_) => StoreError::Duplicate(format!("user {new_id}")),
            other => other,
        })?;
        sqlx::query("DELETE FROM user_groups WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO user_groups (user_id, group_name) SELECT $1, g FROM UNNEST($2::text[]) g",
        )
        .bind(&id)
        .bind(&groups)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let user = read_user(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Unexpected(format!("user {id} vanished")))?;
        tx.commit().await.map_err(store_error)?;
        Ok(user)
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_error)?;
        let user = read_user(&mut conn, id).await?;
        Ok(user.filter(|u| &u.tenant == tenant))
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 ORDER BY u.created_at, u.id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let memberships: Vec<(String, String)> = sqlx::query_as(
            "SELECT g.user_id, g.group_name FROM user_groups g JOIN users u ON u.id = g.user_id \
             WHERE u.tenant_id = $1 ORDER BY g.group_name",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for (user, group) in memberships {
            groups.entry(user).or_default().push(group);
        }
        rows.into_iter()
            .map(|row| {
                let mine = groups.remove(&row.0).unwrap_or_default();
                user_from(row, mine)
            })
            .collect()
    }

    async fn set_user_active(
        &self,
        tenant: &TenantId,
        id: &str,
        active: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let done = sqlx::query(
            "UPDATE users SET active = $3, updated_at = $4 WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(active)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if done.rows_affected() == 1 && !active {
            sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_user_session(
        &self,
        session: &UserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH ended AS (DELETE FROM user_sessions WHERE expires_at <= $5) \
             INSERT INTO user_sessions (token_sha256, tenant_id, user_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.token_sha256)
        .bind(session.tenant.as_str())
        .bind(&session.user_id)
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

    async fn find_user_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_error)?;
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM user_sessions s \
             JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id \
             WHERE s.token_sha256 = $1 AND s.expires_at > $2 AND u.active"
        )))
        .bind(token_sha256)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
        match row {
            Some(row) => {
                let groups = groups_of(&mut conn, &row.0).await?;
                user_from(row, groups).map(Some)
            }
            None => Ok(None),
        }
    }

    async fn end_user_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM user_sessions WHERE token_sha256 = $1")
            .bind(token_sha256)
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

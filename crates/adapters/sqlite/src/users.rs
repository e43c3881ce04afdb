//! The user port over `users`, `user_groups` and `user_sessions`. Writes go through the
//! writer's connection (`BEGIN IMMEDIATE`, so a sign-in's read and write are one step);
//! reads use the pool.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{
    SignInProfile, StoreError, User, UserSession, UserStore, normalize_groups,
};
use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection};

use crate::SqliteStore;
use crate::error::{corrupt, store_error};
use crate::rows;

type UserRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    i64,
    i64,
    Option<i64>,
);

const USER_COLUMNS: &str = "u.id, u.tenant_id, u.subject, u.email, u.display_name, u.active, \
                            u.created_at, u.updated_at, u.last_sign_in_at";

fn user_from(row: UserRow, groups: Vec<String>) -> Result<User, StoreError> {
    let (id, tenant, subject, email, display_name, active, created, updated, last) = row;
    Ok(User {
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("user tenant", e))?,
        subject,
        email,
        display_name,
        groups,
        active,
        created_at: rows::from_micros("created_at", created)?,
        updated_at: rows::from_micros("updated_at", updated)?,
        last_sign_in_at: last
            .map(|l| rows::from_micros("last_sign_in_at", l))
            .transpose()?,
        id,
    })
}

/// The groups of user `id`, sorted.
async fn groups_of<'e>(
    conn: impl sqlx::SqliteExecutor<'e>,
    id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT group_name FROM user_groups WHERE user_id = ?1 ORDER BY group_name")
        .bind(id)
        .fetch_all(conn)
        .await
        .map_err(store_error)
}

/// Replaces user `id`'s groups.
async fn set_groups(
    conn: &mut SqliteConnection,
    id: &str,
    groups: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_groups WHERE user_id = ?1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    for group in groups {
        sqlx::query("INSERT INTO user_groups (user_id, group_name) VALUES (?1, ?2)")
            .bind(id)
            .bind(group)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

async fn read_user(conn: &mut SqliteConnection, id: &str) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    match row {
        Some(row) => {
            let groups = groups_of(&mut *conn, id).await?;
            user_from(row, groups).map(Some)
        }
        None => Ok(None),
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn record_sign_in(
        &self,
        tenant: &TenantId,
        profile: &SignInProfile,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let tenant = tenant.clone();
        let profile = profile.clone();
        let new_id = new_id.to_owned();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let mut tx = conn
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(store_error)?;
                let groups = normalize_groups(&profile.groups);
                let known: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM users WHERE tenant_id = ?1 AND subject = ?2",
                )
                .bind(tenant.as_str())
                .bind(&profile.subject)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
                let id = match known {
                    Some(id) => {
                        sqlx::query(
                            "UPDATE users SET email = ?2, display_name = ?3, updated_at = ?4, \
                             last_sign_in_at = ?4 WHERE id = ?1",
                        )
                        .bind(&id)
                        .bind(&profile.email)
                        .bind(&profile.display_name)
                        .bind(rows::micros(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                        id
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO users (id, tenant_id, subject, email, display_name, \
                             active, created_at, updated_at, last_sign_in_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6, ?6)",
                        )
                        .bind(&new_id)
                        .bind(tenant.as_str())
                        .bind(&profile.subject)
                        .bind(&profile.email)
                        .bind(&profile.display_name)
                        .bind(rows::micros(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| match store_error(e) {
                            StoreError::Duplicate(_) => {
                                StoreError::Duplicate(format!("user {new_id}"))
                            }
                            other => other,
                        })?;
                        new_id
                    }
                };
                set_groups(&mut tx, &id, &groups).await?;
                let user = read_user(&mut tx, &id)
                    .await?
                    .ok_or_else(|| StoreError::Unexpected(format!("user {id} vanished")))?;
                tx.commit().await.map_err(store_error)?;
                Ok(user)
            })
        })
        .await
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.inner.readers.acquire().await.map_err(store_error)?;
        let user = read_user(&mut conn, id).await?;
        Ok(user.filter(|u| &u.tenant == tenant))
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = ?1 ORDER BY u.created_at, u.id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&self.inner.readers)
        .await
        .map_err(store_error)?;
        let memberships: Vec<(String, String)> = sqlx::query_as(
            "SELECT g.user_id, g.group_name FROM user_groups g JOIN users u ON u.id = g.user_id \
             WHERE u.tenant_id = ?1 ORDER BY g.group_name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.inner.readers)
        .await
        .map_err(store_error)?;
        let mut groups: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
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
        let tenant = tenant.clone();
        let id = id.to_owned();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let mut tx = conn
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(store_error)?;
                let done = sqlx::query(
                    "UPDATE users SET active = ?3, updated_at = ?4 \
                     WHERE id = ?1 AND tenant_id = ?2",
                )
                .bind(&id)
                .bind(tenant.as_str())
                .bind(active)
                .bind(rows::micros(at))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                if done.rows_affected() == 1 && !active {
                    sqlx::query("DELETE FROM user_sessions WHERE user_id = ?1 AND tenant_id = ?2")
                        .bind(&id)
                        .bind(tenant.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                }
                tx.commit().await.map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    async fn create_user_session(
        &self,
        session: &UserSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let mut tx = conn
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(store_error)?;
                sqlx::query("DELETE FROM user_sessions WHERE expires_at <= ?1")
                    .bind(rows::micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                sqlx::query(
                    "INSERT INTO user_sessions (token_sha256, tenant_id, user_id, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(&session.token_sha256)
                .bind(session.tenant.as_str())
                .bind(&session.user_id)
                .bind(rows::micros(session.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| match store_error(e) {
                    StoreError::Duplicate(_) => StoreError::Duplicate("session".into()),
                    other => other,
                })?;
                tx.commit().await.map_err(store_error)
            })
        })
        .await
    }

    async fn find_user_session(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut conn = self.inner.readers.acquire().await.map_err(store_error)?;
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM user_sessions s \
             JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id \
             WHERE s.token_sha256 = ?1 AND s.expires_at > ?2 AND u.active"
        )))
        .bind(token_sha256)
        .bind(rows::micros(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
        match row {
            Some(row) => {
                let groups = groups_of(&mut *conn, &row.0).await?;
                user_from(row, groups).map(Some)
            }
            None => Ok(None),
        }
    }

    async fn end_user_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let token = token_sha256.to_owned();
        self.exclusive(move |conn| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM user_sessions WHERE token_sha256 = ?1")
                    .bind(&token)
                    .execute(conn)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}

//! The user port over `users`, `user_groups`, `user_sessions`, and provisioning's
//! `scim_groups` and `scim_group_members`. A sign-in is one upsert on
//! `(tenant_id, subject)`, so two sign-ins of the same person at once make one user.

use std::collections::HashMap;

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{
    Group, GroupDraft, GroupMember, GroupRef, GroupReplacement, PersonName, ProvisionedUser,
    SignInProfile, StoreError, User, UserSession, UserSource, UserStore, normalize_groups,
    person_label,
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
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const USER_COLUMNS: &str = "u.id, u.tenant_id, u.subject, u.email, u.display_name, u.active, \
                            u.created_at, u.updated_at, u.last_sign_in_at, u.source, \
                            u.user_name, u.external_id, u.given_name, u.family_name, \
                            u.formatted_name";

fn user_from(row: UserRow, groups: Vec<String>) -> Result<User, StoreError> {
    let (
        id,
        tenant,
        subject,
        email,
        display_name,
        active,
        created_at,
        updated_at,
        last,
        source,
        user_name,
        external_id,
        given,
        family,
        formatted,
    ) = row;
    Ok(User {
        source: UserSource::parse(&source).ok_or_else(|| corrupt("user source", &source))?,
        user_name,
        external_id,
        name: PersonName {
            given,
            family,
            formatted,
        },
        memberships: Vec::new(),
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

/// The provisioned groups user `id` is a member of, by display name.
async fn memberships_of(conn: &mut PgConnection, id: &str) -> Result<Vec<GroupRef>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.id, g.display_name FROM scim_group_members m \
         JOIN scim_groups g ON g.id = m.group_id WHERE m.user_id = $1 \
         ORDER BY g.display_name, g.id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(id, display_name)| GroupRef { id, display_name })
        .collect())
}

/// A user row with its sign-in groups and memberships, read on `conn`.
async fn completed(conn: &mut PgConnection, row: UserRow) -> Result<User, StoreError> {
    let groups = groups_of(conn, &row.0).await?;
    let memberships = memberships_of(conn, &row.0).await?;
    let mut user = user_from(row, groups)?;
    user.memberships = memberships;
    Ok(user)
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
        Some(row) => completed(conn, row).await.map(Some),
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
        if let Some(email) = &profile.email {
            // A provisioned user awaiting this person takes on the sign-in's subject, so
            // the upsert below lands on them.
            sqlx::query(
                "UPDATE users SET subject = $3 WHERE id = ( \
                 SELECT id FROM users WHERE tenant_id = $1 AND source = 'scim' \
                 AND last_sign_in_at IS NULL AND lower(user_name) = lower($2) \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND subject = $3) \
                 ORDER BY created_at, id LIMIT 1)",
            )
            .bind(tenant.as_str())
            .bind(email)
            .bind(&profile.subject)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
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
        let provisioned: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT m.user_id, g.id, g.display_name FROM scim_group_members m \
             JOIN scim_groups g ON g.id = m.group_id \
             WHERE g.tenant_id = $1 ORDER BY g.display_name, g.id",
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
        let mut refs: HashMap<String, Vec<GroupRef>> = HashMap::new();
        for (user, id, display_name) in provisioned {
            refs.entry(user)
                .or_default()
                .push(GroupRef { id, display_name });
        }
        rows.into_iter()
            .map(|row| {
                let mine = groups.remove(&row.0).unwrap_or_default();
                let member_of = refs.remove(&row.0).unwrap_or_default();
                let mut user = user_from(row, mine)?;
                user.memberships = member_of;
                Ok(user)
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
            Some(row) => completed(&mut conn, row).await.map(Some),
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
    async fn sign_in_user(
        &self,
        tenant: &TenantId,
        subject: &str,
        email: Option<&str>,
    ) -> Result<Option<User>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_error)?;
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND (u.subject = $2 \
             OR (u.source = 'scim' AND u.last_sign_in_at IS NULL \
                 AND lower(u.user_name) = lower($3))) \
             ORDER BY (u.subject = $2) DESC, u.created_at, u.id LIMIT 1"
        )))
        .bind(tenant.as_str())
        .bind(subject)
        .bind(email)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
        match row {
            Some(row) => completed(&mut conn, row).await.map(Some),
            None => Ok(None),
        }
    }

    async fn provision_user(
        &self,
        tenant: &TenantId,
        user: &ProvisionedUser,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, subject, email, display_name, active, \
             created_at, updated_at, source, user_name, external_id, given_name, family_name, \
             formatted_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 'scim', $8, $9, $10, $11, $12)",
        )
        .bind(new_id)
        .bind(tenant.as_str())
        .bind(user.subject())
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.active)
        .bind(at)
        .bind(&user.user_name)
        .bind(&user.external_id)
        .bind(&user.name.given)
        .bind(&user.name.family)
        .bind(&user.name.formatted)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let stored = read_user(&mut tx, new_id)
            .await?
            .ok_or_else(|| StoreError::Unexpected(format!("user {new_id} vanished")))?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn replace_user(
        &self,
        tenant: &TenantId,
        id: &str,
        user: &ProvisionedUser,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let done = sqlx::query(
            "UPDATE users SET user_name = $3, external_id = $4, given_name = $5, \
             family_name = $6, formatted_name = $7, display_name = $8, email = $9, \
             active = $10, updated_at = $11 WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(&user.user_name)
        .bind(&user.external_id)
        .bind(&user.name.given)
        .bind(&user.name.family)
        .bind(&user.name.formatted)
        .bind(&user.display_name)
        .bind(&user.email)
        .bind(user.active)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if !user.active {
            sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let stored = read_user(&mut tx, id).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 1 {
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

    async fn create_group(
        &self,
        tenant: &TenantId,
        group: &GroupDraft,
        new_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Group, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO scim_groups (id, tenant_id, display_name, external_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(new_id)
        .bind(tenant.as_str())
        .bind(&group.display_name)
        .bind(&group.external_id)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        set_members(&mut tx, tenant, new_id, &group.members).await?;
        let stored = read_group(&mut tx, tenant, new_id)
            .await?
            .ok_or_else(|| StoreError::Unexpected(format!("group {new_id} vanished")))?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn group(&self, tenant: &TenantId, id: &str) -> Result<Option<Group>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_error)?;
        read_group(&mut conn, tenant, id).await
    }

    async fn groups(&self, tenant: &TenantId) -> Result<Vec<Group>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        let rows: Vec<GroupRow> = sqlx::query_as(
            "SELECT id, tenant_id, display_name, external_id, created_at, updated_at, version \
             FROM scim_groups WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let members: Vec<MemberRow> = sqlx::query_as(
            "SELECT m.group_id, u.id, u.email, u.display_name, u.subject \
             FROM scim_group_members m JOIN users u ON u.id = m.user_id \
             WHERE u.tenant_id = $1 ORDER BY u.id",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        let mut by_group: HashMap<String, Vec<GroupMember>> = HashMap::new();
        for row in members {
            let (group, member) = member_from(row);
            by_group.entry(group).or_default().push(member);
        }
        rows.into_iter()
            .map(|row| {
                let members = by_group.remove(&row.0).unwrap_or_default();
                group_from(row, members)
            })
            .collect()
    }

    async fn replace_group(
        &self,
        tenant: &TenantId,
        id: &str,
        group: &GroupDraft,
        at: DateTime<Utc>,
        read: Option<i64>,
    ) -> Result<GroupReplacement, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        // The row lock taken here holds a concurrent replacement until this one commits;
        // that one then finds the version moved.
        let done = sqlx::query(
            "UPDATE scim_groups SET display_name = $3, external_id = $4, updated_at = $5, \
             version = version + 1 \
             WHERE id = $1 AND tenant_id = $2 AND ($6::int8 IS NULL OR version = $6)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(&group.display_name)
        .bind(&group.external_id)
        .bind(at)
        .bind(read)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if done.rows_affected() == 0 {
            let there: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM scim_groups WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
            return Ok(match there {
                Some(_) => GroupReplacement::Stale,
                None => GroupReplacement::Missing,
            });
        }
        set_members(&mut tx, tenant, id, &group.members).await?;
        let stored = read_group(&mut tx, tenant, id).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored.map_or(GroupReplacement::Missing, GroupReplacement::Replaced))
    }

    async fn delete_group(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM scim_groups WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant.as_str())
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

type GroupRow = (
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
);

type MemberRow = (String, String, Option<String>, Option<String>, String);

fn member_from(row: MemberRow) -> (String, GroupMember) {
    let (group, user_id, email, display_name, subject) = row;
    let label = person_label(email.as_deref(), display_name.as_deref(), &subject).to_owned();
    (group, GroupMember { user_id, label })
}

fn group_from(row: GroupRow, members: Vec<GroupMember>) -> Result<Group, StoreError> {
    let (id, tenant, display_name, external_id, created_at, updated_at, version) = row;
    Ok(Group {
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("group tenant", e))?,
        id,
        display_name,
        external_id,
        members,
        created_at,
        updated_at,
        version,
    })
}

/// The tenant's group `id` with its members, read on `conn`.
async fn read_group(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Group>, StoreError> {
    let row: Option<GroupRow> = sqlx::query_as(
        "SELECT id, tenant_id, display_name, external_id, created_at, updated_at, version \
         FROM scim_groups WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let members: Vec<MemberRow> = sqlx::query_as(
        "SELECT m.group_id, u.id, u.email, u.display_name, u.subject \
         FROM scim_group_members m JOIN users u ON u.id = m.user_id \
         WHERE m.group_id = $1 ORDER BY u.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let members = members.into_iter().map(|r| member_from(r).1).collect();
    group_from(row, members).map(Some)
}

/// Replaces group `id`'s members with those of `members` that are users of the tenant.
async fn set_members(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
    members: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    sqlx::query(
        "INSERT INTO scim_group_members (group_id, user_id) \
         SELECT DISTINCT $1, u.id FROM users u \
         WHERE u.tenant_id = $2 AND u.id = ANY($3::text[])",
    )
    .bind(id)
    .bind(tenant.as_str())
    .bind(members)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(())
}

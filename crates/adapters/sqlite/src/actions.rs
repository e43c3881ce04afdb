//! Proposed actions and copilot conversations over `actions` and `conversations`. Writes
//! run on the writer's connection; a transition is one conditional `UPDATE … WHERE
//! status = ?from`, so of two concurrent confirms exactly one claims the action.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::actions::{
    ActionPage, ActionStatus, ActionStore, Actor, PreparedAction, StepResult,
};
use cfactory_domain::ports::{ConversationStore, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::error::{corrupt, store_error};
use crate::rows;

/// The action `id` from the `doc` column of `row`: `Unreadable` when the column is not
/// text or its JSON no longer decodes.
fn action_from(id: &str, row: &SqliteRow) -> Result<PreparedAction, StoreError> {
    let what = format!("action {id}");
    let doc: String = row.try_get("doc").map_err(|e| corrupt(&what, e))?;
    serde_json::from_str(&doc).map_err(|e| corrupt(&what, e))
}

#[async_trait]
impl ActionStore for SqliteStore {
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError> {
        let doc = serde_json::to_string(action)
            .map_err(|e| StoreError::Unexpected(format!("action does not serialise: {e}")))?;
        let (tenant, id, status) = (
            action.tenant.as_str().to_owned(),
            action.id.clone(),
            action.status.as_str(),
        );
        let (created, expires) = (
            rows::micros(action.created_at),
            rows::micros(action.expires_at),
        );
        self.exclusive(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "INSERT INTO actions (tenant_id, id, status, created_at, expires_at, doc) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )
                .bind(&tenant)
                .bind(&id)
                .bind(status)
                .bind(created)
                .bind(expires)
                .bind(doc)
                .execute(conn)
                .await
                .map_err(store_error)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Duplicate(format!("action {id}")));
                }
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError> {
        let row = sqlx::query("SELECT doc FROM actions WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.inner.readers)
            .await
            .map_err(store_error)?;
        row.map(|r| action_from(id, &r)).transpose()
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError> {
        let rows = sqlx::query(
            "SELECT id, doc FROM actions WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) \
             ORDER BY created_at DESC, id DESC LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(status.map(ActionStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(store_error)?;
        let mut page = ActionPage::default();
        for row in &rows {
            let id: String = row
                .try_get("id")
                .unwrap_or_else(|_| "(an id that is not text)".into());
            match action_from(&id, row) {
                Ok(action) => page.actions.push(action),
                Err(e) => {
                    tracing::error!(tenant = %tenant, id = %id, error = %e,
                        "a stored action cannot be read; left out of the list");
                    page.unreadable.push((id, e.to_string()));
                }
            }
        }
        Ok(page)
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        id: &str,
        from: ActionStatus,
        to: ActionStatus,
        results: Vec<StepResult>,
        decided: Option<&Actor>,
    ) -> Result<Option<PreparedAction>, StoreError> {
        let results = serde_json::to_string(&results)
            .map_err(|e| StoreError::Unexpected(format!("results do not serialise: {e}")))?;
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        let by = decided.map(|a| a.id.clone());
        let via = decided.map(|a| a.door.as_str());
        self.exclusive(move |conn| {
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE actions SET status = ?4, \
                     doc = json_set(doc, '$.status', ?4, '$.results', json(?5), \
                       '$.decided_by', COALESCE(?6, json_extract(doc, '$.decided_by')), \
                       '$.decided_via', COALESCE(?7, json_extract(doc, '$.decided_via'))) \
                     WHERE tenant_id = ?1 AND id = ?2 AND status = ?3 RETURNING doc",
                )
                .bind(&tenant)
                .bind(&id)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(results)
                .bind(by)
                .bind(via)
                .fetch_optional(conn)
                .await
                .map_err(store_error)?;
                row.map(|r| action_from(&id, &r)).transpose()
            })
        })
        .await
    }
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn save_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
        doc: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (tenant, id, doc, at) = (
            tenant.as_str().to_owned(),
            id.to_owned(),
            doc.to_string(),
            rows::micros(at),
        );
        self.exclusive(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO conversations (tenant_id, id, updated_at, doc) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (tenant_id, id) DO UPDATE SET updated_at = excluded.updated_at, \
                     doc = excluded.doc",
                )
                .bind(&tenant)
                .bind(&id)
                .bind(at)
                .bind(doc)
                .execute(conn)
                .await
                .map_err(store_error)?;
                Ok(())
            })
        })
        .await
    }

    async fn load_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT doc FROM conversations WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.inner.readers)
            .await
            .map_err(store_error)?;
        row.map(|r| {
            let doc: String = r.try_get(0).map_err(store_error)?;
            serde_json::from_str(&doc).map_err(|e| corrupt("conversation", e))
        })
        .transpose()
    }
}

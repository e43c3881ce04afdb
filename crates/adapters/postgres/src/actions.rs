//! Proposed actions and copilot conversations over `actions` and `conversations`. A
//! transition is one conditional `UPDATE … WHERE status = $from`, so of two concurrent
//! confirms exactly one claims the action.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::actions::{
    ActionPage, ActionStatus, ActionStore, Actor, PreparedAction, StepResult,
};
use cfactory_domain::ports::{ConversationStore, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::PgStore;
use crate::error::{corrupt, store_error};

fn action_from(id: &str, doc: &str) -> Result<PreparedAction, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt(&format!("action {id}"), e))
}

fn doc_of(action: &PreparedAction) -> Result<String, StoreError> {
    serde_json::to_string(action)
        .map_err(|e| StoreError::Unexpected(format!("action does not serialise: {e}")))
}

#[async_trait]
impl ActionStore for PgStore {
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO actions (tenant_id, id, status, created_at, expires_at, doc) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING",
        )
        .bind(action.tenant.as_str())
        .bind(&action.id)
        .bind(action.status.as_str())
        .bind(action.created_at)
        .bind(action.expires_at)
        .bind(doc_of(action)?)
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Duplicate(format!("action {}", action.id)));
        }
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT doc::text FROM actions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(store_error)?;
        row.map(|(doc,)| action_from(id, &doc)).transpose()
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, doc::text FROM actions WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(status.map(ActionStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_error)?;
        let mut page = ActionPage::default();
        for (id, doc) in rows {
            match action_from(&id, &doc) {
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
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE actions SET status = $4, \
             doc = doc || jsonb_build_object('status', $4::text, 'results', $5::jsonb) \
               || CASE WHEN $6::text IS NULL THEN '{}'::jsonb \
                  ELSE jsonb_build_object('decided_by', $6::text, 'decided_via', $7::text) END \
             WHERE tenant_id = $1 AND id = $2 AND status = $3 RETURNING doc::text",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(results)
        .bind(decided.map(|a| a.id.as_str()))
        .bind(decided.map(|a| a.door.as_str()))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(store_error)?;
        row.map(|(doc,)| action_from(id, &doc)).transpose()
    }
}

#[async_trait]
impl ConversationStore for PgStore {
    async fn save_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
        doc: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (tenant_id, id, updated_at, doc) VALUES ($1, $2, $3, $4::jsonb) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(at)
        .bind(doc.to_string())
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn load_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Value>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT doc::text FROM conversations WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(store_error)?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(|e| corrupt("conversation", e)))
            .transpose()
    }
}

//! The audit-log port over `audit_log` and `audit_heads`. An append takes a transaction
//! advisory lock per tenant chain, so every appender on the database (servers and the CLI
//! alike) extends the chain one at a time and it cannot fork.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::audit::{self, AuditEntry, AuditHead, AuditKey, AuditLog, AuditRecord};
use cfactory_domain::ports::StoreError;
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::error::{corrupt, store_error};

type AuditRow = (
    i64,
    String,
    i64,
    DateTime<Utc>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    bool,
    Option<String>,
    Option<String>,
    String,
    String,
);

const COLUMNS: &str = "id, tenant_id, seq, at, actor, kind, correlation_key, target, method, \
     endpoint, status_code, ok, action_id, payload_sha256, prev_hash, entry_hash";

fn entry(row: AuditRow) -> Result<AuditEntry, StoreError> {
    let (
        id,
        tenant,
        seq,
        at,
        actor,
        kind,
        correlation_key,
        target,
        method,
        endpoint,
        status,
        ok,
        action_id,
        payload_sha256,
        prev_hash,
        entry_hash,
    ) = row;
    Ok(AuditEntry {
        id,
        seq: u64::try_from(seq).map_err(|e| corrupt("audit seq", e))?,
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("audit tenant", e))?,
        record: AuditRecord {
            at,
            actor,
            kind,
            correlation_key,
            target,
            method,
            endpoint,
            status_code: status
                .map(u16::try_from)
                .transpose()
                .map_err(|e| corrupt("audit status code", e))?,
            ok,
            action_id,
            payload_sha256,
        },
        prev_hash,
        entry_hash,
    })
}

async fn read_head(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
) -> Result<Option<AuditHead>, StoreError> {
    let row: Option<(String, i64, String)> =
        sqlx::query_as("SELECT last_hash, count, head_mac FROM audit_heads WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(conn)
            .await
            .map_err(store_error)?;
    row.map(|(last_hash, count, head_mac)| {
        Ok(AuditHead {
            last_hash,
            count: u64::try_from(count).map_err(|e| corrupt("audit head count", e))?,
            head_mac,
        })
    })
    .transpose()
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(
        &self,
        key: &AuditKey,
        tenant: &TenantId,
        mut record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        // What is sealed must read back the same: the column keeps microseconds.
        record.at = crate::rows::to_micros(record.at);
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cfactory-audit:' || $1, 0))")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let (seq, prev_hash) = audit::next_link(read_head(&mut tx, tenant).await?.as_ref());
        let entry_hash = audit::seal(key, tenant, seq, &record, &prev_hash);
        let r = &record;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO audit_log (tenant_id, seq, at, actor, kind, correlation_key, target, \
             method, endpoint, status_code, ok, action_id, payload_sha256, prev_hash, entry_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(r.at)
        .bind(&r.actor)
        .bind(&r.kind)
        .bind(&r.correlation_key)
        .bind(&r.target)
        .bind(&r.method)
        .bind(&r.endpoint)
        .bind(r.status_code.map(i32::from))
        .bind(r.ok)
        .bind(&r.action_id)
        .bind(&r.payload_sha256)
        .bind(&prev_hash)
        .bind(&entry_hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let head = audit::head(key, tenant, &entry_hash, seq);
        sqlx::query(
            "INSERT INTO audit_heads (tenant_id, last_hash, count, head_mac) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET last_hash = EXCLUDED.last_hash, \
             count = EXCLUDED.count, head_mac = EXCLUDED.head_mac",
        )
        .bind(tenant.as_str())
        .bind(&head.last_hash)
        .bind(i64::try_from(head.count).unwrap_or(i64::MAX))
        .bind(&head.head_mac)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(AuditEntry {
            id,
            seq,
            tenant: tenant.clone(),
            record,
            prev_hash,
            entry_hash,
        })
    }

    async fn audit_page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 \
             AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        )))
        .bind(tenant.as_str())
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(entry).collect()
    }

    async fn audit_chain(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<AuditEntry>, Option<AuditHead>), StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        // One snapshot for the rows and the head, so an append in between is not a finding.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 ORDER BY id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let head = read_head(&mut tx, tenant).await?;
        tx.commit().await.map_err(store_error)?;
        Ok((rows.into_iter().map(entry).collect::<Result<_, _>>()?, head))
    }

    async fn has_chains(&self) -> Result<bool, StoreError> {
        let (any,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM audit_heads)",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(any)
    }
}

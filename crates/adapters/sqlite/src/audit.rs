//! The audit-log port over `audit_log` and `audit_heads`. Appends run alone on the
//! writer's connection inside `BEGIN IMMEDIATE`, which also excludes every other process
//! writing the file (the CLI included), so the chain is extended one entry at a time and
//! cannot fork.

use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::audit::{self, AuditEntry, AuditHead, AuditKey, AuditLog, AuditRecord};
use cfactory_domain::ports::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqliteConnection};

use crate::SqliteStore;
use crate::error::{corrupt, store_error};
use crate::rows;

const COLUMNS: &str = "id, tenant_id, seq, at, actor, kind, correlation_key, target, method, \
     endpoint, status_code, ok, action_id, payload_sha256, prev_hash, entry_hash";

fn entry(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let get_text = |name: &str| row.try_get::<String, _>(name).map_err(store_error);
    let get_opt = |name: &str| row.try_get::<Option<String>, _>(name).map_err(store_error);
    let seq: i64 = row.try_get("seq").map_err(store_error)?;
    let status: Option<i64> = row.try_get("status_code").map_err(store_error)?;
    Ok(AuditEntry {
        id: row.try_get("id").map_err(store_error)?,
        seq: u64::try_from(seq).map_err(|e| corrupt("audit seq", e))?,
        tenant: TenantId::parse(&get_text("tenant_id")?).map_err(|e| corrupt("audit tenant", e))?,
        record: AuditRecord {
            at: rows::from_micros("audit time", row.try_get("at").map_err(store_error)?)?,
            actor: get_text("actor")?,
            kind: get_text("kind")?,
            correlation_key: get_opt("correlation_key")?,
            target: get_opt("target")?,
            method: get_opt("method")?,
            endpoint: get_opt("endpoint")?,
            status_code: status
                .map(u16::try_from)
                .transpose()
                .map_err(|e| corrupt("audit status code", e))?,
            ok: row.try_get::<i64, _>("ok").map_err(store_error)? != 0,
            action_id: get_opt("action_id")?,
            payload_sha256: get_opt("payload_sha256")?,
        },
        prev_hash: get_text("prev_hash")?,
        entry_hash: get_text("entry_hash")?,
    })
}

async fn read_head(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
) -> Result<Option<AuditHead>, StoreError> {
    let row =
        sqlx::query("SELECT last_hash, count, head_mac FROM audit_heads WHERE tenant_id = ?1")
            .bind(tenant.as_str())
            .fetch_optional(conn)
            .await
            .map_err(store_error)?;
    row.map(|row| {
        let count: i64 = row.try_get("count").map_err(store_error)?;
        Ok(AuditHead {
            last_hash: row.try_get("last_hash").map_err(store_error)?,
            count: u64::try_from(count).map_err(|e| corrupt("audit head count", e))?,
            head_mac: row.try_get("head_mac").map_err(store_error)?,
        })
    })
    .transpose()
}

async fn append_on(
    conn: &mut SqliteConnection,
    key: &AuditKey,
    tenant: &TenantId,
    mut record: AuditRecord,
) -> Result<AuditEntry, StoreError> {
    // What is sealed must read back the same: the column keeps microseconds.
    record.at = rows::from_micros("audit time", rows::micros(record.at))?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_error)?;
    let (seq, prev_hash) = audit::next_link(read_head(&mut tx, tenant).await?.as_ref());
    let entry_hash = audit::seal(key, tenant, seq, &record, &prev_hash);
    let r = &record;
    let done = sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, at, actor, kind, correlation_key, target, method, \
         endpoint, status_code, ok, action_id, payload_sha256, prev_hash, entry_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .bind(tenant.as_str())
    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
    .bind(rows::micros(r.at))
    .bind(&r.actor)
    .bind(&r.kind)
    .bind(&r.correlation_key)
    .bind(&r.target)
    .bind(&r.method)
    .bind(&r.endpoint)
    .bind(r.status_code.map(i64::from))
    .bind(i64::from(r.ok))
    .bind(&r.action_id)
    .bind(&r.payload_sha256)
    .bind(&prev_hash)
    .bind(&entry_hash)
    .execute(&mut *tx)
    .await
    .map_err(store_error)?;
    let head = audit::head(key, tenant, &entry_hash, seq);
    sqlx::query(
        "INSERT INTO audit_heads (tenant_id, last_hash, count, head_mac) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_hash = excluded.last_hash, \
         count = excluded.count, head_mac = excluded.head_mac",
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
        id: done.last_insert_rowid(),
        seq,
        tenant: tenant.clone(),
        record,
        prev_hash,
        entry_hash,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(
        &self,
        key: &AuditKey,
        tenant: &TenantId,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        let (key, tenant) = (key.clone(), tenant.clone());
        self.exclusive(move |conn| {
            Box::pin(async move { append_on(conn, &key, &tenant, record).await })
        })
        .await
    }

    async fn audit_page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2) \
             ORDER BY id DESC LIMIT ?3"
        )))
        .bind(tenant.as_str())
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(store_error)?;
        rows.iter().map(entry).collect()
    }

    async fn audit_chain(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<AuditEntry>, Option<AuditHead>), StoreError> {
        // One read transaction: the rows and the head from the same snapshot.
        let mut tx = self.inner.readers.begin().await.map_err(store_error)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = ?1 ORDER BY id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let head = read_head(&mut tx, tenant).await?;
        tx.commit().await.map_err(store_error)?;
        Ok((rows.iter().map(entry).collect::<Result<_, _>>()?, head))
    }

    async fn has_chains(&self) -> Result<bool, StoreError> {
        let (any,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM audit_heads)",
        )
        .fetch_one(&self.inner.readers)
        .await
        .map_err(store_error)?;
        Ok(any)
    }
}

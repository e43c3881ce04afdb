//! Hydration: one poll of a service's task list applied in its own transaction, under the
//! tenant's transaction-level lock.

use std::collections::BTreeSet;

use cfactory_domain::ports::StoreError;
use cfactory_domain::upstream::TaskList;
use cfactory_domain::{Batch, CorrelationKey, Service, StageName, TenantId};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::feed_holding::Holding;
use super::staged::{Staged, stored};
use super::statements::{load, write};
use super::tenant_locks::lock_sql;
use crate::error::store_error;
use crate::feed::Held;
use crate::rows::{item_from_doc, key_from_column, open_condition};

/// Applies one poll of `service`'s task list in its own transaction; returns the keys of
/// the items it rewrote.
pub(crate) async fn apply_snapshots(
    pool: &PgPool,
    held: &Held,
    tenant: &TenantId,
    service: Service,
    list: &TaskList,
    poll_time: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> Result<Vec<CorrelationKey>, StoreError> {
    let begin = format!(
        "BEGIN; {}",
        lock_sql(std::iter::once(tenant), "pg_advisory_xact_lock")
    );
    let mut tx = pool
        .begin_with(sqlx::AssertSqlSafe(begin))
        .await
        .map_err(store_error)?;
    let ids = Batch::needs_snapshots(&list.tasks).into_iter().collect();
    let mut loaded = load(&mut tx, tenant, ids, BTreeSet::new(), &[]).await?;
    if list.complete
        && let Some(stage) = StageName::of(service)
    {
        // Items whose stage of this service is still live, so missing tasks can clear.
        let sql = format!(
            "SELECT key, doc::text FROM workitems WHERE tenant_id = $1 AND {}",
            open_condition(stage)
        );
        let live: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        for (key, doc) in live {
            let key = key_from_column(&key)?;
            if let std::collections::hash_map::Entry::Vacant(slot) = loaded.items.entry(key) {
                // An unreadable item is left for its next event to rebuild; the poll goes on.
                match item_from_doc(&doc) {
                    Ok(item) => {
                        slot.insert(item);
                    }
                    Err(e) => tracing::warn!(tenant = %tenant, key = %slot.key(), error = %e,
                        "an unreadable work item is left out of this poll"),
                }
            }
        }
    }
    let before = stored(&loaded);
    let mut batch = Batch::new(loaded);
    for snap in &list.tasks {
        batch.apply_snapshot(snap, snap.updated_at.unwrap_or(poll_time), received_at);
    }
    if list.complete {
        let present: BTreeSet<String> = list.tasks.iter().map(|t| t.task_id.clone()).collect();
        batch.clear_missing(service, &present);
    }
    let mut holding = Holding::new(held);
    let staged = Staged::from(batch.finish());
    write(&mut tx, tenant, &staged, &before, &mut holding).await?;
    tx.commit().await.map_err(store_error)?;
    holding.committed();
    Ok(staged.keys())
}

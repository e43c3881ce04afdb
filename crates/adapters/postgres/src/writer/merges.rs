//! Merges: the rows of merged-away items moved to the item they merged into, and those
//! items deleted.

use cfactory_domain::CorrelationKey;
use cfactory_domain::correlate::ChangeSet;
use cfactory_domain::ports::StoreError;
use sqlx::PgConnection;

use crate::error::store_error;

/// Moves the rows of merged-away items to the item they merged into and deletes those
/// items.
pub(super) async fn merge(
    conn: &mut PgConnection,
    tenant: &str,
    changes: &ChangeSet,
) -> Result<(), StoreError> {
    // Merges are rare and touch every row of the items merged: planned for their own
    // parameters, not generically like the rest of the writer's statements.
    sqlx::raw_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    if !changes.redirects.is_empty() {
        let from: Vec<&str> = changes.redirects.iter().map(|(f, _)| f.as_str()).collect();
        let to: Vec<&str> = changes.redirects.iter().map(|(_, t)| t.as_str()).collect();
        for table in ["identifiers", "events"] {
            let sql = format!(
                "UPDATE {table} AS t SET item_key = r.to_key \
                 FROM UNNEST($2::text[], $3::text[]) AS r(from_key, to_key) \
                 WHERE t.tenant_id = $1 AND t.item_key = r.from_key"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(&from)
                .bind(&to)
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
    }
    if !changes.deleted.is_empty() {
        let deleted: Vec<&str> = changes.deleted.iter().map(CorrelationKey::as_str).collect();
        sqlx::query(
            "WITH search AS ( \
                 DELETE FROM workitem_search WHERE tenant_id = $1 AND key = ANY($2)) \
             DELETE FROM workitems WHERE tenant_id = $1 AND key = ANY($2)",
        )
        .bind(tenant)
        .bind(&deleted)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

//! Reads, on the pool of read-only connections. Lists and timelines are keyset-paged
//! over indexed columns; a page and its counts come from one read transaction, so they
//! agree with each other.

use cfactory_domain::ports::{
    ActivityEntry, ActivityRows, ApiKey, EventScanPage, ListCursor, ListQuery, StoreError,
    StoredService, Timeline, TimelineCursor, TimelineEntry, UsageGroupBy, UsageRow, WorkItemPage,
};
use cfactory_domain::workitem::StageName;
use cfactory_domain::{
    CompletionEvent, CorrelationKey, EventId, Identifier, Service, TenantId, WorkItem,
};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool};
use sqlx::{AssertSqlSafe, Row, Sqlite};

use crate::error::{corrupt, store_error};
use crate::rows;

type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Binds a list query's filter values, in the order [`filters`] wrote them.
fn bind_all(mut query: Query, binds: &[String]) -> Query {
    for value in binds {
        query = query.bind(value.clone());
    }
    query
}

/// The key of the item filed under `key` or an alias of it, on `conn`.
async fn resolve(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<CorrelationKey>, StoreError> {
    let Ok(key) = CorrelationKey::parse(key) else {
        return Ok(None);
    };
    let found = sqlx::query(
        "SELECT w.key FROM identifiers AS i JOIN workitems AS w \
         ON w.tenant_id = i.tenant_id AND w.key = i.item_key \
         WHERE i.tenant_id = ?1 AND i.ident = ?2",
    )
    .bind(tenant.as_str())
    .bind(Identifier::key(&key).as_str())
    .fetch_optional(conn)
    .await
    .map_err(store_error)?;
    found
        .map(|row| rows::key(row.try_get(0).map_err(store_error)?))
        .transpose()
}

/// The item filed under `key` or an alias of it.
pub(crate) async fn get(
    pool: &SqlitePool,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<WorkItem>, StoreError> {
    let Ok(key) = CorrelationKey::parse(key) else {
        return Ok(None);
    };
    let found = sqlx::query(
        "SELECT w.doc FROM identifiers AS i JOIN workitems AS w \
         ON w.tenant_id = i.tenant_id AND w.key = i.item_key \
         WHERE i.tenant_id = ?1 AND i.ident = ?2",
    )
    .bind(tenant.as_str())
    .bind(Identifier::key(&key).as_str())
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    found
        .map(|row| rows::item(row.try_get(0).map_err(store_error)?))
        .transpose()
}

/// The key of the item `service`'s task `task_id` belongs to.
pub(crate) async fn find_task(
    pool: &SqlitePool,
    tenant: &TenantId,
    service: Service,
    task_id: &str,
) -> Result<Option<CorrelationKey>, StoreError> {
    let found = sqlx::query("SELECT item_key FROM identifiers WHERE tenant_id = ?1 AND ident = ?2")
        .bind(tenant.as_str())
        .bind(Identifier::task(service.as_str(), task_id).as_str())
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    found
        .map(|row| rows::key(row.try_get(0).map_err(store_error)?))
        .transpose()
}

/// Most matches of a text filter for which a list reads only the matching items; past
/// it the matches are common enough that walking the items newest first finds a page
/// sooner.
const FEW_MATCHES: i64 = 2_000;

/// The `AND ...` conditions of a list query on `w` after the tenant, with their values;
/// the text filter only when `text` is set.
fn filters(q: &ListQuery, text: bool) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    if let Some(stage) = q.stage {
        sql.push_str(" AND w.active_stage = ?");
        binds.push(stage.as_str().to_owned());
    }
    if let Some(class) = q.status {
        sql.push_str(" AND w.active_class = ?");
        binds.push(class.as_str().to_owned());
    }
    if let Some(service) = q.service {
        match StageName::of(service) {
            Some(stage) => {
                sql.push_str(" AND ");
                sql.push_str(&rows::has_condition(stage));
            }
            // CFactory's own events make no stage, so no item has one of its stages.
            None => sql.push_str(" AND 0"),
        }
    }
    if text && let Some(needle) = &q.text {
        sql.push_str(" AND instr(w.search_text, ?) > 0");
        binds.push(needle.to_lowercase());
    }
    (sql, binds)
}

/// A page of items matching `q`, newest change first, with the match counts.
pub(crate) async fn list(
    pool: &SqlitePool,
    tenant: &TenantId,
    q: &ListQuery,
) -> Result<WorkItemPage, StoreError> {
    let tenant_text = tenant.as_str().to_owned();
    let mut tx = pool.begin().await.map_err(store_error)?;

    // A text filter is first matched in `workitems_search`, which holds only each item's
    // key and search text. When the matches are few, the counts and the page read those
    // items alone, by key; otherwise every item is read, as for the other filters.
    let needle = q.text.as_ref().map(|t| t.to_lowercase());
    let few = match &needle {
        Some(needle) => {
            let matches: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM workitems INDEXED BY workitems_search \
                 WHERE tenant_id = ?1 AND instr(search_text, ?2) > 0",
            )
            .bind(&tenant_text)
            .bind(needle)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
            matches <= FEW_MATCHES
        }
        None => false,
    };
    let (source, mut source_binds) = if few {
        (
            "(SELECT key FROM workitems INDEXED BY workitems_search \
               WHERE tenant_id = ? AND instr(search_text, ?) > 0) AS m \
             CROSS JOIN workitems AS w ON w.tenant_id = ? AND w.key = m.key WHERE 1",
            vec![tenant_text.clone(), needle.clone().unwrap_or_default()],
        )
    } else {
        ("workitems AS w WHERE w.tenant_id = ?", Vec::new())
    };
    source_binds.push(tenant_text);
    let (conditions, binds) = filters(q, !few);

    // Unfiltered, the total is counted from the narrowest index and the stalled count
    // from the few entries of `workitems_stall`, so neither reads the items' rows.
    let count_sql = if conditions.is_empty() && !few {
        "SELECT (SELECT COUNT(*) FROM workitems WHERE tenant_id = ?1), \
             (SELECT COUNT(*) FROM workitems INDEXED BY workitems_stall \
              WHERE tenant_id = ?1 AND stall_at < ?2)"
            .to_owned()
    } else {
        format!(
            "SELECT COUNT(*), COUNT(CASE WHEN w.stall_at < ? THEN 1 END) \
             FROM {source}{conditions}"
        )
    };
    let query = if conditions.is_empty() && !few {
        sqlx::query(AssertSqlSafe(count_sql))
            .bind(tenant.as_str().to_owned())
            .bind(rows::micros(q.stalled_before))
    } else {
        let query = sqlx::query(AssertSqlSafe(count_sql)).bind(rows::micros(q.stalled_before));
        bind_all(bind_all(query, &source_binds), &binds)
    };
    let counts = query.fetch_one(&mut *tx).await.map_err(store_error)?;
    let count: i64 = counts.try_get(0).map_err(store_error)?;
    let stalled_count: i64 = counts.try_get(1).map_err(store_error)?;

    let after = if q.cursor.is_some() {
        " AND (w.updated_at, w.key) < (?, ?)"
    } else {
        ""
    };
    let page_sql = format!(
        "SELECT w.key, w.updated_at, w.doc FROM {source}{conditions}{after} \
         ORDER BY w.updated_at DESC, w.key DESC LIMIT ?"
    );
    let mut query = bind_all(
        bind_all(sqlx::query(AssertSqlSafe(page_sql)), &source_binds),
        &binds,
    );
    if let Some(cursor) = &q.cursor {
        query = query
            .bind(cursor.updated_at_micros)
            .bind(cursor.key.clone());
    }
    let found = query
        .bind(i64::from(q.limit) + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;

    let more = found.len() > q.limit as usize;
    let mut items = Vec::with_capacity(found.len());
    let mut unreadable = 0;
    let mut next_cursor = None;
    for row in found.iter().take(q.limit as usize) {
        let key: String = row.try_get(0).map_err(store_error)?;
        let updated_at_micros: i64 = row.try_get(1).map_err(store_error)?;
        match rows::item(row.try_get(2).map_err(store_error)?) {
            Ok(item) => items.push(item),
            Err(e) => {
                tracing::error!(tenant = %tenant, key = %key, error = %e,
                    "a stored work item cannot be read; left out of the list");
                unreadable += 1;
            }
        }
        // The cursor follows the rows, readable or not, so paging never stalls.
        next_cursor = more.then_some(ListCursor {
            updated_at_micros,
            key,
        });
    }
    Ok(WorkItemPage {
        count: count as u64,
        items,
        next_cursor,
        stalled_count: stalled_count as u64,
        unreadable,
    })
}

/// A page of the timeline of the item under `key`, oldest first. Events whose row no
/// longer decodes are left out, logged and counted.
pub(crate) async fn timeline(
    pool: &SqlitePool,
    tenant: &TenantId,
    key: &str,
    limit: u32,
    cursor: Option<&TimelineCursor>,
) -> Result<Option<Timeline>, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let Some(item_key) = resolve(&mut tx, tenant, key).await? else {
        return Ok(None);
    };
    let stats = sqlx::query(
        "SELECT COUNT(*), MIN(time), MAX(time) FROM events WHERE tenant_id = ?1 AND item_key = ?2",
    )
    .bind(tenant.as_str())
    .bind(item_key.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(store_error)?;
    let event_count: i64 = stats.try_get(0).map_err(store_error)?;
    let first: Option<i64> = stats.try_get(1).map_err(store_error)?;
    let last: Option<i64> = stats.try_get(2).map_err(store_error)?;
    let span_seconds = match (first, last) {
        (Some(a), Some(b)) => (rows::from_micros("event time", b)?
            - rows::from_micros("event time", a)?)
        .num_seconds(),
        _ => 0,
    };
    let page = match cursor {
        None => sqlx::query(
            "SELECT seq, event_id, service, task_id, status, time, received_at, raw FROM events \
             WHERE tenant_id = ?1 AND item_key = ?2 ORDER BY time, seq LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(item_key.as_str())
        .bind(i64::from(limit) + 1),
        Some(c) => sqlx::query(
            "SELECT seq, event_id, service, task_id, status, time, received_at, raw FROM events \
             WHERE tenant_id = ?1 AND item_key = ?2 AND (time, seq) > (?4, ?5) \
             ORDER BY time, seq LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(item_key.as_str())
        .bind(i64::from(limit) + 1)
        .bind(c.time_micros)
        .bind(c.seq),
    }
    .fetch_all(&mut *tx)
    .await
    .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;

    let more = page.len() > limit as usize;
    let mut events = Vec::with_capacity(page.len().min(limit as usize));
    let mut unreadable = 0;
    let mut position = None;
    for row in page.iter().take(limit as usize) {
        let seq: Option<i64> = row.try_get("seq").ok();
        match shown_entry(row) {
            Ok(entry) => events.push(entry),
            Err(e) => {
                tracing::error!(tenant = %tenant, key = %item_key, seq, error = %e,
                    "a stored event cannot be read; left out of the timeline");
                unreadable += 1;
            }
        }
        // The cursor follows the rows, readable or not, so paging never stalls.
        if let (Some(seq), Ok(time_micros)) = (seq, row.try_get::<i64, _>("time")) {
            position = Some(TimelineCursor { time_micros, seq });
        }
    }
    let next_cursor = position.filter(|_| more);
    Ok(Some(Timeline {
        correlation_key: item_key,
        event_count: event_count as u64,
        events,
        span_seconds,
        next_cursor,
        unreadable,
    }))
}

/// An event as the timeline shows it: its columns decode and its stored text is JSON.
fn shown_entry(row: &sqlx::sqlite::SqliteRow) -> Result<TimelineEntry, StoreError> {
    let entry = timeline_entry(row)?;
    serde_json::from_str::<&serde_json::value::RawValue>(&entry.raw)
        .map_err(|e| corrupt("event text", e))?;
    Ok(entry)
}

fn timeline_entry(row: &sqlx::sqlite::SqliteRow) -> Result<TimelineEntry, StoreError> {
    let event_id: Option<String> = row.try_get("event_id").map_err(store_error)?;
    let service: String = row.try_get("service").map_err(store_error)?;
    Ok(TimelineEntry {
        seq: row.try_get("seq").map_err(store_error)?,
        event_id: event_id
            .map(|id| EventId::parse(&id).map_err(|e| corrupt("event id", e)))
            .transpose()?,
        service: Service::parse(&service).ok_or_else(|| corrupt("event service", &service))?,
        task_id: row.try_get("task_id").map_err(store_error)?,
        status: row.try_get("status").map_err(store_error)?,
        time: rows::from_micros("event time", row.try_get("time").map_err(store_error)?)?,
        received_at: rows::from_micros(
            "arrival time",
            row.try_get("received_at").map_err(store_error)?,
        )?,
        raw: row.try_get("raw").map_err(store_error)?,
    })
}

/// The tenant's usage summed per group, largest total first (ties by group value).
pub(crate) async fn usage(
    pool: &SqlitePool,
    tenant: &TenantId,
    group_by: UsageGroupBy,
) -> Result<Vec<UsageRow>, StoreError> {
    let column = match group_by {
        UsageGroupBy::Service => "service",
        UsageGroupBy::Project => "project",
        UsageGroupBy::Workitem => "item_key",
        UsageGroupBy::Model => "model",
    };
    // TOTAL never overflows (SUM of integers fails past 2^63); the sums saturate at the
    // column's largest value.
    let sum = |c: &str| format!("CAST(MIN(TOTAL({c}), {}) AS INTEGER)", i64::MAX);
    let sql = format!(
        "SELECT {column}, {}, {}, {}, SUM(cost_usd), SUM(notional_cost_usd) \
         FROM usage WHERE tenant_id = ?1 GROUP BY {column}",
        sum("input_tokens"),
        sum("output_tokens"),
        sum("total_tokens"),
    );
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut groups = found
        .iter()
        .map(|row| {
            let tokens = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(store_error)?;
                Ok(v.max(0) as u64)
            };
            Ok(UsageRow {
                key: row.try_get(0).map_err(store_error)?,
                input_tokens: tokens(1)?,
                output_tokens: tokens(2)?,
                total_tokens: tokens(3)?,
                cost_usd: row.try_get(4).map_err(store_error)?,
                notional_cost_usd: row.try_get(5).map_err(store_error)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    groups.sort_by(|a, b| b.total_tokens.cmp(&a.total_tokens).then(a.key.cmp(&b.key)));
    Ok(groups)
}

/// The unrevoked key with this hash.
pub(crate) async fn find_key(
    pool: &SqlitePool,
    secret_sha256: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let found = sqlx::query(
        "SELECT id, name, tenant_id, scopes, created_at, revoked_at FROM api_keys \
         WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
    )
    .bind(secret_sha256)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    found.as_ref().map(rows::api_key).transpose()
}

/// Every key, oldest first (ties by id).
pub(crate) async fn list_keys(pool: &SqlitePool) -> Result<Vec<ApiKey>, StoreError> {
    let found = sqlx::query(
        "SELECT id, name, tenant_id, scopes, created_at, revoked_at FROM api_keys \
         ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    found.iter().map(rows::api_key).collect()
}

/// Whether any unrevoked key exists.
pub(crate) async fn has_active_keys(pool: &SqlitePool) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)")
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    let exists: bool = row.try_get(0).map_err(store_error)?;
    Ok(exists)
}

/// Every tenant's stored service settings, by tenant then name.
pub(crate) async fn stored_services(pool: &SqlitePool) -> Result<Vec<StoredService>, StoreError> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT tenant_id, name, url, token FROM service_settings ORDER BY tenant_id, name",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.into_iter()
        .map(|(tenant, service, url, token)| {
            Ok(StoredService {
                tenant: TenantId::parse(&tenant).map_err(|e| corrupt("service tenant", e))?,
                service,
                url,
                token,
            })
        })
        .collect()
}

/// Every tenant with an item.
pub(crate) async fn tenants(pool: &SqlitePool) -> Result<Vec<TenantId>, StoreError> {
    let rows = sqlx::query("SELECT DISTINCT tenant_id FROM workitems ORDER BY tenant_id")
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(store_error)?;
            TenantId::parse(&text).map_err(|e| corrupt("tenant", e))
        })
        .collect()
}

/// A page of the tenant's items in key order.
pub(crate) async fn scan_items(
    pool: &SqlitePool,
    tenant: &TenantId,
    after: Option<&CorrelationKey>,
    limit: u32,
) -> Result<cfactory_domain::ports::ScanPage, StoreError> {
    let found = sqlx::query(
        "SELECT key, doc FROM workitems WHERE tenant_id = ?1 AND (?2 IS NULL OR key > ?2) \
         ORDER BY key LIMIT ?3",
    )
    .bind(tenant.as_str())
    .bind(after.map(CorrelationKey::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = cfactory_domain::ports::ScanPage::default();
    for row in &found {
        let key = rows::key(row.try_get(0).map_err(store_error)?)?;
        match rows::item(row.try_get(1).map_err(store_error)?) {
            Ok(item) => page.items.push(item),
            Err(e) => page.unreadable.push((key.clone(), e.to_string())),
        }
        page.last = Some(key);
    }
    Ok(page)
}

/// A page of the tenant's events in arrival order, each checked: its columns decode and
/// its stored text parses as a completion event.
pub(crate) async fn scan_events(
    pool: &SqlitePool,
    tenant: &TenantId,
    after: Option<i64>,
    limit: u32,
) -> Result<EventScanPage, StoreError> {
    let found = sqlx::query(
        "SELECT seq, event_id, service, task_id, status, time, received_at, raw, item_key \
         FROM events WHERE tenant_id = ?1 AND (?2 IS NULL OR seq > ?2) ORDER BY seq LIMIT ?3",
    )
    .bind(tenant.as_str())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = EventScanPage::default();
    for row in &found {
        let seq: i64 = row.try_get("seq").map_err(store_error)?;
        let key: String = row
            .try_get("item_key")
            .unwrap_or_else(|_| "(a key that is not text)".into());
        let checked = timeline_entry(row).and_then(|entry| {
            CompletionEvent::parse(&entry.raw).map_err(|e| corrupt("event text", e))
        });
        if let Err(e) = checked {
            page.unreadable
                .push((seq, format!("on work item {key}: {e}")));
        }
        page.scanned += 1;
        page.last = Some(seq);
    }
    Ok(page)
}

/// The tenant's events, newest arrival first.
pub(crate) async fn activity(
    pool: &SqlitePool,
    tenant: &TenantId,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<ActivityRows, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, event_id, service, task_id, status, time, received_at, raw, item_key \
         FROM events WHERE tenant_id = ?1 AND (?2 IS NULL OR seq < ?2) \
         ORDER BY seq DESC LIMIT ?3",
    )
    .bind(tenant.as_str())
    .bind(before_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = ActivityRows::default();
    for row in &rows {
        let read = (|| {
            Ok::<_, StoreError>(ActivityEntry {
                correlation_key: rows::key(row.try_get("item_key").map_err(store_error)?)?,
                entry: timeline_entry(row)?,
            })
        })();
        match read {
            Ok(found) => page.entries.push(found),
            Err(e) => {
                let seq: i64 = row.try_get("seq").map_err(store_error)?;
                tracing::error!(tenant = %tenant, seq, error = %e,
                    "a stored event cannot be read; left out of the activity feed");
                page.unreadable.push((seq, e.to_string()));
            }
        }
    }
    Ok(page)
}

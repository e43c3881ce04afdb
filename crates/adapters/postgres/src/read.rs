//! The read side: items, lists, timelines and usage, straight from the pool. Lists and
//! timelines use the indexed columns and keyset cursors; only the page's documents load.

use cfactory_domain::ports::{
    ActivityEntry, ActivityRows, EventScanPage, ListCursor, ListQuery, StoreError, Timeline,
    TimelineCursor, TimelineEntry, UsageGroupBy, UsageRow, WorkItemPage,
};
use cfactory_domain::{
    CompletionEvent, CorrelationKey, EventId, Identifier, Service, StageName, TenantId, WorkItem,
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::{corrupt, store_error};
use crate::rows::{has_condition, item_from_doc, key_from_column, pg_text};

/// The identifier text a key is filed under, or `None` for text that is no key.
fn key_identifier(key: &str) -> Option<String> {
    let key = CorrelationKey::parse(key).ok()?;
    Some(Identifier::key(&key).as_str().to_owned())
}

/// The item filed under `key` or an alias of it.
pub(crate) async fn get(
    pool: &PgPool,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<WorkItem>, StoreError> {
    let Some(ident) = key_identifier(key) else {
        return Ok(None);
    };
    let doc: Option<(String,)> = sqlx::query_as(
        "SELECT w.doc::text FROM identifiers i \
         JOIN workitems w ON w.tenant_id = i.tenant_id AND w.key = i.item_key \
         WHERE i.tenant_id = $1 AND i.ident = $2",
    )
    .bind(tenant.as_str())
    .bind(ident)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    doc.map(|(doc,)| item_from_doc(&doc)).transpose()
}

/// The owner of `service`'s task `task_id`.
pub(crate) async fn find_task(
    pool: &PgPool,
    tenant: &TenantId,
    service: Service,
    task_id: &str,
) -> Result<Option<CorrelationKey>, StoreError> {
    let ident = Identifier::task(service.as_str(), task_id);
    let key: Option<(String,)> =
        sqlx::query_as("SELECT item_key FROM identifiers WHERE tenant_id = $1 AND ident = $2")
            .bind(tenant.as_str())
            .bind(pg_text(ident.as_str()).as_ref())
            .fetch_optional(pool)
            .await
            .map_err(store_error)?;
    key.map(|(k,)| key_from_column(&k)).transpose()
}

/// `LIKE` pattern matching `needle` anywhere, with its wildcards escaped.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in pg_text(&needle.to_lowercase()).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Appends ` WHERE …` for the tenant and the query's filters.
fn push_filter(sql: &mut QueryBuilder<Postgres>, tenant: &TenantId, query: &ListQuery) {
    sql.push(" WHERE tenant_id = ")
        .push_bind(tenant.as_str().to_owned());
    if let Some(stage) = query.stage {
        sql.push(" AND active_stage = ").push_bind(stage.as_str());
    }
    if let Some(class) = query.status {
        sql.push(" AND active_class = ").push_bind(class.as_str());
    }
    if let Some(service) = query.service {
        match StageName::of(service) {
            Some(stage) => sql.push(format_args!(" AND {}", has_condition(stage))),
            // A service without a stage is never on one.
            None => sql.push(" AND FALSE"),
        };
    }
    if let Some(text) = &query.text {
        sql.push(" AND key IN (SELECT key FROM workitem_search WHERE tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND search_text LIKE ")
            .push_bind(contains_pattern(text))
            .push(")");
    }
}

/// A page of items matching `query`, newest change first.
pub(crate) async fn list(
    pool: &PgPool,
    tenant: &TenantId,
    query: &ListQuery,
) -> Result<WorkItemPage, StoreError> {
    // One statement, so the counts and the page come from one snapshot: a write
    // committing meanwhile can never give a count the page does not match. The counts
    // are scalar subqueries planned apart, so the total can be an index-only scan and
    // the stalled count a range of the partial `workitems_stall` index, neither reading
    // the table's rows; the page joins them (a row with no page when nothing matches).
    let mut sql = QueryBuilder::new(
        "SELECT t.n, s.n, p.key, p.updated_at, p.doc FROM (SELECT COUNT(*) AS n FROM workitems",
    );
    push_filter(&mut sql, tenant, query);
    sql.push(") AS t CROSS JOIN (SELECT COUNT(*) AS n FROM workitems");
    push_filter(&mut sql, tenant, query);
    sql.push(" AND stall_at < ")
        .push_bind(query.stalled_before)
        .push(") AS s LEFT JOIN LATERAL (SELECT key, updated_at, doc::text AS doc FROM workitems");
    push_filter(&mut sql, tenant, query);
    if let Some(cursor) = &query.cursor {
        let after = DateTime::from_timestamp_micros(cursor.updated_at_micros)
            .ok_or_else(|| StoreError::Unexpected("list cursor out of range".into()))?;
        sql.push(" AND (updated_at, key) < (")
            .push_bind(after)
            .push(", ")
            .push_bind(cursor.key.clone())
            .push(")");
    }
    sql.push(" ORDER BY updated_at DESC, key DESC LIMIT ")
        .push_bind(i64::from(query.limit) + 1)
        .push(") AS p ON TRUE ORDER BY p.updated_at DESC, p.key DESC");
    type PageRow = (
        i64,
        i64,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let rows: Vec<PageRow> = sql
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let (count, stalled_count) = rows.first().map_or((0, 0), |r| (r.0, r.1));
    let docs: Vec<(String, DateTime<Utc>, String)> = rows
        .into_iter()
        .filter_map(|(_, _, key, at, doc)| Some((key?, at?, doc?)))
        .collect();
    let more = docs.len() > query.limit as usize;
    let mut items = Vec::with_capacity(docs.len());
    let mut unreadable = 0;
    let mut next_cursor = None;
    for (key, updated_at, doc) in docs.into_iter().take(query.limit as usize) {
        match item_from_doc(&doc) {
            Ok(item) => items.push(item),
            Err(e) => {
                tracing::error!(tenant = %tenant, key = %key, error = %e,
                    "a stored work item cannot be read; left out of the list");
                unreadable += 1;
            }
        }
        // The cursor follows the rows, readable or not, so paging never stalls.
        next_cursor = more.then_some(ListCursor {
            updated_at_micros: updated_at.timestamp_micros(),
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

type EventRow = (
    i64,
    Option<String>,
    String,
    String,
    String,
    DateTime<Utc>,
    i32,
    DateTime<Utc>,
    String,
);

fn entry(row: EventRow) -> Result<TimelineEntry, StoreError> {
    let (seq, event_id, service, task_id, status, time, time_nanos, received_at, raw) = row;
    Ok(TimelineEntry {
        seq,
        event_id: event_id
            .map(|id| EventId::parse(&id).map_err(|e| corrupt("event id", e)))
            .transpose()?,
        service: Service::parse(&service).ok_or_else(|| corrupt("service", &service))?,
        task_id,
        status,
        time: time + chrono::Duration::nanoseconds(i64::from(time_nanos)),
        received_at,
        raw,
    })
}

/// An event as the timeline shows it: its columns decode and its stored text is JSON.
fn shown_entry(row: EventRow) -> Result<TimelineEntry, StoreError> {
    let entry = entry(row)?;
    serde_json::from_str::<&serde_json::value::RawValue>(&entry.raw)
        .map_err(|e| corrupt("event text", e))?;
    Ok(entry)
}

/// A page of the timeline of the item under `key` (or an alias), oldest first. Events
/// whose row no longer decodes are left out, logged and counted.
pub(crate) async fn timeline(
    pool: &PgPool,
    tenant: &TenantId,
    key: &str,
    limit: u32,
    cursor: Option<&TimelineCursor>,
) -> Result<Option<Timeline>, StoreError> {
    let Some(ident) = key_identifier(key) else {
        return Ok(None);
    };
    let owner: Option<(String,)> = sqlx::query_as(
        "SELECT w.key FROM identifiers i \
         JOIN workitems w ON w.tenant_id = i.tenant_id AND w.key = i.item_key \
         WHERE i.tenant_id = $1 AND i.ident = $2",
    )
    .bind(tenant.as_str())
    .bind(ident)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    let Some((item_key,)) = owner else {
        return Ok(None);
    };
    let (event_count, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT COUNT(*), MIN(time), MAX(time) FROM events \
             WHERE tenant_id = $1 AND item_key = $2",
        )
        .bind(tenant.as_str())
        .bind(&item_key)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    let after = cursor
        .map(|c| {
            DateTime::from_timestamp_micros(c.time_micros)
                .map(|at| (at, c.seq))
                .ok_or_else(|| StoreError::Unexpected("timeline cursor out of range".into()))
        })
        .transpose()?;
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, event_id, service, task_id, status, time, time_nanos, received_at, raw \
         FROM events WHERE tenant_id = $1 AND item_key = $2 AND ($3::timestamptz IS NULL OR (time, seq) > ($3, $4)) \
         ORDER BY time, seq LIMIT $5",
    )
    .bind(tenant.as_str())
    .bind(&item_key)
    .bind(after.map(|(at, _)| at))
    .bind(after.map_or(0, |(_, seq)| seq))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let more = rows.len() > limit as usize;
    let mut events = Vec::with_capacity(rows.len().min(limit as usize));
    let mut unreadable = 0;
    let mut position = None;
    for row in rows.into_iter().take(limit as usize) {
        let (seq, time) = (row.0, row.5);
        match shown_entry(row) {
            Ok(entry) => events.push(entry),
            Err(e) => {
                tracing::error!(tenant = %tenant, key = %item_key, seq, error = %e,
                    "a stored event cannot be read; left out of the timeline");
                unreadable += 1;
            }
        }
        // The cursor follows the rows, readable or not, so paging never stalls.
        position = Some((time, seq));
    }
    let next_cursor = position.filter(|_| more).map(|(time, seq)| TimelineCursor {
        time_micros: time.timestamp_micros(),
        seq,
    });
    Ok(Some(Timeline {
        correlation_key: key_from_column(&item_key)?,
        event_count: event_count as u64,
        events,
        span_seconds: match (first, last) {
            (Some(a), Some(b)) => (b - a).num_seconds(),
            _ => 0,
        },
        next_cursor,
        unreadable,
    }))
}

/// The tenant's usage summed per group, largest total first, then by group value.
pub(crate) async fn usage(
    pool: &PgPool,
    tenant: &TenantId,
    group_by: UsageGroupBy,
) -> Result<Vec<UsageRow>, StoreError> {
    let column = match group_by {
        UsageGroupBy::Service => "service",
        UsageGroupBy::Project => "project",
        UsageGroupBy::Workitem => "item_key",
        UsageGroupBy::Model => "model",
    };
    let sql = format!(
        "SELECT {column}, LEAST(SUM(input_tokens), {MAX})::int8, \
             LEAST(SUM(output_tokens), {MAX})::int8, LEAST(SUM(total_tokens), {MAX})::int8, \
             SUM(cost_usd), SUM(notional_cost_usd) \
         FROM usage WHERE tenant_id = $1 GROUP BY {column} \
         ORDER BY 4 DESC, 1 ASC NULLS FIRST",
        // Sums saturate at the column's largest value rather than failing the cast.
        MAX = i64::MAX
    );
    let rows: Vec<(Option<String>, i64, i64, i64, f64, f64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(key, input, output, total, cost, notional)| UsageRow {
            key,
            input_tokens: input.max(0) as u64,
            output_tokens: output.max(0) as u64,
            total_tokens: total.max(0) as u64,
            cost_usd: cost,
            notional_cost_usd: notional,
        })
        .collect())
}

/// Every tenant with an item.
pub(crate) async fn tenants(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT tenant_id FROM workitems ORDER BY tenant_id")
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
    rows.into_iter()
        .map(|(t,)| TenantId::parse(&t).map_err(|e| corrupt("tenant", e)))
        .collect()
}

/// A page of the tenant's items in key order.
pub(crate) async fn scan_items(
    pool: &PgPool,
    tenant: &TenantId,
    after: Option<&CorrelationKey>,
    limit: u32,
) -> Result<cfactory_domain::ports::ScanPage, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, doc::text FROM workitems \
         WHERE tenant_id = $1 AND ($2::text IS NULL OR key > $2) ORDER BY key LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(after.map(|k| pg_text(k.as_str()).into_owned()))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = cfactory_domain::ports::ScanPage::default();
    for (key, doc) in &rows {
        let key = key_from_column(key)?;
        match item_from_doc(doc) {
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
    pool: &PgPool,
    tenant: &TenantId,
    after: Option<i64>,
    limit: u32,
) -> Result<EventScanPage, StoreError> {
    let rows: Vec<(String, i64, Option<String>, String, String)> = sqlx::query_as(
        "SELECT item_key, seq, event_id, service, raw FROM events \
         WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq > $2) ORDER BY seq LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = EventScanPage::default();
    for (key, seq, event_id, service, raw) in rows {
        let checked = event_id
            .map(|id| EventId::parse(&id).map_err(|e| corrupt("event id", e)))
            .transpose()
            .and_then(|_| Service::parse(&service).ok_or_else(|| corrupt("service", &service)))
            .and_then(|_| CompletionEvent::parse(&raw).map_err(|e| corrupt("event text", e)));
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
    pool: &PgPool,
    tenant: &TenantId,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<ActivityRows, StoreError> {
    type ActivityRow = (
        i64,
        Option<String>,
        String,
        String,
        String,
        DateTime<Utc>,
        i32,
        DateTime<Utc>,
        String,
        String,
    );
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT seq, event_id, service, task_id, status, time, time_nanos, received_at, raw, \
         item_key FROM events WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq < $2) \
         ORDER BY seq DESC LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(before_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut page = ActivityRows::default();
    for (seq, id, service, task, status, time, nanos, received, raw, key) in rows {
        let read = key_from_column(&key).and_then(|correlation_key| {
            Ok(ActivityEntry {
                correlation_key,
                entry: entry((seq, id, service, task, status, time, nanos, received, raw))?,
            })
        });
        match read {
            Ok(found) => page.entries.push(found),
            Err(e) => {
                tracing::error!(tenant = %tenant, seq, error = %e,
                    "a stored event cannot be read; left out of the activity feed");
                page.unreadable.push((seq, e.to_string()));
            }
        }
    }
    Ok(page)
}

/// The items under each of `keys` (or an alias), in one query.
pub(crate) async fn get_many(
    pool: &PgPool,
    tenant: &TenantId,
    keys: &[CorrelationKey],
) -> Result<Vec<Option<WorkItem>>, StoreError> {
    let idents: Vec<String> = keys
        .iter()
        .map(|k| pg_text(Identifier::key(k).as_str()).into_owned())
        .collect();
    // One primary-key lookup per identifier and per item (LATERAL ... LIMIT 1 is never
    // flattened), whatever the planner believes about the table's size.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.ident, w.doc::text FROM UNNEST($2::text[]) AS x(ident) \
         CROSS JOIN LATERAL (SELECT ident, item_key FROM identifiers \
             WHERE tenant_id = $1 AND ident = x.ident LIMIT 1) AS i \
         CROSS JOIN LATERAL (SELECT doc FROM workitems \
             WHERE tenant_id = $1 AND key = i.item_key LIMIT 1) AS w",
    )
    .bind(tenant.as_str())
    .bind(&idents)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut found: std::collections::HashMap<String, String> = rows.into_iter().collect();
    idents
        .iter()
        .map(|ident| {
            found
                .remove(ident)
                .map(|doc| item_from_doc(&doc))
                .transpose()
        })
        .collect()
}

//! The writer's two statements: the load of what a batch can touch, and the write of a
//! change set in one statement, with the columns it binds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cfactory_domain::correlate::{ChangeSet, Loaded};
use cfactory_domain::ports::StoreError;
use cfactory_domain::{CorrelationKey, EventId, Identifier, TenantId, WorkItem};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::feed_holding::Holding;
use super::merges::merge;
use super::staged::{Staged, Stored};
use super::to_micros;
use crate::error::store_error;
use crate::feed;
use crate::rows::{
    ItemColumns, UsageColumns, UsageRow, item_from_doc, key_from_column, pg_text, usage_rows,
};

/// Loads what a batch can touch: the owners of `ids`, their items (but for those whose
/// keys are in `have`, already in hand), and which of `event_ids` are already recorded,
/// in one round trip.
pub(super) async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: BTreeSet<Identifier>,
    event_ids: BTreeSet<EventId>,
    have: &[&str],
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    if ids.is_empty() && event_ids.is_empty() {
        return Ok(loaded);
    }
    // Stored identifiers are NUL-free; map each back to the one the batch asks for.
    let wanted: HashMap<String, Identifier> = ids
        .into_iter()
        .map(|id| (pg_text(id.as_str()).into_owned(), id))
        .collect();
    let idents: Vec<&str> = wanted.keys().map(String::as_str).collect();
    let events: Vec<&str> = event_ids.iter().map(EventId::as_str).collect();
    // Rows: (0, identifier, its item's key), (1, key, item document) for each owner not
    // in `have`, (2, event id, key).
    // Each identifier and item is looked up on its own through the primary key (the
    // LATERAL ... LIMIT 1 cannot be flattened). Written as `ident = ANY($2)`, a planner
    // whose statistics lag a young, fast-growing table scans the whole tenant instead.
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "WITH o AS (SELECT i.ident, i.item_key FROM UNNEST($2::text[]) AS x(ident) \
                    CROSS JOIN LATERAL (SELECT ident, item_key FROM identifiers \
                        WHERE tenant_id = $1 AND ident = x.ident LIMIT 1) AS i) \
         SELECT 0, ident, item_key FROM o \
         UNION ALL \
         SELECT 1, w.key, w.doc::text COLLATE \"C\" \
          FROM (SELECT DISTINCT item_key FROM o WHERE item_key <> ALL($4)) AS k \
          CROSS JOIN LATERAL (SELECT key, doc FROM workitems \
              WHERE tenant_id = $1 AND key = k.item_key LIMIT 1) AS w \
         UNION ALL \
         SELECT 2, e.event_id, e.item_key FROM UNNEST($3::text[]) AS x(event_id) \
          CROSS JOIN LATERAL (SELECT event_id, item_key FROM events \
              WHERE tenant_id = $1 AND event_id = x.event_id LIMIT 1) AS e",
    )
    // Parsed and planned at each use, never kept: the writer's connection plans what it
    // keeps generically, and a generic plan of these lookups made while the tables were
    // nearly empty may pick an index that matches only the tenant and keep it.
    .persistent(false)
    .bind(tenant.as_str())
    .bind(&idents)
    .bind(&events)
    .bind(have)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut unreadable = Vec::new();
    for (kind, a, b) in rows {
        match kind {
            0 => {
                if let Some(id) = wanted.get(&a) {
                    loaded.owners.insert(id.clone(), key_from_column(&b)?);
                }
            }
            1 => {
                let key = key_from_column(&a)?;
                match item_from_doc(&b) {
                    Ok(item) => {
                        loaded.items.insert(key, item);
                    }
                    Err(e) => unreadable.push((key, e)),
                }
            }
            _ => {
                let id = EventId::parse(&a).map_err(|e| crate::error::corrupt("event id", e))?;
                loaded.seen.insert(id, key_from_column(&b)?);
            }
        }
    }
    for (key, error) in unreadable {
        if let Some(item) = rebuild(conn, tenant, &key, &error).await? {
            loaded.items.insert(key, item);
        }
    }
    Ok(loaded)
}

/// An item whose stored document no longer decodes, rebuilt from its timeline so the event
/// at hand lands on it (and the rebuilt state is written back with it).
async fn rebuild(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &CorrelationKey,
    error: &StoreError,
) -> Result<Option<WorkItem>, StoreError> {
    let raws: Vec<(String,)> =
        sqlx::query_as("SELECT raw FROM events WHERE tenant_id = $1 AND item_key = $2")
            .bind(tenant.as_str())
            .bind(pg_text(key.as_str()).into_owned())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
    let raws: Vec<String> = raws.into_iter().map(|(raw,)| raw).collect();
    tracing::warn!(tenant = %tenant, key = %key, %error, events = raws.len(),
        "rebuilding an unreadable work item from its timeline");
    Ok(WorkItem::rebuild(key.clone(), &raws))
}

/// The `usage` rows a change set rewrites: every row of the items in `whole` (new items,
/// items merged into or away), and elsewhere only the rows whose task is new, changed
/// or gone.
#[derive(Default)]
struct UsageChanges<'k> {
    /// Items whose rows are all deleted, then written again.
    whole: Vec<&'k str>,
    /// Single rows deleted: item key, service, task id.
    drop_keys: Vec<&'k str>,
    drop_services: Vec<String>,
    drop_tasks: Vec<String>,
    /// Rows inserted.
    rows: UsageColumns,
}

impl<'k> UsageChanges<'k> {
    fn of(
        changes: &'k ChangeSet,
        upserts: &'k [Arc<WorkItem>],
        before: &HashMap<CorrelationKey, Stored>,
    ) -> Self {
        let mut out = Self::default();
        let merged: BTreeSet<&CorrelationKey> = changes
            .redirects
            .iter()
            .flat_map(|(from, to)| [from, to])
            .chain(&changes.deleted)
            .collect();
        for key in &changes.deleted {
            out.whole.push(key.as_str());
        }
        let distinct = |rows: &[UsageRow]| {
            let tasks: BTreeSet<(&str, &str)> = rows
                .iter()
                .map(|r| (r.service.as_str(), r.task_id.as_str()))
                .collect();
            tasks.len() == rows.len()
        };
        for item in upserts {
            let key = item.correlation_key.as_str();
            let after = usage_rows(item);
            let diffable = |old: &&Vec<UsageRow>| {
                !merged.contains(&item.correlation_key) && distinct(old) && distinct(&after)
            };
            let old = before.get(&item.correlation_key).map(|s| &s.usage);
            let Some(old) = old.filter(diffable) else {
                out.whole.push(key);
                after.into_iter().for_each(|row| out.rows.push(key, row));
                continue;
            };
            // A changed task's old row goes and its new row comes.
            for row in old {
                if !after.iter().any(|a| a == row) {
                    out.drop_keys.push(key);
                    out.drop_services.push(row.service.clone());
                    out.drop_tasks.push(row.task_id.clone());
                }
            }
            for row in after {
                if !old.iter().any(|o| o == &row) {
                    out.rows.push(key, row);
                }
            }
        }
        out
    }
}

/// Writes a change set and announces it: merges (rare) first, then everything else —
/// usage, items, their search text, identifiers, events, the tenant's generation and the
/// change notices — in one statement, one round trip. `before` holds what is stored for
/// the items loaded. The items written are held (in `holding`) for this process's change
/// feed.
pub(super) async fn write(
    conn: &mut PgConnection,
    tenant: &TenantId,
    staged: &Staged,
    before: &HashMap<CorrelationKey, Stored>,
    holding: &mut Holding<'_>,
) -> Result<bool, StoreError> {
    if !staged.writes_anything() {
        return Ok(false);
    }
    let Staged {
        changes,
        items: written,
    } = staged;
    let mut heard: Vec<CorrelationKey> =
        written.iter().map(|i| i.correlation_key.clone()).collect();
    heard.extend(changes.deleted.iter().cloned());
    let seq = if written.is_empty() {
        None
    } else {
        holding.held.reserve()
    };
    let notices = feed::payloads(tenant, &heard, seq.map(|seq| (holding.held, seq)))?;
    let tenant = tenant.as_str();
    if staged.merges() {
        merge(conn, tenant, changes).await?;
    }
    let mut items = ItemColumns::default();
    for item in written {
        items.push(item)?;
    }
    let usage_changes = UsageChanges::of(changes, written, before);
    let usage = &usage_changes.rows;
    let [has_plan, has_code, has_test] = &items.has;
    let [open_plan, open_code, open_test] = &items.open;
    let owners = OwnerColumns::of(changes);
    let events = EventColumns::of(changes);
    let mut search_keys = Vec::new();
    let mut search_texts = Vec::new();
    for item in written {
        let text = pg_text(&item.search_text()).into_owned();
        if before
            .get(&item.correlation_key)
            .is_none_or(|stored| stored.search_text != text)
        {
            search_keys.push(item.correlation_key.as_str());
            search_texts.push(text);
        }
    }
    // Held before the statement runs: it may commit on its own, and its notice must
    // find the items.
    if let Some(seq) = seq {
        holding.held.hold(seq, written);
        holding.writes.push(seq);
    }
    // Every sub-statement reads the snapshot taken before any of them runs, so the
    // DELETEs of old usage rows (all of an item's, or one task's, through their row ids)
    // never see the rows inserted beside them. Each looks its rows up item by item
    // through `usage_item`, so the plan, made once, holds however large the table
    // grows. Empty arrays make a sub-statement a no-op, so the text stays one prepared
    // statement.
    // The events' WITH ORDINALITY keeps sequence numbers in arrival order.
    sqlx::query(
        "WITH old_usage AS ( \
             DELETE FROM usage WHERE ctid = ANY(ARRAY( \
                 SELECT u.ctid FROM UNNEST($2::text[]) AS k(item_key) \
                 CROSS JOIN LATERAL (SELECT ctid FROM usage WHERE tenant_id = $1 \
                     AND item_key = k.item_key OFFSET 0) AS u))), \
         old_rows AS ( \
             DELETE FROM usage WHERE ctid = ANY(ARRAY( \
                 SELECT u.ctid FROM UNNEST($38::text[], $39::text[], $40::text[]) \
                     AS d(item_key, service, task_id) \
                 CROSS JOIN LATERAL (SELECT ctid FROM usage WHERE tenant_id = $1 \
                     AND item_key = d.item_key AND service = d.service \
                     AND task_id = d.task_id LIMIT 1) AS u))), \
         items AS ( \
             INSERT INTO workitems (tenant_id, key, created_at, updated_at, active_stage, \
                 active_class, has_plan, has_code, has_test, open_plan, open_code, open_test, \
                 stall_at, doc) \
             SELECT $1, u.key, u.created_at, u.updated_at, u.active_stage, u.active_class, \
                 u.has_plan, u.has_code, u.has_test, u.open_plan, u.open_code, u.open_test, \
                 u.stall_at, u.doc::json \
             FROM UNNEST($3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], \
                 $7::text[], $8::bool[], $9::bool[], $10::bool[], $11::bool[], $12::bool[], \
                 $13::bool[], $14::timestamptz[], $15::text[]) \
                 AS u(key, created_at, updated_at, active_stage, active_class, has_plan, \
                 has_code, has_test, open_plan, open_code, open_test, stall_at, doc) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 active_stage = EXCLUDED.active_stage, active_class = EXCLUDED.active_class, \
                 has_plan = EXCLUDED.has_plan, has_code = EXCLUDED.has_code, \
                 has_test = EXCLUDED.has_test, open_plan = EXCLUDED.open_plan, \
                 open_code = EXCLUDED.open_code, open_test = EXCLUDED.open_test, \
                 stall_at = EXCLUDED.stall_at, doc = EXCLUDED.doc), \
         new_usage AS ( \
             INSERT INTO usage (tenant_id, item_key, service, task_id, model, project, \
                 input_tokens, output_tokens, total_tokens, cost_usd, notional_cost_usd) \
             SELECT $1, u.* FROM UNNEST($16::text[], $17::text[], $18::text[], $19::text[], \
                 $20::text[], $21::int8[], $22::int8[], $23::int8[], $24::float8[], \
                 $43::float8[]) AS u), \
         owners AS ( \
             INSERT INTO identifiers (tenant_id, ident, item_key) \
             SELECT $1, o.ident, o.item_key \
             FROM UNNEST($25::text[], $26::text[]) AS o(ident, item_key) \
             ON CONFLICT (tenant_id, ident) DO UPDATE SET item_key = EXCLUDED.item_key \
             WHERE identifiers.item_key <> EXCLUDED.item_key), \
         new_events AS ( \
             INSERT INTO events (tenant_id, event_id, item_key, service, task_id, status, \
                 time, time_nanos, received_at, raw) \
             SELECT $1, e.event_id, e.item_key, e.service, e.task_id, e.status, e.time, \
                 e.time_nanos, e.received_at, e.raw \
             FROM UNNEST($27::text[], $28::text[], $29::text[], $30::text[], $31::text[], \
                 $32::timestamptz[], $33::int4[], $34::timestamptz[], $35::text[]) \
                 WITH ORDINALITY AS e(event_id, item_key, service, task_id, status, time, \
                 time_nanos, received_at, raw, ord) \
             ORDER BY e.ord), \
         search AS ( \
             INSERT INTO workitem_search (tenant_id, key, search_text) \
             SELECT $1, s.key, s.search_text \
             FROM UNNEST($41::text[], $42::text[]) AS s(key, search_text) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET search_text = EXCLUDED.search_text), \
         generation AS ( \
             INSERT INTO tenant_writes (tenant_id, generation) VALUES ($1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_writes.generation + 1) \
         SELECT pg_notify($36, p) FROM UNNEST($37::text[]) AS p",
    )
    .bind(tenant)
    .bind(&usage_changes.whole)
    .bind(&items.keys)
    .bind(&items.created_at)
    .bind(&items.updated_at)
    .bind(&items.active_stage)
    .bind(&items.active_class)
    .bind(has_plan)
    .bind(has_code)
    .bind(has_test)
    .bind(open_plan)
    .bind(open_code)
    .bind(open_test)
    .bind(&items.stall_at)
    .bind(&items.docs)
    .bind(&usage.item_key)
    .bind(&usage.service)
    .bind(&usage.task_id)
    .bind(&usage.model)
    .bind(&usage.project)
    .bind(&usage.input_tokens)
    .bind(&usage.output_tokens)
    .bind(&usage.total_tokens)
    .bind(&usage.cost_usd)
    .bind(&owners.idents)
    .bind(&owners.keys)
    .bind(&events.event_ids)
    .bind(&events.item_keys)
    .bind(&events.services)
    .bind(&events.task_ids)
    .bind(&events.statuses)
    .bind(&events.times)
    .bind(&events.time_nanos)
    .bind(&events.received)
    .bind(&events.raws)
    .bind(feed::CHANNEL)
    .bind(&notices)
    .bind(&usage_changes.drop_keys)
    .bind(&usage_changes.drop_services)
    .bind(&usage_changes.drop_tasks)
    .bind(&search_keys)
    .bind(&search_texts)
    .bind(&usage.notional_cost_usd)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(true)
}

/// The `identifiers` rows of a change set, one vector per column.
struct OwnerColumns<'c> {
    idents: Vec<String>,
    keys: Vec<&'c str>,
}

impl<'c> OwnerColumns<'c> {
    fn of(changes: &'c ChangeSet) -> Self {
        Self {
            idents: changes
                .owners
                .iter()
                .map(|(id, _)| pg_text(id.as_str()).into_owned())
                .collect(),
            keys: changes.owners.iter().map(|(_, k)| k.as_str()).collect(),
        }
    }
}

/// The `events` rows of a change set, one vector per column.
struct EventColumns<'c> {
    event_ids: Vec<Option<&'c str>>,
    item_keys: Vec<&'c str>,
    services: Vec<&'c str>,
    task_ids: Vec<String>,
    statuses: Vec<String>,
    times: Vec<DateTime<Utc>>,
    time_nanos: Vec<i32>,
    received: Vec<DateTime<Utc>>,
    raws: Vec<String>,
}

impl<'c> EventColumns<'c> {
    fn of(changes: &'c ChangeSet) -> Self {
        let events = &changes.events;
        Self {
            event_ids: events
                .iter()
                .map(|e| e.event_id.as_ref().map(EventId::as_str))
                .collect(),
            item_keys: events.iter().map(|e| e.item_key.as_str()).collect(),
            services: events.iter().map(|e| e.service.as_str()).collect(),
            task_ids: events
                .iter()
                .map(|e| pg_text(&e.task_id).into_owned())
                .collect(),
            statuses: events
                .iter()
                .map(|e| pg_text(&e.status).into_owned())
                .collect(),
            times: events.iter().map(|e| to_micros(e.time)).collect(),
            time_nanos: events
                .iter()
                .map(|e| (e.time.timestamp_subsec_nanos() % 1000) as i32)
                .collect(),
            received: events.iter().map(|e| to_micros(e.received_at)).collect(),
            raws: events
                .iter()
                .map(|e| pg_text(&e.raw).into_owned())
                .collect(),
        }
    }
}

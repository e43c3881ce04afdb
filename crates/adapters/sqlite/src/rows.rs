//! How domain values map to SQLite rows and back: the denormalised columns of a WorkItem,
//! timestamps as microseconds, and the decoding of stored rows. Private to this crate.

use cfactory_domain::ports::{ApiKey, Scope, StoreError};
use cfactory_domain::taxonomy::StatusClass;
use cfactory_domain::workitem::StageName;
use cfactory_domain::{CorrelationKey, TenantId, WorkItem};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::corrupt;

/// A time as stored: microseconds since the Unix epoch.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored time back.
pub(crate) fn from_micros(what: &str, value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value).ok_or_else(|| corrupt(what, value))
}

/// A stored key back.
pub(crate) fn key(value: String) -> Result<CorrelationKey, StoreError> {
    CorrelationKey::parse(&value).map_err(|e| corrupt("correlation key", e))
}

/// A stored WorkItem document back.
pub(crate) fn item(doc: &str) -> Result<WorkItem, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt("work item", e))
}

/// The `workitems` columns of one item: what lists filter and sort on, and the
/// document itself.
pub(crate) struct ItemRow {
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) active_stage: Option<&'static str>,
    pub(crate) active_class: Option<&'static str>,
    /// Plan, code, test: present.
    pub(crate) has: [bool; 3],
    /// Plan, code, test: present and not terminal.
    pub(crate) open: [bool; 3],
    pub(crate) stall_at: Option<i64>,
    pub(crate) search_text: String,
    pub(crate) doc: String,
}

impl ItemRow {
    /// The row of `item`.
    pub(crate) fn of(item: &WorkItem) -> Result<Self, StoreError> {
        let stages = &item.stages;
        let active = stages.active();
        let doc = serde_json::to_string(item)
            .map_err(|e| StoreError::Unexpected(format!("serialising a work item: {e}")))?;
        Ok(Self {
            created_at: micros(item.created_at),
            updated_at: micros(item.updated_at),
            active_stage: active.map(|(n, _)| n.as_str()),
            active_class: active.map(|(_, s)| s.status_class.as_str()),
            has: StageName::FAMILY.map(|n| stages.get(n).is_some()),
            open: StageName::FAMILY
                .map(|n| stages.get(n).is_some_and(|s| !s.status_class.is_terminal())),
            stall_at: item.stall_clock().map(micros),
            search_text: item.search_text(),
            doc,
        })
    }
}

/// A token count as the INTEGER column holds it: saturated at its largest value.
fn stored_tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The usage rows of one WorkItem, as arrays the bulk insert reads.
pub(crate) fn usage_rows(item: &WorkItem) -> impl Iterator<Item = Value> + '_ {
    item.usage_by_task.iter().map(move |task| {
        let t = task.total();
        json!([
            item.correlation_key.as_str(),
            task.service.as_str(),
            task.task_id,
            task.model,
            item.project,
            stored_tokens(t.input_tokens),
            stored_tokens(t.output_tokens),
            stored_tokens(t.total_tokens),
            t.cost_usd,
            t.notional_cost_usd,
        ])
    })
}

/// The condition that stage `name` is present and not terminal on item row `w` (see
/// [`has_condition`]).
pub(crate) fn open_condition(name: StageName) -> String {
    match name.family_slot() {
        Some(i) => format!("w.{} = 1", ["open_plan", "open_code", "open_test"][i]),
        None => format!(
            "coalesce(json_extract(w.doc, '$.stages.{name}.status_class') NOT IN ('{}', '{}'), 0)",
            StatusClass::Failed.as_str(),
            StatusClass::Done.as_str()
        ),
    }
}

/// The condition that stage `name` is present on item row `w`: the family's own column,
/// or for another service's stage a look into the document (stage names are lower-case
/// letters, digits and `_`, so they are safe in the SQL text).
pub(crate) fn has_condition(name: StageName) -> String {
    match name.family_slot() {
        Some(i) => format!("w.{} = 1", ["has_plan", "has_code", "has_test"][i]),
        None => format!("json_type(w.doc, '$.stages.{name}') = 'object'"),
    }
}

/// Scopes as stored: names joined by `,`.
pub(crate) fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// An `api_keys` row (id, name, tenant_id, scopes, created_at, revoked_at) back.
pub(crate) fn api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let scopes: String = row.try_get("scopes").map_err(crate::error::store_error)?;
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| corrupt("key scope", s)))
        .collect::<Result<Vec<_>, _>>()?;
    let tenant: String = row
        .try_get("tenant_id")
        .map_err(crate::error::store_error)?;
    let created_at: i64 = row
        .try_get("created_at")
        .map_err(crate::error::store_error)?;
    let revoked_at: Option<i64> = row
        .try_get("revoked_at")
        .map_err(crate::error::store_error)?;
    Ok(ApiKey {
        id: row.try_get("id").map_err(crate::error::store_error)?,
        name: row.try_get("name").map_err(crate::error::store_error)?,
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("key tenant", e))?,
        scopes,
        created_at: from_micros("key creation time", created_at)?,
        revoked_at: revoked_at
            .map(|v| from_micros("key revocation time", v))
            .transpose()?,
    })
}

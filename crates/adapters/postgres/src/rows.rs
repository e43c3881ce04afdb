//! How domain values become column values and back: the WorkItem document, its filter
//! columns, and the text and time rules PostgreSQL imposes (no NUL in TEXT, microsecond
//! timestamps). Private to this crate.

use std::borrow::Cow;

use cfactory_domain::ports::StoreError;
use cfactory_domain::taxonomy::StatusClass;
use cfactory_domain::{CorrelationKey, StageName, WorkItem};
use chrono::{DateTime, Utc};

use crate::error::corrupt;

/// `at` cut to the microsecond PostgreSQL keeps, rounding down like
/// `timestamp_micros`, so what is written reads back equal.
pub(crate) fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// TEXT columns cannot hold NUL; the JSON document keeps the exact value.
pub(crate) fn pg_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A stored WorkItem document.
pub(crate) fn item_from_doc(doc: &str) -> Result<WorkItem, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt("work item", e))
}

/// A stored correlation key.
pub(crate) fn key_from_column(text: &str) -> Result<CorrelationKey, StoreError> {
    CorrelationKey::parse(text).map_err(|e| corrupt("correlation key", e))
}

/// The condition that a stage is present: the family's own column, or for another
/// service's stage a look into the document (stage names are lower-case letters, digits
/// and `_`, so they are safe in the SQL text).
pub(crate) fn has_condition(stage: StageName) -> String {
    match stage.family_slot() {
        Some(i) => ["has_plan", "has_code", "has_test"][i].to_owned(),
        None => format!("json_typeof(doc->'stages'->'{stage}') = 'object'"),
    }
}

/// The condition that a stage is present and not terminal (see [`has_condition`]).
pub(crate) fn open_condition(stage: StageName) -> String {
    match stage.family_slot() {
        Some(i) => ["open_plan", "open_code", "open_test"][i].to_owned(),
        None => format!(
            "COALESCE(doc->'stages'->'{stage}'->>'status_class' NOT IN ('{}', '{}'), FALSE)",
            StatusClass::Failed.as_str(),
            StatusClass::Done.as_str()
        ),
    }
}

/// The `workitems` columns of a batch of items, one vector per column, for `UNNEST`.
#[derive(Default)]
pub(crate) struct ItemColumns {
    pub keys: Vec<String>,
    pub created_at: Vec<DateTime<Utc>>,
    pub updated_at: Vec<DateTime<Utc>>,
    pub active_stage: Vec<Option<String>>,
    pub active_class: Vec<Option<String>>,
    pub has: [Vec<bool>; 3],
    pub open: [Vec<bool>; 3],
    pub stall_at: Vec<Option<DateTime<Utc>>>,
    pub docs: Vec<String>,
}

impl ItemColumns {
    /// Adds one item's row.
    pub fn push(&mut self, item: &WorkItem) -> Result<(), StoreError> {
        let doc = serde_json::to_string(item)
            .map_err(|e| StoreError::Unexpected(format!("work item does not serialise: {e}")))?;
        let active = item.stages.active();
        self.keys.push(item.correlation_key.as_str().to_owned());
        self.created_at.push(to_micros(item.created_at));
        self.updated_at.push(to_micros(item.updated_at));
        self.active_stage
            .push(active.map(|(name, _)| name.as_str().to_owned()));
        self.active_class
            .push(active.map(|(_, stage)| stage.status_class.as_str().to_owned()));
        for (i, name) in StageName::FAMILY.into_iter().enumerate() {
            let stage = item.stages.get(name);
            self.has[i].push(stage.is_some());
            self.open[i].push(stage.is_some_and(|s| !s.status_class.is_terminal()));
        }
        self.stall_at.push(item.stall_clock().map(to_micros));
        self.docs.push(doc);
        Ok(())
    }
}

/// The `usage` rows of a batch of items, one vector per column.
#[derive(Default)]
pub(crate) struct UsageColumns {
    pub item_key: Vec<String>,
    pub service: Vec<String>,
    pub task_id: Vec<String>,
    pub model: Vec<Option<String>>,
    pub project: Vec<Option<String>>,
    pub input_tokens: Vec<i64>,
    pub output_tokens: Vec<i64>,
    pub total_tokens: Vec<i64>,
    pub cost_usd: Vec<f64>,
    pub notional_cost_usd: Vec<f64>,
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One `usage` row of an item, as written: a task's running total.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsageRow {
    pub service: String,
    pub task_id: String,
    model: Option<String>,
    project: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cost_usd: f64,
    notional_cost_usd: f64,
}

/// The `usage` rows of `item`, one per task with usage.
pub(crate) fn usage_rows(item: &WorkItem) -> Vec<UsageRow> {
    item.usage_by_task
        .iter()
        .map(|task| {
            let total = task.total();
            UsageRow {
                service: task.service.as_str().to_owned(),
                task_id: pg_text(&task.task_id).into_owned(),
                model: task.model.as_deref().map(|m| pg_text(m).into_owned()),
                project: item.project.as_deref().map(|p| pg_text(p).into_owned()),
                input_tokens: tokens(total.input_tokens),
                output_tokens: tokens(total.output_tokens),
                total_tokens: tokens(total.total_tokens),
                cost_usd: total.cost_usd,
                notional_cost_usd: total.notional_cost_usd,
            }
        })
        .collect()
}

impl UsageColumns {
    /// Adds `row` of the item under `key`.
    pub fn push(&mut self, key: &str, row: UsageRow) {
        self.item_key.push(key.to_owned());
        self.service.push(row.service);
        self.task_id.push(row.task_id);
        self.model.push(row.model);
        self.project.push(row.project);
        self.input_tokens.push(row.input_tokens);
        self.output_tokens.push(row.output_tokens);
        self.total_tokens.push(row.total_tokens);
        self.cost_usd.push(row.cost_usd);
        self.notional_cost_usd.push(row.notional_cost_usd);
    }
}

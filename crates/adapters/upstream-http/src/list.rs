//! Reading a whole task list: the first page must succeed, later pages (followed only
//! when the upstream hands out a cursor) may fail and then mark the list incomplete.

use std::collections::HashSet;

use cfactory_domain::upstream::{TaskList, TaskSnapshot, UpstreamError};
use serde_json::Value;

use crate::client::{UpstreamClient, path_segment};
use crate::fields;

/// Most pages one read follows, so a cursor loop cannot run forever.
const MAX_PAGES: usize = 1000;

/// Envelope fields that may carry the next page's cursor.
const CURSOR_FIELDS: [&str; 5] = [
    "next_cursor",
    "nextCursor",
    "next_page_token",
    "pagination.next_cursor",
    "page.next_cursor",
];

/// Reads the task list at the first of `paths` that exists (later ones are fallbacks
/// for a 404), taking rows from a bare array or from the first of `row_keys` in an
/// envelope, and mapping each with `map`. When the envelope carries a next-page cursor
/// it is followed as `?cursor=`; none of the three services pages today.
///
/// `complete` is true only when every page was read and every row mapped; the call
/// fails only when the first page does.
pub async fn read_task_list(
    client: &UpstreamClient,
    paths: &[String],
    row_keys: &[&str],
    map: impl Fn(&Value) -> Option<TaskSnapshot>,
) -> Result<TaskList, UpstreamError> {
    let (used, first) = client.get_first(paths).await?;
    let path = &paths[used];
    let mut list = TaskList {
        tasks: Vec::new(),
        complete: true,
        failures: Vec::new(),
    };
    let mut page = first;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let Some(rows) = rows_of(&page, row_keys) else {
            if list.tasks.is_empty() && seen.is_empty() {
                return Err(UpstreamError::Malformed("no task list in the body".into()));
            }
            tracing::warn!(path, "a later page held no task list");
            list.complete = false;
            return Ok(list);
        };
        for row in rows {
            match map(row) {
                Some(task) => list.tasks.push(task),
                None => {
                    tracing::warn!(path, "skipped a task row without an id");
                    list.complete = false;
                }
            }
        }
        let Some(cursor) = fields::text(&page, &CURSOR_FIELDS) else {
            return Ok(list);
        };
        if !seen.insert(cursor.clone()) {
            tracing::warn!(path, "the upstream repeated a page cursor");
            list.complete = false;
            return Ok(list);
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        match client
            .get_json(&format!("{path}{sep}cursor={}", path_segment(&cursor)))
            .await
        {
            Ok(next) => page = next,
            Err(error) => {
                tracing::warn!(path, %error, "a later page failed; the list is incomplete");
                list.complete = false;
                return Ok(list);
            }
        }
    }
    tracing::warn!(path, "gave up after {MAX_PAGES} pages");
    list.complete = false;
    Ok(list)
}

fn rows_of<'a>(body: &'a Value, row_keys: &[&str]) -> Option<&'a Vec<Value>> {
    body.as_array()
        .or_else(|| row_keys.iter().find_map(|k| body.get(*k)?.as_array()))
}

//! WorkItems: the filtered list, one item, its timeline, and usage rollups. Thin: parse
//! the query into domain types, call the store, fill liveness against the clock.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use cfactory_domain::ports::{
    DEFAULT_LIST_LIMIT, ListCursor, ListQuery, MAX_LIST_LIMIT, MAX_TIMELINE_PAGE, Scope,
    TimelineCursor, UsageGroupBy, UsageRow,
};
use cfactory_domain::{CorrelationKey, Service, StageName, StatusClass};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::dto;
use super::paging::{PageRule, Paging};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/workitems", get(list))
        .route("/api/workitems/{correlationKey}", get(one))
        .route("/api/workitems/{correlationKey}/timeline", get(timeline))
        .route("/api/usage", get(usage))
}

/// Filters of the WorkItem list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The furthest started stage: `plan`, `code` or `test`.
    stage: Option<String>,
    /// The furthest stage's status class: failed, done, review, queued, running, stuck.
    status: Option<String>,
    /// Items with a stage from this service: pfactory, aifactory, tfactory.
    service: Option<String>,
    /// Case-insensitive text over keys, aliases, title, repo, branch and task ids.
    q: Option<String>,
}

/// The WorkItem list's pages: `limit` (default 50, at most 500) and its cursor.
pub struct ListPages;

impl PageRule for ListPages {
    const DEFAULT: u32 = DEFAULT_LIST_LIMIT;
    const MAX: u32 = MAX_LIST_LIMIT;
    const CURSOR_ABOUT: Option<&'static str> =
        Some("The `next_cursor` of the previous page (opaque; URL-encode it).");
    type Cursor = ListCursor;
    fn decode(text: &str) -> Option<ListCursor> {
        ListCursor::decode(text)
    }
}

/// A page of WorkItems.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkItemList {
    /// How many items match in all.
    pub count: u64,
    /// This page, newest change first.
    pub items: Vec<dto::WorkItem>,
    /// The next page's cursor (opaque; URL-encode it), or null on the last page.
    pub next_cursor: Option<String>,
    /// How many matching items are stalled.
    pub stalled_count: u64,
    /// Items of this page left out because their stored state cannot be read (counted
    /// in `count`; the log names each).
    pub unreadable: u64,
}

fn nonempty(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

impl ListParams {
    fn into_query(
        self,
        page: Paging<ListPages>,
        stalled_before: DateTime<Utc>,
    ) -> Result<ListQuery, ApiError> {
        let stage = nonempty(&self.stage)
            .map(|s| {
                StageName::parse(s).ok_or_else(|| {
                    ApiError::field("stage", format!("unknown stage `{s}` (plan, code, test)"))
                })
            })
            .transpose()?;
        let status = nonempty(&self.status)
            .map(|s| {
                StatusClass::parse(s).ok_or_else(|| {
                    ApiError::field(
                        "status",
                        format!("unknown status class `{s}` (failed, done, review, queued, running, stuck)"),
                    )
                })
            })
            .transpose()?;
        let service = nonempty(&self.service)
            .map(|s| {
                Service::parse(s).ok_or_else(|| {
                    ApiError::field(
                        "service",
                        format!("unknown service `{s}` (pfactory, aifactory, tfactory)"),
                    )
                })
            })
            .transpose()?;
        Ok(ListQuery {
            stage,
            status,
            service,
            text: nonempty(&self.q).map(str::to_owned),
            limit: page.limit,
            cursor: page.cursor,
            stalled_before,
        })
    }
}

/// List WorkItems, newest change first.
#[utoipa::path(
    get,
    path = "/api/workitems",
    tag = "workitems",
    operation_id = "listWorkItems",
    params(ListParams, Paging<ListPages>),
    responses(
        (status = 200, description = "A page of work items", body = WorkItemList),
        (status = 422, description = "A bad filter, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
    page: Paging<ListPages>,
) -> Result<Json<WorkItemList>, ApiError> {
    caller.require(Scope::Read)?;
    let now = state.clock.now();
    let query = params.into_query(page, now - state.stall_deadline)?;
    let page = state.work.list(&caller.tenant, &query).await?;
    let items = page
        .items
        .into_iter()
        .map(|mut item| {
            item.refresh_liveness(now, state.stall_deadline);
            dto::WorkItem::from(&item)
        })
        .collect();
    Ok(Json(WorkItemList {
        count: page.count,
        items,
        next_cursor: page.next_cursor.map(|c| c.encode()),
        stalled_count: page.stalled_count,
        unreadable: page.unreadable,
    }))
}

fn check_key(key: &str) -> Result<(), ApiError> {
    CorrelationKey::parse(key)
        .map(|_| ())
        .map_err(|e| ApiError::field("correlation_key", format!("correlation key {e}")))
}

/// Get one WorkItem by its key or an alias.
#[utoipa::path(
    get,
    path = "/api/workitems/{correlationKey}",
    tag = "workitems",
    operation_id = "getWorkItem",
    params(("correlationKey" = String, Path, description = "The item's key or an alias")),
    responses(
        (status = 200, description = "The work item", body = dto::WorkItem),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Not a correlation key, or a bad limit or cursor, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<dto::WorkItem>, ApiError> {
    caller.require(Scope::Read)?;
    check_key(&key)?;
    let mut item = state
        .work
        .get(&caller.tenant, &key)
        .await?
        .ok_or_else(|| ApiError::no_item(&key))?;
    item.refresh_liveness(state.clock.now(), state.stall_deadline);
    Ok(Json(dto::WorkItem::from(&item)))
}

/// Timeline pages: `limit` events (default and at most 1000) and its cursor.
pub struct TimelinePages;

impl PageRule for TimelinePages {
    const DEFAULT: u32 = MAX_TIMELINE_PAGE;
    const MAX: u32 = MAX_TIMELINE_PAGE;
    const ABOUT: &'static str = "Events per page";
    const CURSOR_ABOUT: Option<&'static str> =
        Some("The `next_cursor` of the previous page (opaque; URL-encode it).");
    type Cursor = TimelineCursor;
    fn decode(text: &str) -> Option<TimelineCursor> {
        TimelineCursor::decode(text)
    }
}

/// One recorded event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    /// Arrival sequence.
    pub seq: i64,
    /// The event's id, if it had one.
    pub id: Option<String>,
    /// The sender.
    pub service: String,
    /// The sender's task.
    pub task_id: String,
    /// The status as sent.
    pub status: String,
    /// The event's time.
    pub time: DateTime<Utc>,
    /// When CFactory received it.
    pub received_at: DateTime<Utc>,
    /// The event JSON exactly as received, unknown fields included.
    #[schema(value_type = Object)]
    pub event: Box<RawValue>,
}

/// A page of an item's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// The item's canonical key.
    pub correlation_key: String,
    /// Events on the item in all.
    pub event_count: u64,
    /// This page, oldest first.
    pub events: Vec<TimelineEvent>,
    /// Seconds from the earliest to the latest event.
    pub span_seconds: i64,
    /// The next page's cursor, or null on the last page.
    pub next_cursor: Option<String>,
    /// Events of this page left out because their stored row cannot be read (counted in
    /// `event_count`; the log and `cfactory doctor` name each).
    pub unreadable: u64,
}

/// The timeline of one WorkItem.
#[utoipa::path(
    get,
    path = "/api/workitems/{correlationKey}/timeline",
    tag = "workitems",
    operation_id = "getTimeline",
    params(("correlationKey" = String, Path, description = "The item's key or an alias"), Paging<TimelinePages>),
    responses(
        (status = 200, description = "The item's events, oldest first; those whose stored row cannot be read are left out and counted in `unreadable`", body = TimelinePage),
        (status = 404, description = "No such item for this tenant", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Not a correlation key, or a bad limit or cursor, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    page: Paging<TimelinePages>,
) -> Result<Json<TimelinePage>, ApiError> {
    caller.require(Scope::Read)?;
    check_key(&key)?;
    let page = state
        .work
        .timeline(&caller.tenant, &key, page.limit, page.cursor.as_ref())
        .await?
        .ok_or_else(|| ApiError::no_item(&key))?;
    let mut events = Vec::with_capacity(page.events.len());
    let mut unreadable = page.unreadable;
    for e in page.events {
        let event = match RawValue::from_string(e.raw) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(tenant = %caller.tenant, key = %page.correlation_key,
                    seq = e.seq, %err, "a stored event is not JSON; left out of the timeline");
                unreadable += 1;
                continue;
            }
        };
        events.push(TimelineEvent {
            seq: e.seq,
            id: e.event_id.map(|i| i.as_str().to_owned()),
            service: e.service.as_str().to_owned(),
            task_id: e.task_id,
            status: e.status,
            time: e.time,
            received_at: e.received_at,
            event,
        });
    }
    Ok(Json(TimelinePage {
        correlation_key: page.correlation_key.to_string(),
        event_count: page.event_count,
        events,
        span_seconds: page.span_seconds,
        next_cursor: page.next_cursor.map(|c| c.encode()),
        unreadable,
    }))
}

/// Usage grouping.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// service (default), project, workitem or model.
    group_by: Option<String>,
}

/// One usage group.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRowDoc {
    /// The group (null when events did not say).
    pub key: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Metered dollars: spend.
    pub cost_usd: f64,
    /// Dollars subscription or local workers reported: shown apart, never spend.
    pub notional_cost_usd: f64,
}

/// Usage summed per group, largest first.
#[utoipa::path(
    get,
    path = "/api/usage",
    tag = "usage",
    operation_id = "getUsage",
    params(UsageParams),
    responses(
        (status = 200, description = "Usage rows, largest total first", body = Vec<UsageRowDoc>),
        (status = 422, description = "An unknown group_by", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<UsageParams>,
) -> Result<Json<Vec<UsageRow>>, ApiError> {
    caller.require(Scope::Read)?;
    let group_by = match nonempty(&params.group_by) {
        None => UsageGroupBy::Service,
        Some(g) => UsageGroupBy::parse(g).ok_or_else(|| {
            ApiError::field(
                "group_by",
                format!("unknown group_by `{g}` (service, project, workitem, model)"),
            )
        })?,
    };
    Ok(Json(state.work.usage(&caller.tenant, group_by).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::Unprocessable { field, .. } => field,
            _ => None,
        }
    }

    fn page(query: &str) -> Result<Paging<ListPages>, ApiError> {
        Paging::from_uri(&format!("/api/workitems?{query}").parse().unwrap())
    }

    #[test]
    fn list_params_parse_or_name_the_bad_one() {
        let now = Utc::now();
        let q = ListParams {
            stage: Some("code".into()),
            status: Some("running".into()),
            ..ListParams::default()
        }
        .into_query(page("limit=9999").unwrap(), now)
        .unwrap();
        assert_eq!(q.stage, Some(StageName::CODE));
        assert_eq!(q.status, Some(StatusClass::Running));
        assert_eq!(q.limit, MAX_LIST_LIMIT);
        let q = ListParams::default()
            .into_query(page("").unwrap(), now)
            .unwrap();
        assert_eq!((q.limit, q.cursor), (DEFAULT_LIST_LIMIT, None));
        for (params, field) in [
            (
                ListParams {
                    status: Some("green".into()),
                    ..ListParams::default()
                },
                "status",
            ),
            (
                ListParams {
                    stage: Some("deploy".into()),
                    ..ListParams::default()
                },
                "stage",
            ),
        ] {
            assert_eq!(
                field_of(params.into_query(Paging::first(), now).unwrap_err()).as_deref(),
                Some(field)
            );
        }
        for (query, field) in [("limit=-1", "limit"), ("cursor=zz", "cursor")] {
            assert_eq!(
                field_of(page(query).unwrap_err()).as_deref(),
                Some(field),
                "{query}"
            );
        }
    }
}

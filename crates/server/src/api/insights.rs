//! Insights: rollups, tokens and cost, anomalies, needs-you, search, the activity feed
//! and the insight cards.
//! Thin: each handler asks the read model (an [`InsightSource`], see
//! [`crate::readmodel`]) with the clock's `now`; the activity feed pages the store's
//! events.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use cfactory_domain::insights::{
    Anomaly, CostRollup, DailyPoint, NeedsYou, Rollups, SearchHit, Window,
};
use cfactory_domain::ports::{InsightSource, MAX_ACTIVITY_PAGE, Scope, StoreError};
use cfactory_domain::{CorrelationKey, Service};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::{NoCursor, PageRule, Paging, seq_cursor};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::readmodel::{ReadModel, read};
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rollups", get(rollups))
        .route("/api/tokens", get(tokens))
        .route("/api/anomalies", get(anomalies))
        .route("/api/needs-you", get(needs))
        .route("/api/needs-you/count", get(needs_count))
        .route("/api/search", get(search))
        .route("/api/activity", get(activity))
        .route("/api/insights", get(cards))
}

/// Breakdowns of a rollup are cut to their largest `top` entries (default 25, at most
/// the read model's [`KEEP_TOP`](crate::readmodel::KEEP_TOP)); the shared paging rule
/// under another name.
pub struct TopEntries;

impl PageRule for TopEntries {
    const FIELD: &'static str = "top";
    const DEFAULT: u32 = 25;
    const MAX: u32 = crate::readmodel::KEEP_TOP as u32;
    const ABOUT: &'static str = "Largest entries kept per breakdown";
    type Cursor = NoCursor;
}

/// How many anomalies the list answers (default 200, at most 5000).
pub struct AnomalyPages;

impl PageRule for AnomalyPages {
    const DEFAULT: u32 = 200;
    const MAX: u32 = 5_000;
    const ABOUT: &'static str = "At most this many; `count` is the total";
    type Cursor = NoCursor;
}

/// How many needs-you items the list answers (default 100, at most 5000).
pub struct NeedsPages;

impl PageRule for NeedsPages {
    const DEFAULT: u32 = 100;
    const MAX: u32 = 5_000;
    const ABOUT: &'static str = "At most this many; `count` is the total";
    type Cursor = NoCursor;
}

/// How many search results are answered (default 20, at most 200).
pub struct SearchPages;

impl PageRule for SearchPages {
    const DEFAULT: u32 = 20;
    const MAX: u32 = 200;
    const ABOUT: &'static str = "At most this many results";
    type Cursor = NoCursor;
}

/// Activity feed pages (default 50, at most 500), older than the cursor.
pub struct ActivityPages;

impl PageRule for ActivityPages {
    const DEFAULT: u32 = 50;
    const MAX: u32 = MAX_ACTIVITY_PAGE;
    const CURSOR_ABOUT: Option<&'static str> = Some("The previous page's `next_cursor`.");
    type Cursor = i64;
    fn decode(text: &str) -> Option<i64> {
        seq_cursor(text)
    }
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Some(day.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    Err(ApiError::field(
        field,
        format!("`{field}` must be an RFC 3339 time or a YYYY-MM-DD date"),
    ))
}

fn insights<'s>(state: &'s AppState, caller: &Caller) -> Result<&'s ReadModel, ApiError> {
    caller.require(Scope::Read)?;
    Ok(&state.model)
}

/// The time window of a rollup.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Start of the window (RFC 3339 or YYYY-MM-DD), inclusive.
    since: Option<String>,
    /// End of the window (RFC 3339 or YYYY-MM-DD), exclusive.
    until: Option<String>,
}

impl WindowParams {
    fn window(&self) -> Result<Window, ApiError> {
        let since = parse_time("since", self.since.as_deref())?;
        let until = parse_time("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(ApiError::field("until", "`until` must be after `since`"));
        }
        Ok(Window { since, until })
    }
}

impl CostCounts {
    /// How many entries each breakdown of `cost` has in all.
    fn of(cost: &CostRollup) -> Self {
        let n = cost.entries;
        CostCounts {
            by_service: n.by_service,
            by_model: n.by_model,
            by_provider: n.by_provider,
            by_workitem: n.by_workitem,
            by_worker: n.by_worker,
            by_billing_mode: n.by_billing_mode,
        }
    }
}

/// How many entries each breakdown had before it was cut to `top`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostCounts {
    by_service: usize,
    by_model: usize,
    by_provider: usize,
    by_workitem: usize,
    by_worker: usize,
    by_billing_mode: usize,
}

/// Rollups with the breakdown sizes.
#[derive(Debug, Serialize)]
pub struct RollupsBody {
    #[serde(flatten)]
    rollups: Rollups,
    /// Entries per cost breakdown before the cut to `top`.
    cost_group_counts: CostCounts,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// Counts, latency, lead time, cost and the daily series over a window.
#[utoipa::path(
    get,
    path = "/api/rollups",
    tag = "insights",
    operation_id = "getRollups",
    params(WindowParams, Paging<TopEntries>),
    responses(
        (status = 200, description = "Rollups over the window", body = Object),
        (status = 422, description = "A bad window, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn rollups(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<WindowParams>,
    top: Paging<TopEntries>,
) -> Result<Json<RollupsBody>, ApiError> {
    let window = params.window()?;
    let model = insights(&state, &caller)?;
    let full = model
        .rollups(&caller.tenant, window, state.clock.now())
        .await?;
    Ok(Json(RollupsBody {
        rollups: full.cut(top.limit as usize),
        cost_group_counts: CostCounts::of(&full.cost),
        unreadable: model.unreadable(&caller.tenant).await?,
    }))
}

/// Cost and tokens alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensBody {
    #[schema(value_type = Object)]
    window: Window,
    #[schema(value_type = Object)]
    cost: CostRollup,
    #[schema(value_type = Vec<Object>)]
    daily: Vec<DailyPoint>,
    cost_group_counts: CostCounts,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// Cost and tokens by service, model, provider, work item, worker and billing mode, with
/// the daily series. Unmetered modes carry tokens and never dollars; a service that never
/// sent usage reads `instrumented: false`.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "insights",
    operation_id = "getTokens",
    params(WindowParams, Paging<TopEntries>),
    responses(
        (status = 200, description = "Cost and tokens over the window", body = TokensBody),
        (status = 422, description = "A bad window, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<WindowParams>,
    top: Paging<TopEntries>,
) -> Result<Json<TokensBody>, ApiError> {
    let Json(body) = rollups(State(state), caller, Query(params), top).await?;
    let RollupsBody {
        rollups,
        cost_group_counts,
        unreadable,
    } = body;
    Ok(Json(TokensBody {
        window: rollups.window,
        cost: rollups.cost,
        daily: rollups.daily,
        cost_group_counts,
        unreadable,
    }))
}

/// Filters of the anomaly list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyParams {
    /// Only this kind (e.g. `stalled`, `cost_spike`).
    kind: Option<String>,
    /// Only this severity or louder: `info`, `warning`, `high`.
    severity: Option<String>,
    /// Only this item (its canonical key).
    correlation_key: Option<String>,
}

/// Anomalies, most severe first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyList {
    /// How many match in all.
    count: usize,
    /// The first `limit` of them.
    #[schema(value_type = Vec<Object>)]
    anomalies: Vec<std::sync::Arc<Anomaly>>,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// Failures, handback loops, stalls, unproven passes, injection findings, correlation
/// conflicts, missing event ids, and cost and latency spikes, each with its evidence.
#[utoipa::path(
    get,
    path = "/api/anomalies",
    tag = "insights",
    operation_id = "listAnomalies",
    params(AnomalyParams, Paging<AnomalyPages>),
    responses(
        (status = 200, description = "Anomalies, most severe first", body = AnomalyList),
        (status = 422, description = "A bad filter, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn anomalies(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AnomalyParams>,
    page: Paging<AnomalyPages>,
) -> Result<Json<AnomalyList>, ApiError> {
    let limit = page.limit as usize;
    let kind = params
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let severity = match params
        .severity
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<cfactory_domain::insights::Severity>(serde_json::json!(s))
                .map_err(|_| {
                    ApiError::field(
                        "severity",
                        format!("unknown severity `{s}` (info, warning, high)"),
                    )
                })?,
        ),
    };
    let key = params
        .correlation_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            CorrelationKey::parse(k)
                .map_err(|e| ApiError::field("correlation_key", format!("correlation key {e}")))
        })
        .transpose()?;
    let model = insights(&state, &caller)?;
    let found = model
        .anomalies(&caller.tenant, key.as_ref(), state.clock.now())
        .await?;
    let unreadable = model.unreadable(&caller.tenant).await?;
    let matching = || {
        found
            .iter()
            .filter(|a| kind.is_none_or(|k| a.kind.as_str() == k))
            .filter(|a| severity.is_none_or(|s| a.severity >= s))
    };
    Ok(Json(AnomalyList {
        count: matching().count(),
        anomalies: matching().take(limit).cloned().collect(),
        unreadable,
    }))
}

/// Items waiting on a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct NeedsList {
    /// How many in all.
    count: usize,
    /// The most urgent first.
    #[schema(value_type = Vec<Object>)]
    items: Vec<NeedsYou>,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// Items awaiting a human decision, each with its reasons: a stage in review, a plan
/// awaiting approval, a stalled stage, an unproven pass, a flagged injection scan.
#[utoipa::path(
    get,
    path = "/api/needs-you",
    tag = "insights",
    operation_id = "needsYou",
    params(Paging<NeedsPages>),
    responses(
        (status = 200, description = "Items that need a person", body = NeedsList),
        (status = 422, description = "A bad limit, named in `field`", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn needs(
    State(state): State<AppState>,
    caller: Caller,
    page: Paging<NeedsPages>,
) -> Result<Json<NeedsList>, ApiError> {
    let limit = page.limit as usize;
    let model = insights(&state, &caller)?;
    let mut items = model.needs_you(&caller.tenant, state.clock.now()).await?;
    let count = items.len();
    items.truncate(limit);
    Ok(Json(NeedsList {
        count,
        items,
        unreadable: model.unreadable(&caller.tenant).await?,
    }))
}

/// How many items need a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    /// The count.
    count: usize,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// The needs-you count alone (for a badge).
#[utoipa::path(
    get,
    path = "/api/needs-you/count",
    tag = "insights",
    operation_id = "needsYouCount",
    responses((status = 200, description = "How many items need a person", body = Count)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn needs_count(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Count>, ApiError> {
    let model = insights(&state, &caller)?;
    let count = model
        .needs_you(&caller.tenant, state.clock.now())
        .await?
        .len();
    Ok(Json(Count {
        count,
        unreadable: model.unreadable(&caller.tenant).await?,
    }))
}

/// A search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text: a key, alias, title words, repo, branch, PR number, task or spec id.
    q: Option<String>,
}

/// Search results, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The query as searched.
    query: String,
    /// Results returned.
    count: usize,
    /// Exact key matches first, then prefixes, then substrings; each says what matched.
    #[schema(value_type = Vec<Object>)]
    results: Vec<SearchHit>,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// Ranked search over keys, aliases, titles, repos, branches, PR numbers, task and spec ids.
#[utoipa::path(
    get,
    path = "/api/search",
    tag = "insights",
    operation_id = "search",
    params(SearchParams, Paging<SearchPages>),
    responses(
        (status = 200, description = "Results, best first", body = SearchResults),
        (status = 422, description = "No query", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SearchParams>,
    page: Paging<SearchPages>,
) -> Result<Json<SearchResults>, ApiError> {
    let query = params
        .q
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if query.is_empty() {
        return Err(ApiError::field(
            "q",
            "`q` is required: the text to search for",
        ));
    }
    if query.chars().count() > 200 {
        return Err(ApiError::field("q", "`q` is at most 200 characters"));
    }
    let limit = page.limit as usize;
    let model = insights(&state, &caller)?;
    let results = model.search(&caller.tenant, &query, limit).await?;
    Ok(Json(SearchResults {
        query,
        count: results.len(),
        results,
        unreadable: model.unreadable(&caller.tenant).await?,
    }))
}

/// One event of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityItem {
    /// Arrival order; newer is larger.
    seq: i64,
    /// The item the event is on (its key after any merge).
    correlation_key: String,
    /// The item's title, when it has one.
    title: Option<String>,
    /// The event's id, if it had one.
    id: Option<String>,
    /// The sender.
    #[schema(value_type = String)]
    service: Service,
    /// The sender's task.
    task_id: String,
    /// The status as sent.
    status: String,
    /// The event's own time.
    time: DateTime<Utc>,
    /// When CFactory received it.
    received_at: DateTime<Utc>,
}

/// The feed page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first.
    items: Vec<ActivityItem>,
    /// The next (older) page's cursor, or null on the last page.
    next_cursor: Option<String>,
    /// Events of this page left out because their stored row cannot be read (the log
    /// names each).
    unreadable: u64,
}

/// The event feed across all items, newest arrival first.
#[utoipa::path(
    get,
    path = "/api/activity",
    tag = "insights",
    operation_id = "activity",
    params(Paging<ActivityPages>),
    responses(
        (status = 200, description = "A page of the feed", body = ActivityPage),
        (status = 422, description = "A bad limit or cursor", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    Paging {
        limit,
        cursor: before,
        ..
    }: Paging<ActivityPages>,
) -> Result<Json<ActivityPage>, ApiError> {
    caller.require(Scope::Read)?;
    let page = state
        .work
        .activity(&caller.tenant, limit + 1, before)
        .await?;
    // One row more than the page was asked for, to know whether another page follows;
    // rows left out as unreadable count as rows.
    let more = page.scanned() > limit as usize;
    let past = more.then(|| {
        page.entries
            .iter()
            .map(|a| a.entry.seq)
            .chain(page.unreadable.iter().map(|(seq, _)| *seq))
            .min()
            .unwrap_or(i64::MIN)
    });
    let on_page = |seq: i64| past.is_none_or(|p| seq > p);
    let unreadable: Vec<i64> = page
        .unreadable
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|seq| on_page(*seq))
        .collect();
    let titles = state.model.tenant(&caller.tenant).await.ok();
    let titles = titles.as_deref().map(read);
    let items: Vec<ActivityItem> = page
        .entries
        .into_iter()
        .filter(|a| on_page(a.entry.seq))
        .map(|a| ActivityItem {
            seq: a.entry.seq,
            title: titles
                .as_ref()
                .and_then(|v| v.fleet.get(&a.correlation_key))
                .and_then(|i| i.title.clone()),
            correlation_key: a.correlation_key.to_string(),
            id: a.entry.event_id.map(|id| id.to_string()),
            service: a.entry.service,
            task_id: a.entry.task_id,
            status: a.entry.status,
            time: a.entry.time,
            received_at: a.entry.received_at,
        })
        .collect();
    let next_cursor = items
        .iter()
        .map(|i| i.seq)
        .chain(unreadable.iter().copied())
        .min()
        .filter(|_| more)
        .map(|seq| seq.to_string());
    Ok(Json(ActivityPage {
        items,
        next_cursor,
        unreadable: unreadable.len() as u64,
    }))
}

/// One insight card; see [`cfactory_domain::insights::cards`].
#[derive(Debug, Serialize, ToSchema)]
pub struct Card {
    /// Stable per finding: `anomaly:{kind}:{key}`, `needs_you` or `spend`.
    id: String,
    /// An anomaly kind, `needs_you` or `spend`.
    kind: String,
    /// `info`, `warning` or `high`.
    #[schema(value_type = String)]
    severity: cfactory_domain::insights::Severity,
    /// One line.
    title: String,
    /// A sentence with the figures.
    detail: String,
    /// The item it is about, when one.
    #[schema(value_type = Option<String>)]
    correlation_key: Option<CorrelationKey>,
    /// The proposal that fits the item's state, when one does.
    suggested: Option<CardSuggestion>,
}

/// A proposal a card suggests.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSuggestion {
    /// The action kind to propose.
    #[schema(value_type = String)]
    kind: cfactory_domain::actions::ActionKind,
    /// For which item.
    #[schema(value_type = String)]
    correlation_key: CorrelationKey,
    /// The button's text.
    label: String,
}

impl From<cfactory_domain::insights::InsightCard> for Card {
    fn from(c: cfactory_domain::insights::InsightCard) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            severity: c.severity,
            title: c.title,
            detail: c.detail,
            correlation_key: c.correlation_key,
            suggested: c.suggested.map(|s| CardSuggestion {
                kind: s.kind,
                correlation_key: s.correlation_key,
                label: s.label,
            }),
        }
    }
}

/// The insight cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardList {
    /// Anomaly cards (loudest first), then needs-you, then spend.
    cards: Vec<Card>,
    /// Items left out because their stored state cannot be read (the log names each).
    unreadable: u64,
}

/// The few things most worth a look now, from anomalies, needs-you and rollups, each
/// with the proposal its item's state allows where one fits. No model involved.
#[utoipa::path(
    get,
    path = "/api/insights",
    tag = "insights",
    operation_id = "insightCards",
    responses((status = 200, description = "Insight cards", body = CardList)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn cards(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CardList>, ApiError> {
    let model = insights(&state, &caller)?;
    let now = state.clock.now();
    let anomalies = model.anomalies(&caller.tenant, None, now).await?;
    let needs = model.needs_you(&caller.tenant, now).await?;
    let rollups = model.rollups(&caller.tenant, Window::all(), now).await?;
    let mut available = std::collections::BTreeMap::new();
    for a in cfactory_domain::insights::cards::headline(&anomalies) {
        if cfactory_domain::insights::cards::suggestions_for(a.kind).is_empty()
            || available.contains_key(&a.correlation_key)
        {
            continue;
        }
        match state
            .actions
            .available(&caller.tenant, a.correlation_key.as_str())
            .await
        {
            Ok(Some(found)) => {
                available.insert(a.correlation_key.clone(), found);
            }
            Ok(None) => {}
            // With the store away the cards still come from memory, without proposals
            // (confirming one would need the store anyway).
            Err(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "insight cards without proposals: the store is unavailable");
                available.clear();
                break;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let cards = cfactory_domain::insights::cards::cards(&anomalies, &needs, &rollups, &available)
        .into_iter()
        .map(Card::from)
        .collect();
    Ok(Json(CardList {
        cards,
        unreadable: model.unreadable(&caller.tenant).await?,
    }))
}

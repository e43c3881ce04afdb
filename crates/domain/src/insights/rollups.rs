//! Rollups: counts, latency, lead time, cost and tokens over a time window, plus a daily
//! series. Pure: the caller passes the items and the moment `now`.
//!
//! Percentiles are nearest-rank: the value at rank `ceil(p/100 · n)` of the sorted
//! samples, so every reported figure is a latency that really happened.
//!
//! What the window selects: an item counts (stage, class, events, span) when its
//! activity `[created_at, updated_at]` overlaps the window; a latency sample when its
//! terminal event falls in it; a lead time when its terminal test event does; usage
//! when its latest report (`TaskUsage::at`) does. Daily points use the same times as UTC
//! dates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::billing::{Contribution, contributions};
use crate::event::Service;
use crate::taxonomy::StatusClass;
use crate::workitem::{StageName, WorkItem};

/// A time window; `None` leaves that side open. `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start, inclusive.
    pub since: Option<DateTime<Utc>>,
    /// End, exclusive.
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// The whole history.
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `t` falls in the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// Whether the span `[from, to]` overlaps the window.
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| to >= s) && self.until.is_none_or(|u| from < u)
    }
}

/// Distribution of durations in seconds. Empty when `samples` is 0 (figures `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationStats {
    /// Median, nearest-rank.
    pub p50_seconds: Option<f64>,
    /// 95th percentile, nearest-rank.
    pub p95_seconds: Option<f64>,
    /// Longest.
    pub max_seconds: Option<f64>,
    /// How many durations.
    pub samples: u64,
}

impl DurationStats {
    /// Stats of `seconds` (any order).
    pub fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        Self {
            p50_seconds: nearest_rank(&seconds, 50.0),
            p95_seconds: nearest_rank(&seconds, 95.0),
            max_seconds: seconds.last().copied(),
            samples: seconds.len() as u64,
        }
    }
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of sorted samples.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Cost and tokens of one group (a service, model, provider, WorkItem, worker or billing
/// mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostBucket {
    /// The group's name (`unknown` when the usage did not say).
    pub key: String,
    /// Whether usage was ever reported for it; `false` means no data, not zero.
    pub instrumented: bool,
    /// Whether any of its usage counted dollars (metered modes, or no mode with a cost).
    pub metered: bool,
    /// Dollars counted; `null` when nothing was metered, never a notional figure.
    pub cost_usd: Option<f64>,
    /// Prompt tokens (task-level: workers report only a total).
    pub input_tokens: Option<u64>,
    /// Completion tokens (task-level).
    pub output_tokens: Option<u64>,
    /// All tokens, metered or not.
    pub total_tokens: Option<u64>,
    /// Usage records (task or worker slices) in the group.
    pub records: u64,
}

impl CostBucket {
    fn empty(key: String) -> Self {
        Self {
            key,
            instrumented: true,
            metered: false,
            cost_usd: None,
            input_tokens: Some(0),
            output_tokens: Some(0),
            total_tokens: Some(0),
            records: 0,
        }
    }

    fn uninstrumented(key: String) -> Self {
        Self {
            instrumented: false,
            input_tokens: None,
            output_tokens: None,
            total_tokens: None,
            ..Self::empty(key)
        }
    }

    fn add(&mut self, c: &Contribution<'_>) {
        let add = |f: &mut Option<u64>, n: u64| *f = Some(f.unwrap_or(0) + n);
        add(&mut self.input_tokens, c.input_tokens);
        add(&mut self.output_tokens, c.output_tokens);
        add(&mut self.total_tokens, c.total_tokens);
        self.records += 1;
        if let Some(d) = c.cost_usd {
            self.metered = true;
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + d);
        }
    }
}

/// Cost and tokens, whole and broken down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRollup {
    /// Everything in the window.
    pub total: CostBucket,
    /// Per service; every stage service is listed, `instrumented: false` if it never
    /// sent usage.
    pub by_service: Vec<CostBucket>,
    /// Per model.
    pub by_model: Vec<CostBucket>,
    /// Per LLM provider.
    pub by_provider: Vec<CostBucket>,
    /// Per WorkItem (its correlation key).
    pub by_workitem: Vec<CostBucket>,
    /// Per worker id.
    pub by_worker: Vec<CostBucket>,
    /// Per billing mode (`unspecified` when none was sent).
    pub by_billing_mode: Vec<CostBucket>,
}

/// One UTC day of the daily series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyPoint {
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Dollars counted that day (usage dated by its latest report).
    pub cost_usd: f64,
    /// Tokens that day.
    pub total_tokens: u64,
    /// Lead times of items whose test stage ended that day.
    pub lead_time: DurationStats,
}

/// Everything the rollups endpoint answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollups {
    /// The window asked for.
    pub window: Window,
    /// The moment the rollups were computed for.
    pub generated_at: DateTime<Utc>,
    /// Items active in the window.
    pub items: u64,
    /// Events on those items (their `event_count`s).
    pub events_total: u64,
    /// Items per furthest started stage (`plan`, `code`, `test`, `none`).
    pub by_stage: BTreeMap<String, u64>,
    /// Items per status class of the furthest started stage (plus `none`).
    pub by_status_class: BTreeMap<String, u64>,
    /// First event to terminal event, per stage.
    pub latency_by_stage: BTreeMap<String, DurationStats>,
    /// The same, per service.
    pub latency_by_service: BTreeMap<String, DurationStats>,
    /// Per item, first event to its terminal test event.
    pub lead_time: DurationStats,
    /// Per item, first event to latest event.
    pub span: DurationStats,
    /// Cost and tokens.
    pub cost: CostRollup,
    /// Daily cost and lead time, oldest first.
    pub daily: Vec<DailyPoint>,
}

const CLASSES: [StatusClass; 6] = [
    StatusClass::Failed,
    StatusClass::Done,
    StatusClass::Review,
    StatusClass::Queued,
    StatusClass::Running,
    StatusClass::Stuck,
];

/// Seconds from `from` to `to`, never negative, to the millisecond.
pub(crate) fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0)) as f64 / 1000.0
}

/// An item's lead time: first event to its terminal test event, if the test stage ended.
pub fn lead_time_seconds(item: &WorkItem) -> Option<f64> {
    let test = item.stages.test.as_ref()?;
    test.status_class
        .is_terminal()
        .then(|| seconds_between(item.created_at, test.at))
}

/// An item's span: first event to latest event.
pub fn span_seconds(item: &WorkItem) -> f64 {
    seconds_between(item.created_at, item.updated_at)
}

fn sorted_buckets(map: BTreeMap<String, CostBucket>) -> Vec<CostBucket> {
    let mut v: Vec<CostBucket> = map.into_values().collect();
    v.sort_by(|a, b| {
        b.cost_usd
            .unwrap_or(-1.0)
            .total_cmp(&a.cost_usd.unwrap_or(-1.0))
            .then(b.total_tokens.cmp(&a.total_tokens))
            .then_with(|| a.key.cmp(&b.key))
    });
    v
}

fn bucket<'m>(map: &'m mut BTreeMap<String, CostBucket>, key: &str) -> &'m mut CostBucket {
    map.entry(key.to_owned())
        .or_insert_with(|| CostBucket::empty(key.to_owned()))
}

#[derive(Default)]
struct Day {
    cost_usd: f64,
    total_tokens: u64,
    lead: Vec<f64>,
}

impl Rollups {
    /// A copy with the model, provider, work-item and worker breakdowns cut to their
    /// `top` largest entries (the lists are largest first); the rest is copied whole.
    pub fn cut(&self, top: usize) -> Rollups {
        let keep = |list: &[CostBucket]| list.iter().take(top).cloned().collect();
        Rollups {
            cost: CostRollup {
                total: self.cost.total.clone(),
                by_service: self.cost.by_service.clone(),
                by_model: keep(&self.cost.by_model),
                by_provider: keep(&self.cost.by_provider),
                by_workitem: keep(&self.cost.by_workitem),
                by_worker: keep(&self.cost.by_worker),
                by_billing_mode: self.cost.by_billing_mode.clone(),
            },
            window: self.window,
            generated_at: self.generated_at,
            items: self.items,
            events_total: self.events_total,
            by_stage: self.by_stage.clone(),
            by_status_class: self.by_status_class.clone(),
            latency_by_stage: self.latency_by_stage.clone(),
            latency_by_service: self.latency_by_service.clone(),
            lead_time: self.lead_time,
            span: self.span,
            daily: self.daily.clone(),
        }
    }

    /// Computes the rollups of `items` over `window` at the moment `now`.
    pub fn compute<'a>(
        items: impl IntoIterator<Item = &'a WorkItem>,
        window: Window,
        now: DateTime<Utc>,
    ) -> Self {
        let mut by_stage: BTreeMap<String, u64> = StageName::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .chain([("none".to_owned(), 0)])
            .collect();
        let mut by_class: BTreeMap<String, u64> = CLASSES
            .iter()
            .map(|c| (c.as_str().to_owned(), 0))
            .chain([("none".to_owned(), 0)])
            .collect();
        let mut stage_lat: BTreeMap<StageName, Vec<f64>> = BTreeMap::new();
        let (mut lead, mut span) = (Vec::new(), Vec::new());
        let (mut count, mut events) = (0u64, 0u64);
        let mut total = CostBucket::empty("all".to_owned());
        let mut groups: [BTreeMap<String, CostBucket>; 6] = Default::default();
        let mut instrumented: BTreeMap<Service, bool> = BTreeMap::new();
        // Keyed by the date itself: formatting happens once per day, not per record.
        let mut days: BTreeMap<chrono::NaiveDate, Day> = BTreeMap::new();
        let day_of = |t: DateTime<Utc>| t.date_naive();

        for item in items {
            for task in &item.usage_by_task {
                instrumented.insert(task.service, true);
                if !window.contains(task.at) {
                    continue;
                }
                for c in contributions(task) {
                    total.add(&c);
                    let keys = [
                        c.service.as_str(),
                        c.model.unwrap_or("unknown"),
                        c.provider.unwrap_or("unknown"),
                        item.correlation_key.as_str(),
                        c.worker.unwrap_or("unknown"),
                        c.billing_mode.unwrap_or("unspecified"),
                    ];
                    for (map, key) in groups.iter_mut().zip(keys) {
                        bucket(map, key).add(&c);
                    }
                    let day = days.entry(day_of(c.at)).or_default();
                    day.cost_usd += c.cost_usd.unwrap_or(0.0);
                    day.total_tokens += c.total_tokens;
                }
            }
            for (name, stage) in item.stages.iter() {
                if stage.status_class.is_terminal() && window.contains(stage.at) {
                    stage_lat
                        .entry(name)
                        .or_default()
                        .push(seconds_between(stage.started_at, stage.at));
                }
            }
            if let (Some(secs), Some(test)) = (lead_time_seconds(item), &item.stages.test)
                && window.contains(test.at)
            {
                lead.push(secs);
                days.entry(day_of(test.at)).or_default().lead.push(secs);
            }
            if !window.overlaps(item.created_at, item.updated_at) {
                continue;
            }
            count += 1;
            events += item.event_count;
            span.push(span_seconds(item));
            let active = item.stages.active();
            *by_stage
                .entry(active.map_or("none", |(n, _)| n.as_str()).to_owned())
                .or_default() += 1;
            *by_class
                .entry(
                    active
                        .map_or("none", |(_, s)| s.status_class.as_str())
                        .to_owned(),
                )
                .or_default() += 1;
        }

        let [
            by_service,
            by_model,
            by_provider,
            by_workitem,
            by_worker,
            by_billing_mode,
        ] = groups;
        let mut by_service = by_service;
        for service in [Service::Pfactory, Service::Aifactory, Service::Tfactory] {
            let key = service.as_str().to_owned();
            if !instrumented.contains_key(&service) {
                by_service.insert(key.clone(), CostBucket::uninstrumented(key));
            } else {
                by_service
                    .entry(key.clone())
                    .or_insert_with(|| CostBucket::empty(key));
            }
        }
        let mut latency_by_stage = BTreeMap::new();
        let mut latency_by_service = BTreeMap::new();
        for name in StageName::ALL {
            let stats = DurationStats::of(stage_lat.remove(&name).unwrap_or_default());
            latency_by_stage.insert(name.as_str().to_owned(), stats);
            latency_by_service.insert(name.service().as_str().to_owned(), stats);
        }
        Self {
            window,
            generated_at: now,
            items: count,
            events_total: events,
            by_stage,
            by_status_class: by_class,
            latency_by_stage,
            latency_by_service,
            lead_time: DurationStats::of(lead),
            span: DurationStats::of(span),
            cost: CostRollup {
                total,
                by_service: sorted_buckets(by_service),
                by_model: sorted_buckets(by_model),
                by_provider: sorted_buckets(by_provider),
                by_workitem: sorted_buckets(by_workitem),
                by_worker: sorted_buckets(by_worker),
                by_billing_mode: sorted_buckets(by_billing_mode),
            },
            daily: days
                .into_iter()
                .map(|(date, d)| DailyPoint {
                    date: date.format("%Y-%m-%d").to_string(),
                    cost_usd: d.cost_usd,
                    total_tokens: d.total_tokens,
                    lead_time: DurationStats::of(d.lead),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{at, event, item, proof};
    use serde_json::json;

    fn usage(tokens: u64, cost: f64, mode: Option<&str>) -> serde_json::Value {
        let mut u = json!({"total_tokens": tokens, "input_tokens": tokens / 2,
            "output_tokens": tokens / 2, "cost_usd": cost, "model": "m1"});
        if let Some(mode) = mode {
            u["workers"] = json!([{"worker_id": "w1", "provider": "anthropic",
                "tokens": tokens, "cost_usd": cost, "billing_mode": mode}]);
        }
        json!({"usage": u})
    }

    /// A: full pipeline, metered. B: coding, on a subscription.
    fn fleet() -> Vec<WorkItem> {
        let a = item(
            "142",
            &[
                event("142", "pfactory", "s1", "emitted", 0, proof("pfactory")),
                event("142", "aifactory", "p:1", "in_progress", 10, json!({})),
                event(
                    "142",
                    "aifactory",
                    "p:1",
                    "done",
                    40,
                    usage(1000, 2.0, Some("api")),
                ),
                event("142", "tfactory", "spec-1", "executing", 45, json!({})),
                event(
                    "142",
                    "tfactory",
                    "spec-1",
                    "triaged",
                    60,
                    proof("tfactory"),
                ),
            ],
        );
        let b = item(
            "af-p:2",
            &[event(
                "af-p:2",
                "aifactory",
                "p:2",
                "in_progress",
                24 * 60,
                usage(500, 9.0, Some("subscription")),
            )],
        );
        vec![a, b]
    }

    #[test]
    fn nearest_rank_picks_a_real_sample() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(5.0));
        assert_eq!(nearest_rank(&v, 95.0), Some(10.0));
        assert_eq!(nearest_rank(&[1.0, 2.0], 50.0), Some(1.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn counts_latency_and_lead_time() {
        let items = fleet();
        let r = Rollups::compute(&items, Window::all(), at(3000));
        assert_eq!(r.items, 2);
        assert_eq!(r.events_total, 6);
        assert_eq!(r.by_stage["test"], 1);
        assert_eq!(r.by_stage["code"], 1);
        assert_eq!(r.by_status_class["done"], 1);
        assert_eq!(r.by_status_class["running"], 1);
        assert_eq!(r.latency_by_stage["code"].p50_seconds, Some(1800.0));
        assert_eq!(r.latency_by_service["tfactory"].max_seconds, Some(900.0));
        assert_eq!(r.latency_by_stage["plan"].samples, 1);
        assert_eq!(r.lead_time.samples, 1);
        assert_eq!(r.lead_time.p95_seconds, Some(3600.0));
        assert_eq!(r.span.max_seconds, Some(3600.0));
    }

    #[test]
    fn dollars_only_for_metered_usage_and_no_zero_for_silent_services() {
        let items = fleet();
        let r = Rollups::compute(&items, Window::all(), at(3000));
        let mode = |k: &str| r.cost.by_billing_mode.iter().find(|b| b.key == k).unwrap();
        assert_eq!(mode("api").cost_usd, Some(2.0));
        assert!(mode("api").metered);
        assert_eq!(mode("subscription").cost_usd, None);
        assert!(!mode("subscription").metered);
        assert_eq!(mode("subscription").total_tokens, Some(500));
        assert_eq!(r.cost.total.cost_usd, Some(2.0));
        assert_eq!(r.cost.total.total_tokens, Some(1500));
        let svc = |k: &str| r.cost.by_service.iter().find(|b| b.key == k).unwrap();
        assert!(svc("aifactory").instrumented);
        assert!(!svc("tfactory").instrumented);
        assert_eq!(svc("tfactory").total_tokens, None);
        assert_eq!(svc("tfactory").cost_usd, None);
        assert_eq!(r.cost.by_workitem[0].key, "142");
        assert_eq!(r.cost.by_provider[0].key, "anthropic");
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["cost"]["by_service"][2]["cost_usd"].is_null());
    }

    #[test]
    fn cut_keeps_the_largest_entries_of_long_breakdowns_only() {
        let items = fleet();
        let r = Rollups::compute(&items, Window::all(), at(3000));
        assert!(
            r.cost.by_workitem.len() > 1,
            "the fleet has several items with usage"
        );
        let cut = r.cut(1);
        assert_eq!(cut.cost.by_workitem, r.cost.by_workitem[..1]);
        assert!(cut.cost.by_model.len() <= 1);
        assert_eq!(
            cut.cost.by_service, r.cost.by_service,
            "services are never cut"
        );
        assert_eq!(cut.cost.total, r.cost.total);
        assert_eq!(cut.by_stage, r.by_stage);
    }

    #[test]
    fn usage_without_a_mode_counts_as_sent() {
        let items = [item(
            "7",
            &[event(
                "7",
                "pfactory",
                "s",
                "emitted",
                0,
                usage(10, 0.5, None),
            )],
        )];
        let r = Rollups::compute(&items, Window::all(), at(10));
        assert_eq!(r.cost.total.cost_usd, Some(0.5));
        assert_eq!(r.cost.by_billing_mode[0].key, "unspecified");
    }

    #[test]
    fn the_window_selects_by_event_time_on_both_sides() {
        let items = fleet();
        let day2 = Window {
            since: Some(at(24 * 60)),
            until: None,
        };
        let r = Rollups::compute(&items, day2, at(3000));
        assert_eq!(r.items, 1);
        assert_eq!(r.lead_time.samples, 0);
        assert_eq!(r.cost.total.cost_usd, None);
        assert_eq!(r.cost.total.total_tokens, Some(500));
        let day1 = Window {
            since: None,
            until: Some(at(24 * 60)),
        };
        let r = Rollups::compute(&items, day1, at(3000));
        assert_eq!(r.items, 1);
        assert_eq!(r.cost.total.cost_usd, Some(2.0));
    }

    #[test]
    fn the_daily_series_is_by_utc_date() {
        let items = fleet();
        let r = Rollups::compute(&items, Window::all(), at(3000));
        let dates: Vec<&str> = r.daily.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2026-06-01", "2026-06-02"]);
        assert_eq!(r.daily[0].cost_usd, 2.0);
        assert_eq!(r.daily[0].lead_time.samples, 1);
        assert_eq!(r.daily[1].cost_usd, 0.0);
        assert_eq!(r.daily[1].total_tokens, 500);
    }
}

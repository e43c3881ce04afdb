//! Anomaly rules over WorkItems: failures, handback loops, stalls, missing evidence,
//! injection scans, ingest findings, and robust cost and latency spikes against the
//! same service/phase/model history, plus slow cost drift.
//!
//! Spike scoring is the modified z-score `0.6745·(x − median)/MAD`. When the MAD is 0
//! (more than half the history is one value) the score falls back to
//! `(x − median)/(1.253314·MeanAD)`, the mean absolute deviation scaled to the same
//! units; when that is 0 too (a constant history) any value above the median by the
//! absolute floor fires, with a `null` score. Every spike also needs the floor: the
//! excess over the median must reach it, so tiny values never fire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::billing::task_cost;
use super::rollups::{Sorted, seconds_between};
use super::signals::{Silence, display_title, human_duration, is_discarded_plan, silence};
use crate::event::Service;
use crate::ids::CorrelationKey;
use crate::proof::Proof;
use crate::workitem::{DEFAULT_STALL_DEADLINE_SECONDS, StageName, WorkItem};

/// The tunable limits of every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Silence after which a running stage is stalled (900 s).
    pub stall_seconds: i64,
    /// Silence after which a running stage is stuck (24 h).
    pub stuck_seconds: i64,
    /// Modified z-score above which a value is a spike (3.5, Iglewicz and Hoaglin).
    pub z_score: f64,
    /// History samples a baseline needs before spikes or drift are judged (8).
    pub min_samples: usize,
    /// Dollars over the median a cost must reach to be a spike or drift ($1.00).
    pub cost_floor_usd: f64,
    /// Seconds over the median a stage must reach to be a latency spike (600 s).
    pub latency_floor_seconds: f64,
    /// EWMA smoothing for cost drift (0.3).
    pub ewma_alpha: f64,
    /// EWMA control-limit width in standard deviations (3.0).
    pub ewma_band: f64,
    /// Handback round trips the services allow before a loop is high severity (2).
    pub handback_limit: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            stall_seconds: DEFAULT_STALL_DEADLINE_SECONDS,
            stuck_seconds: 24 * 3600,
            z_score: 3.5,
            min_samples: 8,
            cost_floor_usd: 1.0,
            latency_floor_seconds: 600.0,
            ewma_alpha: 0.3,
            ewma_band: 3.0,
            handback_limit: 2,
        }
    }
}

/// What an anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A stage in the failed class (a discarded plan excepted).
    Failure,
    /// Failed tests followed by more coding, round trip after round trip.
    HandbackLoop,
    /// A running stage silent past the stall deadline.
    Stalled,
    /// A running stage silent past the stuck deadline, or an upstream's `stuck`.
    Stuck,
    /// A success reported without its evidence.
    Unproven,
    /// The injection scan flagged the input.
    InjectionFlagged,
    /// The injection scan was skipped.
    InjectionSkipped,
    /// Two issue numbers claimed one unit of work.
    CorrelationConflict,
    /// Events arrived without an `id`.
    MissingEventId,
    /// A task cost far above its service/phase/model history.
    CostSpike,
    /// A stage took far longer than its service/phase/model history.
    LatencySpike,
    /// Cost per WorkItem creeping up (EWMA above its control limit).
    CostDrift,
    /// A sender reported its budget exceeded (`usage.budget.exceeded`).
    BudgetExceeded,
}

impl AnomalyKind {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::HandbackLoop => "handback_loop",
            Self::Stalled => "stalled",
            Self::Stuck => "stuck",
            Self::Unproven => "unproven",
            Self::InjectionFlagged => "injection_flagged",
            Self::InjectionSkipped => "injection_skipped",
            Self::CorrelationConflict => "correlation_conflict",
            Self::MissingEventId => "missing_event_id",
            Self::CostSpike => "cost_spike",
            Self::LatencySpike => "latency_spike",
            Self::CostDrift => "cost_drift",
            Self::BudgetExceeded => "budget_exceeded",
        }
    }
}

/// How loudly an anomaly asks for attention; ordered `Info < Warning < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth a look.
    Warning,
    /// Needs action.
    High,
}

/// One finding, with the numbers that made it fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The rule.
    pub kind: AnomalyKind,
    /// How loud.
    pub severity: Severity,
    /// The WorkItem.
    pub correlation_key: CorrelationKey,
    /// One line: the finding and the item's title.
    pub title: String,
    /// A sentence with the figures.
    pub detail: String,
    /// The numbers behind it (baseline, score, threshold, samples, …).
    pub evidence: Value,
}

/// The history a spike is judged against: one service, phase and model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The service.
    pub service: Service,
    /// The phase of the reporting event.
    pub phase: String,
    /// The model, when known.
    pub model: Option<String>,
}

/// The samples one item contributes to the history, its series by number.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ItemSamples {
    created_at: Option<DateTime<Utc>>,
    /// Dollars counted on the whole item, if any.
    cost: Option<f64>,
    /// (series, task id, dollars counted over all its runs).
    task_costs: Vec<(SeriesId, String, f64)>,
    /// (series, stage, seconds from first to terminal event).
    stage_latencies: Vec<(SeriesId, StageName, f64)>,
}

type SeriesId = u32;

impl ItemSamples {
    /// The samples of `item`; `series` numbers a series, or answers `None` to leave the
    /// sample out (a series the history has never seen has no baseline).
    fn of(item: &WorkItem, mut series: impl FnMut(SeriesKey) -> Option<SeriesId>) -> Self {
        let mut out = Self {
            created_at: Some(item.created_at),
            ..Self::default()
        };
        for task in &item.usage_by_task {
            if let Some(cost) = task_cost(task) {
                out.cost = Some(out.cost.unwrap_or(0.0) + cost);
                let key = SeriesKey {
                    service: task.service,
                    phase: task.phase.clone().unwrap_or_default(),
                    model: task.model.clone(),
                };
                if let Some(id) = series(key) {
                    out.task_costs.push((id, task.task_id.clone(), cost));
                }
            }
        }
        for (name, stage) in item.stages.iter() {
            if !stage.status_class.is_terminal() {
                continue;
            }
            let model = item
                .usage_by_task
                .iter()
                .find(|t| t.service == name.service() && t.task_id == stage.task_id)
                .and_then(|t| t.model.clone());
            let key = SeriesKey {
                service: name.service(),
                phase: stage.phase.clone(),
                model,
            };
            if let Some(id) = series(key) {
                let secs = seconds_between(stage.started_at, stage.at);
                out.stage_latencies.push((id, name, secs));
            }
        }
        out
    }
}

/// One service/phase/model series: its cost and latency samples, and their baselines
/// worked out on first use after a change.
#[derive(Debug, Clone)]
struct Series {
    key: SeriesKey,
    cost: Sorted,
    latency: Sorted,
    /// The samples again, by value, with whose they are: spikes are found by reading
    /// the top of these rather than by checking every item.
    cost_by_value: BySample,
    latency_by_value: BySample,
    cost_base: OnceLock<Baseline>,
    latency_base: OnceLock<Baseline>,
}

/// Samples by value ([`ordered`]), then item and place.
type BySample = BTreeSet<(i64, CorrelationKey, Sample)>;

/// `v` as an integer that orders as [`f64::total_cmp`] does.
fn ordered(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

impl Series {
    fn new(key: SeriesKey, bulk: bool) -> Self {
        let mut series = Self {
            key,
            cost: Sorted::default(),
            latency: Sorted::default(),
            cost_by_value: BySample::new(),
            latency_by_value: BySample::new(),
            cost_base: OnceLock::new(),
            latency_base: OnceLock::new(),
        };
        if bulk {
            series.cost.unsettle();
            series.latency.unsettle();
        }
        series
    }

    /// Adds (`add`) or takes away the value `v` of `key`'s `sample`, and forgets the
    /// baseline of its side.
    fn change(&mut self, sample: Sample, v: f64, key: &CorrelationKey, add: bool) {
        let (sorted, by_value, base) = match sample {
            Sample::Cost(_) => (&mut self.cost, &mut self.cost_by_value, &mut self.cost_base),
            Sample::Latency(_) => (
                &mut self.latency,
                &mut self.latency_by_value,
                &mut self.latency_base,
            ),
        };
        let entry = (ordered(v), key.clone(), sample);
        if add {
            sorted.insert(v);
            by_value.insert(entry);
        } else {
            sorted.remove(v);
            by_value.remove(&entry);
        }
        *base = OnceLock::new();
    }

    fn cost_base(&self) -> &Baseline {
        self.cost_base
            .get_or_init(|| Baseline::of_sorted(&self.cost))
    }

    fn latency_base(&self) -> &Baseline {
        self.latency_base
            .get_or_init(|| Baseline::of_sorted(&self.latency))
    }
}

/// Per-item samples of task cost, stage latency and item cost, the baselines spikes and
/// drift are judged against. Build it with [`History::from_items`], or keep it current
/// at ingest with [`History::record`] and [`History::forget`]: each keeps every series'
/// samples in order, so a change costs a few binary searches and each baseline is worked
/// out again only when its series changed.
#[derive(Debug, Clone, Default)]
pub struct History {
    items: HashMap<CorrelationKey, ItemSamples>,
    series: Vec<Series>,
    series_ids: HashMap<SeriesKey, SeriesId>,
    /// (created at, key) → dollars of every costed item, oldest first.
    drift: BTreeMap<(DateTime<Utc>, CorrelationKey), f64>,
    /// The same dollars in ascending order.
    drift_sorted: Sorted,
    /// The drift rule's finding for the current history, worked out on first use.
    drift_found: OnceLock<Option<Anomaly>>,
    /// Loading many items: new series start unsettled.
    bulk: bool,
}

/// Two histories are equal when they hold the same samples for the same items, however
/// their series came to be numbered.
impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.items.len() == other.items.len()
            && self.items.iter().all(|(key, mine)| {
                other
                    .items
                    .get(key)
                    .is_some_and(|theirs| self.named(mine) == other.named(theirs))
            })
    }
}

impl History {
    /// The history of `items`.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a WorkItem>) -> Self {
        let mut h = Self::default();
        h.unsettle();
        for item in items {
            h.record(item);
        }
        h.settle();
        h
    }

    /// For loading many items: samples are appended, not placed, until
    /// [`History::settle`] sorts each series once.
    pub(crate) fn unsettle(&mut self) {
        self.bulk = true;
        self.drift_sorted.unsettle();
        for s in &mut self.series {
            s.cost.unsettle();
            s.latency.unsettle();
        }
    }

    /// Sorts what was appended since [`History::unsettle`].
    pub(crate) fn settle(&mut self) {
        self.bulk = false;
        self.drift_sorted.settle();
        for s in &mut self.series {
            s.cost.settle();
            s.latency.settle();
        }
    }

    /// Records `item`'s samples, replacing any it had.
    pub fn record(&mut self, item: &WorkItem) {
        let samples = ItemSamples::of(item, |key| Some(self.series_id(key)));
        let key = &item.correlation_key;
        self.forget(key);
        self.change(key, &samples, true);
        self.items.insert(key.clone(), samples);
    }

    /// Drops the samples of the item filed under `key` (merged away or deleted).
    pub fn forget(&mut self, key: &CorrelationKey) {
        if let Some(old) = self.items.remove(key) {
            self.change(key, &old, false);
        }
    }

    /// Adds (`add`) or takes away the samples of the item under `key`.
    fn change(&mut self, key: &CorrelationKey, samples: &ItemSamples, add: bool) {
        let costs = samples.task_costs.iter().enumerate();
        let costs = costs.map(|(i, (id, _, v))| (*id, Sample::Cost(i), *v));
        let latencies = samples.stage_latencies.iter().enumerate();
        let latencies = latencies.map(|(i, (id, _, v))| (*id, Sample::Latency(i), *v));
        for (id, sample, v) in costs.chain(latencies) {
            self.series[id as usize].change(sample, v, key, add);
        }
        if let (Some(at), Some(c)) = (samples.created_at, samples.cost) {
            if add {
                self.drift.insert((at, key.clone()), c);
                self.drift_sorted.insert(c);
            } else {
                self.drift.remove(&(at, key.clone()));
                self.drift_sorted.remove(c);
            }
        }
        self.drift_found = OnceLock::new();
    }

    fn series_id(&mut self, key: SeriesKey) -> SeriesId {
        if let Some(id) = self.series_ids.get(&key) {
            return *id;
        }
        let id = self.series.len() as SeriesId;
        self.series.push(Series::new(key.clone(), self.bulk));
        self.series_ids.insert(key, id);
        id
    }

    /// `samples` with its series by key, for comparing histories.
    #[allow(clippy::type_complexity)]
    fn named<'h>(
        &'h self,
        samples: &'h ItemSamples,
    ) -> (
        Option<DateTime<Utc>>,
        Option<f64>,
        Vec<(&'h SeriesKey, &'h String, f64)>,
        Vec<(&'h SeriesKey, StageName, f64)>,
    ) {
        let key = |id: &SeriesId| &self.series[*id as usize].key;
        (
            samples.created_at,
            samples.cost,
            samples
                .task_costs
                .iter()
                .map(|(id, t, v)| (key(id), t, *v))
                .collect(),
            samples
                .stage_latencies
                .iter()
                .map(|(id, st, v)| (key(id), *st, *v))
                .collect(),
        )
    }

    /// Items recorded.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The samples recorded for the item under `key`.
    pub(crate) fn samples(&self, key: &CorrelationKey) -> Option<&ItemSamples> {
        self.items.get(key)
    }

    /// The samples `item` contributes: the recorded ones when the history holds it,
    /// else worked out against the series it knows.
    fn samples_of<'h>(&'h self, item: &WorkItem) -> std::borrow::Cow<'h, ItemSamples> {
        match self.items.get(&item.correlation_key) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(ItemSamples::of(item, |key| {
                self.series_ids.get(&key).copied()
            })),
        }
    }

    /// Every sample that could be a spike under `th`: those at or above the lowest
    /// value that passes both the floor and the score threshold of its series (less a
    /// rounding margin). A superset of the spikes, found without visiting every item.
    pub(crate) fn spike_candidates(&self, th: &Thresholds) -> Vec<(&CorrelationKey, Sample)> {
        let mut out = Vec::new();
        for s in &self.series {
            type Side<'s> = (usize, &'s BySample, f64, fn(&Series) -> &Baseline);
            let sides: [Side<'_>; 2] = [
                (
                    s.cost.len(),
                    &s.cost_by_value,
                    th.cost_floor_usd,
                    Series::cost_base,
                ),
                (
                    s.latency.len(),
                    &s.latency_by_value,
                    th.latency_floor_seconds,
                    Series::latency_base,
                ),
            ];
            for (n, by_value, floor, base) in sides {
                if n < th.min_samples {
                    continue;
                }
                let from = ordered(base(s).lowest_spike(floor, th));
                out.extend(
                    by_value
                        .range((from, CorrelationKey::lowest(), Sample::Cost(0))..)
                        .map(|(_, key, sample)| (key, *sample)),
                );
            }
        }
        out
    }

    /// The drift rule's finding over the whole history.
    pub(crate) fn drift(&self, th: &Thresholds) -> Option<Anomaly> {
        self.drift_found
            .get_or_init(|| cost_drift(&self.drift, &self.drift_sorted, th))
            .clone()
    }
}

/// Robust centre and spread of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Baseline {
    median: f64,
    mad: f64,
    mean_ad: f64,
    samples: usize,
}

fn median(sorted: &Sorted) -> f64 {
    let n = sorted.len();
    let at = |i| sorted.get(i).unwrap_or(0.0);
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    }
}

/// The median of values in any order, by selection.
fn median_unsorted(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let (left, mid, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = left.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
        (below + mid) / 2.0
    }
}

impl Baseline {
    /// The baseline of `values`.
    fn of_sorted(values: &Sorted) -> Self {
        let med = median(values);
        let mut dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
        let mean_ad = if dev.is_empty() {
            0.0
        } else {
            dev.iter().sum::<f64>() / dev.len() as f64
        };
        Self {
            median: med,
            mad: median_unsorted(&mut dev),
            mean_ad,
            samples: values.len(),
        }
    }

    /// The robust score of `x`: `(score, method)`, score `None` for a constant history.
    fn score(&self, x: f64) -> (Option<f64>, &'static str) {
        let excess = x - self.median;
        if self.mad > 0.0 {
            (Some(0.6745 * excess / self.mad), "mad")
        } else if self.mean_ad > 0.0 {
            (Some(excess / (1.253314 * self.mean_ad)), "mean_ad")
        } else {
            (None, "constant")
        }
    }

    /// A value below which nothing is a spike: the floor and the score threshold both
    /// reached, less a margin for rounding.
    fn lowest_spike(&self, floor: f64, th: &Thresholds) -> f64 {
        let spread = if self.mad > 0.0 {
            th.z_score * self.mad / 0.6745
        } else if self.mean_ad > 0.0 {
            th.z_score * 1.253314 * self.mean_ad
        } else {
            f64::NEG_INFINITY
        };
        let lowest = self.median + floor.max(spread);
        lowest - 1e-9 * (1.0 + lowest.abs())
    }

    /// Whether `x` is a spike: enough samples, the floor reached, the score above the
    /// threshold (or any excess over a constant history). Returns the evidence if so.
    fn spike(&self, x: f64, floor: f64, th: &Thresholds) -> Option<Value> {
        if self.samples < th.min_samples || x - self.median < floor {
            return None;
        }
        let (score, method) = self.score(x);
        if score.is_some_and(|z| z <= th.z_score) {
            return None;
        }
        Some(json!({
            "value": x, "baseline_median": self.median, "mad": self.mad,
            "mean_absolute_deviation": self.mean_ad, "score": score, "method": method,
            "threshold": th.z_score, "floor": floor, "samples": self.samples,
            "min_samples": th.min_samples,
        }))
    }
}

fn anomaly(
    item: &WorkItem,
    kind: AnomalyKind,
    severity: Severity,
    what: &str,
    detail: String,
    evidence: Value,
) -> Anomaly {
    Anomaly {
        kind,
        severity,
        correlation_key: item.correlation_key.clone(),
        title: format!("{what}: {}", display_title(item)),
        detail,
        evidence,
    }
}

/// Runs every rule over `items` at the moment `now`, judging spikes and drift against
/// `history`. Sorted most severe first, then by key, then by kind.
pub fn detect<'a>(
    items: impl IntoIterator<Item = &'a WorkItem>,
    history: &History,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for item in items {
        item_rules(item, th, &mut out);
        clock_rules(item, now, th, &mut out);
        spikes(item, history, th, &mut out);
    }
    finish(&mut out, history, th);
    out
}

/// Adds the history's drift finding and sorts: most severe first, then by key, then by
/// kind.
fn finish(out: &mut Vec<Anomaly>, history: &History, th: &Thresholds) {
    if let Some(a) = history.drift(th) {
        out.push(a);
    }
    out.sort_by(order);
}

/// The order of an anomaly list: most severe first, then by key, then by kind.
pub(crate) fn order(a: &Anomaly, b: &Anomaly) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.correlation_key.cmp(&b.correlation_key))
        .then(a.kind.cmp(&b.kind))
}

/// The rules that read the item alone: failures, missing evidence, injection scans,
/// handback loops, correlation conflicts and missing ids. Their findings change only
/// when the item does.
pub(crate) fn item_rules(item: &WorkItem, th: &Thresholds, out: &mut Vec<Anomaly>) {
    for (name, stage) in item.stages.iter() {
        let stage_name = name.as_str();
        let base = || {
            json!({"stage": stage_name, "task_id": stage.task_id,
            "status": stage.status, "at": stage.at})
        };
        if stage.failed() && !is_discarded_plan(name, stage) {
            let mut ev = base();
            ev["status_class"] = json!(stage.status_class.as_str());
            ev["outcome"] = json!(stage.outcome);
            ev["halt_reason"] = json!(stage.halt_reason);
            let why = stage
                .halt_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push(anomaly(
                item,
                AnomalyKind::Failure,
                Severity::High,
                &format!("{stage_name} failed"),
                format!(
                    "The {stage_name} stage ended with status {}{why}.",
                    stage.status
                ),
                ev,
            ));
        }
        if stage.proof == Proof::Unproven {
            out.push(anomaly(
                item,
                AnomalyKind::Unproven,
                Severity::Warning,
                &format!("{stage_name} unproven"),
                format!(
                    "The {stage_name} stage reported {} without the evidence its gate needs.",
                    stage.status
                ),
                base(),
            ));
        }
        if let Some(scan) = &stage.injection_scan {
            let verdict = scan.verdict.to_lowercase();
            let (kind, severity, what) = match verdict.as_str() {
                "flagged" => (AnomalyKind::InjectionFlagged, Severity::High, "flagged"),
                "skipped" => (AnomalyKind::InjectionSkipped, Severity::Info, "skipped"),
                _ => continue,
            };
            let mut ev = base();
            ev["verdict"] = json!(scan.verdict);
            ev["reason"] = json!(scan.reason);
            ev["scanner"] = json!(scan.scanner);
            out.push(anomaly(
                item,
                kind,
                severity,
                &format!("Injection scan {what}"),
                format!(
                    "The {stage_name} stage's injection scan was {what}{}.",
                    scan.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                ev,
            ));
        }
    }
    if item.handbacks > 0 {
        let n = item.handbacks;
        let severity = if n > th.handback_limit {
            Severity::High
        } else {
            Severity::Warning
        };
        out.push(anomaly(
            item,
            AnomalyKind::HandbackLoop,
            severity,
            "Handback loop",
            format!(
                "{n} round trip(s) from a failed or human-review verify back to coding (limit {}).",
                th.handback_limit
            ),
            json!({"handbacks": n, "limit": th.handback_limit}),
        ));
    }
    if let Some(b) = item.budget.filter(|b| b.exceeded) {
        let money = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |d| format!("${d:.2}"));
        out.push(anomaly(
            item,
            AnomalyKind::BudgetExceeded,
            Severity::High,
            "Budget exceeded",
            format!(
                "The sender reports its budget exceeded: {} spent of a {} limit.",
                money(b.spent_usd),
                money(b.limit_usd)
            ),
            json!({"limit_usd": b.limit_usd, "spent_usd": b.spent_usd, "at": b.at}),
        ));
    }
    let f = &item.flags;
    if f.correlation_conflict_count > 0 {
        let numbers: Vec<&Vec<u64>> = f
            .correlation_conflicts
            .iter()
            .map(|c| &c.issue_numbers)
            .collect();
        let reasons: Vec<&str> = f
            .correlation_conflicts
            .iter()
            .filter_map(|c| c.reason.as_deref())
            .collect();
        let detail = match reasons.last() {
            Some(reason) => format!(
                "{} event(s) could not be placed with certainty; latest: {reason}.",
                f.correlation_conflict_count
            ),
            None => format!(
                "{} event(s) named issue numbers that disagree with this item's.",
                f.correlation_conflict_count
            ),
        };
        out.push(anomaly(
            item,
            AnomalyKind::CorrelationConflict,
            Severity::Warning,
            "Correlation conflict",
            detail,
            json!({"count": f.correlation_conflict_count, "issue_numbers": numbers,
                   "reasons": reasons}),
        ));
    }
    if f.missing_event_id > 0 {
        out.push(anomaly(
            item,
            AnomalyKind::MissingEventId,
            Severity::Info,
            "Events without id",
            format!(
                "{} of {} event(s) arrived without an id, so retries cannot be told apart.",
                f.missing_event_id, item.event_count
            ),
            json!({"count": f.missing_event_id, "events": item.event_count}),
        ));
    }
}

/// The rules that read the clock: a stage stalled or stuck at `now`.
pub(crate) fn clock_rules(
    item: &WorkItem,
    now: DateTime<Utc>,
    th: &Thresholds,
    out: &mut Vec<Anomaly>,
) {
    if let Some((name, stage, kind, secs)) = silence(item, now, th) {
        let (k, severity, limit) = match kind {
            Silence::Stalled => (AnomalyKind::Stalled, Severity::Warning, th.stall_seconds),
            Silence::Stuck => (AnomalyKind::Stuck, Severity::High, th.stuck_seconds),
            Silence::UpstreamStuck => (AnomalyKind::Stuck, Severity::High, th.stuck_seconds),
        };
        let upstream = kind == Silence::UpstreamStuck;
        out.push(anomaly(
            item,
            k,
            severity,
            &format!("{} {}", name.as_str(), k.as_str()),
            if upstream {
                format!(
                    "{} marked the {} stage {}; silent for {}.",
                    name.service().as_str(),
                    name.as_str(),
                    stage.status,
                    human_duration(secs)
                )
            } else {
                format!(
                    "The {} stage ({}) has been silent for {}, past the {} limit.",
                    name.as_str(),
                    stage.status,
                    human_duration(secs),
                    human_duration(limit)
                )
            },
            json!({"stage": name.as_str(), "status": stage.status, "last_event_at": stage.at,
                "silent_seconds": secs, "threshold_seconds": limit,
                "upstream_stuck": upstream}),
        ));
    }
}

fn series_json(k: &SeriesKey) -> Value {
    json!({"service": k.service.as_str(), "phase": k.phase, "model": k.model})
}

/// The item's cost and latency spikes against `history`'s baselines.
pub(crate) fn spikes(item: &WorkItem, history: &History, th: &Thresholds, out: &mut Vec<Anomaly>) {
    let samples = history.samples_of(item);
    for i in 0..samples.task_costs.len() {
        sample_spike(item, &samples, Sample::Cost(i), history, th, out);
    }
    for i in 0..samples.stage_latencies.len() {
        sample_spike(item, &samples, Sample::Latency(i), history, th, out);
    }
}

/// One of an item's samples, by its place in [`ItemSamples`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Sample {
    Cost(usize),
    Latency(usize),
}

/// The spike, if `sample` of `item` is one.
pub(crate) fn sample_spike(
    item: &WorkItem,
    samples: &ItemSamples,
    sample: Sample,
    history: &History,
    th: &Thresholds,
    out: &mut Vec<Anomaly>,
) {
    match sample {
        Sample::Cost(i) => {
            let Some((id, task_id, cost)) = samples.task_costs.get(i) else {
                return;
            };
            let entry = &history.series[*id as usize];
            let (series, base) = (&entry.key, entry.cost_base());
            if let Some(mut ev) = base.spike(*cost, th.cost_floor_usd, th) {
                ev["series"] = series_json(series);
                ev["task_id"] = json!(task_id);
                out.push(anomaly(
                    item,
                    AnomalyKind::CostSpike,
                    Severity::Warning,
                    "Cost spike",
                    format!(
                        "Task {task_id} cost ${cost:.2} against a median of ${:.2} for {} {}.",
                        base.median,
                        series.service.as_str(),
                        series.model.as_deref().unwrap_or("(model unknown)")
                    ),
                    ev,
                ));
            }
        }
        Sample::Latency(i) => {
            let Some((id, stage, secs)) = samples.stage_latencies.get(i) else {
                return;
            };
            let entry = &history.series[*id as usize];
            let (series, base) = (&entry.key, entry.latency_base());
            if let Some(mut ev) = base.spike(*secs, th.latency_floor_seconds, th) {
                ev["series"] = series_json(series);
                ev["stage"] = json!(stage.as_str());
                out.push(anomaly(
                    item,
                    AnomalyKind::LatencySpike,
                    Severity::Warning,
                    "Latency spike",
                    format!(
                        "The {} stage took {} against a median of {}.",
                        stage.as_str(),
                        human_duration(*secs as i64),
                        human_duration(base.median as i64)
                    ),
                    ev,
                ));
            }
        }
    }
}

/// Cost drift: an EWMA chart over item cost in creation order. The baseline (median and
/// 1.4826·MAD, or 1.253314·MeanAD when the MAD is 0) comes from every item but the
/// newest `ceil((2 − α)/α)` (the EWMA's effective span); the EWMA starts at the
/// baseline, runs over those newest items, and fires when it ends above
/// `median + band·σ·√(α/(2−α)·(1 − (1−α)^{2t}))` by at least the cost floor. The
/// anomaly is filed on the newest item.
fn cost_drift(
    series: &BTreeMap<(DateTime<Utc>, CorrelationKey), f64>,
    sorted: &Sorted,
    th: &Thresholds,
) -> Option<Anomaly> {
    let alpha = th.ewma_alpha.clamp(1e-6, 1.0);
    let span = ((2.0 - alpha) / alpha).ceil().max(1.0) as usize;
    if series.len() < th.min_samples + span {
        return None;
    }
    let mut recent: Vec<(&CorrelationKey, f64)> = series
        .iter()
        .rev()
        .take(span)
        .map(|((_, key), cost)| (key, *cost))
        .collect();
    recent.reverse();
    let mut before = sorted.clone();
    for (_, cost) in &recent {
        before.remove(*cost);
    }
    let base = Baseline::of_sorted(&before);
    let sigma = if base.mad > 0.0 {
        1.4826 * base.mad
    } else {
        1.253314 * base.mean_ad
    };
    let ewma = recent
        .iter()
        .fold(base.median, |z, s| alpha * s.1 + (1.0 - alpha) * z);
    let t = recent.len() as i32;
    let width = (alpha / (2.0 - alpha) * (1.0 - (1.0 - alpha).powi(2 * t))).sqrt();
    let limit = base.median + th.ewma_band * sigma * width;
    if ewma <= limit || ewma - base.median < th.cost_floor_usd {
        return None;
    }
    let newest = recent.last()?;
    Some(Anomaly {
        kind: AnomalyKind::CostDrift,
        severity: Severity::Warning,
        correlation_key: newest.0.clone(),
        title: "Cost per WorkItem drifting up".to_owned(),
        detail: format!(
            "The EWMA of cost per WorkItem over the newest {t} item(s) is ${ewma:.2}, above \
             its control limit ${limit:.2} (baseline median ${:.2} over {} items).",
            base.median, base.samples
        ),
        evidence: json!({"ewma": ewma, "baseline_median": base.median, "sigma": sigma,
            "limit": limit, "alpha": alpha, "band": th.ewma_band, "recent": t,
            "samples": base.samples, "floor": th.cost_floor_usd,
            "recent_keys": recent.iter().map(|s| s.0.as_str()).collect::<Vec<_>>()}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{at, event, item, proof};
    use chrono::Duration;

    fn sorted(values: &[f64]) -> Sorted {
        let mut s = Sorted::default();
        for v in values {
            s.insert(*v);
        }
        s
    }

    fn kinds(items: &[WorkItem], now: DateTime<Utc>) -> Vec<(AnomalyKind, Severity)> {
        let h = History::from_items(items);
        detect(items, &h, now, &Thresholds::default())
            .into_iter()
            .map(|a| (a.kind, a.severity))
            .collect()
    }

    fn one(key: &str, service: &str, status: &str, extra: Value) -> Vec<WorkItem> {
        vec![item(key, &[event(key, service, "t", status, 0, extra)])]
    }

    #[test]
    fn a_failed_stage_fires_but_a_discarded_plan_does_not() {
        let failed = one("1", "aifactory", "qa_failed", json!({}));
        assert_eq!(
            kinds(&failed, at(1)),
            [(AnomalyKind::Failure, Severity::High)]
        );
        let discarded = one("2", "pfactory", "discarded", json!({}));
        assert!(kinds(&discarded, at(1)).is_empty());
        let rejected = one("3", "pfactory", "rejected", json!({}));
        assert_eq!(kinds(&rejected, at(1))[0].0, AnomalyKind::Failure);
    }

    #[test]
    fn handback_loops_turn_high_past_the_limit() {
        let mut items = one("1", "aifactory", "in_progress", json!({}));
        assert!(kinds(&items, at(1)).is_empty());
        items[0].handbacks = 2;
        assert_eq!(
            kinds(&items, at(1)),
            [(AnomalyKind::HandbackLoop, Severity::Warning)]
        );
        items[0].handbacks = 3;
        assert_eq!(
            kinds(&items, at(1)),
            [(AnomalyKind::HandbackLoop, Severity::High)]
        );
    }

    #[test]
    fn silence_stalls_then_sticks_but_never_in_review_or_queue() {
        let running = one("1", "aifactory", "in_progress", json!({}));
        let s = |secs| at(0) + Duration::seconds(secs);
        assert!(kinds(&running, s(900)).is_empty());
        assert_eq!(
            kinds(&running, s(901)),
            [(AnomalyKind::Stalled, Severity::Warning)]
        );
        assert_eq!(
            kinds(&running, s(86_400)),
            [(AnomalyKind::Stalled, Severity::Warning)]
        );
        assert_eq!(
            kinds(&running, s(86_401)),
            [(AnomalyKind::Stuck, Severity::High)]
        );
        for parked in ["human_review", "backlog"] {
            assert!(kinds(&one("2", "aifactory", parked, json!({})), s(200_000)).is_empty());
        }
        let stuck = one("3", "tfactory", "stuck", json!({}));
        assert_eq!(kinds(&stuck, s(1)), [(AnomalyKind::Stuck, Severity::High)]);
    }

    #[test]
    fn only_the_current_stage_can_stall() {
        // The plan stays `decomposed` (running class) after coding moved on.
        let items = [item(
            "1",
            &[
                event("1", "pfactory", "s", "decomposed", 0, json!({})),
                event("1", "aifactory", "p:1", "human_review", 5, json!({})),
            ],
        )];
        assert!(kinds(&items, at(600)).is_empty());
    }

    #[test]
    fn a_pass_without_evidence_is_unproven() {
        let bare = one("1", "tfactory", "triaged", json!({}));
        assert_eq!(
            kinds(&bare, at(1)),
            [(AnomalyKind::Unproven, Severity::Warning)]
        );
        assert!(kinds(&one("2", "tfactory", "triaged", proof("tfactory")), at(1)).is_empty());
    }

    #[test]
    fn injection_scans_flagged_and_skipped_but_not_passed() {
        let scan = |v: &str| json!({"injection_scan": {"verdict": v, "reason": "r"}});
        let got = kinds(&one("1", "aifactory", "backlog", scan("flagged")), at(1));
        assert_eq!(got, [(AnomalyKind::InjectionFlagged, Severity::High)]);
        let got = kinds(&one("1", "aifactory", "backlog", scan("skipped")), at(1));
        assert_eq!(got, [(AnomalyKind::InjectionSkipped, Severity::Info)]);
        assert!(kinds(&one("1", "aifactory", "backlog", scan("pass")), at(1)).is_empty());
    }

    #[test]
    fn ingest_flags_surface() {
        let mut items = one("1", "aifactory", "backlog", json!({}));
        assert!(kinds(&items, at(1)).is_empty());
        items[0].flags.missing_event_id = 1;
        items[0].flags.correlation_conflict_count = 2;
        assert_eq!(
            kinds(&items, at(1)),
            [
                (AnomalyKind::CorrelationConflict, Severity::Warning),
                (AnomalyKind::MissingEventId, Severity::Info)
            ]
        );
    }

    fn costed(key: &str, minute: i64, cost: f64) -> WorkItem {
        let usage = json!({"usage": {"total_tokens": 100, "cost_usd": cost, "model": "m1"}});
        item(
            key,
            &[event(key, "aifactory", "p:1", "backlog", minute, usage)],
        )
    }

    fn fleet(costs: &[f64]) -> Vec<WorkItem> {
        costs
            .iter()
            .enumerate()
            .map(|(i, c)| costed(&format!("{}", 100 + i), i as i64, *c))
            .collect()
    }

    fn spikes_in(items: &[WorkItem], kind: AnomalyKind) -> Vec<Anomaly> {
        let h = History::from_items(items);
        detect(items, &h, at(0), &Thresholds::default())
            .into_iter()
            .filter(|a| a.kind == kind)
            .collect()
    }

    #[test]
    fn a_cost_spike_needs_the_minimum_history() {
        let normal = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0];
        let mut eight = normal.to_vec();
        eight.push(10.0);
        let found = spikes_in(&fleet(&eight), AnomalyKind::CostSpike);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].correlation_key.as_str(), "107");
        assert_eq!(found[0].evidence["method"], "mad");
        assert_eq!(found[0].evidence["samples"], 8);
        let seven = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 10.0];
        assert!(spikes_in(&fleet(&seven), AnomalyKind::CostSpike).is_empty());
    }

    #[test]
    fn tiny_costs_never_spike() {
        let costs = [0.01, 0.011, 0.009, 0.01, 0.0105, 0.0095, 0.01, 0.9];
        assert!(spikes_in(&fleet(&costs), AnomalyKind::CostSpike).is_empty());
    }

    #[test]
    fn a_zero_mad_falls_back_to_mean_absolute_deviation() {
        let costs = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 10.0];
        let found = spikes_in(&fleet(&costs), AnomalyKind::CostSpike);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence["method"], "mean_ad");
        let flat = Baseline::of_sorted(&sorted(&[2.0; 9]));
        assert_eq!(flat.score(5.0), (None, "constant"));
        let th = Thresholds::default();
        assert!(flat.spike(3.0, 1.0, &th).is_some());
        assert!(flat.spike(2.5, 1.0, &th).is_none());
    }

    #[test]
    fn the_z_threshold_is_exclusive_at_three_and_a_half() {
        // Median 5, MAD 2: z = 0.6745·(x − 5)/2 crosses 3.5 at x ≈ 15.378.
        let base = Baseline::of_sorted(&sorted(&(1..=9).map(f64::from).collect::<Vec<_>>()));
        let th = Thresholds::default();
        assert!(base.spike(15.3, 1.0, &th).is_none());
        assert!(base.spike(15.5, 1.0, &th).is_some());
    }

    #[test]
    fn a_latency_spike_compares_the_same_stage_history() {
        let test_run = |key: &str, minutes: i64| {
            item(
                key,
                &[
                    event(key, "tfactory", "s", "executing", 0, json!({})),
                    event(key, "tfactory", "s", "triaged", minutes, proof("tfactory")),
                ],
            )
        };
        let mut items: Vec<WorkItem> = [10, 11, 9, 10, 12, 10, 9]
            .iter()
            .enumerate()
            .map(|(i, m)| test_run(&format!("{}", 200 + i), *m))
            .collect();
        items.push(test_run("300", 300));
        let found = spikes_in(&items, AnomalyKind::LatencySpike);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].correlation_key.as_str(), "300");
        items.pop();
        items.push(test_run("301", 19));
        assert!(spikes_in(&items, AnomalyKind::LatencySpike).is_empty());
    }

    #[test]
    fn cost_drift_fires_when_the_recent_ewma_leaves_its_band() {
        let mut costs = vec![1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.1];
        assert!(spikes_in(&fleet(&costs), AnomalyKind::CostDrift).is_empty());
        let steady = costs.clone();
        costs.extend([3.0; 6]);
        let found = spikes_in(&fleet(&costs), AnomalyKind::CostDrift);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].correlation_key.as_str(), "115");
        let mut mild = steady;
        mild.extend([1.15; 6]);
        assert!(spikes_in(&fleet(&mild), AnomalyKind::CostDrift).is_empty());
    }

    #[test]
    fn history_is_kept_item_by_item() {
        let items = fleet(&[1.0, 2.0]);
        let mut h = History::default();
        h.record(&items[0]);
        h.record(&items[0]);
        h.record(&items[1]);
        assert_eq!(h.len(), 2);
        h.forget(&items[0].correlation_key);
        assert_eq!(h, History::from_items(&items[1..]));
    }

    #[test]
    fn a_recorded_item_reaches_the_baselines_of_the_next_detection() {
        let steady = fleet(&[1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02]);
        let mut h = History::from_items(&steady);
        let th = Thresholds::default();
        let count = |h: &History, items: &[WorkItem]| {
            detect(items, h, at(0), &th)
                .iter()
                .filter(|a| a.kind == AnomalyKind::CostSpike)
                .count()
        };
        assert_eq!(
            count(&h, &steady),
            0,
            "the baselines are now derived and kept"
        );
        let spike = costed("200", 20, 25.0);
        h.record(&spike);
        let mut all = steady.clone();
        all.push(spike.clone());
        assert_eq!(count(&h, &all), 1, "recording invalidates what was derived");
        h.forget(&spike.correlation_key);
        assert_eq!(count(&h, &steady), 0);
    }
}

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

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::billing::contributions;
use crate::event::Service;
use crate::ids::CorrelationKey;
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
    /// Stats of `seconds` (any order), found by selection rather than a full sort.
    pub fn of(mut seconds: Vec<f64>) -> Self {
        let n = seconds.len();
        if n == 0 {
            return Self::default();
        }
        let mut at = |p: f64| {
            *seconds
                .select_nth_unstable_by(rank_of(p, n) - 1, f64::total_cmp)
                .1
        };
        let (p95, p50) = (at(95.0), at(50.0));
        Self {
            p50_seconds: Some(p50),
            p95_seconds: Some(p95),
            max_seconds: seconds.iter().copied().max_by(f64::total_cmp),
            samples: n as u64,
        }
    }
}

/// The 1-based nearest rank of the `p`th percentile among `n` samples.
fn rank_of(p: f64, n: usize) -> usize {
    (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n)
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of sorted samples.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[rank_of(p, sorted.len()) - 1])
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
    /// Dollars subscription or local workers reported: shown apart, never spend.
    pub notional_cost_usd: f64,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens (task-level).
    pub output_tokens: Option<u64>,
    /// All tokens, metered or not.
    pub total_tokens: Option<u64>,
    /// Usage records (task or worker slices) in the group.
    pub records: u64,
}

impl CostBucket {
    fn uninstrumented(key: String) -> Self {
        Self {
            key,
            instrumented: false,
            metered: false,
            cost_usd: None,
            notional_cost_usd: 0.0,
            input_tokens: None,
            output_tokens: None,
            total_tokens: None,
            records: 0,
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
    /// How many entries each breakdown has in all, before any cut.
    #[serde(skip)]
    pub entries: GroupSizes,
}

/// How many entries each cost breakdown has before it is cut to its largest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSizes {
    /// Services.
    pub by_service: usize,
    /// Models.
    pub by_model: usize,
    /// Providers.
    pub by_provider: usize,
    /// WorkItems.
    pub by_workitem: usize,
    /// Workers.
    pub by_worker: usize,
    /// Billing modes.
    pub by_billing_mode: usize,
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
    let test = item.stages.test()?;
    test.status_class
        .is_terminal()
        .then(|| seconds_between(item.created_at, test.at))
}

/// An item's span: first event to latest event.
pub fn span_seconds(item: &WorkItem) -> f64 {
    seconds_between(item.created_at, item.updated_at)
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
                entries: self.cost.entries,
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
        let mut names = Names::default();
        let facts: Vec<RollupFacts> = items
            .into_iter()
            .map(|item| RollupFacts::of(item, &mut names))
            .collect();
        Self::from_facts(&facts, &names, window, now, usize::MAX, None)
    }

    /// The rollups of the items whose facts are `facts` (their names interned in
    /// `names`), with each cost breakdown cut to its `keep` largest entries; the sizes
    /// before the cut are in [`CostRollup::entries`]. `facts` may leave out items that
    /// cannot touch `window`; which services ever reported usage (a fact of the whole
    /// fleet) is then given as `instrumented`.
    pub(crate) fn from_facts<'a>(
        facts: impl IntoIterator<Item = &'a RollupFacts>,
        names: &Names,
        window: Window,
        now: DateTime<Utc>,
        keep: usize,
        instrumented: Option<Vec<u64>>,
    ) -> Self {
        let mut sums = Sums::new(names);
        let mut stage_lat: Vec<Vec<f64>> = vec![Vec::new(); stage_slots()];
        let (mut lead, mut span) = (Vec::new(), Vec::new());
        let mut per_item: Vec<(&CorrelationKey, Acc)> = Vec::new();
        let mut days: BTreeMap<chrono::NaiveDate, (DaySums, Vec<f64>)> = BTreeMap::new();

        for f in facts {
            let item = sums.usage(f, 1, |slice| window.contains(slice.at));
            for slice in f.slices.iter().filter(|s| window.contains(s.at)) {
                days.entry(slice.at.date_naive())
                    .or_default()
                    .0
                    .add(slice, 1);
            }
            if item.records > 0 {
                per_item.push((&f.key, item));
            }
            for (stage, at, secs) in &f.latencies {
                if window.contains(*at) {
                    grown(&mut stage_lat, stage.slot()).push(*secs);
                }
            }
            if let Some((at, secs)) = f.lead
                && window.contains(at)
            {
                lead.push(secs);
                days.entry(at.date_naive()).or_default().1.push(secs);
            }
            if window.overlaps(f.created_at, f.updated_at) {
                sums.count(f, 1);
                span.push(f.span);
            }
        }
        let items = per_item.len();
        if let Some(instrumented) = instrumented {
            sums.instrumented = instrumented;
        }
        sums.shape(Shape {
            window,
            now,
            keep,
            names,
            stage_lat: stage_lat.into_iter().map(DurationStats::of).collect(),
            lead: DurationStats::of(lead),
            span: DurationStats::of(span),
            items: (largest_items(per_item, keep), items),
            daily: days
                .into_iter()
                .map(|(date, (d, lead))| d.point(date, DurationStats::of(lead)))
                .collect(),
        })
    }
}

/// The parts of a rollup that are sums, so they add and subtract one item at a time.
#[derive(Debug, Clone)]
struct Sums {
    items: u64,
    events: u64,
    /// Items per active stage, by stage slot.
    by_stage: Vec<u64>,
    /// Items with no stage.
    no_stage: u64,
    by_class: [u64; CLASSES.len() + 1],
    total: Acc,
    /// Per stage service, by stage slot.
    services: Vec<Acc>,
    /// Items per stage service that ever reported usage, by stage slot.
    instrumented: Vec<u64>,
    /// Per interned name: model, provider, worker, billing mode.
    named: [Vec<Acc>; 4],
    unnamed: [Acc; 4],
}

/// What a rollup needs besides the sums: the window, the distributions, the largest
/// items and the daily series.
struct Shape<'a> {
    window: Window,
    now: DateTime<Utc>,
    keep: usize,
    names: &'a Names,
    stage_lat: Vec<DurationStats>,
    lead: DurationStats,
    span: DurationStats,
    /// The largest items by cost, and how many items had usage.
    items: (Vec<CostBucket>, usize),
    daily: Vec<DailyPoint>,
}

impl Sums {
    fn new(names: &Names) -> Self {
        Self {
            items: 0,
            events: 0,
            by_stage: vec![0; stage_slots()],
            no_stage: 0,
            by_class: [0; CLASSES.len() + 1],
            total: Acc::default(),
            services: vec![Acc::default(); stage_slots()],
            instrumented: vec![0; stage_slots()],
            named: std::array::from_fn(|_| vec![Acc::default(); names.len()]),
            unnamed: [Acc::default(); 4],
        }
    }

    /// Adds (`sign` 1) or takes away (-1) the usage slices of `f` that `counts`, and
    /// the item's services; returns the item's own sums over those slices.
    fn usage(&mut self, f: &RollupFacts, sign: i64, counts: impl Fn(&Slice) -> bool) -> Acc {
        for slot in (0..u64::BITS as usize).filter(|i| f.usage_services & (1 << i) != 0) {
            let n = grown(&mut self.instrumented, slot);
            *n = n.wrapping_add_signed(sign);
        }
        let mut item = Acc::default();
        for slice in f.slices.iter().filter(|s| counts(s)) {
            self.total.add(slice, sign);
            item.add(slice, 1);
            if let Some(i) = stage_index(slice.service) {
                grown(&mut self.services, i).add(slice, sign);
            }
            for ((name, list), none) in slice
                .names
                .iter()
                .zip(&mut self.named)
                .zip(&mut self.unnamed)
            {
                match name {
                    Some(id) => {
                        let id = *id as usize;
                        if list.len() <= id {
                            list.resize(id + 1, Acc::default());
                        }
                        list[id].add(slice, sign)
                    }
                    None => none.add(slice, sign),
                }
            }
        }
        item
    }

    /// Adds or takes away the item's place in the counts.
    fn count(&mut self, f: &RollupFacts, sign: i64) {
        let add = |n: &mut u64| *n = n.wrapping_add_signed(sign);
        add(&mut self.items);
        self.events = self.events.wrapping_add_signed(sign * f.event_count as i64);
        match f.active {
            Some((n, _)) => add(grown(&mut self.by_stage, n.slot())),
            None => add(&mut self.no_stage),
        }
        add(&mut self.by_class[f.active.map_or(CLASSES.len(), |(_, c)| class_index(c))]);
    }

    fn shape(&self, s: Shape<'_>) -> Rollups {
        let by_service: Vec<CostBucket> = StageName::all()
            .map(|n| {
                let key = n.service().as_str().to_owned();
                let i = n.slot();
                if self.instrumented.get(i).is_some_and(|n| *n > 0) {
                    self.services
                        .get(i)
                        .copied()
                        .unwrap_or_default()
                        .bucket(key)
                } else {
                    CostBucket::uninstrumented(key)
                }
            })
            .collect();
        let defaults = ["unknown", "unknown", "unknown", "unspecified"];
        let [by_model, by_provider, by_worker, by_billing_mode]: [Vec<CostBucket>; 4] =
            std::array::from_fn(|k| {
                let mut out: BTreeMap<&str, Acc> = BTreeMap::new();
                for (id, acc) in self.named[k].iter().enumerate() {
                    if acc.records > 0 {
                        out.entry(s.names.name(id as u32)).or_default().merge(acc);
                    }
                }
                if self.unnamed[k].records > 0 {
                    out.entry(defaults[k]).or_default().merge(&self.unnamed[k]);
                }
                out.into_iter()
                    .map(|(k, a)| a.bucket(k.to_owned()))
                    .collect()
            });
        let entries = GroupSizes {
            by_service: by_service.len(),
            by_model: by_model.len(),
            by_provider: by_provider.len(),
            by_workitem: s.items.1,
            by_worker: by_worker.len(),
            by_billing_mode: by_billing_mode.len(),
        };
        let mut latency_by_stage = BTreeMap::new();
        let mut latency_by_service = BTreeMap::new();
        for name in StageName::all() {
            let stats = s.stage_lat.get(name.slot()).copied().unwrap_or_default();
            latency_by_stage.insert(name.as_str().to_owned(), stats);
            latency_by_service.insert(name.service().as_str().to_owned(), stats);
        }
        let by_stage = StageName::all()
            .map(|n| {
                (
                    n.as_str(),
                    self.by_stage.get(n.slot()).copied().unwrap_or(0),
                )
            })
            .chain([("none", self.no_stage)]);
        let class_names = CLASSES.iter().map(|c| c.as_str()).chain(["none"]);
        Rollups {
            window: s.window,
            generated_at: s.now,
            items: self.items,
            events_total: self.events,
            by_stage: by_stage.map(|(k, v)| (k.to_owned(), v)).collect(),
            by_status_class: class_names
                .zip(self.by_class)
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            latency_by_stage,
            latency_by_service,
            lead_time: s.lead,
            span: s.span,
            cost: CostRollup {
                total: self.total.bucket("all".to_owned()),
                by_service: largest(by_service, s.keep),
                by_model: largest(by_model, s.keep),
                by_provider: largest(by_provider, s.keep),
                by_workitem: s.items.0,
                by_worker: largest(by_worker, s.keep),
                by_billing_mode: largest(by_billing_mode, s.keep),
                entries,
            },
            daily: s.daily,
        }
    }
}

/// One day's usage sums.
#[derive(Debug, Clone, Copy, Default)]
struct DaySums {
    cost_nanos: i128,
    total_tokens: u64,
    /// Slices dated that day.
    slices: u64,
}

impl DaySums {
    fn add(&mut self, slice: &Slice, sign: i64) {
        self.cost_nanos += slice.cost_usd.map_or(0, nanos) * sign as i128;
        self.total_tokens = self
            .total_tokens
            .wrapping_add_signed(sign * slice.total_tokens as i64);
        self.slices = self.slices.wrapping_add_signed(sign);
    }

    fn point(&self, date: chrono::NaiveDate, lead_time: DurationStats) -> DailyPoint {
        DailyPoint {
            date: date.format("%Y-%m-%d").to_string(),
            cost_usd: dollars_of(self.cost_nanos),
            total_tokens: self.total_tokens,
            lead_time,
        }
    }
}

/// The all-time rollups of a changing set of items, kept current one item at a time:
/// sums add and subtract, distributions stay in order, the items stay ranked by cost.
/// Answering is then a matter of reading them off.
#[derive(Debug, Clone)]
pub(crate) struct Totals {
    sums: Sums,
    stage_lat: Vec<Sorted>,
    lead: Sorted,
    span: Sorted,
    /// Items with usage, largest first.
    ranked: BTreeMap<ItemRank, Acc>,
    days: BTreeMap<chrono::NaiveDate, (DaySums, Sorted)>,
    /// Loading in bulk: new days' distributions start unsettled.
    bulk: bool,
}

/// An item's place in the by-cost order: most dollars, then most tokens, then its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ItemRank(std::cmp::Reverse<(i128, u64)>, CorrelationKey);

impl Default for Totals {
    fn default() -> Self {
        Self {
            sums: Sums::new(&Names::default()),
            stage_lat: vec![Sorted::default(); stage_slots()],
            lead: Sorted::default(),
            span: Sorted::default(),
            ranked: BTreeMap::new(),
            days: BTreeMap::new(),
            bulk: false,
        }
    }
}

impl Totals {
    /// Adds an item's facts.
    pub(crate) fn add(&mut self, f: &RollupFacts) {
        self.apply(f, 1);
    }

    /// Takes away the facts of an item added before.
    pub(crate) fn remove(&mut self, f: &RollupFacts) {
        self.apply(f, -1);
    }

    fn apply(&mut self, f: &RollupFacts, sign: i64) {
        let put = |set: &mut Sorted, v: f64| {
            if sign > 0 {
                set.insert(v)
            } else {
                set.remove(v)
            }
        };
        let item = self.sums.usage(f, sign, |_| true);
        for slice in &f.slices {
            self.day(slice.at).0.add(slice, sign);
        }
        if item.records > 0 {
            let rank = ItemRank(std::cmp::Reverse(item.rank()), f.key.clone());
            if sign > 0 {
                self.ranked.insert(rank, item);
            } else {
                self.ranked.remove(&rank);
            }
        }
        for (stage, _, secs) in &f.latencies {
            put(grown(&mut self.stage_lat, stage.slot()), *secs);
        }
        if let Some((at, secs)) = f.lead {
            put(&mut self.lead, secs);
            put(&mut self.day(at).1, secs);
        }
        let dates = f.slices.iter().map(|s| s.at).chain(f.lead.map(|l| l.0));
        for date in dates.map(|t| t.date_naive()) {
            if self
                .days
                .get(&date)
                .is_some_and(|(d, lead)| d.slices == 0 && lead.len() == 0)
            {
                self.days.remove(&date);
            }
        }
        self.sums.count(f, sign);
        put(&mut self.span, f.span);
    }

    /// The day of `at`, made when first needed (unsettled while loading in bulk).
    fn day(&mut self, at: DateTime<Utc>) -> &mut (DaySums, Sorted) {
        let bulk = self.bulk;
        self.days.entry(at.date_naive()).or_insert_with(|| {
            let mut lead = Sorted::default();
            if bulk {
                lead.unsettle();
            }
            (DaySums::default(), lead)
        })
    }

    /// Items per stage service that ever reported usage.
    pub(crate) fn instrumented(&self) -> Vec<u64> {
        self.sums.instrumented.clone()
    }

    /// Every distribution, the ones to come included: appends until [`Totals::settle`].
    pub(crate) fn unsettle(&mut self) {
        self.bulk = true;
        for s in self.distributions() {
            s.unsettle();
        }
    }

    /// Sorts what was appended since [`Totals::unsettle`].
    pub(crate) fn settle(&mut self) {
        self.bulk = false;
        for s in self.distributions() {
            s.settle();
        }
    }

    fn distributions(&mut self) -> impl Iterator<Item = &mut Sorted> {
        self.stage_lat
            .iter_mut()
            .chain([&mut self.lead, &mut self.span])
            .chain(self.days.values_mut().map(|d| &mut d.1))
    }

    /// The all-time rollups at `now`, each cost breakdown cut to its `keep` largest.
    pub(crate) fn rollups(&self, names: &Names, now: DateTime<Utc>, keep: usize) -> Rollups {
        self.sums.shape(Shape {
            window: Window::all(),
            now,
            keep,
            names,
            stage_lat: self.stage_lat.iter().map(Sorted::stats).collect(),
            lead: self.lead.stats(),
            span: self.span.stats(),
            items: (
                self.ranked
                    .iter()
                    .take(keep)
                    .map(|(rank, acc)| acc.bucket(rank.1.as_str().to_owned()))
                    .collect(),
                self.ranked.len(),
            ),
            daily: self
                .days
                .iter()
                .map(|(date, (d, lead))| d.point(*date, lead.stats()))
                .collect(),
        })
    }
}

/// Values kept in ascending order, in blocks of at most `2 × BLOCK` values: a change is
/// a binary search over the blocks, one within a block and a shift of that block only,
/// so it costs the same whether the set holds a hundred values or a million. For loading
/// many at once, [`Sorted::unsettle`] makes changes plain appends until
/// [`Sorted::settle`] sorts them once.
#[derive(Debug, Clone)]
pub(crate) struct Sorted {
    /// Ascending, each block non-empty, each block's values not above the next's.
    blocks: Vec<Vec<f64>>,
    /// Appended while unsettled.
    loose: Vec<f64>,
    len: usize,
    settled: bool,
}

/// Values per block after a split (and per block when settling).
const BLOCK: usize = 256;

impl Default for Sorted {
    fn default() -> Self {
        Self {
            blocks: Vec::new(),
            loose: Vec::new(),
            len: 0,
            settled: true,
        }
    }
}

impl Sorted {
    /// The first block whose largest value is not below `v` (where `v` or its place is),
    /// or `blocks.len()` when every value is below it.
    fn block_of(&self, v: f64) -> usize {
        self.blocks
            .partition_point(|b| b.last().is_some_and(|last| last.total_cmp(&v).is_lt()))
    }

    /// Adds `v`.
    pub(crate) fn insert(&mut self, v: f64) {
        self.len += 1;
        if !self.settled {
            self.loose.push(v);
            return;
        }
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        let b = self.block_of(v).min(self.blocks.len() - 1);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|x| x.total_cmp(&v).is_lt());
        block.insert(at, v);
        if block.len() >= 2 * BLOCK {
            let upper = block.split_off(BLOCK);
            self.blocks.insert(b + 1, upper);
        }
    }

    /// Takes away one `v`, if there is one.
    pub(crate) fn remove(&mut self, v: f64) {
        let same = |x: &f64| x.total_cmp(&v).is_eq();
        // While unsettled, values placed before unsettling are still in the blocks.
        if !self.settled
            && let Some(at) = self.loose.iter().position(same)
        {
            self.loose.swap_remove(at);
            self.len -= 1;
            return;
        }
        let b = self.block_of(v);
        let Some(block) = self.blocks.get_mut(b) else {
            return;
        };
        let at = block.partition_point(|x| x.total_cmp(&v).is_lt());
        if block.get(at).is_some_and(same) {
            block.remove(at);
            self.len -= 1;
            if block.is_empty() {
                self.blocks.remove(b);
            }
        }
    }

    /// Appends from now on, until [`Sorted::settle`].
    pub(crate) fn unsettle(&mut self) {
        self.settled = false;
    }

    /// Sorts what was appended; back to keeping order.
    pub(crate) fn settle(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        if self.loose.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.loose);
        all.extend(self.blocks.drain(..).flatten());
        all.sort_by(f64::total_cmp);
        self.blocks = all.chunks(BLOCK).map(<[f64]>::to_vec).collect();
    }

    /// The values in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        debug_assert!(self.settled, "read before settle");
        self.blocks.iter().flatten().copied()
    }

    /// The `i`th smallest value (from 0).
    pub(crate) fn get(&self, mut i: usize) -> Option<f64> {
        debug_assert!(self.settled, "read before settle");
        for block in &self.blocks {
            match block.get(i) {
                Some(v) => return Some(*v),
                None => i -= block.len(),
            }
        }
        None
    }

    /// How many values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The nearest-rank `p`th percentile (0 < p ≤ 100).
    fn nearest_rank(&self, p: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        self.get(rank_of(p, self.len) - 1)
    }

    fn stats(&self) -> DurationStats {
        DurationStats {
            p50_seconds: self.nearest_rank(50.0),
            p95_seconds: self.nearest_rank(95.0),
            max_seconds: self.blocks.last().and_then(|b| b.last()).copied(),
            samples: self.len as u64,
        }
    }
}

/// Names (models, providers, workers, billing modes) as small numbers, so a fleet's
/// usage is grouped by indexing instead of by hashing strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    /// The number of `name`, given one on first sight.
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// One slice of usage with its names interned.
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    service: Service,
    /// Model, provider, worker, billing mode.
    names: [Option<u32>; 4],
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    cost_usd: Option<f64>,
    notional_usd: f64,
    at: DateTime<Utc>,
}

/// What the rollups need from one item, worked out once per version of the item so a
/// fleet's rollups are a pass over these instead of over the items. Every time in them
/// lies in the item's activity, `[created_at, updated_at]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupFacts {
    key: CorrelationKey,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    event_count: u64,
    span: f64,
    /// The furthest started stage and its class.
    active: Option<(StageName, StatusClass)>,
    /// (stage, terminal event time, seconds from its first event) per ended stage.
    latencies: Vec<(StageName, DateTime<Utc>, f64)>,
    /// (terminal test event time, lead time seconds).
    lead: Option<(DateTime<Utc>, f64)>,
    /// Which stage services ever reported usage here: bit `i` for stage slot `i`.
    usage_services: u64,
    slices: Vec<Slice>,
}

impl RollupFacts {
    /// The facts of `item`, interning its names in `names`.
    pub(crate) fn of(item: &WorkItem, names: &mut Names) -> Self {
        let mut usage_services = 0u64;
        let mut slices = Vec::new();
        for task in &item.usage_by_task {
            if let Some(i) = stage_index(task.service) {
                usage_services |= 1 << i;
            }
            for c in contributions(task) {
                slices.push(Slice {
                    service: c.service,
                    names: [c.model, c.provider, c.worker, c.billing_mode]
                        .map(|n| n.map(|n| names.id(n))),
                    input_tokens: c.input_tokens,
                    output_tokens: c.output_tokens,
                    total_tokens: c.total_tokens,
                    cost_usd: c.cost_usd,
                    notional_usd: c.notional_usd,
                    at: c.at,
                });
            }
        }
        Self {
            key: item.correlation_key.clone(),
            created_at: item.created_at,
            updated_at: item.updated_at,
            event_count: item.event_count,
            span: span_seconds(item),
            active: item.stages.active().map(|(n, s)| (n, s.status_class)),
            latencies: item
                .stages
                .iter()
                .filter(|(_, s)| s.status_class.is_terminal())
                .map(|(n, s)| (n, s.at, seconds_between(s.started_at, s.at)))
                .collect(),
            lead: lead_time_seconds(item)
                .zip(item.stages.test().map(|t| t.at))
                .map(|(secs, at)| (at, secs)),
            usage_services,
            slices,
        }
    }
}

fn stage_index(service: Service) -> Option<usize> {
    StageName::of(service).map(StageName::slot)
}

/// How many stage slots there are now.
fn stage_slots() -> usize {
    StageName::all().count()
}

/// Slot `i` of `v`, growing it when a stage came after `v` was made.
fn grown<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

fn class_index(class: StatusClass) -> usize {
    CLASSES
        .iter()
        .position(|c| *c == class)
        .unwrap_or(CLASSES.len())
}

/// Dollars as whole nanodollars, so sums come out the same in any order.
fn nanos(usd: f64) -> i128 {
    (usd * 1e9).round() as i128
}

fn dollars_of(nanos: i128) -> f64 {
    nanos as f64 / 1e9
}

/// A group's sums while rolling up.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    records: u64,
    cost_nanos: i128,
    notional_nanos: i128,
    /// Records that counted dollars.
    metered: u64,
}

impl Acc {
    /// Adds (`sign` 1) or takes away (-1) a slice.
    fn add(&mut self, s: &Slice, sign: i64) {
        let add = |f: &mut u64, n: u64| *f = f.wrapping_add_signed(sign * n as i64);
        add(&mut self.input_tokens, s.input_tokens);
        add(&mut self.output_tokens, s.output_tokens);
        add(&mut self.total_tokens, s.total_tokens);
        add(&mut self.records, 1);
        self.notional_nanos += nanos(s.notional_usd) * sign as i128;
        if let Some(d) = s.cost_usd {
            add(&mut self.metered, 1);
            self.cost_nanos += nanos(d) * sign as i128;
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.total_tokens += o.total_tokens;
        self.records += o.records;
        self.cost_nanos += o.cost_nanos;
        self.notional_nanos += o.notional_nanos;
        self.metered += o.metered;
    }

    /// The sort position of the bucket this becomes: most dollars, then most tokens.
    fn rank(&self) -> (i128, u64) {
        (
            if self.metered > 0 {
                self.cost_nanos
            } else {
                -1
            },
            self.total_tokens,
        )
    }

    fn bucket(&self, key: String) -> CostBucket {
        CostBucket {
            key,
            instrumented: true,
            metered: self.metered > 0,
            cost_usd: (self.metered > 0).then_some(dollars_of(self.cost_nanos)),
            notional_cost_usd: dollars_of(self.notional_nanos),
            input_tokens: Some(self.input_tokens),
            output_tokens: Some(self.output_tokens),
            total_tokens: Some(self.total_tokens),
            records: self.records,
        }
    }
}

/// Largest first: most dollars (none counts below zero), then most tokens, then by key.
fn bucket_order(a: &CostBucket, b: &CostBucket) -> std::cmp::Ordering {
    b.cost_usd
        .unwrap_or(-1.0)
        .total_cmp(&a.cost_usd.unwrap_or(-1.0))
        .then(b.total_tokens.cmp(&a.total_tokens))
        .then_with(|| a.key.cmp(&b.key))
}

fn largest(mut list: Vec<CostBucket>, keep: usize) -> Vec<CostBucket> {
    list.sort_by(bucket_order);
    list.truncate(keep);
    list
}

/// The `keep` largest items, ordered without building a bucket for every item.
fn largest_items(mut list: Vec<(&CorrelationKey, Acc)>, keep: usize) -> Vec<CostBucket> {
    let order = |a: &(&CorrelationKey, Acc), b: &(&CorrelationKey, Acc)| {
        let ((ac, at), (bc, bt)) = (a.1.rank(), b.1.rank());
        bc.cmp(&ac)
            .then(bt.cmp(&at))
            .then_with(|| a.0.as_str().cmp(b.0.as_str()))
    };
    if keep < list.len() {
        list.select_nth_unstable_by(keep, order);
        list.truncate(keep);
    }
    list.sort_by(order);
    list.into_iter()
        .map(|(k, a)| a.bucket(k.as_str().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{at, event, item, proof};
    use serde_json::json;

    /// Random changes (with many repeats, across many block splits and merges) leave the
    /// same values, percentiles and maximum as a plainly sorted list.
    #[test]
    fn sorted_blocks_match_a_sorted_list_through_any_changes() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = Sorted::default();
        let mut plain: Vec<f64> = Vec::new();
        let check = |s: &Sorted, plain: &[f64]| {
            assert_eq!(s.len(), plain.len());
            assert_eq!(s.iter().collect::<Vec<_>>(), plain);
            let stats = s.stats();
            assert_eq!(stats.p50_seconds, nearest_rank(plain, 50.0));
            assert_eq!(stats.p95_seconds, nearest_rank(plain, 95.0));
            assert_eq!(stats.max_seconds, plain.last().copied());
        };
        for round in 0..6 {
            // Grow past several splits, then shrink most of the way, then bulk-load.
            let (adds, removes) = if round % 2 == 0 {
                (3_000, 1_000)
            } else {
                (500, 2_000)
            };
            for _ in 0..adds {
                let v = (next() % 700) as f64 / 4.0;
                s.insert(v);
                let at = plain.partition_point(|x| *x < v);
                plain.insert(at, v);
            }
            for _ in 0..removes {
                let v = (next() % 700) as f64 / 4.0;
                s.remove(v);
                if let Some(at) = plain.iter().position(|x| *x == v) {
                    plain.remove(at);
                }
            }
            check(&s, &plain);
            s.unsettle();
            for _ in 0..300 {
                let v = (next() % 900) as f64;
                s.insert(v);
                plain.push(v);
            }
            // Removing while unsettled finds values placed before and values appended.
            for v in [plain[0], *plain.last().unwrap()] {
                s.remove(v);
                let at = plain.iter().position(|x| *x == v).unwrap();
                plain.remove(at);
            }
            s.settle();
            plain.sort_by(f64::total_cmp);
            check(&s, &plain);
        }
        assert!(s.blocks.len() > 1, "the run should have split blocks");
        assert!(
            s.blocks
                .iter()
                .all(|b| !b.is_empty() && b.len() < 2 * BLOCK)
        );
    }

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

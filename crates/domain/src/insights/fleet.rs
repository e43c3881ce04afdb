//! A tenant's fleet kept ready for the fleet-wide answers. Each item is held with what
//! those answers need from it — its rollup facts, the findings of the rules that read
//! the item alone, the reasons it waits on a person — worked out once when the item
//! changes. A fleet-wide answer is then one pass over those plus the rules that read
//! the clock, instead of working everything out again from every item.
//!
//! The answers are the same as the plain functions' ([`Rollups::compute`], [`detect`],
//! [`needs_you`]) over the same items; the tests hold them to that.
//!
//! [`detect`]: super::detect
//! [`needs_you`]: super::needs_you

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::anomalies::{
    Anomaly, History, Thresholds, clock_rules, item_rules, order, sample_spike, spikes,
};
use super::needs::{NeedsYou, Reason, clock_reason, in_order, item_reasons, ranked};
use super::rollups::{Names, RollupFacts, Rollups, Totals, Window};
use super::signals::can_fall_silent;
use crate::ids::CorrelationKey;
use crate::workitem::WorkItem;

/// One item with what the fleet-wide answers need from it.
struct Entry {
    item: Arc<WorkItem>,
    rollup: RollupFacts,
    /// Findings of the rules that read the item alone, shared with every answer.
    anomalies: Vec<Arc<Anomaly>>,
    /// Reasons it waits on a person that do not depend on the clock.
    reasons: Vec<Reason>,
    /// Whether the clock can make it stalled or stuck.
    can_fall_silent: bool,
}

impl Entry {
    /// The item's anomalies at `now`, spikes aside: the shared ones into `out`, the
    /// ones the clock raises into `fresh`.
    fn anomalies(
        &self,
        now: DateTime<Utc>,
        th: &Thresholds,
        out: &mut Vec<Arc<Anomaly>>,
        fresh: &mut Vec<Anomaly>,
    ) {
        out.extend(self.anomalies.iter().cloned());
        if self.can_fall_silent {
            clock_rules(&self.item, now, th, fresh);
        }
    }
}

/// A tenant's items, by canonical key, ready for fleet-wide answers.
pub struct Fleet {
    thresholds: Thresholds,
    entries: HashMap<CorrelationKey, Entry>,
    names: Names,
    history: History,
    /// The all-time rollups, kept current.
    totals: Totals,
    /// Keys by the time of their latest event, so a window that starts late reads
    /// only the items active since.
    by_updated: BTreeSet<(DateTime<Utc>, CorrelationKey)>,
}

impl Fleet {
    /// An empty fleet judged by `thresholds`.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            entries: HashMap::new(),
            names: Names::default(),
            history: History::default(),
            totals: Totals::default(),
            by_updated: BTreeSet::new(),
        }
    }

    /// Adds `item`, or replaces the item under its key.
    pub fn upsert(&mut self, item: Arc<WorkItem>) {
        self.history.record(&item);
        let mut anomalies = Vec::new();
        item_rules(&item, &self.thresholds, &mut anomalies);
        let entry = Entry {
            rollup: RollupFacts::of(&item, &mut self.names),
            reasons: item_reasons(&item),
            can_fall_silent: can_fall_silent(&item),
            anomalies: anomalies.into_iter().map(Arc::new).collect(),
            item,
        };
        let key = &entry.item.correlation_key;
        if let Some(old) = self.entries.get(key) {
            self.totals.remove(&old.rollup);
            self.by_updated.remove(&(old.item.updated_at, key.clone()));
        }
        self.totals.add(&entry.rollup);
        self.by_updated.insert((entry.item.updated_at, key.clone()));
        self.entries
            .insert(entry.item.correlation_key.clone(), entry);
    }

    /// Adds many items at once (a load): each distribution is sorted once at the end
    /// rather than kept in order item by item.
    pub fn extend(&mut self, items: impl IntoIterator<Item = Arc<WorkItem>>) {
        self.history.unsettle();
        self.totals.unsettle();
        for item in items {
            self.upsert(item);
        }
        self.history.settle();
        self.totals.settle();
    }

    /// Drops the item under `key` (merged away or deleted); whether there was one.
    pub fn remove(&mut self, key: &CorrelationKey) -> bool {
        self.history.forget(key);
        let Some(old) = self.entries.remove(key) else {
            return false;
        };
        self.totals.remove(&old.rollup);
        self.by_updated.remove(&(old.item.updated_at, key.clone()));
        true
    }

    /// The item under `key`.
    pub fn get(&self, key: &CorrelationKey) -> Option<&Arc<WorkItem>> {
        self.entries.get(key).map(|e| &e.item)
    }

    /// Whether an item is filed under `key`.
    pub fn contains(&self, key: &CorrelationKey) -> bool {
        self.entries.contains_key(key)
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every item, in no particular order.
    pub fn items(&self) -> impl Iterator<Item = &Arc<WorkItem>> {
        self.entries.values().map(|e| &e.item)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The spike and drift history of the fleet.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Rollups over `window` at `now`, each cost breakdown cut to its `keep` largest
    /// entries (their full sizes in `cost.entries`). All time is read off the totals
    /// kept current; a narrower window is one pass over the items' facts.
    pub fn rollups(&self, window: Window, now: DateTime<Utc>, keep: usize) -> Rollups {
        if window == Window::all() {
            return self.totals.rollups(&self.names, now, keep);
        }
        let facts: Box<dyn Iterator<Item = &RollupFacts>> = match window.since {
            // Nothing of an item's lies after its latest event.
            Some(since) => Box::new(
                self.by_updated
                    .range((since, CorrelationKey::lowest())..)
                    .filter_map(|(_, key)| self.entries.get(key).map(|e| &e.rollup)),
            ),
            None => Box::new(self.entries.values().map(|e| &e.rollup)),
        };
        let instrumented = Some(self.totals.instrumented());
        Rollups::from_facts(facts, &self.names, window, now, keep, instrumented)
    }

    /// Every anomaly at `now`, most severe first. The findings that read an item alone
    /// are shared, not copied, so the answer costs little more than the clock's and
    /// the spikes' findings.
    pub fn anomalies(&self, now: DateTime<Utc>) -> Vec<Arc<Anomaly>> {
        let th = &self.thresholds;
        let (mut out, mut fresh) = (Vec::new(), Vec::new());
        for e in self.entries.values() {
            e.anomalies(now, th, &mut out, &mut fresh);
        }
        for (key, sample) in self.history.spike_candidates(th) {
            if let (Some(e), Some(samples)) = (self.entries.get(key), self.history.samples(key)) {
                sample_spike(&e.item, samples, sample, &self.history, th, &mut fresh);
            }
        }
        fresh.extend(self.history.drift(th));
        out.extend(fresh.into_iter().map(Arc::new));
        out.sort_by(|a, b| order(a, b));
        out
    }

    /// The anomalies of the item under `key` at `now`, most severe first.
    pub fn anomalies_of(&self, key: &CorrelationKey, now: DateTime<Utc>) -> Vec<Arc<Anomaly>> {
        let th = &self.thresholds;
        let (mut out, mut fresh) = (Vec::new(), Vec::new());
        if let Some(e) = self.entries.get(key) {
            e.anomalies(now, th, &mut out, &mut fresh);
            spikes(&e.item, &self.history, th, &mut fresh);
        }
        fresh.extend(self.history.drift(th).filter(|a| &a.correlation_key == key));
        out.extend(fresh.into_iter().map(Arc::new));
        out.sort_by(|a, b| order(a, b));
        out
    }

    /// The items that need a person at `now`, most urgent first.
    pub fn needs_you(&self, now: DateTime<Utc>) -> Vec<NeedsYou> {
        in_order(
            self.entries
                .values()
                // Only items with a standing reason or a stage that can stall.
                .filter(|e| !e.reasons.is_empty() || e.can_fall_silent)
                .filter_map(|e| {
                    let mut reasons = e.reasons.clone();
                    if e.can_fall_silent {
                        reasons.extend(clock_reason(&e.item, now, &self.thresholds));
                    }
                    ranked(&e.item, reasons)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{at, event, item, proof};
    use crate::insights::{detect, needs_you};
    use serde_json::json;

    /// A mixed fleet: metered and unmetered usage on several models, failures, a
    /// review, an unproven pass, a flagged scan, a stall, and a cost outlier.
    fn fleet() -> Vec<WorkItem> {
        let mut out = Vec::new();
        for i in 0..40i64 {
            let key = format!("{}", 100 + i);
            let cost = if i == 39 {
                60.0
            } else {
                1.0 + (i % 5) as f64 * 0.1
            };
            let mode = ["api", "subscription", "local"][(i % 3) as usize];
            let model = ["m1", "m2"][(i % 2) as usize];
            let usage = json!({"usage": {"total_tokens": 1000 + i, "input_tokens": 800,
                "output_tokens": 200 + i, "cost_usd": cost, "model": model,
                "workers": [{"worker_id": format!("w{}", i % 4), "provider": "anthropic",
                    "tokens": 900, "cost_usd": cost, "billing_mode": mode}]}});
            let mut events = vec![
                event(&key, "pfactory", "s", "emitted", i, proof("pfactory")),
                event(&key, "aifactory", "t", "in_progress", i + 5, json!({})),
            ];
            match i % 6 {
                0 => events.push(event(&key, "aifactory", "t", "qa_failed", i + 30, usage)),
                1 => events.push(event(&key, "aifactory", "t", "human_review", i + 30, usage)),
                2 => events.push(event(
                    &key,
                    "tfactory",
                    "spec",
                    "triaged",
                    i + 40,
                    json!({}),
                )),
                3 => events.push(event(
                    &key,
                    "aifactory",
                    "t",
                    "backlog",
                    i + 30,
                    json!({"injection_scan": {"verdict": "flagged", "reason": "odd"}}),
                )),
                4 => {}
                _ => {
                    events.push(event(&key, "aifactory", "t", "done", i + 30, usage));
                    events.push(event(
                        &key,
                        "tfactory",
                        "spec",
                        "triaged",
                        i + 50,
                        proof("tfactory"),
                    ));
                }
            }
            out.push(item(&key, &events));
        }
        // A steady cost series on one model and an item far above it.
        for (i, cost) in (0..12)
            .map(|i| (i, 1.0 + i as f64 * 0.05))
            .chain([(12, 40.0)])
        {
            let key = format!("{}", 200 + i);
            let usage = json!({"usage": {"total_tokens": 100, "cost_usd": cost, "model": "m9"}});
            out.push(item(
                &key,
                &[event(&key, "aifactory", "p", "backlog", i, usage)],
            ));
        }
        out
    }

    fn plain(list: Vec<Arc<Anomaly>>) -> Vec<Anomaly> {
        list.into_iter().map(|a| (*a).clone()).collect()
    }

    fn built(items: &[WorkItem]) -> Fleet {
        let mut f = Fleet::new(Thresholds::default());
        for i in items {
            f.upsert(Arc::new(i.clone()));
        }
        f
    }

    #[test]
    fn a_bulk_load_answers_as_one_by_one_upserts_do() {
        let items = fleet();
        let mut bulk = Fleet::new(Thresholds::default());
        bulk.extend(items.iter().cloned().map(Arc::new));
        // Later changes keep order after the load.
        bulk.upsert(Arc::new(items[3].clone()));
        let one_by_one = built(&items);
        let now = at(2_000);
        assert_eq!(
            bulk.rollups(Window::all(), now, usize::MAX),
            one_by_one.rollups(Window::all(), now, usize::MAX)
        );
        assert_eq!(bulk.anomalies(now), one_by_one.anomalies(now));
        assert_eq!(*bulk.history(), *one_by_one.history());
    }

    #[test]
    fn answers_as_the_plain_functions_do_over_the_same_items() {
        let items = fleet();
        let f = built(&items);
        let th = Thresholds::default();
        let h = History::from_items(&items);
        for now in [at(60), at(2_000)] {
            assert_eq!(
                f.rollups(Window::all(), now, usize::MAX),
                Rollups::compute(&items, Window::all(), now)
            );
            // A window in the middle, one past every event, one before them all.
            for (since, until) in [(20, 55), (1_000, 1_100), (-10, 0)] {
                let window = Window {
                    since: Some(at(since)),
                    until: Some(at(until)),
                };
                assert_eq!(
                    f.rollups(window, now, usize::MAX),
                    Rollups::compute(&items, window, now),
                    "{since}..{until}"
                );
            }
            let open = Window {
                since: None,
                until: Some(at(30)),
            };
            assert_eq!(
                f.rollups(open, now, usize::MAX),
                Rollups::compute(&items, open, now)
            );
            assert_eq!(plain(f.anomalies(now)), detect(&items, &h, now, &th));
            assert_eq!(f.needs_you(now), needs_you(&items, now, &th));
        }
        let kinds: Vec<_> = [at(60), at(2_000)]
            .into_iter()
            .flat_map(|now| f.anomalies(now))
            .map(|a| a.kind)
            .collect();
        for kind in [
            "failure",
            "unproven",
            "injection_flagged",
            "stalled",
            "stuck",
            "cost_spike",
        ] {
            assert!(
                kinds.iter().any(|k| k.as_str() == kind),
                "the fleet exercises {kind}: {kinds:?}"
            );
        }
    }

    #[test]
    fn follows_replacements_and_removals() {
        let mut items = fleet();
        let mut f = built(&items);
        // Item 105 moves on: its stall and review end; item 100 goes away.
        let fixed = item(
            "105",
            &[
                event("105", "pfactory", "s", "emitted", 5, proof("pfactory")),
                event("105", "tfactory", "spec", "triaged", 90, proof("tfactory")),
            ],
        );
        f.upsert(Arc::new(fixed.clone()));
        items[5] = fixed;
        // Re-deliveries of unchanged items change nothing.
        for i in &items[10..20] {
            f.upsert(Arc::new(i.clone()));
        }
        assert!(f.remove(&items[0].correlation_key));
        assert!(!f.remove(&items[0].correlation_key));
        items.remove(0);
        let now = at(3_000);
        let th = Thresholds::default();
        assert_eq!(f.len(), items.len());
        assert_eq!(
            f.rollups(Window::all(), now, usize::MAX),
            Rollups::compute(&items, Window::all(), now)
        );
        assert_eq!(
            plain(f.anomalies(now)),
            detect(&items, &History::from_items(&items), now, &th)
        );
        assert_eq!(f.needs_you(now), needs_you(&items, now, &th));
        assert_eq!(*f.history(), History::from_items(&items));
    }

    #[test]
    fn a_cut_keeps_the_largest_and_the_full_sizes() {
        let items = fleet();
        let f = built(&items);
        let full = Rollups::compute(&items, Window::all(), at(60));
        let cut = f.rollups(Window::all(), at(60), 3);
        assert_eq!(cut.cost.by_workitem, full.cost.by_workitem[..3]);
        assert_eq!(cut.cost.entries.by_workitem, full.cost.by_workitem.len());
        assert_eq!(cut.cost.entries, full.cost.entries);
        assert!(full.cost.by_workitem.len() > 3);
    }

    #[test]
    fn one_items_anomalies_match_the_fleet_wide_list() {
        let items = fleet();
        let f = built(&items);
        let now = at(2_000);
        for item in &items {
            let key = &item.correlation_key;
            let want: Vec<Arc<Anomaly>> = f
                .anomalies(now)
                .into_iter()
                .filter(|a| &a.correlation_key == key)
                .collect();
            assert_eq!(f.anomalies_of(key, now), want, "{key}");
        }
    }
}

//! `cargo xtask bench insights`: the insight computations themselves, in-process, over the
//! same fleet `bench queries` seeds (folded into WorkItems without a server or store). It
//! times what a request pays when its answer is not memoised: right after an item
//! changed, every fleet-wide answer is recomputed or brought up to date.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfactory_domain::insights::{
    Fleet, History, Rollups, SearchIndex, Thresholds, Window, detect, needs_you,
};
use cfactory_domain::{CompletionEvent, WorkItem};

use crate::bench::percentile_ms;
use crate::queries::item_events;

/// Entries kept per cost breakdown, as the server keeps them (the API's largest `top`).
const KEEP: usize = 1_000;

/// Folds the seeded fleet into WorkItems.
fn fleet(items: usize, per_item: usize, now: chrono::DateTime<chrono::Utc>) -> Vec<WorkItem> {
    (0..items)
        .map(|i| {
            let events: Vec<CompletionEvent> = item_events(i, per_item, items, now)
                .iter()
                .map(|v| CompletionEvent::parse(&v.to_string()).expect("seed events parse"))
                .collect();
            let mut item = WorkItem::new(events[0].correlation_key.clone(), events[0].time);
            for e in &events {
                item.apply_event(e, e.time);
            }
            item
        })
        .collect()
}

fn time(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .collect()
}

/// Runs the insights benchmark, in an optimised build of this task (a debug build runs
/// itself again through `cargo run --release`).
pub fn run(items: usize, per_item: usize, runs: usize) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["run", "--release", "--quiet", "--package", "xtask", "--"])
            .args(["bench", "insights", "--items", &items.to_string()])
            .args(["--events-per-item", &per_item.to_string()])
            .args(["--runs", &runs.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "the optimised insights bench failed");
        return Ok(());
    }
    let now = chrono::Utc::now();
    let t0 = Instant::now();
    let fleet = fleet(items, per_item, now);
    eprintln!(
        "bench: folded {items} work items in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let th = Thresholds::default();
    let week = Window {
        since: Some(now - chrono::Duration::days(7)),
        until: None,
    };
    let history = History::from_items(&fleet);
    let changed = Arc::new(fleet[items / 2].clone());
    let t0 = Instant::now();
    let mut kept = Fleet::new(th.clone());
    kept.extend(fleet.iter().cloned().map(Arc::new));
    let built = t0.elapsed();
    let mut index = SearchIndex::from_items(&fleet);

    let rows: Vec<(&str, Vec<Duration>)> = vec![
        (
            "from items: rollups",
            time(runs, || {
                std::hint::black_box(Rollups::compute(&fleet, Window::all(), now));
            }),
        ),
        (
            "from items: anomalies",
            time(runs, || {
                std::hint::black_box(detect(&fleet, &history, now, &th));
            }),
        ),
        (
            "from items: needs-you",
            time(runs, || {
                std::hint::black_box(needs_you(&fleet, now, &th));
            }),
        ),
        (
            "kept: one item changes",
            time(runs, || kept.upsert(changed.clone())),
        ),
        (
            "kept: rollups (all time)",
            time(runs, || {
                std::hint::black_box(kept.rollups(Window::all(), now, KEEP));
            }),
        ),
        (
            "kept: rollups (7 days)",
            time(runs, || {
                std::hint::black_box(kept.rollups(week, now, KEEP));
            }),
        ),
        (
            "kept: anomalies after a change",
            time(runs, || {
                kept.upsert(changed.clone());
                std::hint::black_box(kept.anomalies(now));
            }),
        ),
        (
            "kept: needs-you",
            time(runs, || {
                std::hint::black_box(kept.needs_you(now));
            }),
        ),
        ("search index update", time(runs, || index.upsert(&changed))),
    ];
    println!();
    println!(
        "insights: kept fleet built in {:.2} s ({:.1} µs per item)",
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / items as f64
    );
    println!();
    println!("insights: {items} work items, {runs} runs each, one thread");
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "computation", "p50 ms", "p95 ms", "max ms"
    );
    for (name, samples) in rows {
        println!(
            "{name:<32} {:>9.2} {:>9.2} {:>9.2}",
            percentile_ms(&samples, 50.0),
            percentile_ms(&samples, 95.0),
            percentile_ms(&samples, 100.0),
        );
    }
    Ok(())
}

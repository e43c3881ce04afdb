//! Insights: the answers the cockpit exists for — what did it cost, how long did it
//! take, what is wrong, what needs me, where is feature X — as pure functions over
//! WorkItems.
//!
//! Its room in the hexagon: inside the domain, beside the WorkItem it reads. No I/O and
//! no clock: every function takes the items and the moment `now` from its caller (the
//! server's handlers, the copilot's tools), which load them through the domain's ports.
//! The pieces a server keeps current at ingest instead of recomputing —
//! [`Fleet`] for rollups, anomalies and needs-you (with [`History`] for spike
//! baselines inside it) and [`SearchIndex`] for search — update one item at a time.

pub mod anomalies;
mod billing;
pub mod cards;
pub mod fleet;
pub mod needs;
pub mod rollups;
pub mod search;
mod signals;

#[cfg(test)]
mod fixtures;

pub use anomalies::{Anomaly, AnomalyKind, History, SeriesKey, Severity, Thresholds, detect};
pub use billing::{is_metered, split_dollars};
pub use cards::{InsightCard, Suggestion};
pub use fleet::Fleet;
pub use needs::{NeedsYou, needs_you};
pub use rollups::{
    CostBucket, CostRollup, DailyPoint, DurationStats, GroupSizes, Rollups, Window,
    lead_time_seconds, span_seconds,
};
pub use search::{MatchedOn, SearchHit, SearchIndex, search};

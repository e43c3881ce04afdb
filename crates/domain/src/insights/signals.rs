//! Read-time signals shared by anomalies and needs-you: the current stage, how long it
//! has been silent, and whether a status is a person's discard.

use chrono::{DateTime, Utc};

use super::anomalies::Thresholds;
use crate::taxonomy::StatusClass;
use crate::workitem::{Stage, StageName, WorkItem};

/// The stage with the latest activity (ties go to the further stage): the item's current
/// state. An upstream stage whose downstream moved on has handed off and is not current,
/// while coding resumed after a failed test is.
pub(crate) fn current_stage(item: &WorkItem) -> Option<(StageName, &Stage)> {
    item.stages.iter().max_by_key(|(name, s)| (s.at, *name))
}

/// Whether a status contains one of `tokens`, split as the taxonomy splits it.
pub(crate) fn has_token(status: &str, tokens: &[&str]) -> bool {
    status
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .any(|t| tokens.contains(&t))
}

/// A plan a person discarded: closed, not failed.
pub(crate) fn is_discarded_plan(name: StageName, stage: &Stage) -> bool {
    name == StageName::PLAN && has_token(&stage.status, &["discard", "discarded"])
}

/// How a silent stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    /// Running and silent past the stall deadline.
    Stalled,
    /// Running and silent past the stuck deadline.
    Stuck,
    /// The upstream itself says `stuck`.
    UpstreamStuck,
}

/// The stalled or stuck stage of an item, with its silence in seconds. An upstream's
/// `stuck` on any stage counts; otherwise only the current stage, and only when it is in
/// the running class (review and queued are parked, never stalled).
pub(crate) fn silence<'a>(
    item: &'a WorkItem,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Option<(StageName, &'a Stage, Silence, i64)> {
    let quiet = |s: &Stage| (now - s.at).num_seconds().max(0);
    if let Some((name, s)) = item
        .stages
        .iter()
        .find(|(_, s)| s.status_class == StatusClass::Stuck)
    {
        return Some((name, s, Silence::UpstreamStuck, quiet(s)));
    }
    let (name, s) = current_stage(item)?;
    if s.status_class != StatusClass::Running {
        return None;
    }
    let secs = quiet(s);
    if secs > th.stuck_seconds {
        Some((name, s, Silence::Stuck, secs))
    } else if secs > th.stall_seconds {
        Some((name, s, Silence::Stalled, secs))
    } else {
        None
    }
}

/// Whether [`silence`] can find anything on `item` at some moment: a stage the upstream
/// calls stuck, or a current stage in the running class. Until the item changes, the
/// answer holds for every `now`.
pub(crate) fn can_fall_silent(item: &WorkItem) -> bool {
    item.stages
        .iter()
        .any(|(_, s)| s.status_class == StatusClass::Stuck)
        || current_stage(item).is_some_and(|(_, s)| s.status_class == StatusClass::Running)
}

/// The item's title, or its key when it has none.
pub(crate) fn display_title(item: &WorkItem) -> String {
    item.title
        .clone()
        .unwrap_or_else(|| item.correlation_key.as_str().to_owned())
}

/// A compact human duration: `45s`, `20m`, `3h 5m`, `2d 4h`.
pub(crate) fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

//! What the planner reads from an item: its timeline parsed once (newest first), the
//! gate it waits at, and the status words that name a gate.
//!
//! Its room in the hexagon: pure domain logic inside the planner; no I/O.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::text::safe_token;
use super::{PlanContext, Refusal};
use crate::event::Service;
use crate::ports::TimelineEntry;
use crate::taxonomy::StatusClass;
use crate::workitem::{Stage, WorkItem};

/// The item, its timeline parsed once (newest first), and the moment.
pub(super) struct Facts<'a> {
    pub(super) item: &'a WorkItem,
    events: Vec<(&'a TimelineEntry, Value)>,
    pub(super) now: DateTime<Utc>,
    pub(super) context: &'a PlanContext,
}

impl<'a> Facts<'a> {
    pub(super) fn new(
        item: &'a WorkItem,
        timeline: &'a [TimelineEntry],
        now: DateTime<Utc>,
        context: &'a PlanContext,
    ) -> Self {
        let mut events: Vec<(&TimelineEntry, Value)> = timeline
            .iter()
            .filter_map(|e| Some((e, serde_json::from_str::<Value>(&e.raw).ok()?)))
            .filter(|(_, v)| v.is_object())
            .collect();
        events.sort_by_key(|(e, _)| std::cmp::Reverse((e.time, e.seq)));
        Self {
            item,
            events,
            now,
            context,
        }
    }

    pub(super) fn key(&self) -> &str {
        self.item.correlation_key.as_str()
    }

    /// The item's entries from `service`, newest first.
    pub(super) fn entries_of(
        &self,
        service: Service,
    ) -> impl Iterator<Item = &(&'a TimelineEntry, Value)> {
        self.events
            .iter()
            .filter(move |(e, _)| e.service == service)
    }

    /// `#142` (or `acme/shop#142`) for issue keys, `pf-abc` otherwise.
    pub(super) fn label(&self) -> String {
        match self.item.correlation_key.issue_ref() {
            Some((None, n)) => format!("#{n}"),
            Some((Some(repo), n)) => format!("{repo}#{n}"),
            None => format!("`{}`", self.key()),
        }
    }

    /// One line naming each stage's status, for refusals.
    pub(super) fn stage_summary(&self) -> String {
        let parts: Vec<String> = self
            .item
            .stages
            .iter()
            .map(|(name, s)| {
                format!(
                    "{} {} ({})",
                    name.as_str(),
                    safe_token(&s.status),
                    s.status_class.as_str()
                )
            })
            .collect();
        if parts.is_empty() {
            "it has no stage yet".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The gate an item waits at.
pub(super) enum Gate<'a> {
    /// A TFactory test plan waiting for approval.
    TestPlan(&'a Stage),
    /// An AIFactory task in human review.
    CodeReview(&'a Stage),
    /// A PFactory plan awaiting approval, or still being reviewed.
    Plan(&'a Stage),
}

fn tokens(status: &str) -> Vec<String> {
    status
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has_tokens(status: &str, wanted: &[&str]) -> bool {
    let t = tokens(status);
    wanted.iter().all(|w| t.iter().any(|x| x == w))
}

pub(super) fn awaiting_approval(status: &str) -> bool {
    has_tokens(status, &["awaiting", "approval"])
}

pub(super) fn in_human_review(status: &str) -> bool {
    has_tokens(status, &["human", "review"])
}

/// Whether TFactory's test plan for `stage` waits for approval: the newest TFactory event
/// of that spec that names a `plan_status` decides; else a status that says so, or
/// `planning` (where TFactory's plan gate sits).
fn test_plan_waiting(f: &Facts<'_>, stage: &Stage) -> bool {
    let named = f
        .entries_of(Service::TFACTORY)
        .filter(|(e, _)| e.task_id == stage.task_id)
        .find_map(|(_, v)| v.get("plan_status").and_then(Value::as_str));
    match named {
        Some(plan_status) => awaiting_approval(plan_status),
        None => awaiting_approval(&stage.status) || stage.status.eq_ignore_ascii_case("planning"),
    }
}

pub(super) fn find_gate<'a>(f: &Facts<'a>) -> Option<Gate<'a>> {
    let item: &'a WorkItem = f.item;
    let stages = &item.stages;
    if let Some(test) = stages.test()
        && !test.status_class.is_terminal()
        && test_plan_waiting(f, test)
    {
        return Some(Gate::TestPlan(test));
    }
    if let Some(code) = stages.code()
        && in_human_review(&code.status)
    {
        return Some(Gate::CodeReview(code));
    }
    if let Some(plan) = stages.plan()
        && (plan.awaits_approval() || plan.status_class == StatusClass::Review)
    {
        return Some(Gate::Plan(plan));
    }
    None
}

pub(super) fn no_gate(f: &Facts<'_>, verb: &str) -> Refusal {
    Refusal::new(format!(
        "Nothing on {} waits at a gate to {verb}: {}. Gates are a PFactory plan awaiting \
         approval, a TFactory test plan awaiting approval, and an AIFactory task in human_review.",
        f.label(),
        f.stage_summary()
    ))
}

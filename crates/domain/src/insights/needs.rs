//! Needs you: the WorkItems waiting on a human decision, and why.
//!
//! Order, most urgent first: a flagged injection scan (work parked on a possible
//! attack), then a stalled or stuck stage (nothing will move on its own), a plan
//! awaiting approval, a stage in review, and an unproven pass. Items with the same most
//! urgent reason go oldest wait first (the earliest time among their reasons), then by
//! key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::anomalies::Thresholds;
use super::signals::{Silence, display_title, human_duration, silence};
use crate::ids::CorrelationKey;
use crate::proof::Proof;
use crate::taxonomy::StatusClass;
use crate::workitem::{Stage, StageName, WorkItem};

/// A WorkItem waiting on a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeedsYou {
    /// The WorkItem.
    pub correlation_key: CorrelationKey,
    /// Its title, or its key.
    pub title: String,
    /// Why, most urgent first.
    pub reasons: Vec<String>,
}

/// Urgency ranks, lower is more urgent.
const FLAGGED: u8 = 0;
const STALLED: u8 = 1;
const APPROVAL: u8 = 2;
const REVIEW: u8 = 3;
const UNPROVEN: u8 = 4;

fn awaiting_approval(name: StageName, stage: &Stage) -> bool {
    name == StageName::PLAN && stage.awaits_approval()
}

/// One reason an item needs a person: its urgency rank, since when, and the sentence.
pub(crate) type Reason = (u8, DateTime<Utc>, String);

/// The reasons that read the item alone (a flagged scan, an approval, a review, an
/// unproven pass); they change only when the item does.
pub(crate) fn item_reasons(item: &WorkItem) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for (name, s) in item.stages.iter() {
        let n = name.as_str();
        if let Some(scan) = &s.injection_scan
            && scan.verdict.eq_ignore_ascii_case("flagged")
        {
            let why = scan.reason.as_deref().unwrap_or("no reason given");
            reasons.push((
                FLAGGED,
                s.at,
                format!("{n}: injection scan flagged ({why})"),
            ));
        }
        if awaiting_approval(name, s) {
            reasons.push((APPROVAL, s.at, format!("{n}: plan awaiting approval")));
        } else if s.status_class == StatusClass::Review {
            let why = s.halt_reason.as_deref().unwrap_or(&s.status);
            let what = if s.needs_human_review() {
                "a person must review"
            } else {
                "in review"
            };
            reasons.push((REVIEW, s.at, format!("{n}: {what} ({why})")));
        }
        if s.proof == Proof::Unproven {
            reasons.push((
                UNPROVEN,
                s.at,
                format!("{n}: reported {} without evidence (unproven)", s.status),
            ));
        }
    }
    reasons
}

/// The reason that reads the clock: a stage stalled or stuck at `now`.
pub(crate) fn clock_reason(item: &WorkItem, now: DateTime<Utc>, th: &Thresholds) -> Option<Reason> {
    let (name, s, kind, secs) = silence(item, now, th)?;
    let what = match kind {
        Silence::Stalled => "stalled",
        Silence::Stuck | Silence::UpstreamStuck => "stuck",
    };
    Some((
        STALLED,
        s.at,
        format!(
            "{}: {what} ({}, silent {})",
            name.as_str(),
            s.status,
            human_duration(secs)
        ),
    ))
}

/// An item with its reasons, ranked by its most urgent one and its oldest wait; `None`
/// when there is no reason.
pub(crate) type Ranked = (u8, DateTime<Utc>, NeedsYou);

pub(crate) fn ranked(item: &WorkItem, mut reasons: Vec<Reason>) -> Option<Ranked> {
    reasons.sort_by_key(|r| (r.0, r.1));
    let rank = reasons.first()?.0;
    let oldest = reasons.iter().map(|r| r.1).min()?;
    Some((
        rank,
        oldest,
        NeedsYou {
            correlation_key: item.correlation_key.clone(),
            title: display_title(item),
            reasons: reasons.into_iter().map(|r| r.2).collect(),
        },
    ))
}

/// Most urgent first, then the longest wait, then by key.
pub(crate) fn in_order(mut ranked: Vec<Ranked>) -> Vec<NeedsYou> {
    ranked.sort_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| a.2.correlation_key.cmp(&b.2.correlation_key))
    });
    ranked.into_iter().map(|r| r.2).collect()
}

/// The items in `items` that need a person at the moment `now`, most urgent first.
pub fn needs_you<'a>(
    items: impl IntoIterator<Item = &'a WorkItem>,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Vec<NeedsYou> {
    in_order(
        items
            .into_iter()
            .filter_map(|item| {
                let mut reasons = item_reasons(item);
                reasons.extend(clock_reason(item, now, th));
                ranked(item, reasons)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{at, event, item, proof};
    use serde_json::json;

    fn one(
        key: &str,
        service: &str,
        status: &str,
        minute: i64,
        extra: serde_json::Value,
    ) -> WorkItem {
        item(key, &[event(key, service, "t", status, minute, extra)])
    }

    #[test]
    fn lists_what_waits_on_a_person_most_urgent_first() {
        let items = [
            one("unproven", "tfactory", "triaged", 0, json!({})),
            one("review", "aifactory", "human_review", 0, json!({})),
            one("approval", "pfactory", "awaiting_approval", 0, json!({})),
            one("stalled", "aifactory", "in_progress", 0, json!({})),
            one(
                "flagged",
                "aifactory",
                "backlog",
                0,
                json!({"injection_scan": {"verdict": "flagged", "reason": "ignore previous"}}),
            ),
            one("fine", "tfactory", "triaged", 0, proof("tfactory")),
            one("working", "aifactory", "in_progress", 20, json!({})),
        ];
        let got = needs_you(&items, at(20), &Thresholds::default());
        let keys: Vec<&str> = got.iter().map(|n| n.correlation_key.as_str()).collect();
        assert_eq!(
            keys,
            ["flagged", "stalled", "approval", "review", "unproven"]
        );
        assert_eq!(got[2].reasons, ["plan: plan awaiting approval"]);
        assert!(got[1].reasons[0].starts_with("code: stalled"));
    }

    #[test]
    fn a_running_stage_needs_no_one_until_the_stall_deadline() {
        let items = [one("1", "aifactory", "in_progress", 0, json!({}))];
        let th = Thresholds::default();
        assert!(needs_you(&items, at(15), &th).is_empty());
        assert_eq!(needs_you(&items, at(16), &th).len(), 1);
    }

    #[test]
    fn ties_go_to_the_longest_wait() {
        let items = [
            one("newer", "aifactory", "human_review", 30, json!({})),
            one("older", "aifactory", "human_review", 10, json!({})),
        ];
        let got = needs_you(&items, at(40), &Thresholds::default());
        assert_eq!(got[0].correlation_key.as_str(), "older");
    }
}

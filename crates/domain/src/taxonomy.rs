//! The family's status taxonomy: any service's status string mapped to one lifecycle
//! class by exact token match (never substring: `installed` is not `stalled`).

use serde::{Deserialize, Serialize};

/// The lifecycle class of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    /// Terminal and unhealthy.
    Failed,
    /// Terminal and healthy.
    Done,
    /// Parked for a human or AI decision; still in flight.
    Review,
    /// Not started.
    Queued,
    /// Executing, or an unknown status.
    Running,
    /// Marked stuck by an upstream.
    Stuck,
}

const FAILED: &[&str] = &[
    "fail",
    "failed",
    "failure",
    "reject",
    "rejected",
    "block",
    "blocked",
    "error",
    "errored",
    "cancel",
    "cancelled",
    "canceled",
    "discard",
    "discarded",
    "abort",
    "aborted",
];
const DONE: &[&str] = &[
    "done",
    "merged",
    "triaged",
    "emitted",
    "complete",
    "completed",
    "accept",
    "accepted",
    "passed",
    "approved",
    "shipped",
    "succeeded",
    "success",
    "ready",
    "closed",
    "skip",
    "skipped",
];
const REVIEW: &[&str] = &["review", "reviewing", "awaiting"];
const QUEUED: &[&str] = &["backlog", "pending", "queued", "todo", "icebox", "draft"];
const STUCK: &[&str] = &["stuck"];

impl StatusClass {
    /// Classifies a status: lower-cased, split on whitespace, `_` and `-`, matched token
    /// by token. Precedence: failed, done, review, queued, stuck, then running (which is
    /// also the answer for a present but unknown status).
    pub fn classify(status: &str) -> Self {
        let lower = status.to_lowercase();
        let tokens: Vec<&str> = lower
            .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
            .filter(|t| !t.is_empty())
            .collect();
        let any = |set: &[&str]| tokens.iter().any(|t| set.contains(t));
        if any(FAILED) {
            Self::Failed
        } else if any(DONE) {
            Self::Done
        } else if any(REVIEW) {
            Self::Review
        } else if any(QUEUED) {
            Self::Queued
        } else if any(STUCK) {
            Self::Stuck
        } else {
            Self::Running
        }
    }

    /// Done or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }

    /// Running or stuck: a stage that can go silent and stall.
    pub fn can_stall(self) -> bool {
        matches!(self, Self::Running | Self::Stuck)
    }

    /// The class's name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Review => "review",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Stuck => "stuck",
        }
    }

    /// Parses a class name as the API spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "failed" => Self::Failed,
            "done" => Self::Done,
            "review" => Self::Review,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "stuck" => Self::Stuck,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StatusClass::{self, *};

    #[test]
    fn upstream_vocabularies_classify() {
        let cases = [
            ("emitted", Done),
            ("awaiting_approval", Review),
            ("draft", Queued),
            ("decomposed", Running),
            ("in_progress", Running),
            ("human_review", Review),
            ("ai_review", Review),
            ("qa_failed", Failed),
            ("merged", Done),
            ("backlog", Queued),
            ("triaged", Done),
            ("triaged_empty", Done),
            ("triager_failed", Failed),
            ("stuck", Stuck),
            ("Rejected", Failed),
            ("QA-Approved", Done),
        ];
        for (status, class) in cases {
            assert_eq!(StatusClass::classify(status), class, "{status}");
        }
    }

    #[test]
    fn tokens_match_exactly_never_by_substring() {
        assert_eq!(StatusClass::classify("installed"), Running);
        assert_eq!(StatusClass::classify("already"), Running);
        assert_eq!(StatusClass::classify("failing_over"), Running);
        assert_eq!(StatusClass::classify("unstuckable"), Running);
    }

    #[test]
    fn names_round_trip() {
        for class in [Failed, Done, Review, Queued, Running, Stuck] {
            assert_eq!(StatusClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(StatusClass::parse("green"), None);
    }
}

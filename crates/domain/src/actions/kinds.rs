//! The action kinds: the fixed list of things the copilot (or a person) may propose, with
//! their API spellings and the names of the copilot tools that propose them.
//!
//! Its room in the hexagon: the domain's vocabulary for actions; pure, no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The things the copilot may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Pass the gate the item waits at: a PFactory plan approval, a TFactory test-plan
    /// approval, or opening and merging the PR of an AIFactory task in human review.
    ApproveGate,
    /// Hand an approved plan's issue to AIFactory (create-and-run).
    TriggerHandoff,
    /// Send a correction to AIFactory (apply-correction) built from failing verdicts.
    KickHandback,
    /// Reset an AIFactory task that stopped reporting to backlog, without restarting it.
    Recover,
    /// Reset a stopped AIFactory task and start it again (`autoRestart: true`).
    RecoverAndRestart,
    /// Have PFactory create an approved plan's GitHub issues (emit, not a dry run).
    EmitIssues,
    /// Turn down what waits for review: a PFactory plan, a TFactory test plan, or an
    /// AIFactory task in human review (deleted).
    RejectReview,
}

impl ActionKind {
    /// Every kind, in the order tools list them.
    pub const ALL: [ActionKind; 7] = [
        Self::ApproveGate,
        Self::EmitIssues,
        Self::TriggerHandoff,
        Self::KickHandback,
        Self::Recover,
        Self::RecoverAndRestart,
        Self::RejectReview,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApproveGate => "approve_gate",
            Self::TriggerHandoff => "trigger_handoff",
            Self::KickHandback => "kick_handback",
            Self::Recover => "recover",
            Self::RecoverAndRestart => "recover_and_restart",
            Self::EmitIssues => "emit_issues",
            Self::RejectReview => "reject_review",
        }
    }

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The copilot tool that proposes this kind: `propose_` and the kind.
    pub fn tool_name(self) -> &'static str {
        match self {
            Self::ApproveGate => "propose_approve_gate",
            Self::TriggerHandoff => "propose_trigger_handoff",
            Self::KickHandback => "propose_kick_handback",
            Self::Recover => "propose_recover",
            Self::RecoverAndRestart => "propose_recover_and_restart",
            Self::EmitIssues => "propose_emit_issues",
            Self::RejectReview => "propose_reject_review",
        }
    }

    /// The kind a tool name proposes, if it is one of the propose tools.
    pub fn from_tool_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tool_name() == name)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::HttpMethod;
    use serde_json::json;

    #[test]
    fn kinds_round_trip_and_name_their_tools() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse(k.as_str()), Some(k));
            assert_eq!(k.tool_name(), format!("propose_{}", k.as_str()));
            assert_eq!(ActionKind::from_tool_name(k.tool_name()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(ActionKind::parse("confirm"), None);
        assert_eq!(HttpMethod::parse("post"), None);
        assert_eq!(
            serde_json::to_value(HttpMethod::Delete).unwrap(),
            json!("DELETE")
        );
    }
}

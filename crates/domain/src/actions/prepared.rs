//! A proposal as it is kept until a person decides: its steps, its status through its
//! life, what each executed step got back, and how long it waits before it expires.
//!
//! Its room in the hexagon: domain types, serialised as the stores and the API keep them;
//! the [`ActionStore`](crate::ports::ActionStore) port stores them. No I/O.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ActionKind, Endpoint, HttpMethod, fill_placeholders};
use crate::event::Service;
use crate::ids::{CorrelationKey, TenantId};

/// How long a proposal waits for a person before it expires: 15 minutes.
pub const DEFAULT_ACTION_TTL_SECONDS: i64 = 15 * 60;

/// One request of an action. `payload` is the JSON body; `null` means no body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionStep {
    /// The method.
    pub method: HttpMethod,
    /// The root-relative endpoint on the target service.
    pub endpoint: Endpoint,
    /// The JSON body (`null`: none), possibly holding placeholders.
    #[serde(default)]
    pub payload: Value,
}

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting for a person to confirm or reject it.
    Prepared,
    /// Claimed by a confirm whose steps are running; ends as executed or failed. Lets a
    /// server claim an action before it sends anything, so two confirms cannot both run it.
    Executing,
    /// Confirmed, and every step succeeded.
    Executed,
    /// Confirmed, and a step failed or was refused (the results say which and why).
    Failed,
    /// A person turned it down.
    Rejected,
    /// Nobody confirmed it before `expires_at`.
    Expired,
}

impl ActionStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "prepared" => Self::Prepared,
            "executing" => Self::Executing,
            "executed" => Self::Executed,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether nothing can happen to the action any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Prepared | Self::Executing)
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a person or agent reached CFactory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// The cockpit (a browser session, or open mode from the cockpit's own origin).
    Ui,
    /// The HTTP API with a key.
    Api,
    /// The copilot's chat.
    Copilot,
    /// An MCP client.
    Mcp,
}

impl Door {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ui => "ui",
            Self::Api => "api",
            Self::Copilot => "copilot",
            Self::Mcp => "mcp",
        }
    }
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acts on an action: the credential it came with (`key:…`, `session:…` or `local`
/// in open mode) and the door it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The credential's public name.
    pub id: String,
    /// The door.
    pub door: Door,
}

impl Actor {
    /// `id` through `door`.
    pub fn new(id: impl Into<String>, door: Door) -> Self {
        Self {
            id: id.into(),
            door,
        }
    }

    /// How the audit log names it: `key:abc via mcp`.
    pub fn audit_name(&self) -> String {
        format!("{} via {}", self.id, self.door)
    }
}

/// What one executed step got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The method sent.
    pub method: HttpMethod,
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The HTTP status, when an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Whether the step succeeded (a 2xx without `"success": false`).
    pub ok: bool,
    /// The upstream's answer, as JSON (`null` when none or not JSON).
    #[serde(default)]
    pub response: Value,
    /// Why it failed: the upstream's reason, a timeout, no connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// A proposal, stored server-side until a person confirms or rejects it, or it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedAction {
    /// The action's id.
    pub id: String,
    /// What it does.
    pub kind: ActionKind,
    /// The WorkItem it acts on (its canonical key when proposed).
    pub correlation_key: CorrelationKey,
    /// The service the steps are sent to.
    pub target_service: Service,
    /// The first step's method.
    pub method: HttpMethod,
    /// The first step's endpoint.
    pub endpoint: Endpoint,
    /// The first step's body (`null`: none), possibly holding placeholders.
    pub payload: Value,
    /// Steps sent after the first, in order, each only if the one before succeeded.
    #[serde(default)]
    pub follow_ups: Vec<ActionStep>,
    /// Why this call, in the cockpit's words, for the person who confirms.
    pub rationale: String,
    /// Where the action is in its life.
    pub status: ActionStatus,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
    /// When it stops being confirmable.
    pub expires_at: DateTime<Utc>,
    /// The proposer's note, if any.
    #[serde(default)]
    pub note: Option<String>,
    /// Who proposed it (`key:…`, `session:…` or `local`).
    pub proposed_by: String,
    /// Through which door it was proposed; absent on actions stored before doors were
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_via: Option<Door>,
    /// Who confirmed or rejected it, once someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Through which door it was confirmed or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_via: Option<Door>,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Each executed step's result, in order; empty until executed.
    #[serde(default)]
    pub results: Vec<StepResult>,
}

impl PreparedAction {
    /// Every step in order: the first, then the follow-ups.
    pub fn steps(&self) -> Vec<ActionStep> {
        let mut steps = vec![ActionStep {
            method: self.method,
            endpoint: self.endpoint.clone(),
            payload: self.payload.clone(),
        }];
        steps.extend(self.follow_ups.iter().cloned());
        steps
    }

    /// Every step with its placeholders filled for a confirm by `approver` at `at`.
    pub fn steps_for_confirm(&self, approver: &str, at: DateTime<Utc>) -> Vec<ActionStep> {
        self.steps()
            .into_iter()
            .map(|s| ActionStep {
                payload: fill_placeholders(&s.payload, approver, at),
                ..s
            })
            .collect()
    }

    /// Whether the action is past its expiry at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::fixtures::{af, emitted, plan};
    use chrono::Duration;
    use serde_json::json;

    #[test]
    fn a_prepared_action_serialises_as_the_issue_shows() {
        let p = plan(
            ActionKind::ApproveGate,
            &[
                emitted(),
                af("human_review", json!({"review_reason": "completed"})),
            ],
            None,
        )
        .unwrap();
        let action = p.prepare(
            "act_1",
            TenantId::default_tenant(),
            &super::Actor::new("copilot", super::Door::Copilot),
        );
        let v = serde_json::to_value(&action).unwrap();
        for field in [
            "id",
            "kind",
            "correlation_key",
            "target_service",
            "method",
            "endpoint",
            "payload",
            "follow_ups",
            "rationale",
            "status",
            "expires_at",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["kind"], json!("approve_gate"));
        assert_eq!(v["status"], json!("prepared"));
        assert_eq!(v["target_service"], json!("aifactory"));
        assert_eq!(v["method"], json!("POST"));
        assert_eq!(
            v["follow_ups"],
            json!([{"method": "POST", "endpoint": "/api/tasks/proj:001/worktree/merge", "payload": null}])
        );
        let back: PreparedAction = serde_json::from_value(v).unwrap();
        assert_eq!(back, action);
        assert_eq!(back.steps().len(), 2);
        assert!(!back.is_expired_at(back.expires_at - Duration::seconds(1)));
        assert!(back.is_expired_at(back.expires_at));
    }
}

//! Evidence gates (RFC-0001a): a successful terminal status counts as proven only with
//! the evidence its stage owes. Anything less is shown as unproven, never green.

use serde::{Deserialize, Serialize};

use crate::event::{Evidence, Service};
use crate::taxonomy::StatusClass;

/// Whether a stage's success is backed by evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// A done-class status with the evidence its stage owes.
    Proven,
    /// A done-class status without it.
    Unproven,
    /// The stage is not in the done class.
    NotApplicable,
}

/// What a gate looks at on the event shown by a stage.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    /// The stage's service.
    pub service: Service,
    /// Its status class.
    pub class: StatusClass,
    /// The evidence block, if any.
    pub evidence: Option<&'a Evidence>,
    /// TFactory's outcome.
    pub outcome: Option<&'a str>,
    /// TFactory's halt reason.
    pub halt_reason: Option<&'a str>,
}

/// The evidence a service's successful stage owes; each service names its rule in the
/// service table ([`crate::services::SERVICES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofRule {
    /// A plan is proven by an emitted epic (an integer issue number, whatever its child
    /// count: a single-issue plan has none) or, on the contract path, by the AIFactory
    /// task it handed to (`proof_kind: contract` with `aifactory_task_id`).
    EmittedIssues,
    /// A build is proven by its tokens; the RFC's `phases_completed`, when sent, must not
    /// be empty, and without it `proof_kind` must be `tokens`.
    SpentTokens,
    /// A verification is proven by a passing RFC verdict with tests executed, or by
    /// counted verdicts, unless the outcome is `failure`/`human_review` or the halt
    /// reason says `no_evidence`.
    Verdicts,
}

impl ProofRule {
    /// Whether `e` (with the rest of `input`) satisfies the rule.
    pub fn holds(self, e: &Evidence, input: &GateInput<'_>) -> bool {
        match self {
            Self::EmittedIssues => {
                let epic = e
                    .epic_issue
                    .as_ref()
                    .is_some_and(|v| v.as_u64().is_some_and(|n| n > 0));
                let contract = kind_is(e, "contract")
                    && e.aifactory_task_id
                        .as_deref()
                        .is_some_and(|t| !t.trim().is_empty());
                epic || contract
            }
            Self::SpentTokens => {
                e.total_tokens.is_some_and(|n| n > 0)
                    && match &e.phases_completed {
                        Some(phases) => !phases.is_empty(),
                        None => kind_is(e, "tokens"),
                    }
            }
            Self::Verdicts => {
                let failed_outcome = input.outcome.is_some_and(|o| {
                    o.eq_ignore_ascii_case("failure") || o.eq_ignore_ascii_case("human_review")
                }) || input
                    .halt_reason
                    .is_some_and(|r| r.starts_with("no_evidence"));
                let rfc_pass =
                    e.verdict.as_deref() == Some("pass") && e.tests_executed.is_some_and(|n| n > 0);
                let counted = [e.verdicts, e.accepted, e.flagged]
                    .iter()
                    .any(|n| n.is_some_and(|n| n > 0));
                !failed_outcome && (rfc_pass || counted)
            }
        }
    }
}

/// Applies the evidence gate of the stage's service, as its row of the service table
/// names it; a service without a rule (CFactory's own events) is not judged.
pub fn judge(input: GateInput<'_>) -> Proof {
    let Some(rule) = input.service.rules().proof else {
        return Proof::NotApplicable;
    };
    if input.class != StatusClass::Done {
        return Proof::NotApplicable;
    }
    match input.evidence {
        Some(e) if rule.holds(e, &input) => Proof::Proven,
        _ => Proof::Unproven,
    }
}

fn kind_is(e: &Evidence, kind: &str) -> bool {
    e.proof_kind
        .as_deref()
        .is_some_and(|k| k.trim().eq_ignore_ascii_case(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn evidence(v: serde_json::Value) -> Evidence {
        serde_json::from_value(v).unwrap()
    }

    fn gate(service: Service, e: Option<&Evidence>) -> Proof {
        judge(GateInput {
            service,
            class: StatusClass::Done,
            evidence: e,
            outcome: None,
            halt_reason: None,
        })
    }

    #[test]
    fn plan_needs_an_integer_epic_or_a_contract_handoff() {
        let ok = evidence(json!({"epic_issue": 140, "child_count": 2}));
        assert_eq!(gate(Service::PFACTORY, Some(&ok)), Proof::Proven);
        let text_epic = evidence(json!({"epic_issue": "140", "child_count": 2}));
        assert_eq!(gate(Service::PFACTORY, Some(&text_epic)), Proof::Unproven);
        let single = evidence(json!({"proof_kind": "issues", "epic_issue": 140, "child_count": 0}));
        assert_eq!(gate(Service::PFACTORY, Some(&single)), Proof::Proven);
        let no_epic =
            evidence(json!({"proof_kind": "issues", "epic_issue": null, "child_count": 3}));
        assert_eq!(gate(Service::PFACTORY, Some(&no_epic)), Proof::Unproven);
        let contract =
            evidence(json!({"proof_kind": "contract", "aifactory_task_id": "9d2c:031-hello"}));
        assert_eq!(gate(Service::PFACTORY, Some(&contract)), Proof::Proven);
        let no_task = evidence(json!({"proof_kind": "contract", "aifactory_task_id": ""}));
        assert_eq!(gate(Service::PFACTORY, Some(&no_task)), Proof::Unproven);
        assert_eq!(gate(Service::PFACTORY, None), Proof::Unproven);
    }

    #[test]
    fn build_needs_tokens_and_phases_when_phases_are_sent() {
        let ok = evidence(json!({"total_tokens": 10, "phases_completed": ["coding"]}));
        assert_eq!(gate(Service::AIFACTORY, Some(&ok)), Proof::Proven);
        let zero = evidence(json!({"total_tokens": 0, "phases_completed": ["coding"]}));
        assert_eq!(gate(Service::AIFACTORY, Some(&zero)), Proof::Unproven);
        let no_phase = evidence(json!({"total_tokens": 10, "phases_completed": []}));
        assert_eq!(gate(Service::AIFACTORY, Some(&no_phase)), Proof::Unproven);
        let tokens =
            evidence(json!({"proof_kind": "tokens", "total_tokens": 900, "cost_usd": 0.3}));
        assert_eq!(gate(Service::AIFACTORY, Some(&tokens)), Proof::Proven);
        let tokens_zero = evidence(json!({"proof_kind": "tokens", "total_tokens": 0}));
        assert_eq!(
            gate(Service::AIFACTORY, Some(&tokens_zero)),
            Proof::Unproven
        );
        let tokens_no_phase =
            evidence(json!({"proof_kind": "tokens", "total_tokens": 9, "phases_completed": []}));
        assert_eq!(
            gate(Service::AIFACTORY, Some(&tokens_no_phase)),
            Proof::Unproven
        );
        let bare_tokens = evidence(json!({"total_tokens": 9}));
        assert_eq!(
            gate(Service::AIFACTORY, Some(&bare_tokens)),
            Proof::Unproven
        );
    }

    #[test]
    fn verify_accepts_both_shapes_and_refuses_failures() {
        let rfc = evidence(json!({"verdict": "pass", "tests_executed": 3}));
        assert_eq!(gate(Service::TFACTORY, Some(&rfc)), Proof::Proven);
        let fail = evidence(json!({"verdict": "fail", "tests_executed": 3}));
        assert_eq!(gate(Service::TFACTORY, Some(&fail)), Proof::Unproven);
        let none_run = evidence(json!({"verdict": "pass", "tests_executed": 0}));
        assert_eq!(gate(Service::TFACTORY, Some(&none_run)), Proof::Unproven);
        let real = evidence(json!({"proof_kind": "tests", "verdicts": 0, "accepted": 2}));
        assert_eq!(gate(Service::TFACTORY, Some(&real)), Proof::Proven);
        let empty =
            evidence(json!({"proof_kind": "tests", "verdicts": 0, "accepted": 0, "flagged": 0}));
        assert_eq!(gate(Service::TFACTORY, Some(&empty)), Proof::Unproven);
        let halted = judge(GateInput {
            service: Service::TFACTORY,
            class: StatusClass::Done,
            evidence: Some(&real),
            outcome: Some("success"),
            halt_reason: Some("no_evidence: triage produced nothing"),
        });
        assert_eq!(halted, Proof::Unproven);
        let failed = judge(GateInput {
            service: Service::TFACTORY,
            class: StatusClass::Done,
            evidence: Some(&real),
            outcome: Some("failure"),
            halt_reason: None,
        });
        assert_eq!(failed, Proof::Unproven);
        let review = judge(GateInput {
            service: Service::TFACTORY,
            class: StatusClass::Done,
            evidence: Some(&real),
            outcome: Some("human_review"),
            halt_reason: None,
        });
        assert_eq!(review, Proof::Unproven);
    }

    #[test]
    fn only_done_stages_are_judged() {
        for class in [
            StatusClass::Failed,
            StatusClass::Running,
            StatusClass::Review,
            StatusClass::Queued,
            StatusClass::Stuck,
        ] {
            let p = judge(GateInput {
                service: Service::AIFACTORY,
                class,
                evidence: None,
                outcome: None,
                halt_reason: None,
            });
            assert_eq!(p, Proof::NotApplicable);
        }
    }
}

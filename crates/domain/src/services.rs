//! What CFactory knows of each upstream service's own rules, kept as data in one table:
//! the stage its events land on, the prefix of its synthetic keys, how its usage figures
//! add up, its own review words and the evidence its success owes. Nothing here does I/O.

use crate::event::{Service, class_with_outcome};
use crate::proof::ProofRule;
use crate::taxonomy::StatusClass;
use crate::workitem::StageName;

/// How a service's usage figures make up a task's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageAccounting {
    /// Each run reports its own usage, cumulative within the run (snapshots, then the
    /// run's terminal event); the task's usage is the sum over its runs of each run's
    /// last figure by time. AIFactory: a correction after a handback is a new run.
    SumOfRuns,
    /// Every figure is the task's running total across all its runs, so the latest by
    /// time is the task's usage. PFactory (the session's total so far) and TFactory (the
    /// spec's total, each verify session folded in).
    LatestTotal,
}

/// One service's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRules {
    /// The service.
    pub service: Service,
    /// The stage its events land on; `None` for CFactory's own events.
    pub stage: Option<StageName>,
    /// The prefix of the synthetic keys it mints before an issue exists.
    pub synthetic_prefix: Option<&'static str>,
    /// How its usage adds up.
    pub usage: UsageAccounting,
    /// Its own words for "waits for a person's sign-off", which the family taxonomy
    /// does not know (PFactory's `processed`: gates evaluated, approval pending).
    pub review_statuses: &'static [&'static str],
    /// The evidence its successful stage owes; `None`: not judged.
    pub proof: Option<ProofRule>,
}

/// Every service, in pipeline order, CFactory last.
pub const SERVICES: [ServiceRules; 4] = [
    ServiceRules {
        service: Service::Pfactory,
        stage: Some(StageName::Plan),
        synthetic_prefix: Some("pf-"),
        usage: UsageAccounting::LatestTotal,
        review_statuses: &["processed"],
        proof: Some(ProofRule::EmittedIssues),
    },
    ServiceRules {
        service: Service::Aifactory,
        stage: Some(StageName::Code),
        synthetic_prefix: Some("af-"),
        usage: UsageAccounting::SumOfRuns,
        review_statuses: &[],
        proof: Some(ProofRule::SpentTokens),
    },
    ServiceRules {
        service: Service::Tfactory,
        stage: Some(StageName::Test),
        synthetic_prefix: Some("tf-"),
        usage: UsageAccounting::LatestTotal,
        review_statuses: &[],
        proof: Some(ProofRule::Verdicts),
    },
    ServiceRules {
        service: Service::Cfactory,
        stage: None,
        synthetic_prefix: None,
        usage: UsageAccounting::LatestTotal,
        review_statuses: &[],
        proof: None,
    },
];

impl Service {
    /// This service's row of [`SERVICES`].
    pub fn rules(self) -> &'static ServiceRules {
        SERVICES
            .iter()
            .find(|r| r.service == self)
            .expect("every service has a row")
    }

    /// The class of a status this service sent: the family taxonomy, a verdict in
    /// `outcome` winning, and the service's own review words.
    pub fn classify(self, status: &str, outcome: Option<&str>) -> StatusClass {
        let class = class_with_outcome(status, outcome);
        let own = self
            .rules()
            .review_statuses
            .iter()
            .any(|s| status.trim().eq_ignore_ascii_case(s));
        if own && class == StatusClass::Running {
            StatusClass::Review
        } else {
            class
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_agrees_with_the_stage_and_prefix_helpers() {
        for row in SERVICES {
            assert_eq!(StageName::of(row.service), row.stage);
            assert_eq!(row.service.synthetic_prefix(), row.synthetic_prefix);
        }
        assert_eq!(Service::Aifactory.rules().usage, UsageAccounting::SumOfRuns);
        assert_eq!(
            Service::Tfactory.rules().usage,
            UsageAccounting::LatestTotal
        );
        assert_eq!(
            Service::Pfactory.classify("processed", None),
            StatusClass::Review
        );
        assert_eq!(
            Service::Aifactory.classify("processed", None),
            StatusClass::Running
        );
    }
}

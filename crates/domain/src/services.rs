//! The upstream services CFactory knows, as data: one table row per service names it, the
//! stage its events land on, the prefix of its synthetic keys, how its usage figures add
//! up, its own review words and the evidence its success owes. A [`Service`] is a handle on
//! its row; nothing else in the tree spells a service's rules.
//!
//! The three family services and CFactory itself are built in. Another service is one
//! more row, added once at start with [`Service::register`] before anything reads the
//! table; see `docs/adapters.md`. Nothing here does I/O.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::class_with_outcome;
use crate::proof::ProofRule;
use crate::taxonomy::StatusClass;

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

/// One service's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRules {
    /// Its wire name (`service` on events, `{name}` in routes): lower-case ASCII.
    pub name: &'static str,
    /// The stage its events land on (its API spelling); `None` for CFactory's own events.
    pub stage: Option<&'static str>,
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

/// The built-in rows: the family in pipeline order, then CFactory.
static BUILT_IN: [ServiceRules; 4] = [
    ServiceRules {
        name: "pfactory",
        stage: Some("plan"),
        synthetic_prefix: Some("pf-"),
        usage: UsageAccounting::LatestTotal,
        review_statuses: &["processed"],
        proof: Some(ProofRule::EmittedIssues),
    },
    ServiceRules {
        name: "aifactory",
        stage: Some("code"),
        synthetic_prefix: Some("af-"),
        usage: UsageAccounting::SumOfRuns,
        review_statuses: &[],
        proof: Some(ProofRule::SpentTokens),
    },
    ServiceRules {
        name: "tfactory",
        stage: Some("test"),
        synthetic_prefix: Some("tf-"),
        usage: UsageAccounting::LatestTotal,
        review_statuses: &[],
        proof: Some(ProofRule::Verdicts),
    },
    ServiceRules {
        name: "cfactory",
        stage: None,
        synthetic_prefix: None,
        usage: UsageAccounting::LatestTotal,
        review_statuses: &[],
        proof: None,
    },
];

/// A service: a handle on its row. Copy, compared and ordered by its place in the
/// pipeline (CFactory last), and spelled on the wire by its name.
#[derive(Clone, Copy)]
pub struct Service {
    /// Its place: 0, 1, 2 for the family, then registered services, CFactory at 255.
    /// Staged services' ranks are also their stage slots (CFactory has no stage).
    rank: u8,
    rules: &'static ServiceRules,
}

/// At most this many staged services (a stage slot fits a 64-bit set).
const MAX_UPSTREAMS: u8 = 64;

/// The rank CFactory sorts at, after every upstream.
const LAST: u8 = u8::MAX;

/// The built-in services in order.
static BUILT_IN_ORDER: [Service; 4] = [
    Service::PFACTORY,
    Service::AIFACTORY,
    Service::TFACTORY,
    Service::CFACTORY,
];

/// Set once another service is registered; until then [`Service::all`] takes no lock.
static EXTENDED: AtomicBool = AtomicBool::new(false);
/// Every service once the table is extended, in order.
static EXTENDED_ORDER: RwLock<&'static [Service]> = RwLock::new(&BUILT_IN_ORDER);

/// Why a row was refused by [`Service::register`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name, stage or prefix is not in the allowed spelling.
    #[error("{0}")]
    Spelling(String),
    /// Another service already has that name, stage or prefix.
    #[error("{0} is taken by {1}")]
    Taken(String, &'static str),
    /// No room for another service.
    #[error("the service table is full")]
    Full,
}

impl Service {
    /// PFactory: plans work; its task id is a plan session id.
    pub const PFACTORY: Service = Service {
        rank: 0,
        rules: &BUILT_IN[0],
    };
    /// AIFactory: does the work; its task id is a coding task id such as `proj:001`.
    pub const AIFACTORY: Service = Service {
        rank: 1,
        rules: &BUILT_IN[1],
    };
    /// TFactory: verifies it; its task id is a test spec id.
    pub const TFACTORY: Service = Service {
        rank: 2,
        rules: &BUILT_IN[2],
    };
    /// CFactory itself: on the timeline, never on a stage.
    pub const CFACTORY: Service = Service {
        rank: LAST,
        rules: &BUILT_IN[3],
    };

    /// Every service, in pipeline order, CFactory last.
    pub fn all() -> &'static [Service] {
        if EXTENDED.load(Ordering::Acquire) {
            *EXTENDED_ORDER.read().unwrap_or_else(|e| e.into_inner())
        } else {
            &BUILT_IN_ORDER
        }
    }

    /// The upstream services CFactory watches: every service with a stage.
    pub fn upstreams() -> impl Iterator<Item = Service> {
        Self::all()
            .iter()
            .copied()
            .filter(|s| s.rules.stage.is_some())
    }

    /// Adds a service's row to the table, after the built-in ones. Call it at start,
    /// before events or settings are read: a name the table does not hold yet is refused
    /// everywhere (events, stored rows, settings). Refuses a bad spelling and a name,
    /// stage or prefix another service already has. Registering the same row again
    /// answers the service it already is.
    pub fn register(rules: ServiceRules) -> Result<Service, RegisterError> {
        let mut order = EXTENDED_ORDER.write().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = order.iter().find(|s| *s.rules == rules) {
            return Ok(*same);
        }
        check_spelling("name", Some(rules.name))?;
        check_spelling("stage", rules.stage)?;
        if let Some(prefix) = rules.synthetic_prefix
            && !(prefix.len() >= 2
                && prefix.ends_with('-')
                && prefix[..prefix.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase()))
        {
            return Err(RegisterError::Spelling(format!(
                "synthetic prefix `{prefix}` must be lower-case letters and a dash, e.g. `df-`"
            )));
        }
        for other in order.iter() {
            let o = other.rules;
            if o.name == rules.name {
                return Err(RegisterError::Taken(
                    format!("name `{}`", rules.name),
                    o.name,
                ));
            }
            if rules.stage.is_some() && o.stage == rules.stage {
                return Err(RegisterError::Taken(
                    format!("stage `{}`", rules.stage.unwrap_or_default()),
                    o.name,
                ));
            }
            if rules.synthetic_prefix.is_some() && o.synthetic_prefix == rules.synthetic_prefix {
                return Err(RegisterError::Taken(
                    format!("prefix `{}`", rules.synthetic_prefix.unwrap_or_default()),
                    o.name,
                ));
            }
        }
        let upstreams = order.iter().filter(|s| s.rank != LAST).count();
        let rank = u8::try_from(upstreams)
            .ok()
            .filter(|r| *r < MAX_UPSTREAMS)
            .ok_or(RegisterError::Full)?;
        let service = Service {
            rank,
            rules: Box::leak(Box::new(rules)),
        };
        let mut next: Vec<Service> = order.iter().copied().filter(|s| s.rank != LAST).collect();
        next.push(service);
        next.push(Service::CFACTORY);
        *order = Box::leak(next.into_boxed_slice());
        EXTENDED.store(true, Ordering::Release);
        Ok(service)
    }

    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|s| s.rules.name == name)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.rules.name
    }

    /// This service's row.
    pub fn rules(self) -> &'static ServiceRules {
        self.rules
    }

    /// The prefix of the synthetic keys this service mints.
    pub fn synthetic_prefix(self) -> Option<&'static str> {
        self.rules.synthetic_prefix
    }

    /// Its place in the pipeline (and its stage slot when it has a stage).
    pub(crate) fn rank(self) -> u8 {
        self.rank
    }

    /// The class of a status this service sent: the family taxonomy, a verdict in
    /// `outcome` winning, and the service's own review words.
    pub fn classify(self, status: &str, outcome: Option<&str>) -> StatusClass {
        let class = class_with_outcome(status, outcome);
        let own = self
            .rules
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

/// Names, stages and prefixes are lower-case ASCII letters, digits and `_`, starting with
/// a letter, at most 32 long.
fn check_spelling(what: &str, value: Option<&str>) -> Result<(), RegisterError> {
    let Some(value) = value else { return Ok(()) };
    let ok = (1..=32).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegisterError::Spelling(format!(
            "{what} `{value}` must be 1 to 32 lower-case letters, digits or `_`, starting with a letter"
        )))
    }
}

impl PartialEq for Service {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}

impl Eq for Service {}

impl Hash for Service {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank.hash(state);
    }
}

impl PartialOrd for Service {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Service {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank.cmp(&other.rank)
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rules.name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rules.name)
    }
}

impl Serialize for Service {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rules.name)
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Service::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown service `{name}`")))
    }
}

/// A pipeline stage, named in the cockpit's language: the stage of the one service whose
/// events land on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageName(Service);

impl StageName {
    /// PFactory's plan.
    pub const PLAN: StageName = StageName(Service::PFACTORY);
    /// AIFactory's coding.
    pub const CODE: StageName = StageName(Service::AIFACTORY);
    /// TFactory's verification.
    pub const TEST: StageName = StageName(Service::TFACTORY);

    /// The family's three stages, which the stores index in columns of their own.
    pub const FAMILY: [StageName; 3] = [Self::PLAN, Self::CODE, Self::TEST];

    /// The stage a service's events land on; CFactory's own events land on none.
    pub fn of(service: Service) -> Option<Self> {
        service.rules.stage.map(|_| Self(service))
    }

    /// The service that owns the stage.
    pub fn service(self) -> Service {
        self.0
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        self.0.rules.stage.unwrap_or_default()
    }

    /// Parses the API spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().find(|s| s.as_str() == name)
    }

    /// Every stage, in pipeline order.
    pub fn all() -> impl Iterator<Item = StageName> {
        Service::upstreams().map(Self)
    }

    /// Its place among the [`FAMILY`](Self::FAMILY) stages, which the stores keep in
    /// columns of their own; `None` for another service's stage.
    pub fn family_slot(self) -> Option<usize> {
        Self::FAMILY.iter().position(|s| *s == self)
    }

    /// Its slot in [`crate::workitem::Stages`].
    pub(crate) fn slot(self) -> usize {
        usize::from(self.0.rank())
    }
}

impl fmt::Debug for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StageName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        StageName::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown stage `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_rows_answer_by_name_stage_and_order() {
        let names: Vec<&str> = Service::all().iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pfactory", "aifactory", "tfactory", "cfactory"]);
        for s in Service::all() {
            assert_eq!(Service::parse(s.as_str()), Some(*s));
            assert_eq!(StageName::of(*s).map(StageName::service), {
                s.rules().stage.map(|_| *s)
            });
        }
        assert!(Service::PFACTORY < Service::TFACTORY && Service::TFACTORY < Service::CFACTORY);
        assert_eq!(StageName::of(Service::AIFACTORY), Some(StageName::CODE));
        assert_eq!(StageName::of(Service::CFACTORY), None);
        assert_eq!(StageName::parse("test"), Some(StageName::TEST));
        assert_eq!(Service::parse("dfactory"), None);
        assert_eq!(Service::AIFACTORY.rules().usage, UsageAccounting::SumOfRuns);
        assert_eq!(
            Service::PFACTORY.classify("processed", None),
            StatusClass::Review
        );
        assert_eq!(
            Service::AIFACTORY.classify("processed", None),
            StatusClass::Running
        );
        assert_eq!(
            serde_json::to_string(&Service::TFACTORY).unwrap(),
            "\"tfactory\""
        );
        assert!(serde_json::from_str::<Service>("\"nope\"").is_err());
    }

    #[test]
    fn a_row_that_would_clash_or_is_misspelt_is_refused() {
        let row = |name, stage, prefix| ServiceRules {
            name,
            stage,
            synthetic_prefix: prefix,
            usage: UsageAccounting::LatestTotal,
            review_statuses: &[],
            proof: None,
        };
        let taken = Service::register(row("pfactory", Some("ship"), None)).unwrap_err();
        assert!(taken.to_string().contains("name `pfactory`"), "{taken}");
        let stage = Service::register(row("ship", Some("code"), None)).unwrap_err();
        assert!(stage.to_string().contains("aifactory"), "{stage}");
        let prefix = Service::register(row("ship", Some("ship"), Some("tf-"))).unwrap_err();
        assert!(prefix.to_string().contains("tfactory"), "{prefix}");
        for bad in ["Ship", "", "9ship", "sh ip"] {
            assert!(matches!(
                Service::register(row(bad, Some("ship"), None)),
                Err(RegisterError::Spelling(_))
            ));
        }
        assert!(matches!(
            Service::register(row("ship", Some("ship"), Some("sh"))),
            Err(RegisterError::Spelling(_))
        ));
        assert_eq!(Service::all().len(), 4, "nothing refused was added");
    }
}

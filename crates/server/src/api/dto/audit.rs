//! The wire format of the audit chain's verdict (`GET /api/audit/chain`), mapped from
//! the domain's [`cfactory_domain::audit::ChainReport`].

use serde::Serialize;
use utoipa::ToSchema;

use cfactory_domain::audit as domain;

/// A chain's verdict: `ok` (every row and the head check out), `tampered` (a row was
/// edited or deleted, or the head does not match the rows), `forked` (two rows claim the
/// same place), `truncated` (the chain ends before the newest entry its anchor saw
/// appended) or `rolled_back` (the entry at the anchored place is another one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainVerdict {
    /// Every row and the head check out.
    Ok,
    /// A row was edited or deleted, or the head does not match the rows.
    Tampered,
    /// Two rows claim the same place in the chain.
    Forked,
    /// The chain ends before the newest entry the anchor saw appended.
    Truncated,
    /// The entry at the anchored place is not the one the anchor saw.
    RolledBack,
}

impl From<domain::Verdict> for ChainVerdict {
    fn from(v: domain::Verdict) -> Self {
        match v {
            domain::Verdict::Ok => Self::Ok,
            domain::Verdict::Tampered => Self::Tampered,
            domain::Verdict::Forked => Self::Forked,
            domain::Verdict::Truncated => Self::Truncated,
            domain::Verdict::RolledBack => Self::RolledBack,
        }
    }
}

/// How the chain compares with its anchor: `ok`, `truncated` (no entry at the anchored
/// place) or `rolled_back` (another entry there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainAnchorState {
    /// The anchored entry is in the chain, unchanged.
    Ok,
    /// The chain holds no entry at the anchored place.
    Truncated,
    /// The chain's entry at the anchored place is another one.
    RolledBack,
}

/// The chain checked against the anchor file, where each append is noted outside the
/// store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainAnchor {
    /// The place of the newest entry the anchor saw appended.
    pub anchored_seq: u64,
    /// The place of the chain's newest entry now (0 when it is empty).
    pub chain_seq: u64,
    /// What that means.
    pub state: ChainAnchorState,
}

impl From<&domain::AnchorCheck> for ChainAnchor {
    fn from(a: &domain::AnchorCheck) -> Self {
        Self {
            anchored_seq: a.anchored_seq,
            chain_seq: a.chain_seq,
            state: match a.state {
                domain::AnchorState::Ok => ChainAnchorState::Ok,
                domain::AnchorState::Truncated => ChainAnchorState::Truncated,
                domain::AnchorState::RolledBack => ChainAnchorState::RolledBack,
            },
        }
    }
}

/// What is wrong with one row (or the head): `altered` (its fields no longer match its
/// seal), `broken_link` (it does not follow the row before it), `fork` (it shares its
/// place with another row), `truncated` (the head counts rows that are gone, or its last
/// hash is not the newest row's), `head_altered` (the head's own seal does not match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainFindingKind {
    /// The row's fields no longer match its seal: it was edited.
    Altered,
    /// The row does not follow the row before it: rows between were deleted or edited.
    BrokenLink,
    /// The row shares its place (seq or predecessor) with another row.
    Fork,
    /// The head counts rows that are gone, or its last hash is not the newest row's.
    Truncated,
    /// The head's own seal does not match it.
    HeadAltered,
}

impl From<domain::FindingKind> for ChainFindingKind {
    fn from(k: domain::FindingKind) -> Self {
        use domain::FindingKind as D;
        match k {
            D::Altered => Self::Altered,
            D::BrokenLink => Self::BrokenLink,
            D::Fork => Self::Fork,
            D::Truncated => Self::Truncated,
            D::HeadAltered => Self::HeadAltered,
        }
    }
}

/// One finding: the row and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainFinding {
    /// The row's id (0 for the head when the chain is empty).
    pub id: i64,
    /// What is wrong with it.
    pub kind: ChainFindingKind,
}

impl From<&domain::Finding> for ChainFinding {
    fn from(f: &domain::Finding) -> Self {
        Self {
            id: f.id,
            kind: f.kind.into(),
        }
    }
}

/// The verdict over a tenant's whole audit chain, each finding naming its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainReport {
    /// The verdict.
    pub verdict: ChainVerdict,
    /// Rows checked.
    pub rows: u64,
    /// Every finding, in chain order.
    pub findings: Vec<ChainFinding>,
    /// The chain against its anchor; null before the first append noted one.
    #[schema(required = true)]
    pub anchor: Option<ChainAnchor>,
}

impl From<&domain::ChainReport> for ChainReport {
    fn from(r: &domain::ChainReport) -> Self {
        Self {
            verdict: r.verdict.into(),
            rows: r.rows,
            findings: r.findings.iter().map(ChainFinding::from).collect(),
            anchor: r.anchor.as_ref().map(ChainAnchor::from),
        }
    }
}

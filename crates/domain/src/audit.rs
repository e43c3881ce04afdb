//! The audit log: every executed, rejected or expired action, every service-URL change
//! and every key change, appended to one HMAC chain per tenant.
//!
//! Each entry is sealed as `entry_hash = HMAC-SHA256(secret, canonical ‖ prev_hash)`,
//! where `canonical` is the entry's fields in a fixed order and `prev_hash` the previous
//! entry's hash (64 zeros for the first). The chain's head (the last hash and the count,
//! itself sealed) is kept apart from the rows, so deleting the newest rows is caught as
//! surely as editing an old one. Stores append under a lock that serialises every writer
//! (other processes included); [`verify`] walks a chain and names each row that breaks.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TenantId;
use crate::ports::StoreError;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the chain records it. `actor` is a key's id, a user, or `local` in
/// open mode: never a raw key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it.
    pub actor: String,
    /// What kind of change (`action.executed`, `service.url_changed`, `key.created`, …).
    pub kind: String,
    /// The WorkItem it concerned, if any.
    pub correlation_key: Option<String>,
    /// The service or object acted on.
    pub target: Option<String>,
    /// The HTTP method sent, for actions.
    pub method: Option<String>,
    /// The root-relative endpoint called, for actions.
    pub endpoint: Option<String>,
    /// The upstream's status code, when a call was made.
    pub status_code: Option<u16>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The action's id, for actions.
    pub action_id: Option<String>,
    /// SHA-256 (hex) of the payload sent, never the payload itself.
    pub payload_sha256: Option<String>,
}

/// A sealed entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The store's row id.
    pub id: i64,
    /// Its position in the tenant's chain, from 1.
    pub seq: u64,
    /// The tenant whose chain it is on.
    pub tenant: TenantId,
    /// What happened.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's seal.
    pub entry_hash: String,
}

/// The chain's head, stored apart from its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The newest entry's hash.
    pub last_hash: String,
    /// Entries on the chain.
    pub count: u64,
    /// The head's own seal, so it cannot be rewound to match deleted rows.
    pub head_mac: String,
}

/// The HMAC secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key from secret bytes; `None` when shorter than 16 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Option<Self> {
        let secret = secret.into();
        (secret.len() >= 16).then_some(Self(secret))
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes` as hex: how payloads are recorded.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The entry's fields in a fixed order, as one JSON array: the text that is sealed.
pub fn canonical(tenant: &TenantId, seq: u64, r: &AuditRecord) -> String {
    serde_json::json!([
        tenant.as_str(),
        seq,
        r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        r.actor,
        r.kind,
        r.correlation_key,
        r.target,
        r.method,
        r.endpoint,
        r.status_code,
        r.ok,
        r.action_id,
        r.payload_sha256,
    ])
    .to_string()
}

/// Seals the entry at `seq` after `prev_hash`.
pub fn seal(
    key: &AuditKey,
    tenant: &TenantId,
    seq: u64,
    r: &AuditRecord,
    prev_hash: &str,
) -> String {
    key.mac(&[&canonical(tenant, seq, r), prev_hash])
}

/// The head after an append that made `last_hash` the `count`th entry.
pub fn head(key: &AuditKey, tenant: &TenantId, last_hash: &str, count: u64) -> AuditHead {
    AuditHead {
        last_hash: last_hash.to_owned(),
        count,
        head_mac: key.mac(&["head", tenant.as_str(), last_hash, &count.to_string()]),
    }
}

/// The next entry after `head` (or the first when there is none): its seq and prev hash.
pub fn next_link(head: Option<&AuditHead>) -> (u64, String) {
    match head {
        Some(h) => (h.count + 1, h.last_hash.clone()),
        None => (1, GENESIS.to_owned()),
    }
}

/// A chain's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every row and the head check out.
    Ok,
    /// A row was edited or deleted, or the head does not match the rows.
    Tampered,
    /// Two rows claim the same place in the chain.
    Forked,
    /// The chain ends before the newest entry the anchor saw appended: rows were deleted
    /// together with their head (or the whole store was rolled back to an earlier copy).
    Truncated,
    /// The entry the anchor saw at its place is not the one there now: the chain was
    /// rolled back to an earlier copy and appended to again.
    RolledBack,
}

/// The newest entry of a tenant's chain, as noted outside the store when it was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The entry's place in the chain.
    pub seq: u64,
    /// The entry's seal.
    pub entry_hash: String,
}

/// Where chain heads are noted outside the store (an append-only file): the rows and the
/// head can be deleted or rolled back together, this record cannot be from the database.
#[async_trait]
pub trait AuditAnchor: Send + Sync {
    /// Notes that `tenant`'s chain now holds `anchor` (durably, before returning).
    async fn note(&self, tenant: &TenantId, anchor: &Anchor) -> Result<(), StoreError>;

    /// Every entry noted for `tenant`, in the order noted.
    async fn noted(&self, tenant: &TenantId) -> Result<Vec<Anchor>, StoreError>;
}

/// How the chain compares with its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorState {
    /// The anchored entry is in the chain, unchanged.
    Ok,
    /// The chain holds no entry at the anchored place.
    Truncated,
    /// The chain's entry at the anchored place is another one.
    RolledBack,
}

/// The chain checked against its anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorCheck {
    /// The anchored place that does not hold: the first whose entry is another one
    /// (`rolled_back`), else the newest the anchor saw appended.
    pub anchored_seq: u64,
    /// The place of the chain's newest entry now (0 when it is empty).
    pub chain_seq: u64,
    /// What that means.
    pub state: AnchorState,
}

/// What is wrong with one row (or the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
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

/// One finding: the row id (0 for the head when the chain is empty) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The row.
    pub id: i64,
    /// What is wrong with it.
    pub kind: FindingKind,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Rows checked.
    pub rows: u64,
    /// Every finding, in chain order.
    pub findings: Vec<Finding>,
    /// The chain against its anchor, when one is kept.
    pub anchor: Option<AnchorCheck>,
}

/// Checks `entries` (one tenant's chain, any order) and its `head` against `key`, and
/// against `anchors`, the entries noted outside the store as they were appended: each
/// must still be in the chain, unchanged.
pub fn verify(
    key: &AuditKey,
    tenant: &TenantId,
    entries: &[AuditEntry],
    head_row: Option<&AuditHead>,
    anchors: &[Anchor],
) -> ChainReport {
    let mut sorted: Vec<&AuditEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.seq, e.id));
    let mut findings = Vec::new();
    let mut prev: Option<&AuditEntry> = None;
    let mut seen_prev = std::collections::HashSet::new();
    for e in &sorted {
        let expected_prev = prev.map_or(GENESIS, |p| p.entry_hash.as_str());
        let same_place = prev.is_some_and(|p| p.seq == e.seq);
        if same_place || !seen_prev.insert(e.prev_hash.as_str()) {
            findings.push(Finding {
                id: e.id,
                kind: FindingKind::Fork,
            });
        } else if e.prev_hash != expected_prev || e.seq != prev.map_or(1, |p| p.seq + 1) {
            findings.push(Finding {
                id: e.id,
                kind: FindingKind::BrokenLink,
            });
        }
        if seal(key, tenant, e.seq, &e.record, &e.prev_hash) != e.entry_hash {
            findings.push(Finding {
                id: e.id,
                kind: FindingKind::Altered,
            });
        }
        if !same_place {
            prev = Some(e);
        }
    }
    let last = sorted.last();
    match head_row {
        Some(h) => {
            let id = last.map_or(0, |e| e.id);
            if head(key, tenant, &h.last_hash, h.count).head_mac != h.head_mac {
                findings.push(Finding {
                    id,
                    kind: FindingKind::HeadAltered,
                });
            } else if h.count != sorted.len() as u64
                || last.is_none_or(|e| e.entry_hash != h.last_hash)
            {
                findings.push(Finding {
                    id,
                    kind: FindingKind::Truncated,
                });
            }
        }
        None if !sorted.is_empty() => findings.push(Finding {
            id: sorted[0].id,
            kind: FindingKind::Truncated,
        }),
        None => {}
    }
    let anchor = anchors.iter().map(|a| a.seq).max().map(|newest| {
        let by_seq: std::collections::HashMap<u64, &str> = sorted
            .iter()
            .map(|e| (e.seq, e.entry_hash.as_str()))
            .collect();
        let differs = anchors
            .iter()
            .filter(|a| by_seq.get(&a.seq).is_some_and(|h| *h != a.entry_hash))
            .map(|a| a.seq)
            .min();
        let (state, anchored_seq) = match differs {
            Some(seq) => (AnchorState::RolledBack, seq),
            None if !by_seq.contains_key(&newest) => (AnchorState::Truncated, newest),
            None => (AnchorState::Ok, newest),
        };
        AnchorCheck {
            anchored_seq,
            chain_seq: last.map_or(0, |e| e.seq),
            state,
        }
    });
    let anchor_state = anchor.as_ref().map(|a| a.state);
    let verdict = if findings.iter().any(|f| f.kind == FindingKind::Fork) {
        Verdict::Forked
    } else if anchor_state == Some(AnchorState::RolledBack) {
        Verdict::RolledBack
    } else if anchor_state == Some(AnchorState::Truncated) {
        Verdict::Truncated
    } else if findings.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Tampered
    };
    ChainReport {
        verdict,
        rows: sorted.len() as u64,
        findings,
        anchor,
    }
}

/// Where audit chains live.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Seals `record` with `key` as the next entry of `tenant`'s chain and stores it with
    /// the new head, under a lock that serialises every appender of the store (other
    /// processes included), so the chain cannot fork.
    async fn append(
        &self,
        key: &AuditKey,
        tenant: &TenantId,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError>;

    /// A page of `tenant`'s entries, newest first: at most `limit` with ids below
    /// `before_id` when given.
    async fn audit_page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// `tenant`'s whole chain (any order) and its head, for [`verify`].
    async fn audit_chain(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<AuditEntry>, Option<AuditHead>), StoreError>;

    /// Whether any tenant has a chain (a row or a head): a new secret must never be made
    /// for a store that already holds one.
    async fn has_chains(&self) -> Result<bool, StoreError>;
}

/// Appends and verifies one store's audit chains with one secret: what every audited
/// change (action decisions, service-URL and key changes) goes through.
#[derive(Clone)]
pub struct Auditor {
    log: std::sync::Arc<dyn AuditLog>,
    key: AuditKey,
    anchor: Option<std::sync::Arc<dyn AuditAnchor>>,
}

impl Auditor {
    /// An auditor over `log`, sealing with `key`.
    pub fn new(log: std::sync::Arc<dyn AuditLog>, key: AuditKey) -> Self {
        Self {
            log,
            key,
            anchor: None,
        }
    }

    /// The same auditor, noting every append in `anchor` and checking chains against it.
    #[must_use]
    pub fn with_anchor(mut self, anchor: std::sync::Arc<dyn AuditAnchor>) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// Appends `record` to `tenant`'s chain, then notes the new entry in the anchor. An
    /// error from either means the change must not go ahead.
    pub async fn record(
        &self,
        tenant: &TenantId,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        let entry = self.log.append(&self.key, tenant, record).await?;
        if let Some(anchor) = &self.anchor {
            anchor
                .note(
                    tenant,
                    &Anchor {
                        seq: entry.seq,
                        entry_hash: entry.entry_hash.clone(),
                    },
                )
                .await?;
        }
        Ok(entry)
    }

    /// A page of `tenant`'s entries, newest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.log.audit_page(tenant, limit, before_id).await
    }

    /// Verifies `tenant`'s whole chain, and against the anchor when one is kept.
    pub async fn verify(&self, tenant: &TenantId) -> Result<ChainReport, StoreError> {
        // The anchor first: an append in between adds to the chain what the anchor has
        // not seen yet, never the other way round.
        let anchored = match &self.anchor {
            Some(anchor) => anchor.noted(tenant).await?,
            None => Vec::new(),
        };
        let (rows, head) = self.log.audit_chain(tenant).await?;
        Ok(verify(&self.key, tenant, &rows, head.as_ref(), &anchored))
    }
}

/// A record of `kind` by `actor` at `at` with nothing else set; fill in the rest.
pub fn record(actor: &str, kind: &str, at: DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        at,
        actor: actor.to_owned(),
        kind: kind.to_owned(),
        correlation_key: None,
        target: None,
        method: None,
        endpoint: None,
        status_code: None,
        ok: true,
        action_id: None,
        payload_sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(b"0123456789abcdef0123".to_vec()).unwrap()
    }

    fn record(n: i64) -> AuditRecord {
        AuditRecord {
            at: DateTime::from_timestamp(1_790_000_000 + n, 0).unwrap(),
            actor: "key:k1".into(),
            kind: "action.executed".into(),
            correlation_key: Some("142".into()),
            target: Some("aifactory".into()),
            method: Some("POST".into()),
            endpoint: Some("/api/tasks/7/apply-correction".into()),
            status_code: Some(200),
            ok: true,
            action_id: Some(format!("act-{n}")),
            payload_sha256: Some(sha256_hex(b"{}")),
        }
    }

    /// A chain of `n` entries appended the way a store does, and its head.
    fn chain(n: u64) -> (Vec<AuditEntry>, AuditHead) {
        let tenant = TenantId::default_tenant();
        let mut entries: Vec<AuditEntry> = Vec::new();
        let mut h: Option<AuditHead> = None;
        for i in 0..n {
            let (seq, prev) = next_link(h.as_ref());
            let r = record(i as i64);
            let entry_hash = seal(&key(), &tenant, seq, &r, &prev);
            h = Some(head(&key(), &tenant, &entry_hash, seq));
            entries.push(AuditEntry {
                id: i as i64 + 10,
                seq,
                tenant: tenant.clone(),
                record: r,
                prev_hash: prev,
                entry_hash,
            });
        }
        (entries, h.unwrap())
    }

    fn check(entries: &[AuditEntry], h: Option<&AuditHead>) -> ChainReport {
        verify(&key(), &TenantId::default_tenant(), entries, h, &[])
    }

    /// Checks the chain against an anchor that saw each of `seen` appended.
    fn anchored(entries: &[AuditEntry], h: Option<&AuditHead>, seen: &[AuditEntry]) -> ChainReport {
        let anchors: Vec<Anchor> = seen
            .iter()
            .map(|e| Anchor {
                seq: e.seq,
                entry_hash: e.entry_hash.clone(),
            })
            .collect();
        verify(&key(), &TenantId::default_tenant(), entries, h, &anchors)
    }

    #[test]
    fn a_chain_deleted_with_its_head_is_truncated_against_its_anchor() {
        let (entries, h) = chain(5);
        let report = anchored(&entries, Some(&h), &entries);
        assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
        // Everything gone, rows and head: on its own the empty chain is fine.
        assert_eq!(check(&[], None).verdict, Verdict::Ok);
        let report = anchored(&[], None, &entries);
        assert_eq!(report.verdict, Verdict::Truncated);
        assert_eq!(
            report.anchor,
            Some(AnchorCheck {
                anchored_seq: 5,
                chain_seq: 0,
                state: AnchorState::Truncated
            })
        );
        // Rolled back to an earlier copy, rows and head together (as a restored backup
        // would be): intact on its own, behind its anchor.
        let (early, early_head) = chain(3);
        assert_eq!(check(&early, Some(&early_head)).verdict, Verdict::Ok);
        let report = anchored(&early, Some(&early_head), &entries);
        assert_eq!(report.verdict, Verdict::Truncated);
        assert_eq!(report.anchor.as_ref().map(|a| a.chain_seq), Some(3));
    }

    #[test]
    fn a_chain_rolled_back_and_appended_to_again_is_rolled_back() {
        let (entries, _) = chain(5);
        // An earlier copy of three rows, then two other entries in places 4 and 5.
        let (mut other, _) = chain(3);
        let tenant = TenantId::default_tenant();
        let mut h = None;
        for n in 0..2 {
            let prev = other.last().unwrap().entry_hash.clone();
            let seq = other.len() as u64 + 1;
            let mut r = record(100 + n);
            r.actor = "after-the-restore".into();
            let entry_hash = seal(&key(), &tenant, seq, &r, &prev);
            h = Some(head(&key(), &tenant, &entry_hash, seq));
            other.push(AuditEntry {
                id: 50 + n,
                seq,
                tenant: tenant.clone(),
                record: r,
                prev_hash: prev,
                entry_hash,
            });
        }
        assert_eq!(check(&other, h.as_ref()).verdict, Verdict::Ok);
        // The anchor saw the first history's five entries, then the new fourth and fifth.
        let mut seen = entries.clone();
        seen.extend(other[3..].iter().cloned());
        let report = anchored(&other, h.as_ref(), &seen);
        assert_eq!(report.verdict, Verdict::RolledBack);
        assert_eq!(
            report
                .anchor
                .map(|a| (a.anchored_seq, a.chain_seq, a.state)),
            Some((4, 5, AnchorState::RolledBack)),
            "the first place whose entry changed"
        );
    }

    #[test]
    fn an_untouched_chain_is_ok() {
        let (entries, h) = chain(5);
        let report = check(&entries, Some(&h));
        assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
        assert_eq!(report.rows, 5);
        assert_eq!(check(&[], None).verdict, Verdict::Ok);
    }

    #[test]
    fn an_edited_row_is_named() {
        let (mut entries, h) = chain(5);
        entries[2].record.endpoint = Some("/elsewhere".into());
        let report = check(&entries, Some(&h));
        assert_eq!(report.verdict, Verdict::Tampered);
        assert_eq!(
            report.findings,
            vec![Finding {
                id: 12,
                kind: FindingKind::Altered
            }]
        );
    }

    #[test]
    fn a_deleted_middle_row_breaks_the_next_link() {
        let (mut entries, h) = chain(5);
        entries.remove(1);
        let report = check(&entries, Some(&h));
        assert_eq!(report.verdict, Verdict::Tampered);
        assert!(report.findings.contains(&Finding {
            id: 12,
            kind: FindingKind::BrokenLink
        }));
    }

    #[test]
    fn deleting_the_newest_rows_is_caught_by_the_head() {
        let (mut entries, h) = chain(5);
        entries.truncate(3);
        let report = check(&entries, Some(&h));
        assert_eq!(report.verdict, Verdict::Tampered);
        assert_eq!(report.findings[0].kind, FindingKind::Truncated);
        assert_eq!(report.findings[0].id, 12, "names the newest surviving row");
        // Rewinding the head to match needs the secret.
        let mut rewound = h.clone();
        rewound.count = 3;
        rewound.last_hash = entries[2].entry_hash.clone();
        let report = check(&entries, Some(&rewound));
        assert_eq!(report.findings[0].kind, FindingKind::HeadAltered);
        let forged = head(
            &key(),
            &TenantId::default_tenant(),
            &entries[2].entry_hash,
            3,
        );
        assert_eq!(check(&entries, Some(&forged)).verdict, Verdict::Ok);
    }

    #[test]
    fn two_rows_in_one_place_are_a_fork() {
        let (mut entries, h) = chain(3);
        let mut twin = entries[1].clone();
        twin.id = 99;
        twin.record.actor = "someone-else".into();
        let tenant = TenantId::default_tenant();
        twin.entry_hash = seal(&key(), &tenant, twin.seq, &twin.record, &twin.prev_hash);
        entries.push(twin);
        let report = check(&entries, Some(&h));
        assert_eq!(report.verdict, Verdict::Forked);
        assert!(report.findings.contains(&Finding {
            id: 99,
            kind: FindingKind::Fork
        }));
    }

    #[test]
    fn another_secret_sees_every_row_altered() {
        let (entries, h) = chain(2);
        let other = AuditKey::new(b"another-secret-of-length".to_vec()).unwrap();
        let report = verify(&other, &TenantId::default_tenant(), &entries, Some(&h), &[]);
        assert_eq!(report.verdict, Verdict::Tampered);
        assert_eq!(
            report
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Altered)
                .count(),
            2
        );
        assert!(AuditKey::new(b"short".to_vec()).is_none());
        assert_eq!(format!("{:?}", key()), "AuditKey(***)");
    }
}

//! Insight cards: the few things most worth a look right now, from anomalies, the
//! needs-you list and the rollups, each with the proposal that fits its item's state
//! where one does. No model is involved; the rules are here, the server only loads what
//! they read (`GET /api/insights`).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::{Anomaly, AnomalyKind, NeedsYou, Rollups, Severity};
use crate::actions::ActionKind;
use crate::ids::CorrelationKey;

/// Most anomaly cards shown.
pub const MAX_ANOMALY_CARDS: usize = 8;

/// One card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InsightCard {
    /// Stable per finding: `anomaly:{kind}:{key}`, `needs_you` or `spend`.
    pub id: String,
    /// An anomaly kind, `needs_you` or `spend`.
    pub kind: String,
    /// How loud.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// A sentence with the figures.
    pub detail: String,
    /// The item it is about, when one.
    pub correlation_key: Option<CorrelationKey>,
    /// The proposal that fits, when the item's state allows one.
    pub suggested: Option<Suggestion>,
}

/// A proposal a card suggests; proposing it still needs a person's click, and running it
/// a confirm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// What to propose.
    pub kind: ActionKind,
    /// For which item.
    pub correlation_key: CorrelationKey,
    /// The button's text.
    pub label: String,
}

/// Which proposals fit an anomaly kind, in order of preference.
pub fn suggestions_for(kind: AnomalyKind) -> &'static [ActionKind] {
    match kind {
        AnomalyKind::Failure => &[ActionKind::KickHandback, ActionKind::Recover],
        AnomalyKind::Stalled | AnomalyKind::Stuck => &[ActionKind::Recover],
        AnomalyKind::HandbackLoop | AnomalyKind::InjectionFlagged => &[ActionKind::RejectReview],
        _ => &[],
    }
}

/// The anomalies that get a card: warnings and louder, at most [`MAX_ANOMALY_CARDS`], in
/// the order given (the anomaly list's, loudest first).
pub fn headline<A: Borrow<Anomaly>>(anomalies: &[A]) -> impl Iterator<Item = &Anomaly> {
    anomalies
        .iter()
        .map(Borrow::borrow)
        .filter(|a| a.severity >= Severity::Warning)
        .take(MAX_ANOMALY_CARDS)
}

/// The cards for `anomalies`, `needs` and `rollups`. `available` holds, for each headline
/// anomaly's item whose kind has a suggestion, its canonical key and what may be
/// proposed for it now.
pub fn cards<A: Borrow<Anomaly>>(
    anomalies: &[A],
    needs: &[NeedsYou],
    rollups: &Rollups,
    available: &BTreeMap<CorrelationKey, (CorrelationKey, Vec<ActionKind>)>,
) -> Vec<InsightCard> {
    let mut cards: Vec<InsightCard> = headline(anomalies)
        .map(|a| {
            let suggested = available.get(&a.correlation_key).and_then(|(key, kinds)| {
                suggestions_for(a.kind)
                    .iter()
                    .find(|k| kinds.contains(k))
                    .map(|kind| Suggestion {
                        kind: *kind,
                        correlation_key: key.clone(),
                        label: format!("Propose {}", kind.as_str().replace('_', " ")),
                    })
            });
            InsightCard {
                id: format!("anomaly:{}:{}", a.kind.as_str(), a.correlation_key),
                kind: a.kind.as_str().to_owned(),
                severity: a.severity,
                title: a.title.clone(),
                detail: a.detail.clone(),
                correlation_key: Some(a.correlation_key.clone()),
                suggested,
            }
        })
        .collect();
    if let Some(first) = needs.first() {
        let detail = needs
            .iter()
            .take(3)
            .map(|n| {
                let reason = n.reasons.first().map(String::as_str).unwrap_or_default();
                format!("{}: {reason}", n.correlation_key)
            })
            .collect::<Vec<_>>()
            .join("; ");
        cards.push(InsightCard {
            id: "needs_you".into(),
            kind: "needs_you".into(),
            severity: Severity::Warning,
            title: format!("{} item(s) wait on a person", needs.len()),
            detail,
            correlation_key: Some(first.correlation_key.clone()),
            suggested: None,
        });
    }
    if let Some(cost) = rollups.cost.total.cost_usd {
        let seconds = |s: Option<f64>| s.map_or("n/a".into(), |s| format!("{s:.0} s"));
        cards.push(InsightCard {
            id: "spend".into(),
            kind: "spend".into(),
            severity: Severity::Info,
            title: format!("${cost:.2} metered spend over {} item(s)", rollups.items),
            detail: format!(
                "Lead time p50 {}, p95 {} over {} finished item(s).",
                seconds(rollups.lead_time.p50_seconds),
                seconds(rollups.lead_time.p95_seconds),
                rollups.lead_time.samples
            ),
            correlation_key: None,
            suggested: None,
        });
    }
    cards
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn empty() -> Rollups {
        Rollups::compute(&[], crate::insights::Window::all(), chrono::Utc::now())
    }

    fn anomaly(kind: AnomalyKind, severity: Severity, key: &str) -> Anomaly {
        Anomaly {
            kind,
            severity,
            correlation_key: CorrelationKey::parse(key).unwrap(),
            title: format!("{} on {key}", kind.as_str()),
            detail: String::new(),
            evidence: json!({}),
        }
    }

    #[test]
    fn a_failure_suggests_the_first_fitting_proposal_its_item_allows() {
        let anomalies = [
            anomaly(AnomalyKind::Failure, Severity::High, "301"),
            anomaly(AnomalyKind::Failure, Severity::High, "302"),
            anomaly(AnomalyKind::Stalled, Severity::Info, "303"),
        ];
        let mut available = BTreeMap::new();
        let k = |s: &str| CorrelationKey::parse(s).unwrap();
        available.insert(
            k("301"),
            (
                k("acme/shop#301"),
                vec![ActionKind::Recover, ActionKind::KickHandback],
            ),
        );
        available.insert(k("302"), (k("302"), vec![ActionKind::ApproveGate]));
        let cards = cards(&anomalies, &[], &empty(), &available);
        assert_eq!(cards.len(), 2, "info anomalies get no card: {cards:?}");
        let first = cards[0].suggested.as_ref().unwrap();
        assert_eq!(
            first.kind,
            ActionKind::KickHandback,
            "handback is preferred"
        );
        assert_eq!(first.correlation_key.as_str(), "acme/shop#301");
        assert_eq!(
            cards[1].suggested, None,
            "nothing fitting is allowed for 302"
        );
    }

    #[test]
    fn needs_you_and_spend_cards_follow_the_anomalies() {
        let needs = [NeedsYou {
            correlation_key: CorrelationKey::parse("7").unwrap(),
            title: "seven".into(),
            reasons: vec!["awaiting approval".into()],
        }];
        let mut rollups = empty();
        rollups.cost.total.cost_usd = Some(1.5);
        rollups.items = 3;
        let cards = cards::<Anomaly>(&[], &needs, &rollups, &BTreeMap::new());
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["needs_you", "spend"]);
        assert_eq!(cards[0].detail, "7: awaiting approval");
        assert_eq!(cards[1].title, "$1.50 metered spend over 3 item(s)");
    }
}

//! Search over WorkItems: keys, aliases, titles, repos, branches, PR and issue numbers,
//! task, spec and session ids. Case-insensitive; an exact match ranks first, then a
//! prefix, then a substring; within a tier the field decides (key, alias, issue, PR,
//! ids, branch, repo, title), then the most recently updated item.
//!
//! Layout of [`SearchIndex`], chosen for 100,000 items kept current at ingest:
//! - a `BTreeSet` of `(token, slot, field)` for exact and prefix lookups: a range scan
//!   from the query, O(log n + matches), and insert/remove per token in O(log n), which a
//!   sorted `Vec` cannot do without shifting the whole vector on every ingest;
//! - per item one compact lower-case string (its fields joined by a separator, with
//!   field offsets) for the substring fallback: a linear scan over contiguous bytes,
//!   run only when the exact and prefix tiers found fewer hits than the limit;
//! - slots with a free list and a key → slot map, so replace and remove touch one item.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::CorrelationKey;
use crate::workitem::WorkItem;

/// The field a search matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedOn {
    /// The canonical correlation key.
    Key,
    /// A key merged into the item.
    Alias,
    /// The GitHub issue number.
    Issue,
    /// The pull request number.
    Pr,
    /// An AIFactory task id.
    TaskId,
    /// A TFactory spec id.
    SpecId,
    /// A PFactory plan session id.
    SessionId,
    /// The git branch.
    Branch,
    /// The repository or project.
    Repo,
    /// The title.
    Title,
}

impl MatchedOn {
    /// How much a match on this field weighs within its tier.
    fn weight(self) -> u32 {
        match self {
            Self::Key => 9,
            Self::Alias | Self::Issue => 8,
            Self::Pr => 7,
            Self::TaskId | Self::SpecId | Self::SessionId => 6,
            Self::Branch => 5,
            Self::Repo => 4,
            Self::Title => 3,
        }
    }
}

/// One ranked result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The WorkItem.
    pub correlation_key: CorrelationKey,
    /// Its title, or its key.
    pub title: String,
    /// The field that matched best.
    pub matched_on: MatchedOn,
    /// That field's value, lower-cased.
    pub matched_value: String,
    /// Higher is better: tier (exact 300, prefix 200, substring 100) plus field weight.
    pub score: u32,
}

const SEP: char = '\u{1f}';
const EXACT: u32 = 300;
const PREFIX: u32 = 200;
const SUBSTRING: u32 = 100;

/// One item as the index keeps it.
#[derive(Debug, Clone)]
struct Entry {
    key: CorrelationKey,
    title: String,
    updated_at: DateTime<Utc>,
    /// Lower-cased field values joined by `SEP`.
    text: String,
    /// (field, start, end) of each value in `text`.
    fields: Vec<(MatchedOn, u32, u32)>,
}

impl Entry {
    fn of(item: &WorkItem) -> Self {
        let mut values: Vec<(MatchedOn, String)> =
            vec![(MatchedOn::Key, item.correlation_key.as_str().to_owned())];
        values.extend(
            item.aliases
                .iter()
                .map(|a| (MatchedOn::Alias, a.as_str().to_owned())),
        );
        let l = &item.links;
        values.extend(l.issue_number.map(|n| (MatchedOn::Issue, n.to_string())));
        values.extend(l.pr_number.map(|n| (MatchedOn::Pr, n.to_string())));
        values.extend(
            l.aifactory_task_ids
                .iter()
                .map(|t| (MatchedOn::TaskId, t.clone())),
        );
        values.extend(
            l.tfactory_spec_ids
                .iter()
                .map(|t| (MatchedOn::SpecId, t.clone())),
        );
        values.extend(l.session_id.clone().map(|s| (MatchedOn::SessionId, s)));
        values.extend(l.branch.clone().map(|b| (MatchedOn::Branch, b)));
        values.extend(item.project.clone().map(|p| (MatchedOn::Repo, p)));
        values.extend(item.title.clone().map(|t| (MatchedOn::Title, t)));
        let mut text = String::new();
        let mut fields = Vec::with_capacity(values.len());
        for (field, value) in values {
            let value = clean(&value);
            if value.is_empty() {
                continue;
            }
            let start = text.len() as u32;
            text.push_str(&value);
            fields.push((field, start, text.len() as u32));
            text.push(SEP);
        }
        Self {
            key: item.correlation_key.clone(),
            title: item
                .title
                .clone()
                .unwrap_or_else(|| item.correlation_key.as_str().to_owned()),
            updated_at: item.updated_at,
            text,
            fields,
        }
    }

    fn value(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// Index tokens: each whole value, and each word of it (split on anything but
    /// letters and digits) that differs from the whole.
    fn tokens(&self) -> Vec<(Box<str>, MatchedOn, bool)> {
        let mut out = Vec::new();
        for &(field, s, e) in &self.fields {
            let value = self.value(s, e);
            out.push((value.into(), field, true));
            for word in value.split(|c: char| !c.is_alphanumeric()) {
                if !word.is_empty() && word != value {
                    out.push((word.into(), field, false));
                }
            }
        }
        out
    }

    fn field_at(&self, pos: usize) -> Option<(MatchedOn, u32, u32)> {
        self.fields
            .iter()
            .copied()
            .find(|&(_, s, e)| (s as usize..e as usize).contains(&pos))
    }
}

/// Lower-cases and strips the separator and other control characters.
fn clean(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A search index kept current one item at a time.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_key: HashMap<CorrelationKey, u32>,
    tokens: BTreeSet<(Box<str>, u32, MatchedOn, bool)>,
}

impl SearchIndex {
    /// An index of `items`.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a WorkItem>) -> Self {
        let mut index = Self::default();
        for item in items {
            index.upsert(item);
        }
        index
    }

    /// Items indexed.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Inserts `item`, or replaces what was indexed under its key.
    pub fn upsert(&mut self, item: &WorkItem) {
        self.remove(&item.correlation_key);
        let entry = Entry::of(item);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        for (token, field, whole) in entry.tokens() {
            self.tokens.insert((token, slot, field, whole));
        }
        self.by_key.insert(entry.key.clone(), slot);
        self.slots[slot as usize] = Some(entry);
    }

    /// Removes the item filed under `key` (merged away or deleted); a no-op if absent.
    pub fn remove(&mut self, key: &CorrelationKey) {
        let Some(slot) = self.by_key.remove(key) else {
            return;
        };
        if let Some(entry) = self.slots[slot as usize].take() {
            for (token, field, whole) in entry.tokens() {
                self.tokens.remove(&(token, slot, field, whole));
            }
        }
        self.free.push(slot);
    }

    /// The best `limit` items for `query` (a leading `#` is ignored, so `#142` finds
    /// issue or PR 142). An empty query finds nothing.
    pub fn query(&self, query: &str, limit: usize) -> Vec<SearchHit> {
        let q = clean(query);
        let q = q.trim_start_matches('#').trim();
        if q.is_empty() || limit == 0 {
            return Vec::new();
        }
        // slot → (score, field, value) of its best match.
        let mut best: HashMap<u32, (u32, MatchedOn, Box<str>)> = HashMap::new();
        let offer = |best: &mut HashMap<u32, (u32, MatchedOn, Box<str>)>,
                     slot: u32,
                     score: u32,
                     field: MatchedOn,
                     value: &str| {
            let e = best.entry(slot).or_insert((0, field, "".into()));
            if score > e.0 {
                *e = (score, field, value.into());
            }
        };
        let from: (Box<str>, u32, MatchedOn, bool) = (q.into(), 0, MatchedOn::Key, false);
        for (token, slot, field, whole) in self
            .tokens
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(|t| t.0.starts_with(q))
        {
            let tier = if *whole && &**token == q {
                EXACT
            } else {
                PREFIX
            };
            let score = tier + field.weight() * 2 + u32::from(*whole);
            let value = if *whole {
                token.to_string()
            } else {
                self.whole_value(*slot, *field, token)
            };
            offer(&mut best, *slot, score, *field, &value);
        }
        if best.len() < limit {
            for (slot, entry) in self.slots.iter().enumerate() {
                let Some(entry) = entry else { continue };
                let slot = slot as u32;
                if best.contains_key(&slot) {
                    continue;
                }
                for (pos, _) in entry.text.match_indices(q) {
                    if let Some((field, s, e)) = entry.field_at(pos) {
                        offer(
                            &mut best,
                            slot,
                            SUBSTRING + field.weight() * 2,
                            field,
                            entry.value(s, e),
                        );
                    }
                }
            }
        }
        let mut hits: Vec<(u32, u32, MatchedOn, Box<str>)> = best
            .into_iter()
            .filter(|(_, (score, _, _))| *score > 0)
            .map(|(slot, (score, field, value))| (slot, score, field, value))
            .collect();
        let entry = |slot: u32| self.slots[slot as usize].as_ref();
        hits.sort_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| match (entry(a.0), entry(b.0)) {
                (Some(x), Some(y)) => y.updated_at.cmp(&x.updated_at).then(x.key.cmp(&y.key)),
                _ => std::cmp::Ordering::Equal,
            })
        });
        hits.into_iter()
            .take(limit)
            .filter_map(|(slot, score, matched_on, value)| {
                let e = entry(slot)?;
                Some(SearchHit {
                    correlation_key: e.key.clone(),
                    title: e.title.clone(),
                    matched_on,
                    matched_value: value.into(),
                    score,
                })
            })
            .collect()
    }

    /// The whole value of `field` on `slot` that contains the word `token`.
    fn whole_value(&self, slot: u32, field: MatchedOn, token: &str) -> String {
        self.slots[slot as usize]
            .as_ref()
            .and_then(|e| {
                e.fields
                    .iter()
                    .filter(|(f, _, _)| *f == field)
                    .map(|&(_, s, end)| e.value(s, end))
                    .find(|v| v.contains(token))
            })
            .unwrap_or(token)
            .to_owned()
    }
}

/// Searches `items` once, without keeping an index: for small sets and one-off calls.
pub fn search<'a>(
    items: impl IntoIterator<Item = &'a WorkItem>,
    query: &str,
    limit: usize,
) -> Vec<SearchHit> {
    SearchIndex::from_items(items).query(query, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights::fixtures::{event, item};
    use serde_json::json;

    fn fleet() -> Vec<WorkItem> {
        vec![
            item(
                "142",
                &[event(
                    "142",
                    "aifactory",
                    "shop:001",
                    "in_progress",
                    0,
                    json!({
                    "title": "Checkout Flow", "repo": "acme/shop",
                    "correlation": {"branch": "feat/checkout-142", "pr_number": 77}}),
                )],
            ),
            item(
                "1420",
                &[event(
                    "1420",
                    "tfactory",
                    "spec-9",
                    "pending",
                    1,
                    json!({"title": "Login page"}),
                )],
            ),
            item(
                "pf-abc",
                &[event(
                    "pf-abc",
                    "pfactory",
                    "abc",
                    "draft",
                    2,
                    json!({"title": "Refactor 142 helpers"}),
                )],
            ),
        ]
    }

    fn keys(hits: &[SearchHit]) -> Vec<&str> {
        hits.iter().map(|h| h.correlation_key.as_str()).collect()
    }

    #[test]
    fn exact_key_then_prefix_then_substring() {
        let hits = search(&fleet(), "142", 10);
        assert_eq!(keys(&hits), ["142", "1420", "pf-abc"]);
        assert_eq!(hits[0].matched_on, MatchedOn::Key);
        assert_eq!(hits[1].matched_on, MatchedOn::Key);
        assert!(hits[0].score > hits[1].score && hits[1].score > hits[2].score);
        assert_eq!(hits[2].matched_on, MatchedOn::Title);
    }

    #[test]
    fn names_the_field_and_ignores_case() {
        let one = |q: &str| search(&fleet(), q, 10).into_iter().next().unwrap();
        assert_eq!(one("CHECKOUT F").matched_on, MatchedOn::Title);
        assert_eq!(one("CHECKOUT").matched_on, MatchedOn::Branch);
        assert_eq!(one("acme/").matched_on, MatchedOn::Repo);
        assert_eq!(one("feat/check").matched_on, MatchedOn::Branch);
        assert_eq!(one("#77").matched_on, MatchedOn::Pr);
        assert_eq!(one("shop:001").matched_on, MatchedOn::TaskId);
        assert_eq!(one("SPEC-9").matched_on, MatchedOn::SpecId);
        assert_eq!(one("abc").matched_on, MatchedOn::SessionId);
        assert_eq!(one("ogin").matched_on, MatchedOn::Title);
        assert!(search(&fleet(), "nothing-like-it", 10).is_empty());
        assert!(search(&fleet(), "  ", 10).is_empty());
    }

    #[test]
    fn the_limit_caps_results() {
        assert_eq!(search(&fleet(), "142", 1).len(), 1);
        assert!(search(&fleet(), "142", 0).is_empty());
    }

    #[test]
    fn the_index_follows_upserts_and_removals() {
        let mut items = fleet();
        let mut index = SearchIndex::from_items(&items);
        assert_eq!(index.len(), 3);
        items[1].title = Some("Signup page".into());
        index.upsert(&items[1]);
        assert_eq!(index.len(), 3);
        assert!(index.query("login", 10).is_empty());
        assert_eq!(keys(&index.query("signup", 10)), ["1420"]);
        index.remove(&items[0].correlation_key);
        assert!(index.query("checkout", 10).is_empty());
        index.upsert(&items[0]);
        assert_eq!(keys(&index.query("checkout", 10)), ["142"]);
        assert_eq!(index.len(), 3);
    }
}

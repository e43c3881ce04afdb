//! The correlation rules that thread events into WorkItems, as a pure batch computation.
//!
//! A store loads what a batch of events could touch ([`Batch::needs`]), hands it over as
//! [`Loaded`], applies the events in arrival order, and writes the resulting [`ChangeSet`]
//! in one transaction. The rules live here once; every store shares them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::event::{CompletionEvent, Service};
use crate::ids::{CorrelationKey, EventId, Identifier};
use crate::upstream::TaskSnapshot;
use crate::workitem::WorkItem;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Recorded onto the WorkItem under the canonical key.
    Accepted {
        /// The canonical key.
        correlation_key: CorrelationKey,
    },
    /// Already recorded under this id; nothing changed.
    Duplicate {
        /// The canonical key of the item that holds the original.
        correlation_key: CorrelationKey,
    },
}

impl IngestOutcome {
    /// The canonical key either way.
    pub fn correlation_key(&self) -> &CorrelationKey {
        match self {
            Self::Accepted { correlation_key } | Self::Duplicate { correlation_key } => {
                correlation_key
            }
        }
    }
}

/// The existing state a batch can touch, as loaded by a store.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// Which item each needed identifier belongs to.
    pub owners: HashMap<Identifier, CorrelationKey>,
    /// The items those identifiers point to.
    pub items: HashMap<CorrelationKey, WorkItem>,
    /// Needed event ids already recorded, with the item that holds each.
    pub seen: HashMap<EventId, CorrelationKey>,
}

/// An event as it is recorded on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The event's id, if it had one.
    pub event_id: Option<EventId>,
    /// The item it belongs to.
    pub item_key: CorrelationKey,
    /// The sender.
    pub service: Service,
    /// The sender's task id.
    pub task_id: String,
    /// The status (the outcome when the sender sent `null`).
    pub status: String,
    /// The event's time.
    pub time: DateTime<Utc>,
    /// When CFactory received it.
    pub received_at: DateTime<Utc>,
    /// The JSON exactly as received.
    pub raw: String,
}

/// What a store writes, in one transaction, after a batch.
#[derive(Debug, Default, Clone)]
pub struct ChangeSet {
    /// Items to insert or replace (final state).
    pub upserts: Vec<WorkItem>,
    /// Items merged away; their rows go.
    pub deleted: Vec<CorrelationKey>,
    /// Existing rows filed under the first key move to the second (identifiers, events,
    /// usage). Targets are final: no chains.
    pub redirects: Vec<(CorrelationKey, CorrelationKey)>,
    /// Identifiers to file (insert or repoint) under an item.
    pub owners: Vec<(Identifier, CorrelationKey)>,
    /// Events to append.
    pub events: Vec<EventRecord>,
}

/// Where [`Batch::place`] filed a unit of work.
struct Placement {
    key: CorrelationKey,
    conflict: Option<Vec<u64>>,
    /// A bare issue number that names issues of two repositories.
    ambiguous: Option<u64>,
    merged: bool,
    sent_key_is_alias: bool,
}

/// One batch of events for one tenant, applied in arrival order.
#[derive(Debug)]
pub struct Batch {
    owners: HashMap<Identifier, CorrelationKey>,
    items: HashMap<CorrelationKey, WorkItem>,
    seen: HashMap<EventId, CorrelationKey>,
    redirects: HashMap<CorrelationKey, CorrelationKey>,
    changed: BTreeSet<CorrelationKey>,
    new_owners: BTreeMap<Identifier, CorrelationKey>,
    events: Vec<EventRecord>,
}

impl Batch {
    /// The identifiers and event ids a store must load before applying `events`.
    pub fn needs(events: &[CompletionEvent]) -> (Vec<Identifier>, Vec<EventId>) {
        let mut ids: BTreeSet<Identifier> = BTreeSet::new();
        let mut event_ids: BTreeSet<EventId> = BTreeSet::new();
        for e in events {
            ids.extend(e.identifiers());
            if let Some(id) = &e.id {
                event_ids.insert(id.clone());
            }
        }
        (ids.into_iter().collect(), event_ids.into_iter().collect())
    }

    /// The identifiers a store must load before applying `snapshots`.
    pub fn needs_snapshots(snapshots: &[TaskSnapshot]) -> Vec<Identifier> {
        let ids: BTreeSet<Identifier> = snapshots
            .iter()
            .flat_map(TaskSnapshot::identifiers)
            .collect();
        ids.into_iter().collect()
    }

    /// Starts a batch over what the store loaded.
    pub fn new(loaded: Loaded) -> Self {
        Self {
            owners: loaded.owners,
            items: loaded.items,
            seen: loaded.seen,
            redirects: HashMap::new(),
            changed: BTreeSet::new(),
            new_owners: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Whether the batch already knows which item `id` belongs to, from what it was given
    /// or from an event it applied.
    pub fn has_owner(&self, id: &Identifier) -> bool {
        self.new_owners.contains_key(id) || self.owners.contains_key(id)
    }

    /// Adds more of the store's state to a batch already under way, for events still to
    /// come. What the batch holds wins: an owner it knows or an item it holds (and may
    /// have changed) is not replaced.
    pub fn extend(&mut self, more: Loaded) {
        for (id, key) in more.owners {
            if !self.has_owner(&id) {
                self.owners.insert(id, key);
            }
        }
        for (key, item) in more.items {
            self.items.entry(key).or_insert(item);
        }
        for (id, key) in more.seen {
            self.seen.entry(id).or_insert(key);
        }
    }

    fn resolve(&self, key: &CorrelationKey) -> CorrelationKey {
        let mut k = key;
        while let Some(next) = self.redirects.get(k) {
            k = next;
        }
        k.clone()
    }

    fn owner(&self, id: &Identifier) -> Option<CorrelationKey> {
        self.new_owners
            .get(id)
            .or_else(|| self.owners.get(id))
            .map(|k| self.resolve(k))
    }

    /// Applies one event (the rules of `docs/correlation.md`).
    pub fn apply(&mut self, event: &CompletionEvent, received_at: DateTime<Utc>) -> IngestOutcome {
        // Rule 1: dedup by id.
        if let Some(id) = &event.id
            && let Some(key) = self.seen.get(id)
        {
            return IngestOutcome::Duplicate {
                correlation_key: self.resolve(key),
            };
        }
        let placed = self.place(
            event.identifiers(),
            &event.correlation_key,
            event.repo.as_deref(),
            &event.claimed_issues(),
            event.time,
        );
        let canonical = placed.key.clone();
        let emitted: Vec<CorrelationKey> = event
            .emitted_issues()
            .into_iter()
            .map(|n| CorrelationKey::of_issue(event.repo.as_deref(), n))
            .filter(|k| self.owner(&Identifier::key(k)).as_ref() == Some(&canonical))
            .collect();
        let item = self.touch(&canonical, event.time);
        if let Some(issues) = placed.conflict {
            item.record_conflict(event, issues, None);
        }
        if let Some(n) = placed.ambiguous {
            item.record_conflict(
                event,
                vec![n],
                Some(format!(
                    "issue {n} was named without a repository, and more than one repository has an issue {n}"
                )),
            );
        }
        if placed.sent_key_is_alias {
            item.add_alias(&event.correlation_key);
        }
        for key in &emitted {
            item.add_alias(key);
        }
        item.apply_event(event, received_at);

        if let Some(id) = &event.id {
            self.seen.insert(id.clone(), canonical.clone());
        }
        self.events.push(EventRecord {
            event_id: event.id.clone(),
            item_key: canonical.clone(),
            service: event.service,
            task_id: event.task_id.clone(),
            status: event.status.clone(),
            time: event.time,
            received_at,
            raw: event.raw.clone(),
        });
        IngestOutcome::Accepted {
            correlation_key: canonical,
        }
    }

    /// Applies an upstream's task snapshot taken at `at` (the row's own updated time, or
    /// the poll time). It finds its item by the same rules as an event, adds no timeline
    /// entry, and rewrites nothing when unchanged. Returns the item's key when it changed.
    pub fn apply_snapshot(
        &mut self,
        snap: &TaskSnapshot,
        at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Option<CorrelationKey> {
        let key = snap.key()?;
        let existed_before = self.owner(&Identifier::key(&key)).is_some()
            || snap.identifiers().iter().any(|id| self.owner(id).is_some());
        let claimed: BTreeSet<u64> = key
            .issue_number()
            .into_iter()
            .chain(snap.correlation.issue_number)
            .collect();
        let placed = self.place(
            snap.identifiers(),
            &key,
            snap.repo().as_deref(),
            &claimed,
            at,
        );
        let canonical = placed.key.clone();
        let item = self
            .items
            .get_mut(&canonical)
            .expect("place creates the item");
        let mut changed = item.apply_snapshot(snap, at, received_at);
        if placed.sent_key_is_alias {
            let before = item.aliases.len();
            item.add_alias(&key);
            changed |= item.aliases.len() != before;
        }
        changed |= placed.merged || !existed_before;
        if changed {
            self.changed.insert(canonical.clone());
            Some(canonical)
        } else {
            None
        }
    }

    /// After a complete task list of `service`, clears the non-terminal stages of loaded
    /// items whose task is no longer listed. Returns the keys of items it changed.
    pub fn clear_missing(
        &mut self,
        service: Service,
        present: &BTreeSet<String>,
    ) -> Vec<CorrelationKey> {
        let mut cleared = Vec::new();
        for (key, item) in &mut self.items {
            if item.clear_stage_if_gone(service, present) {
                cleared.push(key.clone());
            }
        }
        for key in &cleared {
            self.changed.insert(key.clone());
        }
        cleared
    }

    /// Rules 2–4: finds the canonical item for a set of identifiers, merging synthetic,
    /// opaque and bare-number items into it, and files the identifiers under it. `repo`
    /// is the repository the sender named and `claimed` the issue numbers it says the
    /// unit is. The item exists afterwards (created empty at `at` when new).
    fn place(
        &mut self,
        identifiers: Vec<Identifier>,
        sent_key: &CorrelationKey,
        repo: Option<&str>,
        claimed: &BTreeSet<u64>,
        at: DateTime<Utc>,
    ) -> Placement {
        let repo = if claimed.is_empty() { None } else { repo };
        let mut found: BTreeSet<CorrelationKey> = BTreeSet::new();
        let mut ambiguous: Option<u64> = None;
        let mut newly_ambiguous: Vec<(u64, CorrelationKey)> = Vec::new();
        for id in &identifiers {
            if id.is_marker() {
                continue;
            }
            let owner = self.owner(id);
            if let Some(n) = id.bare_issue() {
                if self.owner(&Identifier::issue_marker(n))
                    == Some(CorrelationKey::ambiguous_issue(n))
                {
                    // Two repositories have an issue `n`: a bare `n` is neither of them.
                    if repo.is_some() {
                        continue;
                    }
                    ambiguous = Some(n);
                } else if let (Some(r), Some(k)) = (repo, &owner)
                    && let Some((Some(theirs), m)) = k.issue_ref()
                    && m == n
                    && theirs != r
                {
                    newly_ambiguous.push((n, k.clone()));
                    continue;
                }
            }
            found.extend(owner);
        }
        let mut issues: BTreeSet<u64> = claimed.clone();
        let mut repos: BTreeSet<String> = repo.map(str::to_owned).into_iter().collect();
        for (r, n) in found.iter().filter_map(CorrelationKey::issue_ref) {
            issues.insert(n);
            repos.extend(r);
        }

        let own_key = self
            .owner(&Identifier::key(sent_key))
            .unwrap_or_else(|| sent_key.clone());

        let mut merged = false;
        let (canonical, conflict) = if issues.len() > 1 || repos.len() > 1 {
            // Rule 4: never merge two issues; stay on the key as sent.
            (own_key, Some(issues.iter().copied().collect()))
        } else {
            let canonical = match issues.first() {
                Some(n) => CorrelationKey::of_issue(repos.first().map(String::as_str), *n),
                None => own_key,
            };
            self.items
                .entry(canonical.clone())
                .or_insert_with(|| WorkItem::new(canonical.clone(), at));
            // Rule 3: items under synthetic, opaque or bare-number keys merge into the
            // canonical one.
            for other in found.iter().filter(|k| **k != canonical) {
                if let Some(absorbed) = self.items.remove(other) {
                    self.items
                        .get_mut(&canonical)
                        .expect("canonical item exists")
                        .absorb(absorbed);
                }
                self.redirects.insert(other.clone(), canonical.clone());
                self.changed.remove(other);
                merged = true;
            }
            if merged {
                self.changed.insert(canonical.clone());
            }
            (canonical, None)
        };
        self.items
            .entry(canonical.clone())
            .or_insert_with(|| WorkItem::new(canonical.clone(), at));

        for (n, previous) in newly_ambiguous {
            let bare = CorrelationKey::issue(n);
            // The bare number no longer finds the first repository's item.
            if let Some(item) = self.items.get_mut(&previous)
                && item.aliases.contains(&bare)
            {
                item.aliases.retain(|a| *a != bare);
                self.changed.insert(previous);
            }
            self.new_owners.insert(
                Identifier::issue_marker(n),
                CorrelationKey::ambiguous_issue(n),
            );
            self.new_owners.insert(Identifier::key(&bare), bare);
        }
        for id in identifiers {
            match self.owner(&id) {
                Some(k) if k != canonical => {} // owned by another issue: not ours to take
                _ => {
                    self.new_owners.insert(id, canonical.clone());
                }
            }
        }
        self.new_owners
            .insert(Identifier::key(&canonical), canonical.clone());
        let sent_key_is_alias = *sent_key != canonical
            && self.owner(&Identifier::key(sent_key)) == Some(canonical.clone());
        Placement {
            key: canonical,
            conflict,
            ambiguous,
            merged,
            sent_key_is_alias,
        }
    }

    fn touch(&mut self, key: &CorrelationKey, at: DateTime<Utc>) -> &mut WorkItem {
        self.changed.insert(key.clone());
        self.items
            .entry(key.clone())
            .or_insert_with(|| WorkItem::new(key.clone(), at))
    }

    /// The writes this batch needs.
    pub fn finish(mut self) -> ChangeSet {
        let redirects: Vec<(CorrelationKey, CorrelationKey)> = self
            .redirects
            .keys()
            .map(|from| (from.clone(), self.resolve(from)))
            .collect();
        let deleted = redirects.iter().map(|(from, _)| from.clone()).collect();
        let owners = self
            .new_owners
            .iter()
            .map(|(id, k)| (id.clone(), self.resolve(k)))
            .collect();
        let mut events = std::mem::take(&mut self.events);
        for e in &mut events {
            e.item_key = self.resolve(&e.item_key);
        }
        let upserts = self
            .changed
            .iter()
            .filter(|k| !self.redirects.contains_key(*k))
            .filter_map(|k| self.items.remove(k))
            .collect();
        ChangeSet {
            upserts,
            deleted,
            redirects,
            owners,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(
        id: &str,
        key: &str,
        service: &str,
        task: &str,
        links: serde_json::Value,
    ) -> CompletionEvent {
        let v = json!({
            "id": id, "time": "2026-06-01T12:00:00Z", "correlation_key": key,
            "service": service, "task_id": task, "status": "in_progress", "phase": "act",
            "correlation": links
        });
        CompletionEvent::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn merges_chain_within_one_batch_and_redirects_are_final() {
        let now = Utc::now();
        let mut batch = Batch::new(Loaded::default());
        batch.apply(&event("1", "pf-s1", "pfactory", "s1", json!({})), now);
        batch.apply(
            &event(
                "2",
                "af-p:1",
                "aifactory",
                "p:1",
                json!({"session_id": "s1"}),
            ),
            now,
        );
        let out = batch.apply(
            &event(
                "3",
                "tf-x",
                "tfactory",
                "x",
                json!({"aifactory_task_id": "p:1", "issue_number": 77}),
            ),
            now,
        );
        assert_eq!(out.correlation_key().as_str(), "77");
        let changes = batch.finish();
        assert_eq!(changes.upserts.len(), 1);
        let item = &changes.upserts[0];
        assert_eq!(item.correlation_key.as_str(), "77");
        let mut aliases: Vec<&str> = item.aliases.iter().map(CorrelationKey::as_str).collect();
        aliases.sort();
        assert_eq!(aliases, ["af-p:1", "pf-s1", "tf-x"]);
        assert!(changes.redirects.iter().all(|(_, to)| to.as_str() == "77"));
        assert!(changes.events.iter().all(|e| e.item_key.as_str() == "77"));
        assert!(changes.owners.iter().all(|(_, k)| k.as_str() == "77"));
        assert_eq!(item.event_count, 3);
    }

    fn raw(v: serde_json::Value) -> CompletionEvent {
        CompletionEvent::parse(&v.to_string()).unwrap()
    }

    /// Applies `events` batch by batch, carrying what each batch wrote into the next as
    /// a store would, and returns every item and identifier owner at the end.
    fn ingest(
        events: &[CompletionEvent],
    ) -> (
        HashMap<CorrelationKey, WorkItem>,
        HashMap<Identifier, CorrelationKey>,
    ) {
        let mut items: HashMap<CorrelationKey, WorkItem> = HashMap::new();
        let mut owners: HashMap<Identifier, CorrelationKey> = HashMap::new();
        for e in events {
            let mut batch = Batch::new(Loaded {
                owners: owners.clone(),
                items: items.clone(),
                seen: HashMap::new(),
            });
            batch.apply(e, Utc::now());
            let changes = batch.finish();
            for (from, to) in &changes.redirects {
                for owner in owners.values_mut() {
                    if owner == from {
                        *owner = to.clone();
                    }
                }
            }
            for key in changes.deleted {
                items.remove(&key);
            }
            for (id, key) in changes.owners {
                owners.insert(id, key);
            }
            for item in changes.upserts {
                items.insert(item.correlation_key.clone(), item);
            }
        }
        (items, owners)
    }

    fn plan_from_origin() -> CompletionEvent {
        raw(
            json!({"correlation_key": "acme/shop#7150", "service": "pfactory",
            "task_id": "s-7150", "status": "emitted", "phase": "emit",
            "updated_at": "2026-06-01T12:00:00Z",
            "correlation": {"session_id": "s-7150", "issue_number": 7151},
            "evidence": {"proof_kind": "issues", "epic_issue": 7151, "child_count": 0}}),
        )
    }

    fn build(id: &str, repo: Option<&str>) -> CompletionEvent {
        let mut v = json!({"id": id, "time": "2026-06-01T13:00:00Z", "correlation_key": "7150",
            "service": "aifactory", "task_id": format!("p:{id}"), "status": "done", "phase": "act",
            "correlation": {"issue_number": 7150}});
        if let Some(r) = repo {
            v["correlation"]["project_id"] = json!(r);
        }
        raw(v)
    }

    #[test]
    fn an_origin_issue_and_its_bare_number_are_one_unit_and_the_epic_a_link() {
        let key = |k: &str| CorrelationKey::parse(k).unwrap();
        for events in [
            vec![
                plan_from_origin(),
                build("1", Some("acme/shop")),
                build("2", None),
            ],
            vec![
                build("2", None),
                build("1", Some("Acme/Shop")),
                plan_from_origin(),
            ],
        ] {
            let (items, owners) = ingest(&events);
            assert_eq!(items.len(), 1, "{:?}", items.keys().collect::<Vec<_>>());
            let item = &items[&key("acme/shop#7150")];
            assert!(item.stages.plan().is_some() && item.stages.code().is_some());
            assert_eq!(item.links.issue_number, Some(7150));
            assert_eq!(item.links.repo.as_deref(), Some("acme/shop"));
            assert_eq!(item.links.emitted_issues, [7151]);
            for alias in ["7150", "7151", "acme/shop#7151"] {
                assert_eq!(
                    owners[&Identifier::key(&key(alias))],
                    key("acme/shop#7150"),
                    "{alias}"
                );
            }
        }
    }

    #[test]
    fn a_bare_number_two_repositories_share_is_kept_apart_as_a_conflict() {
        let key = |k: &str| CorrelationKey::parse(k).unwrap();
        let other = build("3", Some("acme/api"));
        let (items, _) = ingest(&[plan_from_origin(), other, build("4", None)]);
        assert_eq!(items.len(), 3, "{:?}", items.keys().collect::<Vec<_>>());
        assert!(items.contains_key(&key("acme/shop#7150")));
        assert!(items.contains_key(&key("acme/api#7150")));
        let bare = &items[&key("7150")];
        assert_eq!(bare.flags.correlation_conflict_count, 1);
        assert!(
            bare.flags.correlation_conflicts[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("more than one repository")
        );
        // A follow-up that names its repository still finds its own unit.
        let (items, _) = ingest(&[
            plan_from_origin(),
            build("3", Some("acme/api")),
            build("5", Some("acme/shop")),
        ]);
        let shop = &items[&key("acme/shop#7150")];
        assert_eq!(shop.event_count, 2);
        assert!(shop.stages.code().is_some());
    }

    #[test]
    fn a_known_duplicate_answers_with_its_current_key() {
        let mut loaded = Loaded::default();
        loaded.seen.insert(
            EventId::parse("e").unwrap(),
            CorrelationKey::parse("af-q").unwrap(),
        );
        let mut batch = Batch::new(loaded);
        let out = batch.apply(&event("e", "af-q", "aifactory", "q", json!({})), Utc::now());
        assert!(matches!(out, IngestOutcome::Duplicate { .. }));
        let changes = batch.finish();
        assert!(changes.events.is_empty() && changes.upserts.is_empty());
    }

    #[test]
    fn extending_a_batch_keeps_what_it_holds_and_adds_the_rest() {
        let now = Utc::now();
        let key = |k: &str| CorrelationKey::parse(k).unwrap();
        // An item #150 as a store holds it, owning an AIFactory task.
        let mut stored = Batch::new(Loaded::default());
        stored.apply(
            &event(
                "s1",
                "150",
                "aifactory",
                "p:150",
                json!({"issue_number": 150}),
            ),
            now,
        );
        let item_150 = stored.finish().upserts.remove(0);

        let mut batch = Batch::new(Loaded::default());
        batch.apply(&event("1", "af-q", "aifactory", "q", json!({})), now);
        assert!(batch.has_owner(&Identifier::task("aifactory", "q")));
        assert!(!batch.has_owner(&Identifier::task("aifactory", "p:150")));

        let mut more = Loaded::default();
        // A stale view of af-q, and a claim on its task the batch already settled.
        let mut stale = item_150.clone();
        stale.correlation_key = key("af-q");
        stale.title = Some("stale".into());
        more.items.insert(key("af-q"), stale);
        more.owners
            .insert(Identifier::task("aifactory", "q"), key("150"));
        more.owners
            .insert(Identifier::task("aifactory", "p:150"), key("150"));
        more.items.insert(key("150"), item_150);
        batch.extend(more);
        assert!(batch.has_owner(&Identifier::task("aifactory", "p:150")));

        let again = batch.apply(&event("2", "af-q", "aifactory", "q", json!({})), now);
        assert_eq!(again.correlation_key().as_str(), "af-q");
        let onto = batch.apply(
            &event("3", "af-p:150", "aifactory", "p:150", json!({})),
            now,
        );
        assert_eq!(onto.correlation_key().as_str(), "150");

        let changes = batch.finish();
        let af_q = changes
            .upserts
            .iter()
            .find(|i| i.correlation_key.as_str() == "af-q")
            .unwrap();
        assert_eq!(af_q.title, None, "the batch's own item was kept");
        let on_150 = changes
            .upserts
            .iter()
            .find(|i| i.correlation_key.as_str() == "150")
            .unwrap();
        assert!(on_150.aliases.iter().any(|a| a.as_str() == "af-p:150"));
        assert!(
            !changes
                .owners
                .iter()
                .any(|(id, k)| *id == Identifier::task("aifactory", "q") && k.as_str() == "150")
        );
    }

    #[test]
    fn a_snapshot_row_that_did_not_change_writes_nothing() {
        let snap = TaskSnapshot {
            service: Service::AIFACTORY,
            task_id: "p:1".into(),
            issue_number: None,
            status: "in_progress".into(),
            phase: None,
            title: None,
            project: None,
            updated_at: None,
            correlation: Default::default(),
            review_reason: None,
        };
        let now = Utc::now();
        let mut batch = Batch::new(Loaded::default());
        assert_eq!(
            batch.apply_snapshot(&snap, now, now).unwrap().as_str(),
            "af-p:1"
        );
        let item = batch.finish().upserts.remove(0);
        let mut loaded = Loaded::default();
        loaded.owners.insert(
            Identifier::key(&item.correlation_key),
            item.correlation_key.clone(),
        );
        loaded.owners.insert(
            Identifier::task("aifactory", "p:1"),
            item.correlation_key.clone(),
        );
        loaded.items.insert(item.correlation_key.clone(), item);
        let mut batch = Batch::new(loaded);
        assert!(
            batch
                .apply_snapshot(&snap, now + chrono::Duration::minutes(5), now)
                .is_none()
        );
        assert!(batch.finish().upserts.is_empty());
    }
}

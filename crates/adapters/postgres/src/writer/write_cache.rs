//! What the writer remembers between groups: per tenant, which item owns an identifier
//! and the items it wrote, true while the tenant's write generation is the one expected.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cfactory_domain::correlate::Loaded;
use cfactory_domain::{CorrelationKey, Identifier, TenantId, WorkItem};

use super::staged::Staged;

/// The most items the writer remembers, over all tenants; past it, it starts over.
const KNOWN_ITEMS: usize = 10_000;
/// Groups loaded in full, event ids included, after a recorded event id came back.
pub(super) const CAUTIOUS_GROUPS: u32 = 64;

/// What the writer knows of a tenant from its own loads and writes: which item owns an
/// identifier and the items it wrote, as stored. Every write to a tenant moves its
/// generation (in `tenant_writes`) on by one in the same transaction, so this stays true
/// exactly while the generation read on taking the tenant's lock is the one it expects.
/// A group whose identifiers and items are all known skips the load; one with some
/// unknown identifiers loads only those, and only the items not in hand. Either way its
/// event ids go unchecked, and the events table's unique key turns a recorded one back
/// (the group is then loaded in full and applied again).
#[derive(Default)]
pub(super) struct TenantCache {
    /// The generation this is true at; `None` when not known.
    pub(super) generation: Option<i64>,
    owners: HashMap<Identifier, CorrelationKey>,
    items: HashMap<CorrelationKey, Arc<WorkItem>>,
    /// Groups still to load in full.
    pub(super) cautious: u32,
}

impl TenantCache {
    pub(super) fn forget(&mut self) {
        self.generation = None;
        self.clear();
    }

    /// Lets go of everything known; what is left (nothing) stays true.
    fn clear(&mut self) {
        self.owners.clear();
        self.items.clear();
    }

    /// The tenant's generation as read under its lock: any other than the one this is
    /// true at means someone else wrote, and everything known goes.
    pub(super) fn confirm_generation(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.forget();
            self.generation = Some(generation);
        }
    }

    /// What the writer knows towards a load of `ids`: the owners and items it holds, and
    /// the identifiers it must still look up. `None` when it can vouch for nothing.
    pub(super) fn recall(
        &mut self,
        ids: &BTreeSet<Identifier>,
    ) -> Option<(Loaded, BTreeSet<Identifier>)> {
        if self.cautious > 0 {
            self.cautious -= 1;
            return None;
        }
        self.peek(ids)
    }

    /// As [`TenantCache::recall`], without counting down the groups to load in full.
    pub(super) fn peek(
        &self,
        ids: &BTreeSet<Identifier>,
    ) -> Option<(Loaded, BTreeSet<Identifier>)> {
        if self.cautious > 0 {
            return None;
        }
        self.generation?;
        let mut loaded = Loaded::default();
        let mut missing = BTreeSet::new();
        for id in ids {
            let owned = self
                .owners
                .get(id)
                .and_then(|key| Some((key, self.items.get(key)?)));
            let Some((key, item)) = owned else {
                missing.insert(id.clone());
                continue;
            };
            if !loaded.items.contains_key(key) {
                loaded.items.insert(key.clone(), WorkItem::clone(item));
            }
            loaded.owners.insert(id.clone(), key.clone());
        }
        Some((loaded, missing))
    }

    /// Remembers the owners a load found.
    pub(super) fn learn(&mut self, loaded: &Loaded) {
        if self.generation.is_some() {
            self.owners.extend(
                loaded
                    .owners
                    .iter()
                    .map(|(id, key)| (id.clone(), key.clone())),
            );
        }
    }

    /// Takes in a write: one committed, or one sent ahead (see [`InFlightWrite`]), which is
    /// taken back with [`TenantCache::rewind`] or [`TenantCache::forget`] if it fails.
    ///
    /// [`InFlightWrite`]: super::send_ahead::InFlightWrite
    pub(super) fn wrote(&mut self, staged: &Staged) {
        let Some(generation) = self.generation else {
            return;
        };
        if !staged.writes_anything() {
            return;
        }
        self.generation = Some(generation + 1);
        // Merges repoint identifiers the change set does not list; start over.
        if staged.merges() {
            self.clear();
        }
        self.owners.extend(staged.changes.owners.iter().cloned());
        self.items.extend(
            staged
                .items
                .iter()
                .map(|item| (item.correlation_key.clone(), Arc::clone(item))),
        );
    }

    /// Back to knowing nothing at `generation`, the one before a write that did not land,
    /// with the next groups loaded in full.
    pub(super) fn rewind(&mut self, generation: Option<i64>) {
        self.forget();
        self.generation = generation;
        self.cautious = CAUTIOUS_GROUPS;
    }
}

/// Keeps what the writer knows under [`KNOWN_ITEMS`]: past it, it starts over.
pub(super) fn bound_cache(known: &mut HashMap<TenantId, TenantCache>) {
    if known.values().map(|k| k.items.len()).sum::<usize>() > KNOWN_ITEMS {
        known.values_mut().for_each(TenantCache::clear);
    }
}

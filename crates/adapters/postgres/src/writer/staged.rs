//! A change set staged for the write, and what is stored beside each loaded item, which
//! the write compares against.

use std::collections::HashMap;
use std::sync::Arc;

use cfactory_domain::correlate::{ChangeSet, Loaded};
use cfactory_domain::{CorrelationKey, WorkItem};

use crate::rows::{UsageRow, pg_text, usage_rows};

/// What is stored for a loaded item beside its document.
pub(super) struct Stored {
    /// Its `usage` rows: a write compares against them and rewrites only those that changed.
    pub(super) usage: Vec<UsageRow>,
    /// Its `workitem_search` text, rewritten only when it changes.
    pub(super) search_text: String,
}

impl Stored {
    pub(super) fn of(item: &WorkItem) -> Self {
        Self {
            usage: usage_rows(item),
            search_text: pg_text(&item.search_text()).into_owned(),
        }
    }
}

pub(super) fn stored(loaded: &Loaded) -> HashMap<CorrelationKey, Stored> {
    loaded
        .items
        .iter()
        .map(|(key, item)| (key.clone(), Stored::of(item)))
        .collect()
}

/// A change set ready for [`write`], its rewritten items shared: the write binds them,
/// and the writer's memory and the change feed keep them.
///
/// [`write`]: super::statements::write
pub(super) struct Staged {
    /// The change set without its upserts.
    pub(super) changes: ChangeSet,
    /// The items rewritten, as they will be stored.
    pub(super) items: Vec<Arc<WorkItem>>,
}

impl From<ChangeSet> for Staged {
    fn from(mut changes: ChangeSet) -> Self {
        let items = std::mem::take(&mut changes.upserts)
            .into_iter()
            .map(Arc::new)
            .collect();
        Self { changes, items }
    }
}

impl Staged {
    /// Whether the write merges items (and so needs more than one statement).
    pub(super) fn merges(&self) -> bool {
        !self.changes.redirects.is_empty() || !self.changes.deleted.is_empty()
    }

    /// Whether [`write`] writes anything, and so moves the tenant's generation on by one.
    ///
    /// [`write`]: super::statements::write
    pub(super) fn writes_anything(&self) -> bool {
        self.merges()
            || !self.items.is_empty()
            || !self.changes.owners.is_empty()
            || !self.changes.events.is_empty()
    }

    pub(super) fn keys(&self) -> Vec<CorrelationKey> {
        self.items
            .iter()
            .map(|i| i.correlation_key.clone())
            .collect()
    }
}

//! The [`ChangeSink`] port: what a store tells after each commit, so a read model or a live
//! feed hears which items changed.
//!
//! Its room in the hexagon: a port the stores call out through; the server's hub and read
//! model implement it.

use std::sync::Arc;

use crate::ids::{CorrelationKey, TenantId};
use crate::workitem::WorkItem;

/// Hears which items changed after each commit.
pub trait ChangeSink: Send + Sync {
    /// `keys` of `tenant` changed (ingest, hydration or merge; a key merged away is
    /// listed too, and now resolves to the item that absorbed it). Must not block.
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]);

    /// The store may have missed telling some changes (its change listener was cut off and
    /// came back): whatever the sink keeps must be read again from the store. The default
    /// does nothing. Must not block.
    fn resync(&self) {}

    /// This process committed `items` of `tenant` as they are given, and merged `gone`
    /// away; a sink that keeps items can take them instead of reading them back. Stores
    /// call it in commit order with the notices of other processes. The default hears
    /// them as keys. Must not block.
    fn items_written(&self, tenant: &TenantId, items: &[Arc<WorkItem>], gone: &[CorrelationKey]) {
        let keys: Vec<CorrelationKey> = items
            .iter()
            .map(|i| i.correlation_key.clone())
            .chain(gone.iter().cloned())
            .collect();
        self.items_changed(tenant, &keys);
    }
}

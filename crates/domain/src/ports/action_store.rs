//! The [`ActionStore`] port: where advise-and-confirm proposals live until a person
//! confirms or rejects them, or they expire. [`crate::actions`] re-exports it beside the
//! types it keeps.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory
//! ([`InMemoryActions`](crate::actions::InMemoryActions)) stores implement it.

use async_trait::async_trait;

use super::StoreError;
use crate::actions::{ActionStatus, Actor, PreparedAction, StepResult};
use crate::ids::TenantId;

/// A list of a tenant's actions: those that read, and those whose stored row no longer
/// decodes (written by an older version, edited by hand, damaged), set apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionPage {
    /// The actions that decode, newest proposal first.
    pub actions: Vec<PreparedAction>,
    /// Actions the list covered whose stored row no longer decodes, each as (id, why):
    /// left out of `actions`, never fatal.
    pub unreadable: Vec<(String, String)>,
}

/// Where proposals live until they are confirmed, rejected or expire.
#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Stores a new proposal. `Duplicate` when the tenant already has an action with its
    /// id; nothing changes then.
    async fn save(&self, action: &PreparedAction) -> Result<(), StoreError>;

    /// The tenant's action with this id; `None` when the tenant has none (an action of
    /// another tenant included). `Unreadable` when its stored row no longer decodes.
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<PreparedAction>, StoreError>;

    /// At most `limit` of the tenant's actions, newest proposal first (ties by id,
    /// descending); only those in `status` when given. An action whose stored row no
    /// longer decodes is left out and reported in the page's `unreadable` (it counts
    /// towards `limit`), never fatal.
    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<ActionPage, StoreError>;

    /// Atomic compare-and-set: when the tenant's action `id` is in status `from`, moves it
    /// to `to`, replaces its results with `results`, records `decided` (when given) as
    /// who confirmed or rejected it (`decided_by`, `decided_via`), and returns it as stored
    /// now. `None` when there is no such action or its status is not `from`; nothing
    /// changes then, so of two concurrent moves from the same status exactly one wins.
    async fn transition(
        &self,
        tenant: &TenantId,
        id: &str,
        from: ActionStatus,
        to: ActionStatus,
        results: Vec<StepResult>,
        decided: Option<&Actor>,
    ) -> Result<Option<PreparedAction>, StoreError>;
}

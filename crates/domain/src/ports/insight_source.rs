//! The [`InsightSource`] port: rollups, anomalies, needs-you and search over a tenant's
//! items, answered from wherever the server keeps them.
//!
//! Its room in the hexagon: an outbound port of the domain; the server's read model
//! implements it, and the HTTP handlers and the copilot's tools call it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{CorrelationKey, TenantId};
use crate::insights::{Anomaly, NeedsYou, Rollups, SearchHit, Window};

/// The insights over a tenant's items, answered from wherever the server keeps them (its
/// in-memory read model). The HTTP handlers and the copilot's tools both go through it.
#[async_trait]
pub trait InsightSource: Send + Sync {
    /// Rollups over `window` at the moment `now`.
    async fn rollups(
        &self,
        tenant: &TenantId,
        window: Window,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Rollups>, StoreError>;

    /// Every anomaly at the moment `now`, most severe first; only `key`'s when given.
    /// Shared, so a source may hand the same answer to many callers without copying it.
    async fn anomalies(
        &self,
        tenant: &TenantId,
        key: Option<&CorrelationKey>,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Vec<std::sync::Arc<Anomaly>>>, StoreError>;

    /// The items that need a person at the moment `now`, most urgent first.
    async fn needs_you(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NeedsYou>, StoreError>;

    /// At most `limit` search hits for `query`, best first.
    async fn search(
        &self,
        tenant: &TenantId,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError>;
}

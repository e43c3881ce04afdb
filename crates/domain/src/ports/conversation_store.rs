//! The [`ConversationStore`] port: where the copilot's conversations persist.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::TenantId;

/// Where the copilot's conversations persist, per tenant, as JSON documents (the copilot
/// crate owns their shape).
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores `doc` as the tenant's conversation `id`, replacing any earlier version.
    async fn save_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
        doc: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The tenant's conversation `id`; `None` when the tenant has none by that id.
    async fn load_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
}

//! The [`ServiceRegistry`] port: where the upstream services' base URLs persist once a
//! person sets them from the cockpit.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// Where the upstream services' base URLs live once a person sets them from the cockpit,
/// so a restart keeps them. Deployment-wide, not per tenant.
#[async_trait]
pub trait ServiceRegistry: Send + Sync {
    /// Every stored `(service, base URL)`, sorted by service name; empty when none.
    async fn service_urls(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Stores `url` for `service`, replacing any earlier URL.
    async fn set_service_url(
        &self,
        service: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

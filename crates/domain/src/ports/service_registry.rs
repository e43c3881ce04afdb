//! The [`ServiceRegistry`] port: where each tenant's upstream services (base URL and
//! bearer token) persist once a person sets them from the cockpit.
//!
//! Its room in the hexagon: an outbound port; the Postgres, SQLite and in-memory stores
//! implement it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::TenantId;

/// One tenant's stored setting for one upstream service.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredService {
    /// The tenant whose pipeline the service is.
    pub tenant: TenantId,
    /// The service's name (`pfactory`, `aifactory`, `tfactory`).
    pub service: String,
    /// Its base URL.
    pub url: String,
    /// The bearer token set for the URL's origin, if any.
    pub token: Option<String>,
}

impl std::fmt::Debug for StoredService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredService")
            .field("tenant", &self.tenant)
            .field("service", &self.service)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Where the upstream services' URLs and tokens live once a person sets them from the
/// cockpit, per tenant, so a restart keeps them.
#[async_trait]
pub trait ServiceRegistry: Send + Sync {
    /// Every stored setting of every tenant, sorted by tenant then service name; empty
    /// when none.
    async fn stored_services(&self) -> Result<Vec<StoredService>, StoreError>;

    /// Stores `setting`, replacing the tenant's earlier setting of that service (its
    /// token included: `None` removes it).
    async fn set_stored_service(
        &self,
        setting: &StoredService,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

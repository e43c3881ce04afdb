//! The state every handler shares: a leaf module, so the routers, auth and the live
//! socket import it without importing the wiring in `app` (which imports them).

use std::sync::Arc;

use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKeyStore, Clock, ServiceRegistry, WorkItemStore};

use crate::live::hub::Hub;
use crate::live::upstreams::Upstreams;
use crate::metrics::Metrics;

/// What every handler shares, behind one `Arc`: each request takes a copy, and a copy is
/// one reference count rather than one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    /// Shares `parts` with every handler.
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    /// WorkItems, events, usage.
    pub work: Arc<dyn WorkItemStore>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Time, for liveness.
    pub clock: Arc<dyn Clock>,
    /// This server's metrics, rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The opened store, whose writer queue and pool `/metrics` samples.
    pub stores: crate::stores::Stores,
    /// Whether a request without a key may act while no key exists (loopback binds only).
    pub open_mode_allowed: bool,
    /// The names and origins this server answers to (the browser guard's rules).
    pub own_names: crate::guard::OwnNames,
    /// Each tenant's active webhook secrets, briefly cached.
    pub webhook_secrets: std::sync::Arc<crate::webhooks::SecretCache>,
    /// Credentials lately proved against the store, for reads while it is unreachable.
    pub recall: crate::auth::Recall,
    /// The request limits' buckets.
    pub limits: std::sync::Arc<crate::limits::Limits>,
    /// The tenant of open-mode requests.
    pub default_tenant: TenantId,
    /// Silence after which a running stage is stalled.
    pub stall_deadline: chrono::Duration,
    /// How far ahead of this server's clock an event's time may be.
    pub max_clock_skew: chrono::Duration,
    /// How long a request may take (streams excepted); see [`crate::guard::deadline`].
    pub request_timeout: std::time::Duration,
    /// Upstream URLs set from the cockpit.
    pub services: Arc<dyn ServiceRegistry>,
    /// Fans changes out to cockpit sockets.
    pub hub: Hub,
    /// The watched upstream services.
    pub upstreams: Arc<Upstreams>,
    /// Where the cockpit's files come from.
    pub ui: crate::ui::UiSource,
    /// Every tenant's items in memory, for insights.
    pub model: crate::readmodel::ReadModel,
    /// The audit chains.
    pub auditor: crate::audit::Auditor,
    /// The action lifecycle: propose, confirm, reject, expire.
    pub actions: cfactory_domain::actions::ActionService,
    /// The copilot's tools, for MCP and the chat.
    pub tools: Arc<cfactory_copilot::ToolRegistry>,
    /// The copilot, when a language model is configured.
    pub copilot: Option<cfactory_copilot::Copilot>,
    /// Copilot conversations.
    pub conversations: Arc<dyn cfactory_domain::ports::ConversationStore>,
    /// People signed in by single sign-on, and their sessions.
    pub users: Arc<dyn cfactory_domain::ports::UserStore>,
    /// Single sign-on, when it is configured.
    pub sso: Option<Arc<crate::sso::Sso>>,
}

//! Outbound ports: what the domain needs from the world, as traits adapters implement.
//! Each method's `///` line states its contract, including duplicates and missing rows.

mod action_store;
mod agent_consoles;
mod api_key_store;
mod change_sink;
mod conversation_store;
mod error;
mod identity_provider;
mod insight_source;
mod live_sink;
mod service_registry;
mod step_sender;
mod upstream;
mod user_store;
mod work_item_store;

pub use crate::clock::Clock;

pub use action_store::{ActionPage, ActionStore};
pub use agent_consoles::{AgentConsoles, ConsoleStream};
pub use api_key_store::{ApiKey, ApiKeyStore, BrowserSession, Scope, WebhookSecret};
pub use change_sink::ChangeSink;
pub use conversation_store::ConversationStore;
pub use error::StoreError;
pub use identity_provider::{Authorization, Identity, IdentityError, IdentityProvider};
pub use insight_source::InsightSource;
pub use live_sink::LiveSink;
pub use service_registry::{ServiceRegistry, StoredService};
pub use step_sender::StepSender;
pub use upstream::Upstream;
pub use user_store::{
    Group, GroupDraft, GroupMember, GroupRef, GroupReplacement, PersonName, ProvisionedUser,
    SignInProfile, User, UserSession, UserSource, UserStore, normalize_groups, person_label,
};
pub use work_item_store::{
    ActivityEntry, ActivityRows, DEFAULT_LIST_LIMIT, EventScanPage, ListCursor, ListQuery,
    MAX_ACTIVITY_PAGE, MAX_LIST_LIMIT, MAX_TIMELINE_PAGE, ScanPage, Timeline, TimelineCursor,
    TimelineEntry, UsageGroupBy, UsageRow, WorkItemPage, WorkItemStore,
};

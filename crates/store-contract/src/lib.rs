//! The contract every store port (`WorkItemStore`, `ApiKeyStore`, `UserStore`, …) must
//! keep, as one suite of async checks. Each store crate runs it through [`contract_tests!`] against its own fresh
//! store, and this crate runs it against the in-memory fake, so no implementation can
//! drift from the others.
//!
//! The checks live in one module per port or area they check, and are all re-exported
//! here, where the macros name them.

use std::any::Any;
use std::sync::Arc;

use cfactory_domain::actions::ActionStore;
use cfactory_domain::audit::AuditLog;
use cfactory_domain::ports::{
    ApiKeyStore, ConversationStore, ServiceRegistry, UserStore, WorkItemStore,
};

mod actions;
mod audit;
mod batches;
mod change_feed;
mod conversations;
mod helpers;
mod ingest;
mod keys;
mod lists;
mod provisioning;
mod services;
mod snapshots;
mod tenants;
mod timelines;
mod usage;
mod users;

pub use actions::actions_are_stored_listed_and_moved_exactly_once;
pub use audit::{
    audit_chains_append_page_and_verify_per_tenant, concurrent_audit_appends_never_fork_the_chain,
};
pub use batches::{
    a_batch_answers_in_order_with_in_batch_duplicates, a_batch_over_many_items_writes_every_one,
    concurrent_writers_on_one_key_lose_nothing,
};
pub use change_feed::the_change_feed_hears_ingest_and_hydration;
pub use conversations::conversations_persist_per_tenant;
pub use helpers::event_json;
pub use ingest::{
    accepted_then_duplicate, cfactory_events_touch_no_stage, equal_times_go_to_the_later_arrival,
    event_without_id_is_named_by_its_content_and_flagged, evidence_gates_set_proof,
    latest_time_wins_and_late_events_never_regress,
    synthetic_key_merges_into_issue_and_alias_resolves,
    test_spec_linked_to_a_coding_task_lands_on_its_issue, two_issue_numbers_never_merge,
};
pub use keys::{
    api_keys_lifecycle, browser_sessions_last_until_they_end_or_sign_out,
    webhook_secrets_are_kept_per_tenant_and_revoke_once,
};
pub use lists::{
    get_many_answers_in_order_with_aliases_and_gaps, list_filters_count_and_pages,
    stalled_items_are_counted,
};
pub use provisioning::{
    groups_hold_members_and_sessions_follow_provisioning,
    provisioned_users_are_unique_per_tenant_and_bind_at_first_sign_in,
};
pub use services::service_settings_persist_and_replace;
pub use snapshots::{
    an_unchanged_snapshot_rewrites_nothing, only_a_complete_list_clears_vanished_tasks,
    snapshots_land_where_events_will, snapshots_never_regress_a_terminal_stage,
};
pub use tenants::{tenants_and_scans_cover_every_item_once, tenants_are_isolated};
pub use timelines::{
    activity_is_newest_first_across_items_and_follows_merges, event_scans_cover_every_event_once,
    timeline_is_oldest_first_exact_and_paged,
};
pub use usage::{usage_counts_once_per_task_and_new_runs_add, usage_groups};
pub use users::{user_sessions_follow_their_user, users_are_recorded_at_sign_in_per_tenant};

/// A fresh, empty store under test. `guard` is dropped when the test ends (a temporary
/// database or directory).
pub struct Subject {
    /// The WorkItem port.
    pub work: Arc<dyn WorkItemStore>,
    /// The API-key port.
    pub keys: Arc<dyn ApiKeyStore>,
    /// The service-URL port.
    pub services: Arc<dyn ServiceRegistry>,
    /// The audit-log port.
    pub audit: Arc<dyn AuditLog>,
    /// The proposed-action port.
    pub actions: Arc<dyn ActionStore>,
    /// The conversation port.
    pub conversations: Arc<dyn ConversationStore>,
    /// The user port.
    pub users: Arc<dyn UserStore>,
    /// Whatever must live as long as the store.
    pub guard: Option<Box<dyn Any + Send>>,
}

/// Generates one `#[tokio::test]` per contract check, each with a fresh store from
/// `$make` (an async closure returning a [`Subject`]).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            accepted_then_duplicate,
            event_without_id_is_named_by_its_content_and_flagged,
            synthetic_key_merges_into_issue_and_alias_resolves,
            test_spec_linked_to_a_coding_task_lands_on_its_issue,
            two_issue_numbers_never_merge,
            latest_time_wins_and_late_events_never_regress,
            equal_times_go_to_the_later_arrival,
            usage_counts_once_per_task_and_new_runs_add,
            list_filters_count_and_pages,
            stalled_items_are_counted,
            timeline_is_oldest_first_exact_and_paged,
            usage_groups,
            tenants_are_isolated,
            a_batch_answers_in_order_with_in_batch_duplicates,
            a_batch_over_many_items_writes_every_one,
            concurrent_writers_on_one_key_lose_nothing,
            cfactory_events_touch_no_stage,
            evidence_gates_set_proof,
            api_keys_lifecycle,
            browser_sessions_last_until_they_end_or_sign_out,
            webhook_secrets_are_kept_per_tenant_and_revoke_once,
            service_settings_persist_and_replace,
            tenants_and_scans_cover_every_item_once,
            activity_is_newest_first_across_items_and_follows_merges,
            event_scans_cover_every_event_once,
            audit_chains_append_page_and_verify_per_tenant,
            concurrent_audit_appends_never_fork_the_chain,
            actions_are_stored_listed_and_moved_exactly_once,
            conversations_persist_per_tenant,
            get_many_answers_in_order_with_aliases_and_gaps,
            users_are_recorded_at_sign_in_per_tenant,
            user_sessions_follow_their_user,
            provisioned_users_are_unique_per_tenant_and_bind_at_first_sign_in,
            groups_hold_members_and_sessions_follow_provisioning,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let subject = ($make)().await;
                $crate::$name(&subject).await;
                drop(subject);
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per hydration and change-feed check (the upstream
/// snapshot half of the contract), each with a fresh store from `$make`.
#[macro_export]
macro_rules! snapshot_contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            snapshots_land_where_events_will,
            an_unchanged_snapshot_rewrites_nothing,
            snapshots_never_regress_a_terminal_stage,
            only_a_complete_list_clears_vanished_tasks,
            the_change_feed_hears_ingest_and_hydration,
        );
    };
}

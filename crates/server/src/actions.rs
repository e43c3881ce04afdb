//! The server's part of the action lifecycle: the clock that expires unconfirmed
//! proposals. Proposing, confirming, rejecting and expiring themselves are the domain's
//! [`ActionService`]; its steps reach the upstreams through the adapters.

use std::time::Duration;

use cfactory_domain::actions::ActionService;

/// How often prepared actions past their expiry are expired (and audited).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Expires unconfirmed proposals every [`SWEEP_EVERY`], forever.
pub async fn run_sweeper(actions: ActionService) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match actions.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired unconfirmed actions"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired actions failed"),
        }
    }
}

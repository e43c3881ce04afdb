//! The [`StepSender`] port: how a confirmed action's steps reach the service they target.
//!
//! Its room in the hexagon: an outbound port. The upstream adapters send steps through
//! their shared HTTP client (its timeouts, redirect and size rules, and the service's
//! bearer token); the server's upstream registry implements this trait by handing each
//! step to the adapter of the target service.

use async_trait::async_trait;

use crate::actions::{ActionStep, StepResult};
use crate::event::Service;
use crate::ids::TenantId;

/// Sends one step of a confirmed action.
#[async_trait]
pub trait StepSender: Send + Sync {
    /// Sends `step` to `tenant`'s `service` once, never retried (the upstream may have
    /// acted), and reports how it went. Only the URL and token `tenant` configured for
    /// the service may be used. Never fails: no configured service, no connection, a
    /// timeout or a refusal is a [`StepResult`] with `ok: false` and the reason in `error`.
    async fn send_step(&self, tenant: &TenantId, service: Service, step: &ActionStep)
    -> StepResult;
}

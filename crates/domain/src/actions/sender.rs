//! An in-memory [`StepSender`]: records every step it is handed and answers each with a
//! fixed outcome. For tests of the lifecycle and for adapters' authors to compare with.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{ActionStep, StepResult};
use crate::event::Service;
use crate::ids::TenantId;
use crate::ports::StepSender;

/// Records steps instead of sending them; every step succeeds unless told to refuse.
#[derive(Debug, Default)]
pub struct RecordingSender {
    sent: Mutex<Vec<(Service, ActionStep)>>,
    tenants: Mutex<Vec<TenantId>>,
    refusal: Option<String>,
}

impl RecordingSender {
    /// A sender whose every step succeeds with `{"success": true}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sender whose every step is refused with `reason` (status 409).
    pub fn refusing(reason: impl Into<String>) -> Self {
        Self {
            sent: Mutex::default(),
            tenants: Mutex::default(),
            refusal: Some(reason.into()),
        }
    }

    /// Every step handed over so far, in order.
    pub fn sent(&self) -> Vec<(Service, ActionStep)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl StepSender for RecordingSender {
    async fn send_step(
        &self,
        tenant: &TenantId,
        service: Service,
        step: &ActionStep,
    ) -> StepResult {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tenant.clone());
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((service, step.clone()));
        let (status, response) = match &self.refusal {
            None => (200, serde_json::json!({"success": true})),
            Some(reason) => (409, serde_json::json!({"detail": reason})),
        };
        StepResult {
            method: step.method,
            endpoint: step.endpoint.clone(),
            status_code: Some(status),
            ok: self.refusal.is_none(),
            response,
            error: self.refusal.clone(),
            duration_ms: 0,
        }
    }
}

impl RecordingSender {
    /// The tenant each step was sent for, in order.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The payloads of every step handed over so far.
    pub fn payloads(&self) -> Vec<Value> {
        self.sent().into_iter().map(|(_, s)| s.payload).collect()
    }
}

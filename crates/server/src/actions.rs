//! Advise and confirm: proposals are planned by the domain and stored as `prepared`;
//! only a person's confirm sends them. A confirm claims the action (`prepared →
//! executing`, a compare-and-set, so two confirms cannot both run it), sends its steps in
//! order to the base URL CFactory holds for the target service, stops at the first
//! failure, and records `executed` or `failed` with each step's result. Confirms, rejects
//! and expiries are appended to the audit chain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfactory_copilot::{ToolContext, ToolError, ToolRegistry};
use cfactory_domain::actions::{
    ActionKind, ActionStatus, ActionStep, ActionStore, HttpMethod, PreparedAction, StepResult,
};
use cfactory_domain::audit::sha256_hex;
use cfactory_domain::ports::{Clock, StoreError, WorkItemStore};
use cfactory_domain::{CorrelationKey, Service, TenantId};
use serde_json::Value;

use crate::audit::Auditor;
use crate::live::upstreams::Upstreams;
use crate::settings::Secret;

/// How long one step may take before it counts as failed. A timed-out step is not
/// retried: the upstream may have acted, and a person decides what happens next.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often prepared actions past their expiry are expired (and audited).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why a confirm or reject did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such action for this tenant.
    #[error("no action `{0}` for this tenant")]
    NotFound(String),
    /// The action is not waiting for a decision (already decided, running or expired).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The proposals' lifecycle over the action store, the upstreams and the audit chain.
#[derive(Clone)]
pub struct Actions {
    store: Arc<dyn ActionStore>,
    work: Arc<dyn WorkItemStore>,
    tools: Arc<ToolRegistry>,
    upstreams: Arc<Upstreams>,
    tokens: Arc<BTreeMap<Service, Secret>>,
    http: reqwest::Client,
    auditor: Auditor,
    clock: Arc<dyn Clock>,
}

/// What [`Actions::new`] needs.
pub struct ActionsDeps {
    /// Where proposals live.
    pub store: Arc<dyn ActionStore>,
    /// WorkItems, for the sweeper's tenant list.
    pub work: Arc<dyn WorkItemStore>,
    /// The copilot's tools (their `propose` is the one way to plan and store).
    pub tools: Arc<ToolRegistry>,
    /// The upstream registry: where each service's base URL comes from.
    pub upstreams: Arc<Upstreams>,
    /// Bearer tokens per service.
    pub tokens: BTreeMap<Service, Secret>,
    /// The audit chain.
    pub auditor: Auditor,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

fn reason_of(response: &Value, status: u16) -> String {
    for field in ["detail", "error", "message", "reason"] {
        match &response[field] {
            Value::String(s) if !s.trim().is_empty() => return truncate(s, 500),
            Value::Object(o) => {
                if let Some(Value::String(s)) = o.get("message") {
                    return truncate(s, 500);
                }
            }
            _ => {}
        }
    }
    format!("the service answered {status}")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

impl Actions {
    /// The lifecycle over `deps`.
    pub fn new(deps: ActionsDeps) -> Self {
        let http = reqwest::Client::builder()
            .timeout(STEP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        Self {
            store: deps.store,
            work: deps.work,
            tools: deps.tools,
            upstreams: deps.upstreams,
            tokens: Arc::new(deps.tokens),
            http,
            auditor: deps.auditor,
            clock: deps.clock,
        }
    }

    /// The copilot's tools.
    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.tools
    }

    /// Plans and stores a proposal (status `prepared`); nothing is sent.
    pub async fn propose(
        &self,
        ctx: &ToolContext,
        kind: ActionKind,
        key: &CorrelationKey,
        note: Option<&str>,
    ) -> Result<PreparedAction, ToolError> {
        self.tools.propose(ctx, kind, key, note).await
    }

    /// One action of the tenant.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<PreparedAction>, StoreError> {
        self.store.get(tenant, id).await
    }

    /// The tenant's actions, newest first; prepared ones past their expiry are expired
    /// (and audited) on the way.
    pub async fn list(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: u32,
    ) -> Result<Vec<PreparedAction>, StoreError> {
        let mut actions = self.store.list(tenant, status, limit).await?;
        let now = self.clock.now();
        for action in &mut actions {
            if action.status == ActionStatus::Prepared
                && action.is_expired_at(now)
                && let Some(expired) = self.expire(action).await?
            {
                *action = expired;
            }
        }
        if let Some(wanted) = status {
            actions.retain(|a| a.status == wanted);
        }
        Ok(actions)
    }

    /// Moves a prepared action past its expiry to `expired` and audits it; `None` when
    /// something else decided it first.
    async fn expire(&self, action: &PreparedAction) -> Result<Option<PreparedAction>, StoreError> {
        let moved = self
            .store
            .transition(
                &action.tenant,
                &action.id,
                ActionStatus::Prepared,
                ActionStatus::Expired,
                Vec::new(),
            )
            .await?;
        if let Some(expired) = &moved {
            self.audit(expired, "system", "action.expired", None, false)
                .await?;
        }
        Ok(moved)
    }

    /// Expires every tenant's prepared actions past their expiry; returns how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut expired = 0;
        for tenant in self.work.tenants().await? {
            for action in self
                .store
                .list(&tenant, Some(ActionStatus::Prepared), 500)
                .await?
            {
                if action.is_expired_at(now) && self.expire(&action).await?.is_some() {
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }

    /// Runs [`Self::sweep`] forever.
    pub async fn run_sweeper(self) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expired unconfirmed actions"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired actions failed"),
            }
        }
    }

    /// Why an action that is not `prepared` cannot be decided now.
    fn not_waiting(action: &PreparedAction) -> ActionError {
        ActionError::Conflict(match action.status {
            ActionStatus::Executing => "the action is being executed by another confirm".into(),
            ActionStatus::Expired => format!(
                "the action expired at {} without a confirm",
                action.expires_at.to_rfc3339()
            ),
            status => format!("the action is already {status}"),
        })
    }

    /// Executes the tenant's prepared action `id` once, for `actor`: its steps in order,
    /// each only after the one before succeeded. Answers the action as stored after,
    /// `executed` or `failed`, with each step's result.
    pub async fn confirm(
        &self,
        tenant: &TenantId,
        actor: &str,
        id: &str,
    ) -> Result<PreparedAction, ActionError> {
        let action = self
            .store
            .get(tenant, id)
            .await?
            .ok_or_else(|| ActionError::NotFound(id.to_owned()))?;
        let now = self.clock.now();
        if action.status == ActionStatus::Prepared && action.is_expired_at(now) {
            let expired = self.expire(&action).await?.unwrap_or(action);
            return Err(Self::not_waiting(&expired));
        }
        let Some(claimed) = self
            .store
            .transition(
                tenant,
                id,
                ActionStatus::Prepared,
                ActionStatus::Executing,
                Vec::new(),
            )
            .await?
        else {
            let now_stored = self.store.get(tenant, id).await?.unwrap_or(action);
            return Err(Self::not_waiting(&now_stored));
        };
        let steps = claimed.steps_for_confirm(actor, now);
        let mut results = Vec::with_capacity(steps.len());
        for step in &steps {
            let result = self.send(claimed.target_service, step).await;
            let ok = result.ok;
            results.push(result);
            if !ok {
                break;
            }
        }
        let ok = results.len() == steps.len() && results.iter().all(|r| r.ok);
        let to = if ok {
            ActionStatus::Executed
        } else {
            ActionStatus::Failed
        };
        let done = self
            .store
            .transition(tenant, id, ActionStatus::Executing, to, results.clone())
            .await?
            .ok_or_else(|| ActionError::Conflict("the action changed while it ran".into()))?;
        let payloads: Vec<&Value> = steps.iter().map(|s| &s.payload).collect();
        let hash = sha256_hex(
            serde_json::to_string(&payloads)
                .unwrap_or_default()
                .as_bytes(),
        );
        let last_status = results.last().and_then(|r| r.status_code);
        let mut entry = crate::audit::record(actor, "action.confirmed", self.clock.now());
        entry.correlation_key = Some(done.correlation_key.to_string());
        entry.target = Some(done.target_service.as_str().to_owned());
        entry.method = Some(done.method.as_str().to_owned());
        entry.endpoint = Some(done.endpoint.to_string());
        entry.status_code = last_status;
        entry.ok = ok;
        entry.action_id = Some(done.id.clone());
        entry.payload_sha256 = Some(hash);
        self.auditor.record(tenant, entry).await?;
        tracing::info!(tenant = %tenant, action = %id, ok, "action confirmed");
        Ok(done)
    }

    /// Turns the tenant's prepared action `id` down for `actor`.
    pub async fn reject(
        &self,
        tenant: &TenantId,
        actor: &str,
        id: &str,
    ) -> Result<PreparedAction, ActionError> {
        let action = self
            .store
            .get(tenant, id)
            .await?
            .ok_or_else(|| ActionError::NotFound(id.to_owned()))?;
        if action.status == ActionStatus::Prepared && action.is_expired_at(self.clock.now()) {
            let expired = self.expire(&action).await?.unwrap_or(action);
            return Err(Self::not_waiting(&expired));
        }
        let Some(rejected) = self
            .store
            .transition(
                tenant,
                id,
                ActionStatus::Prepared,
                ActionStatus::Rejected,
                Vec::new(),
            )
            .await?
        else {
            let now_stored = self.store.get(tenant, id).await?.unwrap_or(action);
            return Err(Self::not_waiting(&now_stored));
        };
        self.audit(&rejected, actor, "action.rejected", None, true)
            .await?;
        Ok(rejected)
    }

    async fn audit(
        &self,
        action: &PreparedAction,
        actor: &str,
        kind: &str,
        status_code: Option<u16>,
        ok: bool,
    ) -> Result<(), StoreError> {
        let mut entry = crate::audit::record(actor, kind, self.clock.now());
        entry.correlation_key = Some(action.correlation_key.to_string());
        entry.target = Some(action.target_service.as_str().to_owned());
        entry.method = Some(action.method.as_str().to_owned());
        entry.endpoint = Some(action.endpoint.to_string());
        entry.status_code = status_code;
        entry.ok = ok;
        entry.action_id = Some(action.id.clone());
        entry.payload_sha256 = Some(sha256_hex(action.payload.to_string().as_bytes()));
        self.auditor.record(&action.tenant, entry).await?;
        Ok(())
    }

    /// Sends one step to `service`'s base URL from the registry. A 2xx without
    /// `"success": false` succeeds; a refusal (409, `success: false`, any other status)
    /// fails with the upstream's reason; a timeout or no connection fails, unretried.
    async fn send(&self, service: Service, step: &ActionStep) -> StepResult {
        let started = Instant::now();
        let failed = |error: String, status_code: Option<u16>, response: Value| StepResult {
            method: step.method,
            endpoint: step.endpoint.clone(),
            status_code,
            ok: false,
            response,
            error: Some(error),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let Some(base) = self.upstreams.base_url(service).await else {
            return failed(
                format!("no URL is configured for {service}; set one on the Services page"),
                None,
                Value::Null,
            );
        };
        let url = format!("{}{}", base.trim_end_matches('/'), step.endpoint);
        let method = match step.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, &url);
        if !step.payload.is_null() {
            request = request.json(&step.payload);
        }
        if let Some(token) = self.tokens.get(&service) {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return failed(
                    format!(
                        "{service} did not answer within {} s; not retried (it may have acted)",
                        STEP_TIMEOUT.as_secs()
                    ),
                    None,
                    Value::Null,
                );
            }
            Err(_) => {
                return failed(format!("cannot reach {service}"), None, Value::Null);
            }
        };
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let refused = json.get("success") == Some(&Value::Bool(false));
        if (200..300).contains(&status) && !refused {
            return StepResult {
                method: step.method,
                endpoint: step.endpoint.clone(),
                status_code: Some(status),
                ok: true,
                response: json,
                error: None,
                duration_ms: started.elapsed().as_millis() as u64,
            };
        }
        let reason = if json.is_null() && !body.trim().is_empty() {
            truncate(body.trim(), 500)
        } else {
            reason_of(&json, status)
        };
        failed(reason, Some(status), json)
    }
}

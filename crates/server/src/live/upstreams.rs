//! The upstream services as the cockpit runs them: one adapter per configured service,
//! probed and hydrated every poll round, followed live over WebSocket, and re-pointed at
//! once when a person changes a service's URL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfactory_domain::actions::{ActionStep, StepResult};
use cfactory_domain::ports::{LiveSink, StepSender, Upstream, WorkItemStore};
use cfactory_domain::upstream::{
    FeedState, Health, HealthReport, LiveUpdate, ProcessGraph, TaskList, TaskSnapshot,
    UpstreamError,
};
use cfactory_domain::{Clock, Service, TenantId};
use serde::Serialize;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

/// Builds the adapter for a service at a base URL.
pub type UpstreamFactory =
    Arc<dyn Fn(Service, &str) -> Result<Arc<dyn Upstream>, String> + Send + Sync>;

/// The three services the cockpit watches, in pipeline order.
pub const WATCHED: [Service; 3] = [Service::Pfactory, Service::Aifactory, Service::Tfactory];

struct Slot {
    url: Option<String>,
    upstream: Option<Arc<dyn Upstream>>,
    health: HealthReport,
    follower: Option<JoinHandle<()>>,
}

/// One service as `GET /api/services` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// The service.
    pub service: Service,
    /// Its base URL, when configured.
    pub url: Option<String>,
    /// Whether an adapter runs for it.
    pub configured: bool,
    /// The latest probe.
    pub health: HealthReport,
    /// Each live feed's state by route, as its follower last saw it.
    pub feeds: BTreeMap<String, FeedState>,
}

/// The live feeds' states, by service and route.
type FeedStates = Arc<Mutex<BTreeMap<Service, BTreeMap<String, FeedState>>>>;

/// Forwards live updates to the cockpit, keeps each feed's state for the services view,
/// and files a status frame that says why a task waits in review (AIFactory's
/// `reviewReason`) on the task's stage, as a poll would.
struct FeedWatch {
    inner: Arc<dyn LiveSink>,
    states: FeedStates,
    store: Arc<dyn WorkItemStore>,
    tenant: TenantId,
}

impl LiveSink for FeedWatch {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        if let LiveUpdate::Status {
            task_id,
            status,
            review_reason: Some(reason),
            at,
        } = &update
        {
            let snapshot = TaskSnapshot {
                service,
                task_id: task_id.clone(),
                issue_number: None,
                status: status.clone(),
                phase: None,
                title: None,
                project: None,
                updated_at: Some(*at),
                correlation: Default::default(),
                review_reason: Some(reason.clone()),
            };
            let list = TaskList {
                tasks: vec![snapshot],
                complete: false,
                failures: Vec::new(),
            };
            let (store, tenant, at) = (self.store.clone(), self.tenant.clone(), *at);
            tokio::spawn(async move {
                if let Err(e) = store.apply_snapshots(&tenant, service, &list, at).await {
                    tracing::warn!(%service, error = %e, "a live review reason could not be stored");
                }
            });
        }
        self.inner.live_update(service, update);
    }

    fn feed_state(&self, service: Service, route: &str, state: FeedState) {
        if let FeedState::Unauthorized { detail } = &state {
            tracing::warn!(%service, route, %detail, "live feed refused");
        }
        self.states
            .lock()
            .expect("feed states lock")
            .entry(service)
            .or_default()
            .insert(route.to_owned(), state);
    }
}

/// What one poll round did for one service. `error` never carries a URL.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// The service.
    pub service: Service,
    /// Whether an adapter runs for it.
    pub configured: bool,
    /// The probe's verdict.
    pub health: Health,
    /// Rows read from its task list.
    pub tasks: usize,
    /// Whether every page was read.
    pub complete: bool,
    /// WorkItems that changed.
    pub changed: usize,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// Why a service URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute http(s) URL.
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    /// A link-local address or a cloud metadata name: where instance credentials live.
    #[error("must not point at a link-local address or a cloud metadata host")]
    Metadata,
    /// Not one of the watched services.
    #[error("unknown service")]
    UnknownService,
}

/// Host names of cloud instance-metadata services.
const METADATA_HOSTS: [&str; 5] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Whether `host` (as in a URL, IPv6 in brackets) is link-local (169.254.0.0/16,
/// fe80::/10) or a cloud metadata name.
fn is_metadata_host(host: &str) -> bool {
    let name = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if METADATA_HOSTS.contains(&name.as_str()) {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_link_local(),
        Ok(std::net::IpAddr::V6(v6)) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
        Err(_) => false,
    }
}

/// Checks a base URL: absolute http(s), with a host, no credentials, query or fragment.
pub fn validate_url(url: &str) -> Result<String, UrlError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or(UrlError::NotHttp)?;
    let host = rest.split('/').next().unwrap_or_default();
    let bad = host.is_empty()
        || host.contains('@')
        || rest.contains('?')
        || rest.contains('#')
        || rest.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(UrlError::NotHttp);
    }
    let host_only = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if is_metadata_host(host_only) {
        return Err(UrlError::Metadata);
    }
    Ok(trimmed.to_owned())
}

/// The watched services.
pub struct Upstreams {
    slots: RwLock<BTreeMap<Service, Slot>>,
    factory: UpstreamFactory,
    store: Arc<dyn WorkItemStore>,
    clock: Arc<dyn Clock>,
    tenant: TenantId,
    live: Arc<dyn LiveSink>,
    feeds: FeedStates,
}

fn unknown(service: Service, at: chrono::DateTime<chrono::Utc>) -> HealthReport {
    HealthReport {
        service,
        status: Health::Unknown,
        detail: None,
        latency_ms: None,
        checked_at: at,
    }
}

impl Upstreams {
    /// Sets up the services with their configured URLs (unset ones run no adapter).
    /// Followers start with [`Self::start_followers`].
    pub fn new(
        urls: BTreeMap<Service, String>,
        factory: UpstreamFactory,
        store: Arc<dyn WorkItemStore>,
        clock: Arc<dyn Clock>,
        tenant: TenantId,
        live: Arc<dyn LiveSink>,
    ) -> Self {
        let now = clock.now();
        let slots = WATCHED
            .iter()
            .map(|&service| {
                let url = urls.get(&service).cloned();
                let mut health = unknown(service, now);
                let upstream = url.as_deref().and_then(|u| match factory(service, u) {
                    Ok(upstream) => Some(upstream),
                    Err(reason) => {
                        tracing::warn!(%service, %reason, "cannot build the adapter");
                        health.status = Health::Error;
                        health.detail = Some(reason);
                        None
                    }
                });
                (
                    service,
                    Slot {
                        url,
                        upstream,
                        health,
                        follower: None,
                    },
                )
            })
            .collect();
        let feeds = FeedStates::default();
        let live: Arc<dyn LiveSink> = Arc::new(FeedWatch {
            inner: live,
            states: feeds.clone(),
            store: store.clone(),
            tenant: tenant.clone(),
        });
        Self {
            slots: RwLock::new(slots),
            factory,
            store,
            clock,
            tenant,
            live,
            feeds,
        }
    }

    /// Starts following every configured service's live feed.
    pub async fn start_followers(&self) {
        let mut slots = self.slots.write().await;
        for slot in slots.values_mut() {
            self.restart_follower(slot);
        }
    }

    fn restart_follower(&self, slot: &mut Slot) {
        if let Some(old) = slot.follower.take() {
            old.abort();
        }
        if let Some(service) = slot.upstream.as_ref().map(|u| u.service()) {
            self.feeds
                .lock()
                .expect("feed states lock")
                .remove(&service);
        }
        if let Some(upstream) = slot.upstream.clone() {
            let sink = self.live.clone();
            slot.follower = Some(tokio::spawn(async move { upstream.follow(sink).await }));
        }
    }

    /// Stops every live follower.
    pub async fn stop_followers(&self) {
        for slot in self.slots.write().await.values_mut() {
            if let Some(follower) = slot.follower.take() {
                follower.abort();
            }
        }
    }

    /// Every watched service with its URL and latest health.
    pub async fn views(&self) -> Vec<ServiceView> {
        let feeds = self.feeds.lock().expect("feed states lock").clone();
        self.slots
            .read()
            .await
            .iter()
            .map(|(service, slot)| ServiceView {
                service: *service,
                url: slot.url.clone(),
                configured: slot.upstream.is_some(),
                health: slot.health.clone(),
                feeds: feeds.get(service).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The base URL CFactory holds for a service (from its configuration or the cockpit),
    /// if any: the only place an action's request may be sent.
    pub async fn base_url(&self, service: Service) -> Option<String> {
        self.slots
            .read()
            .await
            .get(&service)
            .and_then(|s| s.url.clone())
    }

    /// The configured adapter of a service.
    pub async fn upstream(&self, service: Service) -> Option<Arc<dyn Upstream>> {
        self.slots
            .read()
            .await
            .get(&service)
            .and_then(|s| s.upstream.clone())
    }

    /// Points a service at a new base URL, restarts its follower and probes it at once.
    pub async fn set_url(&self, service: Service, url: &str) -> Result<ServiceView, UrlError> {
        if !WATCHED.contains(&service) {
            return Err(UrlError::UnknownService);
        }
        let url = validate_url(url)?;
        let upstream = (self.factory)(service, &url).map_err(|_| UrlError::NotHttp)?;
        let health = upstream.probe().await;
        let mut slots = self.slots.write().await;
        let slot = slots.get_mut(&service).ok_or(UrlError::UnknownService)?;
        slot.url = Some(url);
        slot.upstream = Some(upstream);
        slot.health = health;
        self.restart_follower(slot);
        Ok(ServiceView {
            service,
            url: slot.url.clone(),
            configured: true,
            health: slot.health.clone(),
            feeds: BTreeMap::new(),
        })
    }

    /// One poll round: probe each configured service and hydrate from the online ones.
    pub async fn round(&self) -> Vec<RoundReport> {
        let targets: Vec<(Service, Option<Arc<dyn Upstream>>)> = self
            .slots
            .read()
            .await
            .iter()
            .map(|(s, slot)| (*s, slot.upstream.clone()))
            .collect();
        let rounds = targets.into_iter().map(|(service, upstream)| async move {
            match upstream {
                None => RoundReport {
                    service,
                    configured: false,
                    health: Health::Unknown,
                    tasks: 0,
                    complete: false,
                    changed: 0,
                    error: None,
                },
                Some(upstream) => self.poll_one(service, upstream).await,
            }
        });
        futures::future::join_all(rounds).await
    }

    async fn poll_one(&self, service: Service, upstream: Arc<dyn Upstream>) -> RoundReport {
        let health = upstream.probe().await;
        let status = health.status;
        let mut report = RoundReport {
            service,
            configured: true,
            health: status,
            tasks: 0,
            complete: false,
            changed: 0,
            error: health.detail.clone().filter(|_| status != Health::Online),
        };
        if let Some(slot) = self.slots.write().await.get_mut(&service) {
            slot.health = health;
        }
        if status != Health::Online {
            return report;
        }
        match upstream.list_tasks().await {
            Ok(list) => {
                report.tasks = list.tasks.len();
                report.complete = list.complete;
                if !list.failures.is_empty() {
                    // Answering, but a route it needs failed: degraded, with the route named.
                    let detail = list.failures.join("; ");
                    tracing::warn!(%service, %detail, "a task list route failed");
                    report.health = Health::Degraded;
                    report.error = Some(detail.clone());
                    if let Some(slot) = self.slots.write().await.get_mut(&service) {
                        slot.health.status = Health::Degraded;
                        slot.health.detail = Some(detail);
                    }
                }
                match self
                    .store
                    .apply_snapshots(&self.tenant, service, &list, self.clock.now())
                    .await
                {
                    Ok(changed) => report.changed = changed.len(),
                    Err(e) => {
                        tracing::warn!(%service, error = %e, "hydration could not be stored");
                        report.error = Some("the store could not take the snapshot".into());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%service, error = %e, "task list failed");
                report.error = Some(e.to_string());
            }
        }
        report
    }

    /// Polls every `interval` until the task is dropped.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.round().await;
        }
    }

    /// The execution graph of a task at a service.
    pub async fn process(
        &self,
        service: Service,
        task_id: &str,
    ) -> Result<ProcessGraph, UpstreamError> {
        let upstream = self
            .upstream(service)
            .await
            .ok_or_else(|| UpstreamError::Offline("not configured".into()))?;
        upstream.process(task_id).await
    }
}

/// A confirmed action's steps go to the adapter of their service, built from the URL
/// CFactory holds for it: the only place an action's request may be sent.
#[async_trait::async_trait]
impl StepSender for Upstreams {
    async fn send_step(&self, service: Service, step: &ActionStep) -> StepResult {
        match self.upstream(service).await {
            Some(upstream) => upstream.send_step(step).await,
            None => StepResult {
                method: step.method,
                endpoint: step.endpoint.clone(),
                status_code: None,
                ok: false,
                response: serde_json::Value::Null,
                error: Some(format!(
                    "no URL is configured for {service}; set one on the Services page"
                )),
                duration_ms: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_pass() {
        assert_eq!(
            validate_url("http://127.0.0.1:3101/").unwrap(),
            "http://127.0.0.1:3101"
        );
        assert!(validate_url("https://ai.example.com/base").is_ok());
        for bad in [
            "ftp://x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://",
            "http://user:pw@host",
            "http://host/?q=1",
            "127.0.0.1:3101",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_local_and_metadata_hosts_are_refused() {
        for bad in [
            "http://169.254.169.254",
            "http://169.254.169.254:80/latest",
            "http://[fe80::1]:3101",
            "http://[::ffff:169.254.169.254]",
            "http://metadata.google.internal",
            "http://METADATA.GOOGLE.INTERNAL.",
            "http://instance-data",
        ] {
            assert!(
                matches!(validate_url(bad), Err(UrlError::Metadata)),
                "{bad}"
            );
        }
        for ok in [
            "http://10.0.0.5:3102",
            "http://[::1]:3101",
            "http://metadata.example.com",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
    }
}

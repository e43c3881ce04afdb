//! The upstream services as the cockpit runs them, per tenant: each tenant has its own
//! registry of the watched services (base URL and bearer token), one adapter per
//! configured service, probed and hydrated every poll round into that tenant's items,
//! followed live over WebSocket for that tenant's clients, and re-pointed at once when
//! one of its administrators changes a service. Nothing one tenant set is ever used for
//! another: polls, feeds, `/process` and confirmed actions go only through the caller's
//! own registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfactory_domain::actions::{ActionStep, StepResult};
use cfactory_domain::ports::{
    LiveSink, ServiceRegistry, StepSender, StoreError, StoredService, Upstream, WorkItemStore,
};
use cfactory_domain::upstream::{
    FeedState, Health, HealthReport, LiveUpdate, ProcessGraph, TaskList, TaskSnapshot,
    UpstreamError,
};
use cfactory_domain::{Clock, Service, TenantId};
use serde::Serialize;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

use cfactory_domain::audit::Auditor;

use crate::settings::Secret;

/// Builds the adapter for a service at a base URL, with the bearer token to send there
/// (if any).
pub type UpstreamFactory =
    Arc<dyn Fn(Service, &str, Option<&str>) -> Result<Arc<dyn Upstream>, String> + Send + Sync>;

/// Makes the sink a tenant's live feeds report to (its own clients only).
pub type SinkFor = Arc<dyn Fn(&TenantId) -> Arc<dyn LiveSink> + Send + Sync>;

/// Whether the cockpit watches `service`: every service with a stage in the domain's
/// service table, in pipeline order ([`Service::upstreams`]).
pub fn watched(service: Service) -> bool {
    Service::upstreams().any(|s| s == service)
}

struct Slot {
    url: Option<String>,
    /// The token a person set through the API for `url`'s origin (stored).
    token: Option<Secret>,
    /// Whether the adapter sends a token (this one or the start flags').
    token_set: bool,
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
    /// Whether a bearer token is sent to it (the token itself is never shown).
    pub token_set: bool,
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
    /// How long the poll took (zero for a service not configured).
    #[serde(skip)]
    pub took: Duration,
}

/// Why a change to a service was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// Not an absolute http(s) URL.
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    /// A link-local address or a cloud metadata name: where instance credentials live.
    #[error("must not point at a link-local address or a cloud metadata host")]
    Metadata,
    /// Not one of the watched services.
    #[error("unknown service")]
    UnknownService,
    /// The store could not keep the change; the running adapter was not changed.
    #[error("the store could not keep the change: {0}")]
    Store(StoreError),
    /// The audit log could not record the change; nothing was changed.
    #[error("the audit log could not record the change: {0}")]
    Audit(StoreError),
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
pub fn validate_url(url: &str) -> Result<String, SetError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or(SetError::NotHttp)?;
    let host = rest.split('/').next().unwrap_or_default();
    let bad = host.is_empty()
        || host.contains('@')
        || rest.contains('?')
        || rest.contains('#')
        || rest.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(SetError::NotHttp);
    }
    let host_only = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if is_metadata_host(host_only) {
        return Err(SetError::Metadata);
    }
    Ok(trimmed.to_owned())
}

/// How a change to a service treats its token.
#[derive(Debug, Clone)]
pub enum TokenChange {
    /// Keep the token if the URL stays on the same origin; drop it otherwise (a token
    /// is never sent to an origin it was not set for).
    Keep,
    /// Use this token for the new URL.
    Set(Secret),
    /// Send no token.
    Clear,
}

impl TokenChange {
    /// What a request's optional `token` field asks for: absent keeps, empty clears.
    pub fn from_field(token: Option<String>) -> Self {
        match token {
            None => Self::Keep,
            Some(t) if t.trim().is_empty() => Self::Clear,
            Some(t) => Self::Set(Secret::new(t.trim())),
        }
    }
}

/// What a change to a service did, for the audit log: origins only, never a token.
#[derive(Debug, Clone)]
pub struct ServiceChange {
    /// The service as it now runs, freshly probed.
    pub view: ServiceView,
    /// The origin it pointed at before, if any.
    pub before: Option<String>,
    /// The origin it points at now.
    pub after: String,
    /// What happened to the token: `set`, `kept`, `dropped`, `cleared` or `none`.
    pub token: &'static str,
}

/// The origin (`scheme://host[:port]`) of a base URL: the unit a token is bound to and
/// what the audit log records of a change (a path could carry something private).
pub fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.origin().is_tuple() => u.origin().ascii_serialization(),
        _ => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let authority = rest.split('/').next().unwrap_or_default();
            format!("{scheme}://{authority}")
        }
    }
}

/// A service as the start flags configure it for the `--tenant` tenant.
#[derive(Debug, Clone)]
pub struct StartTarget {
    /// Its base URL, if set.
    pub url: Option<String>,
    /// The token for that URL's origin, if set.
    pub token: Option<Secret>,
}

/// What the registry is built from.
pub struct UpstreamsParts {
    /// Builds adapters.
    pub factory: UpstreamFactory,
    /// Where hydration and live review reasons are written.
    pub store: Arc<dyn WorkItemStore>,
    /// Where settings changed through the API are kept.
    pub registry: Arc<dyn ServiceRegistry>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Each tenant's live sink.
    pub sink_for: SinkFor,
    /// The tenant the start flags configure (`--tenant`).
    pub start_tenant: TenantId,
    /// The start flags' services.
    pub start: BTreeMap<Service, StartTarget>,
    /// Every tenant's stored settings; a stored URL wins over the flag's.
    pub stored: Vec<StoredService>,
}

/// One tenant's watched services.
struct TenantUpstreams {
    tenant: TenantId,
    slots: RwLock<BTreeMap<Service, Slot>>,
    live: Arc<dyn LiveSink>,
    feeds: FeedStates,
}

/// Every tenant's watched services: the only way to an upstream.
pub struct Upstreams {
    tenants: std::sync::RwLock<BTreeMap<TenantId, Arc<TenantUpstreams>>>,
    factory: UpstreamFactory,
    store: Arc<dyn WorkItemStore>,
    registry: Arc<dyn ServiceRegistry>,
    clock: Arc<dyn Clock>,
    sink_for: SinkFor,
    start_tenant: TenantId,
    /// The start flags' tokens, each bound to the origin of its flag URL.
    start_tokens: BTreeMap<Service, (String, Secret)>,
    following: std::sync::atomic::AtomicBool,
    /// Serialises changes, so two concurrent `PUT`s cannot interleave store and memory.
    changing: tokio::sync::Mutex<()>,
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

fn unconfigured(service: Service, at: chrono::DateTime<chrono::Utc>) -> ServiceView {
    ServiceView {
        service,
        url: None,
        configured: false,
        token_set: false,
        health: unknown(service, at),
        feeds: BTreeMap::new(),
    }
}

impl Upstreams {
    /// Sets up every tenant that has a configured service (unset ones run no adapter).
    /// Followers start with [`Self::start_followers`].
    pub fn new(parts: UpstreamsParts) -> Self {
        let mut start_tokens = BTreeMap::new();
        for (service, target) in &parts.start {
            if let Some(token) = &target.token {
                match &target.url {
                    Some(url) => {
                        start_tokens.insert(*service, (origin_of(url), token.clone()));
                    }
                    None => tracing::warn!(
                        %service,
                        "a token is configured without a URL to bind it to: it will not be \
                         sent (set the service's URL flag beside its token)"
                    ),
                }
            }
        }
        let this = Self {
            tenants: std::sync::RwLock::new(BTreeMap::new()),
            factory: parts.factory,
            store: parts.store,
            registry: parts.registry,
            clock: parts.clock,
            sink_for: parts.sink_for,
            start_tenant: parts.start_tenant.clone(),
            start_tokens,
            following: std::sync::atomic::AtomicBool::new(false),
            changing: tokio::sync::Mutex::new(()),
        };
        // What each tenant runs with: the start flags for `--tenant`, then stored settings.
        let mut wanted: BTreeMap<TenantId, BTreeMap<Service, (String, Option<Secret>)>> =
            BTreeMap::new();
        for (service, target) in &parts.start {
            if let Some(url) = &target.url {
                wanted
                    .entry(parts.start_tenant.clone())
                    .or_default()
                    .insert(*service, (url.clone(), None));
            }
        }
        for stored in parts.stored {
            match Service::parse(&stored.service).filter(|s| watched(*s)) {
                Some(service) => {
                    wanted
                        .entry(stored.tenant)
                        .or_default()
                        .insert(service, (stored.url, stored.token.map(Secret::new)));
                }
                None => tracing::warn!(
                    name = %stored.service,
                    "ignoring a stored setting for an unknown service"
                ),
            }
        }
        for (tenant, services) in wanted {
            let set = this.tenant_set(&tenant);
            let now = this.clock.now();
            let mut slots = set
                .slots
                .try_write()
                .expect("a new tenant's slots are free");
            for (service, (url, token)) in services {
                let slot = slots
                    .get_mut(&service)
                    .expect("every watched service has a slot");
                let (upstream, token_set, health) = this.adapter(&tenant, service, &url, &token);
                let health = health.unwrap_or_else(|| unknown(service, now));
                *slot = Slot {
                    url: Some(url),
                    token,
                    token_set,
                    upstream,
                    health,
                    follower: None,
                };
            }
        }
        this
    }

    /// The token an adapter for `tenant`'s `service` at `url` sends: the one set through
    /// the API, else the start flag's when `url` is on the origin it was set for.
    fn effective_token<'a>(
        &'a self,
        tenant: &TenantId,
        service: Service,
        url: &str,
        token: &'a Option<Secret>,
    ) -> Option<&'a Secret> {
        token.as_ref().or_else(|| {
            self.start_tokens
                .get(&service)
                .filter(|(bound, _)| *tenant == self.start_tenant && *bound == origin_of(url))
                .map(|(_, t)| t)
        })
    }

    /// Builds an adapter; on failure, a health report that says why.
    fn adapter(
        &self,
        tenant: &TenantId,
        service: Service,
        url: &str,
        token: &Option<Secret>,
    ) -> (Option<Arc<dyn Upstream>>, bool, Option<HealthReport>) {
        let sent = self.effective_token(tenant, service, url, token);
        match (self.factory)(service, url, sent.map(Secret::expose)) {
            Ok(upstream) => (Some(upstream), sent.is_some(), None),
            Err(reason) => {
                tracing::warn!(%service, %tenant, %reason, "cannot build the adapter");
                let mut health = unknown(service, self.clock.now());
                health.status = Health::Error;
                health.detail = Some(reason);
                (None, false, Some(health))
            }
        }
    }

    /// A tenant's set, made (empty) on first use.
    fn tenant_set(&self, tenant: &TenantId) -> Arc<TenantUpstreams> {
        if let Some(set) = self.existing(tenant) {
            return set;
        }
        let mut tenants = self.tenants.write().expect("tenants lock");
        tenants
            .entry(tenant.clone())
            .or_insert_with(|| {
                let now = self.clock.now();
                let slots = Service::upstreams()
                    .map(|service| {
                        let slot = Slot {
                            url: None,
                            token: None,
                            token_set: false,
                            upstream: None,
                            health: unknown(service, now),
                            follower: None,
                        };
                        (service, slot)
                    })
                    .collect();
                let feeds = FeedStates::default();
                let live: Arc<dyn LiveSink> = Arc::new(FeedWatch {
                    inner: (self.sink_for)(tenant),
                    states: feeds.clone(),
                    store: self.store.clone(),
                    tenant: tenant.clone(),
                });
                Arc::new(TenantUpstreams {
                    tenant: tenant.clone(),
                    slots: RwLock::new(slots),
                    live,
                    feeds,
                })
            })
            .clone()
    }

    fn existing(&self, tenant: &TenantId) -> Option<Arc<TenantUpstreams>> {
        self.tenants
            .read()
            .expect("tenants lock")
            .get(tenant)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<TenantUpstreams>> {
        self.tenants
            .read()
            .expect("tenants lock")
            .values()
            .cloned()
            .collect()
    }

    /// Starts following every configured service's live feed, of every tenant; services
    /// configured later start following when set.
    pub async fn start_followers(&self) {
        self.following
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for set in self.all() {
            let mut slots = set.slots.write().await;
            for slot in slots.values_mut() {
                set.restart_follower(slot, true);
            }
        }
    }

    /// Stops every live follower.
    pub async fn stop_followers(&self) {
        self.following
            .store(false, std::sync::atomic::Ordering::SeqCst);
        for set in self.all() {
            for slot in set.slots.write().await.values_mut() {
                if let Some(follower) = slot.follower.take() {
                    follower.abort();
                }
            }
        }
    }

    /// Every watched service of `tenant` with its URL and latest health.
    pub async fn views(&self, tenant: &TenantId) -> Vec<ServiceView> {
        match self.existing(tenant) {
            Some(set) => set.views().await,
            None => {
                let now = self.clock.now();
                Service::upstreams().map(|s| unconfigured(s, now)).collect()
            }
        }
    }

    /// The configured adapter of `tenant`'s service.
    pub async fn upstream(&self, tenant: &TenantId, service: Service) -> Option<Arc<dyn Upstream>> {
        let set = self.existing(tenant)?;
        let slots = set.slots.read().await;
        slots.get(&service).and_then(|s| s.upstream.clone())
    }

    /// Points `tenant`'s service at a new base URL on behalf of `actor`: probes it,
    /// records the change in the tenant's audit chain (origins, never the token), keeps
    /// it in the store, then swaps the adapter and restarts its follower. A failed audit
    /// or store write changes nothing.
    pub async fn set(
        &self,
        tenant: &TenantId,
        service: Service,
        url: &str,
        token: TokenChange,
        audit: (&Auditor, &str),
    ) -> Result<ServiceChange, SetError> {
        self.change(tenant, service, url, token, Some(audit)).await
    }

    /// As [`Self::set`], for this process only: nothing is stored (the demo's simulator
    /// lives on ports that end with it).
    pub async fn set_for_now(
        &self,
        tenant: &TenantId,
        service: Service,
        url: &str,
    ) -> Result<ServiceChange, SetError> {
        self.change(tenant, service, url, TokenChange::Keep, None)
            .await
    }

    async fn change(
        &self,
        tenant: &TenantId,
        service: Service,
        url: &str,
        token: TokenChange,
        audit: Option<(&Auditor, &str)>,
    ) -> Result<ServiceChange, SetError> {
        if !watched(service) {
            return Err(SetError::UnknownService);
        }
        let url = validate_url(url)?;
        let _one_at_a_time = self.changing.lock().await;
        let set = self.tenant_set(tenant);
        let (before_url, before_token) = {
            let slots = set.slots.read().await;
            let slot = slots.get(&service).ok_or(SetError::UnknownService)?;
            (slot.url.clone(), slot.token.clone())
        };
        let before = before_url.as_deref().map(origin_of);
        let after = origin_of(&url);
        let same_origin = before.as_deref() == Some(after.as_str());
        let (token, outcome) = match token {
            TokenChange::Set(t) => (Some(t), "set"),
            TokenChange::Clear => (None, "cleared"),
            TokenChange::Keep if same_origin => {
                let kept = if before_token.is_some() {
                    "kept"
                } else {
                    "none"
                };
                (before_token, kept)
            }
            TokenChange::Keep if before_token.is_some() => (None, "dropped"),
            TokenChange::Keep => (None, "none"),
        };
        let sent = self.effective_token(tenant, service, &url, &token);
        let token_set = sent.is_some();
        let upstream = (self.factory)(service, &url, sent.map(Secret::expose))
            .map_err(|_| SetError::NotHttp)?;
        let health = upstream.probe().await;
        if let Some((auditor, actor)) = audit {
            let at = self.clock.now();
            let mut entry = cfactory_domain::audit::record(actor, "service.url_changed", at);
            entry.target = Some(format!(
                "{}: {} -> {after}; token {outcome}",
                service.as_str(),
                before.as_deref().unwrap_or("none"),
            ));
            entry.method = Some("PUT".to_owned());
            entry.endpoint = Some(format!("/api/services/{}", service.as_str()));
            entry.payload_sha256 = Some(cfactory_domain::audit::sha256_hex(url.as_bytes()));
            auditor
                .record(tenant, entry)
                .await
                .map_err(SetError::Audit)?;

            let setting = StoredService {
                tenant: tenant.clone(),
                service: service.as_str().to_owned(),
                url: url.clone(),
                token: token.as_ref().map(|t| t.expose().to_owned()),
            };
            self.registry
                .set_stored_service(&setting, self.clock.now())
                .await
                .map_err(SetError::Store)?;
        }
        let mut slots = set.slots.write().await;
        let slot = slots.get_mut(&service).ok_or(SetError::UnknownService)?;
        *slot = Slot {
            url: Some(url),
            token,
            token_set,
            upstream: Some(upstream),
            health,
            follower: slot.follower.take(),
        };
        let following = self.following.load(std::sync::atomic::Ordering::SeqCst);
        set.restart_follower(slot, following);
        Ok(ServiceChange {
            view: ServiceView {
                service,
                url: slot.url.clone(),
                configured: true,
                token_set: slot.token_set,
                health: slot.health.clone(),
                feeds: BTreeMap::new(),
            },
            before,
            after,
            token: outcome,
        })
    }

    /// One poll round of `tenant`'s services: probe each configured one and hydrate that
    /// tenant's items from the online ones.
    pub async fn round(&self, tenant: &TenantId) -> Vec<RoundReport> {
        match self.existing(tenant) {
            Some(set) => set.round(&*self.store, &*self.clock).await,
            None => Service::upstreams()
                .map(RoundReport::unconfigured)
                .collect(),
        }
    }

    /// Polls every tenant's services every `interval` until the task is dropped, timing
    /// each poll in `metrics`.
    pub async fn run(self: Arc<Self>, interval: Duration, metrics: Arc<crate::metrics::Metrics>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sets = self.all();
            let rounds = sets.iter().map(|set| set.round(&*self.store, &*self.clock));
            for report in futures::future::join_all(rounds).await.iter().flatten() {
                if report.configured {
                    metrics.upstream_poll(report.service, report.took);
                }
            }
        }
    }

    /// Each tenant's configured services with their latest health, for `/metrics`.
    pub async fn health_tally(&self) -> Vec<(Service, Health)> {
        let mut tally = Vec::new();
        for set in self.all() {
            tally.extend(
                set.slots
                    .read()
                    .await
                    .iter()
                    .filter(|(_, slot)| slot.upstream.is_some())
                    .map(|(service, slot)| (*service, slot.health.status)),
            );
        }
        tally
    }

    /// The execution graph of a task at `tenant`'s service.
    pub async fn process(
        &self,
        tenant: &TenantId,
        service: Service,
        task_id: &str,
    ) -> Result<ProcessGraph, UpstreamError> {
        let upstream = self
            .upstream(tenant, service)
            .await
            .ok_or_else(|| UpstreamError::Offline("not configured".into()))?;
        upstream.process(task_id).await
    }
}

impl TenantUpstreams {
    fn restart_follower(&self, slot: &mut Slot, start: bool) {
        if let Some(old) = slot.follower.take() {
            old.abort();
        }
        if let Some(service) = slot.upstream.as_ref().map(|u| u.service()) {
            self.feeds
                .lock()
                .expect("feed states lock")
                .remove(&service);
        }
        if let (true, Some(upstream)) = (start, slot.upstream.clone()) {
            let sink = self.live.clone();
            slot.follower = Some(tokio::spawn(async move { upstream.follow(sink).await }));
        }
    }

    async fn views(&self) -> Vec<ServiceView> {
        let feeds = self.feeds.lock().expect("feed states lock").clone();
        self.slots
            .read()
            .await
            .iter()
            .map(|(service, slot)| ServiceView {
                service: *service,
                url: slot.url.clone(),
                configured: slot.upstream.is_some(),
                token_set: slot.upstream.is_some() && slot.token_set,
                health: slot.health.clone(),
                feeds: feeds.get(service).cloned().unwrap_or_default(),
            })
            .collect()
    }

    async fn round(&self, store: &dyn WorkItemStore, clock: &dyn Clock) -> Vec<RoundReport> {
        let targets: Vec<(Service, Option<Arc<dyn Upstream>>)> = self
            .slots
            .read()
            .await
            .iter()
            .map(|(s, slot)| (*s, slot.upstream.clone()))
            .collect();
        let rounds = targets.into_iter().map(|(service, upstream)| async move {
            match upstream {
                None => RoundReport::unconfigured(service),
                Some(upstream) => self.poll_one(store, clock, service, upstream).await,
            }
        });
        futures::future::join_all(rounds).await
    }

    async fn poll_one(
        &self,
        store: &dyn WorkItemStore,
        clock: &dyn Clock,
        service: Service,
        upstream: Arc<dyn Upstream>,
    ) -> RoundReport {
        let started = std::time::Instant::now();
        let mut report = self.poll(store, clock, service, upstream).await;
        report.took = started.elapsed();
        report
    }

    async fn poll(
        &self,
        store: &dyn WorkItemStore,
        clock: &dyn Clock,
        service: Service,
        upstream: Arc<dyn Upstream>,
    ) -> RoundReport {
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
            took: Duration::ZERO,
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
                match store
                    .apply_snapshots(&self.tenant, service, &list, clock.now())
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
}

impl RoundReport {
    fn unconfigured(service: Service) -> Self {
        Self {
            service,
            configured: false,
            health: Health::Unknown,
            tasks: 0,
            complete: false,
            changed: 0,
            error: None,
            took: Duration::ZERO,
        }
    }
}

/// A confirmed action's steps go to the adapter of its tenant's service, built from the
/// URL that tenant holds for it: the only place an action's request may be sent.
#[async_trait::async_trait]
impl StepSender for Upstreams {
    async fn send_step(
        &self,
        tenant: &TenantId,
        service: Service,
        step: &ActionStep,
    ) -> StepResult {
        match self.upstream(tenant, service).await {
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
                matches!(validate_url(bad), Err(SetError::Metadata)),
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

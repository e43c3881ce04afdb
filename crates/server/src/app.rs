//! Wiring: building the shared `AppState` (defined in [`crate::state`]), the routers for
//! the API and cockpit addresses, and the `serve` loop with graceful shutdown. `build_app` is separate from `serve` so tests can
//! drive the router directly or bind port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use cfactory_domain::actions::{ActionService, ActionServiceParts, PlanContext};
use cfactory_domain::ports::Clock;
use cfactory_domain::{SystemClock, TenantId};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::trace::TraceLayer;

use crate::api;
use crate::keys;
use crate::live::hub::Hub;
use crate::live::sentinel::Sentinel;
use crate::live::upstreams::{StartTarget, Upstreams, UpstreamsParts};
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::settings::Settings;
use crate::state::{AppParts, AppState};
use crate::stores::Stores;

async fn not_found() -> ApiError {
    ApiError::NotFound {
        detail: "no such route".into(),
    }
}

/// Answers smaller than this go out as they are: compressing them saves no packet.
const COMPRESS_FROM_BYTES: u16 = 1024;

/// Brotli or gzip for answers of [`COMPRESS_FROM_BYTES`] and more, as `Accept-Encoding`
/// asks, at level 4: brotli's best levels cost tens of milliseconds on a large answer,
/// where level 4 is quick enough for answers made per request. Never a WebSocket upgrade,
/// a stream of server-sent events (each event must reach the client when written), an
/// image, or an answer already encoded (the cockpit's files, sent precompressed).
fn compression() -> CompressionLayer<impl Predicate> {
    let not_an_upgrade = |status: StatusCode, _: Version, _: &HeaderMap, _: &Extensions| {
        status != StatusCode::SWITCHING_PROTOCOLS
    };
    CompressionLayer::new()
        .quality(CompressionLevel::Precise(4))
        .compress_when(
            SizeAbove::new(COMPRESS_FROM_BYTES)
                .and(NotForContentType::SSE)
                .and(NotForContentType::IMAGES)
                .and(not_an_upgrade),
        )
}

/// The layers both addresses share, innermost first: the request limits, the deadline
/// (see [`crate::guard::deadline`]) and the browser guard; then the panic catcher,
/// compression, a trace span per request with the method and path only (a query may
/// carry a key), and the access log (which also counts the request for `/metrics`)
/// outermost, so it sees every answer's final status.
fn serving(router: Router<AppState>, state: AppState) -> Router {
    let metrics = state.metrics.clone();
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::guard,
        ))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal.into_response()
        }))
        .layer(compression())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::access::log,
        ))
}

/// The API address's router: the API alone.
pub fn build_app(state: AppState) -> Router {
    serving(api::router().fallback(not_found), state)
}

async fn cockpit(
    axum::extract::State(state): axum::extract::State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if uri.path().starts_with("/api/") {
        return not_found().await.into_response();
    }
    crate::ui::serve(&state.ui, &uri, &headers)
}

/// The cockpit address's router: the cockpit's files plus the same API, one origin.
pub fn build_ui_app(state: AppState) -> Router {
    serving(api::router().fallback(cockpit), state)
}

/// Resolves when the process gets SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what}"))
}

/// A started server: its state, its background tasks and its listeners' addresses.
pub struct Running {
    /// What the handlers share.
    pub state: AppState,
    /// The bound API address.
    pub api_addr: SocketAddr,
    /// The bound cockpit address.
    pub ui_addr: SocketAddr,
    stores: Stores,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    stop: watch::Sender<bool>,
}

/// How often the metrics' pending histogram observations are folded in between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

async fn metrics_upkeep(metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tick.tick().await;
        metrics.upkeep();
    }
}

/// How often the sentinel directory is scanned.
const SENTINEL_SCAN: Duration = Duration::from_millis(500);

/// Opens the store, seeds keys, starts the hub, the upstream pollers and followers and
/// the sentinel, and binds both addresses. `factory` builds the adapter for each
/// configured upstream.
pub async fn start(
    settings: &Settings,
    factory: crate::upstream_factory::Factory,
) -> anyhow::Result<Running> {
    let loopback = settings.api_addr.ip().is_loopback() && settings.ui_addr.ip().is_loopback();
    tracing::info!(store = %settings.database.describe(), "opening the store");
    let metrics = Arc::new(Metrics::new());
    let stores = Stores::open_instrumented(settings, Some(metrics.writer_instruments()))
        .await
        .context("opening the store")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Some(seeds) = &settings.seed_keys {
        let seeded = match keys::parse_seeds(seeds.expose()) {
            Ok(seeds) => keys::seed(stores.keys.as_ref(), seeds, clock.now())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match seeded {
            Ok(added) if added > 0 => {
                tracing::info!(added, "seeded API keys from CFACTORY_API_KEYS")
            }
            Ok(_) => {}
            Err(e) => {
                stores.close().await;
                return Err(e);
            }
        }
    }
    let has_keys = stores.keys.has_active_keys().await?;
    // Single sign-on ends open mode: people sign in, keys stay for automation.
    let open_mode_allowed = loopback && settings.sso.is_none();
    if !has_keys && !loopback && settings.sso.is_none() {
        stores.close().await;
        bail!(
            "refusing to serve without API keys on a non-loopback address; create one with \
             `cfactory keys create --scopes read,write,approve,ingest` (same --database-url), \
             configure single sign-on (--oidc-issuer), or bind 127.0.0.1"
        );
    }
    let auditor = match crate::audit::auditor(settings, stores.audit.clone(), loopback).await {
        Ok(auditor) => auditor,
        Err(e) => {
            stores.close().await;
            return Err(e);
        }
    };
    if !has_keys && open_mode_allowed {
        tracing::warn!(
            "no API keys exist: open mode (loopback only) until the first key is created"
        );
    }
    let sso = settings
        .sso
        .as_ref()
        .map(|s| crate::sso::Sso::start(s, clock.clone()))
        .transpose();
    let sso = match sso {
        Ok(sso) => sso,
        Err(e) => {
            stores.close().await;
            return Err(e);
        }
    };
    let stall_deadline = chrono::Duration::seconds(
        i64::try_from(settings.stall_deadline_seconds).unwrap_or(i64::MAX / 1_000_000),
    );

    let hub = Hub::start(stores.work.clone(), clock.clone(), stall_deadline);
    // The read model hears every committed change, applies it, then passes it to the
    // hub: a client told of a change finds it in the insights it asks for next.
    let model = crate::readmodel::ReadModel::start(
        stores.work.clone(),
        Some(hub.clone()),
        settings.thresholds.clone(),
    );
    stores.work.watch(Arc::new(model.clone())).await?;

    let up = &settings.upstreams;
    let sinks = hub.clone();
    let upstreams = Arc::new(Upstreams::new(UpstreamsParts {
        factory,
        store: stores.work.clone(),
        registry: stores.services.clone(),
        clock: clock.clone(),
        sink_for: Arc::new(move |tenant: &TenantId| sinks.sink_for(tenant)),
        start_tenant: settings.tenant.clone(),
        start: up
            .targets
            .iter()
            .map(|(service, target)| {
                let start = StartTarget {
                    url: target.url.clone(),
                    token: target.token.clone(),
                };
                (*service, start)
            })
            .collect(),
        stored: stores.services.stored_services().await?,
    }));
    upstreams.start_followers().await;
    let mut tasks = Vec::new();
    if up.poll_interval_seconds > 0 {
        let every = Duration::from_secs(up.poll_interval_seconds);
        tasks.push(tokio::spawn(upstreams.clone().run(every, metrics.clone())));
    }
    if let Some(dir) = &up.sentinel_dir {
        let sentinel = Sentinel::new(
            dir.clone(),
            up.sentinel_tenant
                .clone()
                .unwrap_or_else(|| settings.tenant.clone()),
            stores.work.clone(),
            clock.clone(),
            settings.max_clock_skew(),
        );
        tasks.push(tokio::spawn(sentinel.run(SENTINEL_SCAN)));
    }

    let counted: Arc<dyn cfactory_domain::actions::ActionStore> = Arc::new(
        crate::actions::CountedActions::new(stores.actions.clone(), metrics.clone()),
    );
    let actions = ActionService::new(ActionServiceParts {
        plan_context: Arc::new(PlanContext {
            aifactory_projects: up.aifactory_projects.clone(),
        }),
        ttl: chrono::Duration::seconds(i64::try_from(settings.action_ttl_seconds).unwrap_or(900)),
        stall_deadline,
        require_second_approver: settings.require_second_approver,
        ..ActionServiceParts::new(
            counted,
            stores.work.clone(),
            upstreams.clone(),
            auditor.clone(),
            clock.clone(),
            cfactory_copilot::new_action_id,
        )
    });
    let tools = Arc::new(
        cfactory_copilot::ToolRegistry::new(cfactory_copilot::CopilotPorts {
            work: stores.work.clone(),
            insights: Arc::new(model.clone()),
            actions: actions.clone(),
            clock: clock.clone(),
        })
        .with_stall_deadline(stall_deadline),
    );
    let copilot = settings.copilot.as_ref().map(|config| {
        tracing::info!(provider = ?config.provider, model = %config.model, "copilot model configured");
        cfactory_copilot::Copilot::new(cfactory_copilot::build_model(config), tools.clone())
    });
    tasks.push(tokio::spawn(crate::actions::run_sweeper(actions.clone())));
    tasks.push(tokio::spawn(metrics_upkeep(metrics.clone())));

    let limits = Arc::new(crate::limits::Limits::new(&settings.limits));
    tasks.push(tokio::spawn(crate::limits::run_forgetter(limits.clone())));
    let api_listener = bind(settings.api_addr, "API").await?;
    let ui_listener = bind(settings.ui_addr, "cockpit").await?;
    let api_addr = api_listener.local_addr()?;
    let ui_addr = ui_listener.local_addr()?;
    let state = AppState::new(AppParts {
        work: stores.work.clone(),
        keys: stores.keys.clone(),
        services: stores.services.clone(),
        clock,
        metrics,
        stores: stores.clone(),
        open_mode_allowed,
        own_names: crate::guard::OwnNames {
            ports: vec![api_addr.port(), ui_addr.port()],
            public: settings.public_url.clone(),
        },
        limits: limits.clone(),
        webhook_secrets: Arc::default(),
        recall: crate::auth::Recall::default(),
        default_tenant: settings.tenant.clone(),
        stall_deadline,
        max_clock_skew: settings.max_clock_skew(),
        request_timeout: Duration::from_secs(settings.request_timeout_seconds),
        hub,
        upstreams,
        ui: crate::ui::UiSource::from_dir(settings.ui_dir.clone()),
        model,
        auditor,
        actions,
        tools,
        copilot,
        conversations: stores.conversations.clone(),
        users: stores.users.clone(),
        sso,
    });
    let (stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = axum::serve(
        api_listener,
        build_app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let ui = axum::serve(
        ui_listener,
        build_ui_app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx));
    let servers = vec![
        tokio::spawn(async move { api.await }),
        tokio::spawn(async move { ui.await }),
    ];
    Ok(Running {
        state,
        api_addr,
        ui_addr,
        stores,
        tasks,
        servers,
        stop,
    })
}

impl Running {
    /// Stops accepting, finishes requests in flight (at most 30 s), stops the background
    /// tasks and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: finishing requests in flight");
        let _ = self.stop.send(true);
        let drained = async {
            for server in self.servers {
                server.await??;
            }
            anyhow::Ok(())
        };
        let result = match tokio::time::timeout(Duration::from_secs(30), drained).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("requests still in flight after 30 s; closing anyway");
                Ok(())
            }
        };
        for task in self.tasks {
            task.abort();
        }
        self.state.upstreams.stop_followers().await;
        self.state.model.stop();
        self.stores.close().await;
        tracing::info!("store closed; bye");
        result
    }
}

/// Runs the server until SIGTERM or Ctrl-C, then shuts down cleanly.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let factory = crate::upstream_factory::factory(&settings.upstreams)?;
    let running = start(&settings, factory).await?;
    // The first lines a supervisor or test reads to find the bound ports.
    eprintln!("cfactory: API listening on http://{}", running.api_addr);
    eprintln!("cfactory: cockpit listening on http://{}", running.ui_addr);
    shutdown_signal().await;
    running.shutdown().await
}

//! Wiring: the shared `AppState`, the routers for the API and cockpit addresses, and the
//! `serve` loop with graceful shutdown. `build_app` is separate from `serve` so tests can
//! drive the router directly or bind port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use cfactory_domain::ports::{ApiKeyStore, Clock, WorkItemStore};
use cfactory_domain::{SystemClock, TenantId};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::keys;
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::settings::Settings;
use crate::stores::Stores;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// WorkItems, events, usage.
    pub work: Arc<dyn WorkItemStore>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Time, for liveness.
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether a request without a key may act while no key exists (loopback binds only).
    pub open_mode_allowed: bool,
    /// The tenant of open-mode requests.
    pub default_tenant: TenantId,
    /// Silence after which a running stage is stalled.
    pub stall_deadline: chrono::Duration,
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
        detail: "no such route".into(),
    }
}

/// A span per request with the method and path only: a query may carry a key.
fn traced(router: Router) -> Router {
    router.layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        }),
    )
}

/// The API address's router: the API alone.
pub fn build_app(state: AppState) -> Router {
    traced(
        api::router()
            .fallback(not_found)
            .with_state(state)
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal.into_response()
            })),
    )
}

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CFactory</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2933}code{background:#eef1f4;padding:.1rem .3rem;border-radius:3px}</style>
</head><body><main>
<h1>CFactory</h1>
<p>The cockpit is running. Its browser interface is not part of this build; the API answers under <code>/api</code> on this address and on the API address.</p>
<p>Try <a href="/api/workitems"><code>/api/workitems</code></a>, <a href="/health"><code>/health</code></a> or <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
</main></body></html>"#;

async fn placeholder() -> Response {
    let mut response = Html(PLACEHOLDER).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The cockpit address's router: the cockpit page plus the same API, one origin.
pub fn build_ui_app(state: AppState) -> Router {
    traced(
        api::router()
            .route("/", get(placeholder))
            .fallback(|| async { (StatusCode::NOT_FOUND, Html(PLACEHOLDER)) })
            .with_state(state)
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal.into_response()
            })),
    )
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

/// Opens the store, seeds keys, binds both addresses and serves until SIGTERM/Ctrl-C;
/// then stops accepting, finishes requests in flight and closes the store.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let loopback = settings.api_addr.ip().is_loopback() && settings.ui_addr.ip().is_loopback();
    tracing::info!(store = %settings.database.describe(), "opening the store");
    let stores = Stores::open(&settings.database)
        .await
        .context("opening the store")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Some(seeds) = &settings.seed_keys {
        let seeds = keys::parse_seeds(seeds.expose())?;
        let added = keys::seed(stores.keys.as_ref(), seeds, clock.now()).await?;
        if added > 0 {
            tracing::info!(added, "seeded API keys from CFACTORY_API_KEYS");
        }
    }
    let has_keys = stores.keys.has_active_keys().await?;
    if !has_keys && !loopback {
        stores.close().await;
        bail!(
            "refusing to serve without API keys on a non-loopback address; create one with \
             `cfactory keys create --scopes read,write,ingest` (same --database-url), or bind \
             127.0.0.1"
        );
    }
    if !has_keys {
        tracing::warn!(
            "no API keys exist: open mode (loopback only) until the first key is created"
        );
    }

    let state = AppState {
        work: stores.work.clone(),
        keys: stores.keys.clone(),
        clock,
        metrics: Arc::new(Metrics::default()),
        open_mode_allowed: loopback,
        default_tenant: settings.tenant.clone(),
        stall_deadline: chrono::Duration::seconds(
            i64::try_from(settings.stall_deadline_seconds).unwrap_or(i64::MAX / 1_000_000),
        ),
    };
    let api_listener = bind(settings.api_addr, "API").await?;
    let ui_listener = bind(settings.ui_addr, "cockpit").await?;
    // The first lines a supervisor or test reads to find the bound ports.
    eprintln!(
        "cfactory: API listening on http://{}",
        api_listener.local_addr()?
    );
    eprintln!(
        "cfactory: cockpit listening on http://{}",
        ui_listener.local_addr()?
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = axum::serve(api_listener, build_app(state.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let ui = axum::serve(ui_listener, build_ui_app(state)).with_graceful_shutdown(stopped(stop_rx));
    let api = tokio::spawn(async move { api.await });
    let ui = tokio::spawn(async move { ui.await });

    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(true);
    let drained = async {
        let (a, u) = tokio::join!(api, ui);
        a??;
        u??;
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(30), drained).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("requests still in flight after 30 s; closing anyway"),
    }
    stores.close().await;
    tracing::info!("store closed; bye");
    Ok(())
}

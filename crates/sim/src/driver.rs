//! Starting and stopping the simulator: binds the three services, runs the driver
//! that advances simulated time, and the webhook sender.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api;
use crate::config::{Scenario, SimConfig};
use crate::webhook::{self, Webhook};
use crate::world::{Feed, World};

/// How often the driver wakes to run due steps, in wall time.
const TICK: Duration = Duration::from_millis(20);

/// State shared by the driver, the webhook sender and the three services.
pub(crate) struct Shared {
    world: Mutex<World>,
    started: Instant,
    pub(crate) speed: f64,
    pub(crate) token: Option<String>,
    pub(crate) admin_token: Option<String>,
    pub(crate) aifactory_feed: Feed,
    pub(crate) tfactory_feed: Feed,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) events_sent: AtomicU64,
    pub(crate) webhook_failures: AtomicU64,
    pub(crate) completed: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    /// Simulated milliseconds since start.
    fn sim_now(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 * self.speed) as u64
    }

    /// The world, with its clock brought up to now, for a REST action.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        w.now = w.now.max(self.sim_now());
        w
    }

    /// How long `/ws/events` stays quiet before it pings: 30 s, scaled by the speed.
    pub(crate) fn ping_every(&self) -> Duration {
        Duration::from_secs_f64((30.0 / self.speed).max(0.1))
    }

    /// The `/ws/progress` heartbeat interval: 5 s, scaled by the speed.
    pub(crate) fn heartbeat_every(&self) -> Duration {
        Duration::from_secs_f64((5.0 / self.speed).max(0.05))
    }
}

/// Entry point: starts the three simulated services and the units of work.
pub struct Simulator;

impl Simulator {
    /// Binds the three addresses, starts serving and starts driving units of work. HTTP
    /// clients in this process use rustls with ring, installed here unless a provider is.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        anyhow::ensure!(
            config.speed.is_finite() && config.speed > 0.0,
            "speed must be a positive number, got {}",
            config.speed
        );
        if config.unit_count() < config.scenario_order().len() {
            tracing::warn!(
                units = config.unit_count(),
                "fewer units than scenarios: some scenarios will not play"
            );
        }
        let webhook = config
            .webhook_url
            .clone()
            .map(|url| Webhook::new(url, config.webhook_token.clone()))
            .transpose()?;
        let world = World::new(&config);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            aifactory_feed: world.aifactory_feed.clone(),
            tfactory_feed: world.tfactory_feed.clone(),
            world: Mutex::new(world),
            started: Instant::now(),
            speed: config.speed,
            token: config.token.clone(),
            admin_token: config.admin_token.clone(),
            shutdown: stop_rx.clone(),
            events_sent: AtomicU64::new(0),
            webhook_failures: AtomicU64::new(0),
            completed: Mutex::new(BTreeMap::new()),
        });

        let mut servers = Vec::new();
        let mut urls = Vec::new();
        for (addr, router) in [
            (config.pfactory_addr, api::pfactory::router()),
            (config.aifactory_addr, api::aifactory::router()),
            (config.tfactory_addr, api::tfactory::router()),
        ] {
            let listener = TcpListener::bind(addr).await?;
            urls.push(format!("http://{}", listener.local_addr()?));
            let app = api::finish(router, shared.clone());
            let mut stop = stop_rx.clone();
            servers.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "simulated service stopped");
                }
            }));
        }

        // Bounded: a slow receiver holds the driver back instead of growing the queue.
        let (out_tx, out_rx) = mpsc::channel(OUTBOX_QUEUE);
        let sender = tokio::spawn(webhook::run(shared.clone(), webhook, out_rx));
        let driver = tokio::spawn(drive(shared.clone(), out_tx, stop_rx));
        let [pfactory_url, aifactory_url, tfactory_url] =
            <[String; 3]>::try_from(urls).map_err(|_| anyhow::anyhow!("three services"))?;
        tracing::info!(%pfactory_url, %aifactory_url, %tfactory_url, "simulator started");
        Ok(SimHandle {
            pfactory_url,
            aifactory_url,
            tfactory_url,
            shared,
            requested: config.scenario_order(),
            stop: stop_tx,
            driver,
            sender,
            servers,
        })
    }
}

/// Deliveries waiting for the webhook sender before the driver waits for it.
const OUTBOX_QUEUE: usize = 4096;

/// Advances simulated time and hands the outbox to the webhook sender.
async fn drive(
    shared: Arc<Shared>,
    out: mpsc::Sender<crate::world::Outgoing>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let outgoing = {
            let mut w = shared.world.lock().unwrap_or_else(|e| e.into_inner());
            let now = shared.sim_now();
            w.run_due(now);
            std::mem::take(&mut w.outbox)
        };
        for o in outgoing {
            if out.send(o).await.is_err() {
                return;
            }
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    /// Base URL of the simulated PFactory.
    pub pfactory_url: String,
    /// Base URL of the simulated AIFactory.
    pub aifactory_url: String,
    /// Base URL of the simulated TFactory.
    pub tfactory_url: String,
    shared: Arc<Shared>,
    requested: Vec<Scenario>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<()>,
    sender: JoinHandle<()>,
    servers: Vec<JoinHandle<()>>,
}

/// What the simulator has done so far.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimStats {
    /// Envelopes accepted by the webhook (or emitted, when there is no webhook).
    pub events_sent: u64,
    /// Envelopes the webhook never accepted after every retry.
    pub webhook_failures: u64,
    /// How many units of each scenario (by CLI spelling) have told their story.
    pub completed: BTreeMap<String, u64>,
}

impl SimHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        SimStats {
            events_sent: self.shared.events_sent.load(Ordering::Relaxed),
            webhook_failures: self.shared.webhook_failures.load(Ordering::Relaxed),
            completed: self
                .shared
                .completed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Waits until every requested scenario has completed at least once; false if
    /// `timeout` passes first.
    pub async fn wait_for_all_scenarios(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if self
                .requested
                .iter()
                .all(|s| stats.completed.get(s.as_str()).is_some_and(|n| *n > 0))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until nothing more is scheduled: every unit has gone as far as it will
    /// without a person, so the REST surfaces stop changing on their own. False if
    /// `timeout` passes first.
    pub async fn wait_until_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.world().next_due().is_none() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the driver, the webhook sender and the three services.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.driver.await;
        // The driver dropped the outbox sender: let pending deliveries finish briefly.
        let mut sender = self.sender;
        if tokio::time::timeout(Duration::from_secs(2), &mut sender)
            .await
            .is_err()
        {
            sender.abort();
        }
        for mut s in self.servers {
            if tokio::time::timeout(Duration::from_secs(2), &mut s)
                .await
                .is_err()
            {
                s.abort();
            }
        }
    }
}

/// When each requested scenario first completes, in wall time at the configured
/// speed, computed by running the schedule without waiting. Shows that a default
/// run covers every scenario within 30 seconds without sleeping through one.
pub fn planned_completion_times(config: &SimConfig) -> BTreeMap<Scenario, Duration> {
    let mut world = World::new(config);
    let requested = config.scenario_order();
    let mut first = BTreeMap::new();
    // Ten simulated minutes is far beyond any schedule; it bounds a broken one.
    while let Some(at) = world.next_due().filter(|t| *t < 600_000) {
        world.run_due(at);
        for o in std::mem::take(&mut world.outbox) {
            if let Some(s) = o.completes {
                first
                    .entry(s)
                    .or_insert_with(|| Duration::from_secs_f64(at as f64 / 1000.0 / config.speed));
            }
        }
        if requested.iter().all(|s| first.contains_key(s)) {
            break;
        }
    }
    first
}

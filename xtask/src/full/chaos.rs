//! `cargo xtask chaos`: what a 2xx on ingest promises, checked by force. Senders post
//! events and record every acknowledgement; the server is killed with SIGKILL in the
//! middle and started again on the same data, and every acknowledged event must then be
//! present exactly once with its usage counted once. A last phase sends SIGTERM under
//! load: the server must finish what it accepted, so no event is committed without its
//! sender getting the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::{BenchDb, Server, build_release, free_port};

/// Tokens each event reports; an item's usage must be exactly this.
const TOKENS: u64 = 1_000;

/// How long a sender keeps retrying one event before the run fails.
const GIVE_UP: Duration = Duration::from_secs(180);

/// What `cargo xtask chaos` runs.
#[derive(clap::Args)]
pub struct ChaosArgs {
    /// Kill-and-restart rounds per store.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// Events each sender posts per round.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Stores to run against.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<String>,
    /// A `cfactory` binary to use instead of building this tree's release binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// How one event's delivery went, as its sender saw it.
#[derive(Default, Clone, Copy)]
struct Delivery {
    /// The request reached the server but no answer came back (the server died or
    /// dropped the connection mid-request).
    unanswered: bool,
    /// The final answer: 202 (new) or 200 (already held).
    status: u16,
}

/// The test gate's short run: one SIGKILL round and the SIGTERM check per store, 16
/// senders × 25 events, on the debug binary the tests built.
pub fn run_bounded() -> anyhow::Result<()> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
        .join("cfactory");
    run(&ChaosArgs {
        rounds: 1,
        senders: 16,
        events: 25,
        stores: vec!["sqlite".into(), "postgres".into()],
        server_bin: Some(bin),
    })
}

/// Runs the chaos rounds and the SIGTERM check on each store; fails on the first broken
/// promise.
pub fn run(args: &ChaosArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => build_release()?,
    };
    println!(
        "chaos: {} rounds per store, {} senders × {} events, stores {:?}, binary {}",
        args.rounds,
        args.senders,
        args.events,
        args.stores,
        bin.display()
    );
    rt.block_on(async {
        for store in &args.stores {
            for round in 1..=args.rounds {
                let line = with_store(store, round, |url, dir| {
                    kill_round(&bin, url, dir, round, args.senders, args.events)
                })
                .await
                .with_context(|| format!("{store}, SIGKILL round {round}"))?;
                println!("{store:>8} SIGKILL round {round}: {line}");
            }
            let line = with_store(store, 0, |url, dir| {
                term_round(&bin, url, dir, args.senders, args.events)
            })
            .await
            .with_context(|| format!("{store}, SIGTERM round"))?;
            println!("{store:>8} SIGTERM round: {line}");
        }
        println!("chaos: every acknowledged event present exactly once, usage counted once");
        anyhow::Ok(())
    })
}

/// Gives `body` a fresh database of kind `store` (and a data directory), then removes both.
async fn with_store<F, Fut>(store: &str, round: usize, body: F) -> anyhow::Result<String>
where
    F: FnOnce(String, PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let dir = std::env::temp_dir().join(format!(
        "cfactory-chaos-{}-{store}-{round}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = match store {
        "sqlite" => {
            let url = format!("sqlite://{}/cfactory.db", dir.display());
            body(url, dir.clone()).await
        }
        "postgres" => {
            let db = BenchDb::create().await?;
            let result = body(db.url(), dir.clone()).await;
            db.drop_db().await?;
            result
        }
        other => bail!("unknown store `{other}` (sqlite or postgres)"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn event(round: usize, sender: usize, i: usize) -> String {
    json!({
        "id": format!("chaos-{round}-{sender}-{i}"),
        "correlation_key": format!("chaos-{round}-{sender}-{i}"),
        "service": "aifactory",
        "task_id": format!("t-{sender}-{i}"),
        "status": "done",
        "phase": "done",
        "time": "2026-06-01T12:00:00Z",
        "usage": {"total_tokens": TOKENS, "cost_usd": 0.01},
    })
    .to_string()
}

/// One sender's record: each event's id and how its delivery went.
type SenderLog = anyhow::Result<Vec<(String, Delivery)>>;

/// The senders of one round: each posts its events in order, retrying each until it is
/// answered 2xx, and records how each went.
struct Senders {
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<SenderLog>>,
}

impl Senders {
    fn start(base: &str, round: usize, senders: usize, events: usize) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(senders)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client builds");
        let acked = Arc::new(AtomicUsize::new(0));
        let url = format!("{base}/api/events/completion");
        let tasks = (0..senders)
            .map(|s| {
                let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut mine = Vec::with_capacity(events);
                    for i in 0..events {
                        let body = event(round, s, i);
                        let delivery = deliver(&client, &url, body).await?;
                        acked.fetch_add(1, Ordering::Relaxed);
                        mine.push((format!("chaos-{round}-{s}-{i}"), delivery));
                    }
                    Ok(mine)
                })
            })
            .collect();
        Self { acked, tasks }
    }

    async fn wait_for_acks(&self, at_least: usize) {
        while self.acked.load(Ordering::Relaxed) < at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> anyhow::Result<BTreeMap<String, Delivery>> {
        let mut all = BTreeMap::new();
        for task in self.tasks {
            all.extend(task.await??);
        }
        Ok(all)
    }
}

async fn deliver(client: &reqwest::Client, url: &str, body: String) -> anyhow::Result<Delivery> {
    let started = Instant::now();
    let mut delivery = Delivery::default();
    loop {
        if started.elapsed() > GIVE_UP {
            bail!("an event got no 2xx within {} s", GIVE_UP.as_secs());
        }
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                delivery.status = r.status().as_u16();
                return Ok(delivery);
            }
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {}
            Ok(r) => bail!(
                "an event was refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            // Nobody listening (the server is down or restarting): nothing was sent.
            Err(e) if e.is_connect() => {}
            Err(_) => delivery.unanswered = true,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the server with SIGKILL once a share of the events is acknowledged, starts it
/// again on the same data, lets the senders finish, then checks the store.
async fn kill_round(
    bin: &Path,
    url: String,
    dir: PathBuf,
    round: usize,
    senders: usize,
    events: usize,
) -> anyhow::Result<String> {
    let total = senders * events;
    let (api, ui) = (free_port()?, free_port()?);
    let server = Server::start_at(bin, &url, &dir, api, ui).await?;
    let base = server.base.clone();
    let load = Senders::start(&base, round, senders, events);
    // Somewhere between a fifth and three fifths of the way, different each round.
    let kill_at = total * (20 + (round * 37) % 41) / 100;
    load.wait_for_acks(kill_at).await;
    let acked_before = load.acked.load(Ordering::Relaxed);
    server.kill()?;
    let down = Instant::now();
    let server = Server::start_at(bin, &url, &dir, api, ui).await?;
    let restart = down.elapsed();
    let deliveries = load.finish().await?;
    check_store(&base, round, senders, events, &deliveries).await?;
    let unanswered = deliveries.values().filter(|d| d.unanswered).count();
    let held = deliveries
        .values()
        .filter(|d| d.unanswered && d.status == 200)
        .count();
    server.stop()?;
    Ok(format!(
        "killed after {acked_before} of {total} acknowledged, ready again in {:.1} s; \
         {unanswered} requests lost their answer ({held} of them had committed and \
         answered duplicate on retry); all {total} present once",
        restart.as_secs_f64()
    ))
}

/// Sends SIGTERM under load: the server must exit 0, and no event may be committed
/// while its sender is left without an answer.
async fn term_round(
    bin: &Path,
    url: String,
    dir: PathBuf,
    senders: usize,
    events: usize,
) -> anyhow::Result<String> {
    let round = 0;
    let total = senders * events;
    let (api, ui) = (free_port()?, free_port()?);
    let server = Server::start_at(bin, &url, &dir, api, ui).await?;
    let base = server.base.clone();
    let load = Senders::start(&base, round, senders, events);
    load.wait_for_acks(total / 3).await;
    let acked_before = load.acked.load(Ordering::Relaxed);
    let stopping = Instant::now();
    if !server.stop()? {
        bail!("the server did not exit 0 on SIGTERM");
    }
    let stop_time = stopping.elapsed();
    let server = Server::start_at(bin, &url, &dir, api, ui).await?;
    let deliveries = load.finish().await?;
    check_store(&base, round, senders, events, &deliveries).await?;
    let cut: Vec<&String> = deliveries
        .iter()
        .filter(|(_, d)| d.unanswered && d.status == 200)
        .map(|(id, _)| id)
        .collect();
    server.stop()?;
    if !cut.is_empty() {
        bail!(
            "{} events were committed but their senders got no answer on SIGTERM: {:?}",
            cut.len(),
            &cut[..cut.len().min(5)]
        );
    }
    let unanswered = deliveries.values().filter(|d| d.unanswered).count();
    Ok(format!(
        "SIGTERM after {acked_before} of {total} acknowledged, exit 0 in {} ms; \
         no request in flight lost its answer ({unanswered} unsent requests retried); \
         all {total} present once",
        stop_time.as_millis()
    ))
}

/// Every event of the round is an item of its own: each must be there exactly once (one
/// event, its tokens counted once), and nothing else may be.
async fn check_store(
    base: &str,
    round: usize,
    senders: usize,
    events: usize,
    deliveries: &BTreeMap<String, Delivery>,
) -> anyhow::Result<()> {
    let total = senders * events;
    if deliveries.len() != total {
        bail!("{} of {total} events were acknowledged", deliveries.len());
    }
    let client = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/workitems?limit=500");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(&query_escape(c));
        }
        let page: Value = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for item in page["items"].as_array().context("a page of items")? {
            let key = item["correlation_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let count = item["event_count"].as_u64().unwrap_or(0);
            let tokens = item["usage_total"]["total_tokens"].as_u64().unwrap_or(0);
            if count != 1 || tokens != TOKENS {
                bail!("item {key}: {count} events and {tokens} tokens, want 1 and {TOKENS}");
            }
            if !seen.insert(key.clone()) {
                bail!("item {key} is listed twice");
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: BTreeSet<String> = (0..senders)
        .flat_map(|s| (0..events).map(move |i| format!("chaos-{round}-{s}-{i}")))
        .collect();
    if seen != expected {
        let missing: Vec<_> = expected.difference(&seen).take(5).collect();
        let extra: Vec<_> = seen.difference(&expected).take(5).collect();
        bail!(
            "{} items, want {total}; missing {missing:?}, unexpected {extra:?}",
            seen.len()
        );
    }
    let usage: Value = client
        .get(format!("{base}/api/usage?group_by=service"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let tokens: u64 = usage
        .as_array()
        .context("usage rows")?
        .iter()
        .filter_map(|r| r["total_tokens"].as_u64())
        .sum();
    if tokens != TOKENS * total as u64 {
        bail!(
            "usage sums to {tokens} tokens, want {}",
            TOKENS * total as u64
        );
    }
    Ok(())
}

/// `text` as a URL query value: every byte outside the unreserved set percent-encoded.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

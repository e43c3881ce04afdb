//! Benchmarks. Each drives the real `cfactory` binary from outside and prints figures;
//! none of them is a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::postgres::{self, Postgres};

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// Completion-event ingest over HTTP on SQLite and Postgres, with the direct-write
    /// ceiling and the one-key growth check.
    Ingest {
        /// Events per run.
        #[arg(long, default_value_t = 50_000)]
        events: usize,
        /// Distinct correlation keys per run.
        #[arg(long, default_value_t = 5_000)]
        keys: usize,
        /// Concurrent senders, one run each.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64")]
        senders: Vec<usize>,
        /// Stores to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        stores: Vec<String>,
        /// Events sent to one key for the growth check (0 skips it).
        #[arg(long, default_value_t = 10_000)]
        growth_events: usize,
        /// A `cfactory` binary to measure instead of building this tree's (to compare
        /// two builds on the same machine).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// Sign every delivery with a webhook secret (Standard Webhooks) instead of an
        /// open-mode POST: the cost of the signature check.
        #[arg(long)]
        signed: bool,
    },
    /// Cockpit WebSocket fan-out: delivery latency to many clients at a steady ingest
    /// rate, dropped clients and server RSS, then the rate at which p99 passes 100 ms.
    Fanout {
        /// WebSocket clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Steady ingest rate, events per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds at the steady rate.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Highest rate the escalation tries.
        #[arg(long, default_value_t = 1600)]
        max_rate: u32,
    },
    /// The cockpit's first load on the wire (index.html and what it references, as sent
    /// uncompressed, gzip and brotli), then the board with 2,000 work items in Chromium:
    /// first render and scroll frame times.
    Ui,
    /// The insight computations in-process over the `queries` fleet: what a request pays
    /// when its answer is not memoised.
    Insights {
        /// Work items in the fleet.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Events per finished item (at most 10).
        #[arg(long, default_value_t = 10)]
        events_per_item: usize,
        /// Timed runs per computation.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Insight and read endpoints (rollups, anomalies, needs-you, search, activity, lists)
    /// over a large history in PostgreSQL, seeded through the ingest API.
    Queries {
        /// Work items to seed.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Events per finished item (at most 10).
        #[arg(long, default_value_t = 10)]
        events_per_item: usize,
        /// Timed requests per endpoint.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Reseed even when the kept database already holds this fleet.
        #[arg(long)]
        fresh: bool,
        /// Events per second sent to the fleet while timing, so answers are worked out
        /// after changes rather than read from memos (0 for a quiet fleet).
        #[arg(long, default_value_t = 20)]
        ingest_rate: u32,
        /// A `cfactory` binary to measure instead of building this tree's (to compare
        /// two builds on the same machine; each binary keeps its own seeded database).
        #[arg(long)]
        server_bin: Option<PathBuf>,
    },
}

/// Runs a benchmark.
pub fn run(which: Which) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match which {
        Which::Ingest {
            events,
            keys,
            senders,
            stores,
            growth_events,
            server_bin,
            signed,
        } => rt.block_on(ingest(
            events,
            keys,
            &senders,
            &stores,
            growth_events,
            server_bin,
            signed,
        )),
        Which::Fanout {
            clients,
            rate,
            seconds,
            max_rate,
        } => rt.block_on(crate::fanout::run(clients, rate, seconds, max_rate)),
        Which::Ui => crate::ui::run_ui_bench(),
        Which::Insights {
            items,
            events_per_item,
            runs,
        } => crate::insights::run(items, events_per_item, runs),
        Which::Queries {
            items,
            events_per_item,
            requests,
            fresh,
            ingest_rate,
            server_bin,
        } => rt.block_on(crate::queries::run(
            items,
            events_per_item,
            requests,
            fresh,
            ingest_rate,
            server_bin,
        )),
    }
}

/// A `cfactory serve` process started for a benchmark; stopped with SIGTERM on drop.
pub struct Server {
    child: Child,
    /// The API base URL.
    pub base: String,
}

impl Server {
    /// Starts the release binary on free ports against `database_url` and waits for
    /// `/ready`.
    pub async fn start(bin: &Path, database_url: &str, data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_at(bin, database_url, data_dir, free_port()?, free_port()?).await
    }

    /// As [`Server::start`], on the given API and cockpit ports (a restart keeps its
    /// address, so senders carry on where they were).
    pub async fn start_at(
        bin: &Path,
        database_url: &str,
        data_dir: &Path,
        api: u16,
        ui: u16,
    ) -> anyhow::Result<Self> {
        let child = Command::new(bin)
            .args([
                "serve",
                "--api-addr",
                &format!("127.0.0.1:{api}"),
                "--ui-addr",
                &format!("127.0.0.1:{ui}"),
                "--database-url",
                database_url,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("CFACTORY_LOG", "warn")
            .env("CFACTORY_POLL_INTERVAL_SECONDS", "0")
            // The cockpit measured is the one built into the binary.
            .env_remove("CFACTORY_UI_DIR")
            .stdout(Stdio::null())
            .spawn()
            .context("starting cfactory serve")?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{api}"),
        };
        let client = reqwest::Client::new();
        // Ready means the store answers and the read model has loaded: minutes at most.
        for _ in 0..6_000 {
            if let Ok(r) = client.get(format!("{}/ready", server.base)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("cfactory serve did not become ready on {}", server.base)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and waits for it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM and waits; returns whether it exited 0.
    pub fn stop(mut self) -> anyhow::Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        Ok(status.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Builds the release binary and returns its path.
pub fn build_release() -> anyhow::Result<PathBuf> {
    eprintln!("bench: building cfactory (release)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "cfactory-server"])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    Ok(target.join("release").join("cfactory"))
}

/// A bench database on the local Postgres server, dropped afterwards.
pub struct BenchDb {
    admin_url: String,
    name: String,
}

impl BenchDb {
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = match postgres::locate()? {
            Postgres::Url(url) => url,
            Postgres::Testcontainers => bail!("the Postgres bench needs a running server"),
        };
        let name = format!("cfactory_bench_{}", std::process::id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        Ok(Self { admin_url, name })
    }

    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

fn event(run: &str, i: usize, key: &str) -> Value {
    let services = ["pfactory", "aifactory", "tfactory"];
    let statuses = [
        ["reviewing", "awaiting_approval", "emitted"],
        ["in_progress", "ai_review", "done"],
        ["executing", "evaluating", "triaged"],
    ];
    let s = i % 3;
    let minute = (i / 3) as i64;
    let time = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
        .expect("valid time")
        .to_utc()
        + chrono::Duration::seconds(minute);
    json!({
        "id": format!("{run}-{i}"),
        "specversion": "1.0",
        "source": format!("/{}", services[s]),
        "type": format!("io.factory.{}.completion", services[s]),
        "time": time.to_rfc3339(),
        "correlation_key": key,
        "service": services[s],
        "task_id": format!("{}-{key}", services[s]),
        "status": statuses[s][(i / 3) % 3],
        "phase": "act",
        "usage": {"input_tokens": 1000 + i % 500, "output_tokens": 200, "cost_usd": 0.01, "model": "claude-sonnet-4-6"},
        "correlation": {"issue_number": key.parse::<u64>().ok()}
    })
}

/// What one load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Events sent.
    pub sent: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-request latencies, in send order.
    pub latencies: Vec<Duration>,
    /// 5xx answers.
    pub server_errors: usize,
    /// 429 answers.
    pub throttled: usize,
    /// Other non-2xx answers and transport failures.
    pub other_failures: usize,
    /// The first failure's status (0: no answer) and what came back, for the message.
    pub first_failure: Option<(u16, String)>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }
}

/// The p-th percentile (0–100) of `samples`, in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank].as_secs_f64() * 1000.0
}

/// A delivery's Standard Webhooks headers: id, timestamp, signature.
pub type Signature = [(&'static str, String); 3];

/// Signs each body with `secret` (`whsec_…`) as Standard Webhooks specifies, ahead of
/// sending, so the load measures the server's check and not the client's signing.
pub fn sign_all(secret: &str, bodies: &[String]) -> anyhow::Result<Vec<Signature>> {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim().trim_start_matches("whsec_"))
        .context("the webhook secret is not base64")?;
    let at = chrono::Utc::now().timestamp().to_string();
    Ok(bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let id = format!("msg_bench_{}_{i}", std::process::id());
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
            mac.update(format!("{id}.{at}.").as_bytes());
            mac.update(body.as_bytes());
            let signature = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
            [
                ("webhook-id", id),
                ("webhook-timestamp", at.clone()),
                ("webhook-signature", signature),
            ]
        })
        .collect())
}

/// POSTs `bodies` with `senders` concurrent senders, each taking the next body in order.
pub async fn send_all(base: &str, bodies: Vec<String>, senders: usize) -> LoadResult {
    send_signed(base, bodies, Vec::new(), senders).await
}

/// As [`send_all`], each body with its signature headers when `signatures` has them.
pub async fn send_signed(
    base: &str,
    bodies: Vec<String>,
    signatures: Vec<Signature>,
    senders: usize,
) -> LoadResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .expect("client builds");
    let bodies = Arc::new(bodies);
    let signatures = Arc::new(signatures);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/api/events/completion");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, bodies, signatures, next, url) = (
            client.clone(),
            bodies.clone(),
            signatures.clone(),
            next.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine: Vec<(usize, Duration, u16)> = Vec::new();
            let mut failure: Option<(u16, String)> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t0 = Instant::now();
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                for (name, value) in signatures.get(i).into_iter().flatten() {
                    request = request.header(*name, value);
                }
                let (status, latency) = match request.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let latency = t0.elapsed();
                        if !r.status().is_success() && failure.is_none() {
                            let text = r.text().await.unwrap_or_default();
                            failure = Some((status, text.chars().take(500).collect()));
                        }
                        (status, latency)
                    }
                    Err(e) => {
                        failure.get_or_insert_with(|| (0, e.to_string()));
                        (0, t0.elapsed())
                    }
                };
                mine.push((i, latency, status));
            }
            (mine, failure)
        }));
    }
    let mut all: Vec<(usize, Duration, u16)> = Vec::new();
    let mut first_failure = None;
    for t in tasks {
        let (mine, failure) = t.await.expect("sender task");
        all.extend(mine);
        first_failure = first_failure.or(failure);
    }
    let elapsed = started.elapsed();
    all.sort_by_key(|(i, _, _)| *i);
    let mut result = LoadResult {
        sent: all.len(),
        elapsed,
        first_failure,
        ..LoadResult::default()
    };
    for (_, latency, status) in all {
        result.latencies.push(latency);
        match status {
            200..=299 => {}
            429 => result.throttled += 1,
            500..=599 => result.server_errors += 1,
            _ => result.other_failures += 1,
        }
    }
    result
}

/// Creates a webhook secret for the default tenant with the binary's own CLI, before the
/// server starts; once it exists, the tenant's ingest must be signed.
fn webhook_secret(bin: &Path, database_url: &str, data_dir: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args([
            "webhooks",
            "secret",
            "create",
            "--database-url",
            database_url,
            "--data-dir",
        ])
        .arg(data_dir)
        .env("CFACTORY_LOG", "warn")
        .output()
        .context("running cfactory webhooks secret create")?;
    if !out.status.success() {
        bail!(
            "cfactory webhooks secret create failed (a build from before signed webhooks?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let secret = String::from_utf8(out.stdout)?.trim().to_owned();
    if !secret.starts_with("whsec_") {
        bail!("cfactory webhooks secret create printed no secret");
    }
    Ok(secret)
}

/// One ceiling run on a concrete pool type (sqlx has no object-safe pool).
macro_rules! ceiling_run {
    ($pool:ident, $rows:ident, $writers:ident, $serial:literal, $params:literal) => {{
        let table = "bench_ceiling_events";
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {table} (seq {} PRIMARY KEY, tenant_id TEXT NOT NULL, \
             event_id TEXT, item_key TEXT NOT NULL, service TEXT NOT NULL, task_id TEXT NOT NULL, \
             status TEXT NOT NULL, time TEXT NOT NULL, raw TEXT NOT NULL, UNIQUE (tenant_id, event_id))",
            $serial
        );
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&$pool).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&$pool)
            .await?;
        let insert = format!(
            "INSERT INTO {table} (tenant_id, event_id, item_key, service, task_id, status, time, raw) \
             VALUES ({})",
            $params
        );
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..$writers {
            let (pool, rows, next, insert) = ($pool.clone(), $rows.clone(), next.clone(), insert.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(row) = rows.get(i) else { break };
                    let text = |f: &str| row[f].as_str().unwrap_or_default().to_owned();
                    let mut tx = pool.begin().await?;
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                        .bind("bench-ceiling")
                        .bind(text("id"))
                        .bind(text("correlation_key"))
                        .bind(text("service"))
                        .bind(text("task_id"))
                        .bind(text("status"))
                        .bind(text("time"))
                        .bind(row.to_string())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                Ok::<(), sqlx::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let rate = $rows.len() as f64 / started.elapsed().as_secs_f64();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(&$pool)
            .await?;
        $pool.close().await;
        Ok(rate)
    }};
}

/// CPU time (user + system) used so far by the processes `pick` selects, read from
/// `/proc` (Linux); zero elsewhere.
fn cpu_time(pick: impl Fn(u32, &str) -> bool) -> Duration {
    let tick = 100.0; // USER_HZ on Linux
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let mut ticks = 0u64;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !pick(pid, &stat[open + 1..close]) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the comm: state is field 0, utime field 11, stime field 12.
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += field(11) + field(12);
    }
    Duration::from_secs_f64(ticks as f64 / tick)
}

/// PostgreSQL's write-ahead log position, in bytes: how much it wrote, and made durable,
/// since any earlier reading. Steadier than timings on a shared machine.
async fn wal_position(database_url: &str) -> anyhow::Result<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    let (position,): (i64,) = sqlx::query_as("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .fetch_one(&mut conn)
        .await?;
    Ok(position)
}

/// CPU used by the server, by PostgreSQL's processes and by this benchmark (its senders).
#[derive(Clone, Copy)]
struct CpuSplit {
    server: Duration,
    postgres: Duration,
    bench: Duration,
}

impl CpuSplit {
    fn now(server_pid: u32) -> Self {
        let me = std::process::id();
        Self {
            server: cpu_time(|pid, _| pid == server_pid),
            postgres: cpu_time(|_, comm| comm.starts_with("postgres")),
            bench: cpu_time(|pid, _| pid == me),
        }
    }

    /// Microseconds of CPU per event in each part since `before`.
    fn per_event(self, before: Self, events: usize) -> String {
        let us = |a: Duration, b: Duration| a.saturating_sub(b).as_secs_f64() * 1e6 / events as f64;
        format!(
            "CPU per event: server {:.0} µs, postgres {:.0} µs, senders {:.0} µs",
            us(self.server, before.server),
            us(self.postgres, before.postgres),
            us(self.bench, before.bench)
        )
    }
}

/// The ceiling: the same event rows written straight into the same database, one
/// transaction per event, from `writers` concurrent connections.
async fn ceiling(database_url: &str, rows: &[Value], writers: usize) -> anyhow::Result<f64> {
    let rows: Arc<Vec<Value>> = Arc::new(rows.to_vec());
    if database_url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(writers as u32)
            .connect(database_url)
            .await?;
        ceiling_run!(
            pool,
            rows,
            writers,
            "BIGSERIAL",
            "$1, $2, $3, $4, $5, $6, $7, $8"
        )
    } else {
        // The server's own settings (WAL, synchronous=NORMAL), and a busy timeout long
        // enough for many writers queueing on SQLite's one write lock.
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(database_url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(120));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(writers as u32)
            .connect_with(options)
            .await?;
        ceiling_run!(pool, rows, writers, "INTEGER", "?, ?, ?, ?, ?, ?, ?, ?")
    }
}

async fn ingest(
    events: usize,
    keys: usize,
    senders: &[usize],
    stores: &[String],
    growth_events: usize,
    server_bin: Option<PathBuf>,
    signed: bool,
) -> anyhow::Result<()> {
    let bin = match server_bin {
        Some(bin) => bin,
        None => build_release()?,
    };
    println!(
        "ingest benchmark: {events} events over {keys} keys per run, senders {senders:?}, {}, on {} cores",
        if signed {
            "signed deliveries"
        } else {
            "open-mode deliveries"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut failures = Vec::new();
    for store in stores {
        let tmp =
            std::env::temp_dir().join(format!("cfactory-bench-{}-{store}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let (url, pg) = match store.as_str() {
            "sqlite" => (format!("sqlite://{}/cfactory.db", tmp.display()), None),
            "postgres" => {
                let db = BenchDb::create().await?;
                (db.url(), Some(db))
            }
            other => bail!("unknown store `{other}` (sqlite or postgres)"),
        };
        let secret = if signed {
            Some(webhook_secret(&bin, &url, &tmp)?)
        } else {
            None
        };
        let server = Server::start(&bin, &url, &tmp).await?;
        println!("\n== {store} ==");
        println!(
            "{:>8} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>12} {:>8}",
            "senders", "events/s", "p50 ms", "p99 ms", "max ms", "5xx", "429", "ceiling/s", "ratio"
        );
        for (run_no, &n) in senders.iter().enumerate() {
            let run = format!("r{run_no}-{n}");
            let rows: Vec<Value> = (0..events)
                .map(|i| event(&run, i, &format!("{}", 10_000 * (run_no + 1) + i % keys)))
                .collect();
            let bodies: Vec<String> = rows.iter().map(Value::to_string).collect();
            let wal_before = if pg.is_some() {
                Some(wal_position(&url).await?)
            } else {
                None
            };
            let signatures = match &secret {
                Some(secret) => sign_all(secret, &bodies)?,
                None => Vec::new(),
            };
            let cpu_before = CpuSplit::now(server.pid());
            let result = send_signed(&server.base, bodies, signatures, n).await;
            let cpu = CpuSplit::now(server.pid()).per_event(cpu_before, events);
            let wal = match wal_before {
                Some(before) => format!(
                    ", WAL per event {:.0} bytes",
                    (wal_position(&url).await? - before) as f64 / events as f64
                ),
                None => String::new(),
            };
            let ceiling_rate = ceiling(&url, &rows, n).await?;
            let rate = result.rate();
            let p99 = percentile_ms(&result.latencies, 99.0);
            println!(
                "{:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>6} {:>12.0} {:>8.2}",
                n,
                rate,
                percentile_ms(&result.latencies, 50.0),
                p99,
                percentile_ms(&result.latencies, 100.0),
                result.server_errors,
                result.throttled,
                ceiling_rate,
                rate / ceiling_rate
            );
            println!("         {cpu}{wal}");
            if result.other_failures > 0 {
                println!("         ({} other failures)", result.other_failures);
            }
            if rate < 3_500.0 || p99 >= 25.0 || result.server_errors + result.throttled > 0 {
                failures.push(format!(
                    "{store} at {n} senders: {rate:.0}/s, p99 {p99:.2} ms"
                ));
            }
        }
        if growth_events > 0 {
            let rows: Vec<String> = (0..growth_events)
                .map(|i| event("growth", i, "424242").to_string())
                .collect();
            let signatures = match &secret {
                Some(secret) => sign_all(secret, &rows)?,
                None => Vec::new(),
            };
            let result = send_signed(&server.base, rows, signatures, 32).await;
            let window = (growth_events / 5).max(1);
            let mean =
                |s: &[Duration]| s.iter().sum::<Duration>().as_secs_f64() * 1000.0 / s.len() as f64;
            let first = mean(&result.latencies[..window]);
            let last = mean(&result.latencies[growth_events - window..]);
            println!(
                "one key, {growth_events} events: mean latency events 1–{window}: {first:.2} ms, events {}–{growth_events}: {last:.2} ms (×{:.2})",
                growth_events - window + 1,
                last / first
            );
            if last > first * 1.5 {
                failures.push(format!("{store}: one-key growth ×{:.2}", last / first));
            }
        }
        let clean = server.stop()?;
        println!(
            "server stopped on SIGTERM with exit {}",
            if clean { "0" } else { "non-zero" }
        );
        if let Some(db) = pg {
            db.drop_db().await?;
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if failures.is_empty() {
        println!("\nall targets met (≥3,500 events/s, p99 < 25 ms, no 5xx/429, growth ≤ ×1.5)");
    } else {
        println!("\ntargets missed:");
        for f in failures {
            println!("  {f}");
        }
    }
    Ok(())
}

//! `cargo xtask bench queries`: the insight and read endpoints against a large history in
//! PostgreSQL. Seeds a fleet of WorkItems through the server's own ingest path (batched
//! `POST /api/events`), restarts the server so its read model loads from the store as in
//! production, then times each endpoint and prints p50/p95/p99.
//!
//! The seeded database is kept (`cfactory_bench_queries`) and reused while it holds the
//! same fleet, since seeding a million events takes minutes; `--fresh` reseeds. A binary
//! given with `--server-bin` keeps a database of its own (named after its path), since
//! two builds may not share a schema. While
//! timing, events go on arriving (`--ingest-rate`, 20 a second by default) so that the
//! fleet-wide answers are measured as a live cockpit sees them: worked out after a
//! change, not read back from a memo.

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::{Server, build_release, percentile_ms, send_all};
use crate::postgres::{self, Postgres};

/// The kept database of this tree's build; another binary's adds a suffix.
const DB_NAME: &str = "cfactory_bench_queries";
/// Events per ingest request while seeding (the API's batch limit is 1,000).
const SEED_BATCH: usize = 500;

/// A small deterministic generator, so a seed is the same fleet every time.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A uniform value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 16] = [
    "retry", "uploader", "billing", "dark", "mode", "search", "export", "cache", "login",
    "webhook", "audit", "invoice", "profile", "metrics", "queue", "schema",
];

/// The key of item `i`: an issue number, or for one item in ten a synthetic key.
fn item_key(i: usize) -> String {
    if i % 10 == 9 {
        format!("af-{i}")
    } else {
        (10_000 + i).to_string()
    }
}

/// The events of item `i`: a plan, a coding task and a test spec, `per_item` events in
/// all, ending where the item's fate says (most pass; some fail, wait in review, stall,
/// or stay in flight).
pub(crate) fn item_events(
    i: usize,
    per_item: usize,
    items: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let mut rng = Lcg(i as u64 * 7919 + 17);
    let key = item_key(i);
    let age_days = 30.0 * (1.0 - i as f64 / items as f64);
    // Room for every step (at most ten, 960 s apart) before the last hour, so no event of
    // the newest items lands in the future, whatever the fleet's size.
    let start = now - chrono::Duration::seconds((age_days * 86_400.0) as i64 + 3_600 + 9_600);
    let title = format!(
        "{} {} {}",
        WORDS[rng.below(16) as usize],
        WORDS[rng.below(16) as usize],
        i
    );
    let repo = format!("acme/service-{}", i % 40);
    let model = ["claude-sonnet-4-6", "gpt-5", "qwen-coder"][rng.below(3) as usize];
    let mode = ["api", "api", "subscription", "local"][rng.below(4) as usize];
    let fate = rng.below(100);
    let in_flight = i + 300 >= items;
    let mut steps: Vec<(&str, &str, &str)> = vec![
        ("pfactory", "reviewing", "plan"),
        ("pfactory", "awaiting_approval", "plan"),
        ("pfactory", "emitted", "emit"),
        ("aifactory", "queued", "queue"),
        ("aifactory", "in_progress", "act"),
        ("aifactory", "in_progress", "review"),
        ("aifactory", "done", "pr"),
        ("tfactory", "executing", "run"),
        ("tfactory", "evaluating", "judge"),
        (
            "tfactory",
            if fate < 8 { "failed" } else { "triaged" },
            "verdict",
        ),
    ];
    steps.truncate(per_item.clamp(1, steps.len()));
    if (8..12).contains(&fate) && steps.len() >= 6 {
        // Parked for a person: the coding task waits in review (when the item's events
        // reach that far).
        steps.truncate(6);
        steps[5] = ("aifactory", "in_review", "review");
    }
    if in_flight {
        steps.truncate(1 + i % steps.len());
    }
    let mut t = start;
    let mut tokens = 0u64;
    let mut cost = 0.0f64;
    steps
        .iter()
        .enumerate()
        .map(|(n, (service, status, phase))| {
            t += chrono::Duration::seconds(60 + rng.below(900) as i64);
            if in_flight && n + 1 == steps.len() {
                t = now - chrono::Duration::seconds(rng.below(1_800) as i64);
            }
            let task = match *service {
                "pfactory" => format!("s-{i}"),
                "aifactory" => format!("t-{i}"),
                _ => format!("spec-{i}"),
            };
            let mut e = json!({
                "id": format!("q-{i}-{n}"),
                "specversion": "1.0",
                "source": format!("/{service}"),
                "type": format!("io.factory.{service}.completion"),
                "time": t.to_rfc3339(),
                "correlation_key": key,
                "service": service,
                "task_id": task,
                "status": status,
                "phase": phase,
                "title": title,
                "repo": repo,
            });
            if *service == "aifactory" {
                tokens += 2_000 + rng.below(20_000);
                let spike = if fate == 99 { 40.0 } else { 1.0 };
                cost += (0.02 + rng.below(100) as f64 / 100.0) * spike;
                e["usage"] = json!({
                    "input_tokens": tokens * 4 / 5, "output_tokens": tokens / 5,
                    "total_tokens": tokens, "cost_usd": cost, "model": model,
                    "workers": [{"worker_id": format!("w{}", i % 12), "provider": "anthropic",
                                 "tokens": tokens, "cost_usd": cost, "billing_mode": mode}],
                });
                e["correlation"] = json!({"branch": format!("feat/{i}"), "session_id": format!("s-{i}")});
                if *status == "done" {
                    e["correlation"]["pr_number"] = json!(i % 5_000 + 1);
                    if fate != 50 {
                        e["evidence"] = json!({"proof_kind": "tokens", "total_tokens": tokens,
                            "phases_completed": ["act", "review", "pr"]});
                    }
                }
            }
            if *service == "pfactory" && *status == "emitted" {
                e["evidence"] = json!({"proof_kind": "issues", "epic_issue": 10_000 + i, "child_count": 3});
            }
            if *service == "tfactory" {
                e["correlation"] = json!({"aifactory_task_id": format!("t-{i}")});
                if *status == "triaged" {
                    e["evidence"] = json!({"proof_kind": "tests", "verdicts": 4, "accepted": 4});
                    e["outcome"] = json!("success");
                }
            }
            if fate == 42 && *service == "aifactory" {
                e["injection_scan"] = json!({"verdict": "flagged", "reason": "instructions in an issue body", "scanner": "guard"});
            }
            e
        })
        .collect()
}

async fn admin() -> anyhow::Result<(String, sqlx::PgConnection)> {
    let url = match postgres::locate()? {
        Postgres::Url(url) => url,
        Postgres::Testcontainers => bail!("the queries bench needs a running PostgreSQL"),
    };
    let conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
    Ok((url, conn))
}

/// The kept database's name for a binary given with `--server-bin`: the default name and a
/// short hash of the binary's path, so each build seeds and keeps its own.
fn db_name(server_bin: Option<&std::path::Path>) -> String {
    match server_bin {
        None => DB_NAME.to_owned(),
        Some(bin) => {
            let path = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_owned());
            let mut hash: u32 = 0x811c_9dc5;
            for byte in path.as_os_str().as_encoded_bytes() {
                hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
            }
            format!("{DB_NAME}_{hash:08x}")
        }
    }
}

fn db_url(admin_url: &str, name: &str) -> String {
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

/// How many events the kept database holds, if it exists.
async fn seeded_events(url: &str) -> Option<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .ok()?;
    // Seeded events only: the ones sent while timing stay, and do not call for a reseed.
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE event_id LIKE 'q-%'")
        .fetch_one(&mut conn)
        .await
        .ok()
}

fn expected_events(items: usize, per_item: usize) -> usize {
    let now = chrono::Utc::now();
    (0..items)
        .map(|i| item_events(i, per_item, items, now).len())
        .sum()
}

async fn seed(
    bin: &std::path::Path,
    url: &str,
    data_dir: &std::path::Path,
    items: usize,
    per_item: usize,
) -> anyhow::Result<()> {
    let server = Server::start(bin, url, data_dir).await?;
    let now = chrono::Utc::now();
    let total = expected_events(items, per_item);
    eprintln!("bench: seeding {items} work items, {total} events through POST /api/events");
    let started = Instant::now();
    let mut sent = 0usize;
    // Items in chunks; each chunk's events go out in time order per item, batched.
    let chunk_items = 5_000;
    let mut i = 0;
    while i < items {
        let end = (i + chunk_items).min(items);
        let events: Vec<Value> = (i..end)
            .flat_map(|n| item_events(n, per_item, items, now))
            .collect();
        let bodies: Vec<String> = events
            .chunks(SEED_BATCH)
            .map(|c| Value::Array(c.to_vec()).to_string())
            .collect();
        let n = events.len();
        let result = send_all(&server.base, bodies, 8).await;
        if result.server_errors + result.other_failures + result.throttled > 0 {
            let (status, text) = result.first_failure.unwrap_or_default();
            bail!(
                "seeding failed: {} server errors, {} other failures, {} throttled; the first answered {status}: {text}",
                result.server_errors,
                result.other_failures,
                result.throttled
            );
        }
        sent += n;
        let rate = sent as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "bench: seeded {sent}/{total} events ({:.0}%), {rate:.0} events/s",
            100.0 * sent as f64 / total as f64
        );
        i = end;
    }
    server.stop()?;
    Ok(())
}

/// Runs the queries benchmark.
pub async fn run(
    items: usize,
    per_item: usize,
    requests: usize,
    fresh: bool,
    ingest_rate: u32,
    server_bin: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let name = db_name(server_bin.as_deref());
    let bin = match server_bin {
        Some(bin) => bin,
        None => build_release()?,
    };
    eprintln!("bench: measuring {} on database {name}", bin.display());
    let (admin_url, mut conn) = admin().await?;
    let url = db_url(&admin_url, &name);
    let want = expected_events(items, per_item) as i64;
    let have = if fresh {
        None
    } else {
        seeded_events(&url).await
    };
    let data_dir = tempfile_dir()?;
    if have != Some(want) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        seed(&bin, &url, &data_dir, items, per_item).await?;
    } else {
        eprintln!("bench: reusing {name} ({want} events); --fresh reseeds");
    }
    sqlx::query("VACUUM ANALYZE")
        .execute(&mut <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?)
        .await
        .context("vacuum analyze")?;

    let started = Instant::now();
    let server = Server::start(&bin, &url, &data_dir).await?;
    let load = started.elapsed();
    let client = reqwest::Client::new();
    let rss = rss_mib(server.pid());

    let (_, feed) = get(&client, &server.base, "/api/activity?limit=500").await?;
    let deep_cursor = feed["next_cursor"].as_str().unwrap_or_default().to_owned();
    let since = (chrono::Utc::now() - chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let middle = (10_000 + items / 2).to_string();
    let paths: Vec<(String, String)> = vec![
        ("rollups (all time)".into(), "/api/rollups".into()),
        (
            "rollups (last 7 days)".into(),
            format!("/api/rollups?since={since}"),
        ),
        ("tokens".into(), "/api/tokens".into()),
        ("anomalies".into(), "/api/anomalies".into()),
        (
            "anomalies (high only)".into(),
            "/api/anomalies?severity=high".into(),
        ),
        ("needs-you".into(), "/api/needs-you".into()),
        ("needs-you/count".into(), "/api/needs-you/count".into()),
        ("search exact key".into(), format!("/api/search?q={middle}")),
        ("search prefix".into(), "/api/search?q=af-4".into()),
        ("search word".into(), "/api/search?q=webhook".into()),
        (
            "activity (first page)".into(),
            "/api/activity?limit=50".into(),
        ),
        (
            "activity (after 500)".into(),
            format!("/api/activity?limit=50&cursor={deep_cursor}"),
        ),
        ("workitems list".into(), "/api/workitems?limit=50".into()),
        (
            "workitems list, text filter".into(),
            "/api/workitems?q=webhook&limit=50".into(),
        ),
        ("one workitem".into(), format!("/api/workitems/{middle}")),
        (
            "timeline".into(),
            format!("/api/workitems/{middle}/timeline"),
        ),
    ];

    let (_, r) = get(&client, &server.base, "/api/rollups").await?;
    let (_, a) = get(&client, &server.base, "/api/anomalies").await?;
    println!();
    println!(
        "queries: {} work items, {} events in PostgreSQL; server ready (read model loaded) in {:.1} s, RSS {rss}",
        r["items"],
        r["events_total"],
        load.as_secs_f64()
    );
    println!(
        "queries: {} anomalies; {requests} sequential requests per endpoint",
        a["count"]
    );
    let trickle = (ingest_rate > 0).then(|| {
        println!(
            "queries: {ingest_rate} events/s go on arriving while timing, so fleet-wide answers are worked out after changes"
        );
        tokio::spawn(trickle(server.base.clone(), items, ingest_rate))
    });
    println!();
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>10}",
        "endpoint", "p50 ms", "p95 ms", "p99 ms", "bytes"
    );
    let mut worst = 0.0f64;
    for (name, path) in &paths {
        // One warm-up request, then the timed ones.
        let (status, _) = get(&client, &server.base, path).await?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        let mut samples = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t0 = Instant::now();
            let body = client
                .get(format!("{}{path}", server.base))
                .send()
                .await?
                .bytes()
                .await?;
            samples.push(t0.elapsed());
            bytes = body.len();
        }
        let p95 = percentile_ms(&samples, 95.0);
        worst = worst.max(p95);
        println!(
            "{name:<30} {:>9.1} {:>9.1} {:>9.1} {bytes:>10}",
            percentile_ms(&samples, 50.0),
            p95,
            percentile_ms(&samples, 99.0),
        );
    }
    if let Some(t) = trickle {
        t.abort();
    }
    println!();
    println!("queries: slowest p95 {worst:.1} ms (target < 50 ms)");
    server.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Sends `rate` events a second until aborted: each moves a seeded item's coding task
/// along, so every second brings changes to the fleet.
async fn trickle(base: String, items: usize, rate: u32) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate as f64));
    let mut rng = Lcg(99);
    for n in 0u64.. {
        tick.tick().await;
        let i = rng.below(items as u64) as usize;
        let key = item_key(i);
        let event = json!({
            "id": format!("trickle-{}-{n}", std::process::id()),
            "specversion": "1.0", "source": "/aifactory", "type": "io.factory.aifactory.completion",
            "time": chrono::Utc::now().to_rfc3339(), "correlation_key": key,
            "service": "aifactory", "task_id": format!("t-{i}"), "status": "in_progress",
            "phase": "act",
        });
        let _ = client
            .post(format!("{base}/api/events"))
            .json(&event)
            .send()
            .await;
    }
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = client.get(format!("{base}{path}")).send().await?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("cfactory-bench-queries-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The resident set size of `pid`, for the report.
fn rss_mib(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "unknown".into(), |kb| format!("{} MiB", kb / 1024))
}

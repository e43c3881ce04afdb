//! `cargo xtask bench fanout`: many cockpit WebSocket clients on one server while events
//! are ingested at a steady rate; prints delivery latency from the ingest response to
//! each client's receipt, dropped clients and the server's RSS, then raises the rate until
//! p99 passes the target.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{Server, build_release, percentile_ms};

/// The delivery target.
const TARGET_P99_MS: f64 = 100.0;

struct Receipts {
    /// Per event index, when each client saw it.
    seen: Mutex<Vec<Vec<Instant>>>,
    dropped: AtomicUsize,
    ready: AtomicUsize,
}

fn event(i: usize) -> String {
    serde_json::json!({
        "id": format!("fan-{i}"),
        "correlation_key": format!("fan-{i}"),
        "service": "aifactory",
        "task_id": format!("task-{i}"),
        "status": "in_progress",
        "phase": "coding",
        "time": chrono::Utc::now().to_rfc3339(),
    })
    .to_string()
}

/// The event index a `workitem` frame is about, found without parsing the frame.
fn frame_index(text: &str) -> Option<usize> {
    if !text.contains("\"type\":\"workitem\"") {
        return None;
    }
    let at = text.find("\"correlation_key\":\"fan-")? + "\"correlation_key\":\"fan-".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn client(url: String, receipts: Arc<Receipts>) {
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&url).await else {
        receipts.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut first = true;
    while let Some(msg) = socket.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                if first {
                    first = false;
                    receipts.ready.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(i) = frame_index(&text) {
                    let now = Instant::now();
                    let mut seen = receipts.seen.lock().await;
                    if let Some(slot) = seen.get_mut(i) {
                        slot.push(now);
                    }
                }
            }
            Ok(Message::Close(_)) | Err(_) => {
                receipts.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
        }
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

struct Phase {
    rate: u32,
    p50: f64,
    p99: f64,
    delivered: usize,
    expected: usize,
}

/// Ingests at `rate`/s for `seconds`, starting at event index `first`; returns the
/// delivery figures for those events.
async fn phase(
    server: &Server,
    receipts: &Arc<Receipts>,
    clients: usize,
    first: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Phase> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/events", server.base);
    let count = rate as usize * seconds as usize;
    let mut acked: Vec<(usize, Instant)> = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = Vec::new();
    for i in first..first + count {
        tick.tick().await;
        let (http, url) = (http.clone(), url.clone());
        pending.push(tokio::spawn(async move {
            let resp = http.post(&url).body(event(i)).send().await;
            (
                i,
                Instant::now(),
                resp.map(|r| r.status().as_u16()).unwrap_or(0),
            )
        }));
    }
    for p in pending {
        let (i, at, status) = p.await?;
        if (200..300).contains(&status) {
            acked.push((i, at));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = receipts.seen.lock().await;
    let mut latencies = Vec::new();
    for (i, at) in &acked {
        for t in &seen[*i] {
            latencies.push(t.saturating_duration_since(*at));
        }
    }
    Ok(Phase {
        rate,
        p50: if latencies.is_empty() {
            f64::NAN
        } else {
            percentile_ms(&latencies, 50.0)
        },
        p99: if latencies.is_empty() {
            f64::NAN
        } else {
            percentile_ms(&latencies, 99.0)
        },
        delivered: latencies.len(),
        expected: acked.len() * clients,
    })
}

/// Runs the fan-out benchmark.
pub async fn run(clients: usize, rate: u32, seconds: u64, max_rate: u32) -> anyhow::Result<()> {
    let bin = build_release()?;
    let dir = std::env::temp_dir().join(format!("cfactory-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("cfactory.db").display());
    let server = Server::start(&bin, &url, &dir).await?;
    let pid = server.pid();
    let total_events = rate as usize * seconds as usize + 200_000;
    let receipts = Arc::new(Receipts {
        seen: Mutex::new(vec![Vec::new(); total_events]),
        dropped: AtomicUsize::new(0),
        ready: AtomicUsize::new(0),
    });
    let ws = format!("{}/api/ws", server.base.replace("http://", "ws://"));
    eprintln!("fanout: connecting {clients} WebSocket clients");
    for _ in 0..clients {
        tokio::spawn(client(ws.clone(), receipts.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receipts.ready.load(Ordering::Relaxed) + receipts.dropped.load(Ordering::Relaxed)
        < clients
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "clients did not connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle = rss_mib(pid).context("reading the server's RSS")?;
    println!(
        "fanout: {} clients connected, server RSS {rss_idle:.1} MiB",
        receipts.ready.load(Ordering::Relaxed)
    );
    println!(" rate/s  seconds   p50 ms   p99 ms   delivered/expected   dropped   RSS MiB");
    let steady = phase(&server, &receipts, clients, 0, rate, seconds).await?;
    let print = |p: &Phase, secs: u64, dropped: usize, rss: f64| {
        println!(
            " {:>6}  {:>7}  {:>7.2}  {:>7.2}   {:>8}/{:<9}  {:>7}   {:>7.1}",
            p.rate, secs, p.p50, p.p99, p.delivered, p.expected, dropped, rss
        );
    };
    print(
        &steady,
        seconds,
        receipts.dropped.load(Ordering::Relaxed),
        rss_mib(pid).unwrap_or(f64::NAN),
    );
    let steady_ok = steady.p99 < TARGET_P99_MS
        && receipts.dropped.load(Ordering::Relaxed) == 0
        && steady.delivered == steady.expected;
    println!(
        "target at {rate}/s: p99 < {TARGET_P99_MS} ms, no drops, every frame delivered: {}",
        if steady_ok { "met" } else { "MISSED" }
    );

    let mut next = rate as usize * seconds as usize;
    let mut best = if steady_ok { Some(rate) } else { None };
    let mut r = rate * 2;
    while r <= max_rate {
        let secs = 10;
        let p = phase(&server, &receipts, clients, next, r, secs).await?;
        next += r as usize * secs as usize;
        let dropped = receipts.dropped.load(Ordering::Relaxed);
        print(&p, secs, dropped, rss_mib(pid).unwrap_or(f64::NAN));
        if p.p99 >= TARGET_P99_MS || dropped > 0 || p.delivered < p.expected {
            println!("p99 passed {TARGET_P99_MS} ms (or clients fell behind) at {r}/s");
            break;
        }
        best = Some(r);
        r *= 2;
    }
    match best {
        Some(b) => println!("highest rate within target: {b} events/s to {clients} clients"),
        None => println!("no rate met the target"),
    }
    let clean = server.stop()?;
    println!(
        "server stopped on SIGTERM with exit {}",
        if clean { 0 } else { 1 }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

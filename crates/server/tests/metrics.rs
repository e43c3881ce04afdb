//! `/metrics` over the wire: real traffic moves each counter by exactly what it did, with
//! the route's template and the tenant as labels; histograms come with their buckets; the
//! exposition parses line by line; and `docs/operations.md`, the Grafana dashboard and the
//! alert rules name exactly the series the server exposes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cfactory_server::metrics::{Kind, SERIES};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use common::{Server, Store, event};

const T0: &str = "2026-11-01T10:00:00Z";

/// A histogram's `(le, count)` pairs for one label set, in the order served.
type Buckets = Vec<(f64, f64)>;

/// One sample line: its name, its labels and its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: each family's `# TYPE` and `# HELP`, and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Reads `{k="v",…}` from the start of `text`; returns the labels and what follows.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("no `{`")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("a label without `=\"`")?;
        if !is_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape `\\{c}`")),
                },
                (i, '"') => break i + 1,
                (_, '\n') => return Err("a newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = &after[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value `{text}`")),
    }
}

/// The family a sample line belongs to: a histogram's `_bucket`, `_sum` and `_count`
/// lines belong to the histogram.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram")
        {
            return base;
        }
    }
    name
}

/// Parses the text format strictly: every line is a `# HELP`, a `# TYPE`, a sample or
/// blank; a family's `# TYPE` comes once and before its samples.
fn parse(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| -> ! { panic!("line {}: {why}: `{line}`\n{text}", n + 1) };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .unwrap_or_else(|| fail("no help".into()));
            if !is_name(name) || help.trim().is_empty() {
                fail("a bad HELP line".into());
            }
            exposition.helps.insert(name.to_owned(), help.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| fail("no type".into()));
            if !is_name(name) || !["counter", "gauge", "histogram", "summary"].contains(&kind) {
                fail("a bad TYPE line".into());
            }
            if exposition
                .types
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
            {
                fail("a second TYPE for the family".into());
            }
            continue;
        }
        if line.starts_with('#') {
            fail("an unknown comment".into());
        }
        let split = line
            .find(['{', ' '])
            .unwrap_or_else(|| fail("no value".into()));
        let (name, rest) = line.split_at(split);
        if !is_name(name) {
            fail(format!("bad name `{name}`"));
        }
        let (labels, rest) = if rest.starts_with('{') {
            parse_labels(rest).unwrap_or_else(|e| fail(e))
        } else {
            (BTreeMap::new(), rest)
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| "no space before the value".to_owned())
            .and_then(parse_value)
            .unwrap_or_else(|e| fail(e));
        if !exposition
            .types
            .contains_key(family_of(name, &exposition.types))
        {
            fail("a sample before its family's TYPE".into());
        }
        exposition.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    exposition.check_histograms();
    exposition
}

impl Exposition {
    /// The value of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// [`Self::value`], or 0 for a series not (yet) exposed.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// Each histogram's buckets: ascending bounds, cumulative counts, the last `+Inf`
    /// and equal to `_count`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let mut by_labels: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut labels = s.labels.clone();
                let le = labels.remove("le").expect("a bucket has `le`");
                by_labels
                    .entry(labels.into_iter().collect())
                    .or_default()
                    .push((parse_value(&le).unwrap(), s.value));
            }
            assert!(!by_labels.is_empty(), "{family} has no buckets");
            for (labels, buckets) in by_labels {
                assert!(buckets.len() >= 2, "{family} {labels:?}: {buckets:?}");
                assert!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{family} {labels:?}: not cumulative: {buckets:?}"
                );
                let (last_bound, last) = *buckets.last().unwrap();
                assert_eq!(last_bound, f64::INFINITY, "{family} ends with +Inf");
                let refs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(
                    self.value(&format!("{family}_count"), &refs),
                    Some(last),
                    "{family} {labels:?}: +Inf bucket and _count differ"
                );
                assert!(self.value(&format!("{family}_sum"), &refs).is_some());
            }
        }
    }
}

async fn scrape(server: &Server) -> Exposition {
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    parse(&response.text().await.unwrap())
}

/// Scrapes until `holds` says yes, at most 10 s.
async fn scrape_until(
    server: &Server,
    what: &str,
    holds: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape(server).await;
        if holds(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what} never held: {now:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server whose PFactory cannot be reached (nothing listens on port 1), polled every
/// second.
fn start(store: &Store) -> Server {
    Server::start_with(
        store,
        &[
            "--pfactory-url",
            "http://127.0.0.1:1",
            "--poll-interval-seconds",
            "1",
        ],
        &[],
    )
    .unwrap()
}

const INGEST: &str = "/api/events/completion";

fn requests(e: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    e.count(
        "cfactory_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

/// One of each kind of traffic: an accepted event, its duplicate, a rejected one, a read,
/// an unknown route, and a cockpit socket that connects and leaves.
async fn traffic_moves_each_series_by_what_happened(store: Store) {
    let server = start(&store);
    let before = scrape(&server).await;

    let e = event("m-1", "901", "aifactory", "t", "in_progress", T0).to_string();
    assert_eq!(server.post(INGEST, &e).await.0, 202);
    assert_eq!(server.post(INGEST, &e).await.0, 200, "the same id again");
    let bad = r#"{"id":"m-2","correlation_key":"902","service":"aifactory"}"#;
    assert_eq!(server.post(INGEST, bad).await.0, 422);
    assert_eq!(server.get("/api/workitems/901").await.0, 200);
    assert_eq!(server.get("/api/no-such-route").await.0, 404);

    let after = scrape(&server).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.count(name, labels) - before.count(name, labels)
    };
    for (result, n) in [("accepted", 1.0), ("duplicate", 1.0), ("rejected", 1.0)] {
        assert_eq!(
            moved(
                "cfactory_events_total",
                &[("result", result), ("tenant", "default")]
            ),
            n,
            "{result}"
        );
    }
    for (method, route, status) in [
        ("POST", INGEST, "202"),
        ("POST", INGEST, "200"),
        ("POST", INGEST, "422"),
        ("GET", "/api/workitems/{correlationKey}", "200"),
        ("GET", "(fallback)", "404"),
    ] {
        let labels = [("method", method), ("route", route), ("status", status)];
        assert_eq!(
            requests(&after, method, route, status) - requests(&before, method, route, status),
            1.0,
            "{method} {route} {status}"
        );
        assert_eq!(
            moved("cfactory_http_request_duration_seconds_count", &labels),
            1.0,
            "{method} {route} {status}"
        );
    }
    assert!(
        !after.samples.iter().any(|s| s
            .labels
            .get("route")
            .is_some_and(|r| r.contains("901") || r.contains("no-such"))),
        "a raw path became a label"
    );
    assert_eq!(moved("cfactory_ingest_duration_seconds_count", &[]), 2.0);
    assert_eq!(moved("cfactory_store_write_group_events_count", &[]), 2.0);
    assert!(moved("cfactory_store_write_group_events_sum", &[]) >= 2.0);
    let statements = |name: &str| {
        moved(
            "cfactory_store_statement_duration_seconds_count",
            &[("statement", name)],
        )
    };
    assert!(
        (1.0..=2.0).contains(&statements("load")),
        "{}",
        statements("load")
    );
    // Each ingest writes; PostgreSQL's writer may send the duplicate ahead on what it
    // remembers, meet the recorded id, and write again after a load.
    assert!(
        (2.0..=3.0).contains(&statements("write")),
        "{}",
        statements("write")
    );
    assert_eq!(after.value("cfactory_store_errors_total", &[]), Some(0.0));
    assert_eq!(
        after.value("cfactory_store_writer_queue_depth", &[]),
        Some(0.0)
    );
    assert!(after.count("cfactory_store_pool_max_connections", &[]) >= 1.0);
    assert!(
        after
            .value("cfactory_store_pool_connections", &[("state", "idle")])
            .is_some()
    );

    // A cockpit socket: counted while connected, gone once it leaves.
    let url = format!("{}/api/ws", server.api.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = loop {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(text) => break serde_json::from_str::<Value>(&text).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(first["type"], "snapshot");
    let connected = scrape(&server).await;
    assert_eq!(connected.value("cfactory_ws_clients", &[]), Some(1.0));
    assert_eq!(
        connected.count("cfactory_ws_connections_total", &[])
            - before.count("cfactory_ws_connections_total", &[]),
        1.0
    );
    socket.send(Message::Close(None)).await.unwrap();
    drop(socket);
    let left = scrape_until(&server, "the socket is no longer counted", |e| {
        e.value("cfactory_ws_clients", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        left.value("cfactory_ws_dropped_clients_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        requests(&left, "GET", "/api/ws", "101") - requests(&before, "GET", "/api/ws", "101"),
        1.0
    );

    // The unreachable PFactory: polled, and counted as offline for the one tenant.
    let polled = scrape_until(&server, "PFactory is polled and offline", |e| {
        e.value(
            "cfactory_upstream_health",
            &[("service", "pfactory"), ("status", "offline")],
        ) == Some(1.0)
            && e.count(
                "cfactory_upstream_poll_duration_seconds_count",
                &[("service", "pfactory")],
            ) >= 1.0
    })
    .await;
    assert_eq!(
        polled.value(
            "cfactory_upstream_health",
            &[("service", "pfactory"), ("status", "online")]
        ),
        Some(0.0)
    );
    assert_eq!(
        polled.value(
            "cfactory_upstream_health",
            &[("service", "aifactory"), ("status", "offline")]
        ),
        Some(0.0),
        "an unconfigured service counts nowhere"
    );
    assert_eq!(polled.value("cfactory_read_model_items", &[]), Some(1.0));
}

#[tokio::test]
async fn traffic_moves_each_series_by_what_happened_on_sqlite() {
    traffic_moves_each_series_by_what_happened(Store::sqlite()).await;
}

#[tokio::test]
async fn traffic_moves_each_series_by_what_happened_on_postgres() {
    traffic_moves_each_series_by_what_happened(Store::postgres().await).await;
}

/// `docs/operations.md`'s series table: each row's name, type and labels.
fn documented() -> BTreeMap<String, (String, Vec<String>)> {
    let doc = include_str!("../../../docs/operations.md");
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | `label`, `label` | meaning |
        if cells.len() < 6 || !cells[1].starts_with('`') {
            continue;
        }
        if !["counter", "gauge", "histogram"].contains(&cells[2]) {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            rows.insert(name.clone(), (cells[2].to_owned(), labels))
                .is_none(),
            "{name} is listed twice"
        );
    }
    assert!(rows.len() >= 20, "the table was not found: {rows:?}");
    rows
}

#[tokio::test]
async fn every_exposed_series_is_documented_and_every_documented_one_is_exposed() {
    let store = Store::sqlite();
    let server = start(&store);
    let e = event("d-1", "911", "aifactory", "t", "in_progress", T0).to_string();
    assert_eq!(server.post(INGEST, &e).await.0, 202);
    let exposition = scrape_until(&server, "PFactory is polled", |e| {
        e.count(
            "cfactory_upstream_poll_duration_seconds_count",
            &[("service", "pfactory")],
        ) >= 1.0
    })
    .await;
    let doc = documented();

    // The server's own table and the guide's agree, row for row.
    let table: BTreeMap<String, (String, Vec<String>)> = SERIES
        .iter()
        .map(|s| {
            let labels = s.labels.iter().map(|l| (*l).to_owned()).collect();
            (s.name.to_owned(), (s.kind.as_str().to_owned(), labels))
        })
        .collect();
    assert_eq!(table, doc, "the SERIES table and docs/operations.md differ");

    // What is served: every family documented, with its type, its help and the
    // documented labels; and every documented family served.
    let served: BTreeSet<&String> = exposition.types.keys().collect();
    let listed: BTreeSet<&String> = doc.keys().collect();
    assert_eq!(served, listed, "served and documented series differ");
    for (name, kind) in &exposition.types {
        let (doc_kind, labels) = &doc[name];
        assert_eq!(kind, doc_kind, "{name}");
        assert!(exposition.helps.contains_key(name), "{name} has no HELP");
        let want: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
        for s in exposition
            .samples
            .iter()
            .filter(|s| family_of(&s.name, &exposition.types) == name)
        {
            let got: BTreeSet<&str> = s
                .labels
                .keys()
                .map(String::as_str)
                .filter(|l| *l != "le")
                .collect();
            assert_eq!(got, want, "{name}: {s:?}");
        }
    }
    assert!(
        SERIES
            .iter()
            .all(|s| s.kind != Kind::Counter || s.name.ends_with("_total")),
        "counters end in _total"
    );
}

/// The series an expression names: each `cfactory_…` or `process_…` word, a histogram's
/// `_bucket`, `_sum` and `_count` taken back to the histogram.
fn series_in(expr: &str, doc: &BTreeMap<String, (String, Vec<String>)>) -> Vec<String> {
    let mut found = Vec::new();
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if !(word.starts_with("cfactory_") || word.starts_with("process_")) {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                word.strip_suffix(suffix)
                    .filter(|b| doc.get(*b).is_some_and(|(k, _)| k == "histogram"))
            })
            .unwrap_or(word);
        found.push(base.to_owned());
    }
    found
}

#[test]
fn the_dashboard_queries_only_documented_series() {
    let doc = documented();
    let dashboard: Value = serde_json::from_str(include_str!(
        "../../../docs/grafana/cfactory-dashboard.json"
    ))
    .expect("the dashboard is JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = 0;
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("each target has an expr");
            let names = series_in(expr, &doc);
            assert!(!names.is_empty(), "{expr} names no series");
            for name in names {
                assert!(doc.contains_key(&name), "{expr}: `{name}` is not listed");
                used.insert(name);
            }
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "{exprs} queries");
    assert!(used.len() >= 15, "the dashboard shows few series: {used:?}");
}

#[test]
fn the_alert_rules_use_only_documented_series() {
    let doc = documented();
    let rules = include_str!("../../../docs/alerts/cfactory.rules.yml");
    assert!(rules.starts_with("groups:"), "a Prometheus rules file");
    // Each rule: `- alert: Name`, then its one-line `expr:`, `for:`, labels and annotations.
    let mut alerts: Vec<(String, Option<String>)> = Vec::new();
    for line in rules.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), None));
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let (name, slot) = alerts.last_mut().expect("an expr belongs to an alert");
            assert!(slot.is_none(), "{name} has two exprs");
            *slot = Some(expr.trim().to_owned());
        }
    }
    assert!(alerts.len() >= 6, "{alerts:?}");
    for (name, expr) in alerts {
        let expr = expr.unwrap_or_else(|| panic!("{name} has no expr"));
        assert!(
            !expr.is_empty() && !expr.starts_with('|') && !expr.starts_with('>'),
            "{name}: keep the expr on its line"
        );
        let names = series_in(&expr, &doc);
        assert!(!names.is_empty(), "{name}: {expr} names no series");
        for series in names {
            assert!(
                doc.contains_key(&series),
                "{name}: `{series}` is not listed"
            );
        }
    }
}

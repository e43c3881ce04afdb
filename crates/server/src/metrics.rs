//! The server's metrics, served in the Prometheus text format at `GET /metrics`.
//!
//! Each server has a recorder of its own (`metrics-exporter-prometheus`'s
//! [`PrometheusRecorder`]), held here and recorded into through handles; it is never
//! installed as the process's global recorder, so several servers in one process (the
//! tests start them so) each count their own traffic only. Counters and histograms move
//! where things happen (the access layer, ingest, the copilot's chat, the action store,
//! the upstream polls, the store's writer through the instruments it is opened with);
//! gauges of a state held elsewhere (the read model, the cockpit sockets, the writer's
//! queue, the connection pool, the upstreams' health) are sampled when `/metrics` is
//! read. [`SERIES`] names every series; `docs/operations.md` lists the same, and a test
//! keeps the two equal.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cfactory_domain::upstream::Health;
use cfactory_domain::{Service, TenantId};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// What kind of series a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset by a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets, with `_bucket`, `_sum` and `_count` lines.
    Histogram,
}

impl Kind {
    /// The name Prometheus' `# TYPE` line gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One series the server exposes.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// Its name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels (each with a bounded set of values).
    pub labels: &'static [&'static str],
    /// What it measures (the `# HELP` text).
    pub help: &'static str,
}

const fn series(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Series {
    Series {
        name,
        kind,
        labels,
        help,
    }
}

const HTTP_REQUESTS: &str = "cfactory_http_requests_total";
const HTTP_SECONDS: &str = "cfactory_http_request_duration_seconds";
const EVENTS: &str = "cfactory_events_total";
const INGEST_SECONDS: &str = "cfactory_ingest_duration_seconds";
const STORE_ERRORS: &str = "cfactory_store_errors_total";
const WRITER_QUEUE: &str = "cfactory_store_writer_queue_depth";
const GROUP_EVENTS: &str = "cfactory_store_write_group_events";
const STATEMENT_SECONDS: &str = "cfactory_store_statement_duration_seconds";
const POOL_CONNECTIONS: &str = "cfactory_store_pool_connections";
const POOL_MAX: &str = "cfactory_store_pool_max_connections";
const WS_CLIENTS: &str = "cfactory_ws_clients";
const WS_CONNECTIONS: &str = "cfactory_ws_connections_total";
const WS_DROPPED: &str = "cfactory_ws_dropped_clients_total";
const UPSTREAM_HEALTH: &str = "cfactory_upstream_health";
const UPSTREAM_POLL_SECONDS: &str = "cfactory_upstream_poll_duration_seconds";
const READ_MODEL_ITEMS: &str = "cfactory_read_model_items";
const READ_MODEL_UNREADABLE: &str = "cfactory_read_model_unreadable_items";
const READ_MODEL_ITEM_BYTES: &str = "cfactory_read_model_item_bytes";
const READ_MODEL_BYTES: &str = "cfactory_read_model_bytes";
const COPILOT_TOKENS: &str = "cfactory_copilot_tokens_total";
const COPILOT_TURNS: &str = "cfactory_copilot_turns_total";
const COPILOT_COST: &str = "cfactory_copilot_turn_cost_usd";
const ACTIONS: &str = "cfactory_actions_total";
const RESIDENT_BYTES: &str = "process_resident_memory_bytes";

/// Every series the server exposes, in the order `docs/operations.md` lists them.
pub const SERIES: &[Series] = &[
    series(
        HTTP_REQUESTS,
        Kind::Counter,
        &["method", "route", "status"],
        "HTTP requests answered, by method, route template and status.",
    ),
    series(
        HTTP_SECONDS,
        Kind::Histogram,
        &["method", "route", "status"],
        "Time from a request's arrival to its response's head, by method, route template and status.",
    ),
    series(
        EVENTS,
        Kind::Counter,
        &["result", "tenant"],
        "Completion events received over HTTP, by result (accepted, duplicate, rejected) and tenant.",
    ),
    series(
        INGEST_SECONDS,
        Kind::Histogram,
        &[],
        "Ingest request latency, from arrival to the stored outcome.",
    ),
    series(STORE_ERRORS, Kind::Counter, &[], "Store calls that failed."),
    series(
        WRITER_QUEUE,
        Kind::Gauge,
        &[],
        "Ingest requests waiting for the store's writer.",
    ),
    series(
        GROUP_EVENTS,
        Kind::Histogram,
        &[],
        "Events per group the store's writer committed in one write.",
    ),
    series(
        STATEMENT_SECONDS,
        Kind::Histogram,
        &["statement"],
        "Time of the writer's statements: load (what a group needs) and write (the group's changes).",
    ),
    series(
        POOL_CONNECTIONS,
        Kind::Gauge,
        &["state"],
        "Open connections of the store's read pool, by state (idle, busy).",
    ),
    series(
        POOL_MAX,
        Kind::Gauge,
        &[],
        "Most connections the store's read pool opens.",
    ),
    series(
        WS_CLIENTS,
        Kind::Gauge,
        &[],
        "Cockpit WebSocket clients connected.",
    ),
    series(
        WS_CONNECTIONS,
        Kind::Counter,
        &[],
        "Cockpit WebSocket clients that subscribed, since start.",
    ),
    series(
        WS_DROPPED,
        Kind::Counter,
        &[],
        "Cockpit WebSocket clients dropped for falling behind, since start.",
    ),
    series(
        UPSTREAM_HEALTH,
        Kind::Gauge,
        &["service", "status"],
        "Configured upstream services at each health status, counted over tenants.",
    ),
    series(
        UPSTREAM_POLL_SECONDS,
        Kind::Histogram,
        &["service"],
        "Time of one poll of an upstream service: its probe, task list and hydration.",
    ),
    series(
        READ_MODEL_ITEMS,
        Kind::Gauge,
        &[],
        "Work items held in memory for insights, search and the cockpit.",
    ),
    series(
        READ_MODEL_UNREADABLE,
        Kind::Gauge,
        &[],
        "Items left out because their stored state cannot be read.",
    ),
    series(
        READ_MODEL_ITEM_BYTES,
        Kind::Gauge,
        &[],
        "Estimated memory per held item (sampled).",
    ),
    series(
        READ_MODEL_BYTES,
        Kind::Gauge,
        &[],
        "Estimated memory of the held items.",
    ),
    series(
        COPILOT_TOKENS,
        Kind::Counter,
        &["direction"],
        "Language-model tokens the copilot's finished turns used, by direction (input, output).",
    ),
    series(
        COPILOT_TURNS,
        Kind::Counter,
        &["end"],
        "Copilot chat turns, by how they ended (answered, failed, stopped).",
    ),
    series(
        COPILOT_COST,
        Kind::Histogram,
        &[],
        "What each priced copilot turn cost at list price, in US dollars.",
    ),
    series(
        ACTIONS,
        Kind::Counter,
        &["outcome"],
        "Actions by outcome: proposed, then executed, failed, rejected or expired.",
    ),
    series(
        RESIDENT_BYTES,
        Kind::Gauge,
        &[],
        "Resident memory size in bytes (Linux only).",
    ),
];

/// The outcomes `cfactory_actions_total` counts.
pub const ACTION_OUTCOMES: [&str; 5] = ["proposed", "executed", "failed", "rejected", "expired"];

/// How copilot turns end, as `cfactory_copilot_turns_total` names them.
pub const TURN_ENDS: [&str; 3] = ["answered", "failed", "stopped"];

/// Every health status, as `cfactory_upstream_health` names them.
const HEALTHS: [(Health, &str); 6] = [
    (Health::Online, "online"),
    (Health::Degraded, "degraded"),
    (Health::Unauthorized, "unauthorized"),
    (Health::Offline, "offline"),
    (Health::Error, "error"),
    (Health::Unknown, "unknown"),
];

/// Bucket bounds (seconds) of request and statement latencies.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of the events in one writer group (at most 512).
const GROUP_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Bucket bounds (US dollars) of one copilot turn's cost.
const COST_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Bucket bounds (seconds) of upstream polls: network round trips, several per poll.
const POLL_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// What the store's writer reports as it works: the handles the store adapters take.
pub struct WriterInstruments {
    /// Events per committed group.
    pub group_events: Histogram,
    /// Seconds of each load statement.
    pub load_seconds: Histogram,
    /// Seconds of each write statement.
    pub write_seconds: Histogram,
}

/// The store's load, sampled at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreLoad {
    /// Ingest requests waiting for the writer.
    pub writer_queue: usize,
    /// Open read connections.
    pub connections: u32,
    /// Of which idle.
    pub idle: usize,
    /// Most read connections.
    pub max_connections: u32,
}

/// What `/metrics` samples from the rest of the server before it renders.
pub struct Sampled {
    /// The read model's size.
    pub read_model: crate::readmodel::Footprint,
    /// The store's queue and pool.
    pub store: StoreLoad,
    /// Cockpit sockets connected now.
    pub ws_clients: usize,
    /// Cockpit sockets that subscribed since start.
    pub ws_connections: u64,
    /// Cockpit sockets dropped since start.
    pub ws_dropped: u64,
    /// Each configured upstream service of each tenant, with its latest health.
    pub upstreams: Vec<(Service, Health)>,
}

/// The server's recorder and the handles it records through.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    ingest_seconds: Histogram,
    store_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder of its own, with every series described and the bounded ones present
    /// from the start (at zero).
    pub fn new() -> Self {
        let buckets = |builder: PrometheusBuilder, matcher: Matcher, bounds: &[f64]| {
            builder
                .set_buckets_for_metric(matcher, bounds)
                .expect("bucket bounds are not empty")
        };
        let mut builder = buckets(
            PrometheusBuilder::new(),
            Matcher::Suffix("_seconds".into()),
            &SECONDS_BUCKETS,
        );
        builder = buckets(builder, Matcher::Full(GROUP_EVENTS.into()), &GROUP_BUCKETS);
        builder = buckets(
            builder,
            Matcher::Full(UPSTREAM_POLL_SECONDS.into()),
            &POLL_BUCKETS,
        );
        builder = buckets(builder, Matcher::Full(COPILOT_COST.into()), &COST_BUCKETS);
        let recorder = builder.build_recorder();
        for s in SERIES {
            let help = SharedString::const_str(s.help);
            match s.kind {
                Kind::Counter => recorder.describe_counter(s.name.into(), None, help),
                Kind::Gauge => recorder.describe_gauge(s.name.into(), None, help),
                Kind::Histogram => recorder.describe_histogram(s.name.into(), None, help),
            }
        }
        let handle = recorder.handle();
        // Registering a series is what shows it (at zero) before its first observation.
        let _ = histogram(&recorder, COPILOT_COST, Vec::new());
        let metrics = Self {
            ingest_seconds: histogram(&recorder, INGEST_SECONDS, Vec::new()),
            store_errors: counter(&recorder, STORE_ERRORS, Vec::new()),
            recorder,
            handle,
        };
        for outcome in ACTION_OUTCOMES {
            let _ = metrics.counter(ACTIONS, vec![Label::from_static_parts("outcome", outcome)]);
        }
        for direction in ["input", "output"] {
            let _ = metrics.counter(
                COPILOT_TOKENS,
                vec![Label::from_static_parts("direction", direction)],
            );
        }
        for end in TURN_ENDS {
            let _ = metrics.counter(COPILOT_TURNS, vec![Label::from_static_parts("end", end)]);
        }
        metrics
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        counter(&self.recorder, name, labels)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        histogram(&self.recorder, name, labels)
    }

    /// Counts one answered request and its latency. `route` is the route's template
    /// (never the raw path).
    pub fn http_request(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        let labels = || {
            vec![
                Label::from_static_parts("method", method_label(method)),
                Label::new("route", route.to_owned()),
                Label::new("status", status.as_u16().to_string()),
            ]
        };
        self.counter(HTTP_REQUESTS, labels()).increment(1);
        self.histogram(HTTP_SECONDS, labels())
            .record(took.as_secs_f64());
    }

    fn events(&self, tenant: &TenantId, result: &'static str) -> Counter {
        self.counter(
            EVENTS,
            vec![
                Label::from_static_parts("result", result),
                Label::new("tenant", tenant.as_str().to_owned()),
            ],
        )
    }

    /// Counts a tenant's stored events.
    pub fn ingested(&self, tenant: &TenantId, accepted: u64, duplicate: u64) {
        self.events(tenant, "accepted").increment(accepted);
        self.events(tenant, "duplicate").increment(duplicate);
    }

    /// Counts a tenant's events refused for their content.
    pub fn rejected(&self, tenant: &TenantId, events: u64) {
        self.events(tenant, "rejected").increment(events);
    }

    /// Counts a failed store call.
    pub fn store_error(&self) {
        self.store_errors.increment(1);
    }

    /// Records one ingest request's duration.
    pub fn ingest_latency(&self, took: Duration) {
        self.ingest_seconds.record(took.as_secs_f64());
    }

    /// Counts an action reaching `outcome` (one of [`ACTION_OUTCOMES`]).
    pub fn action(&self, outcome: &'static str) {
        self.counter(ACTIONS, vec![Label::from_static_parts("outcome", outcome)])
            .increment(1);
    }

    /// Counts one copilot turn: how it ended (one of [`TURN_ENDS`]), the tokens it used,
    /// and its cost at list price when the model has one.
    pub fn copilot_turn(
        &self,
        end: &'static str,
        usage: cfactory_copilot::TokenUsage,
        cost_usd: Option<f64>,
    ) {
        let end = if TURN_ENDS.contains(&end) {
            end
        } else {
            "failed"
        };
        self.counter(COPILOT_TURNS, vec![Label::from_static_parts("end", end)])
            .increment(1);
        if let Some(cost) = cost_usd {
            self.histogram(COPILOT_COST, Vec::new()).record(cost);
        }
        for (direction, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            self.counter(
                COPILOT_TOKENS,
                vec![Label::from_static_parts("direction", direction)],
            )
            .increment(tokens);
        }
    }

    /// Records one poll of `service`.
    pub fn upstream_poll(&self, service: Service, took: Duration) {
        self.histogram(
            UPSTREAM_POLL_SECONDS,
            vec![Label::from_static_parts("service", service.as_str())],
        )
        .record(took.as_secs_f64());
    }

    /// The handles the store's writer reports through.
    pub fn writer_instruments(&self) -> WriterInstruments {
        let statement = |name: &'static str| vec![Label::from_static_parts("statement", name)];
        WriterInstruments {
            group_events: self.histogram(GROUP_EVENTS, Vec::new()),
            load_seconds: self.histogram(STATEMENT_SECONDS, statement("load")),
            write_seconds: self.histogram(STATEMENT_SECONDS, statement("write")),
        }
    }

    /// Keeps the histograms' pending observations from piling up between scrapes; run it
    /// every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Sets the sampled gauges, then renders every series in the text format.
    pub fn render(&self, sampled: &Sampled) -> String {
        let set = |name: &'static str, value: f64| self.gauge(name, Vec::new()).set(value);
        let footprint = &sampled.read_model;
        set(READ_MODEL_ITEMS, footprint.items as f64);
        set(READ_MODEL_UNREADABLE, footprint.unreadable as f64);
        set(READ_MODEL_ITEM_BYTES, footprint.bytes_per_item as f64);
        set(
            READ_MODEL_BYTES,
            (footprint.items * footprint.bytes_per_item) as f64,
        );
        let store = &sampled.store;
        set(WRITER_QUEUE, store.writer_queue as f64);
        set(POOL_MAX, f64::from(store.max_connections));
        let idle = store.idle as f64;
        for (state, value) in [
            ("idle", idle),
            ("busy", (f64::from(store.connections) - idle).max(0.0)),
        ] {
            self.gauge(
                POOL_CONNECTIONS,
                vec![Label::from_static_parts("state", state)],
            )
            .set(value);
        }
        set(WS_CLIENTS, sampled.ws_clients as f64);
        self.counter(WS_CONNECTIONS, Vec::new())
            .absolute(sampled.ws_connections);
        self.counter(WS_DROPPED, Vec::new())
            .absolute(sampled.ws_dropped);
        for service in Service::upstreams() {
            for (health, status) in HEALTHS {
                let count = sampled
                    .upstreams
                    .iter()
                    .filter(|(s, h)| *s == service && *h == health)
                    .count();
                self.gauge(
                    UPSTREAM_HEALTH,
                    vec![
                        Label::from_static_parts("service", service.as_str()),
                        Label::from_static_parts("status", status),
                    ],
                )
                .set(count as f64);
            }
        }
        if let Some(bytes) = resident_bytes() {
            set(RESIDENT_BYTES, bytes as f64);
        }
        self.handle.render()
    }
}

fn counter(recorder: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Counter {
    recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
}

fn histogram(recorder: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Histogram {
    recorder.register_histogram(&Key::from_parts(name, labels), &METADATA)
}

/// A request's method as a label: the standard ones by name, anything else `other`, so
/// a client cannot grow the label's values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// This process's resident memory, from `/proc/self/status` (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Sampled {
        Sampled {
            read_model: crate::readmodel::Footprint::default(),
            store: StoreLoad::default(),
            ws_clients: 0,
            ws_connections: 0,
            ws_dropped: 0,
            upstreams: Vec::new(),
        }
    }

    #[test]
    fn two_recorders_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let tenant = TenantId::parse("acme").unwrap();
        a.ingested(&tenant, 3, 1);
        a.rejected(&tenant, 2);
        b.ingested(&tenant, 1, 0);
        let text = a.render(&idle());
        assert!(text.contains("cfactory_events_total{result=\"accepted\",tenant=\"acme\"} 3"));
        assert!(text.contains("cfactory_events_total{result=\"duplicate\",tenant=\"acme\"} 1"));
        assert!(text.contains("cfactory_events_total{result=\"rejected\",tenant=\"acme\"} 2"));
        let other = b.render(&idle());
        assert!(other.contains("cfactory_events_total{result=\"accepted\",tenant=\"acme\"} 1"));
        assert!(!other.contains("result=\"rejected\""), "{other}");
    }

    #[test]
    fn latencies_land_in_cumulative_buckets() {
        let m = Metrics::new();
        m.ingest_latency(Duration::from_micros(800));
        m.ingest_latency(Duration::from_millis(20));
        let text = m.render(&idle());
        assert!(text.contains("cfactory_ingest_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("cfactory_ingest_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("cfactory_ingest_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("cfactory_ingest_duration_seconds_count 2"));
    }

    #[test]
    fn an_unknown_method_is_other() {
        let m = Metrics::new();
        let odd = Method::from_bytes(b"BREW").unwrap();
        m.http_request(&odd, "/x", StatusCode::NOT_FOUND, Duration::ZERO);
        let text = m.render(&idle());
        assert!(
            text.contains(
                "cfactory_http_requests_total{method=\"other\",route=\"/x\",status=\"404\"} 1"
            ),
            "{text}"
        );
    }
}

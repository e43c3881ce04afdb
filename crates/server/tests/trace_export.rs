//! Trace export over the wire: with `--otlp-endpoint`, the server posts its spans to a
//! collector's `/v1/traces` as OTLP protobuf, the ingest span among them with the event's
//! id; an endpoint that is not an http(s) URL stops the start with the setting named.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

use common::{Server, Store, event};

/// What the collector received: each request's path, content type and body.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A collector that takes anything and keeps it.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .fallback(
            |State(seen): State<Received>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock()
                    .unwrap()
                    .push((uri.path().to_owned(), kind, body.to_vec()));
                StatusCode::OK
            },
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn spans_reach_the_collector_with_the_ingested_events_id() {
    let (url, received) = collector().await;
    let store = Store::sqlite();
    let server = Server::start_with(
        &store,
        &["--otlp-endpoint", &url],
        // Send batches every 100 ms instead of every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .unwrap();
    let e = event(
        "otlp-evt-7",
        "931",
        "aifactory",
        "t",
        "in_progress",
        "2026-11-01T10:00:00Z",
    );
    assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);

    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, body)| holds(body, b"otlp-evt-7"))
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no span with the event's id reached the collector; it saw {:?}",
            received
                .lock()
                .unwrap()
                .iter()
                .map(|(p, k, b)| (p.clone(), k.clone(), b.len()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (path, kind, body) = body;
    assert_eq!(path, "/v1/traces");
    assert_eq!(kind, "application/x-protobuf");
    // The span's name, its tenant and the service's name travel as protobuf strings.
    assert!(holds(&body, b"ingest"), "no ingest span");
    assert!(holds(&body, b"default"), "no tenant");
    assert!(holds(&body, b"cfactory"), "no service name");
    // The request's own span is exported too, with the route's path but no query.
    let all: Vec<u8> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, _, b)| b.clone())
        .collect();
    assert!(holds(&all, b"/api/events"), "no request span");
}

#[tokio::test]
async fn an_otlp_endpoint_that_is_not_an_http_url_stops_the_start() {
    let store = Store::sqlite();
    let log = match Server::start_with(&store, &["--otlp-endpoint", "collector:4318"], &[]) {
        Err(log) => log,
        Ok(_) => panic!("the server started with a bad --otlp-endpoint"),
    };
    assert!(log.contains("--otlp-endpoint"), "{log}");
    assert!(log.contains("collector:4318"), "{log}");
}

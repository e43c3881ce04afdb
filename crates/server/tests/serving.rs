//! Serving the cockpit well, over the wire against the built binary: compressed API
//! answers, precompressed and cached cockpit files, the request deadline, and the access
//! log.

mod common;

use std::io::Read as _;
use std::time::{Duration, Instant};

use common::{Server, Store, event};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T0: &str = "2026-11-01T10:00:00Z";

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// A GET of `url` with `headers`; the client decodes nothing, so the body is as sent.
async fn fetch(server: &Server, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = server.http.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Opens the live WebSocket, asking for compression as a browser would, and reads its
/// first frame.
async fn live_socket(
    server: &Server,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}/api/ws", server.api.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("accept-encoding", "gzip, deflate, br".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    socket
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket stays open")
            .expect("a good frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn api_answers_come_compressed_as_asked_and_decode_to_the_same_json() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    for i in 0..12 {
        let e = event(
            &format!("c{i}"),
            &format!("{}", 500 + i),
            "aifactory",
            "t",
            "in_progress",
            T0,
        );
        assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
    }
    let url = server.url("/api/workitems");
    let plain = fetch(&server, &url, &[]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "content-encoding"), None);
    let plain_bytes = plain.bytes().await.unwrap();
    assert!(plain_bytes.len() > 1024, "a list big enough to compress");
    let expected: Value = serde_json::from_slice(&plain_bytes).unwrap();

    for coding in ["gzip", "br"] {
        let answer = fetch(&server, &url, &[("accept-encoding", coding)]).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "content-encoding"), Some(coding));
        assert!(
            header(&answer, "vary").is_some_and(|v| v.contains("accept-encoding")),
            "{coding}: {:?}",
            answer.headers()
        );
        let wire = answer.bytes().await.unwrap();
        assert!(wire.len() < plain_bytes.len(), "{coding} is smaller");
        let decoded: Value = serde_json::from_slice(&decode(coding, &wire)).unwrap();
        assert_eq!(decoded, expected, "{coding}");
    }

    // A tiny answer goes out as it is.
    let health = fetch(
        &server,
        &server.url("/health"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, "content-encoding"), None);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    // The WebSocket upgrade is left alone: a browser asking for compression still gets
    // its frames.
    let mut socket = live_socket(&server).await;
    let e = event("c-live", "599", "aifactory", "t", "in_progress", T0);
    assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
    loop {
        let frame = next_json(&mut socket).await;
        if frame["type"] == "workitem" && frame["item"]["correlation_key"] == "599" {
            break;
        }
    }
}

/// A built cockpit in a directory: an `index.html` and one fingerprinted script.
fn cockpit_dir() -> (tempfile::TempDir, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    let script: Vec<u8> = (0..400)
        .map(|i| format!("export const stage{i} = {{ name: 'stage {i}', gate: 'review' }};\n"))
        .collect::<String>()
        .into_bytes();
    let asset = "assets/index-4f3a9c1d.js".to_owned();
    std::fs::write(dir.path().join(&asset), &script).unwrap();
    let index = format!(
        "<!doctype html><html><head><script type=\"module\" src=\"/{asset}\"></script></head>\
         <body><div id=\"root\"></div></body></html>"
    );
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    (dir, asset, script)
}

#[tokio::test]
async fn cockpit_files_are_sent_precompressed_tagged_and_cached() {
    let (dir, asset, script) = cockpit_dir();
    let store = Store::sqlite();
    let server = Server::start_with(
        &store,
        &[],
        &[("CFACTORY_UI_DIR", dir.path().to_str().unwrap())],
    )
    .unwrap();
    let url = format!("{}/{asset}", server.ui);

    let plain = fetch(&server, &url, &[]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(plain.bytes().await.unwrap(), script);

    let mut tags = Vec::new();
    for (asked, coding) in [("gzip", "gzip"), ("gzip, deflate, br, zstd", "br")] {
        let answer = fetch(&server, &url, &[("accept-encoding", asked)]).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "content-encoding"), Some(coding));
        assert_eq!(
            header(&answer, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(header(&answer, "vary"), Some("accept-encoding"));
        assert_eq!(
            header(&answer, "content-type"),
            Some("text/javascript; charset=utf-8")
        );
        let etag = header(&answer, "etag").unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "a strong tag: {etag}"
        );
        let wire = answer.bytes().await.unwrap();
        assert!(
            wire.len() * 4 < script.len(),
            "{coding}: {} bytes",
            wire.len()
        );
        assert_eq!(decode(coding, &wire), script, "{coding}");

        // The same copy asked for again with its tag: 304 and nothing else.
        let again = fetch(
            &server,
            &url,
            &[("accept-encoding", asked), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status(), 304, "{coding}");
        assert_eq!(header(&again, "etag"), Some(etag.as_str()));
        assert_eq!(
            header(&again, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(again.bytes().await.unwrap().is_empty());
        tags.push(etag);
    }
    assert_ne!(tags[0], tags[1], "each coding is its own representation");

    // The page itself always revalidates, and revalidates to 304 while unchanged.
    let index = fetch(&server, &format!("{}/", server.ui), &[]).await;
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "cache-control"), Some("no-cache"));
    let etag = header(&index, "etag").unwrap().to_owned();
    let again = fetch(
        &server,
        &format!("{}/pipeline", server.ui),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "cache-control"), Some("no-cache"));
}

#[tokio::test]
async fn a_request_past_the_deadline_answers_the_timed_out_problem_and_streams_run_on() {
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--request-timeout-seconds", "1"], &[]).unwrap();
    let mut socket = live_socket(&server).await;

    // Another process holds the database's write lock: the server's write waits for it
    // (up to SQLite's five-second busy timeout), past the one-second deadline.
    use sqlx::Connection as _;
    let mut holder = sqlx::SqliteConnection::connect(&store.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = Instant::now();
    let e = event("slow", "610", "aifactory", "t", "in_progress", T0);
    let answer = server
        .http
        .post(server.url("/api/events"))
        .header("content-type", "application/json")
        .body(e.to_string())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 503);
    assert_eq!(header(&answer, "retry-after"), Some("2"));
    assert_eq!(
        header(&answer, "content-type"),
        Some("application/problem+json")
    );
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "https://cfactory.dev/problems/timed-out");
    assert_eq!(problem["status"], 503);
    assert!(
        took < Duration::from_secs(4),
        "answered at the deadline, not at the store's busy timeout: {took:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();

    // The WebSocket, open longer than the deadline, still delivers.
    let e = event("after", "611", "aifactory", "t", "in_progress", T0);
    assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
    loop {
        let frame = next_json(&mut socket).await;
        if frame["type"] == "workitem" && frame["item"]["correlation_key"] == "611" {
            break;
        }
    }
}

/// The access lines the server has logged so far (it logs JSON with `--log-format json`).
fn access_lines(server: &Server) -> Vec<Value> {
    server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "cfactory::access")
        .collect()
}

/// The access line for `route` answered `status`, waiting up to 5 s for the log to arrive.
async fn access_line(server: &Server, route: &str, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(line) = access_lines(server)
            .into_iter()
            .find(|l| l["fields"]["route"] == route && l["fields"]["status"] == status)
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {route} {status} in:\n{}",
            server.log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id `keys list` shows for the only key.
fn only_key_id(store: &Store) -> String {
    let (_, listing, _) = store.cli(&["keys", "list"], None);
    listing
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .next()
                .filter(|w| w.starts_with("key_"))
        })
        .unwrap_or_else(|| panic!("no key in {listing}"))
        .to_owned()
}

#[tokio::test]
async fn each_request_leaves_one_access_line_with_its_route_and_never_the_key() {
    let store = Store::sqlite();
    let secret = store.create_key("read,ingest", Some("acme"));
    let key_id = only_key_id(&store);
    let server = Server::start_with(&store, &["--log-format", "json"], &[]).unwrap();

    let (status, _) = server.get_with("/api/workitems/777", Some(&secret)).await;
    assert_eq!(status, 404);
    let line = access_line(&server, "/api/workitems/{correlationKey}", 404).await;
    let fields = &line["fields"];
    assert_eq!(line["level"], "INFO");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["tenant"], "acme");
    assert_eq!(fields["key_id"], key_id.as_str());
    assert!(fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));

    // A webhook sender's key in the query: the route is logged, the query never.
    let e = event("a1", "778", "aifactory", "t", "in_progress", T0);
    let path = format!("/api/events/completion?token={secret}");
    let (status, body) = server.post_raw(&path, &e.to_string(), None).await;
    assert_eq!(status, 202, "{body}");
    let line = access_line(&server, "/api/events/completion", 202).await;
    assert_eq!(line["fields"]["key_id"], key_id.as_str());

    // Refused before any caller is known: no tenant, no key.
    let (status, _) = server.get("/api/workitems").await;
    assert_eq!(status, 401);
    let line = access_line(&server, "/api/workitems", 401).await;
    assert!(line["fields"].get("key_id").is_none(), "{line}");
    assert!(line["fields"].get("tenant").is_none(), "{line}");

    // No route matched: the fallback, never the raw path.
    assert_eq!(server.get("/api/no-such-route").await.0, 404);
    let line = access_line(&server, "(fallback)", 404).await;
    assert_eq!(line["fields"]["method"], "GET");

    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains(&secret[4..]), "a key reached the log");
    assert!(!log.contains("token="), "a query reached the log");
}

#[tokio::test]
async fn rust_log_filters_when_cfactory_log_is_not_set() {
    let store = Store::sqlite();
    let server = Server::start_with(
        &store,
        &["--log-format", "json"],
        &[
            ("CFACTORY_LOG", ""),
            ("RUST_LOG", "warn,cfactory::access=info"),
        ],
    )
    .unwrap();
    assert_eq!(server.get("/health").await.0, 200);
    access_line(&server, "/health", 200).await;
    let log = server.log.lock().unwrap().clone();
    let info_elsewhere: Vec<&String> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok().map(|v| (l, v)))
        .filter(|(_, v)| v["level"] == "INFO" && v["target"] != "cfactory::access")
        .map(|(l, _)| l)
        .collect();
    assert!(
        info_elsewhere.is_empty(),
        "RUST_LOG asked for warnings only: {info_elsewhere:?}"
    );
}

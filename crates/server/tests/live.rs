//! The live side over the wire: the cockpit WebSocket, changes across two server
//! processes, the sentinel directory, and the services registry.

mod common;

use std::time::Duration;

use common::{Server, Store, event};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T0: &str = "2026-11-01T10:00:00Z";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server, path: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let url = format!("{}{path}", server.api.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// The next JSON text frame, skipping pings; panics after 10 s.
async fn next_json(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket stays open")
            .expect("a good frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Frames until one of type `workitem` for `key`.
async fn wait_for_item(socket: &mut Socket, key: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == "workitem" && frame["item"]["correlation_key"] == key {
            return frame;
        }
    }
}

#[tokio::test]
async fn the_cockpit_socket_sends_a_snapshot_then_every_change() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let e = event("w1", "300", "aifactory", "t", "in_progress", T0).to_string();
    assert_eq!(server.post("/api/events", &e).await.0, 202);

    for path in ["/api/ws", "/ws/cockpit"] {
        let mut socket = connect(&server, path, &[]).await.unwrap();
        let first = next_json(&mut socket).await;
        assert_eq!(first["type"], "snapshot", "{path}");
        assert_eq!(first["counts"]["workitems"], 1);
        assert_eq!(first["items"][0]["correlation_key"], "300");
        socket.close(None).await.ok();
    }

    let mut socket = connect(&server, "/api/ws", &[]).await.unwrap();
    next_json(&mut socket).await;
    let e2 = event(
        "w2",
        "300",
        "aifactory",
        "t",
        "done",
        "2026-11-01T10:05:00Z",
    )
    .to_string();
    assert_eq!(server.post("/api/events", &e2).await.0, 202);
    let frame = wait_for_item(&mut socket, "300").await;
    assert_eq!(frame["item"]["stages"]["code"]["status"], "done");

    // A merge announces the surviving item.
    let mut linked = event("w3", "af-9", "aifactory", "9", "in_progress", T0);
    assert_eq!(server.post("/api/events", &linked.to_string()).await.0, 202);
    wait_for_item(&mut socket, "af-9").await;
    linked["id"] = json!("w4");
    linked["correlation"] = json!({"issue_number": 301});
    assert_eq!(server.post("/api/events", &linked.to_string()).await.0, 202);
    let merged = wait_for_item(&mut socket, "301").await;
    assert!(
        merged["item"]["aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("af-9"))
    );
}

#[tokio::test]
async fn the_socket_refuses_foreign_origins_and_keyless_callers() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let status = connect(&server, "/api/ws", &[("origin", "http://evil.example")])
        .await
        .err();
    assert_eq!(status, Some(403));
    let own = server.api.clone();
    assert!(
        connect(&server, "/api/ws", &[("origin", &own)])
            .await
            .is_ok()
    );

    let key = store.create_key("read", None);
    let ingest = store.create_key("ingest", None);
    assert_eq!(connect(&server, "/api/ws", &[]).await.err(), Some(401));
    assert_eq!(
        connect(&server, "/api/ws", &[("x-api-key", &ingest)])
            .await
            .err(),
        Some(403)
    );
    let mut socket = connect(
        &server,
        "/api/ws",
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "snapshot");
}

#[tokio::test]
async fn a_change_ingested_by_one_process_reaches_the_others_clients() {
    let store = Store::postgres().await;
    let a = Server::start(&store);
    let b = Server::start(&store);
    let mut socket = connect(&b, "/api/ws", &[]).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "snapshot");
    let e = event("x1", "400", "tfactory", "spec-4", "executing", T0).to_string();
    assert_eq!(a.post("/api/events", &e).await.0, 202);
    let frame = wait_for_item(&mut socket, "400").await;
    assert_eq!(frame["item"]["stages"]["test"]["status"], "executing");
}

#[tokio::test]
async fn the_sentinel_ingests_completed_files_through_the_normal_path() {
    let store = Store::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &store,
        &["--sentinel-dir", dir.path().to_str().unwrap()],
        &[],
    )
    .unwrap();
    let task_dir = dir.path().join("proj").join("007");
    std::fs::create_dir_all(&task_dir).unwrap();
    let e = event("sen-1", "500", "aifactory", "proj:007", "done", T0);
    std::fs::write(task_dir.join("COMPLETED.json"), e.to_string()).unwrap();
    let mut found = None;
    for _ in 0..100 {
        let (status, item) = server.get("/api/workitems/500").await;
        if status == 200 {
            found = Some(item);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let item = found.expect("the sentinel file was ingested within 10 s");
    assert_eq!(item["stages"]["code"]["status"], "done");
    // The same event posted over HTTP is a duplicate: one path, one dedup.
    assert_eq!(server.post("/api/events", &e.to_string()).await.0, 200);
}

#[tokio::test]
async fn the_sentinel_writes_into_its_own_tenant() {
    let store = Store::sqlite();
    let beta = store.create_key("read", Some("beta"));
    let home = store.create_key("read", None);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &store,
        &[
            "--sentinel-dir",
            dir.path().to_str().unwrap(),
            "--sentinel-tenant",
            "beta",
        ],
        &[],
    )
    .unwrap();
    let e = event("sen-b", "510", "aifactory", "proj:010", "done", T0);
    std::fs::write(dir.path().join("COMPLETED.json"), e.to_string()).unwrap();
    let mut found = false;
    for _ in 0..100 {
        if server.get_with("/api/workitems/510", Some(&beta)).await.0 == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the sentinel file reached beta within 10 s");
    let (status, _) = server.get_with("/api/workitems/510", Some(&home)).await;
    assert_eq!(status, 404, "the sentinel wrote into the --tenant tenant");
}

#[tokio::test]
async fn service_urls_are_validated_probed_and_kept_across_restarts() {
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    let (status, body) = server.get("/api/services").await;
    assert_eq!(status, 200);
    let services = body["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    assert!(services.iter().all(|s| s["configured"] == false));

    let put = |name: &str, url: &str| {
        let request = server
            .http
            .put(server.url(&format!("/api/services/{name}")))
            .json(&json!({ "url": url }));
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, problem) = put("aifactory", "ftp://files.example").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "url");
    assert_eq!(put("aifactory", "not a url").await.0, 422);
    for metadata in ["http://169.254.169.254", "http://metadata.google.internal"] {
        let (status, problem) = put("aifactory", metadata).await;
        assert_eq!(status, 422, "{metadata}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("metadata"),
            "{problem}"
        );
    }
    assert_eq!(put("zfactory", "http://127.0.0.1:9").await.0, 404);

    // Nothing listens on port 9: offline, and no URL in what the API says went wrong.
    let (status, view) = put("aifactory", "http://127.0.0.1:9/").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["url"], "http://127.0.0.1:9");
    assert_eq!(view["health"]["status"], "offline");
    let (status, round) = server
        .http
        .post(server.url("/api/refresh"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    let round: Value = round.json().await.unwrap();
    let ai = round["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "aifactory")
        .unwrap()
        .clone();
    assert_eq!(ai["health"], "offline");
    assert!(!ai.to_string().contains("127.0.0.1:9"), "{ai}");

    // An item whose stage runs at a service that cannot answer: no 5xx.
    let e = event("p1", "600", "aifactory", "proj:1", "in_progress", T0).to_string();
    assert_eq!(server.post("/api/events", &e).await.0, 202);
    let (status, graph) = server.get("/api/workitems/600/process").await;
    assert_eq!(status, 200);
    assert_eq!(graph["available"], false);
    assert!(graph["reason"].as_str().is_some());
    assert_eq!(server.get("/api/workitems/601/process").await.0, 404);

    drop(server);
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    let (_, body) = server.get("/api/services").await;
    let ai = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "aifactory")
        .unwrap()
        .clone();
    assert_eq!(
        ai["url"], "http://127.0.0.1:9",
        "the stored URL survived a restart"
    );
    assert_eq!(ai["configured"], true);
}

/// Frames until the server closes; the close code, within `limit`.
async fn close_code_within(socket: &mut Socket, limit: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the stream stayed open past {limit:?}"),
            Ok(Some(Ok(Message::Close(Some(frame))))) => return u16::from(frame.code),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the stream ended without a close frame: {other:?}"),
        }
    }
}

/// The id `keys list` shows for the only key with exactly these scopes.
fn key_id(store: &Store, scopes: &str) -> String {
    let (_, listing, _) = store.cli(&["keys", "list"], None);
    listing
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == scopes))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key with scopes {scopes} in {listing}"))
        .to_owned()
}

#[tokio::test]
async fn a_revoked_key_or_an_ended_session_closes_its_stream() {
    let store = Store::sqlite();
    let watcher = store.create_key("read", None);
    let person = store.create_key("read,write", None);
    let server = Server::start(&store);

    // A key revoked by another process (the CLI) closes its stream with 4401.
    let mut by_key = connect(&server, "/api/ws", &[("x-api-key", &watcher)])
        .await
        .unwrap();
    assert_eq!(next_json(&mut by_key).await["type"], "snapshot");
    let (status, _, err) = store.cli(&["keys", "revoke", &key_id(&store, "read")], None);
    assert!(status.success(), "{err}");
    assert_eq!(
        close_code_within(&mut by_key, Duration::from_secs(5)).await,
        4401
    );

    // A browser session's stream closes when the session signs out.
    let signed_in = server
        .http
        .post(server.url("/api/session"))
        .header("content-type", "application/json")
        .body(json!({ "key": person }).to_string())
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut by_session = connect(&server, "/api/ws", &[("cookie", &cookie)])
        .await
        .unwrap();
    assert_eq!(next_json(&mut by_session).await["type"], "snapshot");
    let mut other = connect(&server, "/api/ws", &[("x-api-key", &person)])
        .await
        .unwrap();
    assert_eq!(next_json(&mut other).await["type"], "snapshot");
    let out = server
        .http
        .delete(server.url("/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(
        close_code_within(&mut by_session, Duration::from_secs(5)).await,
        4401
    );
    // The same key's own stream outlives the sign-out (a recheck runs every 2 s).
    assert!(
        tokio::time::timeout(Duration::from_secs(3), other.next())
            .await
            .map(|m| !matches!(m, Some(Ok(Message::Close(_)))))
            .unwrap_or(true),
        "a stream whose key still holds stays open"
    );
}

#[tokio::test]
async fn another_process_writing_the_same_sqlite_file_is_seen_within_2_seconds() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let mut socket = connect(&server, "/api/ws", &[]).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "snapshot");
    // `cfactory ingest` writes the file while the server writes it too.
    let lines: Vec<String> = (0..200)
        .map(|i| {
            event(
                &format!("x{i}"),
                &format!("{}", 700 + i),
                "aifactory",
                "t",
                "in_progress",
                T0,
            )
            .to_string()
        })
        .collect();
    let posting = {
        let base = server.api.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..100 {
                let e = event(
                    &format!("s{i}"),
                    &format!("{}", 1700 + i),
                    "aifactory",
                    "t",
                    "done",
                    T0,
                );
                let r = http
                    .post(format!("{base}/api/events"))
                    .header("content-type", "application/json")
                    .body(e.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202, "the server's own ingest goes on");
            }
        })
    };
    let (status, out, err) = store.cli(&["ingest", "-"], Some(&lines.join("\n")));
    assert!(status.success(), "{out}{err}");
    assert!(err.contains("200 accepted"), "{err}");
    assert!(!err.contains("locked"), "{err}");
    let ingested = std::time::Instant::now();
    posting.await.unwrap();

    // The server's read model, search and socket hear of the other process's items.
    let frame = wait_for_item(&mut socket, "899").await;
    assert_eq!(frame["item"]["stages"]["code"]["status"], "in_progress");
    loop {
        let (_, found) = server.get("/api/search?q=899").await;
        if found["count"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            ingested.elapsed() < Duration::from_secs(2),
            "search never found the other process's item: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, needs) = server.get("/api/needs-you").await;
    let (_, list) = server.get("/api/workitems?limit=1").await;
    assert_eq!(list["count"], 300, "{list}");
    assert!(needs["unreadable"] == 0);
}

#[tokio::test]
async fn changes_committed_while_the_change_listener_was_cut_off_are_caught_up() {
    use sqlx::Connection;
    let store = Store::postgres().await;
    let server = Server::start(&store);
    assert_eq!(server.get("/ready").await.0, 200);
    // Cut the server's change listener off, as a network blip or a proxy restart would.
    let mut admin = sqlx::PgConnection::connect(&store.url).await.unwrap();
    let (cut,): (i64,) = sqlx::query_as(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, 1, "the server's one listener");
    // Another process commits while nobody listens: its notice is lost.
    let e = event("cut-1", "990", "aifactory", "t", "human_review", T0).to_string();
    let (status, out, err) = store.cli(&["ingest", "-"], Some(&e));
    assert!(status.success(), "{out}{err}");
    // The listener comes back and the read model catches up from the database.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, found) = server.get("/api/search?q=990").await;
        if found["count"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read model never caught up: {found}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, needs) = server.get("/api/needs-you").await;
    assert_eq!(needs["count"], 1, "{needs}");
}

/// The address of the PostgreSQL server in `url` (`postgres://user@host:port/db`).
fn pg_address(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap();
    host.to_socket_addrs().unwrap().next().unwrap()
}

/// A POST of `body` to `/api/events`: its status, whether it carried `Retry-After`, and
/// how long the answer took.
async fn timed_post(server: &Server, body: &str) -> (u16, bool, Duration) {
    let started = std::time::Instant::now();
    let answer = server
        .http
        .post(server.url("/api/events"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (
        answer.status().as_u16(),
        answer.headers().contains_key("retry-after"),
        started.elapsed(),
    )
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unreachable_database_costs_a_quick_503_and_all_recovers_without_a_restart() {
    let store = Store::postgres().await;
    let direct = store.url.clone();
    let proxy = common::proxy::Proxy::start(pg_address(&direct));
    let store = store.reached_at(proxy.route(&direct));
    assert_ne!(store.url, direct, "the server must go through the proxy");
    let server = Server::start(&store);
    for i in 0..5 {
        let e = event(
            &format!("ok-{i}"),
            &format!("{}", 700 + i),
            "aifactory",
            "t",
            "in_progress",
            T0,
        );
        assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
    }
    eventually(
        Duration::from_secs(5),
        "the five items never showed",
        || async { server.get("/api/workitems?limit=1").await.1["count"] == 5 },
    )
    .await;

    for (fault, cut) in [("cut", true), ("frozen", false)] {
        if cut {
            proxy.cut();
        } else {
            proxy.freeze();
        }
        // Ingest answers 503 with Retry-After, quickly, and stores nothing.
        for i in 0..3 {
            let e = event(
                &format!("{fault}-{i}"),
                &format!("{}", 800 + i),
                "aifactory",
                "t",
                "in_progress",
                T0,
            );
            let (status, retry, took) = timed_post(&server, &e.to_string()).await;
            assert_eq!(status, 503, "{fault}: ingest while the database is away");
            assert!(retry, "{fault}: a 503 says when to retry");
            assert!(
                took < Duration::from_secs(5),
                "{fault}: the 503 took {took:?}"
            );
        }
        // Readiness says so; what the read model holds is still served.
        let (ready, _) = server.get("/ready").await;
        assert_eq!(ready, 503, "{fault}: /ready while the database is away");
        for path in [
            "/api/needs-you",
            "/api/rollups",
            "/api/anomalies",
            "/api/insights",
        ] {
            assert_eq!(server.get(path).await.0, 200, "{fault}: {path} from memory");
        }

        let (status, found) = server.get("/api/search?q=701").await;
        assert_eq!(
            (status, found["count"].clone()),
            (200, json!(1)),
            "{fault}: {found}"
        );

        // Meanwhile another process commits straight to the database.
        let e = event(
            &format!("{fault}-other"),
            &format!("{}", 900 + u16::from(cut)),
            "tfactory",
            "s",
            "passed",
            T0,
        );
        let (status, out, err) = store.cli_at(&direct, &["ingest", "-"], Some(&e.to_string()));
        assert!(status.success(), "{out}{err}");

        proxy.restore();
        // Everything comes back without a restart: ingest, readiness, and the changes
        // committed while the server could not hear them.
        eventually(
            Duration::from_secs(20),
            &format!("{fault}: ingest never came back"),
            || async {
                let e = event(
                    &format!("{fault}-back"),
                    &format!("{}", 910 + u16::from(cut)),
                    "aifactory",
                    "t",
                    "in_progress",
                    T0,
                );
                timed_post(&server, &e.to_string()).await.0 == 202
            },
        )
        .await;
        eventually(
            Duration::from_secs(10),
            &format!("{fault}: /ready never came back"),
            || async { server.get("/ready").await.0 == 200 },
        )
        .await;
        let other = format!("/api/search?q={}", 900 + u16::from(cut));
        eventually(
            Duration::from_secs(15),
            &format!("{fault}: the other process's change was never seen"),
            || async { server.get(&other).await.1["count"] == 1 },
        )
        .await;
    }
    // Nothing refused was stored; everything accepted is there once.
    for key in ["800", "801", "802"] {
        assert_eq!(
            server.get(&format!("/api/workitems/{key}")).await.0,
            404,
            "{key} was refused"
        );
    }
    eventually(Duration::from_secs(5), "the accepted items", || async {
        server.get("/api/workitems?limit=1").await.1["count"] == 9
    })
    .await;
}

//! The trust boundaries, attacked over the wire against the built binary: each test sends
//! what a hostile web page, tenant or agent would send, sees it refused, and sees the
//! legitimate request still work.

mod common;

use common::{Server, Store, event};
use serde_json::Value;

const T0: &str = "2026-11-01T10:00:00Z";

/// `host:port` of a server URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

fn body(id: &str, key: &str) -> String {
    event(id, key, "aifactory", "t-1", "running", T0).to_string()
}

async fn item_status(server: &Server, key: &str) -> u16 {
    server.get(&format!("/api/workitems/{key}")).await.0
}

#[tokio::test]
async fn open_mode_refuses_a_rebound_host_name_and_answers_its_own() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let port = authority(&server.api)
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    let get = |host: String| {
        server
            .http
            .get(server.url("/api/workitems"))
            .header("host", host)
            .send()
    };
    // A page on evil.example whose name now resolves to 127.0.0.1.
    let refused = get(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("evil.example"),
        "{problem}"
    );
    // A write through the rebound name stores nothing.
    let post = server
        .http
        .post(server.url("/api/events/completion"))
        .header("host", format!("evil.example:{port}"))
        .header("content-type", "application/json")
        .body(body("rb-1", "701"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 421);
    assert_eq!(item_status(&server, "701").await, 404);
    // The server's own names still work.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let ok = get(host.clone()).await.unwrap();
        assert_eq!(ok.status().as_u16(), 200, "{host}");
    }
}

#[tokio::test]
async fn the_public_url_names_the_server_and_makes_the_cookie_secure() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let server = Server::start_with(
        &store,
        &["--public-url", "https://cockpit.example.com"],
        &[],
    )
    .unwrap();
    // With keys configured the server is not in open mode: any Host may ask, the key
    // decides.
    let ok = server
        .http
        .get(server.url("/api/workitems"))
        .header("host", "cockpit.example.com")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let signed_in = server
        .http
        .post(server.url("/api/session"))
        .header("content-type", "application/json")
        .header("origin", "https://cockpit.example.com")
        .body(serde_json::json!({ "key": key }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn a_plain_http_cookie_is_not_secure_unless_a_proxy_says_https() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let server = Server::start(&store);
    let sign_in = |proto: Option<&'static str>| {
        let mut req = server
            .http
            .post(server.url("/api/session"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "key": key }).to_string());
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        req.send()
    };
    let plain = sign_in(None).await.unwrap();
    assert!(
        !plain.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let proxied = sign_in(Some("https")).await.unwrap();
    assert!(
        proxied.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn a_cross_site_page_cannot_post_events_or_decide_actions() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let own = format!("http://{}", authority(&server.api));
    let post = |origin: &'static str, content_type: &'static str, id: &str, key: &str| {
        server
            .http
            .post(server.url("/api/events/completion"))
            .header("origin", origin)
            .header("content-type", content_type)
            .body(body(id, key))
            .send()
    };
    // A form or `fetch(…, {mode: "no-cors"})` from another site: a simple request.
    let r = post("http://evil.example", "text/plain", "x-1", "702")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = post("null", "application/json", "x-2", "702")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(item_status(&server, "702").await, 404, "nothing was stored");
    // Confirming or rejecting from another site is refused before any lookup.
    for path in ["/api/actions/act_x/confirm", "/api/actions/act_x/reject"] {
        let r = server
            .http
            .post(server.url(path))
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }
    // The cockpit's own origin, with JSON declared, still writes.
    let r = server
        .http
        .post(server.url("/api/events/completion"))
        .header("origin", &own)
        .header("content-type", "application/json")
        .body(body("ok-1", "702"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(item_status(&server, "702").await, 200);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_a_valid_key() {
    let store = Store::sqlite();
    let key = store.create_key("ingest,read", None);
    let server = Server::start(&store);
    let r = server
        .http
        .post(server.url("/api/events/completion"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .bearer_auth(&key)
        .body(body("k-1", "703"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, _) = server.get_with("/api/workitems/703", Some(&key)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    for (path, content_type) in [
        ("/api/events/completion", "text/plain"),
        ("/api/events", "application/x-www-form-urlencoded"),
        ("/api/events/completion", ""),
        ("/mcp", "text/plain"),
        ("/api/session", "text/plain"),
    ] {
        let mut req = server.http.post(server.url(path)).body(body("m-1", "704"));
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 415, "{path} with `{content_type}`");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{problem}"
        );
    }
    assert_eq!(item_status(&server, "704").await, 404);
    let (status, _) = server
        .post_raw("/api/events/completion", &body("m-2", "704"), None)
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn the_cockpit_cannot_be_framed() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    for url in [
        server.ui.clone(),
        format!("{}/board", server.ui.trim_end_matches('/')),
    ] {
        let r = server.http.get(&url).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn sign_in_guesses_are_limited_per_address() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let server = Server::start(&store);
    let sign_in = |key: String| {
        server
            .http
            .post(server.url("/api/session"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "key": key }).to_string())
            .send()
    };
    // The default allows ten attempts a minute; a guesser gets no eleventh.
    for n in 0..10 {
        let r = sign_in(format!("cfk_guess_{n}")).await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "guess {n}");
    }
    let limited = sign_in(key.clone()).await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    // Requests with a key are counted on the key's own buckets, not the address's.
    let (status, _) = server.get_with("/api/workitems", Some(&key)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn ingest_over_its_limit_is_refused_without_storing_and_other_keys_go_on() {
    let store = Store::sqlite();
    let a = store.create_key("ingest,read", None);
    let b = store.create_key("ingest,read", None);
    let server = Server::start_with(&store, &["--limit-ingest-per-second", "3"], &[]).unwrap();
    let mut statuses = Vec::new();
    for n in 0..6 {
        let (status, _) = server
            .post_raw(
                "/api/events/completion",
                &body(&format!("l-{n}"), &format!("80{n}")),
                Some(&a),
            )
            .await;
        statuses.push(status);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 2, "{statuses:?}");
    for (n, status) in statuses.iter().enumerate() {
        let (found, _) = server
            .get_with(&format!("/api/workitems/80{n}"), Some(&a))
            .await;
        let expected = if *status == 429 { 404 } else { 200 };
        assert_eq!(found, expected, "event {n} answered {status}");
    }
    let (status, _) = server
        .post_raw("/api/events/completion", &body("l-b", "809"), Some(&b))
        .await;
    assert_eq!(status, 202, "another key has its own bucket");
}

#[tokio::test]
async fn a_short_seeded_key_stops_the_start() {
    let store = Store::sqlite();
    let short = format!("{}:read", "k".repeat(31));
    let log = Server::start_with(&store, &[], &[("CFACTORY_API_KEYS", &short)])
        .err()
        .expect("a 31-character seed is refused");
    assert!(log.contains("at least 32 characters"), "{log}");
    assert!(
        !log.contains(&"k".repeat(31)),
        "the log echoes the key: {log}"
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_scope_once_keys_exist() {
    let store = Store::sqlite();
    let reader = store.create_key("read", None);
    let scraper = store.create_key("metrics", None);
    let server = Server::start(&store);
    assert_eq!(server.get("/metrics").await.0, 401);
    assert_eq!(server.get_with("/metrics", Some(&reader)).await.0, 403);
    let (status, text) = server.get_with("/metrics", Some(&scraper)).await;
    assert_eq!(status, 200);
    assert!(text.as_str().unwrap().contains("cfactory_"), "{text}");
    // The scraper's key reads nothing else.
    assert_eq!(
        server.get_with("/api/workitems", Some(&scraper)).await.0,
        403
    );
}

#[tokio::test]
async fn open_mode_keeps_every_scope_for_the_person_at_the_keyboard() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let (status, session) = server.get("/api/session").await;
    assert_eq!(status, 200);
    let scopes: Vec<&str> = session["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scope in ["read", "write", "ingest", "approve", "metrics", "admin"] {
        assert!(scopes.contains(&scope), "{scope} missing from {scopes:?}");
    }
    assert_eq!(server.get("/metrics").await.0, 200);
}

/// Posts `body` signed as Standard Webhooks with `secret` (or with the headers given).
async fn post_signed(
    server: &Server,
    path: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn signed_headers(secret: &str, id: &str, at: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = cfactory_server::webhooks::parse_secret(secret).unwrap();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", at.to_string()),
        (
            "webhook-signature",
            cfactory_server::webhooks::sign(&key, id, at, body.as_bytes()),
        ),
    ]
}

#[tokio::test]
async fn signed_webhooks_are_checked_replays_apply_once_and_unsigned_ingest_stops() {
    let store = Store::sqlite();
    let reader = store.create_key("read", Some("acme"));
    let sender_key = store.create_key("ingest", Some("acme"));
    let other = store.create_key("ingest,read", Some("globex"));
    let (status, out, err) = store.cli(
        &[
            "webhooks",
            "secret",
            "create",
            "--tenant",
            "acme",
            "--name",
            "aifactory",
        ],
        None,
    );
    assert!(status.success(), "{err}");
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let server = Server::start(&store);
    let now = chrono::Utc::now().timestamp();
    let path = "/api/events/completion?tenant=acme";
    // No `id`: the delivery's id names the event.
    let body = serde_json::json!({
        "correlation_key": "910", "service": "aifactory", "task_id": "t-910",
        "status": "running", "phase": "act", "time": T0,
    })
    .to_string();

    let good = signed_headers(&secret, "msg_1", now, &body);
    let (status, answer) = post_signed(&server, path, &body, &good).await;
    assert_eq!(status, 202, "{answer}");
    // The same delivery again (a retry, or a replay within the window): a duplicate.
    let (status, answer) = post_signed(&server, path, &body, &good).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "duplicate");
    let (_, item) = server.get_with("/api/workitems/910", Some(&reader)).await;
    assert_eq!(item["event_count"], 1, "applied once");

    // A body changed after signing, a stale timestamp, a missing header, a wrong key.
    let tampered = body.replace("running", "done");
    let (status, p) = post_signed(&server, path, &tampered, &good).await;
    assert_eq!(status, 401);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("no `webhook-signature` entry matches"),
        "{p}"
    );
    let stale = signed_headers(&secret, "msg_2", now - 301, &body);
    let (status, p) = post_signed(&server, path, &body, &stale).await;
    assert_eq!(status, 401);
    assert!(p["detail"].as_str().unwrap().contains("5 minutes"), "{p}");
    let (status, p) = post_signed(&server, path, &body, &good[..2]).await;
    assert_eq!(status, 401);
    assert!(
        p["detail"].as_str().unwrap().contains("webhook-signature"),
        "{p}"
    );
    let forged = signed_headers(
        &cfactory_server::webhooks::secret_text(&[7u8; 32]),
        "msg_3",
        now,
        &body,
    );
    assert_eq!(post_signed(&server, path, &body, &forged).await.0, 401);
    // A tenant without a secret cannot be written by signature.
    let (status, p) = post_signed(
        &server,
        "/api/events/completion?tenant=globex",
        &body,
        &signed_headers(&secret, "msg_4", now, &body),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("no active webhook secret"),
        "{p}"
    );

    // Once acme signs, its ingest key alone no longer writes; globex's still does.
    let unsigned = body.replace("910", "911");
    let (status, text) = server
        .post_raw("/api/events/completion", &unsigned, Some(&sender_key))
        .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("signs its webhooks"), "{text}");
    let (status, _) = server
        .post_raw("/api/events/completion", &unsigned, Some(&other))
        .await;
    assert_eq!(status, 202);
    let (status, _) = server.get_with("/api/workitems/911", Some(&reader)).await;
    assert_eq!(status, 404, "nothing reached acme");

    // Revoking the secret ends signed ingest (within the 2 s cache).
    let (_, listing, _) = store.cli(&["webhooks", "secret", "list", "--tenant", "acme"], None);
    let id = listing
        .lines()
        .find(|l| l.starts_with("whk_"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (status, _, err) = store.cli(&["webhooks", "secret", "revoke", &id], None);
    assert!(status.success(), "{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut n = 10;
    loop {
        let fresh = body.replace("910", "912");
        let headers = signed_headers(&secret, &format!("msg_{n}"), now, &fresh);
        let (status, _) = post_signed(&server, path, &fresh, &headers).await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked secret still signs"
        );
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn only_an_admin_points_a_service_elsewhere() {
    let store = Store::sqlite();
    let writer = store.create_key("read,write", None);
    let admin = store.create_key("admin", None);
    let server = Server::start_with(&store, &["--poll-interval-seconds", "0"], &[]).unwrap();
    let put = |key: String| {
        server
            .http
            .put(server.url("/api/services/aifactory"))
            .header("x-api-key", key)
            .json(&serde_json::json!({"url": "http://127.0.0.1:9"}))
            .send()
    };
    let refused = put(writer.clone()).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let (_, services) = server.get_with("/api/services", Some(&writer)).await;
    let ai = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "aifactory")
        .unwrap()
        .clone();
    assert_eq!(
        ai["configured"], false,
        "the write key changed nothing: {ai}"
    );
    assert_eq!(put(admin).await.unwrap().status().as_u16(), 200);
}

/// A stand-in upstream that answers every request with `[]` and records the
/// `Authorization` header each one carried.
async fn recording_upstream() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>;
    let seen: Seen = Default::default();
    async fn record(State(seen): State<Seen>, headers: HeaderMap) -> axum::Json<Value> {
        seen.lock().unwrap().push(
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        axum::Json(serde_json::json!([]))
    }
    let app = axum::Router::new()
        .fallback(record)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_token_never_reaches_a_host_it_was_not_set_for() {
    let (home, home_seen) = recording_upstream().await;
    let (elsewhere, elsewhere_seen) = recording_upstream().await;
    let store = Store::sqlite();
    let server = Server::start_with(
        &store,
        &[
            "--aifactory-url",
            &home,
            "--upstream-token",
            "secret-token",
            "--poll-interval-seconds",
            "0",
        ],
        &[],
    )
    .unwrap();
    let refresh = || server.http.post(server.url("/api/refresh")).send();
    assert_eq!(refresh().await.unwrap().status().as_u16(), 200);
    {
        let seen = home_seen.lock().unwrap();
        assert!(!seen.is_empty(), "the configured host was called");
        assert!(
            seen.iter()
                .all(|a| a.as_deref() == Some("Bearer secret-token")),
            "{seen:?}"
        );
    }
    // Re-pointed at another origin: probes and polls go there without the token.
    let put = server
        .http
        .put(server.url("/api/services/aifactory"))
        .json(&serde_json::json!({ "url": elsewhere }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    assert_eq!(refresh().await.unwrap().status().as_u16(), 200);
    let seen = elsewhere_seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the new host was called");
    assert!(seen.iter().all(Option::is_none), "a token leaked: {seen:?}");
}

/// A stand-in AIFactory for one tenant: lists one task (`task`, working on `issue`),
/// answers a recover, and records each request's method, path and `Authorization`.
async fn tenant_aifactory(
    task: &'static str,
    issue: u64,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>,
) {
    use axum::extract::{Request, State};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;
    let seen: Seen = Default::default();
    let listed = serde_json::json!([{
        "id": task, "status": "running", "github_issue": issue, "title": format!("Task {task}"),
    }]);
    let app = axum::Router::new()
        .fallback(move |State(seen): State<Seen>, req: Request| {
            let listed = listed.clone();
            async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                let line = format!("{} {}", req.method(), req.uri().path());
                seen.lock().unwrap().push((line.clone(), auth));
                if line == "GET /api/tasks" {
                    axum::Json(listed)
                } else {
                    axum::Json(serde_json::json!({"success": true}))
                }
            }
        })
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn each_tenant_reads_and_steers_only_its_own_upstreams() {
    let (a_url, a_seen) = tenant_aifactory("a-1", 701).await;
    let (b_url, b_seen) = tenant_aifactory("b-1", 702).await;
    let store = Store::sqlite();
    let all = "read,write,approve,admin";
    let a = store.create_key(all, None);
    let b = store.create_key(all, Some("beta"));
    let b_writer = store.create_key("read,write", Some("beta"));
    let server = Server::start_with(
        &store,
        &[
            "--aifactory-url",
            &a_url,
            "--upstream-token",
            "tok-a",
            "--poll-interval-seconds",
            "0",
        ],
        &[],
    )
    .unwrap();
    let send = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut req = server
            .http
            .request(method, server.url(path))
            .header("x-api-key", key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                text,
            )
        }
    };
    let aifactory = |list: &Value| {
        list["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == "aifactory")
            .unwrap()
            .clone()
    };

    // The start flags configure the default tenant only.
    let (_, mine, _) = send(reqwest::Method::GET, "/api/services", &a, None).await;
    assert_eq!(aifactory(&mine)["url"], a_url.as_str());
    assert_eq!(aifactory(&mine)["token_set"], true);
    let (_, theirs, _) = send(reqwest::Method::GET, "/api/services", &b, None).await;
    assert_eq!(aifactory(&theirs)["configured"], false, "{theirs}");
    assert!(aifactory(&theirs)["url"].is_null());

    // A write key cannot change beta's services; beta's admin can, with a token.
    let put = serde_json::json!({"url": b_url, "token": "tok-b"});
    let (status, _, _) = send(
        reqwest::Method::PUT,
        "/api/services/aifactory",
        &b_writer,
        Some(put.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, view, text) = send(
        reqwest::Method::PUT,
        "/api/services/aifactory",
        &b,
        Some(put),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(view["token_set"], true);
    assert!(!text.contains("tok-b"), "a token was served back: {text}");
    let (_, theirs, text) = send(reqwest::Method::GET, "/api/services", &b, None).await;
    assert_eq!(aifactory(&theirs)["url"], b_url.as_str());
    assert!(!text.contains("tok-"), "a token was served: {text}");
    let (_, mine, _) = send(reqwest::Method::GET, "/api/services", &a, None).await;
    assert_eq!(
        aifactory(&mine)["url"],
        a_url.as_str(),
        "beta's change reached the default tenant"
    );

    // Each tenant's poll reads its own upstream into its own items.
    for key in [&a, &b] {
        let (status, _, text) = send(reqwest::Method::POST, "/api/refresh", key, None).await;
        assert_eq!(status, 200, "{text}");
    }
    let item = |key: &str, n: &str| {
        let path = format!("/api/workitems/{n}");
        let key = key.to_owned();
        let get = send(reqwest::Method::GET, &path, &key, None);
        async move { get.await.0 }
    };
    assert_eq!(item(&a, "701").await, 200);
    assert_eq!(
        item(&a, "702").await,
        404,
        "beta's task landed in the default tenant"
    );
    assert_eq!(item(&b, "702").await, 200);
    assert_eq!(
        item(&b, "701").await,
        404,
        "the default tenant's task landed in beta"
    );

    // A confirmed action goes to the acting tenant's upstream only.
    let stuck = (chrono::Utc::now() - chrono::Duration::minutes(90)).to_rfc3339();
    let ev = common::event("b-stuck", "703", "aifactory", "b-9", "stuck", &stuck);
    let (status, _, text) = send(
        reqwest::Method::POST,
        "/api/events/completion",
        &b,
        Some(ev),
    )
    .await;
    assert!(status == 200 || status == 202, "{text}");
    let proposal = serde_json::json!({"kind": "recover", "correlation_key": "703"});
    let (status, action, text) = send(
        reqwest::Method::POST,
        "/api/actions/propose",
        &b,
        Some(proposal),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let confirm = format!("/api/actions/{}/confirm", action["id"].as_str().unwrap());
    let (status, done, text) = send(reqwest::Method::POST, &confirm, &b, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(done["action"]["status"], "executed", "{done}");

    let a_seen = a_seen.lock().unwrap().clone();
    let b_seen = b_seen.lock().unwrap().clone();
    assert!(
        b_seen
            .iter()
            .any(|(line, _)| line == "POST /api/tasks/b-9/recover"),
        "{b_seen:?}"
    );
    assert!(
        a_seen.iter().all(|(line, _)| line.starts_with("GET ")),
        "beta's action reached the default tenant's upstream: {a_seen:?}"
    );
    assert!(
        a_seen
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer tok-a")),
        "{a_seen:?}"
    );
    assert!(
        b_seen
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer tok-b")),
        "{b_seen:?}"
    );
}

#[tokio::test]
async fn a_token_set_through_the_api_stays_with_its_origin_and_survives_a_restart() {
    let (home, home_seen) = recording_upstream().await;
    let (elsewhere, elsewhere_seen) = recording_upstream().await;
    let store = Store::sqlite();
    let admin = store.create_key("read,write,admin", None);
    let args = ["--poll-interval-seconds", "0"];
    let server = Server::start_with(&store, &args, &[]).unwrap();
    let put = |server: &Server, body: Value| {
        server
            .http
            .put(server.url("/api/services/pfactory"))
            .header("x-api-key", &admin)
            .json(&body)
            .send()
    };
    let refresh = |server: &Server| {
        server
            .http
            .post(server.url("/api/refresh"))
            .header("x-api-key", &admin)
            .send()
    };
    let r = put(
        &server,
        serde_json::json!({"url": home, "token": "tok-home"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Same origin, no token given: the token stays.
    let r = put(&server, serde_json::json!({"url": format!("{home}/")}))
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token_set"], true);
    server.terminate();

    let server = Server::start_with(&store, &args, &[]).unwrap();
    assert_eq!(refresh(&server).await.unwrap().status().as_u16(), 200);
    {
        let seen = home_seen.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|a| a.as_deref() == Some("Bearer tok-home")),
            "{seen:?}"
        );
    }
    // A new origin without a token: the token is dropped, never sent there.
    let r = put(&server, serde_json::json!({"url": elsewhere}))
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token_set"], false);
    assert_eq!(refresh(&server).await.unwrap().status().as_u16(), 200);
    let seen = elsewhere_seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(Option::is_none), "a token leaked: {seen:?}");
    // The audit chain names both origins and what happened to the token, never the token.
    let (_, audit) = server.get_with("/api/audit?limit=10", Some(&admin)).await;
    let targets: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "service.url_changed")
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets.len(), 3, "{audit}");
    assert_eq!(
        targets[0],
        format!("pfactory: {home} -> {elsewhere}; token dropped")
    );
    assert_eq!(targets[2], format!("pfactory: none -> {home}; token set"));
    assert!(!audit.to_string().contains("tok-home"));
}

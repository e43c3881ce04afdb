//! The HTTP API and CLI, driven over the wire against the built binary.

mod common;

use common::{Server, Store, event};
use serde_json::{Value, json};

const T0: &str = "2026-11-01T10:00:00Z";

fn problem_field(body: &Value) -> Option<&str> {
    body.get("field").and_then(Value::as_str)
}

#[tokio::test]
async fn an_event_is_accepted_once_and_kept_exactly_as_sent() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    // Odd spacing, field order and an unknown field must all survive.
    let raw = r#"{ "status":"running","service":"aifactory","task_id":"t-1","phase":null,"correlation_key":"142","time":"2026-11-01T10:00:00Z","id":"ev-1","x_custom":{"keep":[1,2]} }"#;
    let (status, body) = server.post_raw("/api/events/completion", raw, None).await;
    assert_eq!(status, 202, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"status": "accepted", "correlation_key": "142"})
    );

    let (status, body) = server.post_raw("/api/events", raw, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "duplicate"
    );

    let (status, item) = server.get("/api/workitems/142").await;
    assert_eq!(status, 200);
    assert_eq!(item["stages"]["code"]["status"], "running");
    assert_eq!(item["stages"]["code"]["status_class"], "running");
    assert_eq!(item["stages"]["code"]["proof"], "not_applicable");
    assert_eq!(item["event_count"], 1);
    assert!(item["liveness"]["stalled"].is_boolean());

    let text = reqwest::get(server.url("/api/workitems/142/timeline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(raw), "timeline lost the exact text: {text}");
    let timeline: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(timeline["event_count"], 1);
    assert_eq!(timeline["events"][0]["event"]["x_custom"]["keep"][1], 2);
}

#[tokio::test]
async fn a_batch_answers_in_order_and_synthetic_keys_merge_into_the_issue() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let mut linked = event(
        "b2",
        "af-77",
        "aifactory",
        "77",
        "done",
        "2026-11-01T10:05:00Z",
    );
    linked["correlation"] = json!({"issue_number": 9});
    let batch = json!([
        event("b1", "af-77", "aifactory", "77", "running", T0),
        linked,
        event("b1", "af-77", "aifactory", "77", "running", T0),
    ]);
    let (status, body) = server
        .post("/api/events/completion", &batch.to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    let statuses: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "accepted", "duplicate"]);
    assert_eq!(body[1]["correlation_key"], "9");

    let (status, item) = server.get("/api/workitems/af-77").await;
    assert_eq!(status, 200, "the old key resolves as an alias");
    assert_eq!(item["correlation_key"], "9");
    assert!(
        item["aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("af-77"))
    );
    assert_eq!(item["stages"]["code"]["status_class"], "done");
}

#[tokio::test]
async fn every_bad_input_is_refused_with_its_field_and_stores_nothing() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let good = event("g1", "1", "pfactory", "s1", "running", T0);
    assert_eq!(
        server
            .post("/api/events/completion", &good.to_string())
            .await
            .0,
        202
    );

    let mut cases: Vec<(String, u16, Option<&str>)> = vec![
        ("{\"id\": ".into(), 400, None),
        ("not json at all".into(), 400, None),
        ("[]".into(), 400, None),
    ];
    let without = |field: &str| {
        let mut e = event("x", "2", "aifactory", "t", "done", T0);
        e.as_object_mut().unwrap().remove(field);
        e.to_string()
    };
    cases.push((without("status"), 422, Some("status")));
    cases.push((without("correlation_key"), 422, Some("correlation_key")));
    cases.push((without("time"), 422, Some("time")));
    cases.push((without("task_id"), 422, Some("task_id")));
    let mut bad_time = event("x", "2", "aifactory", "t", "done", "yesterday");
    cases.push((bad_time.to_string(), 422, Some("time")));
    bad_time["time"] = json!(T0);
    bad_time["service"] = json!("zfactory");
    cases.push((bad_time.to_string(), 422, Some("service")));
    let long_key = event("x", &"k".repeat(129), "aifactory", "t", "done", T0);
    cases.push((long_key.to_string(), 422, Some("correlation_key")));
    let batch = json!([
        event("y1", "3", "aifactory", "t", "done", T0),
        json!({"id": "y2"})
    ]);
    cases.push((batch.to_string(), 422, Some("[1].correlation_key")));
    let padding = "p".repeat(1024 * 1024);
    let mut huge = event("h", "4", "aifactory", "t", "done", T0);
    huge["pad"] = json!(padding);
    cases.push((huge.to_string(), 413, None));
    let many: Vec<Value> = (0..1001)
        .map(|i| event(&format!("m{i}"), "5", "aifactory", "t", "done", T0))
        .collect();
    cases.push((Value::Array(many).to_string(), 413, None));

    for (body, want, field) in cases {
        let resp = server
            .http
            .post(server.url("/api/events/completion"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            want,
            "for {}",
            &body[..body.len().min(120)]
        );
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "for {}",
            &body[..body.len().min(120)]
        );
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], want);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        if let Some(field) = field {
            assert_eq!(problem_field(&problem), Some(field), "{problem}");
        }
    }

    let (_, list) = server.get("/api/workitems").await;
    assert_eq!(
        list["count"], 1,
        "only the good event's item exists: {list}"
    );
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("cfactory_events_total{result=\"accepted\",tenant=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("cfactory_events_total{result=\"rejected\",tenant=\"default\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_list_filters_counts_and_pages_newest_first() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let mut batch = Vec::new();
    for i in 0..7 {
        let status = if i % 2 == 0 { "running" } else { "done" };
        batch.push(event(
            &format!("l{i}"),
            &format!("{}", 100 + i),
            "aifactory",
            &format!("t{i}"),
            status,
            &format!("2026-11-01T10:0{i}:00Z"),
        ));
    }
    let (status, _) = server
        .post("/api/events", &Value::Array(batch).to_string())
        .await;
    assert_eq!(status, 202);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/workitems?limit=3&cursor={}", urlencode(c)),
            None => "/api/workitems?limit=3".into(),
        };
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["count"], 7);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["correlation_key"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["106", "105", "104", "103", "102", "101", "100"]);

    let (_, running) = server.get("/api/workitems?status=running&stage=code").await;
    assert_eq!(running["count"], 4);
    let (_, text) = server
        .get("/api/workitems?q=10&service=aifactory&limit=100000")
        .await;
    assert_eq!(text["count"], 7);
    let (_, none) = server.get("/api/workitems?service=tfactory").await;
    assert_eq!(none["count"], 0);

    for (query, field) in [
        ("status=green", "status"),
        ("stage=deploy", "stage"),
        ("service=x", "service"),
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
    ] {
        let (status, problem) = server.get(&format!("/api/workitems?{query}")).await;
        assert_eq!(status, 422, "{query}: {problem}");
        assert_eq!(problem_field(&problem), Some(field), "{query}");
    }
    let (status, _) = server.get("/api/workitems/999").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/workitems/999/timeline").await;
    assert_eq!(status, 404);
    let (status, rows) = server.get("/api/usage?group_by=model").await;
    assert_eq!(status, 200);
    assert!(rows.is_array());
    let (status, problem) = server.get("/api/usage?group_by=colour").await;
    assert_eq!(status, 422);
    assert_eq!(problem_field(&problem), Some("group_by"));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn usage_sums_per_group() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let mut e = event("u1", "12", "aifactory", "t1", "done", T0);
    e["usage"] = json!({"input_tokens": 100, "output_tokens": 20, "total_tokens": 120, "cost_usd": 0.5, "model": "m-1"});
    let (status, body) = server.post("/api/events", &e.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let (_, rows) = server.get("/api/usage?group_by=service").await;
    assert_eq!(rows[0]["key"], "aifactory", "{rows}");
    assert_eq!(rows[0]["total_tokens"], 120);
    assert_eq!(rows[0]["cost_usd"], 0.5);
    let (_, item) = server.get("/api/workitems/12").await;
    assert_eq!(item["usage_total"]["total_tokens"], 120);
}

#[tokio::test]
async fn keys_end_open_mode_scope_requests_and_isolate_tenants() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let e = event("k1", "50", "aifactory", "t", "running", T0).to_string();
    assert_eq!(server.post("/api/events", &e).await.0, 202, "open mode");

    let ingest = store.create_key("ingest", None);
    assert!(ingest.starts_with("cfk_") && ingest.len() >= 36, "{ingest}");
    let reader = store.create_key("read", None);
    let other = store.create_key("read,ingest", Some("acme"));

    // The first key ended open mode at once.
    let (status, problem) = server.get("/api/workitems").await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(server.post("/api/events", &e).await.0, 401);
    let (status, _) = server.get_with("/api/workitems", Some("cfk_wrong")).await;
    assert_eq!(status, 401);

    let e2 = event("k2", "50", "aifactory", "t", "done", "2026-11-01T11:00:00Z").to_string();
    let (status, _) = server.post_raw("/api/events", &e2, Some(&ingest)).await;
    assert_eq!(status, 202);
    let (status, _) = server.get_with("/api/workitems", Some(&ingest)).await;
    assert_eq!(status, 403, "ingest scope cannot read");
    let (status, _) = server.post_raw("/api/events", &e2, Some(&reader)).await;
    assert_eq!(status, 403, "read scope cannot ingest");

    // ?token= works on the ingress only.
    let e3 = event("k3", "51", "aifactory", "t", "done", T0).to_string();
    let (status, _) = server
        .post_raw(&format!("/api/events/completion?token={ingest}"), &e3, None)
        .await;
    assert_eq!(status, 202);
    let (status, _) = server.get(&format!("/api/workitems?token={reader}")).await;
    assert_eq!(status, 401);

    let (status, item) = server.get_with("/api/workitems/50", Some(&reader)).await;
    assert_eq!(status, 200);
    assert_eq!(item["stages"]["code"]["status_class"], "done");

    // Another tenant sees none of it, and its own writes stay its own.
    let (status, _) = server.get_with("/api/workitems/50", Some(&other)).await;
    assert_eq!(status, 404);
    let (_, list) = server.get_with("/api/workitems", Some(&other)).await;
    assert_eq!(list["count"], 0);
    let (status, _) = server.post_raw("/api/events", &e3, Some(&other)).await;
    assert_eq!(status, 202, "the same id is new in another tenant");

    // Keys never show in the log.
    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains(&ingest[4..]), "a key reached the log");

    // Revoking takes effect at once.
    let (_, listing, _) = store.cli(&["keys", "list"], None);
    let id = listing
        .lines()
        .find(|l| l.contains(" read ") || l.contains(" read  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (status, _, err) = store.cli(&["keys", "revoke", &id], None);
    assert!(status.success(), "{err}");
    let (status, _) = server.get_with("/api/workitems", Some(&reader)).await;
    assert_eq!(status, 401);
    let (status, _, _) = store.cli(&["keys", "revoke", &id], None);
    assert!(!status.success(), "a second revoke reports no active key");
}

#[tokio::test]
async fn a_public_bind_without_keys_refuses_to_start() {
    let store = Store::sqlite();
    let log = Server::start_with(&store, &["--api-addr", "0.0.0.0:0"], &[])
        .err()
        .expect("must refuse");
    assert!(log.contains("cfactory keys create"), "{log}");

    // With a key it starts.
    store.create_key("admin", None);
    let secret = [("CFACTORY_AUDIT_HMAC_SECRET", "a-long-enough-shared-secret")];
    let server = Server::start_with(&store, &["--api-addr", "0.0.0.0:0"], &secret).unwrap();
    assert_eq!(server.get("/health").await.0, 200);
}

#[tokio::test]
async fn seeded_keys_work_and_bad_seeds_stop_the_start() {
    let store = Store::sqlite();
    let secret = "cfk_seededseededseededseededseeded";
    let server = Server::start_with(
        &store,
        &[],
        &[("CFACTORY_API_KEYS", &format!("{secret}:read"))],
    )
    .unwrap();
    assert_eq!(server.get_with("/api/workitems", Some(secret)).await.0, 200);
    assert_eq!(server.get("/api/workitems").await.0, 401);
    drop(server);
    let log = Server::start_with(&store, &[], &[("CFACTORY_API_KEYS", "cfk_x:fly")])
        .err()
        .expect("a bad seed stops the start");
    assert!(log.contains("CFACTORY_API_KEYS"), "{log}");
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_committed_events_survive() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let e = event("s1", "60", "tfactory", "spec", "running", T0).to_string();
    assert_eq!(server.post("/api/events", &e).await.0, 202);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = Server::start(&store);
    let (status, item) = server.get("/api/workitems/60").await;
    assert_eq!(status, 200);
    assert_eq!(item["stages"]["test"]["status"], "running");
}

#[tokio::test]
async fn probes_metrics_and_the_cockpit_address_answer() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    assert_eq!(server.get("/health").await.1["status"], "ok");
    assert_eq!(server.get("/ready").await.1["status"], "ready");
    let page = reqwest::get(format!("{}/", server.ui)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("CFactory"));
    let list = reqwest::get(format!("{}/api/workitems", server.ui))
        .await
        .unwrap();
    assert_eq!(list.status(), 200, "the cockpit address serves the API too");
    let (status, problem) = server.get("/api/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(problem["status"], 404);
}

/// The value of the unlabelled series `name` in a Prometheus exposition.
fn series(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_report_the_read_models_items_and_their_memory() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let metrics = |server: &'_ Server| {
        let url = server.url("/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let empty = metrics(&server).await;
    assert_eq!(
        series(&empty, "cfactory_read_model_items"),
        Some(0),
        "{empty}"
    );
    assert_eq!(series(&empty, "cfactory_read_model_item_bytes"), Some(0));
    let mut batch = Vec::new();
    for i in 0..40 {
        let mut e = event(
            &format!("m{i}"),
            &format!("{}", 300 + i),
            "aifactory",
            "t",
            "running",
            "2026-11-01T10:00:00Z",
        );
        e["title"] = json!("x".repeat(500));
        batch.push(e);
    }
    assert_eq!(
        server
            .post("/api/events", &Value::Array(batch).to_string())
            .await
            .0,
        202
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let full = loop {
        let text = metrics(&server).await;
        if series(&text, "cfactory_read_model_items") == Some(40) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let per_item = series(&full, "cfactory_read_model_item_bytes").unwrap();
    // Each item holds a 500-character title besides its keys, stages and ids.
    assert!((700..20_000).contains(&per_item), "{per_item}");
    assert_eq!(
        series(&full, "cfactory_read_model_bytes"),
        Some(40 * per_item)
    );
    assert_eq!(
        series(&full, "cfactory_read_model_unreadable_items"),
        Some(0)
    );
    assert!(series(&full, "process_resident_memory_bytes").unwrap() > 1 << 20);
}

#[tokio::test]
async fn the_openapi_document_covers_the_published_contract_paths() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    // The published contract, checked in beside this test.
    let yaml = include_str!("contracts/cfactory.openapi.yaml");
    let mut checked = 0;
    let mut current: Option<&str> = None;
    for line in yaml.lines() {
        if let Some(path) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            current = Some(&line[2..3 + path.len()]);
            continue;
        }
        if !line.starts_with(' ') {
            current = None;
        }
        let method = line
            .strip_prefix("    ")
            .and_then(|m| m.strip_suffix(':'))
            .filter(|m| ["get", "post", "put", "delete", "patch"].contains(m));
        if let (Some(path), Some(method)) = (current, method) {
            let op = paths
                .get(path)
                .and_then(|p| p.get(method))
                .unwrap_or_else(|| panic!("/openapi.json lacks {method} {path}"));
            assert!(op.get("responses").is_some());
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "every published operation was checked");
}

/// Every `.route(path, method(handler)…)` the server's source declares, as (method, path).
fn declared_routes() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files = vec![std::path::PathBuf::from(dir)];
    let mut routes = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + 7..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let Some(end) = rest.find('"') else { continue };
            let route = &rest[..end];
            let call = &rest[end..rest.find(";\n").unwrap_or(rest.len()).min(end + 400)];
            let call = &call[..call.find(".route(").unwrap_or(call.len())];
            for method in ["get", "post", "put", "delete", "patch"] {
                if call.contains(&format!("{method}(")) {
                    routes.push((method.to_owned(), route.to_owned()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_server_declares() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let routes = declared_routes();
    assert!(
        routes.len() >= 35,
        "the route scan found too few: {routes:?}"
    );
    let mut missing = Vec::new();
    for (method, path) in &routes {
        let op = &doc["paths"][path.as_str()][method.as_str()];
        if op.is_null() {
            missing.push(format!("{} {path}", method.to_uppercase()));
            continue;
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            !responses.is_empty(),
            "{method} {path} documents no response"
        );
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            for code in ["401", "403"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes /openapi.json does not describe: {missing:?}"
    );
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            let ops = item.as_object().unwrap().keys();
            ops.filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "/openapi.json describes an operation the server does not declare"
    );
}

#[tokio::test]
async fn the_ingest_command_replays_files_and_reports_bad_lines() {
    let store = Store::sqlite();
    let mut lines: Vec<String> = (0..5)
        .map(|i| event(&format!("n{i}"), "70", "aifactory", "t", "running", T0).to_string())
        .collect();
    lines.insert(2, r#"{"id":"bad","service":"aifactory"}"#.into());
    let text = lines.join("\n");
    let (status, _, err) = store.cli(&["ingest", "-"], Some(&text));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("5 accepted, 0 duplicate, 1 rejected"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    std::fs::write(&file, format!("[{}]", lines[0])).unwrap();
    let (status, _, err) = store.cli(&["ingest", file.to_str().unwrap()], None);
    assert!(status.success(), "{err}");
    assert!(err.contains("0 accepted, 1 duplicate"), "{err}");

    let (status, _, err) = store.cli(&["ingest", "/nonexistent/file.json"], None);
    assert!(!status.success());
    assert!(err.contains("/nonexistent/file.json"), "{err}");

    let server = Server::start(&store);
    let (_, item) = server.get("/api/workitems/70").await;
    assert_eq!(item["event_count"], 5);
}

#[tokio::test]
async fn postgres_serves_the_same_api_and_answers_503_when_the_store_is_gone() {
    let store = Store::postgres().await;
    let (status, _, err) = store.cli(&["migrate"], None);
    assert!(status.success(), "{err}");
    let server = Server::start(&store);
    let e = event("p1", "80", "aifactory", "t", "running", T0).to_string();
    assert_eq!(server.post("/api/events", &e).await.0, 202);
    assert_eq!(server.post("/api/events", &e).await.0, 200);
    let (_, item) = server.get("/api/workitems/80").await;
    assert_eq!(item["event_count"], 1);

    // Take the database away under the running server.
    let admin_url = cfactory_postgres::testing::server_url().unwrap();
    let db_name = store.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db_name)
        .execute(&mut admin)
        .await
        .unwrap();

    let e2 = event("p2", "81", "aifactory", "t", "running", T0).to_string();
    let resp = server
        .http
        .post(server.url("/api/events"))
        .header("content-type", "application/json")
        .body(e2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        503,
        "{}",
        server.log.lock().unwrap().join("\n")
    );
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(server.get("/ready").await.0, 503);

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    // Back up: nothing of the refused event was claimed, so it is new now.
    let mut status = 0;
    for _ in 0..50 {
        status = server.post("/api/events", &e2).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_browser_session_stands_in_for_the_key_and_ends_on_sign_out() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let (status, open) = server.get("/api/session").await;
    assert_eq!(status, 200);
    assert_eq!(open["open_mode"], true);

    let key = store.create_key("read,write", None);
    assert_eq!(server.get("/api/session").await.0, 401);
    let http = reqwest::Client::new();
    let wrong = http
        .post(server.url("/api/session"))
        .json(&json!({"key": "cfk_wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let ok = http
        .post(server.url("/api/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let set = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(&key), "the cookie must not carry the key");
    let cookie = set.split(';').next().unwrap().to_owned();
    let who: Value = ok.json().await.unwrap();
    assert_eq!(who["scopes"], json!(["read", "write"]));

    let with_cookie = |method: reqwest::Method, path: &str| {
        http.request(method, server.url(path))
            .header("cookie", cookie.clone())
    };
    let r = with_cookie(reqwest::Method::GET, "/api/workitems")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = with_cookie(reqwest::Method::POST, "/api/refresh")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a cross-site write with the cookie is refused"
    );
    let r = with_cookie(reqwest::Method::POST, "/api/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let out = with_cookie(reqwest::Method::DELETE, "/api/session")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let r = with_cookie(reqwest::Method::GET, "/api/workitems")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// Signs in with `key` and returns the session cookie (`name=value`).
async fn sign_in(server: &Server, key: &str) -> String {
    let ok = reqwest::Client::new()
        .post(server.url("/api/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let set = ok.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(server: &Server, path: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_browser_session_outlives_a_restart_until_its_key_is_revoked() {
    let store = Store::sqlite();
    let key = store.create_key("read", None);
    let server = Server::start(&store);
    let cookie = sign_in(&server, &key).await;
    assert_eq!(
        get_with_cookie(&server, "/api/workitems", &cookie).await,
        200
    );
    assert!(server.terminate().success());

    let server = Server::start(&store);
    assert_eq!(
        get_with_cookie(&server, "/api/workitems", &cookie).await,
        200,
        "the session is kept in the store"
    );
    let forged = format!("{}x", cookie);
    assert_eq!(
        get_with_cookie(&server, "/api/workitems", &forged).await,
        401
    );

    let (_, listed, _) = store.cli(&["keys", "list"], None);
    let id = listed
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap_or_else(|| panic!("no key id in: {listed}"))
        .to_owned();
    let (status, _, err) = store.cli(&["keys", "revoke", &id], None);
    assert!(status.success(), "{err}");
    assert_eq!(
        get_with_cookie(&server, "/api/workitems", &cookie).await,
        401,
        "revoking the key ends its sessions"
    );
}

#[tokio::test]
async fn a_browser_session_made_by_one_process_is_honoured_and_ended_by_another() {
    let store = Store::postgres().await;
    let key = store.create_key("read,write", None);
    let one = Server::start(&store);
    let two = Server::start(&store);
    let cookie = sign_in(&one, &key).await;
    assert_eq!(get_with_cookie(&two, "/api/session", &cookie).await, 200);

    let out = reqwest::Client::new()
        .delete(two.url("/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(
        get_with_cookie(&one, "/api/workitems", &cookie).await,
        401,
        "signing out on one process ends the session on every process"
    );
}

#[tokio::test]
async fn the_cockpit_address_serves_the_ui_and_its_routes() {
    let store = Store::sqlite();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>cockpit app</html>").unwrap();
    std::fs::write(dir.path().join("assets/app-1.js"), "export {}").unwrap();
    let server = Server::start_with(
        &store,
        &[],
        &[("CFACTORY_UI_DIR", dir.path().to_str().unwrap())],
    )
    .unwrap();
    for path in ["/", "/pipeline", "/services"] {
        let page = reqwest::get(format!("{}{path}", server.ui)).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert!(page.text().await.unwrap().contains("cockpit app"), "{path}");
    }
    let js = reqwest::get(format!("{}/assets/app-1.js", server.ui))
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let missing = reqwest::get(format!("{}/api/nope", server.ui))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn hostile_values_are_refused_at_the_door_and_nothing_is_stored() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let cases = [
        ("h1", "usage", json!({"cost_usd": 1e308}), "usage.cost_usd"),
        (
            "h2",
            "usage",
            json!({"total_tokens": 2_000_000_000_000u64}),
            "usage.total_tokens",
        ),
        ("h3", "time", json!("9999-12-31T23:59:59Z"), "time"),
        ("h4", "time", json!(soon), "time"),
        ("h5", "time", json!("1970-01-01T00:00:00Z"), "time"),
        (
            "h6",
            "correlation_key",
            json!("142\u{200B}"),
            "correlation_key",
        ),
        ("h7", "task_id", json!(".."), "task_id"),
    ];
    for (id, field, value, named) in cases {
        let mut e = event(id, "880", "aifactory", "t-880", "running", T0);
        e[field] = value;
        let (status, problem) = server.post("/api/events", &e.to_string()).await;
        assert_eq!(status, 422, "{id}: {problem}");
        assert_eq!(problem["field"], named, "{id}: {problem}");
    }
    // In a batch, the field names the event; nothing of the batch is stored.
    let good = event("h8", "881", "aifactory", "t-881", "running", T0);
    let mut bad = event("h9", "881", "aifactory", "t-881", "running", T0);
    bad["time"] = json!(soon);
    let (status, problem) = server
        .post("/api/events", &json!([good, bad]).to_string())
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "[1].time");
    assert_eq!(server.get("/api/workitems/880").await.0, 404);
    assert_eq!(server.get("/api/workitems/881").await.0, 404);
    // Within the skew and at the bounds: accepted.
    let mut fine = event("h10", "882", "aifactory", "t-882", "running", T0);
    fine["usage"] = json!({"total_tokens": 1_000_000_000_000u64, "cost_usd": 1e6});
    fine["time"] = json!((chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339());
    fine["title"] = json!("x".repeat(5_000));
    assert_eq!(server.post("/api/events", &fine.to_string()).await.0, 202);
    let (_, item) = server.get("/api/workitems/882").await;
    assert_eq!(
        item["title"].as_str().unwrap().len(),
        1_000,
        "a long title is cut"
    );
    assert_eq!(item["usage_total"]["cost_usd"], 1e6);
}

#[tokio::test]
async fn the_clock_skew_allowance_is_configurable() {
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--max-clock-skew-seconds", "86400"], &[]).unwrap();
    let mut e = event("sk1", "883", "aifactory", "t-883", "running", T0);
    e["time"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    assert_eq!(server.post("/api/events", &e.to_string()).await.0, 202);
}

#[tokio::test]
async fn an_event_without_an_id_is_named_by_its_content_so_a_retry_is_a_duplicate() {
    let store = Store::sqlite();
    let server = Server::start(&store);
    let mut e = event("x", "884", "aifactory", "t-884", "running", T0);
    e.as_object_mut().unwrap().remove("id");
    e["usage"] = json!({"total_tokens": 500, "cost_usd": 0.5});
    let (status, answer) = server.post("/api/events", &e.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    // The same body again, pretty-printed: the same content, so the same id.
    let pretty = serde_json::to_string_pretty(&e).unwrap();
    let (status, answer) = server.post("/api/events", &pretty).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "duplicate");
    // A changed body is a new event.
    let mut next = e.clone();
    next["status"] = json!("done");
    next["phase"] = json!("done");
    assert_eq!(server.post("/api/events", &next.to_string()).await.0, 202);
    let (_, item) = server.get("/api/workitems/884").await;
    assert_eq!(item["event_count"], 2, "{item}");
    assert_eq!(item["usage_total"]["total_tokens"], 500, "charged once");
    assert_eq!(item["flags"]["missing_event_id"], 2, "{item}");
    let (_, timeline) = server.get("/api/workitems/884/timeline").await;
    let text = timeline.to_string();
    assert!(text.contains("sha256:"), "the derived id is shown: {text}");
}

#[tokio::test]
async fn a_request_past_the_deadline_is_answered_503_and_the_server_goes_on() {
    // A service that accepts connections and never answers: the URL change's probe hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let store = Store::sqlite();
    let server = Server::start_with(&store, &["--request-timeout-seconds", "1"], &[]).unwrap();
    let started = std::time::Instant::now();
    let answer = server
        .http
        .put(server.url("/api/services/aifactory"))
        .json(&json!({"url": format!("http://127.0.0.1:{port}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "https://cfactory.dev/problems/timed-out");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "answered at the deadline, not at the probe's own timeout"
    );
    let (status, services) = server.get("/api/services").await;
    assert_eq!(status, 200, "the server goes on answering");
    assert!(
        !services.to_string().contains(&port.to_string()),
        "{services}"
    );
    drop(silent);
}

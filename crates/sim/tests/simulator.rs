//! Black-box tests of the simulator: its REST and WebSocket surfaces as a client sees
//! them, and the completion envelopes a webhook receiver gets.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cfactory_sim::{Scenario, SimConfig, SimHandle, Simulator, planned_completion_times};
use futures::StreamExt;
use serde_json::{Value, json};

type Received = Arc<Mutex<Vec<Value>>>;

/// A tiny webhook receiver. With `fail_first`, every id's first delivery gets 503.
async fn receiver(fail_first: bool) -> (String, Received, Arc<Mutex<Vec<String>>>) {
    let got: Received = Arc::default();
    let auth: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (g, a) = (got.clone(), auth.clone());
    let app = Router::new().route(
        "/api/events/completion",
        post(
            move |headers: HeaderMap, axum::Json(v): axum::Json<Value>| {
                let (g, a, seen) = (g.clone(), a.clone(), seen.clone());
                async move {
                    let id = v["id"].as_str().unwrap_or_default().to_owned();
                    if fail_first && seen.lock().unwrap().insert(id) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    if let Some(h) = headers.get("authorization") {
                        a.lock()
                            .unwrap()
                            .push(h.to_str().unwrap_or_default().to_owned());
                    }
                    g.lock().unwrap().push(v);
                    StatusCode::ACCEPTED
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/events/completion",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, auth)
}

fn fast(config: SimConfig) -> SimConfig {
    SimConfig {
        speed: 20.0,
        ..config
    }
}

async fn get(url: &str) -> (StatusCode, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_json(url: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn has(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(*f).is_some(), "missing `{f}` in {v}");
    }
}

async fn settled(config: SimConfig) -> SimHandle {
    let sim = Simulator::start(fast(config)).await.unwrap();
    assert!(sim.wait_for_all_scenarios(Duration::from_secs(30)).await);
    sim
}

#[tokio::test]
async fn rest_surfaces_answer_with_the_contract_field_names() {
    let sim = settled(SimConfig::default()).await;

    let (status, list) = get(&format!("{}/api/plan/sessions", sim.pfactory_url)).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = list["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 10);
    for s in sessions {
        has(
            s,
            &[
                "session_id",
                "board_state",
                "github_issue",
                "repo",
                "title",
                "updated_at",
            ],
        );
    }
    let emitted = sessions
        .iter()
        .find(|s| s["board_state"] == "emitted")
        .unwrap();
    let id = emitted["session_id"].as_str().unwrap();
    let (_, detail) = get(&format!("{}/api/plan/sessions/{id}", sim.pfactory_url)).await;
    let children = detail["epic"]["children"].as_array().unwrap();
    assert!(!children.is_empty());
    for c in children {
        has(c, &["number", "title", "depends_on"]);
    }
    assert_eq!(
        detail["emit_result"]["child_numbers"]
            .as_array()
            .unwrap()
            .len(),
        children.len()
    );
    has(
        &detail["review"],
        &[
            "gates_passed",
            "aggregate_score",
            "threshold",
            "lenses",
            "human_approval",
        ],
    );
    for l in detail["review"]["lenses"].as_array().unwrap() {
        has(l, &["lens", "score", "max", "blocking", "findings"]);
    }
    let (status, yaml_list) = get(&format!("{}/api/plans", sim.pfactory_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(yaml_list.as_array().unwrap().len(), sessions.len());
    let (status, _) = get(&format!("{}/api/plans/{id}", sim.pfactory_url)).await;
    assert_eq!(status, StatusCode::OK);

    let (_, tasks) = get(&format!("{}/api/tasks", sim.aifactory_url)).await;
    let tasks = tasks.as_array().unwrap();
    assert!(tasks.len() >= 10);
    let statuses = [
        "backlog",
        "in_progress",
        "ai_review",
        "human_review",
        "done",
        "merged",
        "qa_failed",
    ];
    for t in tasks {
        assert!(
            statuses.contains(&t["status"].as_str().unwrap()),
            "{}",
            t["status"]
        );
        let id = t["id"].as_str().unwrap();
        assert!(id.starts_with("proj:"), "{id}");
        let (status, d) = get(&format!("{}/api/tasks/{id}", sim.aifactory_url)).await;
        assert_eq!(status, StatusCode::OK);
        has(
            &d,
            &[
                "executionProgress",
                "subtasks",
                "branchName",
                "status",
                "updated_at",
                "issue_number",
            ],
        );
        has(
            &d["executionProgress"],
            &[
                "phase",
                "phaseProgress",
                "overallProgress",
                "currentSubtask",
                "message",
            ],
        );
        for st in d["subtasks"].as_array().unwrap() {
            has(
                st,
                &[
                    "id",
                    "title",
                    "status",
                    "depends_on",
                    "started_at",
                    "completed_at",
                ],
            );
        }
    }
    assert!(tasks.iter().any(|t| t["status"] == "qa_failed"));
    let (status, running) = get(&format!("{}/api/tasks/running", sim.aifactory_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(running.is_array());
    let (status, caps) = get(&format!("{}/api/capabilities", sim.aifactory_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(caps["features"]["apply_correction"].as_bool().unwrap());

    let (_, specs) = get(&format!("{}/api/tasks", sim.tfactory_url)).await;
    let specs = specs.as_array().unwrap();
    let lanes = ["unit", "browser", "api", "integration", "mutation"];
    for s in specs {
        has(s, &["spec_id", "status", "subtasks", "verdict"]);
        for st in s["subtasks"].as_array().unwrap() {
            assert!(lanes.contains(&st["lane"].as_str().unwrap()));
        }
    }
    let stuck = specs.iter().find(|s| s["status"] == "stuck").unwrap();
    assert_eq!(stuck["needs_human"], json!(true));
    assert!(
        specs
            .iter()
            .any(|s| s["status"] == "triaged" && s["verdict"]["passed"] == json!(true))
    );
    let id = specs[0]["spec_id"].as_str().unwrap();
    let (status, _) = get(&format!("{}/api/tasks/{id}", sim.tfactory_url)).await;
    assert_eq!(status, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_is_required_when_one_is_set() {
    let sim = Simulator::start(SimConfig {
        token: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for base in [&sim.pfactory_url, &sim.aifactory_url, &sim.tfactory_url] {
        let path = if base == &sim.pfactory_url {
            "/api/plan/sessions"
        } else {
            "/api/tasks"
        };
        let url = format!("{base}{path}");
        assert_eq!(
            client.get(&url).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        let wrong = client.get(&url).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let ok = client.get(&url).bearer_auth("s3cret").send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let legacy = client
            .get(format!("{url}?token=s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(legacy.status(), StatusCode::OK);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn approval_is_refused_until_gates_pass_and_then_emits() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let p = &sim.pfactory_url;
    let (status, body) = post_json(
        &format!("{p}/api/plan/sessions/900-legacy-sso/approve"),
        json!({"approver": "olaf"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, detail) = get(&format!("{p}/api/plan/sessions/900-legacy-sso")).await;
    assert_eq!(detail["review"]["gates_passed"], json!(false));
    assert_eq!(detail["board_state"], "awaiting_approval");

    let (status, _) = post_json(
        &format!("{p}/api/plan/sessions/901-audit-export/approve"),
        json!({"approver": "olaf", "feedback": "ship it"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = get(&format!("{p}/api/plan/sessions")).await;
    let row = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == "901-audit-export")
        .unwrap()
        .clone();
    assert_eq!(row["board_state"], "emitted");
    assert!(row["github_issue"].as_u64().is_some());
    // Approving twice is refused: it is no longer awaiting approval.
    let (status, _) = post_json(
        &format!("{p}/api/plan/sessions/901-audit-export/approve"),
        json!({"approver": "olaf"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    sim.shutdown().await;
}

#[tokio::test]
async fn corrections_need_a_fix_request_and_start_a_new_run() {
    let (url, got, _) = receiver(false).await;
    let sim = settled(SimConfig {
        webhook_url: Some(url),
        ..SimConfig::default()
    })
    .await;
    let a = &sim.aifactory_url;
    let (_, tasks) = get(&format!("{a}/api/tasks?status=done")).await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["usage"]["total_tokens"].as_u64().unwrap() > 0)
        .unwrap()
        .clone();
    let id = task["id"].as_str().unwrap();
    let run = task["run"].as_u64().unwrap();
    let tokens = task["usage"]["total_tokens"].as_u64().unwrap();

    let (status, _) = post_json(
        &format!("{a}/api/tasks/{id}/apply-correction"),
        json!({"source": "cfactory", "confirm": true}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let body =
        json!({"fix_request_md": "Fix the rounding", "source": "cfactory", "confirm": false});
    let (status, preview) = post_json(&format!("{a}/api/tasks/{id}/apply-correction"), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(preview["preview"], json!(true));
    let (_, after_preview) = get(&format!("{a}/api/tasks/{id}")).await;
    assert_eq!(after_preview["run"].as_u64().unwrap(), run);

    let before = got.lock().unwrap().len();
    let body = json!({"fix_request_md": "Fix the rounding", "source": "cfactory", "confirm": true, "correlation_key": task["correlation_key"]});
    let (status, _) = post_json(&format!("{a}/api/tasks/{id}/apply-correction"), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, now) = get(&format!("{a}/api/tasks/{id}")).await;
    assert_eq!(now["run"].as_u64().unwrap(), run + 1);
    assert_eq!(now["status"], "in_progress");
    assert!(now["usage"]["total_tokens"].as_u64().unwrap() < tokens);

    // Busy now: a second correction is refused with 409; merge too (not in review).
    let body = json!({"fix_request_md": "again", "confirm": true});
    let (status, _) = post_json(&format!("{a}/api/tasks/{id}/apply-correction"), body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = post_json(&format!("{a}/api/tasks/{id}/worktree/merge"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The older style: 200 with success false.
    let (status, body) = post_json(&format!("{a}/api/tasks/{id}/recover"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], json!(false));

    // The new run shows up in the next event: an in_progress snapshot for this task.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = got.lock().unwrap()[before..].to_vec();
    assert!(
        events
            .iter()
            .any(|e| e["task_id"] == json!(id) && e["status"] == "in_progress"),
        "{events:?}"
    );
    sim.shutdown().await;
}

#[test]
fn the_default_schedule_covers_every_scenario_within_30_seconds() {
    for seed in 0..25 {
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let times = planned_completion_times(&config);
        assert_eq!(times.len(), 9, "seed {seed}: {times:?}");
        for (scenario, at) in times {
            assert!(
                at <= Duration::from_secs(30),
                "seed {seed}: {scenario:?} at {at:?}"
            );
        }
    }
}

fn required(e: &Value) {
    for f in [
        "id",
        "time",
        "correlation_key",
        "service",
        "task_id",
        "status",
        "phase",
        "specversion",
        "source",
        "type",
    ] {
        assert!(e.get(f).is_some_and(|v| !v.is_null()), "missing {f} in {e}");
    }
}

#[tokio::test]
async fn the_webhook_gets_well_formed_envelopes_for_every_scenario() {
    let (url, got, auth) = receiver(false).await;
    let sim = Simulator::start(fast(SimConfig {
        webhook_url: Some(url),
        webhook_token: Some("hook".into()),
        ..SimConfig::default()
    }))
    .await
    .unwrap();
    assert!(sim.wait_for_all_scenarios(Duration::from_secs(30)).await);
    let stats = sim.stats();
    for s in [
        "happy",
        "handback",
        "stuck",
        "failure",
        "unproven",
        "injection",
        "rekey",
        "retry",
        "out-of-order",
    ] {
        assert!(
            stats.completed.get(s).is_some_and(|n| *n >= 1),
            "{s}: {stats:?}"
        );
    }
    let events = got.lock().unwrap().clone();
    assert!(!events.is_empty());
    assert!(auth.lock().unwrap().iter().all(|a| a == "Bearer hook"));
    for e in &events {
        required(e);
        let service = e["service"].as_str().unwrap();
        assert!(["pfactory", "aifactory", "tfactory"].contains(&service));
        assert_eq!(e["source"], format!("/{service}"));
    }

    let mut ids = BTreeMap::new();
    for e in &events {
        *ids.entry(e["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert!(ids.values().any(|n| *n == 2), "retry: one id twice");

    let rekeyed = events
        .iter()
        .find(|e| e["correlation_key"].as_str().unwrap().starts_with("af-"))
        .expect("an event under an af- key");
    let task = rekeyed["task_id"].clone();
    let linked = events
        .iter()
        .skip_while(|e| *e != rekeyed)
        .find(|e| {
            e["correlation"]["aifactory_task_id"] == task
                && e["correlation"]["issue_number"].is_u64()
        })
        .expect("a later event linking the task to an issue");
    assert_eq!(
        linked["correlation_key"],
        linked["correlation"]["issue_number"].to_string()
    );

    let flagged = events
        .iter()
        .find(|e| e["injection_scan"]["verdict"] == "flagged")
        .unwrap();
    assert!(flagged["injection_scan"]["reason"].is_string());
    let unproven = events
        .iter()
        .find(|e| {
            e["service"] == "aifactory"
                && e["status"] == "done"
                && e["evidence"]["total_tokens"] == 0
        })
        .expect("a build done with zero tokens");
    assert_eq!(unproven["usage"]["total_tokens"], 0);
    assert!(events.iter().any(|e| {
        e["halt_reason"]
            .as_str()
            .is_some_and(|h| h.starts_with("no_evidence"))
    }));
    let pass = events
        .iter()
        .find(|e| e["service"] == "tfactory" && e["evidence"]["verdict"] == "pass")
        .unwrap();
    assert!(pass["evidence"]["tests_executed"].as_u64().unwrap() > 0);
    let done = events
        .iter()
        .find(|e| e["service"] == "aifactory" && e["status"] == "done")
        .unwrap();
    has(
        &done["usage"],
        &[
            "workers",
            "by_provider",
            "by_model",
            "budget",
            "total_tokens",
        ],
    );
    let stuck = events.iter().find(|e| e["status"] == "stuck").unwrap();
    assert_eq!(stuck["needs_human"], json!(true));

    // Out of order: some aifactory ai_review snapshot arrives after its task's done.
    let out_of_order = events.iter().enumerate().any(|(i, e)| {
        e["status"] == "ai_review"
            && events[..i]
                .iter()
                .any(|d| d["task_id"] == e["task_id"] && d["status"] == "done")
    });
    assert!(out_of_order);
    sim.shutdown().await;
}

#[tokio::test]
async fn webhook_deliveries_are_retried_with_the_same_id() {
    let (url, got, _) = receiver(true).await;
    let sim = Simulator::start(fast(SimConfig {
        webhook_url: Some(url),
        scenarios: vec![Scenario::Happy],
        units: Some(1),
        ..SimConfig::default()
    }))
    .await
    .unwrap();
    assert!(sim.wait_for_all_scenarios(Duration::from_secs(30)).await);
    let stats = sim.stats();
    assert_eq!(stats.webhook_failures, 0);
    assert!(stats.events_sent >= 5);
    assert_eq!(got.lock().unwrap().len() as u64, stats.events_sent);
    sim.shutdown().await;
}

async fn sequence(seed: u64) -> Vec<(String, String, String, String)> {
    let (url, got, _) = receiver(false).await;
    let sim = Simulator::start(SimConfig {
        webhook_url: Some(url),
        seed,
        speed: 40.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.wait_for_all_scenarios(Duration::from_secs(30)).await);
    sim.shutdown().await;
    let events = got.lock().unwrap().clone();
    events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("correlation_key"), s("service"), s("status"), s("id"))
        })
        .collect()
}

#[tokio::test]
async fn a_seed_repeats_the_same_sequence() {
    let a = sequence(7).await;
    let b = sequence(7).await;
    let c = sequence(8).await;
    let n = a.len().min(b.len());
    assert!(n > 20);
    assert_eq!(a[..n], b[..n]);
    assert_ne!(a[..n.min(c.len())], c[..n.min(c.len())]);
}

#[tokio::test]
async fn live_feeds_send_typed_frames_and_progress() {
    let sim = Simulator::start(SimConfig {
        speed: 5.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ws = sim.aifactory_url.replace("http://", "ws://");
    let (mut events, _) = tokio_tungstenite::connect_async(format!("{ws}/ws/events"))
        .await
        .unwrap();
    let (mut progress, _) = tokio_tungstenite::connect_async(format!("{ws}/ws/progress"))
        .await
        .unwrap();

    let mut kinds = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while kinds.len() < 3 && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), events.next()).await
        else {
            break;
        };
        let Ok(text) = msg.into_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind = v["type"].as_str().unwrap().to_owned();
        assert!(v["payload"]["taskId"].is_string(), "{v}");
        match kind.as_str() {
            "task:status" => assert!(v["payload"]["status"].is_string()),
            "task:progress" => assert!(v["payload"]["percentage"].is_u64()),
            "task:update" => has(
                &v["payload"]["executionProgress"],
                &["phase", "phaseProgress"],
            ),
            _ => {}
        }
        kinds.insert(kind);
    }
    for k in ["task:status", "task:progress", "task:update"] {
        assert!(kinds.contains(k), "{k} not seen in {kinds:?}");
    }

    let frame = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), progress.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&msg.into_text().unwrap_or_default()) {
            break v;
        }
    };
    assert_eq!(frame["type"], "progress");
    has(
        &frame,
        &[
            "task_id",
            "phase",
            "message",
            "timestamp",
            "subtask",
            "subtask_index",
            "subtask_total",
            "percentage",
        ],
    );
    sim.shutdown().await;
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    sim: cfactory_sim::SimArgs,
}

#[test]
fn the_cli_takes_scenarios_comma_separated_or_repeated() {
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "sim",
        "--scenario",
        "happy,out-of-order",
        "--scenario",
        "out_of_order",
        "--seed",
        "9",
        "--speed",
        "2.5",
        "--pfactory-addr",
        "127.0.0.1:0",
    ])
    .unwrap();
    let config = cli.sim.into_config();
    assert_eq!(
        config.scenarios,
        vec![Scenario::Happy, Scenario::OutOfOrder, Scenario::OutOfOrder]
    );
    assert_eq!((config.seed, config.speed, config.units), (9, 2.5, None));
    assert_eq!(config.pfactory_addr.port(), 0);
    assert_eq!(config.aifactory_addr.port(), 3122);
    assert!(Cli::try_parse_from(["sim", "--scenario", "nope"]).is_err());
}

//! Black-box tests of the simulator: its REST and WebSocket surfaces as a client sees
//! them (in `surfaces/`), and the completion envelopes a webhook receiver gets.

mod surfaces;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use cfactory_domain::CompletionEvent;
use cfactory_sim::{Scenario, SimConfig, SimHandle, Simulator, planned_completion_times};
use serde_json::{Value, json};

type Received = Arc<Mutex<Vec<Value>>>;

/// What a delivery carried besides its body: its query string and its headers.
#[derive(Debug, Clone)]
struct Delivery {
    query: Option<String>,
    headers: HeaderMap,
}

/// A tiny webhook receiver. With `fail_first`, every event's first delivery gets 503.
async fn receiver(fail_first: bool) -> (String, Received, Arc<Mutex<Vec<Delivery>>>) {
    let got: Received = Arc::default();
    let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (g, d) = (got.clone(), deliveries.clone());
    let app = Router::new().route(
        "/api/events/completion",
        post(
            move |uri: Uri, headers: HeaderMap, axum::Json(v): axum::Json<Value>| {
                let (g, d, seen) = (g.clone(), d.clone(), seen.clone());
                async move {
                    // PFactory's events have no id: the whole body tells them apart.
                    if fail_first && seen.lock().unwrap().insert(v.to_string()) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    d.lock().unwrap().push(Delivery {
                        query: uri.query().map(str::to_owned),
                        headers,
                    });
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
    (url, got, deliveries)
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

/// A request with a method, an optional bearer token and an optional JSON body.
async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `probe` until it answers, or panics after `secs` seconds naming `what`.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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

/// A fast run that has gone as far as it goes without a person: its REST surfaces
/// no longer change between two requests.
async fn idle(config: SimConfig) -> SimHandle {
    let sim = settled(config).await;
    assert!(sim.wait_until_idle(Duration::from_secs(30)).await);
    sim
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

/// The envelopes of one default run and what each delivery carried, played once on a
/// runtime of its own and shared by the tests that read them.
fn played() -> &'static (Vec<Value>, Vec<Delivery>) {
    static PLAYED: OnceLock<(Vec<Value>, Vec<Delivery>)> = OnceLock::new();
    PLAYED.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let (url, got, deliveries) = receiver(false).await;
                let sim = settled(SimConfig {
                    webhook_url: Some(url),
                    webhook_token: Some("hook".into()),
                    ..SimConfig::default()
                })
                .await;
                for s in Scenario::ALL {
                    assert!(
                        sim.stats()
                            .completed
                            .get(s.as_str())
                            .is_some_and(|n| *n >= 1),
                        "{s:?}"
                    );
                }
                sim.shutdown().await;
                let events = got.lock().unwrap().clone();
                let deliveries = deliveries.lock().unwrap().clone();
                (events, deliveries)
            })
        })
        .join()
        .unwrap()
    })
}

fn events() -> &'static [Value] {
    &played().0
}

fn of<'a>(service: &'a str) -> impl Iterator<Item = &'static Value> + 'a {
    events().iter().filter(move |e| e["service"] == service)
}

fn is_completion(e: &Value) -> bool {
    e["type"]
        .as_str()
        .is_some_and(|t| t.ends_with(".completion"))
}

fn is_terminal(e: &Value) -> bool {
    e["service"] == "aifactory"
        && is_completion(e)
        && ["done", "failed", "qa_failed"].contains(&e["status"].as_str().unwrap())
}

fn tokens(e: &Value) -> u64 {
    e["usage"]["total_tokens"].as_u64().unwrap()
}

#[test]
fn every_envelope_parses_as_a_completion_event() {
    assert!(events().len() > 100);
    for e in events() {
        let parsed =
            CompletionEvent::parse(&e.to_string()).unwrap_or_else(|err| panic!("{err}: {e}"));
        assert_eq!(parsed.correlation_key.as_str(), e["correlation_key"]);
    }
}

/// A real sender's event as its own builder made it (the copy the server's tests keep).
fn real(name: &str) -> Value {
    let path = format!(
        "{}/../server/tests/data/real-senders/derived/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn envelopes_have_the_fields_the_real_builders_give_them() {
    let find = |what: &str, f: &dyn Fn(&Value) -> bool| -> &'static Value {
        events()
            .iter()
            .find(|e| f(e))
            .unwrap_or_else(|| panic!("no {what}"))
    };
    let pf =
        |status: &'static str| move |e: &Value| e["service"] == "pfactory" && e["status"] == status;
    // The simulator's event, the real one, and the fields only the simulator adds
    // (AIFactory's `repo` names the repository of an origin-keyed unit).
    let cases: [(&Value, Value, &[&str]); 8] = [
        (
            find("ingested plan", &pf("ingested")),
            real("pf-test-ingested-synthetic"),
            &[],
        ),
        (
            find("processed plan", &pf("processed")),
            real("pf-test-usage-snapshot-processed"),
            &[],
        ),
        (
            find("emitted plan", &|e| {
                pf("emitted")(e) && e["evidence"]["proof_kind"] == "issues"
            }),
            real("pf-test-emitted-101"),
            &[],
        ),
        (
            find("contract plan", &|e| {
                e["evidence"]["proof_kind"] == "contract"
            }),
            real("pf-test-contract-handoff"),
            &[],
        ),
        (
            find("worker event", &|e| e["status"] == "worker_done"),
            real("af-test-worker-event-412"),
            &["repo"],
        ),
        (
            find("done build", &|e| {
                e["service"] == "aifactory" && e["status"] == "done"
            }),
            real("af-test-two-workers-rollup-412"),
            &["repo", "injection_scan"],
        ),
        (
            find("passed verify", &|e| {
                e["service"] == "tfactory" && e["verification"]["achieved_level"] == "VAL-2"
            }),
            real("tf-test-triaged-verification-block"),
            &[],
        ),
        (
            find("empty verify", &|e| e["result"] == json!({})),
            real("tf-test-triaged-no-verdicts"),
            &[],
        ),
    ];
    for (sim, real, extra) in cases {
        let mut expected = keys(&real);
        expected.extend(extra);
        assert_eq!(keys(sim), expected, "{sim}");
        for block in ["correlation", "evidence", "worker", "verification"] {
            if real[block].is_object() {
                assert_eq!(keys(&sim[block]), keys(&real[block]), "{block} of {sim}");
            }
        }
        if real["usage"].is_null() {
            assert!(sim["usage"].is_null(), "{sim}");
            continue;
        }
        let mut usage = keys(&real["usage"]);
        if sim["service"] == "aifactory" {
            usage.insert("budget");
        }
        assert_eq!(keys(&sim["usage"]), usage, "usage of {sim}");
        if let Some(w) = real["usage"]["workers"].get(0) {
            assert_eq!(keys(&sim["usage"]["workers"][0]), keys(w));
            assert_eq!(
                keys(&sim["usage"]["by_provider"]["anthropic"]),
                keys(&real["usage"]["by_provider"]["claude"])
            );
        }
    }
}

#[test]
fn the_key_rides_in_the_url_and_no_header_is_sent() {
    let deliveries = &played().1;
    assert_eq!(deliveries.len(), events().len());
    for d in deliveries {
        assert_eq!(d.query.as_deref(), Some("token=hook"));
        assert!(d.headers.get("authorization").is_none());
        assert!(d.headers.get("idempotency-key").is_none());
    }
}

#[test]
fn pfactory_sends_updated_at_and_no_cloudevents_attributes() {
    let pf: Vec<&Value> = of("pfactory").collect();
    assert!(pf.len() >= 20);
    for e in &pf {
        for absent in ["id", "time", "type", "specversion", "source", "traceparent"] {
            assert!(e.get(absent).is_none(), "{absent} in {e}");
        }
        assert!(e["updated_at"].is_string(), "{e}");
        assert!(
            ["ingested", "processed", "emitted", "rejected"]
                .contains(&e["status"].as_str().unwrap()),
            "{e}"
        );
        assert!(e["usage"]["workers"].is_null(), "plain usage: {e}");
    }
    // The usage is the session's running total.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &pf {
        let before = last.insert(e["task_id"].as_str().unwrap(), tokens(e));
        assert!(before.is_none_or(|b| b <= tokens(e)), "{e}");
    }
    for service in ["aifactory", "tfactory"] {
        for e in of(service) {
            for field in ["id", "time", "specversion", "source", "type", "traceparent"] {
                assert!(e[field].is_string(), "missing {field} in {e}");
            }
            assert_eq!(e["source"], format!("/{service}"));
        }
    }
}

#[test]
fn a_plan_from_an_existing_issue_is_keyed_by_it_and_links_the_epic_it_created() {
    let emitted: Vec<&Value> = of("pfactory")
        .filter(|e| e["status"] == "emitted")
        .collect();
    let origin: Vec<&Value> = emitted
        .iter()
        .copied()
        .filter(|e| e["correlation_key"].as_str().unwrap().contains('#'))
        .collect();
    assert!(
        origin.len() >= 3 && origin.len() < emitted.len(),
        "about half: {} of {}",
        origin.len(),
        emitted.len()
    );
    for plan in origin {
        let key = plan["correlation_key"].as_str().unwrap();
        let (repo, number) = key.split_once('#').unwrap();
        assert_eq!(repo.split('/').count(), 2, "{key}");
        let epic = plan["correlation"]["issue_number"].as_u64().unwrap();
        assert_ne!(epic.to_string(), number, "the epic is a link, not the key");
        assert_eq!(plan["evidence"]["proof_kind"], "issues");
        assert_eq!(plan["evidence"]["epic_issue"], epic);
        // The plan's earlier events already carried the origin key.
        assert!(of("pfactory").any(|e| e["task_id"] == plan["task_id"]
            && e["status"] == "ingested"
            && e["correlation_key"] == key));
        // AIFactory reports the same unit under the bare number, with the repository.
        let code: Vec<&Value> = of("aifactory")
            .filter(|e| e["correlation_key"] == number)
            .collect();
        assert!(!code.is_empty(), "no AIFactory event under {number}");
        for e in code {
            assert_eq!(e["repo"], repo);
            assert_eq!(e["correlation"]["issue_number"].to_string(), number);
            assert_eq!(e["correlation"]["project_id"], "proj");
        }
        for e in of("tfactory").filter(|e| e["correlation_key"] == number) {
            assert_eq!(e["repo"], repo);
        }
    }
    // A plan with no origin issue is keyed by its epic.
    assert!(emitted.iter().any(|e| {
        e["correlation"]["issue_number"].is_u64()
            && e["correlation_key"].as_str().and_then(|k| k.parse().ok())
                == e["correlation"]["issue_number"].as_u64()
    }));
}

#[test]
fn the_contract_plan_hands_its_plan_to_a_task_and_creates_no_issue() {
    let plan = of("pfactory")
        .find(|e| e["evidence"]["proof_kind"] == "contract")
        .expect("a contract-path plan");
    let task = plan["evidence"]["aifactory_task_id"].as_str().unwrap();
    assert_eq!(plan["correlation"]["aifactory_task_id"], task);
    assert!(plan["correlation"]["issue_number"].is_null());
    assert_eq!(
        plan["correlation_key"],
        format!("pf-{}", plan["task_id"].as_str().unwrap())
    );
    assert_eq!(plan["evidence"].as_object().unwrap().len(), 2, "{plan}");
    let code: Vec<&Value> = of("aifactory").filter(|e| e["task_id"] == task).collect();
    assert!(!code.is_empty());
    assert!(
        code.iter()
            .all(|e| e["correlation_key"].as_str().unwrap().starts_with("af-"))
    );
    // A single-issue plan counts no children.
    assert!(of("pfactory").any(|e| {
        e["evidence"]["proof_kind"] == "issues"
            && e["evidence"]["epic_issue"].is_u64()
            && e["evidence"]["child_count"] == 0
    }));
}

#[test]
fn a_build_run_posts_its_worker_event_just_before_its_terminal_event() {
    let ids: Vec<&str> = events()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default())
        .collect();
    let mut checked = 0;
    let (mut later, mut earlier) = (0, 0);
    for (i, e) in events().iter().enumerate() {
        // A re-delivery repeats an event already seen; only first deliveries count.
        if !is_terminal(e) || ids[..i].contains(&ids[i]) {
            continue;
        }
        assert_eq!(e["phase"], "act", "{e}");
        let worker = events()[..i]
            .iter()
            .rev()
            .find(|w| w["task_id"] == e["task_id"])
            .unwrap();
        assert_eq!(worker["type"], "io.factory.aifactory.worker", "{worker}");
        assert_eq!(worker["status"], "worker_done");
        assert_eq!(worker["phase"], "worker");
        let block = &worker["worker"];
        for f in [
            "worker_id",
            "subtask_id",
            "agent_phase",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cost_usd",
            "duration_ms",
        ] {
            assert!(block.get(f).is_some(), "missing {f} in {block}");
        }
        assert!(block["total_tokens"].as_u64().unwrap() <= tokens(e));
        let at =
            |v: &Value| chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
        if at(worker) > at(e) {
            later += 1;
        } else {
            earlier += 1;
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
    assert!(
        later >= 3 && earlier >= 3,
        "{later} later, {earlier} earlier"
    );
}

#[test]
fn snapshots_and_heartbeats_carry_the_runs_usage_so_far() {
    let heartbeats: Vec<&Value> = of("aifactory")
        .filter(|e| e["type"] == "io.factory.aifactory.worker_progress")
        .collect();
    assert!(heartbeats.len() >= 10);
    for h in &heartbeats {
        assert_eq!(h["phase"], "worker_progress");
        assert_eq!(h["status"], "in_progress");
    }
    let mut corrections = 0;
    let mut by_task: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for e in of("aifactory").filter(|e| e["status"] != "worker_done") {
        by_task
            .entry(e["task_id"].as_str().unwrap())
            .or_default()
            .push(e);
    }
    for runs in by_task.values() {
        let mut ids = HashSet::new();
        let mut last = 0;
        for e in runs
            .iter()
            .filter(|e| ids.insert(e["id"].as_str().unwrap()))
        {
            if is_completion(e) && e["status"] == "in_progress" {
                // A run starts with its own usage at zero.
                assert_eq!(tokens(e), 0, "{e}");
                corrections += usize::from(last > 0);
            } else {
                assert!(tokens(e) >= last, "usage went back within a run: {e}");
            }
            last = tokens(e);
        }
    }
    assert!(corrections >= 3, "{corrections}");
}

#[test]
fn aifactory_usage_reports_workers_budgets_and_token_evidence() {
    let modes = ["api", "cloud", "subscription", "local"];
    let mut seen_modes = HashSet::new();
    let mut exceeded = HashSet::new();
    for e in of("aifactory").filter(|e| is_completion(e)) {
        let usage = &e["usage"];
        for w in usage["workers"].as_array().unwrap() {
            assert!(w.get("tokens").is_none(), "{w}");
            assert_eq!(
                w["total_tokens"].as_u64().unwrap(),
                w["input_tokens"].as_u64().unwrap() + w["output_tokens"].as_u64().unwrap()
            );
            let mode = w["billing_mode"].as_str().unwrap();
            assert!(modes.contains(&mode), "{mode}");
            seen_modes.insert(mode);
            if mode == "subscription" {
                assert!(w["cost_usd"].as_f64().unwrap() > 0.0, "notional dollars");
            }
        }
        let budget = usage["budget"].as_object().unwrap();
        let keys: Vec<&str> = budget.keys().map(String::as_str).collect();
        assert_eq!(keys, ["exceeded", "limit_usd", "spent_usd"]);
        if budget["exceeded"] == true {
            exceeded.insert(e["task_id"].as_str().unwrap());
        }
        let correlation = e["correlation"].as_object().unwrap();
        let keys: Vec<&str> = correlation.keys().map(String::as_str).collect();
        assert_eq!(keys, ["issue_number", "project_id", "spec_id"]);
    }
    assert!(seen_modes.len() >= 3, "{seen_modes:?}");
    assert_eq!(exceeded.len(), 1, "one unit over budget: {exceeded:?}");
    for e in of("aifactory").filter(|e| is_terminal(e)) {
        let evidence = e["evidence"].as_object().unwrap();
        let keys: Vec<&str> = evidence.keys().map(String::as_str).collect();
        assert_eq!(keys, ["cost_usd", "proof_kind", "total_tokens"], "{e}");
        assert_eq!(evidence["proof_kind"], "tokens");
        assert_eq!(evidence["total_tokens"].as_u64().unwrap(), tokens(e));
    }
    let failed = of("aifactory")
        .find(|e| e["status"] == "qa_failed")
        .expect("a qa_failed build");
    assert!(
        failed["halt_reason"]
            .as_str()
            .unwrap()
            .starts_with("no_progress: ")
    );
    assert!(failed["evidence"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(!of("aifactory").any(|e| e["status"] == "done" && tokens(e) == 0));
}

#[test]
fn tfactory_verifies_carry_outcome_and_verification_and_stay_triaged() {
    let tf: Vec<&Value> = of("tfactory").collect();
    assert!(tf.len() >= 10);
    for e in &tf {
        for f in [
            "outcome",
            "repo",
            "branch",
            "pr_number",
            "project_id",
            "spec_id",
            "result",
            "emitted_at",
        ] {
            assert!(!e[f].is_null(), "missing {f} in {e}");
        }
        let v = &e["verification"];
        has(v, &["target_level", "achieved_level", "levels", "claim"]);
        for l in v["levels"].as_array().unwrap() {
            has(l, &["level", "status", "reason"]);
        }
        let evidence = e["evidence"].as_object().unwrap();
        let keys: Vec<&str> = evidence.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["accepted", "flagged", "proof_kind", "rejected", "verdicts"]
        );
        match e["status"].as_str().unwrap() {
            "triaged" => assert_eq!(e["phase"], "test"),
            "stuck" => assert_eq!(e["phase"], "needs_human"),
            other => panic!("a finished verify is triaged or stuck, not {other}"),
        }
    }
    let pass = tf
        .iter()
        .find(|e| e["outcome"] == "success" && e["evidence"]["verdicts"].as_u64() > Some(0))
        .unwrap();
    assert_eq!(pass["verification"]["achieved_level"], "VAL-2");
    assert!(pass["halt_reason"].is_null());

    // Unproven: a success with nothing counted and no no_evidence halt.
    let unproven = tf
        .iter()
        .find(|e| e["outcome"] == "success" && e["evidence"]["verdicts"] == 0)
        .expect("an unproven success");
    assert_eq!(unproven["status"], "triaged");
    for f in ["accepted", "flagged", "rejected"] {
        assert_eq!(unproven["evidence"][f], 0);
    }
    assert!(unproven["halt_reason"].is_null());

    let empty = tf
        .iter()
        .find(|e| e["outcome"] == "failure" && e["evidence"]["verdicts"] == 0)
        .expect("a verify with no verdicts");
    assert_eq!(empty["status"], "triaged");
    assert_eq!(
        empty["halt_reason"],
        "no_evidence: verify produced no verdicts"
    );

    let stuck = tf.iter().find(|e| e["status"] == "stuck").unwrap();
    assert!(
        stuck["halt_reason"]
            .as_str()
            .unwrap()
            .starts_with("needs_human")
    );
}

/// The index of the first event after `i` that is an AIFactory run start under `key`.
fn next_run_start(key: &Value, after: usize) -> Option<usize> {
    events()
        .iter()
        .enumerate()
        .skip(after + 1)
        .find(|(_, e)| {
            e["service"] == "aifactory"
                && is_completion(e)
                && e["status"] == "in_progress"
                && e["correlation_key"] == *key
        })
        .map(|(i, _)| i)
}

#[test]
fn a_handback_is_a_verdict_followed_by_a_new_run_of_the_same_task() {
    let (i, review) = events()
        .iter()
        .enumerate()
        .find(|(_, e)| {
            e["service"] == "tfactory" && e["outcome"] == "human_review" && e["status"] == "triaged"
        })
        .expect("a verify asking for a person's review");
    assert!(
        review["halt_reason"]
            .as_str()
            .unwrap()
            .starts_with("dependency_review: ")
    );
    let key = &review["correlation_key"];
    let start = next_run_start(key, i).expect("a correction run");
    let first_run = events()
        .iter()
        .find(|e| e["service"] == "aifactory" && e["correlation_key"] == *key)
        .unwrap();
    assert_eq!(events()[start]["task_id"], first_run["task_id"]);
    // The retest of the corrected build passes.
    assert!(events()[start..].iter().any(|e| {
        e["service"] == "tfactory" && e["correlation_key"] == *key && e["outcome"] == "success"
    }));

    let (j, failed) = events()
        .iter()
        .enumerate()
        .find(|(_, e)| {
            e["service"] == "tfactory"
                && e["outcome"] == "failure"
                && e["evidence"]["rejected"].as_u64() > Some(0)
        })
        .expect("a verify with failing tests");
    assert_eq!(failed["status"], "triaged");
    assert!(next_run_start(&failed["correlation_key"], j).is_some());
}

#[test]
fn tfactory_usage_is_the_specs_total_over_every_verify() {
    let mut by_spec: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in of("tfactory") {
        by_spec
            .entry(e["spec_id"].as_str().unwrap())
            .or_default()
            .push(tokens(e));
    }
    let retested: Vec<&Vec<u64>> = by_spec.values().filter(|t| t.len() > 1).collect();
    assert!(retested.len() >= 3, "{by_spec:?}");
    for totals in retested {
        assert!(totals.windows(2).all(|w| w[1] > w[0]), "{totals:?}");
    }
}

#[test]
fn outboxes_redeliver_with_the_same_id_even_after_a_newer_run() {
    let mut ids = BTreeMap::new();
    for e in events().iter().filter(|e| e["id"].is_string()) {
        *ids.entry(e["id"].as_str().unwrap()).or_insert(0) += 1;
    }
    assert!(
        ids.values().filter(|n| **n == 2).count() >= 2,
        "retry and out-of-order"
    );
    // An older run's terminal event arrives after the newer run's.
    let late = events().iter().enumerate().find_map(|(i, e)| {
        let first = events()[..i].iter().position(|d| d["id"] == e["id"])?;
        let newer = events()[first + 1..i]
            .iter()
            .find(|d| is_terminal(d) && d["task_id"] == e["task_id"])?;
        Some((e, newer))
    });
    let (older, newer) = late.expect("a re-delivered terminal after a newer one");
    assert!(is_terminal(older));
    assert!(tokens(older) > tokens(newer), "{older} {newer}");
}

#[test]
fn a_task_started_before_any_issue_is_rekeyed_and_a_flagged_scan_parks_one() {
    let rekeyed = of("aifactory")
        .find(|e| e["correlation_key"].as_str().unwrap().starts_with("af-"))
        .expect("an event under an af- key");
    assert_eq!(
        rekeyed["correlation_key"],
        format!("af-{}", rekeyed["correlation"]["spec_id"].as_str().unwrap())
    );
    let linked = of("aifactory")
        .skip_while(|e| *e != rekeyed)
        .find(|e| e["task_id"] == rekeyed["task_id"] && e["correlation"]["issue_number"].is_u64())
        .expect("a later event linking the task to an issue");
    assert_eq!(
        linked["correlation_key"],
        linked["correlation"]["issue_number"].to_string()
    );

    let flagged = of("aifactory")
        .find(|e| e["injection_scan"]["verdict"] == "flagged")
        .unwrap();
    assert_eq!(flagged["status"], "human_review");
    assert!(flagged["injection_scan"]["reason"].is_string());
    // Before the pre-coder scan has run there is no verdict at all, never a pass.
    let start = of("aifactory")
        .find(|e| e["task_id"] == flagged["task_id"])
        .unwrap();
    assert_eq!(start["status"], "in_progress");
    assert!(start.get("injection_scan").is_none(), "{start}");
    assert!(
        of("aifactory")
            .filter(|e| e["status"] == "done")
            .all(|e| e["injection_scan"]["verdict"] == "pass")
    );
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
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len() as u64, stats.events_sent);
    // Each was refused once and delivered again unchanged, its id (if any) the same.
    assert!(
        got.iter()
            .any(|e| e["service"] == "pfactory" && e.get("id").is_none())
    );
    assert!(
        got.iter()
            .all(|e| e["service"] == "pfactory" || e["id"].is_string())
    );
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

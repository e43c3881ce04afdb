//! The real senders' events, as PFactory's, AIFactory's and TFactory's own code builds
//! them (`tests/data/real-senders`), posted to the built server on both stores. Each
//! check reads the resulting WorkItem, anomalies and Needs you back through the API.

mod common;

use std::path::PathBuf;

use common::{Server, Store};
use serde_json::{Value, json};

/// Every tenant a check may use, each with its own key (`CFACTORY_API_KEYS`).
const TENANTS: usize = 40;

fn key_of(tenant: usize) -> String {
    format!("cfk_realsenders_tenant_{tenant:02}_0123456789")
}

fn start(store: &Store) -> Server {
    let seeds: Vec<String> = (0..TENANTS)
        .map(|t| format!("{}:ingest+read:t{t:02}", key_of(t)))
        .collect();
    Server::start_with(store, &[], &[("CFACTORY_API_KEYS", &seeds.join(","))]).unwrap()
}

fn data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-senders")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One tenant's view of the server.
struct Tenant<'a> {
    server: &'a Server,
    key: String,
}

impl Tenant<'_> {
    async fn post(&self, body: &str) -> (u16, Value) {
        let (status, text) = self
            .server
            .post_raw("/api/events/completion", body, Some(&self.key))
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn send(&self, body: &Value) -> String {
        let (status, answer) = self.post(&body.to_string()).await;
        assert!(status < 300, "{status} {answer} for {body}");
        answer["correlation_key"].as_str().unwrap().to_owned()
    }

    async fn file(&self, name: &str) -> String {
        let (status, answer) = self.post(&data(name)).await;
        assert!(status < 300, "{name}: {status} {answer}");
        answer["correlation_key"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.server.get_with(path, Some(&self.key)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn item(&self, key: &str) -> Value {
        self.get(&format!("/api/workitems/{}", utf8_percent_encode(key)))
            .await
    }

    /// The insight routes answer from the read model, which applies commits in the
    /// background: reads `path` until `done` holds, for at most 10 s.
    async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let body = self.get(path).await;
            if done(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Waits until `key` has an anomaly of `kind`; says whether it came.
    async fn has_anomaly(&self, key: &str, kind: &str) -> bool {
        let seen = |body: &Value| {
            body["anomalies"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|a| a["correlation_key"] == key && a["kind"] == kind)
            })
        };
        seen(&self.until("/api/anomalies?limit=5000", seen).await)
    }

    /// Waits until one of `key`'s Needs you reasons mentions `text`; its reasons then.
    async fn needs_you_with(&self, key: &str, text: &str) -> Vec<String> {
        self.until("/api/needs-you", |b| b.to_string().contains(text))
            .await;
        self.needs_you(key).await
    }

    async fn needs_you(&self, key: &str) -> Vec<String> {
        let body = self.get("/api/needs-you").await;
        let list = body["items"]
            .as_array()
            .or(body.as_array())
            .cloned()
            .unwrap_or_default();
        list.iter()
            .filter(|n| n["correlation_key"] == key)
            .flat_map(|n| n["reasons"].as_array().cloned().unwrap_or_default())
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }
}

fn utf8_percent_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tenant(server: &Server, n: usize) -> Tenant<'_> {
    Tenant {
        server,
        key: key_of(n),
    }
}

/// What one file, posted alone, must read as.
async fn each_file_reads_true(server: &Server) {
    let mut next = 0;
    let mut fresh = || {
        next += 1;
        tenant(server, next)
    };

    // AIFactory.
    let t = fresh();
    let k = t.file("derived/af-gate-zero-token-completed.json").await;
    let item = t.item(&k).await;
    assert_eq!(item["stages"]["code"]["status_class"], "failed");
    assert_eq!(
        item["stages"]["code"]["halt_reason"],
        "no_evidence: build emitted 0 tokens (did not run)"
    );
    assert!(t.has_anomaly(&k, "failure").await);

    let t = fresh();
    let k = t.file("derived/af-test-two-workers-rollup-412.json").await;
    assert_eq!(k, "412");
    let item = t.item(&k).await;
    let code = &item["stages"]["code"];
    assert_eq!(code["status_class"], "done");
    assert_eq!(
        code["proof"], "proven",
        "proof_kind tokens with tokens proves a build"
    );
    assert_eq!(item["usage_total"]["total_tokens"], 900);
    assert_eq!(
        item["usage_total"]["cost_usd"], 0.0,
        "subscription and local are not spend"
    );
    assert!((item["usage_total"]["notional_cost_usd"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    let rollups = t
        .until("/api/rollups", |r| r.to_string().contains("\"local\""))
        .await;
    let modes = rollups["cost"]["by_billing_mode"].as_array().unwrap();
    let mode = |m: &str| modes.iter().find(|b| b["key"] == m).cloned().unwrap();
    assert_eq!(mode("local")["total_tokens"], 560);
    assert_eq!(mode("subscription")["total_tokens"], 340);
    assert!(mode("subscription")["cost_usd"].is_null());
    assert!((mode("subscription")["notional_cost_usd"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    let workers = rollups["cost"]["by_worker"].as_array().unwrap();
    assert!(
        workers
            .iter()
            .any(|w| w["key"] == "sub-B" && w["total_tokens"] == 560),
        "{workers:?}"
    );

    let t = fresh();
    let k = t.file("derived/af-test-usage-issue-1.json").await;
    assert_eq!(k, "1");
    let item = t.item(&k).await;
    assert_eq!(item["stages"]["code"]["proof"], "proven");
    assert_eq!(item["usage_total"]["total_tokens"], 12);

    let t = fresh();
    let k = t.file("derived/af-test-base-event-412.json").await;
    assert_eq!(t.item(&k).await["stages"]["code"]["proof"], "unproven");

    let t = fresh();
    let k = t.file("derived/af-test-pinned-id.json").await;
    let (status, again) = t
        .post(&data("derived/af-test-pinned-id-rebuilt.json"))
        .await;
    assert!(status < 300);
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(t.item(&k).await["event_count"], 1);

    let t = fresh();
    let k = t.file("derived/af-test-synthetic-failed.json").await;
    assert_eq!(k, "af-spec-9");
    assert_eq!(t.item(&k).await["stages"]["code"]["status_class"], "failed");

    let t = fresh();
    let k = t.file("derived/af-test-traceparent-propagated.json").await;
    assert_eq!(t.item(&k).await["stages"]["code"]["status"], "done");

    let t = fresh();
    let k = t.file("derived/af-test-worker-event-412.json").await;
    let item = t.item(&k).await;
    assert!(
        item["stages"]["code"].is_null(),
        "a worker event alone opens no stage: {item}"
    );
    assert_eq!(item["event_count"], 1);

    let t = fresh();
    let k = t.file("literal/rfc0001-aifactory-usage-142.json").await;
    let item = t.item(&k).await;
    assert_eq!(item["usage_total"]["total_tokens"], 2500);
    assert_eq!(item["usage_total"]["cost_usd"], 1.25);
    assert_eq!(item["stages"]["code"]["proof"], "unproven");

    // PFactory.
    let t = fresh();
    let k = t.file("derived/pf-test-contract-handoff.json").await;
    let item = t.item(&k).await;
    assert_eq!(
        item["stages"]["plan"]["proof"], "proven",
        "the contract path is proof"
    );
    assert!(
        item["links"]["aifactory_task_ids"]
            .as_array()
            .unwrap()
            .contains(&json!("9d2ce435:031-python-hello-world-greeting-li"))
    );

    let t = fresh();
    let k = t.file("derived/pf-test-emitted-101.json").await;
    assert_eq!(k, "101");
    assert_eq!(
        t.item(&k).await["stages"]["plan"]["proof"],
        "proven",
        "a single-issue plan has child_count 0"
    );

    let t = fresh();
    let k = t.file("derived/pf-test-emit-no-epic-failed.json").await;
    assert_eq!(t.item(&k).await["stages"]["plan"]["status_class"], "failed");

    let t = fresh();
    let k = t.file("derived/pf-test-rejected.json").await;
    assert_eq!(t.item(&k).await["stages"]["plan"]["status_class"], "failed");

    let t = fresh();
    let k = t.file("derived/pf-test-ingested-synthetic.json").await;
    assert_eq!(t.item(&k).await["stages"]["plan"]["status"], "ingested");

    let t = fresh();
    let k = t
        .file("derived/pf-test-usage-snapshot-processed.json")
        .await;
    assert_eq!(t.item(&k).await["usage_total"]["total_tokens"], 1500);

    for name in [
        "literal/rfc0001-pfactory-correlation-142.json",
        "literal/rfc0001-pfactory-emitted-142.json",
    ] {
        let t = fresh();
        let k = t.file(name).await;
        assert_eq!(k, "142");
        assert_eq!(t.item(&k).await["stages"]["plan"]["status"], "emitted");
    }

    // TFactory.
    let t = fresh();
    let k = t.file("derived/tf-test-triaged-no-verdicts.json").await;
    let item = t.item(&k).await;
    let test = &item["stages"]["test"];
    assert_eq!(test["status"], "triaged");
    assert_eq!(
        test["status_class"], "failed",
        "outcome failure is the verdict"
    );
    assert_ne!(test["proof"], "proven");
    assert_eq!(test["verification"]["achieved_level"], "VAL-0");
    assert_eq!(test["verification"]["target_level"], "VAL-2");
    assert!(t.has_anomaly(&k, "failure").await);
    assert!(
        !t.needs_you(&k).await.iter().any(|r| r.contains("unproven")),
        "a failed verify is not an unproven pass"
    );

    let t = fresh();
    let k = t
        .file("derived/tf-test-triaged-verification-block.json")
        .await;
    let test = t.item(&k).await["stages"]["test"].clone();
    assert_eq!(test["proof"], "proven");
    assert_eq!(test["verification"]["achieved_level"], "VAL-2");
    assert_eq!(test["verification"]["levels"][3]["status"], "not_run");

    let t = fresh();
    let k = t.file("derived/tf-test-triager-failed-boom.json").await;
    assert_eq!(t.item(&k).await["stages"]["test"]["status_class"], "failed");

    for (name, proof) in [
        ("literal/tf-asyncapi-triaged-success.json", "unproven"),
        ("literal/tf-docs-envelope-v1.0.json", "proven"),
        ("literal/tf-docs-envelope-v1.2.json", "proven"),
    ] {
        let t = fresh();
        let k = t.file(name).await;
        assert_eq!(k, "owner/name#412", "{name}: TFactory names its repository");
        let item = t.item(&k).await;
        assert_eq!(item["stages"]["test"]["proof"], proof, "{name}");
        assert_eq!(
            t.item("412").await["correlation_key"],
            k,
            "the bare number finds it"
        );
    }

    // The outbox's partial records are not events: refused, naming what is missing,
    // and nothing is stored.
    let t = fresh();
    for name in [
        "literal/tf-test-outbox-enqueue.json",
        "literal/tf-test-outbox-envelope-id.json",
        "literal/tf-test-outbox-no-id.json",
    ] {
        let (status, problem) = t.post(&data(name)).await;
        assert_eq!(status, 422, "{name}: {problem}");
        assert!(problem["field"].is_string(), "{name}: {problem}");
    }
    let list = t.get("/api/workitems").await;
    assert_eq!(list["count"], 0, "{list}");
    assert!(next < TENANTS);
}

fn af(id: &str, kind: &str, status: &str, time: &str, tokens: u64, cost: f64) -> Value {
    let mut v = json!({
        "id": id, "specversion": "1.0", "source": "/aifactory",
        "type": format!("io.factory.aifactory.{kind}"), "time": time,
        "correlation_key": "7150", "service": "aifactory", "task_id": "shop:7150",
        "status": status, "phase": if kind == "worker" { "worker" } else { "act" },
        "correlation": {"issue_number": 7150, "spec_id": "7150-refunds", "project_id": "acme/shop"},
    });
    if kind == "worker" {
        v["worker"] = json!({"worker_id": "sub-A", "provider": "claude", "model": "claude-sonnet-4-6",
            "input_tokens": tokens - tokens / 10, "output_tokens": tokens / 10,
            "total_tokens": tokens, "cost_usd": cost, "duration_ms": 1500});
    } else {
        v["usage"] = json!({"input_tokens": tokens - tokens / 10, "output_tokens": tokens / 10,
            "total_tokens": tokens, "cost_usd": cost, "model": "claude-sonnet-4-6",
            "workers": [{"worker_id": "sub-A", "provider": "claude", "billing_mode": "api",
                "input_tokens": tokens - tokens / 10, "output_tokens": tokens / 10,
                "total_tokens": tokens, "cost_usd": cost}]});
        v["evidence"] = json!({"proof_kind": "tokens", "total_tokens": tokens, "cost_usd": cost});
    }
    v
}

fn tf(id: &str, outcome: &str, halt: Option<&str>, time: &str) -> Value {
    json!({
        "id": id, "specversion": "1.0", "source": "/tfactory",
        "type": "io.factory.tfactory.completion", "time": time,
        "correlation_key": "7150", "service": "tfactory", "task_id": "7150-refunds",
        "status": "triaged", "phase": "test", "outcome": outcome, "halt_reason": halt,
        "repo": "acme/shop", "project_id": "shop", "spec_id": "7150-refunds",
        "evidence": {"proof_kind": "tests", "verdicts": 5, "accepted": 4, "flagged": 1, "rejected": 0},
        "usage": {"total_tokens": 800, "cost_usd": 0.05},
    })
}

fn plan_from_origin() -> Value {
    json!({
        "correlation_key": "acme/shop#7150", "service": "pfactory", "task_id": "s-7150",
        "status": "emitted", "phase": "emit", "updated_at": "2026-12-01T09:00:00+00:00",
        "correlation": {"session_id": "s-7150", "issue_number": 7151, "aifactory_task_id": null},
        "usage": {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500, "cost_usd": 0.0, "model": ""},
        "evidence": {"proof_kind": "issues", "epic_issue": 7151, "child_count": 0},
    })
}

/// The senders' sequences.
async fn sequences_read_true(server: &Server) {
    const Q: &str = "acme/shop#7150";

    // The origin key with bare-number follow-ups: one unit, three stages, the epic a link.
    let t = tenant(server, 30);
    assert_eq!(t.send(&plan_from_origin()).await, Q);
    // A worker report just before its run's terminal, dated after it; the run failed.
    t.send(&af(
        "w1",
        "worker",
        "worker_done",
        "2026-12-01T10:00:00.900Z",
        20_000,
        0.30,
    ))
    .await;
    assert_eq!(
        t.send(&af(
            "r1",
            "completion",
            "qa_failed",
            "2026-12-01T10:00:00.100Z",
            20_000,
            0.30
        ))
        .await,
        Q
    );
    let item = t.item(Q).await;
    assert_eq!(item["stages"]["code"]["status"], "qa_failed");
    assert_eq!(item["stages"]["code"]["status_class"], "failed");
    assert!(t.has_anomaly(Q, "failure").await);
    for alias in ["7150", "7151", Q] {
        let found = t.item(alias).await;
        assert_eq!(found["correlation_key"], Q, "{alias}");
    }
    let search = t
        .until("/api/search?q=7151", |b| b.to_string().contains(Q))
        .await;
    assert!(search.to_string().contains(Q), "{search}");
    assert_eq!(item["links"]["emitted_issues"], json!([7151]));
    assert_eq!(t.get("/api/workitems").await["count"], 1);

    // A verify that needs a person: review, on Needs you with its reason, not proven.
    t.send(&tf(
        "v1",
        "human_review",
        Some("dependency_review: lodash 4 → 5"),
        "2026-12-01T11:00:00Z",
    ))
    .await;
    let test = t.item(Q).await["stages"]["test"].clone();
    assert_eq!(test["status_class"], "review");
    assert_ne!(test["proof"], "proven");
    let reasons = t.needs_you_with(Q, "dependency_review").await;
    assert!(
        reasons.iter().any(|r| r.contains("dependency_review")),
        "{reasons:?}"
    );

    // The correction run (run 2), then the outbox re-delivers run 1's terminal late.
    t.send(&af(
        "w2",
        "worker",
        "worker_done",
        "2026-12-01T12:00:00.500Z",
        2_000,
        0.03,
    ))
    .await;
    t.send(&af(
        "r2",
        "completion",
        "done",
        "2026-12-01T12:00:00.400Z",
        2_000,
        0.03,
    ))
    .await;
    let (_, again) = t
        .post(
            &af(
                "r1",
                "completion",
                "qa_failed",
                "2026-12-01T10:00:00.100Z",
                20_000,
                0.30,
            )
            .to_string(),
        )
        .await;
    assert_eq!(again["status"], "duplicate");
    let item = t.item(Q).await;
    assert_eq!(
        item["handbacks"], 1,
        "human_review then a new run is one handback"
    );
    let code_task = item["usage_by_task"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["service"] == "aifactory")
        .unwrap()
        .clone();
    assert_eq!(code_task["runs"], 2);
    assert_eq!(item["stages"]["code"]["usage"]["total_tokens"], 22_000);
    assert!(
        (item["stages"]["code"]["usage"]["cost_usd"]
            .as_f64()
            .unwrap()
            - 0.33)
            .abs()
            < 1e-9
    );
    assert_eq!(item["stages"]["code"]["proof"], "proven");

    // TFactory's usage is the spec's running total: the latest by time counts.
    t.send(&tf("v2", "success", None, "2026-12-01T13:00:00Z"))
        .await;
    let item = t.item(Q).await;
    assert_eq!(item["stages"]["test"]["usage"]["total_tokens"], 800);
    assert_eq!(item["stages"]["test"]["proof"], "proven");
    assert_eq!(item["project"], "acme/shop");

    // No evidence: a failed verify everywhere.
    let t = tenant(server, 31);
    t.send(&tf(
        "n1",
        "failure",
        Some("no_evidence: verify produced no verdicts"),
        "2026-12-01T11:00:00Z",
    ))
    .await;
    let item = t.item(Q).await;
    assert_eq!(item["stages"]["test"]["status_class"], "failed");
    assert!(t.has_anomaly(Q, "failure").await);
    assert!(!t.needs_you(Q).await.iter().any(|r| r.contains("unproven")));

    // A bare number two repositories share is kept apart and reported.
    let t = tenant(server, 32);
    t.send(&plan_from_origin()).await;
    let mut api = af("a1", "completion", "done", "2026-12-01T10:00:00Z", 10, 0.01);
    api["correlation"]["project_id"] = json!("acme/api");
    assert_eq!(t.send(&api).await, "acme/api#7150");
    let mut bare = tf("b1", "success", None, "2026-12-01T11:00:00Z");
    bare["repo"] = Value::Null;
    assert_eq!(t.send(&bare).await, "7150");
    assert_eq!(t.get("/api/workitems").await["count"], 3);
    assert!(t.has_anomaly("7150", "correlation_conflict").await);

    // A sender's budget exceeded is an anomaly with its figures.
    let t = tenant(server, 33);
    let mut over = af("o1", "completion", "done", "2026-12-01T10:00:00Z", 10, 0.01);
    over["usage"]["budget"] = json!({"limit_usd": 5.0, "spent_usd": 5.4, "exceeded": true});
    t.send(&over).await;
    let body = t
        .until("/api/anomalies", |b| {
            b.to_string().contains("budget_exceeded")
        })
        .await;
    assert!(body.to_string().contains("budget_exceeded"), "{body}");
    assert!(body.to_string().contains("5.4"), "{body}");
}

#[tokio::test]
async fn real_senders_read_true_on_sqlite() {
    let store = Store::sqlite();
    let server = start(&store);
    each_file_reads_true(&server).await;
    sequences_read_true(&server).await;
}

#[tokio::test]
async fn real_senders_read_true_on_postgres() {
    let store = Store::postgres().await;
    let server = start(&store);
    each_file_reads_true(&server).await;
    sequences_read_true(&server).await;
}

//! The DTOs' JSON is the domain's own serialisation, field for field, and it validates
//! against the schema `/openapi.json` publishes for it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use utoipa::OpenApi;

use cfactory_domain::audit::{
    AnchorCheck, AnchorState, ChainReport, Finding, FindingKind, Verdict,
};
use cfactory_domain::memory::InMemoryStore;
use cfactory_domain::ports::WorkItemStore;
use cfactory_domain::upstream::TaskSnapshot;
use cfactory_domain::{CompletionEvent, CorrelationKey, Service, SystemClock, TenantId};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn event(value: Value) -> CompletionEvent {
    CompletionEvent::parse(&value.to_string()).unwrap()
}

/// Events that give item `142` every optional part: aliases, links of each kind, all
/// three stages (proof, injection scan, verification, outcome, halt reason, review
/// reason, progress), summed runs with workers, a budget, a handback, an event without
/// an id and a correlation conflict.
fn events() -> Vec<CompletionEvent> {
    vec![
        event(json!({
            "id": "pf-1", "correlation_key": "142", "service": "pfactory",
            "task_id": "001-refund-flow", "status": "emitted", "phase": "emit",
            "time": "2026-06-04T15:14:45Z", "title": "Refund flow", "project_id": "demo",
            "correlation": {"session_id": "001-refund-flow", "issue_number": 900},
            "evidence": {"proof_kind": "issues", "epic_issue": 900, "child_issues": [901, 902]},
            "injection_scan": {"verdict": "flagged", "reason": "an instruction in the issue body",
                "scanner": "guard-1", "sources_scanned": ["issue_body", "comments"]},
            "usage": {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.5,
                "model": "claude-opus-4", "budget": {"limit_usd": 10.0, "spent_usd": 0.5}}
        })),
        // A synthetic key that names the issue: merged in as an alias.
        event(json!({
            "id": "af-1", "correlation_key": "af-proj-001", "service": "aifactory",
            "task_id": "proj:001", "status": "in_progress", "phase": "coding",
            "time": "2026-06-05T10:00:00Z",
            "correlation": {"issue_number": 142, "branch": "feat/refund", "pr_number": 77},
            "usage": {"input_tokens": 2000, "output_tokens": 100, "cost_usd": 1.0,
                "model": "claude-sonnet-4-6",
                "workers": [
                    {"worker_id": "w-1", "provider": "anthropic", "model": "claude-sonnet-4-6",
                     "input_tokens": 2000, "output_tokens": 100, "cost_usd": 1.0,
                     "billing_mode": "api"},
                    {"worker_id": "w-2", "provider": "local", "tokens": 50,
                     "billing_mode": "local"}
                ]}
        })),
        event(json!({
            "id": "af-w1", "correlation_key": "142", "service": "aifactory",
            "task_id": "proj:001", "status": "worker_done", "phase": "worker",
            "type": "io.factory.aifactory.worker", "time": "2026-06-05T10:30:00Z",
            "worker": {"worker_id": "w-1", "provider": "anthropic", "model": "claude-sonnet-4-6",
                "input_tokens": 2500, "output_tokens": 150, "total_tokens": 2650,
                "cost_usd": 1.2, "billing_mode": "api"}
        })),
        event(json!({
            "id": "af-2", "correlation_key": "142", "service": "aifactory",
            "task_id": "proj:001", "status": "done", "phase": "act",
            "time": "2026-06-05T12:00:00Z",
            "usage": {"input_tokens": 2400, "output_tokens": 100, "total_tokens": 2500,
                "cost_usd": 1.25, "model": "claude-sonnet-4-6"}
        })),
        event(json!({
            "id": "tf-1", "correlation_key": "142", "service": "tfactory",
            "task_id": "spec-42", "status": "triaged", "phase": "triager_complete",
            "time": "2026-06-05T13:00:00Z", "outcome": "failure", "halt_reason": "tests_failed",
            "evidence": {"proof_kind": "tests", "verdicts": 3, "accepted": 1, "flagged": 0,
                "rejected": 2},
            "verification": {"target_level": "VAL-2", "achieved_level": "VAL-1",
                "claim": "Verified to VAL-1.",
                "levels": [{"level": "VAL-0", "status": "passed"},
                    {"level": "VAL-2", "status": "failed", "reason": "two tests fail"}]},
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                "cost_usd": 0.0, "model": ""}
        })),
        // Coding resumes after the failed test, without an id: a handback.
        event(json!({
            "correlation_key": "142", "service": "aifactory", "task_id": "proj:001",
            "status": "in_progress", "phase": "correction", "review_reason": "qa_rejected",
            "time": "2026-06-05T14:00:00Z",
            "usage": {"input_tokens": 300, "output_tokens": 30, "cost_usd": 0.2,
                "model": "claude-sonnet-4-6"}
        })),
        event(json!({
            "id": "af-p1", "correlation_key": "142", "service": "aifactory",
            "task_id": "proj:001", "status": "running", "phase": "worker_progress",
            "type": "io.factory.aifactory.worker_progress", "time": "2026-06-05T14:10:00Z"
        })),
        // Two issue numbers for one unit: kept on its key as a conflict.
        event(json!({
            "id": "af-c1", "correlation_key": "142", "service": "aifactory",
            "task_id": "proj:001", "status": "in_progress", "phase": "coding",
            "time": "2026-06-05T14:05:00Z", "correlation": {"issue_number": 143}
        })),
    ]
}

/// Item `142` as the store builds it, liveness filled; a copy with a stage from an
/// upstream's API; and a bare item with nothing but its key.
async fn items() -> Vec<cfactory_domain::WorkItem> {
    let store = InMemoryStore::new(Arc::new(SystemClock));
    let tenant = TenantId::default_tenant();
    store.ingest(&tenant, events()).await.unwrap();
    let mut rich = store.get(&tenant, "142").await.unwrap().expect("item 142");
    rich.refresh_liveness(at("2026-06-05T15:00:00Z"), Duration::seconds(900));

    assert!(!rich.aliases.is_empty(), "an alias");
    assert!(rich.budget.is_some(), "a budget");
    assert!(rich.handbacks > 0, "a handback");
    assert!(rich.flags.missing_event_id > 0, "an event without an id");
    assert!(
        !rich.flags.correlation_conflicts.is_empty(),
        "a correlation conflict"
    );
    assert!(
        rich.usage_by_task
            .iter()
            .any(|t| !t.workers.is_empty() && !t.run_figures.is_empty()),
        "workers and run figures"
    );
    let test = rich.stages.test().expect("a test stage");
    assert!(test.verification.is_some() && test.outcome.is_some());
    assert!(rich.stages.plan().unwrap().injection_scan.is_some());
    assert!(rich.stages.code().unwrap().progress_at.is_some());
    assert!(rich.liveness.active_stage.is_some());

    let mut polled = rich.clone();
    let changed = polled.apply_snapshot(
        &TaskSnapshot {
            service: Service::TFACTORY,
            task_id: "spec-43".into(),
            issue_number: Some(142),
            status: "done".into(),
            phase: None,
            title: None,
            project: None,
            updated_at: None,
            correlation: Default::default(),
            review_reason: Some("checked_by_hand".into()),
        },
        at("2026-06-05T14:30:00Z"),
        at("2026-06-05T14:30:01Z"),
    );
    assert!(changed && polled.stages.test().unwrap().from_api);

    let bare = cfactory_domain::WorkItem::new(
        CorrelationKey::parse("pf-lonely").unwrap(),
        at("2026-06-01T00:00:00Z"),
    );
    vec![rich, polled, bare]
}

#[tokio::test]
async fn a_work_items_wire_json_is_the_domains_own() {
    for item in items().await {
        let mut domain = serde_json::to_value(&item).unwrap();
        // The rounds handbacks are counted from are stored, not served.
        let rounds = domain.as_object_mut().unwrap().remove("rounds");
        assert_eq!(rounds.is_some(), !item.rounds.is_empty());
        let wire = serde_json::to_value(super::WorkItem::from(&item)).unwrap();
        assert_eq!(wire, domain, "{}", item.correlation_key);
    }
}

fn reports() -> Vec<ChainReport> {
    let mut reports = vec![ChainReport {
        verdict: Verdict::Ok,
        rows: 0,
        findings: Vec::new(),
        anchor: None,
    }];
    for (verdict, state) in [
        (Verdict::Ok, AnchorState::Ok),
        (Verdict::Truncated, AnchorState::Truncated),
        (Verdict::RolledBack, AnchorState::RolledBack),
    ] {
        reports.push(ChainReport {
            verdict,
            rows: 3,
            findings: Vec::new(),
            anchor: Some(AnchorCheck {
                anchored_seq: 5,
                chain_seq: 3,
                state,
            }),
        });
    }
    for (verdict, kinds) in [
        (
            Verdict::Tampered,
            vec![
                FindingKind::Altered,
                FindingKind::BrokenLink,
                FindingKind::Truncated,
                FindingKind::HeadAltered,
            ],
        ),
        (Verdict::Forked, vec![FindingKind::Fork]),
    ] {
        reports.push(ChainReport {
            anchor: None,
            verdict,
            rows: 7,
            findings: kinds
                .into_iter()
                .zip(1..)
                .map(|(kind, id)| Finding { id, kind })
                .collect(),
        });
    }
    reports
}

#[test]
fn a_chain_reports_wire_json_is_the_domains_own() {
    for report in reports() {
        let domain = serde_json::to_value(&report).unwrap();
        let wire = serde_json::to_value(super::ChainReport::from(&report)).unwrap();
        assert_eq!(wire, domain);
    }
}

/// A small validator for the JSON Schema subset utoipa emits. Stricter than JSON Schema
/// in one way: an object may not carry a property its schema does not declare, so an
/// undocumented field fails.
struct Validator {
    schemas: Value,
}

impl Validator {
    fn new() -> Self {
        let doc = serde_json::to_value(crate::api::ApiDoc::openapi()).unwrap();
        Self {
            schemas: doc["components"]["schemas"].clone(),
        }
    }

    fn component(&self, name: &str) -> &Value {
        let schema = &self.schemas[name];
        assert!(!schema.is_null(), "no component `{name}` in /openapi.json");
        schema
    }

    fn errors(&self, schema: &Value, value: &Value, path: &str) -> Vec<String> {
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            return self.errors(self.component(name), value, path);
        }
        let mut errors = Vec::new();
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                errors.extend(self.errors(s, value, path));
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema[key].as_array() {
                let matching = options
                    .iter()
                    .filter(|s| self.errors(s, value, path).is_empty())
                    .count();
                let ok = if key == "oneOf" {
                    matching == 1
                } else {
                    matching >= 1
                };
                if !ok {
                    errors.push(format!("{path}: {matching} of {key} match {value}"));
                }
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => panic!("{path}: a type that is neither a name nor a list: {t}"),
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                other => panic!("{path}: unknown type {other}"),
            };
            if !types.iter().any(|t| fits(t)) {
                errors.push(format!("{path}: {value} is not {types:?}"));
                return errors;
            }
        }
        if let Some(options) = schema["enum"].as_array()
            && !options.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {options:?}"));
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
            && n < min
        {
            errors.push(format!("{path}: {n} is below {min}"));
        }
        if schema["format"] == "date-time"
            && let Some(text) = value.as_str()
            && DateTime::parse_from_rfc3339(text).is_err()
        {
            errors.push(format!("{path}: {text} is not an RFC 3339 time"));
        }
        if let Some(object) = value.as_object()
            && schema.get("properties").is_some()
        {
            let properties = schema["properties"].as_object().unwrap();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    errors.push(format!("{path}: required `{name}` is missing"));
                }
            }
            for (name, v) in object {
                match properties.get(name) {
                    Some(s) => errors.extend(self.errors(s, v, &format!("{path}.{name}"))),
                    None => errors.push(format!("{path}: `{name}` is not documented")),
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, v) in array.iter().enumerate() {
                errors.extend(self.errors(items, v, &format!("{path}[{i}]")));
            }
        }
        errors
    }

    fn check(&self, component: &str, value: &Value) {
        let errors = self.errors(self.component(component), value, component);
        assert!(
            errors.is_empty(),
            "{component} does not validate:\n{}",
            errors.join("\n")
        );
    }
}

#[tokio::test]
async fn the_wire_json_validates_against_its_published_schema() {
    let v = Validator::new();
    for item in items().await {
        v.check(
            "WorkItem",
            &serde_json::to_value(super::WorkItem::from(&item)).unwrap(),
        );
    }
    for report in reports() {
        v.check(
            "ChainReport",
            &serde_json::to_value(super::ChainReport::from(&report)).unwrap(),
        );
    }
    // The validator does fail: an undocumented field, a missing one, a wrong spelling.
    let item = &items().await[0];
    let mut wire = serde_json::to_value(super::WorkItem::from(item)).unwrap();
    let good = wire.clone();
    wire["surprise"] = json!(1);
    assert!(!v.errors(v.component("WorkItem"), &wire, "").is_empty());
    let mut wire = good.clone();
    wire.as_object_mut().unwrap().remove("liveness");
    assert!(!v.errors(v.component("WorkItem"), &wire, "").is_empty());
    let mut wire = good;
    wire["stages"]["code"]["status_class"] = json!("Running");
    assert!(!v.errors(v.component("WorkItem"), &wire, "").is_empty());
}

#[test]
fn the_document_names_the_wire_types() {
    let v = Validator::new();
    for name in [
        "WorkItem",
        "Links",
        "Stages",
        "Stage",
        "StageName",
        "StatusClass",
        "Proof",
        "Service",
        "UsageAmounts",
        "TaskUsage",
        "WorkerUsage",
        "RunFigure",
        "BudgetState",
        "IngestFlags",
        "CorrelationConflict",
        "Liveness",
        "Verification",
        "VerificationLevel",
        "InjectionScan",
        "ChainReport",
        "ChainFinding",
        "ChainFindingKind",
        "ChainVerdict",
    ] {
        v.component(name);
    }
}

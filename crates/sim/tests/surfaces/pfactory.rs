//! PFactory's planning sessions: the lifecycle and the board column, the review,
//! and a person's approve, emit and reject with their refusals.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use cfactory_sim::{Scenario, SimConfig, Simulator};
use serde_json::{Value, json};

use super::fields;
use crate::{eventually, get, has, idle, post_json};

const LIFECYCLE: [&str; 7] = [
    "ingested",
    "processing",
    "reviewing",
    "processed",
    "approved",
    "rejected",
    "emitted",
];
const COLUMNS: [&str; 5] = [
    "backlog",
    "in_progress",
    "ai_review",
    "human_review",
    "done",
];

fn row<'a>(sessions: &'a [Value], id: &str) -> &'a Value {
    sessions
        .iter()
        .find(|s| s["session_id"] == id)
        .unwrap_or_else(|| panic!("no session {id}"))
}

#[tokio::test]
async fn sessions_list_the_lifecycle_the_board_column_and_the_review() {
    let sim = idle(SimConfig::default()).await;
    let p = &sim.pfactory_url;
    let (status, list) = get(&format!("{p}/api/plan/sessions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fields(&list), ["sessions"]);
    let sessions = list["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 10, "{}", sessions.len());
    for s in sessions {
        has(
            s,
            &[
                "session_id",
                "title",
                "status",
                "board_state",
                "issue_number",
                "origin_issue_number",
                "correlation_key",
                "created_at",
                "review",
            ],
        );
        for absent in ["updated_at", "repo", "github_issue"] {
            assert!(s.get(absent).is_none(), "{absent} in {s}");
        }
        assert!(LIFECYCLE.contains(&s["status"].as_str().unwrap()), "{s}");
        assert!(COLUMNS.contains(&s["board_state"].as_str().unwrap()), "{s}");
    }

    // A plan waiting for sign-off is processed, in human review, with no issue yet.
    let waiting = row(sessions, "901-audit-export");
    assert_eq!(waiting["status"], "processed");
    assert_eq!(waiting["board_state"], "human_review");
    assert!(waiting["issue_number"].is_null());
    assert!(waiting["correlation_key"].is_null());
    let review = &waiting["review"];
    assert_eq!(review["gates_passed"], true);
    assert_eq!(review["threshold"], 0.75);
    assert!(review["aggregate_score"].as_f64().unwrap() >= 0.75);
    for lens in review["lenses"].as_array().unwrap() {
        has(lens, &["lens", "score", "findings"]);
        assert!(lens["score"].as_f64().unwrap() <= 1.0);
        for f in lens["findings"].as_array().unwrap() {
            assert_eq!(f["blocking"], false, "{f}");
        }
    }
    let blocked = row(sessions, "900-legacy-sso");
    assert_eq!(blocked["review"]["gates_passed"], false);
    assert!(
        blocked["review"]["lenses"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["findings"].as_array().unwrap())
            .any(|f| f["blocking"] == true)
    );

    // A plan from an existing issue follows it; the epic it emitted is `issue_number`.
    let from_issue = sessions
        .iter()
        .find(|s| s["origin_issue_number"].is_u64() && s["status"] == "emitted")
        .expect("an emitted plan that came from an issue");
    let origin = from_issue["origin_issue_number"].as_u64().unwrap();
    let key = from_issue["correlation_key"].as_str().unwrap();
    assert!(
        key.ends_with(&format!("#{origin}")) && key.contains('/'),
        "{key}"
    );
    assert_ne!(from_issue["issue_number"].as_u64(), Some(origin));
    assert_eq!(from_issue["board_state"], "done");

    // The emitted epic: children keyed C1…, depending on each other by key.
    let emitted = sessions
        .iter()
        .find(|s| {
            s["status"] == "emitted"
                && s["aifactory_task_id"].is_null()
                && s["children"].as_u64() >= Some(2)
        })
        .expect("an emitted epic with children");
    let id = emitted["session_id"].as_str().unwrap();
    let (_, detail) = get(&format!("{p}/api/plan/sessions/{id}")).await;
    let result = &detail["emit_result"];
    assert_eq!(result["dry_run"], false);
    assert_eq!(result["epic_number"], emitted["issue_number"]);
    let numbers = result["child_numbers"].as_object().unwrap();
    let keys: BTreeSet<&str> = detail["epic"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        keys
    );
    assert!(keys.iter().all(|k| k.starts_with('C')), "{keys:?}");
    for child in detail["epic"]["children"].as_array().unwrap() {
        for dep in child["depends_on"].as_array().unwrap() {
            assert!(keys.contains(dep.as_str().unwrap()), "{dep} in {keys:?}");
        }
        assert!(numbers[child["key"].as_str().unwrap()].is_u64());
    }

    // The contract plan went to an AIFactory task: no issue, a synthetic key.
    let contract = sessions
        .iter()
        .find(|s| s["aifactory_task_id"].is_string())
        .expect("the contract plan");
    assert_eq!(contract["status"], "emitted");
    assert!(contract["issue_number"].is_null());
    assert!(
        contract["correlation_key"]
            .as_str()
            .unwrap()
            .starts_with("pf-")
    );

    // The published YAML's paths are not served.
    let (status, _) = get(&format!("{p}/api/plans")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn approval_needs_a_processed_plan_whose_gates_pass_and_creates_no_issue() {
    // Slow enough that the unit's new session is seen before it is processed.
    let sim = Simulator::start(SimConfig {
        speed: 0.1,
        scenarios: vec![Scenario::Happy],
        units: Some(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let p = &sim.pfactory_url;
    let fresh: String = eventually("the unit's session", 10, || async {
        let (_, list) = get(&format!("{p}/api/plan/sessions")).await;
        list["sessions"]
            .as_array()?
            .iter()
            .find(|s| {
                s["session_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("001-"))
            })
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
    })
    .await;
    let url = |id: &str, action: &str| format!("{p}/api/plan/sessions/{id}/{action}");
    let (status, body) = post_json(&url(&fresh, "approve"), json!({"approver": "olaf"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post_json(&url(&fresh, "emit"), json!({"repo": "acme/shop"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Gates that fail: 409, and the session still waits.
    let (status, body) = post_json(
        &url("900-legacy-sso", "approve"),
        json!({"approver": "olaf"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("security"));
    let (_, detail) = get(&format!("{p}/api/plan/sessions/900-legacy-sso")).await;
    assert_eq!(detail["status"], "processed");

    let (status, _) = post_json(&url("901-audit-export", "approve"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "approver is required"
    );
    let (status, approved) = post_json(
        &url("901-audit-export", "approve"),
        json!({"approver": "olaf", "feedback": "ship it"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["review"]["human_approval"]["approved"], true);
    assert!(
        approved["emitted_issue_number"].is_null(),
        "approving creates no issue"
    );
    assert!(approved["emit_result"].is_null());
    let (_, list) = get(&format!("{p}/api/plan/sessions")).await;
    let listed = row(list["sessions"].as_array().unwrap(), "901-audit-export");
    assert_eq!(listed["board_state"], "done");
    assert!(listed["issue_number"].is_null());

    // An emit is a dry run unless told otherwise: it plans and creates nothing.
    let (status, dry) = post_json(
        &url("901-audit-export", "emit"),
        json!({"repo": "acme/console"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dry["emit_result"]["dry_run"], true);
    assert!(dry["emit_result"]["epic_number"].is_null());
    assert_eq!(dry["emit_result"]["child_numbers"], json!({}));
    assert_eq!(dry["status"], "approved");
    let (status, _) = post_json(&url("901-audit-export", "emit"), json!({"dry_run": false})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "repo is required");
    // A live emit of a plan nobody approved is refused.
    let (status, _) = post_json(
        &url("900-legacy-sso", "emit"),
        json!({"repo": "acme/platform", "dry_run": false}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, live) = post_json(
        &url("901-audit-export", "emit"),
        json!({"repo": "acme/console", "dry_run": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["status"], "emitted");
    let epic = live["emitted_issue_number"].as_u64().expect("an epic");
    assert_eq!(live["emit_result"]["dry_run"], false);
    assert_eq!(live["emit_result"]["epic_number"], epic);
    assert_eq!(
        live["emit_result"]["child_numbers"],
        json!({"C1": epic + 1, "C2": epic + 2})
    );
    assert_eq!(live["correlation_key"], epic.to_string());
    let (status, _) = post_json(
        &url("901-audit-export", "approve"),
        json!({"approver": "olaf"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "already emitted");

    // Rejecting needs feedback.
    let (status, _) = post_json(
        &url("900-legacy-sso", "reject"),
        json!({"approver": "olaf"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, rejected) = post_json(
        &url("900-legacy-sso", "reject"),
        json!({"approver": "olaf", "feedback": "log no tokens"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["correlation_key"], "pf-900-legacy-sso");
    let (_, list) = get(&format!("{p}/api/plan/sessions")).await;
    assert_eq!(
        row(list["sessions"].as_array().unwrap(), "900-legacy-sso")["board_state"],
        "human_review"
    );
    sim.shutdown().await;
}

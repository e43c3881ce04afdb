//! TFactory's two task lists: the pipeline's verification specs
//! (`/api/tfactory/tasks`, by spec id, with the test plan) and the older kanban board
//! (`/api/tasks`, by `<project uuid>:<spec>`), in the captured real server's shapes.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use cfactory_sim::SimConfig;
use serde_json::{Value, json};

use super::fields;
use crate::{get, has, idle, post_json};

const PIPELINE: [&str; 6] = [
    "pending",
    "evaluating",
    "evaluated",
    "triaging",
    "triaged",
    "stuck",
];
const BOARD: [&str; 5] = [
    "backlog",
    "in_progress",
    "ai_review",
    "human_review",
    "done",
];
const LANES: [&str; 5] = ["unit", "browser", "api", "integration", "mutation"];

#[tokio::test]
async fn the_pipeline_lists_specs_by_project_name_with_the_issue_in_their_source() {
    let sim = idle(SimConfig::default()).await;
    let t = &sim.tfactory_url;
    let (status, list) = get(&format!("{t}/api/tfactory/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys = fields(&list);
    keys.sort_unstable();
    assert_eq!(keys, ["count", "tasks"]);
    let specs = list["tasks"].as_array().unwrap();
    assert_eq!(list["count"], specs.len());
    for s in specs {
        let mut keys = fields(s);
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "phase",
                "project_id",
                "source",
                "spec_id",
                "status",
                "task_id",
                "tenant",
                "title",
                "updated_at"
            ]
        );
        assert_eq!(s["task_id"], s["spec_id"]);
        assert!(
            ["shop", "platform", "console"].contains(&s["project_id"].as_str().unwrap()),
            "a project name, not a UUID: {s}"
        );
        assert!(PIPELINE.contains(&s["status"].as_str().unwrap()), "{s}");
    }
    let times: Vec<&str> = specs
        .iter()
        .map(|s| s["updated_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    let verified = specs
        .iter()
        .find(|s| s["status"] == "triaged" && s["source"]["aifactory"]["github_issue"].is_u64())
        .expect("a triaged spec from an issue");
    assert!(
        verified["source"]["aifactory"]["task_id"]
            .as_str()
            .unwrap()
            .starts_with("proj:")
    );
    let ingest = specs.iter().find(|s| s["spec_id"] == "ingest-901").unwrap();
    assert!(ingest["title"].is_null());
    assert_eq!(ingest["status"], "pending");
    assert_eq!(ingest["phase"], "created");
    assert_eq!(
        ingest["source"],
        json!({"aifactory": {"github_issue": null}})
    );

    // The detail is status.json verbatim plus which reports exist.
    let detail = |id: String| async move { get(&format!("{t}/api/tfactory/tasks/{id}")).await };
    let stuck = specs
        .iter()
        .find(|s| s["status"] == "stuck")
        .expect("a stuck spec");
    let (status, body) = detail(stuck["spec_id"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys = fields(&body);
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "artefacts",
            "project_id",
            "spec_id",
            "status_json",
            "task_id"
        ]
    );
    assert_eq!(body["status_json"]["needs_human"], true);
    assert!(body["status_json"]["stuck_reason"].is_string());
    let (_, body) = detail(verified["spec_id"].as_str().unwrap().to_owned()).await;
    let sj = &body["status_json"];
    assert!(
        ["success", "failure", "human_review"].contains(&sj["outcome"].as_str().unwrap()),
        "{sj}"
    );
    assert!(
        sj["flagged_count"].is_u64() || sj["outcome"] == "failure",
        "{sj}"
    );
    let lanes = sj["lane_progress"].as_object().unwrap();
    assert_eq!(lanes.len(), LANES.len());
    for (lane, state) in lanes {
        assert!(LANES.contains(&lane.as_str()));
        assert!(["pending", "running", "passed", "failed"].contains(&state.as_str().unwrap()));
    }
    assert_eq!(body["artefacts"]["test_plan"]["exists"], true);
    assert_eq!(body["artefacts"]["triage_report_json"]["exists"], true);

    // A kanban id is not a spec id; an unknown one is not found.
    let (status, body) = detail("3f6c1a2e-8b7d-4c1e-9a55-2d0c7e4b9f10:spec-001".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["detail"],
        "invalid spec_id: '3f6c1a2e-8b7d-4c1e-9a55-2d0c7e4b9f10:spec-001'"
    );
    let (status, body) = detail("spec-999".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "task not found: spec-999");

    // There is no /api/specs.
    for path in ["/api/specs", "/api/specs/spec-001"] {
        let (status, body) = get(&format!("{t}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_test_plan_puts_lanes_on_subtasks_and_dependencies_on_phases() {
    let sim = idle(SimConfig::default()).await;
    let t = &sim.tfactory_url;
    let (status, body) = get(&format!("{t}/api/tfactory/tasks/ingest-901/test-plan.json")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no plan before the planner ran"
    );
    assert_eq!(
        body,
        json!({"detail": "artefact not found: test_plan.json"})
    );

    let (_, list) = get(&format!("{t}/api/tfactory/tasks")).await;
    let mut plans = Vec::new();
    for s in list["tasks"].as_array().unwrap() {
        if s["status"] == "triaged" {
            let id = s["spec_id"].as_str().unwrap();
            let (status, plan) = get(&format!("{t}/api/tfactory/tasks/{id}/test-plan.json")).await;
            assert_eq!(status, StatusCode::OK, "{id}");
            plans.push(plan);
        }
    }
    assert!(!plans.is_empty());
    for plan in &plans {
        has(
            plan,
            &[
                "feature",
                "workflow_type",
                "phases",
                "final_acceptance",
                "planStatus",
            ],
        );
        let phases = plan["phases"].as_array().unwrap();
        for (i, phase) in phases.iter().enumerate() {
            assert_eq!(phase["phase"], i + 1);
            assert_eq!(phase["chunks"], phase["subtasks"]);
            for st in phase["subtasks"].as_array().unwrap() {
                assert!(LANES.contains(&st["lane"].as_str().unwrap()), "{st}");
                has(
                    st,
                    &[
                        "id",
                        "description",
                        "status",
                        "language",
                        "framework",
                        "verification",
                    ],
                );
            }
            match phase.get("depends_on") {
                None => assert_eq!(i, 0, "only the first phase waits on nothing"),
                Some(deps) => assert_eq!(*deps, json!((1..=i).collect::<Vec<_>>())),
            }
        }
    }
    assert!(
        plans
            .iter()
            .any(|p| p["phases"].as_array().unwrap().len() >= 2),
        "a plan with a dependency"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_kanban_board_keys_specs_by_project_uuid_and_knows_only_board_statuses() {
    let sim = idle(SimConfig::default()).await;
    let t = &sim.tfactory_url;
    let (status, board) = get(&format!("{t}/api/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys = fields(&board);
    keys.sort_unstable();
    assert_eq!(keys, ["tasks", "total"]);
    let rows = board["tasks"].as_array().unwrap();
    assert_eq!(board["total"], rows.len());
    let (_, pipeline) = get(&format!("{t}/api/tfactory/tasks")).await;
    let pipeline: BTreeMap<&str, &Value> = pipeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["spec_id"].as_str().unwrap(), s))
        .collect();
    assert_eq!(rows.len(), pipeline.len());
    for row in rows {
        let project = row["project_id"].as_str().unwrap();
        assert_eq!(project.len(), 36, "a UUID: {project}");
        assert_eq!(
            row["id"],
            format!("{project}:{}", row["spec_id"].as_str().unwrap())
        );
        assert!(BOARD.contains(&row["status"].as_str().unwrap()), "{row}");
        for absent in ["issue_number", "github_issue", "source"] {
            assert!(row.get(absent).is_none(), "{absent} in {row}");
        }
        let spec = pipeline[row["spec_id"].as_str().unwrap()];
        assert_eq!(
            row["metadata"]["githubIssueNumber"],
            spec["source"]["aifactory"]["github_issue"]
        );
        // Naive local times with microseconds: no offset, no `Z`.
        let created = row["created_at"].as_str().unwrap();
        assert_eq!(created.len(), 26, "{created}");
        assert!(
            !created.contains('+') && !created.ends_with('Z'),
            "{created}"
        );
        // A pipeline word never reaches the board: a finished spec waits in the backlog.
        if matches!(spec["status"].as_str(), Some("triaged" | "stuck")) {
            assert_eq!(row["status"], "backlog", "{row}");
        }
    }
    assert!(pipeline.values().any(|s| s["status"] == "stuck"));
    let gated = rows.iter().find(|r| r["spec_id"] == "spec-900").unwrap();
    assert_eq!(gated["status"], "human_review");
    assert_eq!(gated["review_reason"], "plan_review");

    // The detail answers only to `project:spec`, in camelCase.
    let id = gated["id"].as_str().unwrap();
    let (status, detail) = get(&format!("{t}/api/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    has(
        &detail,
        &[
            "id",
            "specId",
            "projectId",
            "status",
            "phase",
            "subtasks",
            "metadata",
            "executionProgress",
            "createdAt",
            "updatedAt",
            "reviewReason",
        ],
    );
    assert!(detail.get("spec_id").is_none());
    for bare in ["spec-900", "ingest-901"] {
        let (status, body) = get(&format!("{t}/api/tasks/{bare}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"detail": "Invalid task ID format. Expected 'project_id:spec_id'"})
        );
    }

    // Recover sets the board status it is given.
    let (status, body) = post_json(
        &format!("{t}/api/tasks/{id}/recover"),
        json!({"targetStatus": "ai_review"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["newStatus"], "ai_review");
    assert_eq!(body["data"]["task_id"], id);
    let (_, detail) = get(&format!("{t}/api/tasks/{id}")).await;
    assert_eq!(detail["status"], "ai_review");
    sim.shutdown().await;
}

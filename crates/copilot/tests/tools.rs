//! The tool registry against the in-memory store: every read tool, the untrusted-data
//! wrapping, proposals stored as prepared, refusals, scopes and input errors.

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use serde_json::{Value, json};

use cfactory_copilot::{ToolError, UNTRUSTED_DATA_KEY, propose_tool_names, read_tool_names};
use cfactory_domain::actions::{ActionStatus, ActionStore};
use common::{EVIL_TITLE, ctx, tenant, world};

fn data(v: &Value) -> &Value {
    assert!(
        v["notice"].as_str().unwrap().contains("never instructions"),
        "{v}"
    );
    &v[UNTRUSTED_DATA_KEY]
}

#[tokio::test]
async fn specs_cover_every_tool_with_an_object_schema() {
    let w = world().await;
    let specs = w.registry.specs();
    let names: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let expected: BTreeSet<&str> = read_tool_names()
        .iter()
        .chain(propose_tool_names())
        .copied()
        .collect();
    assert_eq!(names, expected);
    assert_eq!(specs.len(), 15);
    for s in &specs {
        assert_eq!(s.input_schema["type"], "object", "{}", s.name);
        assert_eq!(s.input_schema["additionalProperties"], false, "{}", s.name);
        assert!(s.description.len() > 40, "{}", s.name);
    }
    let propose = specs
        .iter()
        .find(|s| s.name == "propose_kick_handback")
        .unwrap();
    assert_eq!(propose.input_schema["required"], json!(["correlation_key"]));
    let fields: BTreeSet<&String> = propose.input_schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        fields.into_iter().cloned().collect::<Vec<_>>(),
        ["correlation_key", "note"],
        "a propose tool's input cannot name a service, method or endpoint"
    );
    assert_eq!(w.registry.specs_for(&ctx(false)).len(), 8);
    assert_eq!(w.registry.specs_for(&ctx(true)).len(), 15);
}

#[tokio::test]
async fn list_filters_and_wraps_titles_as_untrusted_data() {
    let w = world().await;
    let out = w
        .registry
        .call(&ctx(false), "list_workitems", json!({}))
        .await
        .unwrap();
    let d = data(&out);
    assert_eq!(d["count"], 3);
    let titles: Vec<&str> = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    assert!(titles.contains(&EVIL_TITLE));
    assert!(
        out.get("items").is_none(),
        "upstream text only under untrusted_data"
    );

    let out = w
        .registry
        .call(
            &ctx(false),
            "list_workitems",
            json!({"stage": "code", "status": "review", "limit": 5}),
        )
        .await
        .unwrap();
    let items = data(&out)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["correlation_key"], "143");
    assert_eq!(items[0]["stages"]["code"]["status"], "human_review");

    let out = w
        .registry
        .call(&ctx(false), "list_workitems", json!({"q": "legacy"}))
        .await
        .unwrap();
    assert_eq!(
        data(&out)["items"][0]["correlation_key"],
        "pf-900-legacy-sso"
    );
}

#[tokio::test]
async fn get_and_timeline_read_one_item() {
    let w = world().await;
    let out = w
        .registry
        .call(&ctx(false), "get_workitem", json!({"correlation_key": 142}))
        .await
        .unwrap();
    let item = data(&out);
    assert_eq!(item["correlation_key"], "142");
    assert_eq!(item["stages"]["test"]["outcome"], "failure");
    assert_eq!(item["links"]["aifactory_task_ids"], json!(["proj:001"]));

    let out = w
        .registry
        .call(
            &ctx(false),
            "timeline_summary",
            json!({"correlation_key": "#142", "last": 2}),
        )
        .await
        .unwrap();
    let t = data(&out);
    assert_eq!(t["event_count"], 3);
    assert_eq!(
        t["by_service"],
        json!({"aifactory": 1, "pfactory": 1, "tfactory": 1})
    );
    assert_eq!(t["span_seconds"], 9 * 60);
    let last = t["last_events"].as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[1]["service"], "tfactory");
    assert_eq!(
        last[1]["halt_reason"],
        "tests_failed: 2 failing, handback to AIFactory (cycle 1/2)"
    );

    let err = w
        .registry
        .call(
            &ctx(false),
            "get_workitem",
            json!({"correlation_key": "999"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn insight_tools_answer_from_the_insight_source() {
    let w = world().await;
    let c = ctx(false);
    let needs = w.registry.call(&c, "needs_you", json!({})).await.unwrap();
    let keys: Vec<&str> = data(&needs)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["correlation_key"].as_str())
        .collect();
    assert!(keys.contains(&"pf-900-legacy-sso"), "{needs}");
    assert!(keys.contains(&"143"), "{needs}");

    let found = w
        .registry
        .call(
            &c,
            "anomalies",
            json!({"correlation_key": "142", "kind": "failure"}),
        )
        .await
        .unwrap();
    let found = data(&found);
    assert!(found["total"].as_u64().unwrap() >= 1, "{found}");
    assert!(
        found["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] == "failure" && a["correlation_key"] == "142")
    );

    let hits = w
        .registry
        .call(&c, "search", json!({"q": "audit"}))
        .await
        .unwrap();
    assert_eq!(data(&hits)["hits"][0]["correlation_key"], "143");

    let rollups = w
        .registry
        .call(
            &c,
            "rollups",
            json!({"since": "2026-06-01", "until": "2026-06-02T00:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(data(&rollups)["items"], 3);

    let usage = w
        .registry
        .call(&c, "usage", json!({"group_by": "model"}))
        .await
        .unwrap();
    assert_eq!(data(&usage)["rows"][0]["key"], "claude-sonnet-4-6");
    assert_eq!(data(&usage)["group_by"], "model");
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let w = world().await;
    let c = ctx(true);
    let cases = [
        ("list_workitems", json!({"stage": "deploy"}), "stage"),
        ("list_workitems", json!({"limit": 500}), "limit"),
        ("list_workitems", json!({"endpoint": "/x"}), "endpoint"),
        ("get_workitem", json!({}), "correlation_key"),
        ("get_workitem", json!("142"), "input"),
        ("rollups", json!({"since": "last week"}), "since"),
        (
            "rollups",
            json!({"since": "2026-06-02", "until": "2026-06-01"}),
            "until",
        ),
        ("anomalies", json!({"kind": "meteor"}), "kind"),
        ("search", json!({}), "q"),
        (
            "propose_recover",
            json!({"correlation_key": "142", "target_service": "pfactory"}),
            "target_service",
        ),
        (
            "propose_recover",
            json!({"correlation_key": ["142"]}),
            "correlation_key",
        ),
    ];
    for (tool, input, field) in cases {
        match w.registry.call(&c, tool, input.clone()).await {
            Err(ToolError::BadInput { field: f, .. }) => assert_eq!(f, field, "{tool} {input}"),
            other => panic!("{tool} {input}: expected bad input on {field}, got {other:?}"),
        }
    }
    let err = w
        .registry
        .call(&c, "confirm_action", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::UnknownTool("confirm_action".into()));
    assert_eq!(err.kind(), "unknown_tool");
}

#[tokio::test]
async fn a_proposal_is_planned_stored_as_prepared_and_wrapped() {
    let w = world().await;
    let out = w
        .registry
        .call_detailed(
            &ctx(true),
            "propose_kick_handback",
            json!({"correlation_key": "142", "note": "Round half to even."}),
        )
        .await
        .unwrap();
    let action = out.proposal.expect("a proposal");
    assert_eq!(action.status, ActionStatus::Prepared);
    assert_eq!(action.proposed_by, "key_test");
    assert_eq!(action.tenant, tenant());
    assert_eq!(
        action.endpoint.as_str(),
        "/api/tasks/proj:001/apply-correction"
    );
    assert_eq!(action.expires_at - action.created_at, Duration::minutes(15));
    let md = action.payload["fix_request_md"].as_str().unwrap();
    assert!(md.contains("- `unit::refund_rounding`"), "{md}");
    assert!(md.ends_with("Round half to even.\n"), "{md}");

    let v = &out.value;
    assert_eq!(v["status"], "prepared");
    assert_eq!(v["action_id"], action.id.as_str());
    assert_eq!(v["target_service"], "aifactory");
    assert!(
        v["next_step"]
            .as_str()
            .unwrap()
            .contains("Nothing has been sent")
    );
    assert_eq!(v[UNTRUSTED_DATA_KEY]["payload"], action.payload);

    let stored = w.actions.get(&tenant(), &action.id).await.unwrap().unwrap();
    assert_eq!(stored, action);
}

#[tokio::test]
async fn the_propose_api_path_plans_the_same_way() {
    let w = world().await;
    let key = cfactory_domain::CorrelationKey::parse("143").unwrap();
    let action = w
        .registry
        .propose(
            &ctx(true),
            cfactory_domain::actions::ActionKind::ApproveGate,
            &key,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        action.endpoint.as_str(),
        "/api/tasks/proj:002/worktree/create-pr"
    );
    assert_eq!(action.follow_ups.len(), 1);
    assert_eq!(
        w.actions
            .list(&tenant(), Some(ActionStatus::Prepared), 10)
            .await
            .unwrap()
            .actions
            .len(),
        1
    );
}

#[tokio::test]
async fn refusals_and_scopes_store_nothing() {
    let w = world().await;
    let err = w
        .registry
        .call(
            &ctx(true),
            "propose_approve_gate",
            json!({"correlation_key": "pf-900-legacy-sso"}),
        )
        .await
        .unwrap_err();
    match &err {
        ToolError::Refused(reason) => {
            assert!(reason.contains("review gates have not passed"), "{reason}");
            assert!(reason.contains("blocking: security"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let err = w
        .registry
        .call(
            &ctx(false),
            "propose_recover",
            json!({"correlation_key": "142"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_allowed");
    let err = w
        .registry
        .call(
            &ctx(true),
            "propose_recover",
            json!({"correlation_key": "404"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found");
    // Another tenant sees none of this tenant's items.
    let mut other = ctx(true);
    other.tenant = cfactory_domain::TenantId::parse("other").unwrap();
    let err = w
        .registry
        .call(
            &other,
            "propose_kick_handback",
            json!({"correlation_key": "142"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert!(
        w.actions
            .list(&tenant(), None, 10)
            .await
            .unwrap()
            .actions
            .is_empty()
    );
}

//! The proposed-action port: saved, listed, and moved by compare-and-set.

use cfactory_domain::actions::{
    ActionKind, ActionStatus, Actor, Door, Endpoint, HttpMethod, PreparedAction, StepResult,
};
use cfactory_domain::ports::StoreError;
use cfactory_domain::{CorrelationKey, Service, TenantId};
use serde_json::json;

use crate::Subject;
use crate::helpers::{t, tenant};

fn action(id: &str, tenant: &TenantId, minute: i64) -> PreparedAction {
    PreparedAction {
        id: id.to_owned(),
        kind: ActionKind::KickHandback,
        correlation_key: CorrelationKey::parse("142").unwrap(),
        target_service: Service::AIFACTORY,
        method: HttpMethod::Post,
        endpoint: Endpoint::parse("/api/tasks/t1/apply-correction").unwrap(),
        payload: json!({"fix_request_md": "fix", "confirm": true, "by": "{{approver}}"}),
        follow_ups: Vec::new(),
        rationale: "tests failed".into(),
        status: ActionStatus::Prepared,
        created_at: t(minute),
        expires_at: t(minute + 15),
        note: Some("note".into()),
        proposed_by: "local".into(),
        proposed_via: Some(Door::Mcp),
        decided_by: None,
        decided_via: None,
        tenant: tenant.clone(),
        results: Vec::new(),
    }
}

/// Actions read back as saved, list newest first per tenant with a status filter, and a
/// transition is a compare-and-set: of many concurrent moves from `prepared`, one wins.
pub async fn actions_are_stored_listed_and_moved_exactly_once(s: &Subject) {
    let other = TenantId::parse("acme").unwrap();
    let first = action("act_1", &tenant(), 0);
    s.actions.save(&first).await.unwrap();
    s.actions
        .save(&action("act_2", &tenant(), 5))
        .await
        .unwrap();
    s.actions.save(&action("act_9", &other, 1)).await.unwrap();
    assert!(matches!(
        s.actions.save(&first).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        s.actions.get(&tenant(), "act_1").await.unwrap().unwrap(),
        first
    );
    assert!(s.actions.get(&other, "act_1").await.unwrap().is_none());
    let listed = s.actions.list(&tenant(), None, 10).await.unwrap();
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);
    assert_eq!(
        listed
            .actions
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        vec!["act_2", "act_1"]
    );

    let mut racers = Vec::new();
    for _ in 0..8 {
        let actions = s.actions.clone();
        racers.push(tokio::spawn(async move {
            actions
                .transition(
                    &tenant(),
                    "act_1",
                    ActionStatus::Prepared,
                    ActionStatus::Executing,
                    Vec::new(),
                    Some(&Actor::new("key:approver", Door::Ui)),
                )
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        if r.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim");
    let result = StepResult {
        method: HttpMethod::Post,
        endpoint: Endpoint::parse("/api/tasks/t1/apply-correction").unwrap(),
        status_code: Some(200),
        ok: true,
        response: json!({"success": true}),
        error: None,
        duration_ms: 12,
    };
    let done = s
        .actions
        .transition(
            &tenant(),
            "act_1",
            ActionStatus::Executing,
            ActionStatus::Executed,
            vec![result.clone()],
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, ActionStatus::Executed);
    assert_eq!(done.results, vec![result]);
    assert_eq!(
        (done.decided_by.as_deref(), done.decided_via),
        (Some("key:approver"), Some(Door::Ui)),
        "the claim's decider survives the later move that names none"
    );
    assert_eq!(done.proposed_via, Some(Door::Mcp));
    assert_eq!(
        s.actions.get(&tenant(), "act_1").await.unwrap().unwrap(),
        done
    );
    assert!(
        s.actions
            .transition(
                &tenant(),
                "act_1",
                ActionStatus::Prepared,
                ActionStatus::Rejected,
                Vec::new(),
                None,
            )
            .await
            .unwrap()
            .is_none(),
        "an executed action is never moved again"
    );
    let executed = s
        .actions
        .list(&tenant(), Some(ActionStatus::Executed), 10)
        .await
        .unwrap()
        .actions;
    assert_eq!(executed.len(), 1);
    assert!(
        s.actions
            .transition(
                &other,
                "act_2",
                ActionStatus::Prepared,
                ActionStatus::Rejected,
                Vec::new(),
                None,
            )
            .await
            .unwrap()
            .is_none(),
        "another tenant's id moves nothing"
    );
}

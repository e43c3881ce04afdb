//! Every action kind, proposed and confirmed against stand-ins that answer as the real
//! PFactory and AIFactory route handlers do (`shared/real-upstreams/README.md`): status
//! codes, refusals and side effects. What each call sends, and what the cockpit records
//! of the answer, is checked call by call.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use common::{Server, Store};
use serde_json::{Value, json};

/// One call a stand-in received.
#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    path: String,
    body: Value,
}

/// The stand-ins' shared state: every call, and PFactory's sessions.
#[derive(Default)]
struct Upstreams {
    calls: Mutex<Vec<Call>>,
    /// session id → (status, gates passed)
    sessions: Mutex<BTreeMap<String, (String, bool)>>,
    projects: BTreeSet<String>,
}

type Shared = Arc<Upstreams>;

impl Upstreams {
    fn record(&self, method: &'static str, path: String, body: Value) {
        self.calls.lock().unwrap().push(Call { method, path, body });
    }

    fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }
}

type Reply = (StatusCode, Json<Value>);

fn reply(status: StatusCode, body: Value) -> Reply {
    (status, Json(body))
}

/// PFactory: approve is 400 before the plan is processed and 409 while gates fail; it
/// creates no issues. Emit creates them only when `dry_run` is false (the default is
/// true). Reject needs feedback.
fn pfactory(state: Shared) -> Router {
    async fn approve(
        State(s): State<Shared>,
        Path(id): Path<String>,
        Json(body): Json<Value>,
    ) -> Reply {
        s.record("POST", format!("/api/plan/sessions/{id}/approve"), body);
        let mut sessions = s.sessions.lock().unwrap();
        let Some((status, gates)) = sessions.get_mut(&id) else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"detail": "Session not found"}),
            );
        };
        if status != "processed" {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"detail": "Plan must be processed before approval"}),
            );
        }
        if !*gates {
            return reply(
                StatusCode::CONFLICT,
                json!({"detail": "Review gates have not passed"}),
            );
        }
        *status = "approved".into();
        reply(
            StatusCode::OK,
            json!({"session_id": id, "status": "approved"}),
        )
    }
    async fn emit(
        State(s): State<Shared>,
        Path(id): Path<String>,
        Json(body): Json<Value>,
    ) -> Reply {
        s.record(
            "POST",
            format!("/api/plan/sessions/{id}/emit"),
            body.clone(),
        );
        let dry_run = body["dry_run"].as_bool().unwrap_or(true);
        let mut sessions = s.sessions.lock().unwrap();
        let Some((status, _)) = sessions.get_mut(&id) else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"detail": "Session not found"}),
            );
        };
        if status != "approved" {
            return reply(
                StatusCode::CONFLICT,
                json!({"detail": "Plan is not approved"}),
            );
        }
        if dry_run {
            return reply(StatusCode::OK, json!({"dry_run": true, "issues": []}));
        }
        *status = "emitted".into();
        reply(
            StatusCode::OK,
            json!({"dry_run": false, "epic_number": 7151, "child_numbers": {"C1": 7152}}),
        )
    }
    async fn reject(
        State(s): State<Shared>,
        Path(id): Path<String>,
        Json(body): Json<Value>,
    ) -> Reply {
        s.record(
            "POST",
            format!("/api/plan/sessions/{id}/reject"),
            body.clone(),
        );
        if body["feedback"].as_str().is_none_or(str::is_empty) {
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": "feedback is required"}),
            );
        }
        reply(StatusCode::OK, json!({"status": "rejected"}))
    }
    Router::new()
        .route("/api/plan/sessions/{id}/approve", post(approve))
        .route("/api/plan/sessions/{id}/emit", post(emit))
        .route("/api/plan/sessions/{id}/reject", post(reject))
        .with_state(state)
}

/// AIFactory: create-and-run takes only a key of its project registry (404 otherwise);
/// apply-correction never answers 409; recover refuses nothing; delete needs an admin
/// token (403 for a member's).
fn aifactory(state: Shared) -> Router {
    async fn create_and_run(
        State(s): State<Shared>,
        Query(q): Query<BTreeMap<String, String>>,
        Json(body): Json<Value>,
    ) -> Reply {
        let project = q.get("project_id").cloned().unwrap_or_default();
        s.record(
            "POST",
            format!("/api/tasks/create-and-run?project_id={project}"),
            body,
        );
        if !s.projects.contains(&project) {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"detail": "Project not found"}),
            );
        }
        reply(
            StatusCode::OK,
            json!({"success": true, "task_id": format!("{project}:031-refunds")}),
        )
    }
    async fn task_post(
        State(s): State<Shared>,
        Path((id, verb)): Path<(String, String)>,
        body: Option<Json<Value>>,
    ) -> Reply {
        let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
        s.record("POST", format!("/api/tasks/{id}/{verb}"), body.clone());
        match verb.as_str() {
            "approve-plan" => reply(StatusCode::OK, json!({"success": true})),
            "apply-correction" => reply(StatusCode::OK, json!({"success": true, "task_id": id})),
            "recover" => {
                let restart = body["autoRestart"].as_bool().unwrap_or(false);
                let status = if restart { "in_progress" } else { "backlog" };
                reply(
                    StatusCode::OK,
                    json!({"success": true, "data": {"newStatus": status, "recovered": true}}),
                )
            }
            _ => reply(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})),
        }
    }
    async fn worktree(
        State(s): State<Shared>,
        Path((id, verb)): Path<(String, String)>,
        body: Option<Json<Value>>,
    ) -> Reply {
        let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
        s.record("POST", format!("/api/tasks/{id}/worktree/{verb}"), body);
        match verb.as_str() {
            "create-pr" => reply(
                StatusCode::OK,
                json!({"success": true, "data": {"prNumber": 77}}),
            ),
            "merge" => reply(StatusCode::OK, json!({"success": true})),
            _ => reply(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})),
        }
    }
    async fn remove(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Reply {
        s.record("DELETE", format!("/api/tasks/{id}"), Value::Null);
        let admin = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Bearer admin-token");
        if admin {
            reply(StatusCode::NO_CONTENT, Value::Null)
        } else {
            reply(
                StatusCode::FORBIDDEN,
                json!({"detail": "Admin privileges required"}),
            )
        }
    }
    Router::new()
        .route("/api/tasks/create-and-run", post(create_and_run))
        .route("/api/tasks/{id}/{verb}", post(task_post))
        .route("/api/tasks/{id}/worktree/{verb}", post(worktree))
        .route("/api/tasks/{id}", delete(remove))
        .with_state(state)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn time(minutes_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339()
}

fn plan(key: &str, session: &str, status: &str, extra: Value) -> Value {
    let mut v = json!({
        "correlation_key": key, "service": "pfactory", "task_id": session,
        "status": status, "phase": status, "updated_at": time(30),
        "correlation": {"session_id": session}, "title": format!("Plan {session}"),
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn build(id: &str, key: &str, task: &str, status: &str, extra: Value) -> Value {
    let mut v = json!({
        "id": id, "specversion": "1.0", "source": "/aifactory",
        "type": "io.factory.aifactory.completion", "time": time(20),
        "correlation_key": key, "service": "aifactory", "task_id": task,
        "status": status, "phase": "act", "repo": "acme/shop",
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

struct Cockpit {
    server: Server,
    upstreams: Shared,
}

impl Cockpit {
    async fn start(store: &Store) -> Self {
        let upstreams: Shared = Arc::new(Upstreams {
            projects: ["shop".to_owned()].into(),
            ..Upstreams::default()
        });
        for (id, gates) in [
            ("s-approve", true),
            ("s-gates", false),
            ("s-unknown", false),
        ] {
            upstreams
                .sessions
                .lock()
                .unwrap()
                .insert(id.into(), ("processed".into(), gates));
        }
        let pf = serve(pfactory(upstreams.clone())).await;
        let af = serve(aifactory(upstreams.clone())).await;
        let server = Server::start_with(
            store,
            &[
                "--pfactory-url",
                &pf,
                "--aifactory-url",
                &af,
                "--poll-interval-seconds",
                "0",
                "--aifactory-project",
                "acme/shop=shop",
                "--upstream-token",
                "member-token",
            ],
            &[],
        )
        .unwrap();
        Self { server, upstreams }
    }

    async fn ingest(&self, events: Vec<Value>) {
        let (status, body) = self
            .server
            .post_raw("/api/events", &Value::Array(events).to_string(), None)
            .await;
        assert!(status == 200 || status == 202, "{body}");
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .server
            .http
            .post(self.server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn propose(&self, kind: &str, key: &str, note: Option<&str>) -> (u16, Value) {
        self.post(
            "/api/actions/propose",
            json!({"kind": kind, "correlation_key": key, "note": note}),
        )
        .await
    }

    /// Proposes `kind` on `key` (which must be accepted) and confirms it; the action as
    /// the confirm left it.
    async fn run(&self, kind: &str, key: &str, note: Option<&str>) -> Value {
        let (status, proposed) = self.propose(kind, key, note).await;
        assert_eq!(status, 201, "{kind} on {key}: {proposed}");
        let id = proposed["id"].as_str().unwrap();
        let (status, done) = self
            .post(&format!("/api/actions/{id}/confirm"), json!({}))
            .await;
        assert_eq!(status, 200, "{done}");
        done["action"].clone()
    }
}

#[tokio::test]
async fn every_action_kind_does_what_the_real_route_does() {
    let store = Store::sqlite();
    let c = Cockpit::start(&store).await;
    let gates = |passed: bool| {
        json!({"review": {"gates_passed": passed, "aggregate_score": if passed { 0.9 } else { 0.5 },
            "threshold": 0.7, "lenses": [{"lens": "risk", "score": 2,
            "findings": [{"blocking": !passed, "text": "no rollback plan"}]}]}})
    };
    c.ingest(vec![
        plan("acme/shop#7150", "s-approve", "processed", gates(true)),
        plan("acme/shop#7160", "s-gates", "processed", gates(false)),
        plan("acme/shop#7170", "s-unknown", "processed", json!({})),
        build(
            "e1",
            "7180",
            "shop:plan",
            "human_review",
            json!({"review_reason": "plan_review"}),
        ),
        build(
            "e2",
            "7181",
            "shop:done",
            "human_review",
            json!({"review_reason": "completed"}),
        ),
        build(
            "e3",
            "7182",
            "shop:qa",
            "human_review",
            json!({"review_reason": "qa_rejected"}),
        ),
        build("e4", "7183", "shop:stuck", "stuck", json!({})),
    ])
    .await;
    // Emitted plans waiting for code: one in a mapped repository, one not.
    let mut emitted = plan(
        "7190",
        "s-emitted",
        "emitted",
        json!({"evidence": {"proof_kind": "issues", "epic_issue": 7190, "child_count": 0}}),
    );
    emitted["repo"] = json!("acme/shop");
    let mut elsewhere = plan(
        "7191",
        "s-elsewhere",
        "emitted",
        json!({"evidence": {"proof_kind": "issues", "epic_issue": 7191, "child_count": 0}}),
    );
    elsewhere["repo"] = json!("acme/unmapped");
    c.ingest(vec![emitted, elsewhere]).await;

    // A processed plan: approve creates no issues; once approved, emit_issues does.
    let approved = c.run("approve_gate", "acme/shop#7150", None).await;
    assert_eq!(approved["status"], "executed", "{approved}");
    assert!(
        approved["rationale"]
            .as_str()
            .unwrap()
            .contains("creates no GitHub issues")
    );
    let approve_calls = c.upstreams.calls_to("/api/plan/sessions/s-approve/approve");
    assert_eq!(approve_calls.len(), 1);
    assert!(approve_calls[0].body["approver"].is_string());
    assert!(
        c.upstreams
            .calls_to("/api/plan/sessions/s-approve/emit")
            .is_empty()
    );
    let (status, early) = c.propose("emit_issues", "acme/shop#7150", None).await;
    assert_eq!(status, 409, "not approved on record yet: {early}");
    c.ingest(vec![plan(
        "acme/shop#7150",
        "s-approve",
        "approved",
        json!({}),
    )])
    .await;
    let emitted = c.run("emit_issues", "acme/shop#7150", None).await;
    assert_eq!(emitted["status"], "executed", "{emitted}");
    let emit_calls = c.upstreams.calls_to("/api/plan/sessions/s-approve/emit");
    assert_eq!(
        emit_calls[0].body,
        json!({"repo": "acme/shop", "dry_run": false})
    );
    assert_eq!(
        c.upstreams.sessions.lock().unwrap()["s-approve"].0,
        "emitted",
        "the emit was not a dry run"
    );

    // Failing gates on record: refused before anything is sent, naming the blocking lens.
    let (status, refused) = c.propose("approve_gate", "acme/shop#7160", None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("risk"),
        "{refused}"
    );
    assert!(
        c.upstreams
            .calls_to("/api/plan/sessions/s-gates/approve")
            .is_empty()
    );
    // No review on record: proposed, and PFactory's own 409 fails the action.
    let failed = c.run("approve_gate", "acme/shop#7170", None).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["results"][0]["status_code"], 409);
    // Reject carries the feedback PFactory requires.
    let rejected = c
        .run("reject_review", "acme/shop#7170", Some("Split it in two."))
        .await;
    assert_eq!(rejected["status"], "executed", "{rejected}");
    assert_eq!(
        c.upstreams.calls_to("/api/plan/sessions/s-unknown/reject")[0].body["feedback"],
        "Split it in two."
    );

    // AIFactory's review reasons decide what approval does.
    let plan_review = c.run("approve_gate", "acme/shop#7180", None).await;
    assert_eq!(plan_review["status"], "executed", "{plan_review}");
    assert_eq!(
        c.upstreams
            .calls_to("/api/tasks/shop:plan/approve-plan")
            .len(),
        1
    );
    assert!(
        c.upstreams
            .calls_to("/api/tasks/shop:plan/worktree/merge")
            .is_empty()
    );
    let completed = c.run("approve_gate", "acme/shop#7181", None).await;
    assert_eq!(completed["status"], "executed", "{completed}");
    assert_eq!(
        c.upstreams
            .calls_to("/api/tasks/shop:done/worktree/create-pr")
            .len(),
        1
    );
    assert_eq!(
        c.upstreams
            .calls_to("/api/tasks/shop:done/worktree/merge")
            .len(),
        1
    );
    let (status, qa) = c.propose("approve_gate", "acme/shop#7182", None).await;
    assert_eq!(status, 409, "qa_rejected work is never merged: {qa}");
    assert!(qa["detail"].as_str().unwrap().contains("handback"), "{qa}");
    let handback = c
        .run(
            "kick_handback",
            "acme/shop#7182",
            Some("Handle the empty cart."),
        )
        .await;
    assert_eq!(handback["status"], "executed", "{handback}");
    let correction = &c.upstreams.calls_to("/api/tasks/shop:qa/apply-correction")[0];
    assert_eq!(correction.body["confirm"], true);
    assert!(
        correction.body["fix_request_md"]
            .as_str()
            .unwrap()
            .contains("Handle the empty cart.")
    );

    // Recover resets without a restart unless the restart is asked for.
    let recover = c.run("recover", "acme/shop#7183", None).await;
    assert_eq!(recover["status"], "executed", "{recover}");
    assert!(
        recover["rationale"]
            .as_str()
            .unwrap()
            .contains("without restarting")
    );
    let restart = c.run("recover_and_restart", "acme/shop#7183", None).await;
    assert_eq!(restart["status"], "executed", "{restart}");
    let recovers = c.upstreams.calls_to("/api/tasks/shop:stuck/recover");
    assert_eq!(recovers.len(), 2);
    assert_eq!(recovers[0].body, Value::Null);
    assert_eq!(recovers[1].body, json!({"autoRestart": true}));

    // Deleting needs an admin token on AIFactory: a member's gets 403, and the action says so.
    let delete = c.run("reject_review", "acme/shop#7181", None).await;
    assert_eq!(delete["status"], "failed", "{delete}");
    assert_eq!(delete["results"][0]["status_code"], 403);
    let deletes = c.upstreams.calls_to("/api/tasks/shop:done");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].method, "DELETE");
    assert!(
        delete["rationale"]
            .as_str()
            .unwrap()
            .contains("admin token"),
        "{delete}"
    );

    // The handoff sends AIFactory's own project key; an unmapped repository is refused
    // before anything is sent.
    let handoff = c.run("trigger_handoff", "acme/shop#7190", None).await;
    assert_eq!(handoff["status"], "executed", "{handoff}");
    assert_eq!(
        c.upstreams
            .calls_to("/api/tasks/create-and-run?project_id=shop")
            .len(),
        1
    );
    let (status, unmapped) = c
        .propose("trigger_handoff", "acme/unmapped#7191", None)
        .await;
    assert_eq!(status, 409, "{unmapped}");
    assert!(
        unmapped["detail"]
            .as_str()
            .unwrap()
            .contains("--aifactory-project"),
        "{unmapped}"
    );
    let sent_to_unmapped = c
        .upstreams
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|call| call.path.contains("unmapped"));
    assert!(!sent_to_unmapped);
}

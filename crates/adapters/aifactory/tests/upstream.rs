//! AIFactory through the `Upstream` port, against a scripted local AIFactory (REST and
//! live feed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_aifactory::AIFactory;
use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{Health, LiveUpdate, UpstreamError};
use cfactory_domain::workitem::StageName;
use cfactory_upstream_http::UpstreamConfig;
use serde_json::json;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn aifactory(base: &str) -> AIFactory {
    AIFactory::new(
        UpstreamConfig::new(base, Some("af-token".into()), Duration::from_secs(5)).unwrap(),
    )
}

/// `GET /api/tasks/{project_id:spec_id}` as the real handler answers: camelCase, with
/// `githubIssueNumber` and `executionProgress`, and no PR number.
async fn task(Path(id): Path<String>) -> Response {
    if id != "shop:003-refunds" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "Task not found"})),
        )
            .into_response();
    }
    Json(json!({
        "id": "shop:003-refunds", "specId": "003-refunds", "projectId": "shop",
        "title": "Refunds", "status": "human_review", "reviewReason": "qa_rejected",
        "branchName": "auto-claude/003-refunds", "githubIssueNumber": 142,
        "executionProgress": {"phase": "qa_review", "phaseProgress": 50,
                              "overallProgress": 80, "currentSubtask": "1.2",
                              "message": "QA found two failing checks"},
        "subtasks": [
            {"id": "1.1", "title": "Migration", "status": "completed",
             "started_at": "2026-02-01T08:30:00Z", "completed_at": "2026-02-01T09:00:00Z"},
            {"id": "1.2", "title": "Endpoint", "status": "in_progress",
             "depends_on": ["1.1"], "started_at": "2026-02-01T09:01:00Z"},
            {"id": "1.3", "title": "Button", "status": "pending", "depends_on": ["1.2"]}
        ]
    }))
    .into_response()
}

/// One real list row: snake_case, `id` as `project_id:spec_id`, no PR number.
fn row(spec: &str, status: &str, review_reason: Option<&str>) -> serde_json::Value {
    json!({
        "id": format!("shop:{spec}"), "project_id": "shop", "spec_id": spec,
        "title": format!("Task {spec}"), "status": status, "review_reason": review_reason,
        "phase": "coding", "branch_name": format!("auto-claude/{spec}"),
        "github_issue": null,
        "subtasks": [{"id": "1.1", "title": "Step", "status": "pending", "depends_on": [],
                      "started_at": null, "completed_at": null}]
    })
}

/// `GET /api/tasks` as the real handler answers: `{"tasks": [...], "total": N}`.
async fn tasks() -> Json<serde_json::Value> {
    let mut rows = vec![json!({
        "id": "shop:003-refunds", "project_id": "shop", "spec_id": "003-refunds",
        "title": "Refunds", "status": "in_progress", "review_reason": null,
        "phase": "coding", "branch_name": "auto-claude/003-refunds", "github_issue": 142,
        "created_at": "2026-02-01T08:00:00Z", "updated_at": "2026-02-01T08:40:00Z",
        "subtasks": [
            {"id": "1.1", "title": "Migration", "status": "completed", "depends_on": [],
             "started_at": "2026-02-01T08:30:00Z", "completed_at": "2026-02-01T09:00:00Z"}
        ]
    })];
    for (i, reason) in REVIEW_REASONS.iter().enumerate() {
        rows.push(row(&format!("01{i}"), "human_review", Some(reason)));
    }
    rows.push(row("020", "copilot_running", None));
    rows.push(row("021", "copilot_pr_opened", None));
    let total = rows.len();
    Json(json!({"tasks": rows, "total": total}))
}

const REVIEW_REASONS: [&str; 6] = [
    "plan_review",
    "errors",
    "qa_rejected",
    "incomplete",
    "completed",
    "plan_unreadable",
];

async fn events(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        for frame in [
            "garbage",
            r#"{"type":"task:update","payload":{"taskId":"shop:003","executionProgress":{"phase":"coding","phaseProgress":60}}}"#,
        ] {
            let _ = socket.send(Message::Text(frame.into())).await;
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

fn app() -> Router {
    Router::new()
        .route("/api/tasks", get(tasks))
        .route("/api/tasks/{id}", get(task))
        .route("/ws/events", get(events))
        .route(
            "/ws/progress",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s: WebSocket| async move {
                    while let Some(Ok(_)) = s.recv().await {}
                })
            }),
        )
}

#[tokio::test]
async fn tasks_map_onto_snapshots() {
    let af = aifactory(&serve(app()).await);
    assert_eq!(af.service(), Service::AIFACTORY);
    let list = af.list_tasks().await.unwrap();
    assert!(list.complete);
    assert_eq!(list.tasks.len(), 9, "{list:?}");

    let a = &list.tasks[0];
    assert_eq!(a.service, Service::AIFACTORY);
    assert_eq!(a.task_id, "shop:003-refunds");
    assert_eq!(a.issue_number, Some(142));
    assert_eq!(a.key().unwrap().as_str(), "142");
    assert_eq!(a.status, "in_progress");
    assert_eq!(a.review_reason, None);
    assert_eq!(a.phase.as_deref(), Some("coding"));
    assert_eq!(a.title.as_deref(), Some("Refunds"));
    assert_eq!(a.project.as_deref(), Some("shop"));
    assert_eq!(
        a.correlation.branch.as_deref(),
        Some("auto-claude/003-refunds")
    );
    assert_eq!(a.correlation.issue_number, Some(142));
    assert_eq!(a.correlation.pr_number, None);
    assert_eq!(
        a.updated_at.unwrap().to_rfc3339(),
        "2026-02-01T08:40:00+00:00"
    );
}

#[tokio::test]
async fn human_review_keeps_its_status_and_says_why() {
    let list = aifactory(&serve(app()).await).list_tasks().await.unwrap();
    let waiting: Vec<_> = list
        .tasks
        .iter()
        .filter(|t| t.status == "human_review")
        .map(|t| t.review_reason.as_deref())
        .collect();
    let want: Vec<_> = REVIEW_REASONS.iter().map(|r| Some(*r)).collect();
    assert_eq!(waiting, want);
    let b = &list.tasks[1];
    assert_eq!(b.task_id, "shop:010");
    assert_eq!(b.issue_number, None);
    assert_eq!(b.key().unwrap().as_str(), "af-shop:010");
    assert_eq!(b.correlation.branch.as_deref(), Some("auto-claude/010"));
}

#[tokio::test]
async fn copilot_statuses_are_kept_as_spelled() {
    let list = aifactory(&serve(app()).await).list_tasks().await.unwrap();
    let copilot: Vec<_> = list.tasks[7..]
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.status.as_str(),
                t.review_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        copilot,
        [
            ("shop:020", "copilot_running", None),
            ("shop:021", "copilot_pr_opened", None)
        ]
    );
}

#[tokio::test]
async fn older_camel_case_bare_lists_still_map() {
    let app = Router::new().route(
        "/api/tasks",
        get(|| async {
            Json(json!([
                {"id": "shop:003", "status": "in_progress", "title": "Refunds", "projectName": "shop",
                 "executionProgress": {"phase": "coding", "phaseProgress": 40},
                 "branchName": "af/142-refunds",
                 "provenance": {"issue_number": 142, "session_id": "001-refund"},
                 "updatedAt": "2026-02-01T08:00:00Z"},
                {"project_id": "shop", "spec_id": "004", "status": "qa_failed", "title": "Search"}
            ]))
        }),
    );
    let list = aifactory(&serve(app).await).list_tasks().await.unwrap();
    let [a, b] = &list.tasks[..] else {
        panic!("{list:?}")
    };
    assert_eq!(a.key().unwrap().as_str(), "142");
    assert_eq!(a.phase.as_deref(), Some("coding"));
    assert_eq!(a.correlation.branch.as_deref(), Some("af/142-refunds"));
    assert_eq!(a.correlation.session_id.as_deref(), Some("001-refund"));
    assert_eq!(
        (b.task_id.as_str(), b.status.as_str()),
        ("shop:004", "qa_failed")
    );
    assert_eq!(b.key().unwrap().as_str(), "af-shop:004");
}

#[tokio::test]
async fn subtasks_become_a_code_graph() {
    let af = aifactory(&serve(app()).await);
    let graph = af.process("shop:003-refunds").await.unwrap();
    assert_eq!(
        (graph.service, graph.stage, graph.task_id.as_str()),
        (Service::AIFACTORY, StageName::CODE, "shop:003-refunds")
    );
    let ids: Vec<_> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["1.1", "1.2", "1.3"]);
    assert_eq!(graph.nodes[1].deps, ["1.1"]);
    assert_eq!(graph.nodes[2].deps, ["1.2"]);
    assert_eq!(graph.nodes[1].status, "in_progress");
    assert_eq!(
        graph.nodes[0].finished_at.unwrap().to_rfc3339(),
        "2026-02-01T09:00:00+00:00"
    );
    assert!(graph.nodes[1].started_at.is_some());
    assert_eq!(graph.nodes[1].finished_at, None);
    assert_eq!(af.process("shop:999").await, Err(UpstreamError::NotFound));
}

/// The probe reads the task list, which checks the token, not `/api/capabilities`
/// (`{"rmux": bool}`), which says nothing about it.
#[tokio::test]
async fn health_reads_the_task_list_not_the_capabilities() {
    let app = Router::new()
        .route(
            "/api/tasks",
            get(|headers: HeaderMap| async move {
                let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
                if bearer == Some("Bearer af-token") {
                    tasks().await.into_response()
                } else {
                    StatusCode::FORBIDDEN.into_response()
                }
            }),
        )
        .route(
            "/api/capabilities",
            get(|| async { Json(json!({"rmux": false})) }),
        );
    let base = serve(app).await;
    assert_eq!(aifactory(&base).probe().await.status, Health::Online);
    let stranger = AIFactory::new(
        UpstreamConfig::new(&base, Some("wrong".into()), Duration::from_secs(5)).unwrap(),
    );
    assert_eq!(stranger.probe().await.status, Health::Unauthorized);
}

#[tokio::test]
async fn failures_surface_as_health_and_errors() {
    let app = Router::new()
        .route(
            "/api/tasks",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/api/tasks/{id}",
            get(|| async { Json(json!({"success": false, "error": "locked"})) }),
        );
    let base = serve(app).await;
    let af = aifactory(&base);
    let report = af.probe().await;
    assert_eq!(report.status, Health::Error);
    assert!(!report.detail.unwrap().contains(&base));
    assert_eq!(af.list_tasks().await, Err(UpstreamError::Status(500)));
    assert_eq!(
        af.process("a:1").await,
        Err(UpstreamError::Refused("locked".into()))
    );
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Service, LiveUpdate)>>);
impl LiveSink for Collect {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.0.lock().unwrap().push((service, update));
    }
}

#[tokio::test]
async fn the_live_feed_reaches_the_sink() {
    let af = aifactory(&serve(app()).await);
    let sink = Arc::new(Collect::default());
    let _ = tokio::time::timeout(Duration::from_millis(800), af.follow(sink.clone())).await;
    let got = sink.0.lock().unwrap().clone();
    let [
        (
            service,
            LiveUpdate::Progress {
                task_id,
                phase,
                percent,
                ..
            },
        ),
    ] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!(*service, Service::AIFACTORY);
    assert_eq!(
        (task_id.as_str(), phase.as_deref(), *percent),
        ("shop:003", Some("coding"), Some(60.0))
    );
}

/// An AIFactory that serves consoles: capabilities as `rmux` says, the list with running
/// and stopped tasks, and a console for `shop:001-run` (handshake, two chunks, then a
/// normal close) that records the `Authorization` it was opened with.
async fn console_server(rmux: Option<bool>, seen: Arc<Mutex<Vec<Option<String>>>>) -> String {
    let app = Router::new()
        .route(
            "/api/capabilities",
            get(move || async move {
                match rmux {
                    Some(on) => Json(json!({"rmux": on})).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/api/tasks",
            get(|| async {
                Json(json!({"total": 4, "tasks": [
                    row("001-run", "in_progress", None),
                    row("002-copilot", "copilot_running", None),
                    row("003-review", "human_review", Some("completed")),
                    row("004-queued", "backlog", None),
                ]}))
            }),
        )
        .route(
            "/api/tasks/{id}/agent-console/ws",
            get(
                move |Path(id): Path<String>, headers: HeaderMap, ws: WebSocketUpgrade| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(
                            headers
                                .get("authorization")
                                .map(|v| v.to_str().unwrap().to_owned()),
                        );
                        ws.on_upgrade(move |mut socket: WebSocket| async move {
                            if id != "shop:001-run" {
                                let _ = socket
                                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                                        code: 4004,
                                        reason: "no rmux session".into(),
                                    })))
                                    .await;
                                return;
                            }
                            for m in [
                                Message::Text(
                                    r#"{"type":"connected","connection_id":"c1"}"#.into(),
                                ),
                                Message::Binary(b"\x1b[32mok\x1b[0m\xff\r\n".to_vec().into()),
                                Message::Text("line two\r\n".into()),
                                Message::Close(Some(axum::extract::ws::CloseFrame {
                                    code: 1000,
                                    reason: "session ended".into(),
                                })),
                            ] {
                                let _ = socket.send(m).await;
                            }
                        })
                    }
                },
            ),
        );
    serve(app).await
}

#[tokio::test]
async fn consoles_are_listed_only_when_rmux_is_on_and_only_for_running_tasks() {
    use cfactory_domain::upstream::LiveConsole;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let on = aifactory(&console_server(Some(true), seen.clone()).await);
    let consoles = on.agent_consoles().expect("AIFactory watches consoles");
    let list = consoles.live_consoles().await.unwrap();
    assert!(list.enabled);
    assert_eq!(
        list.running,
        [
            LiveConsole {
                task_id: "shop:001-run".into(),
                status: "in_progress".into(),
                title: Some("Task 001-run".into()),
            },
            LiveConsole {
                task_id: "shop:002-copilot".into(),
                status: "copilot_running".into(),
                title: Some("Task 002-copilot".into()),
            },
        ]
    );
    for rmux in [Some(false), None] {
        let off = aifactory(&console_server(rmux, seen.clone()).await);
        let list = off.agent_consoles().unwrap().live_consoles().await.unwrap();
        assert!(!list.enabled && list.running.is_empty(), "{rmux:?}");
    }
}

#[tokio::test]
async fn a_console_yields_the_output_unchanged_without_the_handshake() {
    use cfactory_domain::upstream::ConsoleOutput;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let af = aifactory(&console_server(Some(true), seen.clone()).await);
    let consoles = af.agent_consoles().unwrap();
    let mut console = consoles.open_console("shop:001-run").await.unwrap();
    assert_eq!(
        console.next().await,
        Ok(Some(ConsoleOutput::Binary(
            b"\x1b[32mok\x1b[0m\xff\r\n".to_vec()
        )))
    );
    assert_eq!(
        console.next().await,
        Ok(Some(ConsoleOutput::Text("line two\r\n".into())))
    );
    assert_eq!(console.next().await, Ok(None), "a normal close ends it");
    assert_eq!(
        seen.lock().unwrap().first().cloned().flatten().as_deref(),
        Some("Bearer af-token")
    );

    let mut gone = consoles.open_console("shop:004-queued").await.unwrap();
    assert_eq!(gone.next().await, Err(UpstreamError::NotFound));
    assert!(matches!(
        consoles.open_console("../keys").await,
        Err(UpstreamError::Refused(_))
    ));
}

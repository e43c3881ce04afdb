//! AIFactory's coding tasks: snake_case rows and camelCase details with the board's
//! statuses and review reasons, and the actions as the real routes behave.

use axum::http::StatusCode;
use cfactory_sim::{SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use super::fields;
use crate::{call, eventually, get, has, idle, post_json, receiver};

const STATUSES: [&str; 7] = [
    "backlog",
    "in_progress",
    "ai_review",
    "human_review",
    "done",
    "copilot_running",
    "copilot_pr_opened",
];
const REASONS: [&str; 6] = [
    "plan_review",
    "errors",
    "qa_rejected",
    "incomplete",
    "completed",
    "plan_unreadable",
];

#[tokio::test]
async fn tasks_read_as_board_rows_with_a_reason_for_every_review() {
    let sim = idle(SimConfig::default()).await;
    let a = &sim.aifactory_url;
    let (status, list) = get(&format!("{a}/api/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys = fields(&list);
    keys.sort_unstable();
    assert_eq!(keys, ["tasks", "total"]);
    let tasks = list["tasks"].as_array().unwrap();
    assert_eq!(list["total"], tasks.len());
    assert!(tasks.len() >= 10);
    for t in tasks {
        has(
            t,
            &[
                "id",
                "spec_id",
                "project_id",
                "status",
                "phase",
                "branch_name",
                "github_issue",
                "review_reason",
                "subtasks",
                "created_at",
                "updated_at",
            ],
        );
        for absent in ["branchName", "pr_number", "prUrl", "issue_number", "usage"] {
            assert!(t.get(absent).is_none(), "{absent} in {t}");
        }
        assert_eq!(
            t["id"],
            format!(
                "{}:{}",
                t["project_id"].as_str().unwrap(),
                t["spec_id"].as_str().unwrap()
            )
        );
        let status = t["status"].as_str().unwrap();
        assert!(STATUSES.contains(&status), "{status}");
        match t["review_reason"].as_str() {
            Some(reason) => {
                assert_eq!(status, "human_review", "{t}");
                assert!(REASONS.contains(&reason), "{reason}");
            }
            None => assert_ne!(status, "human_review", "{t}"),
        }
        for st in t["subtasks"].as_array().unwrap() {
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
    let reason = |r: &str| tasks.iter().find(|t| t["review_reason"] == r);
    // QA's rejection and the injection scan's halt both wait in human review.
    assert!(reason("qa_rejected").is_some(), "a qa_failed build, folded");
    assert!(reason("errors").is_some(), "the parked task");
    assert_eq!(reason("plan_review").unwrap()["id"], "proj:900");
    // A task that came from a plan names its issue from the provenance.
    assert!(tasks.iter().any(|t| t["github_issue"].is_u64()));

    let done = tasks.iter().find(|t| t["status"] == "done").unwrap();
    let id = done["id"].as_str().unwrap();
    let (status, detail) = get(&format!("{a}/api/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    has(
        &detail,
        &[
            "specId",
            "projectId",
            "branchName",
            "githubIssueNumber",
            "executionProgress",
            "subtasks",
            "reviewReason",
        ],
    );
    assert!(detail.get("branch_name").is_none());
    assert!(detail.get("prNumber").is_none());
    has(
        &detail["executionProgress"],
        &[
            "phase",
            "phaseProgress",
            "overallProgress",
            "currentSubtask",
            "message",
        ],
    );

    let (_, waiting) = get(&format!("{a}/api/tasks?status=human_review")).await;
    let waiting = waiting["tasks"].as_array().unwrap();
    assert!(!waiting.is_empty());
    assert!(waiting.iter().all(|t| t["status"] == "human_review"));
    let (_, other) = get(&format!("{a}/api/tasks?project_id=elsewhere")).await;
    assert_eq!(other, json!({"tasks": [], "total": 0}));

    let (_, caps) = get(&format!("{a}/api/capabilities")).await;
    assert_eq!(caps, json!({"rmux": true}));
    sim.shutdown().await;
}

#[tokio::test]
async fn create_and_run_needs_a_project_of_the_registry_and_ignores_the_base_branch() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let url = |q: &str| format!("{}/api/tasks/create-and-run?{q}", sim.aifactory_url);
    for project in ["acme%2Fshop", "PROJ", "proj2"] {
        let (status, body) =
            post_json(&url(&format!("project_id={project}&title=T")), json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{project}");
        assert_eq!(body["detail"], "Project not found");
    }
    let (status, _) = post_json(&url("project_id=proj"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "title is required"
    );

    let body = json!({
        "baseBranch": "release/1.2",
        "complexity": "complex",
        "provenance": {"issue_number": 4242, "repo": "acme/shop", "source": "pfactory", "nonsense": 1},
    });
    let (status, created) = post_json(&url("project_id=proj&title=Add%20search"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["task_id"].as_str().unwrap();
    assert!(id.starts_with("proj:"), "{id}");
    let (_, detail) = get(&format!("{}/api/tasks/{id}", sim.aifactory_url)).await;
    assert_eq!(detail["status"], "in_progress");
    assert_eq!(detail["githubIssueNumber"], 4242);
    assert!(detail["metadata"]["baseBranch"].is_null(), "{detail}");
    assert!(!detail["branchName"].as_str().unwrap().contains("release"));
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_task_needs_an_admin_token() {
    let sim = Simulator::start(SimConfig {
        token: Some("member".into()),
        admin_token: Some("admin".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/api/tasks/proj:900", sim.aifactory_url);
    let (status, body) = call(Method::DELETE, &url, Some("member"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = call(Method::GET, &url, Some("member"), None).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let (status, _) = call(Method::DELETE, &url, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(Method::DELETE, &url, Some("admin"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_null(), "no body: {body}");
    let (status, _) = call(Method::GET, &url, Some("admin"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_plan_in_review_starts_coding_once_approved_and_recover_resets_without_restarting() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let a = &sim.aifactory_url;
    let task = |id: &'static str| async move { get(&format!("{a}/api/tasks/{id}")).await.1 };
    let before = task("proj:900").await;
    assert_eq!(before["status"], "human_review");
    assert_eq!(before["reviewReason"], "plan_review");
    // Nothing to open a PR for yet: refused the older way.
    let (status, pr) = post_json(
        &format!("{a}/api/tasks/proj:900/worktree/create-pr"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pr["success"], false);
    assert!(pr["error"].is_string());

    let (status, _) = post_json(&format!("{a}/api/tasks/proj:900/approve-plan"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let coding = task("proj:900").await;
    assert_eq!(coding["status"], "in_progress");
    assert!(coding["reviewReason"].is_null());
    let (status, _) = post_json(&format!("{a}/api/tasks/proj:900/approve-plan"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "no plan waits any more");
    let (status, _) = post_json(&format!("{a}/api/tasks/proj:900/worktree/merge"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "nothing to merge while it runs"
    );

    // No body: back to the backlog, not restarted.
    let resp = reqwest::Client::new()
        .post(format!("{a}/api/tasks/proj:900/recover"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let recovered: Value = resp.json().await.unwrap();
    assert_eq!(recovered["success"], true);
    assert_eq!(recovered["data"]["newStatus"], "backlog");
    assert_eq!(recovered["data"]["autoRestarted"], false);
    assert_eq!(task("proj:900").await["status"], "backlog");
    // Recovering refuses nothing, and restarts when asked.
    let (status, again) = post_json(
        &format!("{a}/api/tasks/proj:900/recover"),
        json!({"autoRestart": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["autoRestarted"], true);
    assert_eq!(task("proj:900").await["status"], "in_progress");

    let (status, _) = post_json(&format!("{a}/api/tasks/proj:404/recover"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_correction_starts_a_new_run_even_of_a_running_task_and_only_bad_triage_is_refused() {
    let (url, got, _) = receiver(false).await;
    let sim = idle(SimConfig {
        webhook_url: Some(url),
        ..SimConfig::default()
    })
    .await;
    let a = &sim.aifactory_url;
    let (_, done) = get(&format!("{a}/api/tasks?status=done")).await;
    let id = done["tasks"][0]["id"].as_str().unwrap().to_owned();
    let correct = format!("{a}/api/tasks/{id}/apply-correction");

    let (status, _) = post_json(&correct, json!({"source": "cfactory", "confirm": true})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "fix_request_md is required"
    );
    for triage in [json!("failing"), json!({"failing_tests": [1, 2]})] {
        let body = json!({"fix_request_md": "Fix it", "confirm": true, "triage": triage});
        let (status, refused) = post_json(&correct, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refused["success"], false);
        assert_eq!(refused["rejected"], true);
    }
    let (status, preview) = post_json(
        &correct,
        json!({"fix_request_md": "Fix the rounding", "source": "cfactory", "confirm": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(preview["preview"], true);
    assert_eq!(
        get(&format!("{a}/api/tasks/{id}")).await.1["status"],
        "done"
    );

    let before = got.lock().unwrap().len();
    let body = json!({
        "fix_request_md": "Fix the rounding",
        "source": "tfactory",
        "confirm": true,
        "triage": {"failing_tests": ["unit::rounding"]},
    });
    let (status, started) = post_json(&correct, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(
        get(&format!("{a}/api/tasks/{id}")).await.1["status"],
        "in_progress"
    );
    // Running does not stop another correction: no running-task check, no 409.
    let (status, again) = post_json(&correct, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["success"], true);

    // Each new run announces itself with its own usage at zero.
    eventually("two new runs in the webhook stream", 10, || async {
        let events = got.lock().unwrap()[before..].to_vec();
        let starts = events
            .iter()
            .filter(|e| {
                e["task_id"] == json!(id)
                    && e["status"] == "in_progress"
                    && e["type"] == "io.factory.aifactory.completion"
            })
            .inspect(|e| assert_eq!(e["usage"]["total_tokens"], 0, "{e}"))
            .count();
        (starts >= 2).then_some(())
    })
    .await;
    sim.shutdown().await;
}

/// The next frame of a console, within five seconds.
async fn console_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> tokio_tungstenite::tungstenite::Message {
    use futures::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
        .await
        .expect("a frame within 5 s")
        .expect("the console stays open")
        .expect("a good frame")
}

#[tokio::test]
async fn a_running_task_serves_its_console_and_a_finished_one_closes_with_4004() {
    use tokio_tungstenite::tungstenite::Message;
    let sim = idle(SimConfig::default()).await;
    let a = &sim.aifactory_url;
    let (_, list) = get(&format!("{a}/api/tasks")).await;
    let tasks = list["tasks"].as_array().unwrap();
    // The coder that stopped reporting still runs: its terminal stays open.
    let running = tasks
        .iter()
        .find(|t| t["status"] == "in_progress")
        .expect("the stalled coder is in progress");
    let id = running["id"].as_str().unwrap();
    let ws = a.replace("http://", "ws://");
    let url = format!("{ws}/api/tasks/{id}/agent-console/ws");
    let (mut console, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let Message::Text(hello) = console_frame(&mut console).await else {
        panic!("the first frame is text");
    };
    let hello: Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["type"], "connected");
    assert!(
        hello["connection_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let Message::Binary(banner) = console_frame(&mut console).await else {
        panic!("terminal output comes as binary frames");
    };
    let banner = String::from_utf8(banner.to_vec()).unwrap();
    assert!(banner.contains(id) && banner.contains("\x1b["), "{banner}");
    let Message::Binary(line) = console_frame(&mut console).await else {
        panic!("terminal output comes as binary frames");
    };
    assert!(line.ends_with(b"\r\n") && line.starts_with(b"\x1b["));
    // A viewer's keystrokes are dropped; the console goes on.
    use futures::SinkExt;
    console.send(Message::Text("q".into())).await.unwrap();
    assert!(matches!(
        console_frame(&mut console).await,
        Message::Binary(_)
    ));

    let done = tasks
        .iter()
        .find(|t| t["status"] == "done")
        .expect("a finished task");
    let url = format!(
        "{ws}/api/tasks/{}/agent-console/ws",
        done["id"].as_str().unwrap()
    );
    let (mut closed, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let Message::Close(Some(frame)) = console_frame(&mut closed).await else {
        panic!("a task without a run closes at once");
    };
    assert_eq!(u16::from(frame.code), 4004);
    assert!(frame.reason.contains("no rmux session"), "{}", frame.reason);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_console_needs_the_token() {
    let sim = Simulator::start(SimConfig {
        token: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ws = sim.aifactory_url.replace("http://", "ws://");
    let refused =
        tokio_tungstenite::connect_async(format!("{ws}/api/tasks/proj:001/agent-console/ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        other => panic!("a console without the token was not refused: {other:?}"),
    }
    sim.shutdown().await;
}

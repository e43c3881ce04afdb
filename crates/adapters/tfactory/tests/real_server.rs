//! TFactory through the `Upstream` port against the real server's captured answers
//! (`tests/data`, seed set A): the verification specs as snapshots keyed to join the
//! completion events, their process graphs, health for each kind of token, one list
//! failing while the other answers, the live feeds (and their refusal), and zone-less
//! times read in the server's zone.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfactory_domain::event::Service;
use cfactory_domain::ports::{LiveSink, Upstream};
use cfactory_domain::upstream::{FeedState, Health, LiveUpdate, UpstreamError};
use cfactory_domain::workitem::StageName;
use cfactory_tfactory::Tz;
use support::{Answer, PROJECT, Replay, TOKEN, tfactory};

fn server_error() -> Answer {
    Answer::new(500, "text/plain; charset=utf-8", "Internal Server Error")
}

#[tokio::test]
async fn verification_specs_are_snapshots_keyed_by_their_issue() {
    let replay = Replay::captured();
    let tf = tfactory(&replay.clone().serve().await, Some(TOKEN), Tz::UTC);
    let list = tf.list_tasks().await.unwrap();
    assert!(list.complete);
    assert_eq!(list.failures, Vec::<String>::new());

    let rows: Vec<_> = list
        .tasks
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.status.as_str(),
                t.issue_number,
                t.key().unwrap().to_string(),
                t.review_reason.as_deref(),
            )
        })
        .collect();
    // The kanban rows name issues 142 and 143 too: the verification rows stand for them.
    assert_eq!(
        rows,
        [
            ("ingest-007", "pending", None, "tf-ingest-007".into(), None),
            (
                "142-checkout-retry",
                "evaluating",
                Some(142),
                "142".into(),
                None
            ),
            (
                "143-login-flow",
                "triaged",
                Some(143),
                "143".into(),
                Some("human_review")
            ),
            ("144-cart-totals", "stuck", Some(144), "144".into(), None),
            ("145-price-badge", "triaged", Some(145), "145".into(), None),
        ]
    );
    assert!(list.tasks.iter().all(|t| t.service == Service::TFACTORY));
    assert!(
        list.tasks
            .iter()
            .all(|t| t.project.as_deref() == Some("shop"))
    );

    let retry = &list.tasks[1];
    assert_eq!(retry.title.as_deref(), Some("Checkout retries on 502"));
    assert_eq!(retry.phase.as_deref(), Some("evaluator_initial_started"));
    assert_eq!(
        retry.updated_at.unwrap().to_rfc3339(),
        "2026-12-04T10:06:00+00:00"
    );
    assert_eq!(retry.correlation.issue_number, Some(142));
    assert_eq!(
        retry.correlation.aifactory_task_id.as_deref(),
        Some("shop:142-checkout-retry")
    );
    assert_eq!(list.tasks[0].title, None);

    // Only triaged specs need their detail, and only once while they do not change.
    tf.list_tasks().await.unwrap();
    assert_eq!(replay.count("GET /api/tfactory/tasks/143-login-flow"), 1);
    assert_eq!(replay.count("GET /api/tfactory/tasks/145-price-badge"), 1);
    assert_eq!(
        replay.count("GET /api/tfactory/tasks/142-checkout-retry"),
        0
    );
    assert_eq!(
        replay.count("GET /api/specs"),
        0,
        "a route the server lacks"
    );
    assert_eq!(replay.count("GET /api/tasks"), 2);
}

#[tokio::test]
async fn process_graphs_have_one_node_per_lane() {
    let tf = tfactory(&Replay::captured().serve().await, Some(TOKEN), Tz::UTC);
    let shape = |graph: &cfactory_domain::upstream::ProcessGraph| {
        graph
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.status.clone(), n.deps.clone()))
            .collect::<Vec<_>>()
    };
    let node = |id: &str, status: &str, deps: &[&str]| {
        (
            id.to_owned(),
            status.to_owned(),
            deps.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>(),
        )
    };

    // Mid-run: the lane statuses are `lane_progress`; browser (phase 2) waits on phase 1.
    let retry = tf.process("142-checkout-retry").await.unwrap();
    assert_eq!(
        (retry.service, retry.stage, retry.task_id.as_str()),
        (Service::TFACTORY, StageName::TEST, "142-checkout-retry")
    );
    assert_eq!(
        shape(&retry),
        [
            node("unit", "passed", &[]),
            node("api", "running", &[]),
            node("browser", "pending", &["unit", "api"]),
        ]
    );
    assert_eq!(retry.nodes[0].label, "unit · 1 test");
    assert_eq!(
        retry.nodes[0].started_at.unwrap().to_rfc3339(),
        "2026-12-04T10:00:00+00:00"
    );
    assert_eq!(
        retry.nodes[0].finished_at.unwrap().to_rfc3339(),
        "2026-12-04T10:04:00+00:00"
    );
    assert_eq!(retry.nodes[1].finished_at, None, "api is still running");

    // Finished specs have no `lane_progress`: their tests' statuses speak.
    assert_eq!(
        shape(&tf.process("143-login-flow").await.unwrap()),
        [
            node("unit", "passed", &[]),
            node("browser", "passed", &[]),
            node("mutation", "passed", &["unit", "browser"]),
        ]
    );
    assert_eq!(
        shape(&tf.process("144-cart-totals").await.unwrap()),
        [
            node("unit", "failed", &[]),
            node("integration", "passed", &[])
        ]
    );
    assert_eq!(
        shape(&tf.process("145-price-badge").await.unwrap()),
        [node("unit", "passed", &[]), node("browser", "passed", &[])]
    );

    // No plan yet (404): the lanes of `lane_progress`.
    assert_eq!(
        shape(&tf.process("ingest-007").await.unwrap()),
        ["unit", "api", "integration", "browser", "mutation"].map(|l| node(l, "pending", &[]))
    );

    // A kanban id reads the board's detail: one node per subtask.
    let board = tf
        .process(&format!("{PROJECT}:001-checkout-retry"))
        .await
        .unwrap();
    let labels: Vec<_> = board
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.label.as_str(), n.status.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("u1", "unit · unit checks", "completed"),
            ("a1", "api · api checks", "in_progress")
        ]
    );

    assert_eq!(
        tf.process("999-unknown").await,
        Err(UpstreamError::NotFound)
    );
}

#[tokio::test]
async fn a_spec_without_a_plan_shows_its_board_twins_subtasks() {
    let replay = Replay::captured();
    let no_plan = replay.captured_answer("/api/tfactory/tasks/ingest-007/test-plan.json");
    let replay = replay.answering(
        "GET",
        "/api/tfactory/tasks/142-checkout-retry/test-plan.json",
        no_plan,
    );
    let tf = tfactory(&replay.serve().await, Some(TOKEN), Tz::UTC);
    // The list tells which board task the spec stands for.
    tf.list_tasks().await.unwrap();
    let graph = tf.process("142-checkout-retry").await.unwrap();
    let ids: Vec<_> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["u1", "a1"]);
}

#[tokio::test]
async fn health_tells_a_missing_or_wrong_token() {
    let base = Replay::captured().serve().await;

    let good = tfactory(&base, Some(TOKEN), Tz::UTC).probe().await;
    assert_eq!(good.service, Service::TFACTORY);
    assert_eq!((good.status, good.detail), (Health::Online, None));
    assert!(good.latency_ms.is_some());

    // `/api/health` answers 200 to both; the verification list refuses them.
    for token in [None, Some("wrong-token")] {
        let tf = tfactory(&base, token, Tz::UTC);
        let report = tf.probe().await;
        assert_eq!(report.status, Health::Unauthorized, "{token:?}");
        let detail = report.detail.unwrap();
        assert!(detail.contains("/api/tfactory/tasks"), "{detail}");
        assert!(!detail.contains("127.0.0.1"), "{detail}");
        assert_eq!(tf.list_tasks().await, Err(UpstreamError::Unauthorized));
    }
}

#[tokio::test]
async fn a_failing_board_leaves_the_specs_and_names_the_route() {
    let replay = Replay::captured().answering("GET", "/api/tasks", server_error());
    let tf = tfactory(&replay.serve().await, Some(TOKEN), Tz::UTC);
    let list = tf.list_tasks().await.unwrap();
    assert!(!list.complete);
    assert_eq!(list.failures, ["GET /api/tasks: HTTP 500"]);
    let ids: Vec<_> = list.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ingest-007",
            "142-checkout-retry",
            "143-login-flow",
            "144-cart-totals",
            "145-price-badge"
        ]
    );
}

#[tokio::test]
async fn a_failing_spec_list_leaves_the_board_with_its_own_statuses() {
    let replay = Replay::captured().answering("GET", "/api/tfactory/tasks", server_error());
    let tf = tfactory(&replay.serve().await, Some(TOKEN), Tz::UTC);
    let list = tf.list_tasks().await.unwrap();
    assert!(!list.complete);
    assert_eq!(list.failures, ["GET /api/tfactory/tasks: HTTP 500"]);
    let rows: Vec<_> = list
        .tasks
        .iter()
        .map(|t| {
            (
                t.task_id.clone(),
                t.status.as_str(),
                t.issue_number,
                t.key().unwrap().to_string(),
                t.review_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                format!("{PROJECT}:002-login-flow"),
                "human_review",
                Some(143),
                "acme/shop#143".into(),
                Some("completed")
            ),
            (
                format!("{PROJECT}:001-checkout-retry"),
                "in_progress",
                Some(142),
                "acme/shop#142".into(),
                None
            ),
        ]
    );
    assert!(
        list.tasks
            .iter()
            .all(|t| t.project.as_deref() == Some("acme/shop"))
    );
    assert_eq!(list.tasks[1].phase.as_deref(), Some("coding"));
}

#[tokio::test]
async fn only_when_both_lists_fail_is_it_an_error() {
    let replay = Replay::captured()
        .answering("GET", "/api/tasks", server_error())
        .answering("GET", "/api/tfactory/tasks", server_error());
    let tf = tfactory(&replay.serve().await, Some(TOKEN), Tz::UTC);
    assert_eq!(tf.list_tasks().await, Err(UpstreamError::Status(500)));
}

#[tokio::test]
async fn zone_less_times_are_the_servers_local_time() {
    let replay = Replay::captured().answering("GET", "/api/tfactory/tasks", server_error());
    let base = replay.serve().await;
    let board_time = |tf: cfactory_tfactory::TFactory| async move {
        let list = tf.list_tasks().await.unwrap();
        list.tasks[1].updated_at.unwrap().to_rfc3339()
    };
    // `2026-12-04T14:52:10.991873`, written by a server in Berlin (CET, UTC+1).
    assert_eq!(
        board_time(tfactory(&base, Some(TOKEN), Tz::Europe__Berlin)).await,
        "2026-12-04T13:52:10.991873+00:00"
    );
    assert_eq!(
        board_time(tfactory(&base, Some(TOKEN), Tz::UTC)).await,
        "2026-12-04T14:52:10.991873+00:00"
    );
    assert_eq!(
        board_time(cfactory_tfactory::TFactory::new(
            cfactory_upstream_http::UpstreamConfig::new(
                &base,
                Some(TOKEN.into()),
                Duration::from_secs(5)
            )
            .unwrap()
        ))
        .await,
        "2026-12-04T14:52:10.991873+00:00",
        "new() reads them as UTC"
    );

    // Times with an offset do not move with the zone.
    let tf = tfactory(
        &Replay::captured().serve().await,
        Some(TOKEN),
        Tz::Asia__Tokyo,
    );
    let list = tf.list_tasks().await.unwrap();
    assert_eq!(
        list.tasks[1].updated_at.unwrap().to_rfc3339(),
        "2026-12-04T10:06:00+00:00"
    );
}

#[derive(Default)]
struct Collect {
    updates: Mutex<Vec<(Service, LiveUpdate)>>,
    states: Mutex<Vec<(String, FeedState)>>,
}

impl LiveSink for Collect {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.updates.lock().unwrap().push((service, update));
    }

    fn feed_state(&self, service: Service, route: &str, state: FeedState) {
        assert_eq!(service, Service::TFACTORY);
        self.states.lock().unwrap().push((route.to_owned(), state));
    }
}

impl Collect {
    fn states(&self) -> Vec<(String, FeedState)> {
        self.states.lock().unwrap().clone()
    }

    fn updates(&self) -> Vec<(Service, LiveUpdate)> {
        self.updates.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn live_frames_reach_the_sink_under_the_reported_ids() {
    let tf = tfactory(&Replay::captured().serve().await, Some(TOKEN), Tz::UTC);
    tf.list_tasks().await.unwrap();
    let sink = Arc::new(Collect::default());
    let follower = {
        let (tf, sink) = (tf.clone(), sink.clone());
        tokio::spawn(async move { tf.follow(sink).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let connected = sink
            .states()
            .iter()
            .filter(|(_, s)| *s == FeedState::Connected)
            .count();
        if connected == 2 && !sink.updates().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?} {:?}",
            sink.states(),
            sink.updates()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follower.abort();

    let mut states = sink.states();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        states,
        [
            ("/ws/events".to_owned(), FeedState::Connected),
            ("/ws/progress".to_owned(), FeedState::Connected)
        ]
    );
    // The board's `task:status` for 001-checkout-retry lands on spec 142, as progress:
    // `ai_review` is a board column, not the spec's status. `connected`, `heartbeat` and
    // `ping` carry nothing.
    let updates = sink.updates();
    let [
        (
            service,
            LiveUpdate::Progress {
                task_id, message, ..
            },
        ),
    ] = &updates[..]
    else {
        panic!("{updates:?}")
    };
    assert_eq!(*service, Service::TFACTORY);
    assert_eq!(task_id, "142-checkout-retry");
    assert_eq!(message.as_deref(), Some("board: ai_review"));
}

#[tokio::test]
async fn a_refused_feed_is_reported_unauthorized_and_not_redialled_at_once() {
    for token in [None, Some("wrong-token")] {
        let replay = Replay::captured();
        let tf = tfactory(&replay.clone().serve().await, token, Tz::UTC);
        let sink = Arc::new(Collect::default());
        // A window long enough for several redials at the first backoff steps.
        let _ = tokio::time::timeout(Duration::from_millis(1500), tf.follow(sink.clone())).await;

        let mut states = sink.states();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                (
                    "/ws/events".to_owned(),
                    FeedState::Unauthorized {
                        detail: "closed with code 4001 (Unauthorized)".into()
                    }
                ),
                (
                    "/ws/progress".to_owned(),
                    FeedState::Unauthorized {
                        detail: "the server refused the upgrade with HTTP 403".into()
                    }
                ),
            ],
            "{token:?}"
        );
        assert!(sink.updates().is_empty());
        assert_eq!(replay.dials("/ws/events"), 1, "{token:?}");
        assert_eq!(replay.dials("/ws/progress"), 1, "{token:?}");
    }
}

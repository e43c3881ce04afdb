//! The HTTP plumbing against scripted local servers: auth, classification of every
//! failure, probes, paged reads, and URLs kept out of messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::upstream::{Health, TaskSnapshot, UpstreamError};
use cfactory_upstream_http::{
    UpstreamClient, UpstreamConfig, probe, probe_with_token_check, read_task_list,
};
use serde_json::{Value, json};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client(base: &str, timeout: Duration) -> UpstreamClient {
    UpstreamClient::new(UpstreamConfig::new(base, Some("tok-123".into()), timeout).unwrap())
}

const T: Duration = Duration::from_secs(5);

/// Fails when `text` reveals where the upstream lives.
fn assert_no_url(text: &str, base: &str) {
    let host_port = base.trim_start_matches("http://");
    assert!(!text.contains(base), "{text:?} leaks {base}");
    assert!(!text.contains(host_port), "{text:?} leaks {host_port}");
    assert!(!text.contains("127.0.0.1"), "{text:?} leaks the host");
}

fn row(row: &Value) -> Option<TaskSnapshot> {
    Some(TaskSnapshot {
        service: Service::AIFACTORY,
        task_id: row.get("id")?.as_str()?.to_owned(),
        issue_number: None,
        status: "running".into(),
        phase: None,
        title: None,
        project: None,
        updated_at: None,
        correlation: Correlation::default(),
        review_reason: None,
    })
}

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn sends_the_bearer_token_and_reads_json() {
    let seen = Arc::new(Mutex::new(None::<String>));
    let app = Router::new()
        .route(
            "/api/tasks",
            get(
                |State(seen): State<Arc<Mutex<Option<String>>>>, headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    *seen.lock().unwrap() = auth;
                    Json(json!({"ok": true}))
                },
            ),
        )
        .with_state(seen.clone());
    let base = serve(app).await;
    let body = client(&base, T).get_json("/api/tasks").await.unwrap();
    assert_eq!(body, json!({"ok": true}));
    assert_eq!(seen.lock().unwrap().as_deref(), Some("Bearer tok-123"));
}

#[tokio::test]
async fn every_failure_is_classified_without_the_url() {
    let app = Router::new()
        .route("/401", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/403", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/404",
            get(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "no"}))) }),
        )
        .route("/500", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/409",
            post(|| async {
                (
                    StatusCode::CONFLICT,
                    Json(json!({"detail": "review gates have not passed"})),
                )
            }),
        )
        .route(
            "/unsuccessful",
            get(|| async { Json(json!({"success": false, "error": "task is running"})) }),
        )
        .route("/html", get(|| async { "<html>oops</html>" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!({}))
            }),
        );
    let base = serve(app).await;
    let c = client(&base, Duration::from_millis(300));

    let mut messages = Vec::new();
    let mut check = |got: Result<Value, UpstreamError>, want: fn(&UpstreamError) -> bool| {
        let err = got.unwrap_err();
        assert!(want(&err), "unexpected {err:?}");
        messages.push(err.to_string());
    };
    check(c.get_json("/401").await, |e| {
        *e == UpstreamError::Unauthorized
    });
    check(c.get_json("/403").await, |e| {
        *e == UpstreamError::Unauthorized
    });
    check(c.get_json("/404").await, |e| *e == UpstreamError::NotFound);
    check(c.get_json("/500").await, |e| {
        *e == UpstreamError::Status(500)
    });
    check(c.post_json("/409", &json!({})).await, |e| {
        *e == UpstreamError::Refused("review gates have not passed".into())
    });
    check(c.get_json("/unsuccessful").await, |e| {
        *e == UpstreamError::Refused("task is running".into())
    });
    check(c.get_json("/html").await, |e| {
        matches!(e, UpstreamError::Malformed(_))
    });
    check(c.get_json("/slow").await, |e| *e == UpstreamError::Timeout);
    for m in &messages {
        assert_no_url(m, &base);
    }
}

#[tokio::test]
async fn a_closed_port_is_offline_and_never_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let c = client(&base, T);
    let err = c.get_json("/api/tasks").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Offline(_)), "{err:?}");
    assert_no_url(&err.to_string(), &base);

    let report = probe(&c, Service::TFACTORY, &paths(&["/api/tasks"])).await;
    assert_eq!(report.status, Health::Offline);
    assert_eq!(report.latency_ms, None);
    assert_no_url(report.detail.as_deref().unwrap(), &base);
}

#[tokio::test]
async fn probes_report_online_unauthorized_and_error() {
    let app = Router::new()
        .route("/ok", get(|| async { Json(json!([])) }))
        .route("/401", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/500", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/html", get(|| async { "not json" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!([]))
            }),
        );
    let base = serve(app).await;
    let c = client(&base, Duration::from_millis(300));
    let run = |p: &'static str| {
        let c = c.clone();
        async move { probe(&c, Service::PFACTORY, &paths(&[p])).await }
    };

    let ok = run("/ok").await;
    assert_eq!((ok.status, ok.detail.clone()), (Health::Online, None));
    assert!(ok.latency_ms.is_some());
    assert_eq!(ok.service, Service::PFACTORY);

    let unauthorized = run("/401").await;
    assert_eq!(unauthorized.status, Health::Unauthorized);
    assert!(unauthorized.latency_ms.is_some());

    for p in ["/500", "/html", "/slow"] {
        let report = run(p).await;
        assert_eq!(report.status, Health::Error, "{p}");
        assert_no_url(report.detail.as_deref().unwrap(), &base);
    }
    assert_eq!(run("/500").await.detail.as_deref(), Some("HTTP 500"));
}

#[tokio::test]
async fn a_health_route_that_ignores_the_token_is_backed_by_a_token_check() {
    let app = Router::new()
        .route(
            "/api/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/ok", get(|| async { Json(json!({"tasks": []})) }))
        .route("/401", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/500", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let base = serve(app).await;
    let c = client(&base, T);
    let run = |check: &'static str| {
        let c = c.clone();
        async move {
            probe_with_token_check(
                &c,
                Service::TFACTORY,
                &paths(&["/api/health"]),
                &paths(&[check]),
            )
            .await
        }
    };

    assert_eq!(run("/ok").await.status, Health::Online);
    let refused = run("/401").await;
    assert_eq!(refused.status, Health::Unauthorized);
    assert_eq!(
        refused.detail.as_deref(),
        Some("GET /401: the token was refused (401/403)")
    );
    assert!(refused.latency_ms.is_some());
    // The check only tells the token; the task list reports its own failures.
    assert_eq!(run("/500").await.status, Health::Online);
    // A missing health route is the verdict, whatever the check would say.
    let missing =
        probe_with_token_check(&c, Service::TFACTORY, &paths(&["/nope"]), &paths(&["/401"])).await;
    assert_eq!(missing.status, Health::Error);
}

#[tokio::test]
async fn a_missing_first_path_falls_back_to_the_next() {
    let app = Router::new().route("/api/plans", get(|| async { Json(json!([{"id": "a"}])) }));
    let base = serve(app).await;
    let list = read_task_list(
        &client(&base, T),
        &paths(&["/api/plan/sessions", "/api/plans"]),
        &["sessions"],
        row,
    )
    .await
    .unwrap();
    assert!(list.complete);
    assert_eq!(list.tasks.len(), 1);
}

type Params = Query<std::collections::HashMap<String, String>>;

/// Three pages; the third one fails when `fail_last` is set.
async fn paged_server(fail_last: bool) -> String {
    let app = Router::new().route(
        "/api/tasks",
        get(move |Query(q): Params| async move {
            match q.get("cursor").map(String::as_str) {
                None => (
                    StatusCode::OK,
                    Json(json!({"tasks": [{"id": "a"}, {"id": "b"}], "next_cursor": "p/2"})),
                ),
                Some("p/2") => (
                    StatusCode::OK,
                    Json(json!({"tasks": [{"id": "c"}], "next_cursor": "p3"})),
                ),
                Some("p3") if fail_last => (StatusCode::BAD_GATEWAY, Json(json!({}))),
                Some("p3") => (StatusCode::OK, Json(json!({"tasks": [{"id": "d"}]}))),
                Some(_) => (StatusCode::BAD_REQUEST, Json(json!({}))),
            }
        }),
    );
    serve(app).await
}

fn ids(list: &cfactory_domain::upstream::TaskList) -> Vec<&str> {
    list.tasks.iter().map(|t| t.task_id.as_str()).collect()
}

#[tokio::test]
async fn every_page_read_makes_a_complete_list() {
    let base = paged_server(false).await;
    let list = read_task_list(&client(&base, T), &paths(&["/api/tasks"]), &["tasks"], row)
        .await
        .unwrap();
    assert_eq!(ids(&list), ["a", "b", "c", "d"]);
    assert!(list.complete);
}

#[tokio::test]
async fn a_later_page_failing_makes_the_list_incomplete() {
    let base = paged_server(true).await;
    let list = read_task_list(&client(&base, T), &paths(&["/api/tasks"]), &["tasks"], row)
        .await
        .unwrap();
    assert_eq!(ids(&list), ["a", "b", "c"]);
    assert!(!list.complete);
}

#[tokio::test]
async fn the_first_page_failing_is_an_error_and_odd_rows_make_it_incomplete() {
    let app = Router::new()
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/shape", get(|| async { Json(json!({"unexpected": 1})) }))
        .route(
            "/odd",
            get(|| async { Json(json!({"tasks": [{"id": "a"}, {"title": "no id"}]})) }),
        );
    let base = serve(app).await;
    let c = client(&base, T);
    let read = |p: &'static str| {
        let c = c.clone();
        async move { read_task_list(&c, &paths(&[p]), &["tasks"], row).await }
    };
    assert_eq!(read("/down").await, Err(UpstreamError::Status(503)));
    assert!(matches!(
        read("/shape").await,
        Err(UpstreamError::Malformed(_))
    ));
    let odd = read("/odd").await.unwrap();
    assert_eq!(ids(&odd), ["a"]);
    assert!(!odd.complete);
}

fn step(endpoint: &str, payload: Value) -> cfactory_domain::actions::ActionStep {
    cfactory_domain::actions::ActionStep {
        method: cfactory_domain::actions::HttpMethod::Post,
        endpoint: cfactory_domain::actions::Endpoint::parse(endpoint).unwrap(),
        payload,
    }
}

#[tokio::test]
async fn a_step_is_sent_once_with_the_token_and_its_refusal_kept() {
    #[derive(Default)]
    struct Calls(Mutex<Vec<(String, Option<String>, Value)>>);
    async fn record(
        State(calls): State<Arc<Calls>>,
        axum::extract::Path(id): axum::extract::Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        calls.0.lock().unwrap().push((id.clone(), auth, body));
        if id == "busy" {
            (
                StatusCode::CONFLICT,
                Json(json!({"detail": "task is running"})),
            )
        } else {
            (StatusCode::OK, Json(json!({"success": true, "id": id})))
        }
    }
    let calls = Arc::new(Calls::default());
    let app = Router::new()
        .route("/api/tasks/{id}/approve", post(record))
        .with_state(calls.clone());
    let base = serve(app).await;
    let c = client(&base, T);

    let ok = c
        .send_step(
            Service::AIFACTORY,
            &step("/api/tasks/t1/approve", json!({"n": 1})),
        )
        .await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.status_code, Some(200));
    assert_eq!(ok.response["id"], "t1");

    let refused = c
        .send_step(
            Service::AIFACTORY,
            &step("/api/tasks/busy/approve", json!({})),
        )
        .await;
    assert!(!refused.ok);
    assert_eq!(refused.status_code, Some(409));
    assert_eq!(refused.error.as_deref(), Some("task is running"));

    let calls = calls.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "each step is sent once");
    assert_eq!(calls[0].1.as_deref(), Some("Bearer tok-123"));
    assert_eq!(calls[0].2, json!({"n": 1}));
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_token_stays_with_the_service() {
    let hits = Arc::new(Mutex::new(0u32));
    async fn elsewhere(State(hits): State<Arc<Mutex<u32>>>) -> Json<Value> {
        *hits.lock().unwrap() += 1;
        Json(json!({"success": true}))
    }
    let trap = serve(
        Router::new()
            .route("/steal", post(elsewhere).get(elsewhere))
            .with_state(hits.clone()),
    )
    .await;
    let to = format!("{trap}/steal");
    let redirecting = Router::new()
        .route(
            "/api/tasks/t1/approve",
            post({
                let to = to.clone();
                move || async move {
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, to)],
                    )
                }
            }),
        )
        .route(
            "/api/tasks",
            get(move || async move {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, format!("{trap}/steal"))],
                )
            }),
        );
    let base = serve(redirecting).await;
    let c = client(&base, T);
    let sent = c
        .send_step(
            Service::AIFACTORY,
            &step("/api/tasks/t1/approve", json!({})),
        )
        .await;
    assert!(!sent.ok, "{sent:?}");
    assert_eq!(sent.status_code, Some(307));
    let read = c.get_json("/api/tasks").await;
    assert_eq!(read, Err(UpstreamError::Status(302)));
    assert_eq!(
        *hits.lock().unwrap(),
        0,
        "the redirect target is never called"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_not_buffered() {
    let big = "x".repeat(cfactory_upstream_http::MAX_BODY_BYTES + 1);
    let app = Router::new().route(
        "/api/tasks",
        get(move || {
            let big = big.clone();
            async move { big }
        }),
    );
    let base = serve(app).await;
    let c = client(&base, T);
    match c.get_json("/api/tasks").await {
        Err(UpstreamError::Malformed(m)) => assert!(m.contains("larger than"), "{m}"),
        other => panic!("expected a size refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_step_to_a_closed_port_fails_without_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sent = client(&base, T)
        .send_step(
            Service::TFACTORY,
            &step("/api/tasks/s/approve-plan", json!({})),
        )
        .await;
    assert!(!sent.ok);
    let error = sent.error.unwrap();
    assert!(error.starts_with("cannot reach tfactory"), "{error}");
    assert_no_url(&error, &base);
}

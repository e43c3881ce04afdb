//! The live-feed follower against a scripted local WebSocket server: good frames land,
//! garbage is skipped, pings are answered, dropped sockets are redialled, the bearer
//! token rides in the handshake, and each feed's state (connected, refused, dropped)
//! reaches the sink.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use cfactory_domain::event::Service;
use cfactory_domain::ports::LiveSink;
use cfactory_domain::upstream::{FeedState, LiveUpdate};
use cfactory_upstream_http::{UpstreamClient, UpstreamConfig, follow_feeds};

#[derive(Default)]
struct Seen {
    events_connections: AtomicUsize,
    progress_connections: AtomicUsize,
    auth: Mutex<Vec<Option<String>>>,
    pongs: AtomicUsize,
}

#[derive(Default)]
struct Collect(
    Mutex<Vec<(Service, LiveUpdate)>>,
    Mutex<Vec<(String, FeedState)>>,
);

impl LiveSink for Collect {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.0.lock().unwrap().push((service, update));
    }

    fn feed_state(&self, _service: Service, route: &str, state: FeedState) {
        self.1.lock().unwrap().push((route.to_owned(), state));
    }
}

impl Collect {
    /// The states reported for `route`, in order.
    fn states(&self, route: &str) -> Vec<FeedState> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

fn record_auth(seen: &Seen, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    seen.auth.lock().unwrap().push(auth);
}

/// Each `/ws/events` connection: a ping, garbage, an unknown type, a known type without
/// a task id, then one good frame carrying the connection's number, then the server
/// drops the socket.
async fn events(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(seen): State<Arc<Seen>>,
) -> Response {
    record_auth(&seen, &headers);
    let n = seen.events_connections.fetch_add(1, Ordering::SeqCst) + 1;
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let _ = socket.send(Message::Ping(b"hi".to_vec().into())).await;
        if let Ok(Some(Ok(Message::Pong(_)))) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv()).await
        {
            seen.pongs.fetch_add(1, Ordering::SeqCst);
        }
        for frame in [
            "this is not json".to_owned(),
            r#"{"type":"task:mystery","payload":{"taskId":"x"}}"#.to_owned(),
            r#"{"type":"task:status","payload":{"status":"done"}}"#.to_owned(),
            r#"[1,2,3]"#.to_owned(),
            format!(
                r#"{{"type":"task:status","payload":{{"taskId":"p:{n}","status":"ai_review"}}}}"#
            ),
        ] {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
        // Dropping the socket ends the connection; the follower must dial again.
    })
}

/// `/ws/progress` sends one progress frame and stays open.
async fn progress(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(seen): State<Arc<Seen>>,
) -> Response {
    record_auth(&seen, &headers);
    seen.progress_connections.fetch_add(1, Ordering::SeqCst);
    ws.on_upgrade(|mut socket: WebSocket| async move {
        let frame = r#"{"type":"progress","task_id":"p:9","phase":"coding","message":"writing","timestamp":"2026-03-01T10:00:00Z","percentage":42}"#;
        let _ = socket.send(Message::Text(frame.into())).await;
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

#[tokio::test]
async fn follows_both_feeds_skips_garbage_and_reconnects() {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/ws/events", get(events))
        .route("/ws/progress", get(progress))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = UpstreamClient::new(
        UpstreamConfig::new(&base, Some("feed-token".into()), Duration::from_secs(5)).unwrap(),
    );
    let sink = Arc::new(Collect::default());
    let follower = {
        let sink = sink.clone();
        tokio::spawn(async move {
            follow_feeds(
                &client,
                Service::AIFACTORY,
                &["/ws/events", "/ws/progress"],
                sink,
            )
            .await;
        })
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen.events_connections.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The frames of the connections so far reach the sink: wait for them, not for a time.
    let delivered = || {
        let updates = sink.0.lock().unwrap();
        let statuses = updates
            .iter()
            .filter(|(_, u)| matches!(u, LiveUpdate::Status { .. }))
            .count();
        let progress = updates
            .iter()
            .any(|(_, u)| matches!(u, LiveUpdate::Progress { .. }));
        statuses >= 2 && progress
    };
    while !delivered() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the frames never reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follower.abort();

    let updates = sink.0.lock().unwrap().clone();
    assert!(updates.iter().all(|(s, _)| *s == Service::AIFACTORY));
    let statuses: Vec<&str> = updates
        .iter()
        .filter_map(|(_, u)| match u {
            LiveUpdate::Status {
                task_id, status, ..
            } => {
                assert_eq!(status, "ai_review");
                Some(task_id.as_str())
            }
            LiveUpdate::Progress { .. } => None,
        })
        .collect();
    assert!(statuses.len() >= 2, "{statuses:?}");
    assert_eq!(
        &statuses[..2],
        ["p:1", "p:2"],
        "one good frame per connection, in order"
    );

    let progress = updates.iter().find_map(|(_, u)| match u {
        LiveUpdate::Progress {
            task_id,
            phase,
            percent,
            message,
            ..
        } => Some((task_id.clone(), phase.clone(), *percent, message.clone())),
        LiveUpdate::Status { .. } => None,
    });
    assert_eq!(
        progress,
        Some((
            "p:9".into(),
            Some("coding".into()),
            Some(42.0),
            Some("writing".into())
        ))
    );
    assert_eq!(
        seen.progress_connections.load(Ordering::SeqCst),
        1,
        "the open feed was left alone"
    );
    assert!(
        seen.pongs.load(Ordering::SeqCst) >= 1,
        "pings were not answered"
    );
    let auth = seen.auth.lock().unwrap().clone();
    assert!(!auth.is_empty());
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Bearer feed-token")),
        "{auth:?}"
    );

    // Each events connection spoke, then dropped: connected and disconnected in turn.
    let events = sink.states("/ws/events");
    assert!(events.len() >= 4, "{events:?}");
    assert_eq!(events[0], FeedState::Connected);
    assert!(
        matches!(events[1], FeedState::Disconnected { .. }),
        "{events:?}"
    );
    assert_eq!(events[2], FeedState::Connected);
    assert_eq!(sink.states("/ws/progress"), [FeedState::Connected]);
}

#[derive(Default)]
struct Dials(AtomicUsize, AtomicUsize, AtomicUsize);

#[tokio::test]
async fn refused_feeds_are_reported_unauthorized_and_retried_late() {
    // The handshake completes and the server closes at once with an auth code
    // (TFactory's 4001), or it refuses the upgrade with HTTP 401.
    let app = Router::new()
        .route(
            "/ws/closes",
            get(
                |ws: WebSocketUpgrade, State(dials): State<Arc<Dials>>| async move {
                    dials.0.fetch_add(1, Ordering::SeqCst);
                    ws.on_upgrade(|mut socket: WebSocket| async move {
                        let close = CloseFrame {
                            code: 4001,
                            reason: "Unauthorized".into(),
                        };
                        let _ = socket.send(Message::Close(Some(close))).await;
                    })
                },
            ),
        )
        .route(
            "/ws/refuses",
            get(|State(dials): State<Arc<Dials>>| async move {
                dials.1.fetch_add(1, Ordering::SeqCst);
                StatusCode::UNAUTHORIZED
            }),
        )
        .route(
            "/ws/normal-close",
            get(
                |ws: WebSocketUpgrade, State(dials): State<Arc<Dials>>| async move {
                    dials.2.fetch_add(1, Ordering::SeqCst);
                    ws.on_upgrade(|mut socket: WebSocket| async move {
                        let close = CloseFrame {
                            code: 1000,
                            reason: "".into(),
                        };
                        let _ = socket.send(Message::Close(Some(close))).await;
                    })
                },
            ),
        );
    let dials = Arc::new(Dials::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app.with_state(dials.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = UpstreamClient::new(
        UpstreamConfig::new(&base, Some("bad".into()), Duration::from_secs(5)).unwrap(),
    );
    let sink = Arc::new(Collect::default());
    // A window long enough for several redials at the first backoff steps.
    let _ = tokio::time::timeout(
        Duration::from_millis(1500),
        follow_feeds(
            &client,
            Service::AIFACTORY,
            &["/ws/closes", "/ws/refuses", "/ws/normal-close"],
            sink.clone(),
        ),
    )
    .await;

    assert_eq!(
        sink.states("/ws/closes"),
        [FeedState::Unauthorized {
            detail: "closed with code 4001 (Unauthorized)".into()
        }]
    );
    assert_eq!(
        sink.states("/ws/refuses"),
        [FeedState::Unauthorized {
            detail: "the server refused the upgrade with HTTP 401".into()
        }]
    );
    assert_eq!(
        dials.0.load(Ordering::SeqCst),
        1,
        "redialled a refused feed"
    );
    assert_eq!(
        dials.1.load(Ordering::SeqCst),
        1,
        "redialled a refused feed"
    );
    // A plain close is a drop: reported once, however often it repeats, and redialled
    // soon.
    assert_eq!(
        sink.states("/ws/normal-close"),
        [FeedState::Disconnected {
            detail: "closed with code 1000".into()
        }]
    );
    assert!(dials.2.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn a_silent_feed_is_connected_once_it_has_stayed_open() {
    // TFactory's `/ws/events` says nothing until its first ping, 30 s in.
    let app = Router::new().route(
        "/ws/events",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket: WebSocket| async move {
                while let Some(Ok(_)) = socket.recv().await {}
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client =
        UpstreamClient::new(UpstreamConfig::new(&base, None, Duration::from_secs(5)).unwrap());
    let sink = Arc::new(Collect::default());
    let follower = {
        let sink = sink.clone();
        tokio::spawn(async move {
            follow_feeds(&client, Service::TFACTORY, &["/ws/events"], sink).await;
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.states("/ws/events").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follower.abort();
    assert_eq!(sink.states("/ws/events"), [FeedState::Connected]);
}

#[tokio::test]
async fn a_refused_feed_is_retried_not_fatal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = UpstreamClient::new(
        UpstreamConfig::new(format!("http://{addr}"), None, Duration::from_secs(1)).unwrap(),
    );
    let sink: Arc<dyn LiveSink> = Arc::new(Collect::default());
    // Still running after several failed dials: it neither returned nor panicked.
    let run = tokio::time::timeout(
        Duration::from_millis(1200),
        follow_feeds(&client, Service::TFACTORY, &["/ws/events"], sink),
    )
    .await;
    assert!(run.is_err(), "the follower gave up");
}

#[tokio::test]
async fn an_https_upstream_is_dialled_over_tls_without_panicking() {
    // A plain TCP server that hangs up: the TLS client is built (which panics when no
    // crypto provider can be chosen) and the handshake fails, which must only retry.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let client = UpstreamClient::new(
        UpstreamConfig::new(format!("https://{addr}"), None, Duration::from_secs(1)).unwrap(),
    );
    let sink: Arc<dyn LiveSink> = Arc::new(Collect::default());
    let run = tokio::time::timeout(
        Duration::from_millis(1000),
        follow_feeds(&client, Service::AIFACTORY, &["/ws/events"], sink),
    )
    .await;
    assert!(run.is_err(), "the follower gave up");
    assert!(accepted.load(Ordering::SeqCst) >= 1, "no TLS dial was made");
}

//! The three services' REST and WebSocket surfaces as a client sees them, checked
//! against what the real servers answer: one file per service, the live feeds in
//! `feeds`, and here what all three share (the token and the health route).

mod aifactory;
mod feeds;
mod pfactory;
mod tfactory;

use std::time::Duration;

use axum::http::StatusCode;
use cfactory_sim::{SimConfig, Simulator};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::call;

#[tokio::test]
async fn a_token_is_required_when_one_is_set_and_health_answers_anyone() {
    let sim = Simulator::start(SimConfig {
        token: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    for (base, path) in [
        (&sim.pfactory_url, "/api/plan/sessions"),
        (&sim.aifactory_url, "/api/tasks"),
        (&sim.tfactory_url, "/api/tasks"),
        (&sim.tfactory_url, "/api/tfactory/tasks"),
    ] {
        let url = format!("{base}{path}");
        let (status, body) = call(Method::GET, &url, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
        assert_eq!(body, json!({"error": "Missing Authorization header"}));
        let (status, body) = call(Method::GET, &url, Some("nope"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"error": "Invalid token"}));
        let (status, _) = call(Method::GET, &url, Some("s3cret"), None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(Method::GET, &format!("{url}?token=s3cret"), None, None).await;
        assert_eq!(status, StatusCode::OK, "the legacy ?token=");

        let (status, health) = call(Method::GET, &format!("{base}/api/health"), None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health["status"], "healthy");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn live_feeds_refuse_a_client_without_a_token_each_in_its_own_way() {
    let sim = Simulator::start(SimConfig {
        token: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    for base in [&sim.aifactory_url, &sim.tfactory_url] {
        let ws = base.replace("http://", "ws://");
        // `/ws/events` completes the handshake, then closes with 4001.
        let (mut events, _) = tokio_tungstenite::connect_async(format!("{ws}/ws/events"))
            .await
            .unwrap();
        let first = events.next().await.unwrap().unwrap();
        let Message::Close(Some(frame)) = first else {
            panic!("expected a close frame, got {first:?}");
        };
        assert_eq!(u16::from(frame.code), 4001);
        assert_eq!(frame.reason.as_str(), "Unauthorized");

        // `/ws/progress` refuses the handshake itself.
        let refused = tokio_tungstenite::connect_async(format!("{ws}/ws/progress")).await;
        match refused {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
            other => panic!("expected a refused handshake, got {other:?}"),
        }

        // With the token both stay open.
        let (mut events, _) =
            tokio_tungstenite::connect_async(format!("{ws}/ws/events?token=s3cret"))
                .await
                .unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
        assert!(
            !matches!(early, Ok(Some(Ok(Message::Close(_)))) | Ok(None)),
            "{early:?}"
        );
        let (mut progress, _) =
            tokio_tungstenite::connect_async(format!("{ws}/ws/progress?token=s3cret"))
                .await
                .unwrap();
        let hello = progress.next().await.unwrap().unwrap().into_text().unwrap();
        let hello: Value = serde_json::from_str(&hello).unwrap();
        assert_eq!(hello["type"], "connected");
    }
    sim.shutdown().await;
}

/// The fields of a JSON object.
fn fields(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

//! The adapter against a local server playing the identity provider's discovery: a good
//! document gives an authorization URL with PKCE, `state` and `nonce`; no answer, a 5xx,
//! a body that is not a document, another issuer and an oversized key set are each
//! `Unavailable`, saying which.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_domain::SystemClock;
use cfactory_domain::ports::{IdentityError, IdentityProvider};
use cfactory_oidc::{MAX_BODY_BYTES, OidcConfig, OidcProvider};
use serde_json::json;

/// What the stand-in answers.
#[derive(Clone, Copy)]
enum Mode {
    Good,
    ServerError,
    NotADocument,
    OtherIssuer,
    HugeKeys,
}

#[derive(Clone)]
struct Stand {
    mode: Arc<Mutex<Mode>>,
    base: Arc<Mutex<String>>,
}

async fn discovery(State(stand): State<Stand>) -> Response {
    let base = stand.base.lock().unwrap().clone();
    let issuer = match *stand.mode.lock().unwrap() {
        Mode::ServerError => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::NotADocument => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"issuer\": 7",
            )
                .into_response();
        }
        Mode::OtherIssuer => "https://someone-else.example".to_owned(),
        Mode::Good | Mode::HugeKeys => base.clone(),
    };
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(stand): State<Stand>) -> Response {
    match *stand.mode.lock().unwrap() {
        Mode::HugeKeys => {
            let padding = "x".repeat(MAX_BODY_BYTES + 1);
            (
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"keys\": [], \"p\": \"{padding}\"}}"),
            )
                .into_response()
        }
        _ => axum::Json(json!({"keys": []})).into_response(),
    }
}

/// Serves the stand-in; returns its base URL and its mode switch.
async fn stand_in() -> (String, Arc<Mutex<Mode>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stand = Stand {
        mode: Arc::new(Mutex::new(Mode::Good)),
        base: Arc::new(Mutex::new(base.clone())),
    };
    let mode = stand.mode.clone();
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(stand);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, mode)
}

fn provider(issuer: &str) -> OidcProvider {
    OidcProvider::new(
        OidcConfig {
            issuer: issuer.to_owned(),
            client_id: "cfactory".into(),
            client_secret: Some("s3cret".into()),
            redirect_url: "https://cockpit.example.com/api/auth/oidc/callback".into(),
            scopes: vec!["email".into(), "profile".into()],
            groups_claim: "groups".into(),
            tenant_claim: None,
            timeout: Duration::from_secs(5),
            leeway: Duration::from_secs(60),
        },
        Arc::new(SystemClock),
    )
    .unwrap()
}

fn unavailable(result: Result<impl std::fmt::Debug, IdentityError>) -> String {
    match result {
        Err(IdentityError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_authorization_url_carries_pkce_state_and_nonce() {
    let (base, _) = stand_in().await;
    let provider = provider(&base);
    let first = provider.authorization().await.unwrap();
    let url = url::Url::parse(&first.url).unwrap();
    assert_eq!(url.path(), "/authorize");
    let q = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {url}"))
    };
    assert_eq!(q("response_type"), "code");
    assert_eq!(q("client_id"), "cfactory");
    assert_eq!(
        q("redirect_uri"),
        "https://cockpit.example.com/api/auth/oidc/callback"
    );
    assert_eq!(q("scope"), "openid email profile");
    assert_eq!(q("code_challenge_method"), "S256");
    assert_eq!(q("state"), first.state);
    assert_eq!(q("nonce"), first.nonce);
    assert!(q("code_challenge").len() >= 43);
    assert!(
        !first.url.contains(&first.pkce_verifier),
        "the verifier stays with the server"
    );
    let second = provider.authorization().await.unwrap();
    assert_ne!(first.state, second.state);
    assert_ne!(first.nonce, second.nonce);
    assert_ne!(first.pkce_verifier, second.pkce_verifier);
    assert!(
        !format!("{first:?}").contains(&first.nonce),
        "secrets never print"
    );
}

#[tokio::test]
async fn a_provider_that_cannot_be_read_is_unavailable_and_says_why() {
    let nobody = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let why = unavailable(provider(&nobody).authorization().await);
    assert!(
        why.contains("discovery") && why.contains("could not connect"),
        "{why}"
    );

    for (mode, needle) in [
        (Mode::ServerError, "answered 500"),
        (Mode::NotADocument, "could not be read"),
        (Mode::OtherIssuer, "someone-else.example"),
        (Mode::HugeKeys, "larger than"),
    ] {
        let (base, switch) = stand_in().await;
        *switch.lock().unwrap() = mode;
        let why = unavailable(provider(&base).authorization().await);
        assert!(why.contains(needle), "{needle}: {why}");
    }
}

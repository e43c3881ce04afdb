//! Browser sessions: `POST /api/session {"key"}` exchanges an API key for an HttpOnly,
//! SameSite=Strict cookie, so the key never sits in a URL or in the page's storage. The
//! store keeps each session (`ApiKeyStore::create_session`) as the SHA-256 of its token
//! and of the key, so a restart, or another process on the same database, honours it,
//! and nothing read from the store signs anyone in. Every request looks the key up
//! again, so a revoked key ends its sessions at once. Single sign-on (`crate::sso`) opens
//! the same cookie for a person instead of a key (`UserStore::create_user_session`); its
//! token starts with [`USER_TOKEN_PREFIX`].

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKeyStore, BrowserSession, StoreError, UserSession, UserStore};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::keys::hash_secret;
use crate::problem::ApiError;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "cfactory_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// How a single sign-on session's token starts, so a request's cookie is looked up in
/// the one place that holds it.
pub const USER_TOKEN_PREFIX: &str = "sso_";

/// A fresh cookie token: 43 random alphanumerics (over 250 bits).
fn new_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect()
}

/// Whether a cookie's token is a single sign-on session's.
pub fn is_user_token(token: &str) -> bool {
    token.starts_with(USER_TOKEN_PREFIX)
}

/// Starts a session, at `now`, for the tenant's user `user_id` (signed in by single
/// sign-on); returns the cookie's token. The session lasts [`SESSION_TTL`].
pub async fn start_for_user(
    users: &dyn UserStore,
    tenant: &TenantId,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let token = format!("{USER_TOKEN_PREFIX}{}", new_token());
    let ttl = chrono::Duration::from_std(SESSION_TTL).expect("the session length fits");
    let session = UserSession {
        token_sha256: hash_secret(&token),
        tenant: tenant.clone(),
        user_id: user_id.to_owned(),
        expires_at: now + ttl,
    };
    users.create_user_session(&session, now).await?;
    Ok(token)
}

/// Starts a session, at `now`, for the key with this hash; returns the cookie's token.
pub async fn start(
    keys: &dyn ApiKeyStore,
    key_sha256: String,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let token = new_token();
    let ttl = chrono::Duration::from_std(SESSION_TTL).expect("the session length fits");
    let session = BrowserSession {
        token_sha256: hash_secret(&token),
        key_sha256,
        expires_at: now + ttl,
    };
    keys.create_session(&session, now).await?;
    Ok(token)
}

/// The key hash of the live session a cookie's token belongs to.
pub async fn key_hash(
    keys: &dyn ApiKeyStore,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    keys.find_session(&hash_secret(token), now).await
}

/// The session token a request's cookies carry.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/session", get(current).post(sign_in).delete(sign_out))
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The tenant.
    pub tenant: String,
    /// What the caller may do.
    pub scopes: Vec<&'static str>,
    /// Whether the server has no keys at all.
    pub open_mode: bool,
    /// The person, when signed in by single sign-on (absent for a key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<SessionUser>,
}

/// A person signed in by single sign-on, as the session shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUser {
    /// Their CFactory id (`usr_…`).
    pub id: String,
    /// How the cockpit names them: the email, else the display name, else the subject.
    pub name: String,
    /// Their email, as the identity provider last said.
    pub email: Option<String>,
    /// Their groups, as the identity provider last said.
    pub groups: Vec<String>,
}

fn view(caller: &Caller) -> SessionView {
    SessionView {
        tenant: caller.tenant.to_string(),
        scopes: caller.scopes().iter().map(|s| s.as_str()).collect(),
        open_mode: matches!(caller.credential, crate::auth::Credential::Open),
        user: caller.user.as_ref().map(|u| SessionUser {
            id: u.id.clone(),
            name: u.label().to_owned(),
            email: u.email.clone(),
            groups: u.groups.clone(),
        }),
    }
}

/// Who the caller is: tenant, scopes, the person signed in by single sign-on, and
/// whether the server runs in open mode.
#[utoipa::path(
    get,
    path = "/api/session",
    tag = "session",
    operation_id = "currentSession",
    responses((status = 200, description = "The caller", body = SessionView)),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub async fn current(caller: Caller) -> Json<SessionView> {
    Json(view(&caller))
}

/// A sign-in request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    /// The API key.
    pub key: String,
}

/// The session cookie; `Secure` when the cockpit is reached over https.
pub(crate) fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// Whether the browser reached the cockpit over https: `--public-url` is https, or the
/// request came so (its URI, or `X-Forwarded-Proto` from a proxy in front; the header
/// can only add `Secure`, never take it away).
pub(crate) fn over_https(state: &AppState, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    state
        .own_names
        .public
        .as_ref()
        .is_some_and(|p| p.is_https())
        || uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Exchanges an API key for an HttpOnly, SameSite=Strict session cookie.
#[utoipa::path(
    post,
    path = "/api/session",
    tag = "session",
    operation_id = "signIn",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionView),
        (status = 401, description = "Unknown or revoked key", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
)]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
    })?;
    let hash = hash_secret(body.key.trim());
    let key = state
        .keys
        .find_key(&hash)
        .await?
        .ok_or_else(|| ApiError::Unauthorized {
            detail: "unknown or revoked API key".into(),
        })?;
    let token = start(state.keys.as_ref(), hash, state.clock.now()).await?;
    let scopes: Vec<&'static str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let mut response = Json(SessionView {
        tenant: key.tenant.to_string(),
        scopes,
        open_mode: false,
        user: None,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            &token,
            SESSION_TTL.as_secs(),
            over_https(&state, &headers, &uri),
        ),
    );
    Ok(response)
}

/// Ends the cookie's session and clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/session",
    tag = "session",
    operation_id = "signOut",
    responses((status = 204, description = "Signed out")),
)]
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        if is_user_token(&token) {
            state.users.end_user_session(&hash_secret(&token)).await?;
        } else {
            state.keys.end_session(&hash_secret(&token)).await?;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie("", 0, over_https(&state, &headers, &uri)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_stored_by_its_token_hash_and_lasts_its_length() {
        let store = cfactory_domain::memory::InMemoryStore::new(std::sync::Arc::new(
            cfactory_domain::SystemClock,
        ));
        let now = Utc::now();
        let token = start(&store, "keyhash".into(), now).await.unwrap();
        assert!(token.len() >= 40);
        assert_eq!(
            store.find_session(&token, now).await.unwrap(),
            None,
            "the token itself is not what is stored"
        );
        let ttl = chrono::Duration::from_std(SESSION_TTL).unwrap();
        let just_before = now + ttl - chrono::Duration::seconds(1);
        assert_eq!(
            key_hash(&store, &token, just_before)
                .await
                .unwrap()
                .as_deref(),
            Some("keyhash")
        );
        assert_eq!(key_hash(&store, &token, now + ttl).await.unwrap(), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; cfactory_session=tok123; x=1"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("tok123"));
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }
}

//! Browser sessions: `POST /api/session {"key"}` exchanges an API key for an HttpOnly,
//! SameSite=Strict cookie, so the key never sits in a URL or in the page's storage. A
//! session remembers only the key's hash; every request looks the key up again, so a
//! revoked key ends its sessions at once. Sessions live in this process's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Caller;
use crate::keys::hash_secret;
use crate::problem::ApiError;

/// The cookie's name.
pub const COOKIE: &str = "cfactory_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The live sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// Starts a session for the key with this hash; returns its token.
    pub fn create(&self, key_hash: String) -> String {
        let token: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(43)
            .map(char::from)
            .collect();
        let mut map = self.map.lock().expect("sessions lock");
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(token.clone(), (key_hash, now + SESSION_TTL));
        token
    }

    /// The key hash of a live session.
    pub fn key_hash(&self, token: &str) -> Option<String> {
        let map = self.map.lock().expect("sessions lock");
        map.get(token)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(hash, _)| hash.clone())
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        self.map.lock().expect("sessions lock").remove(token);
    }
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
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// The tenant.
    pub tenant: String,
    /// What the caller may do.
    pub scopes: Vec<&'static str>,
    /// Whether the server has no keys at all.
    pub open_mode: bool,
}

fn view(caller: &Caller) -> SessionView {
    SessionView {
        tenant: caller.tenant.to_string(),
        scopes: caller.scopes().iter().map(|s| s.as_str()).collect(),
        open_mode: caller.key_id.is_none(),
    }
}

async fn current(caller: Caller) -> Json<SessionView> {
    Json(view(&caller))
}

/// A sign-in request.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    /// The API key.
    pub key: String,
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .expect("cookie text is ASCII")
}

async fn sign_in(
    State(state): State<AppState>,
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
    let token = state.sessions.create(hash);
    let scopes: Vec<&'static str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let mut response = Json(SessionView {
        tenant: key.tenant.to_string(),
        scopes,
        open_mode: false,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&token, SESSION_TTL.as_secs()));
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie_token(&headers) {
        state.sessions.end(&token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_remember_the_hash_until_ended() {
        let s = Sessions::default();
        let t = s.create("abc".into());
        assert!(t.len() >= 40);
        assert_eq!(s.key_hash(&t).as_deref(), Some("abc"));
        s.end(&t);
        assert_eq!(s.key_hash(&t), None);
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

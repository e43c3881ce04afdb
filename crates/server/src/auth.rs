//! Who is calling: an API key from `Authorization: Bearer`, `X-API-Key`, or (on the
//! event ingress only) `?token=`, looked up by its SHA-256 on every request so keys made
//! or revoked by another process take effect at once. With no keys at all the server is
//! in open mode, which only a loopback-bound server without single sign-on allows. Keys
//! are never logged. A browser session cookie stands for a key, or for a person signed in
//! by single sign-on, whose scopes their groups grant as the store holds them at each
//! request. While the store cannot be reached, reads are admitted on what it last
//! answered ([`Recall`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use cfactory_domain::TenantId;
use cfactory_domain::actions::{Actor, Door};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cfactory_domain::ports::{ApiKey, Scope, StoreError, User};

use crate::access::CallerSlot;
use crate::keys::hash_secret;
use crate::problem::ApiError;
use crate::state::AppState;

/// What a caller presented, kept so a long-lived stream can ask again whether it still
/// holds: never the secret of a key, only its hash.
#[derive(Clone)]
pub enum Credential {
    /// An API key, by its SHA-256.
    Key(String),
    /// A browser session's cookie token.
    Session(String),
    /// Nothing: open mode.
    Open,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Key(_) => "Key(***)",
            Self::Session(_) => "Session(***)",
            Self::Open => "Open",
        })
    }
}

impl Credential {
    /// Whether the credential still admits its holder: the key is not revoked, the
    /// session has not ended (nor its key been revoked), open mode has not been ended by a
    /// first key. Asked of the store, so a change made by another process counts.
    pub async fn still_holds(
        &self,
        state: &AppState,
    ) -> Result<bool, cfactory_domain::ports::StoreError> {
        match self {
            Self::Key(hash) => Ok(state.keys.find_key(hash).await?.is_some()),
            Self::Session(token) if crate::session::is_user_token(token) => {
                let user = state
                    .users
                    .find_user_session(&hash_secret(token), state.clock.now())
                    .await?;
                Ok(user.is_some_and(|u| user_scopes(state, &u).is_some()))
            }
            Self::Session(token) => {
                match crate::session::key_hash(state.keys.as_ref(), token, state.clock.now())
                    .await?
                {
                    Some(hash) => Ok(state.keys.find_key(&hash).await?.is_some()),
                    None => Ok(false),
                }
            }
            Self::Open => Ok(!state.keys.has_active_keys().await?),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant every store call of the request uses.
    pub tenant: TenantId,
    /// The key's public id (`None` in open mode).
    pub key_id: Option<String>,
    scopes: Vec<Scope>,
    /// The door: `ui` for a browser session (or a browser in open mode), else `api`.
    pub door: Door,
    /// What was presented.
    pub credential: Credential,
    /// The person, for a single sign-on session: as the store holds them now.
    pub user: Option<User>,
}

/// The scopes a signed-in user's groups (their sign-in's and their provisioned ones)
/// grant now; `None` when single sign-on is not configured or none of them is mapped.
fn user_scopes(state: &AppState, user: &User) -> Option<Vec<Scope>> {
    let scopes = state
        .sso
        .as_ref()?
        .settings
        .roles
        .scopes_for(&user.role_groups());
    (!scopes.is_empty()).then_some(scopes)
}

impl Caller {
    /// Whether the caller may use `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Who the caller is, as the audit log names them: the person signed in by single
    /// sign-on (`user:` and their email, else name, else subject), the key's id, or
    /// `local` in open mode. Never the key itself.
    pub fn actor(&self) -> String {
        if let Some(user) = &self.user {
            return format!("user:{}", user.label());
        }
        self.key_id
            .as_ref()
            .map_or_else(|| "local".to_owned(), |id| format!("key:{id}"))
    }

    /// The caller as the action lifecycle records them, through their own door.
    pub fn as_actor(&self) -> Actor {
        self.via(self.door)
    }

    /// The caller acting through `door` (the copilot's chat, MCP).
    pub fn via(&self, door: Door) -> Actor {
        Actor::new(self.actor(), door)
    }

    /// `Ok` when the caller has `scope`, else 403.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                detail: match &self.user {
                    Some(_) => format!(
                        "your groups do not grant the `{}` scope in CFactory",
                        scope.as_str()
                    ),
                    None => format!("this key lacks the `{}` scope", scope.as_str()),
                },
            })
        }
    }

    /// The scopes, sorted.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

/// The key a request carries, if any. `?token=` counts only when `allow_query`.
/// The key a request presents: `Authorization: Bearer`, `X-API-Key`, or `?token=` on the
/// event ingress only. Not a session cookie.
pub(crate) fn presented_key(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(text) = value.to_str()
        && let Some((scheme, token)) = text.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(token.trim().to_owned());
    }
    if let Some(value) = headers.get("x-api-key")
        && let Ok(text) = value.to_str()
    {
        return Some(text.trim().to_owned());
    }
    if ingress_path(uri.path()) {
        return url_query_value(uri.query()?, "token");
    }
    None
}

/// The value of `name` in a raw query string, as sent.
pub(crate) fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Whether `?token=` is honoured on this path: the event ingress only.
fn ingress_path(path: &str) -> bool {
    path == "/api/events" || path == "/api/events/completion"
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// The caller, also left in the request's [`CallerSlot`] for the access log.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Self::identify(parts, state).await?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.fill(&caller);
        }
        Ok(caller)
    }
}

impl Caller {
    /// Who presented what: a key, a session, or nobody in open mode.
    async fn identify(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = presented_key(&parts.headers, &parts.uri)
            .filter(|s| !s.is_empty())
            .map(|secret| hash_secret(&secret));
        // A browser session stands in for a key; a state-changing request made with it
        // must come from the cockpit's own origin.
        let from_cookie = presented.is_none();
        let read_only = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        let mut session = None;
        let presented = match presented {
            Some(hash) => Some(hash),
            None => match crate::session::cookie_token(&parts.headers) {
                Some(token) if crate::session::is_user_token(&token) => {
                    return Self::signed_in_user(parts, state, token, read_only).await;
                }
                Some(token) => {
                    let found =
                        crate::session::key_hash(state.keys.as_ref(), &token, state.clock.now())
                            .await;
                    let hash = state.recall.session(&token, found, read_only)?;
                    session = Some(token);
                    hash
                }
                None => None,
            },
        };
        if from_cookie
            && presented.is_some()
            && !matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            )
            && !crate::guard::browser_origin_allowed(&state.own_names, &parts.headers)
        {
            return Err(ApiError::Forbidden {
                detail: "a session may only be used from the cockpit's own origin".into(),
            });
        }
        match presented {
            Some(hash) => {
                let found = state.keys.find_key(&hash).await;
                let key = state.recall.key(&hash, found, read_only)?;
                let key = key.ok_or_else(|| ApiError::Unauthorized {
                    detail: "unknown or revoked API key".into(),
                })?;
                Ok(Self {
                    tenant: key.tenant,
                    key_id: Some(key.id),
                    scopes: key.scopes,
                    door: if from_cookie { Door::Ui } else { Door::Api },
                    credential: match session {
                        Some(token) if from_cookie => Credential::Session(token),
                        _ => Credential::Key(hash),
                    },
                    user: None,
                })
            }
            None => {
                if state.open_mode_allowed
                    && !state
                        .recall
                        .any_keys(state.keys.has_active_keys().await, read_only)?
                {
                    // A browser always names its origin (the guard has checked it is ours).
                    let browser = parts.headers.contains_key(header::ORIGIN);
                    return Ok(Self {
                        tenant: state.default_tenant.clone(),
                        key_id: None,
                        scopes: Scope::ALL.to_vec(),
                        door: if browser { Door::Ui } else { Door::Api },
                        credential: Credential::Open,
                        user: None,
                    });
                }
                Err(ApiError::Unauthorized {
                    detail: "an API key is required: send `Authorization: Bearer <key>` or \
                             `X-API-Key: <key>`"
                        .into(),
                })
            }
        }
    }
}

impl Caller {
    /// The person a single sign-on session belongs to, with the scopes their groups grant
    /// now; refused when the session has ended, the user is inactive or gone, or their
    /// groups no longer grant anything.
    async fn signed_in_user(
        parts: &Parts,
        state: &AppState,
        token: String,
        read_only: bool,
    ) -> Result<Self, ApiError> {
        let found = state
            .users
            .find_user_session(&hash_secret(&token), state.clock.now())
            .await;
        let user = state
            .recall
            .user_session(&token, found, read_only)?
            .ok_or_else(|| ApiError::Unauthorized {
                detail: "your session has ended (signed out, expired, or the account was                          deactivated): sign in again"
                    .into(),
            })?;
        let scopes = user_scopes(state, &user).ok_or_else(|| ApiError::Unauthorized {
            detail: "single sign-on is not configured here, or your groups no longer grant                      any access in CFactory"
                .into(),
        })?;
        if !read_only && !crate::guard::browser_origin_allowed(&state.own_names, &parts.headers) {
            return Err(ApiError::Forbidden {
                detail: "a session may only be used from the cockpit's own origin".into(),
            });
        }
        Ok(Self {
            tenant: user.tenant.clone(),
            key_id: None,
            scopes,
            door: Door::Ui,
            credential: Credential::Session(token),
            user: Some(user),
        })
    }
}

/// How long a credential proved against the store is recalled while the store cannot be
/// reached.
pub const RECALL_FOR: Duration = Duration::from_secs(600);
/// Most credentials recalled; past it the oldest half is forgotten.
const RECALL_MAX: usize = 10_000;

/// The credentials this server proved against the store lately. While the store cannot
/// be reached, a read (GET or HEAD) presenting one of them is admitted as it was last
/// proved, for at most [`RECALL_FOR`], so what the read model holds keeps being served
/// through a database outage. Nothing that changes state is admitted this way, and
/// nothing is recalled while the store answers: a key revoked by another process during
/// the outage stops working the moment the store is back.
#[derive(Default)]
pub struct Recall {
    inner: Mutex<Recalled>,
}

#[derive(Default)]
struct Recalled {
    /// Key hash → the key, when proved.
    keys: HashMap<String, (Option<ApiKey>, Instant)>,
    /// Session token hash → its key's hash, when proved.
    sessions: HashMap<String, (Option<String>, Instant)>,
    /// Single sign-on session token hash → its user, when proved.
    user_sessions: HashMap<String, (Option<User>, Instant)>,
    /// Whether any key was active, when last asked.
    any_keys: Option<(bool, Instant)>,
}

fn fresh<T: Clone>(entry: Option<&(T, Instant)>) -> Option<T> {
    entry
        .filter(|(_, at)| at.elapsed() < RECALL_FOR)
        .map(|(value, _)| value.clone())
}

fn bounded<V>(map: &mut HashMap<String, (V, Instant)>) {
    if map.len() >= RECALL_MAX {
        let mut ages: Vec<Instant> = map.values().map(|(_, at)| *at).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        map.retain(|_, (_, at)| *at > cut);
    }
}

impl Recall {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recalled> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `found`, the store's answer for the key hashed `hash`, remembered; or, when the
    /// store is unreachable and the request only reads, what it last answered.
    pub fn key(
        &self,
        hash: &str,
        found: Result<Option<ApiKey>, StoreError>,
        read_only: bool,
    ) -> Result<Option<ApiKey>, ApiError> {
        settle(
            found,
            read_only,
            |key| {
                let mut recalled = self.lock();
                bounded(&mut recalled.keys);
                recalled.keys.insert(hash.to_owned(), (key, Instant::now()));
            },
            || fresh(self.lock().keys.get(hash)),
        )
    }

    /// As [`Recall::key`], for the session whose cookie token is `token`.
    pub fn session(
        &self,
        token: &str,
        found: Result<Option<String>, StoreError>,
        read_only: bool,
    ) -> Result<Option<String>, ApiError> {
        let hash = hash_secret(token);
        settle(
            found,
            read_only,
            |key| {
                let mut recalled = self.lock();
                bounded(&mut recalled.sessions);
                recalled
                    .sessions
                    .insert(hash.clone(), (key, Instant::now()));
            },
            || fresh(self.lock().sessions.get(&hash)),
        )
    }

    /// As [`Recall::key`], for the single sign-on session whose cookie token is `token`.
    pub fn user_session(
        &self,
        token: &str,
        found: Result<Option<User>, StoreError>,
        read_only: bool,
    ) -> Result<Option<User>, ApiError> {
        let hash = hash_secret(token);
        settle(
            found,
            read_only,
            |user| {
                let mut recalled = self.lock();
                bounded(&mut recalled.user_sessions);
                recalled
                    .user_sessions
                    .insert(hash.clone(), (user, Instant::now()));
            },
            || fresh(self.lock().user_sessions.get(&hash)),
        )
    }

    /// As [`Recall::key`], for whether any key is active (open mode ends with the first).
    pub fn any_keys(
        &self,
        found: Result<bool, StoreError>,
        read_only: bool,
    ) -> Result<bool, ApiError> {
        settle(
            found,
            read_only,
            |any| self.lock().any_keys = Some((any, Instant::now())),
            || fresh(self.lock().any_keys.as_ref()),
        )
    }
}

/// The store's answer `found`, handed to `remember`; or, when the store is unreachable
/// and the request only reads, what `recall` still holds. Any other failure stands.
fn settle<T: Clone>(
    found: Result<T, StoreError>,
    read_only: bool,
    remember: impl FnOnce(T),
    recall: impl FnOnce() -> Option<T>,
) -> Result<T, ApiError> {
    match found {
        Ok(value) => {
            remember(value.clone());
            Ok(value)
        }
        Err(StoreError::Unavailable(cause)) if read_only => {
            recall().ok_or_else(|| unavailable(cause))
        }
        Err(error) => Err(error.into()),
    }
}

fn unavailable(cause: String) -> ApiError {
    ApiError::from(StoreError::Unavailable(cause))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_come_from_headers_and_only_ingress_takes_a_query_token() {
        let p = parts("/api/workitems", &[("authorization", "Bearer cfk_a")]);
        assert_eq!(presented_key(&p.headers, &p.uri).as_deref(), Some("cfk_a"));
        let p = parts("/api/workitems", &[("x-api-key", "cfk_b")]);
        assert_eq!(presented_key(&p.headers, &p.uri).as_deref(), Some("cfk_b"));
        let p = parts("/api/workitems?token=cfk_c", &[]);
        assert!(!ingress_path(p.uri.path()));
        assert_eq!(presented_key(&p.headers, &p.uri), None);
        let p = parts("/api/events/completion?x=1&token=cfk_d", &[]);
        assert!(ingress_path(p.uri.path()));
        assert_eq!(presented_key(&p.headers, &p.uri).as_deref(), Some("cfk_d"));
    }

    fn down() -> Result<Option<ApiKey>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    #[test]
    fn a_store_outage_recalls_proved_keys_for_reads_only() {
        let recall = Recall::default();
        let key = ApiKey {
            id: "k1".into(),
            name: None,
            tenant: TenantId::parse("acme").unwrap(),
            scopes: vec![Scope::Read],
            created_at: chrono::Utc::now(),
            revoked_at: None,
        };
        // Nothing proved yet: the outage is reported, not a 401.
        assert!(matches!(
            recall.key("h1", down(), true),
            Err(ApiError::Unavailable)
        ));
        assert_eq!(
            recall.key("h1", Ok(Some(key.clone())), true).unwrap(),
            Some(key.clone())
        );
        // Proved once: a read is admitted through the outage, a write is not.
        assert_eq!(recall.key("h1", down(), true).unwrap(), Some(key.clone()));
        assert!(matches!(
            recall.key("h1", down(), false),
            Err(ApiError::Unavailable)
        ));
        // A key last seen revoked stays refused.
        assert_eq!(recall.key("h1", Ok(None), true).unwrap(), None);
        assert_eq!(recall.key("h1", down(), true).unwrap(), None);
        // Another failure than an outage is never covered up.
        assert!(matches!(
            recall.key("h1", Err(StoreError::Unexpected("bad".into())), true),
            Err(ApiError::Internal)
        ));
        // Open mode and sessions follow the same rule.
        assert!(
            recall
                .any_keys(Err(StoreError::Unavailable("x".into())), true)
                .is_err()
        );
        assert!(!recall.any_keys(Ok(false), true).unwrap());
        assert!(
            !recall
                .any_keys(Err(StoreError::Unavailable("x".into())), true)
                .unwrap()
        );
        assert!(
            recall
                .any_keys(Err(StoreError::Unavailable("x".into())), false)
                .is_err()
        );
        assert_eq!(
            recall
                .session("tok", Ok(Some("h1".into())), true)
                .unwrap()
                .as_deref(),
            Some("h1")
        );
        assert_eq!(
            recall
                .session("tok", Err(StoreError::Unavailable("x".into())), true)
                .unwrap()
                .as_deref(),
            Some("h1")
        );
        assert!(
            recall
                .session("other", Err(StoreError::Unavailable("x".into())), true)
                .is_err()
        );
    }
}

//! Single sign-on with OpenID Connect: `GET /api/auth/oidc/login` starts the
//! authorization-code flow (PKCE, `state`, `nonce`, kept in [`pending`]) and sends the
//! browser to the identity provider; `GET /api/auth/oidc/callback` takes the code back,
//! has the [`IdentityProvider`] port check the ID token, maps the person's groups to
//! scopes with the `[roles]` table, records them as a user of their tenant, and opens the
//! same session cookie as key sign-in. Whatever goes wrong there is answered with a page
//! that says so ([`page`]). `GET /api/auth/methods` tells the sign-in page what it may
//! offer.
//!
//! The only module that names the OIDC adapter crate.

pub mod page;
pub mod pending;
pub mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{Clock, IdentityError, IdentityProvider, SignInProfile};
use serde::{Deserialize, Serialize};

use crate::keys::{hash_secret, random_text};
use crate::problem::ApiError;
use crate::state::AppState;
use pending::{PENDING_TTL, Pending, Refusal, Started};
use settings::{SsoSettings, SsoTenant};

/// The cookie that binds a started sign-in to the browser that started it.
pub const BINDING_COOKIE: &str = "cfactory_sso";
/// The path the binding cookie is sent to (the login and the callback).
const BINDING_PATH: &str = "/api/auth/oidc";
/// How long one request to the identity provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How far the provider's clock may run from this server's.
const CLOCK_LEEWAY: Duration = Duration::from_secs(60);
/// Longest return path kept.
const MAX_RETURN_PATH: usize = 512;

/// Single sign-on, configured: the settings, the provider and the sign-ins in progress.
pub struct Sso {
    /// What was configured.
    pub settings: SsoSettings,
    provider: Arc<dyn IdentityProvider>,
    pending: Pending,
}

impl Sso {
    /// Single sign-on over `provider`.
    pub fn new(settings: SsoSettings, provider: Arc<dyn IdentityProvider>) -> Self {
        Self {
            settings,
            provider,
            pending: Pending::default(),
        }
    }

    /// Single sign-on with the OIDC adapter for `settings`. The provider's discovery
    /// document is read in the background, so a wrong issuer is reported in the log at
    /// start rather than at the first sign-in; the server starts either way.
    pub fn start(settings: &SsoSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Self>> {
        let config = cfactory_oidc::OidcConfig {
            issuer: settings.issuer.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            redirect_url: settings.redirect_url.clone(),
            scopes: settings.scopes.clone(),
            groups_claim: settings.groups_claim.clone(),
            tenant_claim: match &settings.tenant {
                SsoTenant::Claim(claim) => Some(claim.clone()),
                SsoTenant::Fixed(_) => None,
            },
            timeout: PROVIDER_TIMEOUT,
            leeway: CLOCK_LEEWAY,
        };
        let provider = Arc::new(
            cfactory_oidc::OidcProvider::new(config, clock)
                .map_err(|e| anyhow::anyhow!("single sign-on: {e}"))?,
        );
        let early = provider.clone();
        let issuer = settings.issuer.clone();
        tokio::spawn(async move {
            if let Err(e) = early.discover().await {
                tracing::warn!(%issuer, error = %e, "single sign-on: the identity provider cannot be read yet; sign-ins will try again");
            }
        });
        tracing::info!(issuer = %settings.issuer, client_id = %settings.client_id, redirect = %settings.redirect_url, "single sign-on configured");
        Ok(Arc::new(Self::new(settings.clone(), provider)))
    }
}

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/methods", get(methods))
        .route("/api/auth/oidc/login", get(login))
        .route("/api/auth/oidc/callback", get(callback))
}

/// How one may sign in to this server.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthMethods {
    /// Whether API keys sign in (`POST /api/session`): always, for automation.
    pub key: bool,
    /// Single sign-on, when configured.
    pub sso: Option<SsoMethod>,
}

/// Single sign-on, as the sign-in page offers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SsoMethod {
    /// Where the browser goes to start it (add `?return_to=/path` to come back there).
    pub login_url: String,
}

/// How one may sign in: with a key, and with single sign-on when it is configured. Needs
/// no credentials (the sign-in page asks before anyone is signed in).
#[utoipa::path(
    get,
    path = "/api/auth/methods",
    tag = "session",
    operation_id = "authMethods",
    responses((status = 200, description = "The sign-in methods", body = AuthMethods)),
)]
pub async fn methods(State(state): State<AppState>) -> Json<AuthMethods> {
    Json(AuthMethods {
        key: true,
        sso: state.sso.as_ref().map(|_| SsoMethod {
            login_url: "/api/auth/oidc/login".into(),
        }),
    })
}

/// Where to go after signing in.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginParams {
    /// A path of this cockpit to return to (default `/`); anything else is ignored.
    return_to: Option<String>,
}

/// `path` when it is a path of this site (`/…`, not `//…`, no backslash or control
/// character, not too long); else `/`.
fn safe_return(path: Option<&str>) -> String {
    match path {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= MAX_RETURN_PATH =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn not_configured() -> ApiError {
    ApiError::NotFound {
        detail: "single sign-on is not configured on this server (see --oidc-issuer)".into(),
    }
}

/// The binding cookie a request carries.
fn binding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == BINDING_COOKIE
                && value.len() >= 32
                && value.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| value.to_owned())
        })
}

/// The binding cookie: sent back on the provider's redirect (a top-level navigation from
/// another site, hence `SameSite=Lax`), to these routes only, for as long as a sign-in
/// waits.
fn binding_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{BINDING_COOKIE}={value}; HttpOnly; SameSite=Lax; Path={BINDING_PATH}; \
         Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

fn unavailable_page(error: &IdentityError) -> Response {
    page::refusal(
        StatusCode::BAD_GATEWAY,
        "The identity provider could not be reached",
        &[
            format!("CFactory could not complete single sign-on: {error}."),
            "Try again in a moment; if it keeps failing, an administrator should check \
             --oidc-issuer and the server's log."
                .into(),
        ],
    )
}

/// Starts single sign-on: sends the browser to the identity provider with a fresh
/// `state`, `nonce` and PKCE challenge (S256). The sign-in must come back within 10
/// minutes, to the browser that started it.
#[utoipa::path(
    get,
    path = "/api/auth/oidc/login",
    tag = "session",
    operation_id = "ssoLogin",
    params(LoginParams),
    responses(
        (status = 302, description = "To the identity provider's authorization endpoint; sets the sign-in's binding cookie"),
        (status = 404, description = "Single sign-on is not configured", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 502, description = "The identity provider could not be reached (an HTML page)", body = String, content_type = "text/html"),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    params: Result<Query<LoginParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let sso = state.sso.as_ref().ok_or_else(not_configured)?;
    let return_to = safe_return(
        params
            .as_ref()
            .ok()
            .and_then(|Query(p)| p.return_to.as_deref()),
    );
    let authorization = match sso.provider.authorization().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on: could not start a sign-in");
            return Ok(unavailable_page(&e));
        }
    };
    let browser = binding(&headers).unwrap_or_else(|| random_text(43));
    let location = HeaderValue::from_str(&authorization.url).map_err(|_| ApiError::Internal)?;
    sso.pending.insert(
        Started {
            authorization,
            return_to,
            browser: hash_secret(&browser),
            at: Instant::now(),
        },
        Instant::now(),
    );
    let mut response = StatusCode::FOUND.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, location);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::SET_COOKIE,
        binding_cookie(
            &browser,
            PENDING_TTL.as_secs(),
            crate::session::over_https(&state, &headers, &uri),
        ),
    );
    Ok(response)
}

/// What the identity provider sends the browser back with.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    code: Option<String>,
    /// The `state` the login sent.
    state: Option<String>,
    /// The provider's error code, when it did not sign the person in.
    error: Option<String>,
    /// The provider's explanation of `error`.
    error_description: Option<String>,
    /// The issuer, when the provider names itself on the redirect (RFC 9207).
    iss: Option<String>,
}

fn refused(status: StatusCode, heading: &str, paragraphs: &[String]) -> Response {
    page::refusal(status, heading, paragraphs)
}

fn start_again() -> String {
    "Start again from the sign-in page; a sign-in must finish within 10 minutes, in the \
     browser that started it."
        .into()
}

/// Finishes single sign-on: checks the `state` (known, unused, under 10 minutes old,
/// started by this browser), exchanges the code, checks the ID token (signature against
/// the provider's keys, issuer, audience, expiry, nonce), maps the person's groups to
/// scopes, records them as a user of their tenant, and opens the session cookie. Every
/// refusal is a page that says why.
#[utoipa::path(
    get,
    path = "/api/auth/oidc/callback",
    tag = "session",
    operation_id = "ssoCallback",
    params(CallbackParams),
    responses(
        (status = 303, description = "Signed in: the session cookie is set; to the page the sign-in started from"),
        (status = 400, description = "An unknown, used, expired or foreign sign-in, or the provider's refusal (an HTML page)", body = String, content_type = "text/html"),
        (status = 401, description = "The ID token was not accepted (an HTML page)", body = String, content_type = "text/html"),
        (status = 403, description = "The person's groups grant nothing here, their tenant is unknown, or their account is deactivated (an HTML page)", body = String, content_type = "text/html"),
        (status = 404, description = "Single sign-on is not configured", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 502, description = "The identity provider could not be reached (an HTML page)", body = String, content_type = "text/html"),
    ),
)]
pub async fn callback(
    State(state): State<AppState>,
    params: Result<Query<CallbackParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let sso = state.sso.as_ref().ok_or_else(not_configured)?.clone();
    let Ok(Query(params)) = params else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            &[start_again()],
        ));
    };
    let browser = binding(&headers).map(|b| hash_secret(&b));
    let taken = params
        .state
        .as_deref()
        .map(|s| sso.pending.take(s, browser.as_deref(), Instant::now()));
    if let Some(error) = &params.error {
        let description = params
            .error_description
            .as_deref()
            .unwrap_or("no reason given");
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "The identity provider did not sign you in",
            &[
                format!("It answered `{error}`: {description}."),
                start_again(),
            ],
        ));
    }
    let started = match taken {
        Some(Ok(started)) => started,
        None => {
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &["It carries no `state`.".into(), start_again()],
            ));
        }
        Some(Err(refusal)) => {
            let why = match refusal {
                Refusal::Unknown => {
                    "This sign-in is unknown or was already used: each sign-in link works once."
                }
                Refusal::Expired => "This sign-in took longer than 10 minutes.",
                Refusal::OtherBrowser => "This sign-in was started in another browser.",
            };
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be finished",
                &[why.into(), start_again()],
            ));
        }
    };
    if let Some(iss) = params.iss.as_deref()
        && iss != sso.settings.issuer
    {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "This sign-in came back from another identity provider",
            &[
                format!("It names the issuer `{iss}`, not the one CFactory is configured for."),
                start_again(),
            ],
        ));
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            &["It carries no authorization code.".into(), start_again()],
        ));
    };
    let identity = match sso.provider.identify(code, &started.authorization).await {
        Ok(identity) => identity,
        Err(e @ IdentityError::Unavailable(_)) => {
            tracing::warn!(error = %e, "single sign-on: the identity provider could not be reached");
            return Ok(unavailable_page(&e));
        }
        Err(e @ IdentityError::Refused(_)) => {
            tracing::info!(error = %e, "single sign-on: the code exchange was refused");
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                "The identity provider refused the sign-in",
                &[format!("{e}."), start_again()],
            ));
        }
        Err(e @ IdentityError::InvalidToken(_)) => {
            tracing::warn!(error = %e, "single sign-on: an ID token was refused");
            return Ok(refused(
                StatusCode::UNAUTHORIZED,
                "Your sign-in could not be verified",
                &[
                    format!("{e}."),
                    "CFactory accepts an ID token only when its signature matches the \
                     provider's published keys and its issuer, audience, expiry and nonce \
                     are this sign-in's."
                        .into(),
                ],
            ));
        }
    };
    let claim = &sso.settings.groups_claim;
    let tenant = match &sso.settings.tenant {
        SsoTenant::Fixed(tenant) => tenant.clone(),
        SsoTenant::Claim(name) => match identity.tenant.as_deref().map(TenantId::parse) {
            Some(Ok(tenant)) => tenant,
            Some(Err(e)) => {
                return Ok(refused(
                    StatusCode::FORBIDDEN,
                    "Your tenant is not one CFactory can use",
                    &[format!(
                        "The `{name}` claim of your ID token does not name a tenant: {e}."
                    )],
                ));
            }
            None => {
                return Ok(refused(
                    StatusCode::FORBIDDEN,
                    "Your tenant is not known",
                    &[format!(
                        "Your ID token has no `{name}` claim, which names the tenant you act \
                         for in CFactory. Ask an administrator to have the identity provider \
                         send it."
                    )],
                ));
            }
        },
    };
    // The groups the [roles] table maps: the groups claim and, for a person already
    // known (or provisioned and awaiting this sign-in), their provisioned groups.
    let known = state
        .users
        .sign_in_user(&tenant, &identity.subject, identity.email.as_deref())
        .await?;
    let mut role_groups = identity.groups.clone();
    if let Some(user) = &known {
        role_groups.extend(user.memberships.iter().map(|g| g.display_name.clone()));
    }
    if sso.settings.roles.scopes_for(&role_groups).is_empty() {
        tracing::info!(subject = %identity.subject, groups = ?identity.groups, "single sign-on: the person's groups grant nothing");
        let groups = if identity.groups.is_empty() {
            format!("Your ID token lists no groups in its `{claim}` claim.")
        } else {
            format!(
                "Your groups ({}), from the `{claim}` claim of your ID token, grant no access \
                 in CFactory.",
                identity.groups.join(", ")
            )
        };
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Your groups grant no access in CFactory",
            &[
                format!(
                    "You signed in as {}.",
                    identity.email.as_deref().unwrap_or(&identity.subject)
                ),
                groups,
                "An administrator grants access by mapping a group to scopes in the [roles] \
                 table of CFactory's configuration, or by adding you to a mapped group."
                    .into(),
            ],
        ));
    }
    let now = state.clock.now();
    let profile = SignInProfile {
        subject: identity.subject,
        email: identity.email,
        display_name: identity.display_name,
        groups: identity.groups,
    };
    let user = state
        .users
        .record_sign_in(&tenant, &profile, &format!("usr_{}", random_text(16)), now)
        .await?;
    if !user.active {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Your CFactory account is deactivated",
            &[format!(
                "{} may not sign in to CFactory any more. Ask an administrator if that is \
                 a mistake.",
                user.label()
            )],
        ));
    }
    let token =
        crate::session::start_for_user(state.users.as_ref(), &tenant, &user.id, now).await?;
    let mut entry = crate::audit::record(&format!("user:{}", user.label()), "user.signed_in", now);
    entry.target = Some(user.id.clone());
    if let Err(e) = state.auditor.record(&tenant, entry).await {
        tracing::warn!(error = %e, user = %user.id, "could not record a sign-in in the audit log");
    }
    tracing::info!(user = %user.id, tenant = %tenant, "single sign-on: signed in");
    let secure = crate::session::over_https(&state, &headers, &uri);
    let location = HeaderValue::from_str(&started.return_to).map_err(|_| ApiError::Internal)?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, location);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.append(
        header::SET_COOKIE,
        crate::session::cookie(&token, crate::session::SESSION_TTL.as_secs(), secure),
    );
    out.append(header::SET_COOKIE, binding_cookie("", 0, secure));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_returned_to() {
        assert_eq!(safe_return(Some("/pipeline?task=42")), "/pipeline?task=42");
        for bad in [
            "https://evil.test/",
            "//evil.test/x",
            "/\\evil.test",
            "pipeline",
            "/a\nb",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return(None), "/");
        assert_eq!(safe_return(Some(&format!("/{}", "a".repeat(600)))), "/");
    }

    #[test]
    fn the_binding_cookie_is_read_among_others_and_must_look_random() {
        let mut h = HeaderMap::new();
        let value = "a".repeat(43);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {BINDING_COOKIE}={value}; y=2")).unwrap(),
        );
        assert_eq!(binding(&h).as_deref(), Some(value.as_str()));
        let mut short = HeaderMap::new();
        short.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{BINDING_COOKIE}=abc")).unwrap(),
        );
        assert_eq!(binding(&short), None);
        let cookie = binding_cookie("v", 600, true);
        let text = cookie.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/api/auth/oidc",
            "Max-Age=600",
            "Secure",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}

//! The [`IdentityProvider`] port: the OpenID Connect provider people sign in with. It
//! starts the authorization-code flow ([`Authorization`]: where to send the browser, with
//! a fresh `state`, `nonce` and PKCE verifier) and finishes it, turning the code the
//! browser brings back into an [`Identity`] whose ID token was checked: its signature
//! against the provider's keys, its issuer, audience, expiry and nonce.
//!
//! Its room in the hexagon: an outbound port; the OIDC adapter implements it.

use async_trait::async_trait;

/// A sign-in just started: where to send the browser, and what the callback needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The provider's authorization URL, with every parameter of the request.
    pub url: String,
    /// The `state` sent: the callback must bring back the same value.
    pub state: String,
    /// The `nonce` sent: the ID token must carry the same value.
    pub nonce: String,
    /// The PKCE code verifier whose challenge was sent; kept by the server only.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's query carries the state and nonce: only its address is printed.
        let address = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("Authorization")
            .field("url", &address)
            .field("state", &"***")
            .field("nonce", &"***")
            .field("pkce_verifier", &"***")
            .finish()
    }
}

/// Who signed in, from a checked ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject identifier (`sub`).
    pub subject: String,
    /// The `email` claim.
    pub email: Option<String>,
    /// The `name` claim (or `preferred_username` without one).
    pub display_name: Option<String>,
    /// The groups claim (its name is configured), as sent; empty when it is absent.
    pub groups: Vec<String>,
    /// The tenant claim's value, when a tenant claim is configured and present.
    pub tenant: Option<String>,
}

/// Why a sign-in could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The provider could not be reached, or its discovery document, keys or token
    /// answer could not be read.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused to exchange the code (expired, used, not issued to us).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token failed a check: signature, issuer, audience, expiry or nonce.
    #[error("the ID token was not accepted: {0}")]
    InvalidToken(String),
}

/// The OpenID Connect provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Starts a sign-in: a fresh `state`, `nonce` and PKCE verifier, and the URL that
    /// asks the provider for a code (scopes `openid email profile` plus any configured).
    /// `Unavailable` when the provider's discovery document cannot be had.
    async fn authorization(&self) -> Result<Authorization, IdentityError>;

    /// Finishes the sign-in started as `started`: exchanges `code` (with the PKCE
    /// verifier) for tokens and checks the ID token. The token's keys are the provider's
    /// published ones, fetched again once when the token names a key not yet seen.
    async fn identify(
        &self,
        code: &str,
        started: &Authorization,
    ) -> Result<Identity, IdentityError>;
}

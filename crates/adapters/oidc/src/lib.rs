//! CFactory's OpenID Connect adapter: [`OidcProvider`] implements the domain's
//! [`IdentityProvider`] port with the `openidconnect` crate over the workspace's reqwest.
//!
//! An adapter on the hexagon's edge: it may touch HTTP and the provider's JSON, and hands
//! the domain only domain types. It reads the provider's discovery document and key set
//! (again every hour, and sooner after a failure), starts the authorization-code flow with
//! PKCE (S256), `state` and `nonce`, exchanges the code, and checks the ID token: its
//! signature against the provider's published keys (asymmetric algorithms only), its
//! issuer, audience (this client only), expiry and issue time against the injected clock
//! with a small leeway, and its nonce. A token signed with a key the set does not hold
//! makes it fetch the set once more (key rotation); a fetch that still lacks the key
//! blocks further such fetches for a minute, so forged key ids cannot make it hammer the
//! provider.

mod claims;
mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cfactory_domain::ports::{Authorization, Clock, Identity, IdentityError, IdentityProvider};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, DiscoveryError,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    JsonWebKeySet, JwsSigningAlgorithm, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse,
    TokenResponse,
};

use crate::claims::OtherClaims;
pub use crate::http::{HttpError, MAX_BODY_BYTES};

/// How long a discovery document and key set are used before they are read again.
pub const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);
/// How soon a failed refresh is tried again (the last good document is used meanwhile).
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// After a key-set fetch that still lacked a token's key, how long no other such fetch
/// is made.
pub const UNKNOWN_KEY_COOLDOWN: Duration = Duration::from_secs(60);

/// What the adapter needs to know.
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's discovery document names itself.
    pub issuer: String,
    /// This client's id at the provider.
    pub client_id: String,
    /// This client's secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back (`…/api/auth/oidc/callback`).
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim that lists a person's groups (a dotted path reaches into objects).
    pub groups_claim: String,
    /// The claim that names a person's tenant, when tenants come from the provider.
    pub tenant_claim: Option<String>,
    /// How long one request to the provider may take.
    pub timeout: Duration,
    /// How far the provider's clock may run from ours: a token is accepted this long
    /// past its expiry, and with an issue time this far ahead.
    pub leeway: Duration,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("tenant_claim", &self.tenant_claim)
            .finish_non_exhaustive()
    }
}

/// The token answer, with the ID token's claims beyond the standard ones kept.
type TokenAnswer = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// A client made from a discovery document.
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

struct Cache {
    /// The last discovery document read, with its key set.
    metadata: Option<CoreProviderMetadata>,
    /// When the document is to be read again.
    refresh_at: Instant,
    /// When a key-set fetch last failed to find a token's key.
    fruitless_fetch: Option<Instant>,
}

/// The OpenID Connect provider, as one configured client of it.
pub struct OidcProvider {
    config: OidcConfig,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: http::Http,
    clock: Arc<dyn Clock>,
    cache: tokio::sync::Mutex<Cache>,
}

impl OidcProvider {
    /// A provider for `config`; nothing is fetched until the first sign-in (or
    /// [`OidcProvider::discover`]). Fails when the issuer or redirect URL is not a URL.
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| format!("the issuer URL is not a URL: {e}"))?;
        let redirect = RedirectUrl::new(config.redirect_url.clone())
            .map_err(|e| format!("the redirect URL is not a URL: {e}"))?;
        Ok(Self {
            http: http::Http::new(config.timeout),
            config,
            issuer,
            redirect,
            clock,
            cache: tokio::sync::Mutex::new(Cache {
                metadata: None,
                refresh_at: Instant::now(),
                fruitless_fetch: None,
            }),
        })
    }

    /// Reads the discovery document and key set now (at start, to report a bad
    /// configuration early); later sign-ins use what it read.
    pub async fn discover(&self) -> Result<(), IdentityError> {
        self.metadata().await.map(|_| ())
    }

    /// The discovery document and key set, read again when due. A failed refresh keeps
    /// the last good document and is tried again after [`RETRY_AFTER`].
    async fn metadata(&self) -> Result<CoreProviderMetadata, IdentityError> {
        let mut cache = self.cache.lock().await;
        if let Some(metadata) = &cache.metadata
            && Instant::now() < cache.refresh_at
        {
            return Ok(metadata.clone());
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                cache.refresh_at = Instant::now() + REDISCOVER_AFTER;
                cache.metadata = Some(metadata.clone());
                tracing::info!(
                    issuer = %self.config.issuer,
                    keys = metadata.jwks().keys().len(),
                    "read the identity provider's discovery document and keys"
                );
                Ok(metadata)
            }
            Err(e) => {
                let reason = discovery_failure(&e);
                cache.refresh_at = Instant::now() + RETRY_AFTER;
                match &cache.metadata {
                    Some(stale) => {
                        tracing::warn!(issuer = %self.config.issuer, %reason, "could not refresh the identity provider's discovery document; using the last one");
                        Ok(stale.clone())
                    }
                    None => Err(IdentityError::Unavailable(format!(
                        "discovery at {} failed: {reason}",
                        self.config.issuer
                    ))),
                }
            }
        }
    }

    /// Fetches the key set again because a token named a key it lacked; `None` when a
    /// fetch that still lacked a key happened within [`UNKNOWN_KEY_COOLDOWN`].
    async fn refetch_keys(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> Result<Option<CoreProviderMetadata>, IdentityError> {
        let mut cache = self.cache.lock().await;
        if cache
            .fruitless_fetch
            .is_some_and(|at| at.elapsed() < UNKNOWN_KEY_COOLDOWN)
        {
            return Ok(None);
        }
        let keys = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| {
                IdentityError::Unavailable(format!(
                    "fetching the provider's keys failed: {}",
                    discovery_failure(&e)
                ))
            })?;
        tracing::info!(issuer = %self.config.issuer, keys = keys.keys().len(), "fetched the identity provider's keys again for an unknown key id");
        let fresh = metadata.clone().set_jwks(keys);
        cache.metadata = Some(fresh.clone());
        Ok(Some(fresh))
    }

    /// Notes that a fetched key set still lacked the token's key.
    async fn fetch_was_fruitless(&self) {
        self.cache.lock().await.fruitless_fetch = Some(Instant::now());
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Client {
        Client::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Checks `answer`'s ID token against `metadata`'s issuer and keys; its claims as an
    /// [`Identity`].
    fn verify(
        &self,
        metadata: &CoreProviderMetadata,
        answer: &TokenAnswer,
        nonce: &Nonce,
    ) -> Result<Identity, ClaimsVerificationError> {
        let id_token = answer.id_token().ok_or_else(|| {
            ClaimsVerificationError::Other("the provider's token answer has no ID token".into())
        })?;
        let leeway = chrono::Duration::from_std(self.config.leeway).unwrap_or_default();
        let now = self.clock.now();
        let expiry_clock = now - leeway;
        let latest_issue = now + leeway;
        let algs = allowed_algs(metadata.id_token_signing_alg_values_supported());
        let client = self.client(metadata.clone());
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(algs)
            .set_time_fn(move || expiry_clock)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > latest_issue {
                    Err(format!("issued in the future ({iat})"))
                } else {
                    Ok(())
                }
            });
        let claims = id_token.claims(&verifier, nonce)?;
        Ok(claims::identity(claims, &self.config))
    }
}

/// Asymmetric algorithms among `advertised` (all of them when none is advertised): a
/// shared-secret or unsigned token is never accepted.
fn allowed_algs(advertised: &[CoreJwsSigningAlgorithm]) -> Vec<CoreJwsSigningAlgorithm> {
    let asymmetric = |alg: &&CoreJwsSigningAlgorithm| {
        !alg.uses_shared_secret() && **alg != CoreJwsSigningAlgorithm::None
    };
    let picked: Vec<_> = advertised.iter().filter(asymmetric).cloned().collect();
    if picked.is_empty() {
        vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha384,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
            CoreJwsSigningAlgorithm::EdDsa,
        ]
    } else {
        picked
    }
}

fn discovery_failure(error: &DiscoveryError<HttpError>) -> String {
    match error {
        DiscoveryError::Request(e) => e.to_string(),
        DiscoveryError::Response(status, _, _) => format!("the provider answered {status}"),
        DiscoveryError::Parse(e) => format!("the answer could not be read ({e})"),
        DiscoveryError::Validation(e) => e.clone(),
        DiscoveryError::UrlParse(e) => format!("a URL could not be read ({e})"),
        DiscoveryError::Other(e) => e.clone(),
        _ => error.to_string(),
    }
}

fn unaccepted(error: &ClaimsVerificationError) -> IdentityError {
    IdentityError::InvalidToken(match error {
        ClaimsVerificationError::SignatureVerification(e) => {
            format!("its signature does not verify ({e})")
        }
        other => other.to_string(),
    })
}

fn no_matching_key(error: &ClaimsVerificationError) -> bool {
    matches!(
        error,
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)
    )
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    async fn authorization(&self) -> Result<Authorization, IdentityError> {
        let client = self.client(self.metadata().await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(openidconnect::Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    async fn identify(
        &self,
        code: &str,
        started: &Authorization,
    ) -> Result<Identity, IdentityError> {
        let metadata = self.metadata().await?;
        let answer = self
            .client(metadata.clone())
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| {
                IdentityError::Unavailable(format!("the provider has no token endpoint ({e})"))
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(started.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => {
                    IdentityError::Refused(answer.to_string())
                }
                RequestTokenError::Request(e) => {
                    IdentityError::Unavailable(format!("the token request failed: {e}"))
                }
                RequestTokenError::Parse(e, _) => {
                    IdentityError::Unavailable(format!("the token answer could not be read ({e})"))
                }
                RequestTokenError::Other(e) => IdentityError::Unavailable(e),
            })?;
        let nonce = Nonce::new(started.nonce.clone());
        match self.verify(&metadata, &answer, &nonce) {
            Ok(identity) => Ok(identity),
            Err(e) if no_matching_key(&e) => {
                let Some(fresh) = self.refetch_keys(&metadata).await? else {
                    return Err(unaccepted(&e));
                };
                let result = self.verify(&fresh, &answer, &nonce);
                if result.as_ref().is_err_and(no_matching_key) {
                    self.fetch_was_fruitless().await;
                }
                result.map_err(|e| unaccepted(&e))
            }
            Err(e) => Err(unaccepted(&e)),
        }
    }
}

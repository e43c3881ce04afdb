//! The HTTP client the OpenID Connect library sends its requests through: the
//! workspace's reqwest with rustls, a timeout on every request, no redirects (a provider's
//! endpoints are where its discovery document says), and a cap on what is read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Largest answer read from the provider (a discovery document, a key set, a token
/// answer); a longer one fails rather than being buffered without bound.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a request to the provider failed. Carries no URL: the caller knows which it sent.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer: refused connection, timeout, TLS failure.
    #[error("no answer: {0}")]
    Transport(String),
    /// The answer's body was larger than [`MAX_BODY_BYTES`].
    #[error("the answer is larger than {} KiB", MAX_BODY_BYTES / 1024)]
    TooLarge,
    /// The request could not be built.
    #[error("the request could not be built: {0}")]
    Request(String),
}

/// reqwest needs one rustls crypto provider for the process: install ring (the only one
/// compiled in) unless someone already did.
fn ensure_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client; cloning shares its connections.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client whose every request ends after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ensure_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Building fails only when TLS cannot initialise, and then no client can be
            // had at all; the default one is the last resort.
            .unwrap_or_default();
        Self { client }
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request =
            reqwest::Request::try_from(request).map_err(|e| HttpError::Request(e.to_string()))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| HttpError::Transport(describe(&e)))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut answer = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::Transport(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        answer
            .body(body)
            .map_err(|e| HttpError::Request(e.to_string()))
    }
}

/// A transport failure in words, without the URL reqwest would add.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(c) = cause {
        deepest = Some(c.to_string());
        cause = c.source();
    }
    match deepest {
        Some(d) => format!("{what} ({d})"),
        None => what.to_owned(),
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

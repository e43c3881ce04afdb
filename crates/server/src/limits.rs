//! Request limits: a token bucket per credential (per client address for requests that
//! carry none, and always for sign-in), one bucket family per kind of request. A request
//! over its limit is answered 429 with `Retry-After` before any handler runs.
//!
//! The defaults leave the cockpit, the demo and the benchmarks far below every limit;
//! sign-in attempts and copilot turns are limited by default, since each costs a
//! guess at a key or money.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::state::AppState;

/// The `[limits]` table and its flags; `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Completion-event requests per second, per key (or client address).
    pub ingest_per_second: u32,
    /// Read requests per second, per key, session or client address.
    pub read_per_second: u32,
    /// Changing requests per minute, per key, session or client address.
    pub write_per_minute: u32,
    /// `POST /api/session` attempts per minute, per client address.
    pub signin_per_minute: u32,
    /// Copilot chat turns per hour, per key, session or client address.
    pub copilot_turns_per_hour: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            ingest_per_second: 50_000,
            read_per_second: 2_000,
            write_per_minute: 6_000,
            signin_per_minute: 10,
            copilot_turns_per_hour: 120,
        }
    }
}

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ingest,
    Read,
    Write,
    SignIn,
    Copilot,
}

fn kind(method: &Method, path: &str) -> Option<Kind> {
    if path == "/health" || path == "/ready" {
        return None;
    }
    if *method == Method::POST {
        return Some(match path {
            "/api/events" | "/api/events/completion" => Kind::Ingest,
            "/api/session" => Kind::SignIn,
            "/api/copilot/chat" => Kind::Copilot,
            _ => Kind::Write,
        });
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Some(Kind::Read),
        _ => Some(Kind::Write),
    }
}

/// One bucket family.
struct Buckets {
    limiter: DefaultKeyedRateLimiter<[u8; 16]>,
    what: &'static str,
}

impl Buckets {
    fn new(per: u32, period: Duration, what: &'static str) -> Option<Self> {
        let per = NonZeroU32::new(per)?;
        let quota = Quota::with_period(period / per.get())
            .expect("a positive period")
            .allow_burst(per);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            what,
        })
    }
}

/// Every bucket family.
pub struct Limits {
    ingest: Option<Buckets>,
    read: Option<Buckets>,
    write: Option<Buckets>,
    signin: Option<Buckets>,
    copilot: Option<Buckets>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

impl Limits {
    /// The buckets `settings` describe.
    pub fn new(settings: &LimitSettings) -> Self {
        let second = Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        Self {
            ingest: Buckets::new(settings.ingest_per_second, second, "ingest"),
            read: Buckets::new(settings.read_per_second, second, "read"),
            write: Buckets::new(settings.write_per_minute, minute, "write"),
            signin: Buckets::new(settings.signin_per_minute, minute, "sign-in"),
            copilot: Buckets::new(settings.copilot_turns_per_hour, hour, "copilot"),
        }
    }

    /// No limits at all.
    pub fn none() -> Self {
        Self {
            ingest: None,
            read: None,
            write: None,
            signin: None,
            copilot: None,
        }
    }

    fn buckets(&self, kind: Kind) -> Option<&Buckets> {
        match kind {
            Kind::Ingest => self.ingest.as_ref(),
            Kind::Read => self.read.as_ref(),
            Kind::Write => self.write.as_ref(),
            Kind::SignIn => self.signin.as_ref(),
            Kind::Copilot => self.copilot.as_ref(),
        }
    }

    /// Forgets buckets that are full again, so a spray of made-up keys cannot grow memory
    /// for long. The server calls it every minute.
    pub fn forget_idle(&self) {
        for b in [
            &self.ingest,
            &self.read,
            &self.write,
            &self.signin,
            &self.copilot,
        ]
        .into_iter()
        .flatten()
        {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
    }

    /// `Err(seconds to wait)` when the request is over its limit.
    fn check(&self, kind: Kind, who: &[u8; 16]) -> Result<(), (u64, &'static str)> {
        let Some(buckets) = self.buckets(kind) else {
            return Ok(());
        };
        buckets.limiter.check_key(who).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + 1, buckets.what)
        })
    }
}

/// The credential a request presents (a key as authentication reads it, else the
/// session cookie), hashed into a bucket id, so buckets never hold a secret.
fn credential(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    crate::auth::presented_key(headers, uri)
        .or_else(|| crate::session::cookie_token(headers))
        .filter(|c| !c.trim().is_empty())
}

fn bucket_id(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// The middleware: counts the request against its bucket, 429 when it is empty.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(kind) = kind(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let peer: Option<IpAddr> = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let peer_text = peer.map(|p| p.to_string()).unwrap_or_default();
    // Sign-in is counted per address: the key it presents is the guess being limited.
    let who = match (kind, credential(request.headers(), request.uri())) {
        (Kind::SignIn, _) | (_, None) => bucket_id(&[b"addr", peer_text.as_bytes()]),
        (_, Some(credential)) => bucket_id(&[b"cred", credential.as_bytes()]),
    };
    if let Err((seconds, what)) = state.limits.check(kind, &who) {
        tracing::warn!(limit = what, peer = %peer_text, "request over its limit");
        return ApiError::TooManyRequests {
            detail: format!("too many {what} requests: retry in {seconds} s"),
            retry_after: seconds,
        }
        .into_response();
    }
    next.run(request).await
}

/// Forgets idle buckets every minute until the process ends.
pub async fn run_forgetter(limits: Arc<Limits>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limits.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_against_their_kind() {
        assert_eq!(
            kind(&Method::POST, "/api/events/completion"),
            Some(Kind::Ingest)
        );
        assert_eq!(kind(&Method::POST, "/api/session"), Some(Kind::SignIn));
        assert_eq!(
            kind(&Method::POST, "/api/copilot/chat"),
            Some(Kind::Copilot)
        );
        assert_eq!(
            kind(&Method::POST, "/api/actions/a/confirm"),
            Some(Kind::Write)
        );
        assert_eq!(kind(&Method::GET, "/api/workitems"), Some(Kind::Read));
        assert_eq!(kind(&Method::GET, "/health"), None);
    }

    #[test]
    fn a_bucket_empties_after_its_burst_and_buckets_are_separate() {
        let limits = Limits::new(&LimitSettings {
            signin_per_minute: 3,
            ..LimitSettings::default()
        });
        let a = bucket_id(&[b"addr", b"10.0.0.1"]);
        let b = bucket_id(&[b"addr", b"10.0.0.2"]);
        for _ in 0..3 {
            assert!(limits.check(Kind::SignIn, &a).is_ok());
        }
        let (wait, what) = limits.check(Kind::SignIn, &a).unwrap_err();
        assert!((1..=21).contains(&wait), "{wait}");
        assert_eq!(what, "sign-in");
        assert!(limits.check(Kind::SignIn, &b).is_ok(), "another address");
        assert!(limits.check(Kind::Read, &a).is_ok(), "another kind");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = Limits::new(&LimitSettings {
            signin_per_minute: 0,
            ..LimitSettings::default()
        });
        let a = bucket_id(&[b"addr", b"x"]);
        for _ in 0..1000 {
            assert!(limits.check(Kind::SignIn, &a).is_ok());
        }
    }
}

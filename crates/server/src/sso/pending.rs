//! Sign-ins in progress: what the login step sent (`state`, `nonce`, the PKCE verifier)
//! and where the browser goes afterwards, kept in this process's memory until the
//! callback takes it. Each is taken once, lasts [`PENDING_TTL`], and is bound to the
//! browser that started it by a cookie whose hash it keeps; at most [`MAX_PENDING`] are
//! kept, the oldest forgotten first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cfactory_domain::ports::Authorization;

/// How long a started sign-in waits for its callback.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most sign-ins kept at once.
pub const MAX_PENDING: usize = 10_000;

/// A started sign-in.
#[derive(Debug, Clone)]
pub struct Started {
    /// What was sent to the provider.
    pub authorization: Authorization,
    /// The cockpit path to return to.
    pub return_to: String,
    /// SHA-256 of the browser's binding cookie.
    pub browser: String,
    /// When it started.
    pub at: Instant,
}

/// Why a callback's `state` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No sign-in with that state: never started here, already finished, or forgotten.
    Unknown,
    /// It started more than [`PENDING_TTL`] ago.
    Expired,
    /// Another browser started it.
    OtherBrowser,
}

/// The sign-ins in progress, by state.
pub struct Pending {
    started: Mutex<HashMap<String, Started>>,
    cap: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Self::with_cap(MAX_PENDING)
    }
}

impl Pending {
    /// Keeps at most `cap` sign-ins.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            started: Mutex::default(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Started>> {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `started` under its state, forgetting expired ones (and the oldest when
    /// full).
    pub fn insert(&self, started: Started, now: Instant) {
        let mut map = self.lock();
        map.retain(|_, s| now.duration_since(s.at) < PENDING_TTL);
        if map.len() >= self.cap
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.at)
                .map(|(state, _)| state.clone())
        {
            map.remove(&oldest);
        }
        map.insert(started.authorization.state.clone(), started);
    }

    /// Takes the sign-in with `state` for the browser whose binding cookie hashes to
    /// `browser`. Taken means gone: a second callback with the same state is refused.
    pub fn take(
        &self,
        state: &str,
        browser: Option<&str>,
        now: Instant,
    ) -> Result<Started, Refusal> {
        let started = self.lock().remove(state).ok_or(Refusal::Unknown)?;
        if now.duration_since(started.at) >= PENDING_TTL {
            return Err(Refusal::Expired);
        }
        if browser != Some(started.browser.as_str()) {
            return Err(Refusal::OtherBrowser);
        }
        Ok(started)
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(state: &str, at: Instant) -> Started {
        Started {
            authorization: Authorization {
                url: "https://id.test/authorize".into(),
                state: state.into(),
                nonce: "n".into(),
                pkce_verifier: "v".into(),
            },
            return_to: "/".into(),
            browser: "b1".into(),
            at,
        }
    }

    #[test]
    fn a_sign_in_is_taken_once_by_its_browser_within_its_time() {
        let pending = Pending::default();
        let t0 = Instant::now();
        pending.insert(started("s1", t0), t0);
        pending.insert(started("s2", t0), t0);
        pending.insert(started("s3", t0), t0);
        assert_eq!(pending.take("s1", Some("b1"), t0).unwrap().return_to, "/");
        assert_eq!(
            pending.take("s1", Some("b1"), t0).unwrap_err(),
            Refusal::Unknown,
            "a replayed state is refused"
        );
        assert_eq!(
            pending.take("nope", Some("b1"), t0).unwrap_err(),
            Refusal::Unknown
        );
        assert_eq!(
            pending.take("s2", Some("b2"), t0).unwrap_err(),
            Refusal::OtherBrowser
        );
        assert_eq!(
            pending.take("s2", Some("b1"), t0).unwrap_err(),
            Refusal::Unknown,
            "a refused attempt used the state up"
        );
        assert_eq!(
            pending
                .take("s3", Some("b1"), t0 + PENDING_TTL)
                .unwrap_err(),
            Refusal::Expired
        );
        assert!(pending.is_empty());
    }

    #[test]
    fn expired_and_oldest_sign_ins_are_forgotten() {
        let pending = Pending::with_cap(50);
        let t0 = Instant::now();
        pending.insert(started("old", t0), t0);
        let later = t0 + PENDING_TTL;
        pending.insert(started("new", later), later);
        assert_eq!(pending.len(), 1, "the expired one went when the next came");
        for i in 0..50 {
            let at = later + Duration::from_millis(1 + i as u64);
            pending.insert(started(&format!("s{i}"), at), at);
        }
        assert_eq!(pending.len(), 50);
        assert_eq!(
            pending.take("new", Some("b1"), later).unwrap_err(),
            Refusal::Unknown,
            "the oldest was forgotten to make room"
        );
    }
}

//! When a provider answers 429 (rate limited), 503 (unavailable) or 529 (Anthropic's
//! overload) before anything of the answer was read, the call is tried again after the
//! wait its `Retry-After` asks for (seconds or an HTTP date; OpenAI's `retry-after-ms`
//! too), or after 1 s, then 2 s when it names none. A wait longer than the policy allows,
//! or the last attempt failing the same way, ends the call with the provider's status.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cfactory_domain::{Clock, SystemClock};
use chrono::{DateTime, Utc};

/// Waits between attempts: a port, so tests see the waits asked for without taking them.
#[async_trait]
pub trait Sleeper: Send + Sync {
    /// Returns once `wait` has passed.
    async fn sleep(&self, wait: Duration);
}

/// Waits on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, wait: Duration) {
        tokio::time::sleep(wait).await;
    }
}

/// How a provider retries a call the provider turned away as busy.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 never retries.
    pub max_attempts: u32,
    /// The longest wait taken; a provider asking for more ends the call at once.
    pub max_wait: Duration,
    /// The wait before the second attempt when the provider names none; it doubles for
    /// each attempt after.
    pub first_backoff: Duration,
    /// Takes the waits.
    pub sleeper: Arc<dyn Sleeper>,
    /// Tells the time an HTTP-date `Retry-After` is measured from.
    pub clock: Arc<dyn Clock>,
}

impl RetryPolicy {
    /// Three attempts, waits of at most 30 s, 1 s then 2 s when the provider names none.
    pub fn standard() -> Self {
        Self {
            max_attempts: 3,
            max_wait: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
            sleeper: Arc::new(TokioSleeper),
            clock: Arc::new(SystemClock),
        }
    }

    /// One attempt: every error is final.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::standard()
        }
    }

    /// The wait before attempt `attempt + 1` when the provider named none.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("max_wait", &self.max_wait)
            .field("first_backoff", &self.first_backoff)
            .finish_non_exhaustive()
    }
}

/// Whether `status` means "busy, try again".
pub(crate) fn retryable(status: u16) -> bool {
    matches!(status, 429 | 503 | 529)
}

/// The wait a busy answer asks for: `retry-after-ms` (milliseconds), else `retry-after`
/// as seconds or as an HTTP date (a date already past is no wait). `None` when neither
/// header is there or readable.
pub(crate) fn requested_wait(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e12) / 1000.0));
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(1e9)));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is a form of RFC 2822's date.
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn seconds_dates_and_milliseconds() {
        assert_eq!(
            requested_wait(None, Some("7"), now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            requested_wait(None, Some(" 1.5 "), now()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            requested_wait(None, Some("Mon, 01 Jun 2026 12:00:20 GMT"), now()),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            requested_wait(None, Some("Mon, 01 Jun 2026 11:00:00 GMT"), now()),
            Some(Duration::ZERO),
            "a date gone by is no wait"
        );
        assert_eq!(
            requested_wait(Some("250"), Some("9"), now()),
            Some(Duration::from_millis(250)),
            "the finer header wins"
        );
        assert_eq!(requested_wait(None, None, now()), None);
        assert_eq!(requested_wait(None, Some("soon"), now()), None);
        assert_eq!(requested_wait(None, Some("-3"), now()), None);
        assert_eq!(
            requested_wait(Some("x"), Some("2"), now()),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn the_standard_policy_backs_off_when_no_wait_is_named() {
        let p = RetryPolicy::standard();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(RetryPolicy::none().max_attempts, 1);
        assert!(retryable(429) && retryable(503) && retryable(529));
        assert!(!retryable(500) && !retryable(401));
        assert!(!format!("{p:?}").is_empty());
    }
}

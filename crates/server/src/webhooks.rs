//! Signed webhooks as Standard Webhooks (standardwebhooks.com) define them. A sender
//! signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under a tenant's
//! secret (`whsec_` + base64 of the key bytes) and sends the three headers; the ingress
//! checks the signature over the exact body bytes and the timestamp against the clock. A
//! replayed or retried delivery applies nothing twice: its events carry the same ids (an
//! event sent without one gets the id of its content, as every ingested event does).
//!
//! Once a tenant has an active secret its ingest must be signed: a key alone no longer
//! proves where a body came from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKeyStore, StoreError, WebhookSecret};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The header naming the delivery (the same across a sender's retries).
pub const ID_HEADER: &str = "webhook-id";
/// The header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header with space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a delivery's timestamp may be from the server's clock.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// How long the ingress trusts its copy of a tenant's active secrets: a new or revoked
/// secret takes effect within this.
pub const CACHE_FOR: Duration = Duration::from_secs(2);
/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a new secret's key.
pub const NEW_KEY_BYTES: usize = 32;

/// Why a signed delivery was refused (answered 401, the reason in `detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// One of the three headers is absent or empty.
    #[error(
        "the `{0}` header is missing: a signed delivery carries webhook-id, webhook-timestamp and webhook-signature"
    )]
    MissingHeader(&'static str),
    /// The timestamp is not whole Unix seconds.
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too far from the server's clock.
    #[error(
        "`webhook-timestamp` is more than 5 minutes from the server's clock (replayed or delayed)"
    )]
    Stale,
    /// The tenant has no active secret to check against.
    #[error("the tenant `{0}` has no active webhook secret")]
    NoSecret(String),
    /// No signature entry matches.
    #[error("no `webhook-signature` entry matches the body under the tenant's secrets")]
    BadSignature,
}

/// A secret's text form, decoded: `whsec_` + base64 of 24 to 64 bytes.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let b64 = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .unwrap_or(text.trim());
    let key = STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64 after `{SECRET_PREFIX}`: {e}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "the key is {} bytes; it must be 24 to 64",
            key.len()
        ));
    }
    Ok(key)
}

/// The text form of `key`.
pub fn secret_text(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// A new random key.
pub fn new_key() -> Vec<u8> {
    let mut key = vec![0u8; NEW_KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    key
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1,<base64>` signature of a delivery (what a sender puts in `webhook-signature`).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The three headers of a signed delivery, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    timestamp: String,
    signatures: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Delivery {
    /// `None` when the request carries none of the three headers (an unsigned request);
    /// a refusal naming the first missing one when it carries some.
    pub fn from_headers(headers: &HeaderMap) -> Option<Result<Self, Refusal>> {
        let names = [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER];
        if names.iter().all(|n| !headers.contains_key(*n)) {
            return None;
        }
        let get = |name| header(headers, name).ok_or(Refusal::MissingHeader(name));
        Some((|| {
            Ok(Self {
                id: get(ID_HEADER)?.to_owned(),
                timestamp: get(TIMESTAMP_HEADER)?.to_owned(),
                signatures: get(SIGNATURE_HEADER)?.to_owned(),
            })
        })())
    }

    /// Checks the delivery against `keys` (any may match; each comparison is constant
    /// time) and its timestamp against `now`.
    pub fn verify(&self, keys: &[Vec<u8>], body: &[u8], now: DateTime<Utc>) -> Result<(), Refusal> {
        let at: i64 = self.timestamp.parse().map_err(|_| Refusal::BadTimestamp)?;
        if now.timestamp().abs_diff(at) > TOLERANCE.as_secs() {
            return Err(Refusal::Stale);
        }
        let tags: Vec<Vec<u8>> = self
            .signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        let matched = keys.iter().any(|key| {
            tags.iter().any(|tag| {
                mac(key, &self.id, &self.timestamp, body)
                    .verify_slice(tag)
                    .is_ok()
            })
        });
        if matched {
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }
}

/// A tenant's active keys.
pub type ActiveKeys = Arc<Vec<Vec<u8>>>;

/// Each tenant's active secrets, read from the store at most every [`CACHE_FOR`].
#[derive(Default)]
pub struct SecretCache {
    entries: Mutex<HashMap<TenantId, (Instant, ActiveKeys)>>,
}

impl SecretCache {
    /// The tenant's active keys (empty: its ingest need not be signed).
    pub async fn active(
        &self,
        store: &dyn ApiKeyStore,
        tenant: &TenantId,
    ) -> Result<ActiveKeys, StoreError> {
        if let Some((at, keys)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(keys.clone());
        }
        let keys: Vec<Vec<u8>> = store
            .list_webhook_secrets(Some(tenant))
            .await?
            .into_iter()
            .filter(|w: &WebhookSecret| w.revoked_at.is_none())
            .map(|w| w.key)
            .collect();
        let keys = Arc::new(keys);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), (Instant::now(), keys.clone()));
        Ok(keys)
    }
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use chrono::TimeZone;

    /// The Standard Webhooks specification's published test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    fn delivery(signature: &str, timestamp: i64) -> Delivery {
        let mut h = HeaderMap::new();
        h.insert(ID_HEADER, HeaderValue::from_static(SPEC_ID));
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        Delivery::from_headers(&h).unwrap().unwrap()
    }

    #[test]
    fn the_specifications_vector_signs_and_verifies() {
        let key = parse_secret(SPEC_SECRET).unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(
            sign(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let d = delivery(SPEC_SIGNATURE, SPEC_TIMESTAMP);
        assert_eq!(
            d.verify(std::slice::from_ref(&key), SPEC_BODY, at(SPEC_TIMESTAMP)),
            Ok(())
        );
        // One byte of the body changed, or another key: refused.
        assert_eq!(
            d.verify(
                std::slice::from_ref(&key),
                br#"{"test": 2432232315}"#,
                at(SPEC_TIMESTAMP)
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            d.verify(&[new_key()], SPEC_BODY, at(SPEC_TIMESTAMP)),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn any_entry_under_any_active_key_passes_for_rotation() {
        let key = parse_secret(SPEC_SECRET).unwrap();
        let d = delivery(
            &format!("v1,bm90IGl0 v2,zzz {SPEC_SIGNATURE}"),
            SPEC_TIMESTAMP,
        );
        assert_eq!(
            d.verify(&[new_key(), key], SPEC_BODY, at(SPEC_TIMESTAMP)),
            Ok(())
        );
    }

    #[test]
    fn a_timestamp_beyond_five_minutes_either_way_is_stale() {
        let key = parse_secret(SPEC_SECRET).unwrap();
        let d = delivery(SPEC_SIGNATURE, SPEC_TIMESTAMP);
        for skew in [-301, 301] {
            assert_eq!(
                d.verify(
                    std::slice::from_ref(&key),
                    SPEC_BODY,
                    at(SPEC_TIMESTAMP + skew)
                ),
                Err(Refusal::Stale)
            );
        }
        for skew in [-300, 300] {
            assert_eq!(
                d.verify(
                    std::slice::from_ref(&key),
                    SPEC_BODY,
                    at(SPEC_TIMESTAMP + skew)
                ),
                Ok(())
            );
        }
        let bad = delivery(SPEC_SIGNATURE, 0);
        assert_eq!(
            bad.verify(&[key], SPEC_BODY, at(SPEC_TIMESTAMP)),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn some_headers_but_not_all_is_a_refusal_naming_the_missing_one() {
        let mut h = HeaderMap::new();
        assert!(Delivery::from_headers(&h).is_none(), "unsigned");
        h.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        h.insert(SIGNATURE_HEADER, HeaderValue::from_static("v1,xx"));
        assert_eq!(
            Delivery::from_headers(&h).unwrap(),
            Err(Refusal::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let key = new_key();
        assert_eq!(parse_secret(&secret_text(&key)).unwrap(), key);
        assert!(parse_secret("whsec_!!!").is_err());
        assert!(parse_secret(&secret_text(&[1u8; 16])).is_err(), "too short");
        assert!(parse_secret(&secret_text(&[1u8; 65])).is_err(), "too long");
    }
}

//! The API-key port: keys and browser sessions.

use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKey, BrowserSession, Scope, StoreError};

use crate::Subject;
use crate::helpers::t;

/// Keys: created, found by hash, listed, refused twice, revoked.
pub async fn api_keys_lifecycle(s: &Subject) {
    assert!(!s.keys.has_active_keys().await.unwrap());
    let key = ApiKey {
        id: "key_1".into(),
        name: Some("ci".into()),
        tenant: TenantId::parse("acme").unwrap(),
        scopes: vec![Scope::Read, Scope::Ingest],
        created_at: t(0),
        revoked_at: None,
    };
    s.keys.create_key(&key, "hash1").await.unwrap();
    assert!(s.keys.has_active_keys().await.unwrap());
    assert!(matches!(
        s.keys.create_key(&key, "hash2").await,
        Err(StoreError::Duplicate(_))
    ));
    let found = s.keys.find_key("hash1").await.unwrap().unwrap();
    assert_eq!(found, key);
    assert!(s.keys.find_key("nope").await.unwrap().is_none());
    assert_eq!(s.keys.list_keys().await.unwrap().len(), 1);
    assert!(s.keys.revoke_key("key_1", t(1)).await.unwrap());
    assert!(!s.keys.revoke_key("key_1", t(2)).await.unwrap());
    assert!(s.keys.find_key("hash1").await.unwrap().is_none());
    assert!(!s.keys.has_active_keys().await.unwrap());
    assert_eq!(s.keys.list_keys().await.unwrap()[0].revoked_at, Some(t(1)));
}

/// Browser sessions: found by token hash while they last, never after their end, gone
/// on sign-out; ended ones are dropped when the next is stored.
pub async fn browser_sessions_last_until_they_end_or_sign_out(s: &Subject) {
    let session = |token: &str, key: &str, ends: i64| BrowserSession {
        token_sha256: token.into(),
        key_sha256: key.into(),
        expires_at: t(ends),
    };
    s.keys
        .create_session(&session("tok1", "key1", 10), t(0))
        .await
        .unwrap();
    s.keys
        .create_session(&session("tok2", "key2", 20), t(0))
        .await
        .unwrap();
    assert!(matches!(
        s.keys
            .create_session(&session("tok1", "key9", 30), t(0))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let found = |token: &'static str, at: i64| async move {
        s.keys.find_session(token, t(at)).await.unwrap()
    };
    assert_eq!(found("tok1", 9).await.as_deref(), Some("key1"));
    assert_eq!(found("tok1", 10).await, None, "a session ends at its end");
    assert_eq!(found("nope", 0).await, None);

    assert!(s.keys.end_session("tok2").await.unwrap());
    assert!(!s.keys.end_session("tok2").await.unwrap());
    assert_eq!(found("tok2", 0).await, None);

    // Storing a session at 10 drops tok1 (ended at 10): its token may be stored again.
    s.keys
        .create_session(&session("tok3", "key3", 40), t(10))
        .await
        .unwrap();
    s.keys
        .create_session(&session("tok1", "key4", 40), t(10))
        .await
        .unwrap();
    assert_eq!(found("tok1", 11).await.as_deref(), Some("key4"));
    assert_eq!(found("tok3", 11).await.as_deref(), Some("key3"));
}

/// Webhook secrets read back whole per tenant, oldest first, and revoke once.
pub async fn webhook_secrets_are_kept_per_tenant_and_revoke_once(s: &Subject) {
    use cfactory_domain::ports::WebhookSecret;
    let acme = TenantId::parse("acme").unwrap();
    let secret = |id: &str, tenant: &TenantId, minute: i64| WebhookSecret {
        id: id.to_owned(),
        tenant: tenant.clone(),
        name: Some(format!("sender {id}")),
        key: (0u8..32)
            .map(|b| b.wrapping_mul(7).wrapping_add(minute as u8))
            .collect(),
        created_at: crate::helpers::t(minute),
        revoked_at: None,
    };
    let a = secret("whk_a", &acme, 0);
    let b = secret("whk_b", &acme, 5);
    let other = secret("whk_c", &crate::helpers::tenant(), 1);
    for w in [&b, &a, &other] {
        s.keys.create_webhook_secret(w).await.unwrap();
    }
    assert!(matches!(
        s.keys.create_webhook_secret(&a).await,
        Err(StoreError::Duplicate(_))
    ));
    let mine = s.keys.list_webhook_secrets(Some(&acme)).await.unwrap();
    assert_eq!(
        mine,
        vec![a.clone(), b.clone()],
        "the key bytes survive whole"
    );
    assert_eq!(s.keys.list_webhook_secrets(None).await.unwrap().len(), 3);
    let at = crate::helpers::t(9);
    assert!(s.keys.revoke_webhook_secret("whk_a", at).await.unwrap());
    assert!(!s.keys.revoke_webhook_secret("whk_a", at).await.unwrap());
    assert!(!s.keys.revoke_webhook_secret("whk_nope", at).await.unwrap());
    let mine = s.keys.list_webhook_secrets(Some(&acme)).await.unwrap();
    assert_eq!(mine[0].revoked_at, Some(at));
    assert_eq!(mine[1].revoked_at, None);
}

//! The user port: people signed in by single sign-on, and their browser sessions.

use cfactory_domain::TenantId;
use cfactory_domain::ports::{SignInProfile, StoreError, UserSession};

use crate::Subject;
use crate::helpers::{t, tenant};

fn profile(subject: &str, email: &str, groups: &[&str]) -> SignInProfile {
    SignInProfile {
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        display_name: Some(format!("Person {subject}")),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// A first sign-in stores an active user; a later one by the same subject updates the
/// same user's claims; subjects are per tenant and each tenant sees only its own users.
pub async fn users_are_recorded_at_sign_in_per_tenant(s: &Subject) {
    let acme = TenantId::parse("acme").unwrap();
    let first = s
        .users
        .record_sign_in(
            &acme,
            &profile("sub-1", "ada@acme.test", &["ops", " admins", "ops", ""]),
            "usr_1",
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(first.id, "usr_1");
    assert_eq!(first.tenant, acme);
    assert!(first.active);
    assert_eq!(first.groups, vec!["admins", "ops"], "trimmed, sorted, once");
    assert_eq!(first.last_sign_in_at, Some(t(0)));
    assert_eq!(first.created_at, t(0));

    // The same subject again: the same user, with the provider's new claims.
    let again = s
        .users
        .record_sign_in(
            &acme,
            &SignInProfile {
                display_name: None,
                ..profile("sub-1", "ada@new.test", &["readers"])
            },
            "usr_ignored",
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(again.id, "usr_1");
    assert_eq!(again.email.as_deref(), Some("ada@new.test"));
    assert_eq!(again.display_name, None);
    assert_eq!(again.groups, vec!["readers"]);
    assert_eq!(again.created_at, t(0));
    assert_eq!(again.updated_at, t(5));
    assert_eq!(again.last_sign_in_at, Some(t(5)));
    assert_eq!(s.users.user(&acme, "usr_1").await.unwrap(), Some(again));
    assert!(s.users.user(&acme, "usr_ignored").await.unwrap().is_none());

    // The same subject in another tenant is another person.
    let other = s
        .users
        .record_sign_in(&tenant(), &profile("sub-1", "x@y.test", &[]), "usr_2", t(1))
        .await
        .unwrap();
    assert_eq!(other.id, "usr_2");
    assert!(other.groups.is_empty());
    assert!(
        s.users.user(&acme, "usr_2").await.unwrap().is_none(),
        "another tenant's user is not found"
    );

    // A new user whose id is taken is refused.
    assert!(matches!(
        s.users
            .record_sign_in(&acme, &profile("sub-9", "z@acme.test", &[]), "usr_2", t(2))
            .await,
        Err(StoreError::Duplicate(_))
    ));

    s.users
        .record_sign_in(&acme, &profile("sub-3", "bo@acme.test", &[]), "usr_3", t(3))
        .await
        .unwrap();
    let listed: Vec<String> = s
        .users
        .users(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(
        listed,
        vec!["usr_1", "usr_3"],
        "oldest first, this tenant only"
    );
    assert_eq!(s.users.users(&tenant()).await.unwrap().len(), 1);
}

/// A session finds its user as the user is now: new groups show at once, a deactivated
/// user's sessions are gone, an ended or signed-out session is never found.
pub async fn user_sessions_follow_their_user(s: &Subject) {
    let acme = TenantId::parse("acme").unwrap();
    s.users
        .record_sign_in(
            &acme,
            &profile("sub-1", "ada@acme.test", &["ops"]),
            "usr_1",
            t(0),
        )
        .await
        .unwrap();
    s.users
        .record_sign_in(
            &acme,
            &profile("sub-2", "bo@acme.test", &["ops"]),
            "usr_2",
            t(0),
        )
        .await
        .unwrap();
    let session = |token: &str, user: &str, ends: i64| UserSession {
        token_sha256: token.to_owned(),
        tenant: acme.clone(),
        user_id: user.to_owned(),
        expires_at: t(ends),
    };
    for (token, user) in [("tok1", "usr_1"), ("tok2", "usr_1"), ("tok3", "usr_2")] {
        s.users
            .create_user_session(&session(token, user, 60), t(0))
            .await
            .unwrap();
    }
    assert!(matches!(
        s.users
            .create_user_session(&session("tok1", "usr_2", 90), t(0))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let found = |token: &'static str, at: i64| async move {
        s.users
            .find_user_session(token, t(at))
            .await
            .unwrap()
            .map(|u| (u.id, u.groups))
    };
    assert_eq!(
        found("tok1", 1).await,
        Some(("usr_1".into(), vec!["ops".into()]))
    );
    assert_eq!(found("tok1", 60).await, None, "a session ends at its end");
    assert_eq!(found("nope", 1).await, None);

    // New groups from a later sign-in show through every session at once.
    s.users
        .record_sign_in(
            &acme,
            &profile("sub-1", "ada@acme.test", &["readers"]),
            "usr_x",
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(
        found("tok2", 3).await,
        Some(("usr_1".into(), vec!["readers".into()]))
    );

    // Deactivating ends the user's sessions, and only theirs.
    assert!(
        !s.users
            .set_user_active(&TenantId::default_tenant(), "usr_1", false, t(4))
            .await
            .unwrap(),
        "another tenant cannot touch the user"
    );
    assert!(
        s.users
            .set_user_active(&acme, "usr_1", false, t(4))
            .await
            .unwrap()
    );
    assert_eq!(found("tok1", 5).await, None);
    assert_eq!(found("tok2", 5).await, None);
    assert_eq!(
        found("tok3", 5).await.map(|f| f.0).as_deref(),
        Some("usr_2")
    );
    assert!(!s.users.user(&acme, "usr_1").await.unwrap().unwrap().active);
    // A sign-in does not reactivate; reactivating does not revive the ended sessions.
    let back = s
        .users
        .record_sign_in(
            &acme,
            &profile("sub-1", "ada@acme.test", &[]),
            "usr_y",
            t(6),
        )
        .await
        .unwrap();
    assert!(!back.active);
    assert!(
        s.users
            .set_user_active(&acme, "usr_1", true, t(7))
            .await
            .unwrap()
    );
    assert_eq!(found("tok2", 8).await, None);
    s.users
        .create_user_session(&session("tok4", "usr_1", 90), t(8))
        .await
        .unwrap();
    assert_eq!(
        found("tok4", 9).await.map(|f| f.0).as_deref(),
        Some("usr_1")
    );
    // While a session of an inactive user exists it is refused too.
    assert!(
        s.users
            .set_user_active(&acme, "usr_2", false, t(9))
            .await
            .unwrap()
    );
    s.users
        .create_user_session(&session("tok5", "usr_2", 90), t(9))
        .await
        .unwrap();
    assert_eq!(found("tok5", 10).await, None);

    // A session naming no such user is never found.
    s.users
        .create_user_session(&session("tok6", "usr_nobody", 90), t(9))
        .await
        .unwrap();
    assert_eq!(found("tok6", 10).await, None);

    assert!(s.users.end_user_session("tok4").await.unwrap());
    assert!(!s.users.end_user_session("tok4").await.unwrap());
    assert_eq!(found("tok4", 10).await, None);

    // Storing a session at 90 drops the ended ones: their token may be stored again.
    s.users
        .create_user_session(&session("tok7", "usr_1", 120), t(90))
        .await
        .unwrap();
    s.users
        .create_user_session(&session("tok3", "usr_1", 120), t(90))
        .await
        .unwrap();
    assert_eq!(
        found("tok3", 91).await.map(|f| f.0).as_deref(),
        Some("usr_1")
    );
}

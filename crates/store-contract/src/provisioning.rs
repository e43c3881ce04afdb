//! The user port's provisioning half (SCIM): users made, replaced and deleted by a
//! provisioning client, groups and their members, and how both meet the sign-in.

use cfactory_domain::TenantId;
use cfactory_domain::ports::{
    GroupDraft, GroupReplacement, PersonName, ProvisionedUser, SignInProfile, StoreError,
    UserSession, UserSource,
};

use crate::Subject;
use crate::helpers::t;

fn person(user_name: &str, external_id: Option<&str>) -> ProvisionedUser {
    ProvisionedUser {
        user_name: user_name.to_owned(),
        external_id: external_id.map(str::to_owned),
        name: PersonName {
            given: Some("Ada".into()),
            family: Some("Lovelace".into()),
            formatted: None,
        },
        display_name: Some(format!("Person {user_name}")),
        email: Some(user_name.to_owned()),
        active: true,
    }
}

fn draft(name: &str, members: &[&str]) -> GroupDraft {
    GroupDraft {
        display_name: name.to_owned(),
        external_id: None,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn sign_in(subject: &str, email: &str, groups: &[&str]) -> SignInProfile {
    SignInProfile {
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        display_name: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// A provisioned user is stored under its external id (else its user name) as subject;
/// user names are unique per tenant without regard to case; a replace keeps the subject
/// and a delete removes the user; another tenant sees none of it. A first sign-in whose
/// email is a waiting provisioned user's user name binds to that user.
pub async fn provisioned_users_are_unique_per_tenant_and_bind_at_first_sign_in(s: &Subject) {
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    let ada = s
        .users
        .provision_user(
            &acme,
            &person("Ada@acme.test", Some("ext-1")),
            "usr_a",
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(ada.subject, "ext-1");
    assert_eq!(ada.source, UserSource::Scim);
    assert_eq!(ada.user_name.as_deref(), Some("Ada@acme.test"));
    assert_eq!(ada.name.family.as_deref(), Some("Lovelace"));
    assert_eq!(ada.last_sign_in_at, None);
    assert!(ada.memberships.is_empty());
    let bo = s
        .users
        .provision_user(&acme, &person("bo@acme.test", None), "usr_b", t(1))
        .await
        .unwrap();
    assert_eq!(bo.subject, "bo@acme.test");

    for (clash, id) in [
        (person("ADA@ACME.TEST", None), "usr_c"),
        (person("new@acme.test", Some("ext-1")), "usr_d"),
        (person("new@acme.test", None), "usr_a"),
    ] {
        assert!(
            matches!(
                s.users.provision_user(&acme, &clash, id, t(2)).await,
                Err(StoreError::Duplicate(_))
            ),
            "{clash:?} as {id} clashes"
        );
    }
    // The same user name in another tenant is another person.
    s.users
        .provision_user(
            &other,
            &person("ada@acme.test", Some("ext-1")),
            "usr_o",
            t(2),
        )
        .await
        .unwrap();

    // A replace changes the provisioned attributes, not the subject.
    let mut renamed = person("ada.l@acme.test", Some("ext-1b"));
    renamed.display_name = None;
    renamed.name = PersonName::default();
    let replaced = s
        .users
        .replace_user(&acme, "usr_a", &renamed, t(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.user_name.as_deref(), Some("ada.l@acme.test"));
    assert_eq!(replaced.external_id.as_deref(), Some("ext-1b"));
    assert_eq!(replaced.subject, "ext-1");
    assert_eq!(replaced.display_name, None);
    assert!(replaced.name.is_empty());
    assert_eq!(replaced.updated_at, t(3));
    assert_eq!(replaced.created_at, t(0));
    assert!(matches!(
        s.users
            .replace_user(&acme, "usr_a", &person("BO@acme.test", None), t(4))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        s.users
            .replace_user(&other, "usr_a", &renamed, t(4))
            .await
            .unwrap(),
        None,
        "another tenant cannot replace the user"
    );
    assert!(!s.users.delete_user(&other, "usr_a").await.unwrap());

    // The first sign-in by Bo's email (any case) binds to Bo.
    assert_eq!(
        s.users
            .sign_in_user(&acme, "oidc-bo", Some("BO@acme.test"))
            .await
            .unwrap()
            .map(|u| u.id),
        Some("usr_b".to_owned())
    );
    assert_eq!(
        s.users
            .sign_in_user(&other, "oidc-bo", Some("bo@acme.test"))
            .await
            .unwrap(),
        None
    );
    let signed = s
        .users
        .record_sign_in(
            &acme,
            &sign_in("oidc-bo", "BO@acme.test", &["ops"]),
            "usr_new",
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(signed.id, "usr_b");
    assert_eq!(signed.subject, "oidc-bo");
    assert_eq!(signed.groups, vec!["ops"]);
    assert_eq!(signed.source, UserSource::Scim);
    assert_eq!(signed.last_sign_in_at, Some(t(5)));
    // Once signed in, the email no longer binds another subject to Bo.
    let stranger = s
        .users
        .record_sign_in(
            &acme,
            &sign_in("oidc-x", "bo@acme.test", &[]),
            "usr_x",
            t(6),
        )
        .await
        .unwrap();
    assert_eq!(stranger.id, "usr_x");
    assert_eq!(stranger.source, UserSource::Sso);
    assert_eq!(stranger.user_name, None);

    let listed: Vec<String> = s
        .users
        .users(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, vec!["usr_a", "usr_b", "usr_x"]);
    assert!(s.users.delete_user(&acme, "usr_a").await.unwrap());
    assert!(!s.users.delete_user(&acme, "usr_a").await.unwrap());
    assert!(s.users.user(&acme, "usr_a").await.unwrap().is_none());
    assert_eq!(s.users.users(&other).await.unwrap().len(), 1);
}

/// Groups have unique display names per tenant and members from their own tenant only;
/// a user shows their memberships wherever they are read, sessions included, so a change
/// of membership shows at once; deactivating by replace or deleting ends their sessions.
pub async fn groups_hold_members_and_sessions_follow_provisioning(s: &Subject) {
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    for (id, name) in [("usr_a", "ada@acme.test"), ("usr_b", "bo@acme.test")] {
        s.users
            .provision_user(&acme, &person(name, None), id, t(0))
            .await
            .unwrap();
    }
    s.users
        .provision_user(&other, &person("cy@other.test", None), "usr_c", t(0))
        .await
        .unwrap();
    let ops = s
        .users
        .create_group(
            &acme,
            &draft("Ops", &["usr_a", "usr_c", "usr_zz"]),
            "grp_1",
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(ops.display_name, "Ops");
    assert_eq!(
        ops.members
            .iter()
            .map(|m| m.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["usr_a"],
        "members from another tenant or of no user are left out"
    );
    assert_eq!(ops.members[0].label, "ada@acme.test");
    for (name, id) in [("OPS", "grp_2"), ("Readers", "grp_1")] {
        assert!(matches!(
            s.users
                .create_group(&acme, &draft(name, &[]), id, t(2))
                .await,
            Err(StoreError::Duplicate(_))
        ));
    }
    s.users
        .create_group(&other, &draft("Ops", &["usr_c"]), "grp_o", t(2))
        .await
        .unwrap();
    s.users
        .create_group(&acme, &draft("Readers", &["usr_a", "usr_b"]), "grp_3", t(3))
        .await
        .unwrap();

    let session = |token: &str, user: &str| UserSession {
        token_sha256: token.to_owned(),
        tenant: acme.clone(),
        user_id: user.to_owned(),
        expires_at: t(1000),
    };
    for (token, user) in [("tok_a", "usr_a"), ("tok_b", "usr_b"), ("tok_b2", "usr_b")] {
        s.users
            .create_user_session(&session(token, user), t(3))
            .await
            .unwrap();
    }
    let roles = |token: &'static str| async move {
        s.users
            .find_user_session(token, t(4))
            .await
            .unwrap()
            .map(|u| u.role_groups())
    };
    assert_eq!(
        roles("tok_a").await,
        Some(vec!["Ops".into(), "Readers".into()])
    );
    assert_eq!(roles("tok_b").await, Some(vec!["Readers".into()]));
    let ada = s.users.user(&acme, "usr_a").await.unwrap().unwrap();
    assert_eq!(
        ada.memberships
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec!["grp_1", "grp_3"]
    );

    // Moving Ada out of Ops and Bo in shows at their next read.
    let before = s.users.group(&acme, "grp_1").await.unwrap().unwrap();
    assert_eq!(before.version, 1);
    let GroupReplacement::Replaced(moved) = s
        .users
        .replace_group(
            &acme,
            "grp_1",
            &draft("Operators", &["usr_b"]),
            t(5),
            Some(before.version),
        )
        .await
        .unwrap()
    else {
        panic!("the version read is current")
    };
    assert_eq!(moved.display_name, "Operators");
    assert_eq!(moved.updated_at, t(5));
    assert_eq!(moved.version, 2);
    // A writer that read version 1 changes nothing now: the change made since would be
    // lost.
    assert_eq!(
        s.users
            .replace_group(&acme, "grp_1", &draft("Stale", &[]), t(6), Some(1))
            .await
            .unwrap(),
        GroupReplacement::Stale
    );
    assert_eq!(
        s.users.group(&acme, "grp_1").await.unwrap().unwrap(),
        moved,
        "a stale replacement wrote nothing"
    );
    assert_eq!(roles("tok_a").await, Some(vec!["Readers".into()]));
    assert_eq!(
        roles("tok_b").await,
        Some(vec!["Operators".into(), "Readers".into()])
    );
    assert!(matches!(
        s.users
            .replace_group(&acme, "grp_1", &draft("readers", &[]), t(6), None)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        s.users
            .replace_group(&other, "grp_1", &draft("X", &[]), t(6), None)
            .await
            .unwrap(),
        GroupReplacement::Missing
    );
    assert_eq!(
        s.users
            .replace_group(&other, "grp_1", &draft("X", &[]), t(6), Some(2))
            .await
            .unwrap(),
        GroupReplacement::Missing,
        "another tenant's group is missing, not stale"
    );
    assert!(s.users.group(&other, "grp_1").await.unwrap().is_none());
    assert_eq!(
        s.users
            .groups(&acme)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.id)
            .collect::<Vec<_>>(),
        vec!["grp_1", "grp_3"]
    );

    // Deactivating by replace ends every session of the user at once.
    let mut off = person("bo@acme.test", None);
    off.active = false;
    let bo = s
        .users
        .replace_user(&acme, "usr_b", &off, t(7))
        .await
        .unwrap()
        .unwrap();
    assert!(!bo.active);
    assert_eq!(roles("tok_b").await, None);
    assert_eq!(roles("tok_b2").await, None);
    assert!(roles("tok_a").await.is_some());

    // Deleting a user ends their sessions and their memberships.
    assert!(s.users.delete_user(&acme, "usr_a").await.unwrap());
    assert_eq!(roles("tok_a").await, None);
    let readers = s.users.group(&acme, "grp_3").await.unwrap().unwrap();
    assert_eq!(
        readers
            .members
            .iter()
            .map(|m| m.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["usr_b"]
    );

    // Deleting a group drops its memberships; another tenant cannot delete it.
    assert!(!s.users.delete_group(&other, "grp_3").await.unwrap());
    assert_eq!(
        s.users
            .group(&acme, "grp_3")
            .await
            .unwrap()
            .map(|g| g.members.len()),
        Some(1),
        "another tenant's delete leaves the group and its members be"
    );
    assert!(s.users.delete_group(&acme, "grp_3").await.unwrap());
    assert!(!s.users.delete_group(&acme, "grp_3").await.unwrap());
    let bo = s.users.user(&acme, "usr_b").await.unwrap().unwrap();
    assert_eq!(
        bo.memberships
            .iter()
            .map(|g| g.display_name.as_str())
            .collect::<Vec<_>>(),
        vec!["Operators"]
    );
    assert_eq!(s.users.groups(&other).await.unwrap().len(), 1);
}

//! The audit-log port: per-tenant hash chains that append, page and verify.

use cfactory_domain::TenantId;
use cfactory_domain::audit::{self, AuditKey, AuditRecord, Verdict};
use chrono::Duration;

use crate::Subject;
use crate::helpers::{t, tenant};

fn audit_key() -> AuditKey {
    AuditKey::new(b"contract-test-secret-0123".to_vec()).expect("long enough")
}

fn audit_record(n: i64) -> AuditRecord {
    AuditRecord {
        at: t(n) + Duration::nanoseconds(123_456),
        actor: format!("key:k{n}"),
        kind: "service.url_changed".into(),
        correlation_key: (n % 2 == 0).then(|| "142".to_owned()),
        target: Some("aifactory".into()),
        method: Some("PUT".into()),
        endpoint: None,
        status_code: Some(200),
        ok: n % 3 != 0,
        action_id: None,
        payload_sha256: Some(audit::sha256_hex(format!("{n}").as_bytes())),
    }
}

/// Appends chain per tenant: sequences from 1, each entry links to the one before, pages
/// come newest first, and the stored chain verifies with the key that sealed it.
pub async fn audit_chains_append_page_and_verify_per_tenant(s: &Subject) {
    let key = audit_key();
    let other = TenantId::parse("acme").unwrap();
    assert!(!s.audit.has_chains().await.unwrap(), "a new store has none");
    let mut appended = Vec::new();
    for n in 0..5 {
        appended.push(
            s.audit
                .append(&key, &tenant(), audit_record(n))
                .await
                .unwrap(),
        );
    }
    assert!(s.audit.has_chains().await.unwrap());
    let theirs = s.audit.append(&key, &other, audit_record(9)).await.unwrap();
    assert_eq!(theirs.seq, 1, "each tenant has its own chain");
    assert_eq!(theirs.prev_hash, audit::GENESIS);
    assert_eq!(
        appended.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(
        appended
            .windows(2)
            .all(|w| w[1].prev_hash == w[0].entry_hash)
    );

    let page = s.audit.audit_page(&tenant(), 2, None).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].seq, 5, "newest first");
    assert_eq!(
        page[0], appended[4],
        "an entry reads back exactly as sealed"
    );
    let older = s
        .audit
        .audit_page(&tenant(), 10, Some(page[1].id))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );

    let (rows, head) = s.audit.audit_chain(&tenant()).await.unwrap();
    let report = audit::verify(&key, &tenant(), &rows, head.as_ref(), &[]);
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    assert_eq!(report.rows, 5);
    let (rows, head) = s.audit.audit_chain(&other).await.unwrap();
    assert_eq!(
        audit::verify(&key, &other, &rows, head.as_ref(), &[]).rows,
        1
    );
    let (none, no_head) = s
        .audit
        .audit_chain(&TenantId::parse("nobody").unwrap())
        .await
        .unwrap();
    assert!(none.is_empty() && no_head.is_none());
}

/// Many appenders at once still make one unbroken chain.
pub async fn concurrent_audit_appends_never_fork_the_chain(s: &Subject) {
    let key = audit_key();
    let mut tasks = Vec::new();
    for n in 0..24 {
        let (audit, key) = (s.audit.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            audit.append(&key, &tenant(), audit_record(n)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let (rows, head) = s.audit.audit_chain(&tenant()).await.unwrap();
    let report = audit::verify(&key, &tenant(), &rows, head.as_ref(), &[]);
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    assert_eq!(report.rows, 24);
    assert_eq!(head.unwrap().count, 24);
}

//! The conversation port.

use cfactory_domain::TenantId;
use serde_json::json;

use crate::Subject;
use crate::helpers::{t, tenant};

/// A conversation reads back as saved, replaced by a later save, and only for its tenant.
pub async fn conversations_persist_per_tenant(s: &Subject) {
    let doc = json!({"id": "conv_1", "messages": [{"role": "user", "content": "hi"}]});
    s.conversations
        .save_conversation(&tenant(), "conv_1", &doc, t(0))
        .await
        .unwrap();
    assert_eq!(
        s.conversations
            .load_conversation(&tenant(), "conv_1")
            .await
            .unwrap(),
        Some(doc)
    );
    let later = json!({"id": "conv_1", "messages": []});
    s.conversations
        .save_conversation(&tenant(), "conv_1", &later, t(1))
        .await
        .unwrap();
    assert_eq!(
        s.conversations
            .load_conversation(&tenant(), "conv_1")
            .await
            .unwrap(),
        Some(later)
    );
    assert!(
        s.conversations
            .load_conversation(&TenantId::parse("acme").unwrap(), "conv_1")
            .await
            .unwrap()
            .is_none()
    );
}

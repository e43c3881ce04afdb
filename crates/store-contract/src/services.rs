//! The service-URL port.

use crate::Subject;
use crate::helpers::t;

/// Service URLs: empty at first, stored, replaced, listed by name.
pub async fn service_urls_persist_and_replace(s: &Subject) {
    assert!(s.services.service_urls().await.unwrap().is_empty());
    let at = t(0);
    s.services
        .set_service_url("tfactory", "http://127.0.0.1:3123", at)
        .await
        .unwrap();
    s.services
        .set_service_url("aifactory", "http://127.0.0.1:3122", at)
        .await
        .unwrap();
    s.services
        .set_service_url("tfactory", "https://tf.example.com/base", at)
        .await
        .unwrap();
    assert_eq!(
        s.services.service_urls().await.unwrap(),
        vec![
            ("aifactory".to_owned(), "http://127.0.0.1:3122".to_owned()),
            (
                "tfactory".to_owned(),
                "https://tf.example.com/base".to_owned()
            ),
        ]
    );
}

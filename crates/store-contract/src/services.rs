//! The service-registry port: each tenant's upstream URLs and tokens.

use cfactory_domain::TenantId;
use cfactory_domain::ports::StoredService;

use crate::Subject;
use crate::helpers::t;

fn setting(tenant: &str, service: &str, url: &str, token: Option<&str>) -> StoredService {
    StoredService {
        tenant: TenantId::parse(tenant).unwrap(),
        service: service.to_owned(),
        url: url.to_owned(),
        token: token.map(str::to_owned),
    }
}

/// Service settings: empty at first; stored, replaced (token included) and listed per
/// tenant, one tenant's setting never touching another's.
pub async fn service_settings_persist_and_replace(s: &Subject) {
    assert!(s.services.stored_services().await.unwrap().is_empty());
    let at = t(0);
    let put = |v: StoredService| async move { s.services.set_stored_service(&v, at).await };
    put(setting(
        "acme",
        "tfactory",
        "http://127.0.0.1:3123",
        Some("tok-a"),
    ))
    .await
    .unwrap();
    put(setting("acme", "aifactory", "http://127.0.0.1:3122", None))
        .await
        .unwrap();
    put(setting(
        "beta",
        "tfactory",
        "http://10.0.0.9:3123",
        Some("tok-b"),
    ))
    .await
    .unwrap();
    // Replacing acme's TFactory drops its token; beta's is untouched.
    put(setting(
        "acme",
        "tfactory",
        "https://tf.example.com/base",
        None,
    ))
    .await
    .unwrap();
    assert_eq!(
        s.services.stored_services().await.unwrap(),
        vec![
            setting("acme", "aifactory", "http://127.0.0.1:3122", None),
            setting("acme", "tfactory", "https://tf.example.com/base", None),
            setting("beta", "tfactory", "http://10.0.0.9:3123", Some("tok-b")),
        ]
    );
}

//! The audit log end to end: audited changes land on the tenant's chain, the chain
//! verifies over the API and from the CLI, and edits or deletions made straight in the
//! database are caught and named.

mod common;

use common::{Server, Store};
use serde_json::{Value, json};

async fn change_url(server: &Server, service: &str, port: u16) {
    let (status, body) = server
        .http
        .put(server.url(&format!("/api/services/{service}")))
        .json(&json!({"url": format!("http://127.0.0.1:{port}")}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", body.text().await);
}

fn verify_cli(store: &Store) -> (bool, Value) {
    let (status, out, err) = store.cli(&["audit", "verify"], None);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    (status.success(), report)
}

async fn audited_changes_chain_verify_and_tampering_is_named(store: Store) {
    let server = Server::start(&store);
    for (i, service) in ["pfactory", "aifactory", "tfactory"].iter().enumerate() {
        change_url(&server, service, 4000 + i as u16).await;
    }
    let (status, page) = server.get("/api/audit?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "service.url_changed");
    assert_eq!(
        entries[0]["target"], "tfactory: none -> http://127.0.0.1:4002; token none",
        "newest first, with the old and new origin"
    );
    assert_eq!(entries[0]["actor"], "local", "open mode acts as local");
    assert_eq!(entries[0]["seq"], 3);
    assert!(entries[0]["payload_sha256"].as_str().unwrap().len() == 64);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, older) = server.get(&format!("/api/audit?cursor={cursor}")).await;
    assert_eq!(
        older["entries"][0]["target"],
        "pfactory: none -> http://127.0.0.1:4000; token none"
    );
    assert_eq!(older["next_cursor"], Value::Null);

    let (_, chain) = server.get("/api/audit/chain").await;
    assert_eq!(
        chain,
        json!({"verdict": "ok", "rows": 3, "findings": [],
               "anchor": {"anchored_seq": 3, "chain_seq": 3, "state": "ok"}})
    );
    server.terminate();

    // The CLI finds the same secret (kept in the data dir) and appends too.
    let (ok, report) = verify_cli(&store);
    assert!(ok, "{report}");
    store.create_key("read", None);
    let (ok, report) = verify_cli(&store);
    assert!(ok && report["rows"] == 4, "{report}");

    let id_of = |seq: u64, rows: &Value| {
        rows["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["seq"] == seq)
            .map(|e| e["id"].as_i64().unwrap())
            .unwrap()
    };
    let server = Server::start(&store);
    let key = store.create_key("read", None);
    let (_, rows) = server.get_with("/api/audit", Some(&key)).await;
    server.terminate();
    let second = id_of(2, &rows);
    let newest = id_of(5, &rows);
    let fourth = id_of(4, &rows);

    // An edited row is named.
    store
        .run_sql(&format!(
            "UPDATE audit_log SET endpoint = '/api/services/elsewhere' WHERE id = {second}"
        ))
        .await;
    let (ok, report) = verify_cli(&store);
    assert!(!ok);
    assert_eq!(report["verdict"], "tampered");
    assert_eq!(
        report["findings"],
        json!([{"id": second, "kind": "altered"}])
    );

    // Deleting the newest row shows at the head, naming the newest surviving row.
    store
        .run_sql(&format!("DELETE FROM audit_log WHERE id = {newest}"))
        .await;
    let (_, report) = verify_cli(&store);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .contains(&json!({"id": fourth, "kind": "truncated"})),
        "{report}"
    );
}

/// Reads one value straight from the store's database.
async fn read_text(store: &Store, sql: &str) -> String {
    use sqlx::Connection;
    if store.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&store.url).await.unwrap();
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        v
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&store.url).await.unwrap();
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        v
    }
}

async fn a_chain_deleted_or_rolled_back_with_its_head_is_caught(store: Store) {
    // One audited change, and the state of the chain after it: an earlier copy.
    store.create_key("read", None);
    let copy = read_text(
        &store,
        "SELECT last_hash || ' ' || count || ' ' || head_mac FROM audit_heads",
    )
    .await;
    let copy: Vec<&str> = copy.split(' ').collect();
    store.create_key("read", None);
    store.create_key("read", None);
    let (ok, report) = verify_cli(&store);
    assert!(ok, "{report}");
    assert_eq!(
        report["anchor"],
        json!({"anchored_seq": 3, "chain_seq": 3, "state": "ok"})
    );

    // Rolled back to the copy, rows and head together: the chain alone is intact.
    store.run_sql("DELETE FROM audit_log WHERE seq > 1").await;
    store
        .run_sql(&format!(
            "UPDATE audit_heads SET last_hash = '{}', count = {}, head_mac = '{}'",
            copy[0], copy[1], copy[2]
        ))
        .await;
    let (ok, report) = verify_cli(&store);
    assert!(!ok);
    assert_eq!(report["verdict"], "truncated", "{report}");
    assert_eq!(report["findings"], json!([]), "intact on its own: {report}");
    assert_eq!(
        report["anchor"],
        json!({"anchored_seq": 3, "chain_seq": 1, "state": "truncated"})
    );
    // Appended to after the rollback: entry 2 is another one than the anchor saw.
    let key = store.create_key("read", None);
    let server = Server::start(&store);
    let (_, chain) = server.get_with("/api/audit/chain", Some(&key)).await;
    server.terminate();
    assert_eq!(chain["verdict"], "rolled_back", "{chain}");
    assert_eq!(
        chain["anchor"],
        json!({"anchored_seq": 2, "chain_seq": 2, "state": "rolled_back"})
    );
    let (ok, report) = verify_cli(&store);
    assert!(!ok);
    assert_eq!(report["verdict"], "rolled_back", "{report}");

    // The whole chain and its head deleted.
    store.run_sql("DELETE FROM audit_log").await;
    store.run_sql("DELETE FROM audit_heads").await;
    let (ok, report) = verify_cli(&store);
    assert!(!ok);
    assert_eq!(report["verdict"], "truncated", "{report}");
    assert_eq!(report["rows"], 0);
    assert_eq!(report["anchor"]["chain_seq"], 0, "{report}");
}

#[tokio::test]
async fn sqlite_audit_anchor_catches_deletion_and_rollback() {
    a_chain_deleted_or_rolled_back_with_its_head_is_caught(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_audit_anchor_catches_deletion_and_rollback() {
    a_chain_deleted_or_rolled_back_with_its_head_is_caught(Store::postgres().await).await;
}

#[tokio::test]
async fn no_new_secret_is_made_beside_an_existing_chain() {
    let store = Store::sqlite();
    store.create_key("read", None);
    std::fs::remove_file(store.data_dir.path().join("audit.key")).unwrap();
    let (status, _, err) = store.cli(&["audit", "verify"], None);
    assert!(!status.success());
    assert!(
        err.contains("audit chains but their secret is not here"),
        "{err}"
    );
    assert!(
        !store.data_dir.path().join("audit.key").exists(),
        "no secret was made"
    );
    let (status, _, err) = store.cli(&["keys", "create", "--scopes", "read"], None);
    assert!(!status.success(), "a key change cannot be audited: {err}");
}

#[tokio::test]
async fn sqlite_audit_chain_catches_edits_and_deletions() {
    audited_changes_chain_verify_and_tampering_is_named(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_audit_chain_catches_edits_and_deletions() {
    audited_changes_chain_verify_and_tampering_is_named(Store::postgres().await).await;
}

#[tokio::test]
async fn a_public_bind_needs_the_audit_secret() {
    let store = Store::sqlite();
    store.create_key("admin", None);
    let args = ["--api-addr", "0.0.0.0:0", "--ui-addr", "0.0.0.0:0"];
    let log = Server::start_with(&store, &args, &[])
        .err()
        .expect("refuses to start");
    assert!(log.contains("CFACTORY_AUDIT_HMAC_SECRET"), "{log}");
    // The CLI (loopback by nature) generated one; a server given the secret must not.
    std::fs::remove_file(store.data_dir.path().join("audit.key")).unwrap();
    let server = Server::start_with(
        &store,
        &args,
        &[("CFACTORY_AUDIT_HMAC_SECRET", "a-long-enough-shared-secret")],
    )
    .expect("starts with the secret");
    server.terminate();
    assert!(
        !store.data_dir.path().join("audit.key").exists(),
        "a configured secret is never written down"
    );
}

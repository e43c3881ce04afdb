//! The cockpit's API types are generated from a checked-in copy of `/openapi.json`
//! (`ui/src/openapi/openapi.json`, turned into `ui/src/openapi/schema.gen.ts` by
//! `ui/scripts/openapi-types.mjs`). This test fails when the server's document has moved
//! on from that copy; the UI's own test fails when the types have moved on from the copy.
//! `cargo xtask ui-types` refreshes both.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/openapi/openapi.json")
}

#[test]
fn the_ui_holds_the_current_openapi_document() {
    let current = cfactory_server::api::openapi_document();
    let path = snapshot_path();
    let held = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        held == current,
        "{} is stale: the server's /openapi.json changed; run `cargo xtask ui-types` and \
         commit the regenerated files",
        path.display()
    );
}

//! The change feed: every committed change, from ingest or hydration, heard with its
//! tenant.

use std::sync::{Arc, Mutex};

use cfactory_domain::ports::ChangeSink;
use cfactory_domain::{CorrelationKey, Service, TenantId};
use serde_json::json;

use crate::Subject;
use crate::helpers::{event_json, ingest_one, list, snap, t, tenant};

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<String>)>>);

impl ChangeSink for Recorder {
    fn items_changed(&self, tenant: &TenantId, keys: &[CorrelationKey]) {
        self.0.lock().unwrap().push((
            tenant.to_string(),
            keys.iter().map(|k| k.to_string()).collect(),
        ));
    }
}

/// The change feed hears every committed change, with its tenant.
pub async fn the_change_feed_hears_ingest_and_hydration(s: &Subject) {
    let recorder = Arc::new(Recorder::default());
    s.work.watch(recorder.clone()).await.unwrap();
    ingest_one(
        s,
        event_json(
            Some("x"),
            "61",
            "aifactory",
            "q",
            "in_progress",
            0,
            json!({}),
        ),
    )
    .await;
    let rows = list(
        vec![snap(Service::PFACTORY, "s9", Some(62), "reviewing")],
        true,
    );
    s.work
        .apply_snapshots(&tenant(), Service::PFACTORY, &rows, t(0))
        .await
        .unwrap();
    // Feeds that travel through the database arrive shortly after the commit.
    for _ in 0..100 {
        if recorder.0.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let heard = recorder.0.lock().unwrap().clone();
    assert!(
        heard.contains(&("default".to_owned(), vec!["61".to_owned()])),
        "{heard:?}"
    );
    assert!(
        heard.contains(&("default".to_owned(), vec!["acme/shop#62".to_owned()])),
        "{heard:?}"
    );
}

//! Delivers completion envelopes to the configured webhook, one at a time and in
//! order, retrying 5xx answers and connection errors with the same event id. Like the
//! real senders it sends no header of its own: a key rides in the URL as `?token=`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::driver::Shared;
use crate::world::Outgoing;

/// How many times one envelope is tried before it counts as a failure.
const ATTEMPTS: u32 = 5;

/// Where envelopes go.
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Webhook {
    /// A webhook client for `url`, with `token` added to it as `?token=` when set.
    pub(crate) fn new(url: String, token: Option<String>) -> anyhow::Result<Self> {
        let mut url = reqwest::Url::parse(&url)?;
        if let Some(t) = token {
            url.query_pairs_mut().append_pair("token", &t);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { client, url })
    }

    /// POSTs one envelope; true once the receiver accepted it.
    async fn deliver(&self, event: &serde_json::Value) -> bool {
        // PFactory's events have no id; the log names them by key.
        let id = event["id"]
            .as_str()
            .or(event["correlation_key"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let req = self.client.post(self.url.clone()).json(event);
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return true,
                Ok(resp) if !resp.status().is_server_error() => {
                    tracing::warn!(status = %resp.status(), %id, "webhook refused the event");
                    return false;
                }
                Ok(resp) => {
                    tracing::debug!(status = %resp.status(), %id, attempt, "webhook 5xx, retrying")
                }
                Err(e) => {
                    tracing::debug!(error = %e, %id, attempt, "webhook unreachable, retrying")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        false
    }
}

/// Drains the outbox channel until it closes: delivers each envelope, then counts
/// the scenario it completes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    webhook: Option<Webhook>,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    while let Some(out) = rx.recv().await {
        if let Some(event) = &out.event {
            match &webhook {
                Some(w) => {
                    let counter = if w.deliver(event).await {
                        &shared.events_sent
                    } else {
                        &shared.webhook_failures
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    shared.events_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(s) = out.completes {
            let mut done = shared.completed.lock().unwrap_or_else(|e| e.into_inner());
            *done.entry(s.as_str().to_owned()).or_default() += 1;
        }
    }
}

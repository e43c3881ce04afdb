//! Health probes: one cheap GET, timed, classified into the domain's health verdicts.

use std::time::Instant;

use cfactory_domain::event::Service;
use cfactory_domain::upstream::{Health, HealthReport, UpstreamError};

use crate::client::UpstreamClient;

/// GETs the first of `paths` that exists and reports `service` online,
/// unauthorized (401/403), offline (no connection) or error (anything else, including a
/// timeout or a body that is not JSON). Latency is given whenever the service answered.
/// `detail` never carries the URL.
pub async fn probe(client: &UpstreamClient, service: Service, paths: &[String]) -> HealthReport {
    let started = Instant::now();
    let result = client.get_first(paths).await;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, detail, answered) = match &result {
        Ok(_) => (Health::Online, None, true),
        Err(e) => (
            e.health(),
            Some(client.config().scrub(&e.to_string())),
            !matches!(e, UpstreamError::Offline(_) | UpstreamError::Timeout),
        ),
    };
    if let Err(error) = &result {
        tracing::debug!(service = %service, %error, "probe failed");
    }
    HealthReport {
        service,
        status,
        detail,
        latency_ms: answered.then_some(elapsed),
        checked_at: chrono::Utc::now(),
    }
}

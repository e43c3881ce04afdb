//! Health probes: one cheap GET, timed, classified into the domain's health verdicts, and
//! for services whose health route takes no token, a second GET that checks the token.

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

/// [`probe`] for a service whose health route answers without looking at the token
/// (TFactory's `/api/health` answers 200 with a wrong one): once `health` answers,
/// GETs the first of `token_check` that exists (an authenticated route) and reports
/// unauthorized when it answers 401/403. Any other failure of that check leaves the
/// verdict as the health route gave it: the task list reports its own failures.
pub async fn probe_with_token_check(
    client: &UpstreamClient,
    service: Service,
    health: &[String],
    token_check: &[String],
) -> HealthReport {
    let mut report = probe(client, service, health).await;
    if report.status != Health::Online {
        return report;
    }
    if let Err(UpstreamError::Unauthorized) = client.get_first(token_check).await {
        let route = token_check.first().map_or("", String::as_str);
        tracing::debug!(service = %service, route, "the token was refused");
        report.status = Health::Unauthorized;
        report.detail = Some(format!("GET {route}: the token was refused (401/403)"));
    }
    report
}

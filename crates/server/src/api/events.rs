//! The completion-event ingress (RFC-0001): one event or a JSON array of up to 1,000,
//! parsed in full before anything is stored, so a bad event stores nothing. A 2xx means
//! committed.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cfactory_domain::event::MAX_EVENT_BYTES;
use cfactory_domain::ports::Scope;
use cfactory_domain::{CompletionEvent, IngestOutcome, TenantId};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::webhooks::{Delivery, Refusal};

/// Most events one request may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events/completion", post(ingest))
        .route("/api/events", post(ingest))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// One event's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// `accepted` (newly committed) or `duplicate` (already held under this id).
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// The canonical key of the WorkItem the event is on.
    #[schema(example = "142")]
    pub correlation_key: String,
}

impl From<&IngestOutcome> for IngestResult {
    fn from(outcome: &IngestOutcome) -> Self {
        Self {
            status: match outcome {
                IngestOutcome::Accepted { .. } => "accepted",
                IngestOutcome::Duplicate { .. } => "duplicate",
            },
            correlation_key: outcome.correlation_key().to_string(),
        }
    }
}

/// Splits a request body into events, refusing the whole body on the first bad one.
/// Returns the events and whether the body was a batch.
pub fn parse_body(body: &[u8]) -> Result<(Vec<CompletionEvent>, bool), ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest {
        detail: "the body is not UTF-8 text".into(),
    })?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let raws: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| ApiError::BadRequest {
                detail: format!("malformed JSON: {e}"),
            })?;
        if raws.is_empty() {
            return Err(ApiError::BadRequest {
                detail: "the batch is empty".into(),
            });
        }
        if raws.len() > MAX_BATCH_EVENTS {
            return Err(ApiError::TooLarge {
                detail: format!(
                    "a batch holds at most {MAX_BATCH_EVENTS} events; this one has {}",
                    raws.len()
                ),
            });
        }
        let mut events = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let raw = raw.get();
            if raw.len() > MAX_EVENT_BYTES {
                return Err(too_large_event(Some(i)));
            }
            events.push(
                CompletionEvent::parse(raw)
                    .map_err(|e| ApiError::from_event(e, &format!("[{i}]")))?,
            );
        }
        Ok((events, true))
    } else {
        if text.len() > MAX_EVENT_BYTES {
            return Err(too_large_event(None));
        }
        let event = CompletionEvent::parse(text).map_err(|e| ApiError::from_event(e, ""))?;
        Ok((vec![event], false))
    }
}

/// Refuses a body with an event dated further ahead of this server's clock than
/// `--max-clock-skew-seconds`: the latest time wins a stage, so one event from the far
/// future would pin it for good.
fn not_ahead(events: &[CompletionEvent], batch: bool, state: &AppState) -> Result<(), ApiError> {
    let now = state.clock.now();
    for (i, event) in events.iter().enumerate() {
        if let Err(e) = event.check_not_ahead(now, state.max_clock_skew) {
            let prefix = if batch {
                format!("[{i}]")
            } else {
                String::new()
            };
            return Err(ApiError::from_event(e, &prefix));
        }
    }
    Ok(())
}

fn too_large_event(index: Option<usize>) -> ApiError {
    let which = index.map_or_else(|| "the event".to_owned(), |i| format!("event [{i}]"));
    ApiError::TooLarge {
        detail: format!("{which} is over the {MAX_EVENT_BYTES}-byte limit for one event"),
    }
}

/// The tenant a signed delivery is for: `?tenant=`, else the server's `--tenant`.
fn signed_tenant(state: &AppState, query: Option<&str>) -> Result<TenantId, ApiError> {
    match query.and_then(|q| crate::auth::url_query_value(q, "tenant")) {
        Some(name) => {
            TenantId::parse(&name).map_err(|e| ApiError::field("tenant", format!("`tenant` {e}")))
        }
        None => Ok(state.default_tenant.clone()),
    }
}

fn refused(reason: Refusal) -> ApiError {
    ApiError::Unauthorized {
        detail: reason.to_string(),
    }
}

/// Ingest completion events.
#[utoipa::path(
    post,
    path = "/api/events/completion",
    tag = "events",
    operation_id = "ingestCompletionEvent",
    request_body(
        content = Object,
        description = "One RFC-0001 completion event, or a JSON array of up to 1,000 of them",
        content_type = "application/json"
    ),
    responses(
        (status = 202, description = "Committed (for a batch: at least one event was new); a batch answers an array in request order", body = IngestResult),
        (status = 200, description = "Every event was already held (duplicate ids)", body = IngestResult),
        (status = 400, description = "Malformed JSON", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown key; or a signed delivery whose signature, timestamp or headers do not hold (`detail` says which); or an unsigned request for a tenant that signs its webhooks", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the ingest scope", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "An event over 1 MiB, a body over 16 MiB or over 1,000 events", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A missing or invalid field, named in `field`; nothing stored", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "The store is down; nothing stored; see Retry-After", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let delivery = Delivery::from_headers(&headers);
    // An unsigned request needs a key with the ingest scope (or open mode) before its
    // body is even looked at.
    let caller = match &delivery {
        None => {
            let caller = caller?;
            caller.require(Scope::Ingest)?;
            Some(caller)
        }
        Some(_) => None,
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                detail: format!("the body is over the {MAX_BODY_BYTES}-byte limit"),
            }
        } else {
            ApiError::BadRequest {
                detail: format!("could not read the body: {e}"),
            }
        }
    })?;
    let tenant = match (delivery, caller) {
        (Some(delivery), _) => {
            let tenant = signed_tenant(&state, query.as_deref())?;
            let delivery = delivery.map_err(refused)?;
            let keys = state
                .webhook_secrets
                .active(state.keys.as_ref(), &tenant)
                .await?;
            if keys.is_empty() {
                return Err(refused(Refusal::NoSecret(tenant.to_string())));
            }
            delivery
                .verify(&keys, &body, state.clock.now())
                .map_err(refused)?;
            tenant
        }
        (None, Some(caller)) => {
            let keys = state
                .webhook_secrets
                .active(state.keys.as_ref(), &caller.tenant)
                .await?;
            if !keys.is_empty() {
                return Err(ApiError::Unauthorized {
                    detail: format!(
                        "the tenant `{}` signs its webhooks: send webhook-id, \
                         webhook-timestamp and webhook-signature",
                        caller.tenant
                    ),
                });
            }
            caller.tenant
        }
        (None, None) => return Err(ApiError::Internal),
    };
    let (events, batch) = match parse_body(&body)
        .and_then(|(events, batch)| not_ahead(&events, batch, &state).map(|()| (events, batch)))
    {
        Ok(parsed) => parsed,
        Err(e) => {
            state.metrics.rejected(&tenant, 1);
            return Err(e);
        }
    };
    // The span an exported trace shows for the store's part, named by its first event.
    let span = tracing::info_span!(
        "ingest",
        tenant = %tenant,
        events = events.len(),
        event_id = events
            .iter()
            .find_map(|e| e.id.as_ref())
            .map(tracing::field::display),
        correlation_key = events.first().map(|e| tracing::field::display(&e.correlation_key)),
    );
    let outcomes =
        match tracing::Instrument::instrument(state.work.ingest(&tenant, events), span).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                state.metrics.store_error();
                return Err(e.into());
            }
        };
    let results: Vec<IngestResult> = outcomes.iter().map(IngestResult::from).collect();
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Accepted { .. }))
        .count() as u64;
    state
        .metrics
        .ingested(&tenant, accepted, outcomes.len() as u64 - accepted);
    state.metrics.ingest_latency(started.elapsed());
    let status = if accepted > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(if batch {
        (status, Json(results)).into_response()
    } else {
        let one = results.into_iter().next().ok_or(ApiError::Internal)?;
        (status, Json(one)).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"e1","correlation_key":"142","service":"aifactory","task_id":"t1","status":"done","phase":"pr","time":"2026-11-01T10:00:00Z"}"#;

    #[test]
    fn single_and_batch_bodies_parse_keeping_raw_text() {
        let (events, batch) = parse_body(EVENT.as_bytes()).unwrap();
        assert!(!batch);
        assert_eq!(events[0].raw, EVENT);
        let body = format!("[{EVENT}, {EVENT}]");
        let (events, batch) = parse_body(body.as_bytes()).unwrap();
        assert!(batch);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].raw, EVENT);
    }

    #[test]
    fn one_bad_event_refuses_the_batch_naming_its_index() {
        let bad = EVENT.replace(r#""status":"done","#, "");
        let body = format!("[{EVENT},{bad}]");
        match parse_body(body.as_bytes()).unwrap_err() {
            ApiError::Unprocessable { field, .. } => {
                assert_eq!(field.as_deref(), Some("[1].status"))
            }
            other => panic!("expected 422, got {other:?}"),
        }
        assert!(matches!(
            parse_body(b"[]").unwrap_err(),
            ApiError::BadRequest { .. }
        ));
        assert!(matches!(
            parse_body(b"{\"id\":").unwrap_err(),
            ApiError::BadRequest { .. }
        ));
        assert!(matches!(
            parse_body(&[0xff, 0xfe]).unwrap_err(),
            ApiError::BadRequest { .. }
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let many = format!("[{}]", vec![EVENT; MAX_BATCH_EVENTS + 1].join(","));
        assert!(matches!(
            parse_body(many.as_bytes()).unwrap_err(),
            ApiError::TooLarge { .. }
        ));
        let padding = "x".repeat(MAX_EVENT_BYTES);
        let big = EVENT.replace("\"t1\"", &format!("\"t1\",\"pad\":\"{padding}\""));
        assert!(matches!(
            parse_body(big.as_bytes()).unwrap_err(),
            ApiError::TooLarge { .. }
        ));
    }
}

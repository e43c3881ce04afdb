//! The access log: one INFO line per request on the target `cfactory::access`, with the
//! method, the route's template (never the raw path or its query, which may carry a key),
//! the status, the time to the response's head in milliseconds, and the tenant and key id
//! (or, for single sign-on, user id) of an authenticated caller. The auth extractor leaves who called in a slot this layer
//! puts in the request's extensions; secrets never reach it. The same layer counts the
//! request in `/metrics` (method, route template and status).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Caller;
use crate::metrics::Metrics;

/// The route logged for a request no route matched (a cockpit file, a 404).
const NO_ROUTE: &str = "(fallback)";

/// Who called, once authenticated: put in a request's extensions by [`log`], filled by
/// the [`Caller`] extractor.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<Identity>>);

/// The tenant and key id (or user id) of an authenticated caller.
struct Identity {
    tenant: String,
    key_id: Option<String>,
    user_id: Option<String>,
}

impl CallerSlot {
    /// Records `caller` for the access log; the first caller of a request stands.
    pub fn fill(&self, caller: &Caller) {
        let _ = self.0.set(Identity {
            tenant: caller.tenant.as_str().to_owned(),
            key_id: caller.key_id.clone(),
            user_id: caller.user.as_ref().map(|u| u.id.clone()),
        });
    }
}

/// Logs one line for the request once its response's head is ready, and counts it.
pub async fn log(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| NO_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let took = started.elapsed();
    metrics.http_request(&method, &route, response.status(), took);
    let latency_ms = (took.as_secs_f64() * 100_000.0).round() / 100.0;
    let who = slot.0.get();
    tracing::info!(
        target: "cfactory::access",
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms,
        tenant = who.map(|w| tracing::field::display(&w.tenant)),
        key_id = who.and_then(|w| w.key_id.as_ref().map(tracing::field::display)),
        user_id = who.and_then(|w| w.user_id.as_ref().map(tracing::field::display)),
        "request"
    );
    response
}

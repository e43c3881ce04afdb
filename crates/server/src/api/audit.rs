//! The audit log over HTTP: pages of the caller's tenant's chain and its verdict.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use cfactory_domain::audit::AuditEntry;
use cfactory_domain::ports::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use super::paging::{PageRule, Paging, seq_cursor};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/audit", get(page))
        .route("/api/audit/chain", get(chain))
}

/// Audit pages: `limit` entries (default 50, at most 500), older than the cursor.
pub struct AuditPages;

impl PageRule for AuditPages {
    const DEFAULT: u32 = 50;
    const MAX: u32 = 500;
    const CURSOR_ABOUT: Option<&'static str> = Some("The previous page's `next_cursor`.");
    type Cursor = i64;
    fn decode(text: &str) -> Option<i64> {
        seq_cursor(text)
    }
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<AuditEntry>,
    /// The next (older) page's cursor, or null on the last page.
    next_cursor: Option<String>,
}

/// The caller's tenant's audit entries, newest first.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    operation_id = "listAudit",
    params(Paging<AuditPages>),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 422, description = "A bad limit or cursor", body = crate::api::ProblemDoc, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn page(
    State(state): State<AppState>,
    caller: Caller,
    Paging {
        limit,
        cursor: before,
        ..
    }: Paging<AuditPages>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Scope::Read)?;
    let mut entries = state
        .auditor
        .page(&caller.tenant, limit + 1, before)
        .await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = entries.last().filter(|_| more).map(|e| e.id.to_string());
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// Verifies the caller's tenant's whole chain: `ok`, `tampered` or `forked`, with each
/// finding naming its row.
#[utoipa::path(
    get,
    path = "/api/audit/chain",
    tag = "audit",
    operation_id = "verifyAudit",
    responses((status = 200, description = "The chain's verdict", body = super::dto::ChainReport)),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn chain(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<super::dto::ChainReport>, ApiError> {
    caller.require(Scope::Read)?;
    let report = state.auditor.verify(&caller.tenant).await?;
    Ok(Json(super::dto::ChainReport::from(&report)))
}

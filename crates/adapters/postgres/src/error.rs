//! Translation of sqlx failures into the domain's [`StoreError`], at the adapter's edge:
//! a unique violation is `Duplicate`, anything that means "no database to talk to" is
//! `Unavailable`, the rest is `Unexpected`. Nothing outside this crate sees sqlx errors.

use cfactory_domain::ports::StoreError;

/// SQLSTATE classes and codes that mean the server cannot serve us right now.
fn unavailable_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources; 57P01-57P04: the server is
    // shutting down, crashed, not yet accepting connections, or the database was dropped;
    // 55000: the database is not accepting connections; 3D000: it does not exist.
    // 55P03: a lock wait passed `lock_timeout` (another process holds the tenant's write
    // lock); 57014: a statement passed `statement_timeout`.
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P04" | "55000" | "3D000" | "55P03" | "57014"
        )
}

/// Translates a sqlx error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Duplicate(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| unavailable_code(&c)) => {
            StoreError::Unavailable(db.message().to_owned())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Unexpected(error.to_string()),
    }
}

/// Translates a migration failure.
pub(crate) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(e) => store_error(e),
        other => StoreError::Unexpected(other.to_string()),
    }
}

/// A stored value that this crate wrote but cannot read back.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unreadable(format!("stored {what} is unreadable: {detail}"))
}

//! Translation of sqlx failures into the domain's [`StoreError`], at the adapter's edge:
//! a unique violation is `Duplicate`, a busy, locked, unopenable or closed database is
//! `Unavailable`, the rest is `Unexpected`. Nothing outside this crate sees sqlx errors.

use std::fmt::Display;

use cfactory_domain::ports::StoreError;

/// SQLite primary result codes that mean "not now" rather than "wrong": BUSY, LOCKED,
/// IOERR, CORRUPT, FULL, CANTOPEN, READONLY.
fn unavailable_code(code: &str) -> bool {
    let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
    matches!(primary, 5 | 6 | 8 | 10 | 11 | 13 | 14)
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
        other => StoreError::Unexpected(format!("migrating the SQLite database: {other}")),
    }
}

/// A stored value that this crate wrote but cannot read back.
pub(crate) fn corrupt(what: &str, detail: impl Display) -> StoreError {
    StoreError::Unreadable(format!("stored {what} is unreadable: {detail}"))
}

/// The writer task is gone (the store was closed or its task ended).
pub(crate) fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

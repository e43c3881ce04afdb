//! [`StoreError`]: how every store port fails.
//!
//! Its room in the hexagon: the ports' shared vocabulary; each adapter translates its
//! technology's errors into it at its boundary, never the domain.

/// A store failure, translated at the adapter's boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused service; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique value already exists.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// A stored row no longer decodes (written by an older version, edited by hand,
    /// damaged); the text names it. Nothing else is affected.
    #[error("{0}")]
    Unreadable(String),
    /// Anything else.
    #[error("store error: {0}")]
    Unexpected(String),
}

//! Postgres store.

//! The writer's tenant locks: session-level advisory locks held on a connection of its
//! own, and the statements that take them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cfactory_domain::TenantId;
use cfactory_domain::ports::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use super::request_queue::Stamped;
use super::send_ahead::{InFlightWrite, Landed};
use super::write_cache::TenantCache;
use crate::error::store_error;

/// The writer's tenant locks: session-level advisory locks on a pooled connection it
/// keeps while it holds them. A connection that failed mid-write is closed, not
/// returned, which also ends its locks.
pub(super) struct TenantLocks {
    pool: PgPool,
    pub(super) held: Option<Session>,
    /// The write out on the held connection, which is then not in `held`.
    pub(super) in_flight: Option<InFlightWrite>,
    /// What the writer knows of each tenant it wrote to.
    pub(super) known: HashMap<TenantId, TenantCache>,
}

pub(super) struct Session {
    pub(super) conn: PoolConnection<Postgres>,
    /// The tenants locked, in order.
    pub(super) tenants: Vec<TenantId>,
    pub(super) since: Instant,
}

impl TenantLocks {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            held: None,
            in_flight: None,
            known: HashMap::new(),
        }
    }

    pub(super) fn holding(&self) -> bool {
        self.held.is_some() || self.in_flight.is_some()
    }

    /// The tenants locked and since when, whether the connection is here or out with a
    /// write.
    fn lease(&self) -> Option<(&[TenantId], Instant)> {
        match (&self.held, &self.in_flight) {
            (Some(session), _) => Some((&session.tenants, session.since)),
            (None, Some(flight)) => Some((&flight.tenants, flight.since)),
            (None, None) => None,
        }
    }

    /// Whether `tenant` is among the locks held.
    pub(super) fn covers(&self, tenant: &TenantId) -> bool {
        self.lease()
            .is_some_and(|(tenants, _)| tenants.contains(tenant))
    }

    /// How long the current locks have been held.
    pub(super) fn held_for(&self) -> Duration {
        self.lease()
            .map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }

    /// Takes the connection back from the write that was out. When the write failed,
    /// what the writer took in from it is taken back too, and its unanswered requests
    /// are returned (none when its task panicked, taking them along). A write turned
    /// back by the events' unique key (an event id taken as new was recorded) left the
    /// connection as it was; any other failure closes it.
    pub(super) fn landed(
        &mut self,
        joined: Result<Landed, tokio::task::JoinError>,
    ) -> Option<Vec<Stamped>> {
        let flight = self.in_flight.take().expect("a write was out");
        let landed = match joined {
            Ok(landed) => landed,
            Err(error) => {
                // Its requests and its connection went with it; their callers hear that
                // the store closed, and the connection was closed, not pooled.
                tracing::error!(%error, "a write's task ended without an answer");
                self.known.values_mut().for_each(TenantCache::forget);
                return Some(Vec::new());
            }
        };
        let Landed { guard, failed } = landed;
        let session = |conn| Session {
            conn,
            tenants: flight.tenants,
            since: flight.since,
        };
        match failed {
            None => {
                self.held = Some(session(guard.take_back()));
                None
            }
            Some((StoreError::Duplicate(_), group)) => {
                self.held = Some(session(guard.take_back()));
                if let Some(known) = self.known.get_mut(&flight.tenant) {
                    known.rewind(flight.from);
                }
                Some(group)
            }
            Some((error, group)) => {
                tracing::warn!(%error, requests = group.len(), "a write failed; retrying its requests");
                drop(guard);
                self.known.values_mut().for_each(TenantCache::forget);
                Some(group)
            }
        }
    }

    /// The connection holding the locks of `tenants` (in order, distinct), taking them
    /// first when some are not held, with what the writer knows of each tenant.
    pub(super) async fn hold(
        &mut self,
        tenants: &[&TenantId],
    ) -> Result<(&mut PgConnection, &mut HashMap<TenantId, TenantCache>), StoreError> {
        debug_assert!(
            self.in_flight.is_none(),
            "the connection is out with a write"
        );
        let covered = self
            .held
            .as_ref()
            .is_some_and(|s| tenants.iter().all(|t| s.tenants.contains(t)));
        if !covered {
            // Taking more locks while holding some could wait in a cycle with another
            // process; let go of all, then take the set in order.
            self.release().await;
            let mut conn = self.pool.acquire().await.map_err(store_error)?;
            // While it holds the locks the connection runs the write over and over, so
            // it is planned once (a generic plan), not once per group: planning it was
            // about a quarter of PostgreSQL's time on this connection. A generic plan is
            // made from the sizes the tables had when it was first used and kept while
            // they grow, so sequential scans are ruled out: every lookup stays a probe
            // of an index. (Loads are sent unprepared and merges set their own mode, so
            // both are still planned at each use.) Both settings go back on release.
            let sql = format!(
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; {}",
                lock_sql(tenants.iter().copied(), "pg_advisory_lock")
            );
            if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
            {
                conn.close_on_drop();
                return Err(store_error(error));
            }
            // Read once the locks are held, so no write can land after it unseen.
            let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
            let generations: Vec<(String, i64)> = match sqlx::query_as(
                "SELECT tenant_id, generation FROM tenant_writes WHERE tenant_id = ANY($1)",
            )
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    conn.close_on_drop();
                    return Err(store_error(error));
                }
            };
            for tenant in tenants {
                let generation = generations
                    .iter()
                    .find(|(t, _)| t == tenant.as_str())
                    .map_or(0, |(_, g)| *g);
                self.known
                    .entry((*tenant).clone())
                    .or_default()
                    .confirm_generation(generation);
            }
            self.held = Some(Session {
                conn,
                tenants: tenants.iter().map(|t| (*t).clone()).collect(),
                since: Instant::now(),
            });
        }
        let session = self.held.as_mut().expect("locks held");
        Ok((&mut *session.conn, &mut self.known))
    }

    /// Lets go of every lock and returns the connection to the pool.
    pub(super) async fn release(&mut self) {
        debug_assert!(
            self.in_flight.is_none(),
            "the connection is out with a write"
        );
        let Some(mut session) = self.held.take() else {
            return;
        };
        let sql = "SELECT pg_advisory_unlock_all(); RESET plan_cache_mode; RESET enable_seqscan";
        if let Err(error) = sqlx::raw_sql(sql).execute(&mut *session.conn).await {
            tracing::warn!(%error, "releasing the writer's tenant locks failed; closing its connection");
            session.conn.close_on_drop();
        }
    }

    /// Drops the connection after a failure: closing it ends its locks and any
    /// transaction it was in. What the writer knew is forgotten, as the failed write may
    /// or may not have landed.
    pub(super) fn abandon(&mut self) {
        if let Some(mut session) = self.held.take() {
            session.conn.close_on_drop();
        }
        self.known.values_mut().for_each(TenantCache::forget);
    }
}

/// Statements taking `lock` (`pg_advisory_lock` or `pg_advisory_xact_lock`) on each
/// tenant, in the order given, as one simple-query string. Tenant ids are letters,
/// digits, `-`, `_` and `.` only (`TenantId::parse`), so they sit in a string literal as
/// they are.
pub(super) fn lock_sql<'t>(tenants: impl Iterator<Item = &'t TenantId>, lock: &str) -> String {
    let mut sql = String::new();
    for tenant in tenants {
        debug_assert!(
            tenant
                .as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
        sql.push_str(&format!(
            "SELECT {lock}(hashtextextended('cfactory.tenant:{}', 0));",
            tenant.as_str()
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::testing::TestDatabase;
    use crate::{PgOptions, PgStore};

    async fn planning(conn: &mut PgConnection) -> (String, String) {
        sqlx::query_as(
            "SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan')",
        )
        .fetch_one(conn)
        .await
        .expect("the settings read")
    }

    #[tokio::test]
    async fn the_writer_plans_generically_while_it_holds_a_connection_and_gives_it_back_as_it_was()
    {
        let database = TestDatabase::create().await;
        PgStore::connect(database.url(), PgOptions::default())
            .await
            .expect("the test database migrates")
            .close()
            .await;
        // One connection, opened as the store opens its own, so the one the writer lets
        // go is the one acquired after it.
        let options = crate::connect_options(database.url()).expect("a valid URL");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("the test database accepts connections");
        let mut locks = TenantLocks::new(pool.clone());
        let tenant = TenantId::parse("default").expect("a valid tenant");
        let (conn, _) = locks.hold(&[&tenant]).await.expect("the lock is taken");
        assert_eq!(
            planning(conn).await,
            ("force_generic_plan".to_owned(), "off".to_owned())
        );
        locks.release().await;
        let mut conn = pool.acquire().await.expect("the connection is back");
        assert_eq!(
            planning(&mut conn).await,
            ("force_custom_plan".to_owned(), "on".to_owned())
        );
    }
}

//! Other processes' writes. Several processes may write one SQLite file (`cfactory ingest`
//! beside a running server, a second `serve`); each one's writer tells only its own change
//! sinks. This watcher tells them about the rest: it asks SQLite whether anyone else
//! committed (`PRAGMA data_version` on a connection of its own, a cheap check), and when
//! so reads what was appended since it last looked to the two logs that name changed
//! items: `events` (ingest) and `item_changes` (hydration, which appends no event). It
//! leaves out the rows this process's writer appended (their sequence ranges, noted after
//! each commit) and hands the other items' keys to the sinks.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cfactory_domain::{CorrelationKey, TenantId};
use sqlx::{Connection, Row, SqliteConnection};

use crate::writer::Sinks;

/// How often the watcher asks whether another process committed.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Events read per look.
const PAGE: i64 = 5_000;

/// Sequence ranges of the rows this process's writer appended to one log, not yet passed
/// by the watcher.
#[derive(Default, Clone)]
pub(crate) struct Ranges(Arc<Mutex<Vec<(i64, i64)>>>);

impl Ranges {
    /// Notes that this process appended rows `first..=last` (after the commit).
    pub(crate) fn note(&self, first: i64, last: i64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((first, last));
    }

    fn contains(&self, seq: i64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&seq))
    }

    /// Forgets the ranges the watcher has passed.
    fn passed(&self, seen: i64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, last)| *last > seen);
    }
}

/// What this process's writer appended: to `events` and to `item_changes`.
#[derive(Default, Clone)]
pub(crate) struct OwnWrites {
    pub(crate) events: Ranges,
    pub(crate) changes: Ranges,
}

/// The last row the watcher read of each log.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub(crate) events: i64,
    pub(crate) changes: i64,
}

/// The two logs, as the statement reading a page after a sequence number.
const EVENTS: &str =
    "SELECT seq, tenant_id, item_key FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";
const CHANGES: &str =
    "SELECT seq, tenant_id, item_key FROM item_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// Watches forever over `conn` (a connection of its own), from the rows after `seen`.
pub(crate) async fn watch(
    mut conn: SqliteConnection,
    mut seen: Seen,
    own: OwnWrites,
    sinks: Sinks,
) {
    let mut version: Option<i64> = None;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = match sqlx::query("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await
            .and_then(|row| row.try_get::<i64, _>(0))
        {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "cannot ask SQLite for other processes' writes");
                continue;
            }
        };
        if version == Some(now) {
            continue;
        }
        version = Some(now);
        follow(&mut conn, EVENTS, &mut seen.events, &own.events, &sinks).await;
        follow(&mut conn, CHANGES, &mut seen.changes, &own.changes, &sinks).await;
    }
}

/// Reads one log from `seen` to its end, telling the sinks of other processes' rows.
async fn follow(
    conn: &mut SqliteConnection,
    sql: &'static str,
    seen: &mut i64,
    own: &Ranges,
    sinks: &Sinks,
) {
    loop {
        match look(conn, sql, *seen, own).await {
            Ok((last, changed)) => {
                tell(sinks, changed);
                own.passed(last);
                let more = last > *seen;
                *seen = last;
                if !more {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read other processes' writes");
                break;
            }
        }
    }
}

/// The rows of the log read by `sql` after `seen` (a page of them) not appended by this
/// process: the last sequence read, and the keys they changed per tenant.
async fn look(
    conn: &mut SqliteConnection,
    sql: &'static str,
    seen: i64,
    own: &Ranges,
) -> Result<(i64, Vec<(TenantId, Vec<CorrelationKey>)>), sqlx::Error> {
    let rows = sqlx::query(sql)
        .bind(seen)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
    let mut last = seen;
    let mut changed: Vec<(TenantId, Vec<CorrelationKey>)> = Vec::new();
    for row in rows {
        let seq: i64 = row.try_get(0)?;
        last = last.max(seq);
        if own.contains(seq) {
            continue;
        }
        let (Ok(tenant), Ok(key)) = (
            TenantId::parse(row.try_get::<&str, _>(1)?),
            CorrelationKey::parse(row.try_get::<&str, _>(2)?),
        ) else {
            continue;
        };
        match changed.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, keys)) => {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            None => changed.push((tenant, vec![key])),
        }
    }
    Ok((last, changed))
}

fn tell(sinks: &Sinks, changed: Vec<(TenantId, Vec<CorrelationKey>)>) {
    if changed.is_empty() {
        return;
    }
    let sinks = sinks.read().unwrap_or_else(PoisonError::into_inner).clone();
    for (tenant, keys) in changed {
        tracing::debug!(tenant = %tenant, items = keys.len(), "another process wrote");
        for sink in &sinks {
            sink.items_changed(&tenant, &keys);
        }
    }
}

/// Opens the watcher's own connection (read-only).
pub(crate) async fn connect(
    options: sqlx::sqlite::SqliteConnectOptions,
) -> Result<SqliteConnection, sqlx::Error> {
    SqliteConnection::connect_with(&options.read_only(true)).await
}

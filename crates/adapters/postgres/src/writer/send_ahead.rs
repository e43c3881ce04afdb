//! Groups applied in memory while the write before them is out, then sent ahead as a
//! write of their own on the writer's connection, which the write's task holds (closing
//! it if the task panics) until the write lands.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use cfactory_domain::correlate::{IngestOutcome, Loaded};
use cfactory_domain::ports::StoreError;
use cfactory_domain::{Batch, CorrelationKey, Identifier, TenantId};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};

use super::WriterInstruments;
use super::feed_holding::Holding;
use super::request_queue::{MAX_GROUP_EVENTS, Stamped};
use super::staged::{Staged, Stored};
use super::statements::write;
use super::tenant_locks::TenantLocks;
use super::write_cache::bound_cache;
use crate::feed::Held;

/// A group applied in memory while the write before it is out: requests for one tenant
/// whose identifiers, and the items they belong to, the writer knows (as of that write
/// landing), so applying them needs nothing from the database.
pub(super) struct Gathering {
    tenant: TenantId,
    batch: Batch,
    /// What is stored for each item the batch took in, as it took it in.
    before: HashMap<CorrelationKey, Stored>,
    pub(super) group: Vec<Stamped>,
    outcomes: Vec<Vec<IngestOutcome>>,
    pub(super) events: usize,
}

/// Applies `stamped` to `next` (starting it when there is none) if the writer knows all
/// it needs; otherwise hands it back untouched.
pub(super) fn gather(
    next: &mut Option<Gathering>,
    locks: &mut TenantLocks,
    stamped: Stamped,
) -> Result<(), Stamped> {
    let tenant = &stamped.request.tenant;
    let size = stamped.received_at.len();
    let fits = match next {
        Some(g) => &g.tenant == tenant && g.events + size <= MAX_GROUP_EVENTS,
        None => size <= MAX_GROUP_EVENTS,
    };
    if !fits || !locks.covers(tenant) {
        return Err(stamped);
    }
    let Some(known) = locks.known.get(tenant) else {
        return Err(stamped);
    };
    let (ids, _) = Batch::needs(&stamped.request.events);
    let ids: BTreeSet<Identifier> = ids
        .into_iter()
        .filter(|id| next.as_ref().is_none_or(|g| !g.batch.has_owner(id)))
        .collect();
    let Some((loaded, missing)) = known.peek(&ids) else {
        return Err(stamped);
    };
    if !missing.is_empty() {
        return Err(stamped);
    }
    let g = next.get_or_insert_with(|| Gathering {
        tenant: tenant.clone(),
        batch: Batch::new(Loaded::default()),
        before: HashMap::new(),
        group: Vec::new(),
        outcomes: Vec::new(),
        events: 0,
    });
    for (key, item) in &loaded.items {
        if !g.before.contains_key(key) {
            g.before.insert(key.clone(), Stored::of(item));
        }
    }
    g.batch.extend(loaded);
    let outcomes = stamped
        .request
        .events
        .iter()
        .zip(&stamped.received_at)
        .map(|(event, at)| g.batch.apply(event, *at))
        .collect();
    g.outcomes.push(outcomes);
    g.events += size;
    g.group.push(stamped);
    Ok(())
}

/// Sends `next` as a write of its own on the writer's connection, which answers its
/// requests once committed, and takes it into what the writer knows now, so the group
/// after it can be applied meanwhile. Hands the group back when it merges items (that
/// write is more than one statement) or the connection holding the tenant's lock is not
/// here.
pub(super) fn send_ahead(
    locks: &mut TenantLocks,
    held: &Arc<Held>,
    instruments: &Arc<WriterInstruments>,
    next: Gathering,
) -> Result<(), Vec<Stamped>> {
    let Gathering {
        tenant,
        batch,
        before,
        group,
        outcomes,
        events,
    } = next;
    let staged = Staged::from(batch.finish());
    if staged.merges() {
        return Err(group);
    }
    let Some(session) = locks.held.take_if(|s| s.tenants.contains(&tenant)) else {
        return Err(group);
    };
    let known = locks.known.entry(tenant.clone()).or_default();
    let from = known.generation;
    known.wrote(&staged);
    bound_cache(&mut locks.known);
    let held = Arc::clone(held);
    let guard = ConnectionCloseGuard(Some(session.conn));
    let task_tenant = tenant.clone();
    let instruments = Arc::clone(instruments);
    let task = tokio::spawn(async move {
        let mut guard = guard;
        let mut holding = Holding::new(&held);
        let started = Instant::now();
        let written = write(guard.conn(), &task_tenant, &staged, &before, &mut holding).await;
        instruments
            .write_seconds
            .record(started.elapsed().as_secs_f64());
        match written {
            Ok(_) => {
                holding.committed();
                instruments.group_events.record(events as f64);
                for (stamped, outcomes) in group.into_iter().zip(outcomes) {
                    let _ = stamped.request.reply.send(Ok(outcomes));
                }
                Landed {
                    guard,
                    failed: None,
                }
            }
            Err(error) => Landed {
                guard,
                failed: Some((error, group)),
            },
        }
    });
    locks.in_flight = Some(InFlightWrite {
        task,
        tenants: session.tenants,
        since: session.since,
        tenant,
        from,
    });
    Ok(())
}

/// A write out on the writer's connection, which its task holds until it lands.
pub(super) struct InFlightWrite {
    pub(super) task: tokio::task::JoinHandle<Landed>,
    /// The tenants the connection holds locked, in order.
    pub(super) tenants: Vec<TenantId>,
    /// Since when it holds them.
    pub(super) since: Instant,
    /// The tenant written, and its generation before the write.
    pub(super) tenant: TenantId,
    pub(super) from: Option<i64>,
}

/// What a write's task gives back: the connection, and, when the write failed, why and
/// the requests it did not answer.
pub(super) struct Landed {
    pub(super) guard: ConnectionCloseGuard,
    pub(super) failed: Option<(StoreError, Vec<Stamped>)>,
}

/// The writer's connection lent to a write's task. Dropped anywhere but in
/// [`ConnectionCloseGuard::take_back`] (the task panicked, or nothing took it back), it is
/// closed rather than pooled, so the tenant locks it holds end with it.
pub(super) struct ConnectionCloseGuard(Option<PoolConnection<Postgres>>);

impl ConnectionCloseGuard {
    fn conn(&mut self) -> &mut PgConnection {
        self.0
            .as_mut()
            .expect("a lent connection is there until it is taken back")
    }

    pub(super) fn take_back(mut self) -> PoolConnection<Postgres> {
        self.0.take().expect("a lent connection is taken back once")
    }
}

impl Drop for ConnectionCloseGuard {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

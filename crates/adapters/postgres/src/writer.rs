//! The write side: one writer task per store applies every ingest request waiting as one
//! write (group commit), and hydration snapshots run in their own transaction. Both hold
//! a per-tenant advisory lock while they read and write, so processes sharing the
//! database serialise their writes to a tenant and never fork an item.
//!
//! The writer keeps its locks at session level on a connection of its own while work keeps
//! arriving (see [`Locks`]): with the tenant held, its loads need no transaction and a
//! group's write, one statement, commits by itself, so a group costs two round trips. It
//! also remembers what it loaded and wrote (see [`Known`]), so a group over items it knows
//! costs one, and such a group is applied in memory while the write before it is out
//! (see [`Line`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfactory_domain::correlate::{ChangeSet, IngestOutcome, Loaded};
use cfactory_domain::ports::StoreError;
use cfactory_domain::upstream::TaskList;
use cfactory_domain::{
    Batch, Clock, CompletionEvent, CorrelationKey, EventId, Identifier, Service, StageName,
    TenantId, WorkItem,
};
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::store_error;
use crate::feed::{self, Held};
use crate::rows::{
    ItemColumns, UsageColumns, UsageRow, item_from_doc, key_from_column, open_column, pg_text,
    usage_rows,
};

pub(crate) use crate::rows::to_micros;

/// A group stops growing once it holds this many events.
const MAX_GROUP_EVENTS: usize = 512;
/// Requests waiting for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 4096;
/// How long the writer keeps its tenant locks with nothing queued before it lets them go.
const IDLE_HOLD: Duration = Duration::from_millis(5);
/// The longest the writer keeps its tenant locks at a stretch, so that another process
/// (or this one's snapshot polls) waiting for a tenant gets its turn.
const SLICE: Duration = Duration::from_millis(50);

struct IngestRequest {
    tenant: TenantId,
    events: Vec<CompletionEvent>,
    reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
}

enum Job {
    Ingest(IngestRequest),
    Close(oneshot::Sender<()>),
}

/// The handle on a store's writer task.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

impl Writer {
    /// Starts the writer task; it holds what it writes in `held` for the change feed.
    pub fn start(pool: PgPool, clock: Arc<dyn Clock>, held: Arc<Held>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(pool, clock, held, queue));
        Self {
            jobs,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues `events` and waits for their commit.
    pub async fn ingest(
        &self,
        tenant: TenantId,
        events: Vec<CompletionEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = IngestRequest {
            tenant,
            events,
            reply,
        };
        self.jobs
            .send(Job::Ingest(request))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Lets the writer commit what is queued, then stops it.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// A request with its arrival stamps.
struct Stamped {
    request: IngestRequest,
    received_at: Vec<DateTime<Utc>>,
}

async fn run(pool: PgPool, clock: Arc<dyn Clock>, held: Arc<Held>, mut queue: mpsc::Receiver<Job>) {
    let mut last_received: Option<DateTime<Utc>> = None;
    let mut stamp = |request: IngestRequest| {
        let now = to_micros(clock.now());
        let mut received = last_received.map_or(now, |t| t.max(now));
        let received_at = request
            .events
            .iter()
            .map(|_| {
                received += chrono::Duration::microseconds(1);
                received
            })
            .collect();
        last_received = Some(received);
        Stamped {
            request,
            received_at,
        }
    };
    let mut line = Line {
        locks: Locks::new(pool),
        held,
        next: None,
        waiting: VecDeque::new(),
    };
    let mut closing = None;
    let mut ending = false;
    loop {
        let job = if let Some(flight) = &mut line.locks.flight {
            // A write is out: take requests as they come until it lands.
            tokio::select! {
                joined = &mut flight.task => {
                    line.landed(joined);
                    line.send().await;
                    continue;
                }
                job = queue.recv(), if !ending => job,
            }
        } else if line.idle() {
            if ending {
                break;
            }
            if line.locks.holding() {
                match tokio::time::timeout(IDLE_HOLD, queue.recv()).await {
                    Ok(job) => job,
                    Err(_) => {
                        line.locks.release().await;
                        continue;
                    }
                }
            } else {
                queue.recv().await
            }
        } else {
            // Nothing out and work in hand: send it, then see what came meanwhile.
            line.send().await;
            continue;
        };
        match job {
            Some(Job::Ingest(request)) => line.take(stamp(request)),
            Some(Job::Close(done)) => {
                closing = Some(done);
                ending = true;
            }
            None => ending = true,
        }
        if line.locks.flight.is_none() {
            // Take whatever else is queued before sending.
            while !ending {
                match queue.try_recv() {
                    Ok(Job::Ingest(request)) => line.take(stamp(request)),
                    Ok(Job::Close(done)) => {
                        closing = Some(done);
                        ending = true;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    line.locks.release().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// The writer's work in hand. Requests whose identifiers the writer already knows are
/// applied in memory while the write before them is out (see [`Gathering`]), then sent
/// as soon as it lands, so correlating one group overlaps writing the one before. Every
/// other request waits its turn and goes through a load in [`commit_and_reply`]. Either
/// way, requests are committed in the order they arrived.
struct Line {
    locks: Locks,
    held: Arc<Held>,
    /// The next group, applied in memory.
    next: Option<Gathering>,
    /// Requests after `next`, to commit with a load, in arrival order.
    waiting: VecDeque<Stamped>,
}

impl Line {
    fn idle(&self) -> bool {
        self.next.is_none() && self.waiting.is_empty()
    }

    /// Takes a request into `next` when it can be applied there, else makes it wait.
    fn take(&mut self, stamped: Stamped) {
        let stamped = if self.waiting.is_empty() {
            match gather(&mut self.next, &mut self.locks, stamped) {
                Ok(()) => return,
                Err(stamped) => stamped,
            }
        } else {
            stamped
        };
        self.waiting.push_back(stamped);
    }

    /// Sends what is in hand with nothing out: `next` as a write that flies on its own,
    /// else the waiting requests (up to [`MAX_GROUP_EVENTS`] of them) committed here.
    async fn send(&mut self) {
        debug_assert!(self.locks.flight.is_none());
        if self.locks.held_for() > SLICE {
            // Another process (or a snapshot poll) may be waiting for a tenant.
            self.unwind();
            self.locks.release().await;
        }
        if let Some(next) = self.next.take() {
            match fly(&mut self.locks, &self.held, next) {
                Ok(()) => return,
                Err(group) => self.wait_first(group),
            }
        }
        let mut group = Vec::new();
        let mut size = 0;
        while let Some(stamped) = self.waiting.pop_front() {
            size += stamped.received_at.len();
            group.push(stamped);
            if self
                .waiting
                .front()
                .is_none_or(|s| size + s.received_at.len() > MAX_GROUP_EVENTS)
            {
                break;
            }
        }
        if !group.is_empty() {
            commit_and_reply(&mut self.locks, &self.held, group).await;
        }
    }

    /// Takes back the write that was out. When it failed, its group and everything
    /// applied after it go through a load again, in order.
    fn landed(&mut self, joined: Result<Landed, tokio::task::JoinError>) {
        let Some(failed) = self.locks.landed(joined) else {
            return;
        };
        self.unwind();
        self.wait_first(failed);
    }

    /// Returns `next` to the waiting requests, in front.
    fn unwind(&mut self) {
        if let Some(next) = self.next.take() {
            self.wait_first(next.group);
        }
    }

    /// Puts `group` in front of the waiting requests, in its order.
    fn wait_first(&mut self, group: Vec<Stamped>) {
        for stamped in group.into_iter().rev() {
            self.waiting.push_front(stamped);
        }
    }
}

/// A group applied in memory while the write before it is out: requests for one tenant
/// whose identifiers, and the items they belong to, the writer knows (as of that write
/// landing), so applying them needs nothing from the database.
struct Gathering {
    tenant: TenantId,
    batch: Batch,
    /// What is stored for each item the batch took in, as it took it in.
    before: HashMap<CorrelationKey, Stored>,
    group: Vec<Stamped>,
    outcomes: Vec<Vec<IngestOutcome>>,
    events: usize,
}

/// Applies `stamped` to `next` (starting it when there is none) if the writer knows all
/// it needs; otherwise hands it back untouched.
fn gather(
    next: &mut Option<Gathering>,
    locks: &mut Locks,
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
    let Some((loaded, missing)) = known.vouch(&ids) else {
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
fn fly(locks: &mut Locks, held: &Arc<Held>, next: Gathering) -> Result<(), Vec<Stamped>> {
    let Gathering {
        tenant,
        batch,
        before,
        group,
        outcomes,
        ..
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
    bound(&mut locks.known);
    let held = Arc::clone(held);
    let lent = Lent(Some(session.conn));
    let flying = tenant.clone();
    let task = tokio::spawn(async move {
        let mut lent = lent;
        let mut holding = Holding::new(&held);
        match write(lent.conn(), &flying, &staged, &before, &mut holding).await {
            Ok(_) => {
                holding.committed();
                for (stamped, outcomes) in group.into_iter().zip(outcomes) {
                    let _ = stamped.request.reply.send(Ok(outcomes));
                }
                Landed { lent, failed: None }
            }
            Err(error) => Landed {
                lent,
                failed: Some((error, group)),
            },
        }
    });
    locks.flight = Some(Flight {
        task,
        tenants: session.tenants,
        since: session.since,
        tenant,
        from,
    });
    Ok(())
}

/// A write out on the writer's connection, which its task holds until it lands.
struct Flight {
    task: tokio::task::JoinHandle<Landed>,
    /// The tenants the connection holds locked, in order.
    tenants: Vec<TenantId>,
    /// Since when it holds them.
    since: Instant,
    /// The tenant written, and its generation before the write.
    tenant: TenantId,
    from: Option<i64>,
}

/// What a write's task gives back: the connection, and, when the write failed, why and
/// the requests it did not answer.
struct Landed {
    lent: Lent,
    failed: Option<(StoreError, Vec<Stamped>)>,
}

/// The writer's connection lent to a write's task. Dropped anywhere but in
/// [`Lent::back`] (the task panicked, or nothing took it back), it is closed rather
/// than pooled, so the tenant locks it holds end with it.
struct Lent(Option<PoolConnection<Postgres>>);

impl Lent {
    fn conn(&mut self) -> &mut PgConnection {
        self.0
            .as_mut()
            .expect("a lent connection is there until it is taken back")
    }

    fn back(mut self) -> PoolConnection<Postgres> {
        self.0.take().expect("a lent connection is taken back once")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}

/// The writer's tenant locks: session-level advisory locks on a pooled connection it
/// keeps while it holds them. A connection that failed mid-write is closed, not
/// returned, which also ends its locks.
struct Locks {
    pool: PgPool,
    held: Option<Session>,
    /// The write out on the held connection, which is then not in `held`.
    flight: Option<Flight>,
    /// What the writer knows of each tenant it wrote to.
    known: HashMap<TenantId, Known>,
}

struct Session {
    conn: PoolConnection<Postgres>,
    /// The tenants locked, in order.
    tenants: Vec<TenantId>,
    since: Instant,
}

impl Locks {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            held: None,
            flight: None,
            known: HashMap::new(),
        }
    }

    fn holding(&self) -> bool {
        self.held.is_some() || self.flight.is_some()
    }

    /// The tenants locked and since when, whether the connection is here or out with a
    /// write.
    fn lease(&self) -> Option<(&[TenantId], Instant)> {
        match (&self.held, &self.flight) {
            (Some(session), _) => Some((&session.tenants, session.since)),
            (None, Some(flight)) => Some((&flight.tenants, flight.since)),
            (None, None) => None,
        }
    }

    /// Whether `tenant` is among the locks held.
    fn covers(&self, tenant: &TenantId) -> bool {
        self.lease()
            .is_some_and(|(tenants, _)| tenants.contains(tenant))
    }

    /// How long the current locks have been held.
    fn held_for(&self) -> Duration {
        self.lease()
            .map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }

    /// Takes the connection back from the write that was out. When the write failed,
    /// what the writer took in from it is taken back too, and its unanswered requests
    /// are returned (none when its task panicked, taking them along). A write turned
    /// back by the events' unique key (an event id taken as new was recorded) left the
    /// connection as it was; any other failure closes it.
    fn landed(&mut self, joined: Result<Landed, tokio::task::JoinError>) -> Option<Vec<Stamped>> {
        let flight = self.flight.take().expect("a write was out");
        let landed = match joined {
            Ok(landed) => landed,
            Err(error) => {
                // Its requests and its connection went with it; their callers hear that
                // the store closed, and the connection was closed, not pooled.
                tracing::error!(%error, "a write's task ended without an answer");
                self.known.values_mut().for_each(Known::forget);
                return Some(Vec::new());
            }
        };
        let Landed { lent, failed } = landed;
        let session = |conn| Session {
            conn,
            tenants: flight.tenants,
            since: flight.since,
        };
        match failed {
            None => {
                self.held = Some(session(lent.back()));
                None
            }
            Some((StoreError::Duplicate(_), group)) => {
                self.held = Some(session(lent.back()));
                if let Some(known) = self.known.get_mut(&flight.tenant) {
                    known.rewind(flight.from);
                }
                Some(group)
            }
            Some((error, group)) => {
                tracing::warn!(%error, requests = group.len(), "a write failed; retrying its requests");
                drop(lent);
                self.known.values_mut().for_each(Known::forget);
                Some(group)
            }
        }
    }

    /// The connection holding the locks of `tenants` (in order, distinct), taking them
    /// first when some are not held, with what the writer knows of each tenant.
    async fn hold(
        &mut self,
        tenants: &[&TenantId],
    ) -> Result<(&mut PgConnection, &mut HashMap<TenantId, Known>), StoreError> {
        debug_assert!(self.flight.is_none(), "the connection is out with a write");
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
                    .at(generation);
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
    async fn release(&mut self) {
        debug_assert!(self.flight.is_none(), "the connection is out with a write");
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
    fn abandon(&mut self) {
        if let Some(mut session) = self.held.take() {
            session.conn.close_on_drop();
        }
        self.known.values_mut().for_each(Known::forget);
    }
}

/// The most items the writer remembers, over all tenants; past it, it starts over.
const KNOWN_ITEMS: usize = 10_000;
/// Groups loaded in full, event ids included, after a recorded event id came back.
const CAUTIOUS_GROUPS: u32 = 64;

/// What the writer knows of a tenant from its own loads and writes: which item owns an
/// identifier and the items it wrote, as stored. Every write to a tenant moves its
/// generation (in `tenant_writes`) on by one in the same transaction, so this stays true
/// exactly while the generation read on taking the tenant's lock is the one it expects.
/// A group whose identifiers and items are all known skips the load; one with some
/// unknown identifiers loads only those, and only the items not in hand. Either way its
/// event ids go unchecked, and the events table's unique key turns a recorded one back
/// (the group is then loaded in full and applied again).
#[derive(Default)]
struct Known {
    /// The generation this is true at; `None` when not known.
    generation: Option<i64>,
    owners: HashMap<Identifier, CorrelationKey>,
    items: HashMap<CorrelationKey, Arc<WorkItem>>,
    /// Groups still to load in full.
    cautious: u32,
}

impl Known {
    fn forget(&mut self) {
        self.generation = None;
        self.clear();
    }

    /// Lets go of everything known; what is left (nothing) stays true.
    fn clear(&mut self) {
        self.owners.clear();
        self.items.clear();
    }

    /// The tenant's generation as read under its lock: any other than the one this is
    /// true at means someone else wrote, and everything known goes.
    fn at(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.forget();
            self.generation = Some(generation);
        }
    }

    /// What the writer knows towards a load of `ids`: the owners and items it holds, and
    /// the identifiers it must still look up. `None` when it can vouch for nothing.
    fn recall(&mut self, ids: &BTreeSet<Identifier>) -> Option<(Loaded, BTreeSet<Identifier>)> {
        if self.cautious > 0 {
            self.cautious -= 1;
            return None;
        }
        self.vouch(ids)
    }

    /// As [`Known::recall`], without counting down the groups to load in full.
    fn vouch(&self, ids: &BTreeSet<Identifier>) -> Option<(Loaded, BTreeSet<Identifier>)> {
        if self.cautious > 0 {
            return None;
        }
        self.generation?;
        let mut loaded = Loaded::default();
        let mut missing = BTreeSet::new();
        for id in ids {
            let owned = self
                .owners
                .get(id)
                .and_then(|key| Some((key, self.items.get(key)?)));
            let Some((key, item)) = owned else {
                missing.insert(id.clone());
                continue;
            };
            if !loaded.items.contains_key(key) {
                loaded.items.insert(key.clone(), WorkItem::clone(item));
            }
            loaded.owners.insert(id.clone(), key.clone());
        }
        Some((loaded, missing))
    }

    /// Remembers the owners a load found.
    fn learn(&mut self, loaded: &Loaded) {
        if self.generation.is_some() {
            self.owners.extend(
                loaded
                    .owners
                    .iter()
                    .map(|(id, key)| (id.clone(), key.clone())),
            );
        }
    }

    /// Takes in a write: one committed, or one sent ahead (see [`Flight`]), which is
    /// taken back with [`Known::rewind`] or [`Known::forget`] if it fails.
    fn wrote(&mut self, staged: &Staged) {
        let Some(generation) = self.generation else {
            return;
        };
        if !staged.writes_anything() {
            return;
        }
        self.generation = Some(generation + 1);
        // Merges repoint identifiers the change set does not list; start over.
        if staged.merges() {
            self.clear();
        }
        self.owners.extend(staged.changes.owners.iter().cloned());
        self.items.extend(
            staged
                .items
                .iter()
                .map(|item| (item.correlation_key.clone(), Arc::clone(item))),
        );
    }

    /// Back to knowing nothing at `generation`, the one before a write that did not land,
    /// with the next groups loaded in full.
    fn rewind(&mut self, generation: Option<i64>) {
        self.forget();
        self.generation = generation;
        self.cautious = CAUTIOUS_GROUPS;
    }
}

/// Commits a group and answers each waiter. When the group fails, each request is tried
/// on its own, so one bad request fails alone and the others still commit.
async fn commit_and_reply(locks: &mut Locks, held: &Held, group: Vec<Stamped>) {
    let all: Vec<&Stamped> = group.iter().collect();
    let results = match commit_group(locks, held, &all).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if group.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, requests = group.len(), "group commit failed; retrying each request alone");
            let mut results = Vec::with_capacity(group.len());
            for one in &group {
                results.push(
                    commit_group(locks, held, &[one])
                        .await
                        .map(|mut o| o.remove(0)),
                );
            }
            results
        }
    };
    for (stamped, result) in group.into_iter().zip(results) {
        if let Err(error) = &result {
            tracing::error!(%error, tenant = %stamped.request.tenant, "ingest failed");
        }
        let _ = stamped.request.reply.send(result);
    }
}

/// One write over `group`: each tenant's events, in arrival order, through one
/// [`Batch`]. Returns each request's outcomes. On failure the writer's connection is
/// dropped, so nothing half-done survives it.
async fn commit_group(
    locks: &mut Locks,
    held: &Held,
    group: &[&Stamped],
) -> Result<Vec<Vec<IngestOutcome>>, StoreError> {
    let result = try_commit_group(locks, held, group).await;
    if result.is_err() {
        locks.abandon();
    }
    result
}

async fn try_commit_group(
    locks: &mut Locks,
    held: &Held,
    group: &[&Stamped],
) -> Result<Vec<Vec<IngestOutcome>>, StoreError> {
    let mut by_tenant: BTreeMap<&TenantId, Vec<usize>> = BTreeMap::new();
    for (i, stamped) in group.iter().enumerate() {
        by_tenant
            .entry(&stamped.request.tenant)
            .or_default()
            .push(i);
    }
    let tenants: Vec<&TenantId> = by_tenant.keys().copied().collect();
    let (conn, known) = locks.hold(&tenants).await?;
    match apply_group(conn, known, held, group, &by_tenant, true).await? {
        Applied::Committed(outcomes) => Ok(outcomes),
        Applied::Again => {
            for tenant in &tenants {
                if let Some(known) = known.get_mut(*tenant) {
                    known.cautious = CAUTIOUS_GROUPS;
                }
            }
            match apply_group(conn, known, held, group, &by_tenant, false).await? {
                Applied::Committed(outcomes) => Ok(outcomes),
                Applied::Again => Err(StoreError::Unexpected(
                    "a group loaded in full met a recorded event id".into(),
                )),
            }
        }
    }
}

/// How [`apply_group`] ended.
enum Applied {
    /// Committed, with each request's outcomes.
    Committed(Vec<Vec<IngestOutcome>>),
    /// An event id taken as new from what the writer knew was already recorded; nothing
    /// was written.
    Again,
}

/// Loads (or recalls, when `recall`), computes and writes `group` under the tenant locks
/// `conn` holds.
async fn apply_group(
    conn: &mut PgConnection,
    known: &mut HashMap<TenantId, Known>,
    held: &Held,
    group: &[&Stamped],
    by_tenant: &BTreeMap<&TenantId, Vec<usize>>,
    recall: bool,
) -> Result<Applied, StoreError> {
    let mut outcomes: Vec<Vec<IngestOutcome>> = vec![Vec::new(); group.len()];
    // With the tenants locked, nothing else changes them: load and compute every change
    // set first, then write.
    let mut changed = Vec::with_capacity(by_tenant.len());
    let mut guessed = false;
    for (tenant, indices) in by_tenant {
        let mut ids: BTreeSet<Identifier> = BTreeSet::new();
        let mut event_ids: BTreeSet<EventId> = BTreeSet::new();
        for &i in indices {
            let (more_ids, more_event_ids) = Batch::needs(&group[i].request.events);
            ids.extend(more_ids);
            event_ids.extend(more_event_ids);
        }
        let tenant_known = known.entry((*tenant).clone()).or_default();
        let recalled = if recall {
            tenant_known.recall(&ids)
        } else {
            None
        };
        let loaded = match recalled {
            Some((mut loaded, missing)) => {
                guessed |= !event_ids.is_empty();
                if !missing.is_empty() {
                    // Only what is not known is looked up, without the items in hand.
                    let have: Vec<&str> = loaded.items.keys().map(|k| k.as_str()).collect();
                    let more = load(&mut *conn, tenant, missing, BTreeSet::new(), &have).await?;
                    tenant_known.learn(&more);
                    loaded.owners.extend(more.owners);
                    loaded.items.extend(more.items);
                }
                loaded
            }
            None => {
                let loaded = load(&mut *conn, tenant, ids, event_ids, &[]).await?;
                tenant_known.learn(&loaded);
                loaded
            }
        };
        let before = stored(&loaded);
        let mut batch = Batch::new(loaded);
        for &i in indices {
            let Stamped {
                request,
                received_at,
            } = group[i];
            outcomes[i] = request
                .events
                .iter()
                .zip(received_at)
                .map(|(event, at)| batch.apply(event, *at))
                .collect();
        }
        changed.push((*tenant, Staged::from(batch.finish()), before));
    }
    let mut holding = Holding::new(held);
    // One tenant's write without merges is one statement, atomic and committed on its
    // own; anything more runs in a transaction.
    let alone = matches!(changed.as_slice(), [(_, staged, _)] if !staged.merges());
    // A failure drops the connection, which rolls back an open transaction.
    if !alone {
        sqlx::raw_sql("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    let mut wrote = Vec::with_capacity(changed.len());
    for (tenant, staged, before) in changed {
        match write(&mut *conn, tenant, &staged, &before, &mut holding).await {
            Ok(_) => wrote.push((tenant, staged)),
            // The only unique key a write can break is the events' (tenant, event id).
            Err(StoreError::Duplicate(_)) if guessed => {
                if !alone {
                    sqlx::raw_sql("ROLLBACK")
                        .execute(&mut *conn)
                        .await
                        .map_err(store_error)?;
                }
                return Ok(Applied::Again);
            }
            Err(error) => return Err(error),
        }
    }
    if !alone {
        sqlx::raw_sql("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    holding.committed();
    for (tenant, staged) in wrote {
        if let Some(known) = known.get_mut(tenant) {
            known.wrote(&staged);
        }
    }
    bound(known);
    Ok(Applied::Committed(outcomes))
}

/// Keeps what the writer knows under [`KNOWN_ITEMS`]: past it, it starts over.
fn bound(known: &mut HashMap<TenantId, Known>) {
    if known.values().map(|k| k.items.len()).sum::<usize>() > KNOWN_ITEMS {
        known.values_mut().for_each(Known::clear);
    }
}

/// Applies one poll of `service`'s task list in its own transaction; returns the keys of
/// the items it rewrote.
pub(crate) async fn apply_snapshots(
    pool: &PgPool,
    held: &Held,
    tenant: &TenantId,
    service: Service,
    list: &TaskList,
    poll_time: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> Result<Vec<CorrelationKey>, StoreError> {
    let begin = format!(
        "BEGIN; {}",
        lock_sql(std::iter::once(tenant), "pg_advisory_xact_lock")
    );
    let mut tx = pool
        .begin_with(sqlx::AssertSqlSafe(begin))
        .await
        .map_err(store_error)?;
    let ids = Batch::needs_snapshots(&list.tasks).into_iter().collect();
    let mut loaded = load(&mut tx, tenant, ids, BTreeSet::new(), &[]).await?;
    if list.complete
        && let Some(stage) = StageName::of(service)
    {
        // Items whose stage of this service is still live, so missing tasks can clear.
        let sql = format!(
            "SELECT key, doc::text FROM workitems WHERE tenant_id = $1 AND {}",
            open_column(stage)
        );
        let live: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        for (key, doc) in live {
            let key = key_from_column(&key)?;
            if let std::collections::hash_map::Entry::Vacant(slot) = loaded.items.entry(key) {
                slot.insert(item_from_doc(&doc)?);
            }
        }
    }
    let before = stored(&loaded);
    let mut batch = Batch::new(loaded);
    for snap in &list.tasks {
        batch.apply_snapshot(snap, snap.updated_at.unwrap_or(poll_time), received_at);
    }
    if list.complete {
        let present: BTreeSet<String> = list.tasks.iter().map(|t| t.task_id.clone()).collect();
        batch.clear_missing(service, &present);
    }
    let mut holding = Holding::new(held);
    let staged = Staged::from(batch.finish());
    write(&mut tx, tenant, &staged, &before, &mut holding).await?;
    tx.commit().await.map_err(store_error)?;
    holding.committed();
    Ok(staged.keys())
}

/// Statements taking `lock` (`pg_advisory_lock` or `pg_advisory_xact_lock`) on each
/// tenant, in the order given, as one simple-query string. Tenant ids are letters,
/// digits, `-`, `_` and `.` only (`TenantId::parse`), so they sit in a string literal as
/// they are.
fn lock_sql<'t>(tenants: impl Iterator<Item = &'t TenantId>, lock: &str) -> String {
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

/// Loads what a batch can touch: the owners of `ids`, their items (but for those whose
/// keys are in `have`, already in hand), and which of `event_ids` are already recorded,
/// in one round trip.
async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: BTreeSet<Identifier>,
    event_ids: BTreeSet<EventId>,
    have: &[&str],
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    if ids.is_empty() && event_ids.is_empty() {
        return Ok(loaded);
    }
    // Stored identifiers are NUL-free; map each back to the one the batch asks for.
    let wanted: HashMap<String, Identifier> = ids
        .into_iter()
        .map(|id| (pg_text(id.as_str()).into_owned(), id))
        .collect();
    let idents: Vec<&str> = wanted.keys().map(String::as_str).collect();
    let events: Vec<&str> = event_ids.iter().map(EventId::as_str).collect();
    // Rows: (0, identifier, its item's key), (1, key, item document) for each owner not
    // in `have`, (2, event id, key).
    // Each identifier and item is looked up on its own through the primary key (the
    // LATERAL ... LIMIT 1 cannot be flattened). Written as `ident = ANY($2)`, a planner
    // whose statistics lag a young, fast-growing table scans the whole tenant instead.
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "WITH o AS (SELECT i.ident, i.item_key FROM UNNEST($2::text[]) AS x(ident) \
                    CROSS JOIN LATERAL (SELECT ident, item_key FROM identifiers \
                        WHERE tenant_id = $1 AND ident = x.ident LIMIT 1) AS i) \
         SELECT 0, ident, item_key FROM o \
         UNION ALL \
         SELECT 1, w.key, w.doc::text COLLATE \"C\" \
          FROM (SELECT DISTINCT item_key FROM o WHERE item_key <> ALL($4)) AS k \
          CROSS JOIN LATERAL (SELECT key, doc FROM workitems \
              WHERE tenant_id = $1 AND key = k.item_key LIMIT 1) AS w \
         UNION ALL \
         SELECT 2, e.event_id, e.item_key FROM UNNEST($3::text[]) AS x(event_id) \
          CROSS JOIN LATERAL (SELECT event_id, item_key FROM events \
              WHERE tenant_id = $1 AND event_id = x.event_id LIMIT 1) AS e",
    )
    // Parsed and planned at each use, never kept: the writer's connection plans what it
    // keeps generically, and a generic plan of these lookups made while the tables were
    // nearly empty may pick an index that matches only the tenant and keep it.
    .persistent(false)
    .bind(tenant.as_str())
    .bind(&idents)
    .bind(&events)
    .bind(have)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    for (kind, a, b) in rows {
        match kind {
            0 => {
                if let Some(id) = wanted.get(&a) {
                    loaded.owners.insert(id.clone(), key_from_column(&b)?);
                }
            }
            1 => {
                loaded
                    .items
                    .insert(key_from_column(&a)?, item_from_doc(&b)?);
            }
            _ => {
                let id = EventId::parse(&a).map_err(|e| crate::error::corrupt("event id", e))?;
                loaded.seen.insert(id, key_from_column(&b)?);
            }
        }
    }
    Ok(loaded)
}

/// The writes of one transaction whose items are held for the change feed; dropped
/// before [`Holding::committed`], it lets them go.
struct Holding<'h> {
    held: &'h Held,
    writes: Vec<u64>,
}

impl<'h> Holding<'h> {
    fn new(held: &'h Held) -> Self {
        Self {
            held,
            writes: Vec::new(),
        }
    }

    fn committed(mut self) {
        self.writes.clear();
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        for seq in self.writes.drain(..) {
            self.held.release(seq);
        }
    }
}

/// What is stored for a loaded item beside its document.
struct Stored {
    /// Its `usage` rows: a write compares against them and rewrites only those that changed.
    usage: Vec<UsageRow>,
    /// Its `workitem_search` text, rewritten only when it changes.
    search_text: String,
}

impl Stored {
    fn of(item: &WorkItem) -> Self {
        Self {
            usage: usage_rows(item),
            search_text: pg_text(&item.search_text()).into_owned(),
        }
    }
}

fn stored(loaded: &Loaded) -> HashMap<CorrelationKey, Stored> {
    loaded
        .items
        .iter()
        .map(|(key, item)| (key.clone(), Stored::of(item)))
        .collect()
}

/// The `usage` rows a change set rewrites: every row of the items in `whole` (new items,
/// items merged into or away), and elsewhere only the rows whose task is new, changed
/// or gone.
#[derive(Default)]
struct UsageChanges<'k> {
    /// Items whose rows are all deleted, then written again.
    whole: Vec<&'k str>,
    /// Single rows deleted: item key, service, task id.
    drop_keys: Vec<&'k str>,
    drop_services: Vec<String>,
    drop_tasks: Vec<String>,
    /// Rows inserted.
    rows: UsageColumns,
}

impl<'k> UsageChanges<'k> {
    fn of(
        changes: &'k ChangeSet,
        upserts: &'k [Arc<WorkItem>],
        before: &HashMap<CorrelationKey, Stored>,
    ) -> Self {
        let mut out = Self::default();
        let merged: BTreeSet<&CorrelationKey> = changes
            .redirects
            .iter()
            .flat_map(|(from, to)| [from, to])
            .chain(&changes.deleted)
            .collect();
        for key in &changes.deleted {
            out.whole.push(key.as_str());
        }
        let distinct = |rows: &[UsageRow]| {
            let tasks: BTreeSet<(&str, &str)> = rows
                .iter()
                .map(|r| (r.service.as_str(), r.task_id.as_str()))
                .collect();
            tasks.len() == rows.len()
        };
        for item in upserts {
            let key = item.correlation_key.as_str();
            let after = usage_rows(item);
            let diffable = |old: &&Vec<UsageRow>| {
                !merged.contains(&item.correlation_key) && distinct(old) && distinct(&after)
            };
            let old = before.get(&item.correlation_key).map(|s| &s.usage);
            let Some(old) = old.filter(diffable) else {
                out.whole.push(key);
                after.into_iter().for_each(|row| out.rows.push(key, row));
                continue;
            };
            // A changed task's old row goes and its new row comes.
            for row in old {
                if !after.iter().any(|a| a == row) {
                    out.drop_keys.push(key);
                    out.drop_services.push(row.service.clone());
                    out.drop_tasks.push(row.task_id.clone());
                }
            }
            for row in after {
                if !old.iter().any(|o| o == &row) {
                    out.rows.push(key, row);
                }
            }
        }
        out
    }
}

/// A change set ready for [`write`], its rewritten items shared: the write binds them,
/// and the writer's memory and the change feed keep them.
struct Staged {
    /// The change set without its upserts.
    changes: ChangeSet,
    /// The items rewritten, as they will be stored.
    items: Vec<Arc<WorkItem>>,
}

impl From<ChangeSet> for Staged {
    fn from(mut changes: ChangeSet) -> Self {
        let items = std::mem::take(&mut changes.upserts)
            .into_iter()
            .map(Arc::new)
            .collect();
        Self { changes, items }
    }
}

impl Staged {
    /// Whether the write merges items (and so needs more than one statement).
    fn merges(&self) -> bool {
        !self.changes.redirects.is_empty() || !self.changes.deleted.is_empty()
    }

    /// Whether [`write`] writes anything, and so moves the tenant's generation on by one.
    fn writes_anything(&self) -> bool {
        self.merges()
            || !self.items.is_empty()
            || !self.changes.owners.is_empty()
            || !self.changes.events.is_empty()
    }

    fn keys(&self) -> Vec<CorrelationKey> {
        self.items
            .iter()
            .map(|i| i.correlation_key.clone())
            .collect()
    }
}

/// Writes a change set and announces it: merges (rare) first, then everything else —
/// usage, items, their search text, identifiers, events, the tenant's generation and the
/// change notices — in one statement, one round trip. `before` holds what is stored for
/// the items loaded. The items written are held (in `holding`) for this process's change
/// feed.
async fn write(
    conn: &mut PgConnection,
    tenant: &TenantId,
    staged: &Staged,
    before: &HashMap<CorrelationKey, Stored>,
    holding: &mut Holding<'_>,
) -> Result<bool, StoreError> {
    if !staged.writes_anything() {
        return Ok(false);
    }
    let Staged {
        changes,
        items: written,
    } = staged;
    let mut heard: Vec<CorrelationKey> =
        written.iter().map(|i| i.correlation_key.clone()).collect();
    heard.extend(changes.deleted.iter().cloned());
    let seq = if written.is_empty() {
        None
    } else {
        holding.held.reserve()
    };
    let notices = feed::payloads(tenant, &heard, seq.map(|seq| (holding.held, seq)))?;
    let tenant = tenant.as_str();
    if staged.merges() {
        merge(conn, tenant, changes).await?;
    }
    let mut items = ItemColumns::default();
    for item in written {
        items.push(item)?;
    }
    let usage_changes = UsageChanges::of(changes, written, before);
    let usage = &usage_changes.rows;
    let [has_plan, has_code, has_test] = &items.has;
    let [open_plan, open_code, open_test] = &items.open;
    let owners = OwnerColumns::of(changes);
    let events = EventColumns::of(changes);
    let mut search_keys = Vec::new();
    let mut search_texts = Vec::new();
    for item in written {
        let text = pg_text(&item.search_text()).into_owned();
        if before
            .get(&item.correlation_key)
            .is_none_or(|stored| stored.search_text != text)
        {
            search_keys.push(item.correlation_key.as_str());
            search_texts.push(text);
        }
    }
    // Held before the statement runs: it may commit on its own, and its notice must
    // find the items.
    if let Some(seq) = seq {
        holding.held.hold(seq, written);
        holding.writes.push(seq);
    }
    // Every sub-statement reads the snapshot taken before any of them runs, so the
    // DELETEs of old usage rows (all of an item's, or one task's, through their row ids)
    // never see the rows inserted beside them. Each looks its rows up item by item
    // through `usage_item`, so the plan, made once, holds however large the table
    // grows. Empty arrays make a sub-statement a no-op, so the text stays one prepared
    // statement.
    // The events' WITH ORDINALITY keeps sequence numbers in arrival order.
    sqlx::query(
        "WITH old_usage AS ( \
             DELETE FROM usage WHERE ctid = ANY(ARRAY( \
                 SELECT u.ctid FROM UNNEST($2::text[]) AS k(item_key) \
                 CROSS JOIN LATERAL (SELECT ctid FROM usage WHERE tenant_id = $1 \
                     AND item_key = k.item_key OFFSET 0) AS u))), \
         old_rows AS ( \
             DELETE FROM usage WHERE ctid = ANY(ARRAY( \
                 SELECT u.ctid FROM UNNEST($38::text[], $39::text[], $40::text[]) \
                     AS d(item_key, service, task_id) \
                 CROSS JOIN LATERAL (SELECT ctid FROM usage WHERE tenant_id = $1 \
                     AND item_key = d.item_key AND service = d.service \
                     AND task_id = d.task_id LIMIT 1) AS u))), \
         items AS ( \
             INSERT INTO workitems (tenant_id, key, created_at, updated_at, active_stage, \
                 active_class, has_plan, has_code, has_test, open_plan, open_code, open_test, \
                 stall_at, doc) \
             SELECT $1, u.key, u.created_at, u.updated_at, u.active_stage, u.active_class, \
                 u.has_plan, u.has_code, u.has_test, u.open_plan, u.open_code, u.open_test, \
                 u.stall_at, u.doc::json \
             FROM UNNEST($3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], \
                 $7::text[], $8::bool[], $9::bool[], $10::bool[], $11::bool[], $12::bool[], \
                 $13::bool[], $14::timestamptz[], $15::text[]) \
                 AS u(key, created_at, updated_at, active_stage, active_class, has_plan, \
                 has_code, has_test, open_plan, open_code, open_test, stall_at, doc) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 active_stage = EXCLUDED.active_stage, active_class = EXCLUDED.active_class, \
                 has_plan = EXCLUDED.has_plan, has_code = EXCLUDED.has_code, \
                 has_test = EXCLUDED.has_test, open_plan = EXCLUDED.open_plan, \
                 open_code = EXCLUDED.open_code, open_test = EXCLUDED.open_test, \
                 stall_at = EXCLUDED.stall_at, doc = EXCLUDED.doc), \
         new_usage AS ( \
             INSERT INTO usage (tenant_id, item_key, service, task_id, model, project, \
                 input_tokens, output_tokens, total_tokens, cost_usd, notional_cost_usd) \
             SELECT $1, u.* FROM UNNEST($16::text[], $17::text[], $18::text[], $19::text[], \
                 $20::text[], $21::int8[], $22::int8[], $23::int8[], $24::float8[], \
                 $43::float8[]) AS u), \
         owners AS ( \
             INSERT INTO identifiers (tenant_id, ident, item_key) \
             SELECT $1, o.ident, o.item_key \
             FROM UNNEST($25::text[], $26::text[]) AS o(ident, item_key) \
             ON CONFLICT (tenant_id, ident) DO UPDATE SET item_key = EXCLUDED.item_key \
             WHERE identifiers.item_key <> EXCLUDED.item_key), \
         new_events AS ( \
             INSERT INTO events (tenant_id, event_id, item_key, service, task_id, status, \
                 time, time_nanos, received_at, raw) \
             SELECT $1, e.event_id, e.item_key, e.service, e.task_id, e.status, e.time, \
                 e.time_nanos, e.received_at, e.raw \
             FROM UNNEST($27::text[], $28::text[], $29::text[], $30::text[], $31::text[], \
                 $32::timestamptz[], $33::int4[], $34::timestamptz[], $35::text[]) \
                 WITH ORDINALITY AS e(event_id, item_key, service, task_id, status, time, \
                 time_nanos, received_at, raw, ord) \
             ORDER BY e.ord), \
         search AS ( \
             INSERT INTO workitem_search (tenant_id, key, search_text) \
             SELECT $1, s.key, s.search_text \
             FROM UNNEST($41::text[], $42::text[]) AS s(key, search_text) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET search_text = EXCLUDED.search_text), \
         generation AS ( \
             INSERT INTO tenant_writes (tenant_id, generation) VALUES ($1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_writes.generation + 1) \
         SELECT pg_notify($36, p) FROM UNNEST($37::text[]) AS p",
    )
    .bind(tenant)
    .bind(&usage_changes.whole)
    .bind(&items.keys)
    .bind(&items.created_at)
    .bind(&items.updated_at)
    .bind(&items.active_stage)
    .bind(&items.active_class)
    .bind(has_plan)
    .bind(has_code)
    .bind(has_test)
    .bind(open_plan)
    .bind(open_code)
    .bind(open_test)
    .bind(&items.stall_at)
    .bind(&items.docs)
    .bind(&usage.item_key)
    .bind(&usage.service)
    .bind(&usage.task_id)
    .bind(&usage.model)
    .bind(&usage.project)
    .bind(&usage.input_tokens)
    .bind(&usage.output_tokens)
    .bind(&usage.total_tokens)
    .bind(&usage.cost_usd)
    .bind(&owners.idents)
    .bind(&owners.keys)
    .bind(&events.event_ids)
    .bind(&events.item_keys)
    .bind(&events.services)
    .bind(&events.task_ids)
    .bind(&events.statuses)
    .bind(&events.times)
    .bind(&events.time_nanos)
    .bind(&events.received)
    .bind(&events.raws)
    .bind(feed::CHANNEL)
    .bind(&notices)
    .bind(&usage_changes.drop_keys)
    .bind(&usage_changes.drop_services)
    .bind(&usage_changes.drop_tasks)
    .bind(&search_keys)
    .bind(&search_texts)
    .bind(&usage.notional_cost_usd)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(true)
}

/// Moves the rows of merged-away items to the item they merged into and deletes those
/// items.
async fn merge(
    conn: &mut PgConnection,
    tenant: &str,
    changes: &ChangeSet,
) -> Result<(), StoreError> {
    // Merges are rare and touch every row of the items merged: planned for their own
    // parameters, not generically like the rest of the writer's statements.
    sqlx::raw_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    if !changes.redirects.is_empty() {
        let from: Vec<&str> = changes.redirects.iter().map(|(f, _)| f.as_str()).collect();
        let to: Vec<&str> = changes.redirects.iter().map(|(_, t)| t.as_str()).collect();
        for table in ["identifiers", "events"] {
            let sql = format!(
                "UPDATE {table} AS t SET item_key = r.to_key \
                 FROM UNNEST($2::text[], $3::text[]) AS r(from_key, to_key) \
                 WHERE t.tenant_id = $1 AND t.item_key = r.from_key"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(&from)
                .bind(&to)
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
    }
    if !changes.deleted.is_empty() {
        let deleted: Vec<&str> = changes.deleted.iter().map(CorrelationKey::as_str).collect();
        sqlx::query(
            "WITH search AS ( \
                 DELETE FROM workitem_search WHERE tenant_id = $1 AND key = ANY($2)) \
             DELETE FROM workitems WHERE tenant_id = $1 AND key = ANY($2)",
        )
        .bind(tenant)
        .bind(&deleted)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

/// The `identifiers` rows of a change set, one vector per column.
struct OwnerColumns<'c> {
    idents: Vec<String>,
    keys: Vec<&'c str>,
}

impl<'c> OwnerColumns<'c> {
    fn of(changes: &'c ChangeSet) -> Self {
        Self {
            idents: changes
                .owners
                .iter()
                .map(|(id, _)| pg_text(id.as_str()).into_owned())
                .collect(),
            keys: changes.owners.iter().map(|(_, k)| k.as_str()).collect(),
        }
    }
}

/// The `events` rows of a change set, one vector per column.
struct EventColumns<'c> {
    event_ids: Vec<Option<&'c str>>,
    item_keys: Vec<&'c str>,
    services: Vec<&'c str>,
    task_ids: Vec<String>,
    statuses: Vec<String>,
    times: Vec<DateTime<Utc>>,
    time_nanos: Vec<i32>,
    received: Vec<DateTime<Utc>>,
    raws: Vec<String>,
}

impl<'c> EventColumns<'c> {
    fn of(changes: &'c ChangeSet) -> Self {
        let events = &changes.events;
        Self {
            event_ids: events
                .iter()
                .map(|e| e.event_id.as_ref().map(EventId::as_str))
                .collect(),
            item_keys: events.iter().map(|e| e.item_key.as_str()).collect(),
            services: events.iter().map(|e| e.service.as_str()).collect(),
            task_ids: events
                .iter()
                .map(|e| pg_text(&e.task_id).into_owned())
                .collect(),
            statuses: events
                .iter()
                .map(|e| pg_text(&e.status).into_owned())
                .collect(),
            times: events.iter().map(|e| to_micros(e.time)).collect(),
            time_nanos: events
                .iter()
                .map(|e| (e.time.timestamp_subsec_nanos() % 1000) as i32)
                .collect(),
            received: events.iter().map(|e| to_micros(e.received_at)).collect(),
            raws: events
                .iter()
                .map(|e| pg_text(&e.raw).into_owned())
                .collect(),
        }
    }
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
        let mut locks = Locks::new(pool.clone());
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

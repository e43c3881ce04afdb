//! The write side: one writer task per store applies every ingest request waiting as one
//! write (group commit), and hydration snapshots run in their own transaction. Both hold
//! a per-tenant advisory lock while they read and write, so processes sharing the
//! database serialise their writes to a tenant and never fork an item.
//!
//! The writer keeps its locks at session level on a connection of its own while work keeps
//! arriving (see [`TenantLocks`]): with the tenant held, its loads need no transaction and
//! a group's write, one statement, commits by itself, so a group costs two round trips. It
//! also remembers what it loaded and wrote (see [`TenantCache`]), so a group over items it
//! knows costs one, and such a group is applied in memory while the write before it is out
//! (see [`Pipeline`]).
//!
//! Its parts: [`request_queue`] takes requests off the queue and batches them into
//! groups, [`send_ahead`] writes a group applied in memory while the write before it is
//! out, [`group_commit`] loads, applies and commits the other groups, [`snapshots`]
//! applies hydration polls, [`tenant_locks`] holds the tenants' advisory locks,
//! [`write_cache`] remembers owners and items between groups, [`statements`] holds the
//! load and the write with the columns it binds, [`merges`] moves merged-away rows,
//! [`staged`] is a change set ready to write, and [`feed_holding`] holds written items
//! for the change feed until their commit.
//!
//! [`TenantLocks`]: tenant_locks::TenantLocks
//! [`TenantCache`]: write_cache::TenantCache
//! [`Pipeline`]: request_queue::Pipeline

mod feed_holding;
mod group_commit;
mod merges;
mod request_queue;
mod send_ahead;
mod snapshots;
mod staged;
mod statements;
mod tenant_locks;
mod write_cache;

use std::sync::Arc;

use cfactory_domain::correlate::IngestOutcome;
use cfactory_domain::ports::StoreError;
use cfactory_domain::{Clock, CompletionEvent, TenantId};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::feed::Held;
use request_queue::run;

/// Where the writer reports its work: handles of the `metrics` facade, no-ops unless the
/// caller hands it real ones (see [`crate::PgOptions::instruments`]).
#[derive(Clone)]
pub struct WriterInstruments {
    /// Events in each group the writer sends as one write.
    pub group_events: metrics::Histogram,
    /// Seconds of each load of what a group needs.
    pub load_seconds: metrics::Histogram,
    /// Seconds of each write of a group's changes.
    pub write_seconds: metrics::Histogram,
}

impl Default for WriterInstruments {
    fn default() -> Self {
        Self {
            group_events: metrics::Histogram::noop(),
            load_seconds: metrics::Histogram::noop(),
            write_seconds: metrics::Histogram::noop(),
        }
    }
}

pub(crate) use crate::rows::to_micros;
pub(crate) use snapshots::apply_snapshots;

/// Requests waiting for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 4096;

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
    /// The longest a caller waits for its commit (see [`Writer::ingest`]).
    answer_within: std::time::Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

impl Writer {
    /// Starts the writer task; it holds what it writes in `held` for the change feed and
    /// reports its groups and statements to `instruments`. Callers wait at most
    /// `answer_within` for their commit.
    pub fn start(
        pool: PgPool,
        clock: Arc<dyn Clock>,
        held: Arc<Held>,
        answer_within: std::time::Duration,
        instruments: WriterInstruments,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(pool, clock, held, queue, Arc::new(instruments)));
        Self {
            jobs,
            answer_within,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues `events` and waits for their commit, at most `answer_within`: a database
    /// that stopped answering (frozen, cut off without a reset) costs the caller an
    /// `Unavailable`, never a hang. The write may still land after that answer; a retry
    /// of the same events is then a duplicate. A request whose caller has gone is
    /// skipped if the writer has not taken it yet.
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
        let waited = tokio::time::timeout(self.answer_within, async {
            self.jobs
                .send(Job::Ingest(request))
                .await
                .map_err(|_| closed())?;
            answer.await.map_err(|_| closed())?
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not commit within {:?}",
                self.answer_within
            )))
        })
    }

    /// Requests queued for the writer task, not yet taken.
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
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

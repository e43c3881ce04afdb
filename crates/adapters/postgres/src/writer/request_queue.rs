//! The writer task's loop: it takes ingest requests off the queue, stamps their arrival,
//! and batches them into groups, each sent ahead (see [`send_ahead`]) or committed with a
//! load (see [`commit_and_reply`]), in arrival order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cfactory_domain::Clock;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::group_commit::commit_and_reply;
use super::send_ahead::{Gathering, Landed, gather, send_ahead};
use super::tenant_locks::TenantLocks;
use super::{IngestRequest, Job, WriterInstruments, to_micros};
use crate::feed::Held;

/// A group stops growing once it holds this many events.
pub(super) const MAX_GROUP_EVENTS: usize = 512;

/// How long the writer keeps its tenant locks with nothing queued before it lets them go.
const IDLE_HOLD: Duration = Duration::from_millis(5);

/// The longest the writer keeps its tenant locks at a stretch, so that another process
/// (or this one's snapshot polls) waiting for a tenant gets its turn.
const SLICE: Duration = Duration::from_millis(50);

/// A request with its arrival stamps.
pub(super) struct Stamped {
    pub(super) request: IngestRequest,
    pub(super) received_at: Vec<DateTime<Utc>>,
}

pub(super) async fn run(
    pool: PgPool,
    clock: Arc<dyn Clock>,
    held: Arc<Held>,
    mut queue: mpsc::Receiver<Job>,
    instruments: Arc<WriterInstruments>,
) {
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
    let mut pipeline = Pipeline {
        locks: TenantLocks::new(pool),
        held,
        instruments,
        next: None,
        waiting: VecDeque::new(),
    };
    let mut closing = None;
    let mut ending = false;
    loop {
        let job = if let Some(flight) = &mut pipeline.locks.in_flight {
            // A write is out: take requests as they come until it lands.
            tokio::select! {
                joined = &mut flight.task => {
                    pipeline.landed(joined);
                    pipeline.send().await;
                    continue;
                }
                job = queue.recv(), if !ending => job,
            }
        } else if pipeline.idle() {
            if ending {
                break;
            }
            if pipeline.locks.holding() {
                match tokio::time::timeout(IDLE_HOLD, queue.recv()).await {
                    Ok(job) => job,
                    Err(_) => {
                        pipeline.locks.release().await;
                        continue;
                    }
                }
            } else {
                queue.recv().await
            }
        } else {
            // Nothing out and work in hand: send it, then see what came meanwhile.
            pipeline.send().await;
            continue;
        };
        match job {
            Some(Job::Ingest(request)) => pipeline.take(stamp(request)),
            Some(Job::Close(done)) => {
                closing = Some(done);
                ending = true;
            }
            None => ending = true,
        }
        if pipeline.locks.in_flight.is_none() {
            // Take whatever else is queued before sending.
            while !ending {
                match queue.try_recv() {
                    Ok(Job::Ingest(request)) => pipeline.take(stamp(request)),
                    Ok(Job::Close(done)) => {
                        closing = Some(done);
                        ending = true;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    pipeline.locks.release().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// The writer's work in hand. Requests whose identifiers the writer already knows are
/// applied in memory while the write before them is out (see [`Gathering`]), then sent
/// as soon as it lands, so correlating one group overlaps writing the one before. Every
/// other request waits its turn and goes through a load in [`commit_and_reply`]. Either
/// way, requests are committed in the order they arrived.
pub(super) struct Pipeline {
    locks: TenantLocks,
    held: Arc<Held>,
    instruments: Arc<WriterInstruments>,
    /// The next group, applied in memory.
    next: Option<Gathering>,
    /// Requests after `next`, to commit with a load, in arrival order.
    waiting: VecDeque<Stamped>,
}

impl Pipeline {
    fn idle(&self) -> bool {
        self.next.is_none() && self.waiting.is_empty()
    }

    /// Takes a request into `next` when it can be applied there, else makes it wait.
    fn take(&mut self, stamped: Stamped) {
        // Its caller stopped waiting (the writer was held up): nobody is told of it,
        // so it is not written; the sender retries.
        if stamped.request.reply.is_closed() {
            return;
        }
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
        debug_assert!(self.locks.in_flight.is_none());
        if self.locks.held_for() > SLICE {
            // Another process (or a snapshot poll) may be waiting for a tenant.
            self.unwind();
            self.locks.release().await;
        }
        if let Some(next) = self.next.take() {
            match send_ahead(&mut self.locks, &self.held, &self.instruments, next) {
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
            commit_and_reply(&mut self.locks, &self.held, &self.instruments, group).await;
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

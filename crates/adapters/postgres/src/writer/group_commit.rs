//! Group commit with a load: a group's requests loaded (or recalled), applied and written
//! in one go under the tenant locks, each request retried alone when the group fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use cfactory_domain::correlate::IngestOutcome;
use cfactory_domain::ports::StoreError;
use cfactory_domain::{Batch, EventId, Identifier, TenantId};
use sqlx::PgConnection;

use super::WriterInstruments;
use super::feed_holding::Holding;
use super::request_queue::Stamped;
use super::staged::{Staged, stored};
use super::statements::{load, write};
use super::tenant_locks::TenantLocks;
use super::write_cache::{CAUTIOUS_GROUPS, TenantCache, bound_cache};
use crate::error::store_error;
use crate::feed::Held;

/// Commits a group and answers each waiter. When the group fails, each request is tried
/// on its own, so one bad request fails alone and the others still commit.
pub(super) async fn commit_and_reply(
    locks: &mut TenantLocks,
    held: &Held,
    instruments: &WriterInstruments,
    group: Vec<Stamped>,
) {
    let all: Vec<&Stamped> = group.iter().collect();
    let events =
        |requests: &[&Stamped]| requests.iter().map(|s| s.received_at.len()).sum::<usize>() as f64;
    let results = match commit_group(locks, held, instruments, &all).await {
        Ok(outcomes) => {
            instruments.group_events.record(events(&all));
            outcomes.into_iter().map(Ok).collect()
        }
        Err(error) if group.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, requests = group.len(), "group commit failed; retrying each request alone");
            let mut results = Vec::with_capacity(group.len());
            for one in &group {
                let result = commit_group(locks, held, instruments, &[one]).await;
                if result.is_ok() {
                    instruments.group_events.record(events(&[one]));
                }
                results.push(result.map(|mut o| o.remove(0)));
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
    locks: &mut TenantLocks,
    held: &Held,
    instruments: &WriterInstruments,
    group: &[&Stamped],
) -> Result<Vec<Vec<IngestOutcome>>, StoreError> {
    let result = try_commit_group(locks, held, instruments, group).await;
    if result.is_err() {
        locks.abandon();
    }
    result
}

async fn try_commit_group(
    locks: &mut TenantLocks,
    held: &Held,
    instruments: &WriterInstruments,
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
    let apply = Apply {
        held,
        instruments,
        group,
        by_tenant: &by_tenant,
    };
    match apply_group(conn, known, &apply, true).await? {
        Applied::Committed(outcomes) => Ok(outcomes),
        Applied::Again => {
            for tenant in &tenants {
                if let Some(known) = known.get_mut(*tenant) {
                    known.cautious = CAUTIOUS_GROUPS;
                }
            }
            match apply_group(conn, known, &apply, false).await? {
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

/// A group to apply: its requests by tenant, where written items are held for the change
/// feed, and where statement times go.
struct Apply<'a> {
    held: &'a Held,
    instruments: &'a WriterInstruments,
    group: &'a [&'a Stamped],
    by_tenant: &'a BTreeMap<&'a TenantId, Vec<usize>>,
}

/// Loads (or recalls, when `recall`), computes and writes the group under the tenant locks
/// `conn` holds.
async fn apply_group(
    conn: &mut PgConnection,
    known: &mut HashMap<TenantId, TenantCache>,
    apply: &Apply<'_>,
    recall: bool,
) -> Result<Applied, StoreError> {
    let Apply {
        held,
        instruments,
        group,
        by_tenant,
    } = *apply;
    let timed = |started: Instant| {
        instruments
            .load_seconds
            .record(started.elapsed().as_secs_f64())
    };
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
                    let started = Instant::now();
                    let more = load(&mut *conn, tenant, missing, BTreeSet::new(), &have).await?;
                    timed(started);
                    tenant_known.learn(&more);
                    loaded.owners.extend(more.owners);
                    loaded.items.extend(more.items);
                }
                loaded
            }
            None => {
                let started = Instant::now();
                let loaded = load(&mut *conn, tenant, ids, event_ids, &[]).await?;
                timed(started);
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
        let started = Instant::now();
        let written = write(&mut *conn, tenant, &staged, &before, &mut holding).await;
        instruments
            .write_seconds
            .record(started.elapsed().as_secs_f64());
        match written {
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
    bound_cache(known);
    Ok(Applied::Committed(outcomes))
}

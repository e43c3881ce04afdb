//! TFactory's two task lists read as snapshots: the verification specs of
//! `GET /api/tfactory/tasks` (the pipeline's own statuses) and the older kanban board of
//! `GET /api/tasks` (statuses flattened to board columns), and the merge that keeps the
//! verification row whenever both lists hold the same spec.

use std::collections::{HashMap, HashSet};

use cfactory_domain::event::{Correlation, Service};
use cfactory_domain::upstream::TaskSnapshot;
use cfactory_upstream_http::fields::{number, text, time_in, unwrap_object};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// The verification status whose detail says whether a person must look.
pub(crate) const TRIAGED: &str = "triaged";

/// The `outcome` of a triaged spec that needs a reviewer, reported as its review reason.
const HUMAN_REVIEW: &str = "human_review";

/// One row of `GET /api/tfactory/tasks` as a snapshot keyed by its spec id (the id
/// TFactory's completion events carry as `task_id`); `None` when it has no id. Its
/// `project` is the workspace's project name; its issue is `source.aifactory.github_issue`.
pub(crate) fn verification_snapshot(row: &Value, zone: &Tz) -> Option<TaskSnapshot> {
    let spec_id = text(row, &["spec_id", "task_id"])?;
    let issue_number = number(row, &["source.aifactory.github_issue"]);
    Some(TaskSnapshot {
        service: Service::TFACTORY,
        task_id: spec_id,
        issue_number,
        status: text(row, &["status"]).unwrap_or_else(|| "unknown".into()),
        phase: text(row, &["phase"]),
        title: text(row, &["title"]),
        project: text(row, &["project_id"]),
        updated_at: time_in(row, &["updated_at", "created_at"], zone),
        correlation: Correlation {
            issue_number,
            aifactory_task_id: text(row, &["source.aifactory.task_id"]),
            ..Correlation::default()
        },
        review_reason: None,
    })
}

/// One row of the kanban `GET /api/tasks` as a snapshot keyed by its `project_id:spec`
/// id (the id `/api/tasks/{id}` and the `/ws/events` frames use); `None` when it has no
/// id. The status is the board column; the issue is `metadata.githubIssueNumber`; the
/// file times are the server's local time in `zone`.
pub(crate) fn kanban_snapshot(row: &Value, zone: &Tz) -> Option<TaskSnapshot> {
    let task_id = text(row, &["id"]).or_else(|| {
        let project = text(row, &["project_id", "projectId"])?;
        let spec = text(row, &["spec_id", "specId"])?;
        Some(format!("{project}:{spec}"))
    })?;
    let issue_number = number(row, &["metadata.githubIssueNumber"]);
    Some(TaskSnapshot {
        service: Service::TFACTORY,
        task_id,
        issue_number,
        status: text(row, &["status"]).unwrap_or_else(|| "unknown".into()),
        phase: text(row, &["phase", "executionProgress.phase"]),
        title: text(row, &["title"]),
        project: text(row, &["repo", "project_id", "projectId"]),
        updated_at: time_in(
            row,
            &["updated_at", "updatedAt", "created_at", "createdAt"],
            zone,
        ),
        correlation: Correlation {
            issue_number,
            branch: text(row, &["branch_name", "branchName"]),
            ..Correlation::default()
        },
        review_reason: text(row, &["review_reason", "reviewReason"]),
    })
}

/// What a verification spec's detail (`GET /api/tfactory/tasks/{spec_id}`) adds to its
/// row.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Verdict {
    /// `"human_review"` when the triager's `outcome` asks for a person.
    pub review_reason: Option<String>,
    /// The branch under test.
    pub branch: Option<String>,
}

impl Verdict {
    /// Reads `status_json` of a detail body.
    pub(crate) fn of_detail(detail: &Value) -> Self {
        let status = unwrap_object(detail, &["status_json"]);
        Self {
            review_reason: text(status, &["outcome"]).filter(|o| o == HUMAN_REVIEW),
            branch: text(status, &["branch"]),
        }
    }

    /// Puts the verdict on its spec's snapshot.
    pub(crate) fn apply(&self, task: &mut TaskSnapshot) {
        task.review_reason = self.review_reason.clone();
        if task.correlation.branch.is_none() {
            task.correlation.branch = self.branch.clone();
        }
    }
}

/// Verdicts already read, each with the `updated_at` of the row it was read for, so a
/// triaged spec's detail is fetched again only when the spec changes.
#[derive(Debug, Default)]
pub(crate) struct VerdictCache(HashMap<String, (Option<DateTime<Utc>>, Verdict)>);

impl VerdictCache {
    /// The verdict read for `task` at its current `updated_at`.
    pub(crate) fn get(&self, task: &TaskSnapshot) -> Option<&Verdict> {
        self.0
            .get(&task.task_id)
            .filter(|(at, _)| *at == task.updated_at)
            .map(|(_, verdict)| verdict)
    }

    /// Keeps `verdict` for `task` as it is now.
    pub(crate) fn put(&mut self, task: &TaskSnapshot, verdict: Verdict) {
        self.0
            .insert(task.task_id.clone(), (task.updated_at, verdict));
    }

    /// Forgets specs no longer listed.
    pub(crate) fn retain_listed(&mut self, listed: &HashSet<&str>) {
        self.0.retain(|id, _| listed.contains(id.as_str()));
    }
}

/// The two lists merged: every verification row, then the kanban rows that name neither
/// an issue nor a spec id a verification row has. `twins` maps each kanban id left out
/// that way to the spec id of the verification row that stands for it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Merged {
    /// The rows to report.
    pub tasks: Vec<TaskSnapshot>,
    /// Kanban id → spec id, for kanban rows a verification row stands for.
    pub twins: HashMap<String, String>,
}

/// Merges the lists; a kanban row's flattened status never replaces a verification
/// row's.
pub(crate) fn merge(verification: Vec<TaskSnapshot>, kanban: Vec<TaskSnapshot>) -> Merged {
    let mut by_issue: HashMap<u64, String> = HashMap::new();
    let mut spec_ids: HashSet<String> = HashSet::new();
    let mut tasks: Vec<TaskSnapshot> = Vec::with_capacity(verification.len() + kanban.len());
    for task in verification {
        if !spec_ids.insert(task.task_id.clone()) {
            continue;
        }
        if let Some(n) = task.issue_number {
            by_issue.entry(n).or_insert_with(|| task.task_id.clone());
        }
        tasks.push(task);
    }
    let mut twins = HashMap::new();
    for task in kanban {
        let bare = bare_spec_id(&task.task_id);
        let twin = task
            .issue_number
            .and_then(|n| by_issue.get(&n).cloned())
            .or_else(|| spec_ids.contains(bare).then(|| bare.to_owned()));
        match twin {
            Some(spec_id) => {
                twins.insert(task.task_id, spec_id);
            }
            None => tasks.push(task),
        }
    }
    Merged { tasks, twins }
}

/// The spec folder of a kanban `project_id:spec` id.
fn bare_spec_id(kanban_id: &str) -> &str {
    kanban_id
        .split_once(':')
        .map_or(kanban_id, |(_, spec)| spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verification_rows_read_the_issue_from_their_source() {
        let row = json!({
            "task_id": "142-checkout-retry", "project_id": "shop", "spec_id": "142-checkout-retry",
            "title": "Checkout retries on 502", "status": "evaluating",
            "phase": "evaluator_initial_started", "updated_at": "2026-12-04T10:06:00+00:00",
            "source": {"aifactory": {"github_issue": 142, "task_id": "shop:142-checkout-retry"}}
        });
        let s = verification_snapshot(&row, &Tz::UTC).unwrap();
        assert_eq!(s.task_id, "142-checkout-retry");
        assert_eq!(s.issue_number, Some(142));
        assert_eq!(s.correlation.issue_number, Some(142));
        assert_eq!(
            s.correlation.aifactory_task_id.as_deref(),
            Some("shop:142-checkout-retry")
        );
        assert_eq!(s.key().unwrap().as_str(), "142");

        let fresh = json!({"spec_id": "ingest-007", "status": "pending", "title": null,
            "source": {"aifactory": {"github_issue": null}}});
        let s = verification_snapshot(&fresh, &Tz::UTC).unwrap();
        assert_eq!((s.issue_number, s.title.as_deref()), (None, None));
        assert_eq!(s.key().unwrap().as_str(), "tf-ingest-007");
        assert_eq!(
            verification_snapshot(&json!({"status": "pending"}), &Tz::UTC),
            None
        );
    }

    #[test]
    fn a_naive_verification_time_is_the_servers_local_time() {
        // The server falls back to the file's mtime, written without a zone.
        let row = json!({"spec_id": "s", "updated_at": "2026-07-01T12:00:00.250000"});
        let s = verification_snapshot(&row, &chrono_tz::America::New_York).unwrap();
        assert_eq!(
            s.updated_at.unwrap().to_rfc3339(),
            "2026-07-01T16:00:00.250+00:00"
        );
    }

    #[test]
    fn wall_times_around_a_clock_change_still_read() {
        let at = |local: &str| {
            let row = json!({"id": "p:1", "updated_at": local});
            let s = kanban_snapshot(&row, &chrono_tz::Europe::Berlin).unwrap();
            s.updated_at.unwrap().to_rfc3339()
        };
        // Seen twice on 25 October (CEST, then CET): the first showing.
        assert_eq!(at("2026-10-25T02:30:00"), "2026-10-25T00:30:00+00:00");
        // Skipped on 29 March: read with the offset in force just after.
        assert_eq!(at("2026-03-29T02:30:00"), "2026-03-29T00:30:00+00:00");
        assert_eq!(at("2026-07-01T12:00:00"), "2026-07-01T10:00:00+00:00");
    }

    #[test]
    fn kanban_ids_are_built_when_a_row_has_no_id() {
        let row = json!({"project_id": "p1", "spec_id": "003-x", "status": "done"});
        assert_eq!(kanban_snapshot(&row, &Tz::UTC).unwrap().task_id, "p1:003-x");
    }

    #[test]
    fn verdicts_surface_a_human_review_outcome_only() {
        let detail = |outcome: &str, flagged: u64| {
            json!({"task_id": "s", "status_json": {"status": "triaged",
                "flagged_count": flagged, "outcome": outcome, "branch": "af/s"}})
        };
        let v = Verdict::of_detail(&detail("human_review", 2));
        assert_eq!(v.review_reason.as_deref(), Some("human_review"));
        assert_eq!(v.branch.as_deref(), Some("af/s"));
        assert_eq!(
            Verdict::of_detail(&detail("success", 0)).review_reason,
            None
        );
        assert_eq!(
            Verdict::of_detail(&detail("failure", 1)).review_reason,
            None
        );
    }

    #[test]
    fn cached_verdicts_expire_when_the_spec_changes() {
        let mut task = verification_snapshot(
            &json!({"spec_id": "s", "updated_at": "2026-01-01T00:00:00Z"}),
            &Tz::UTC,
        )
        .unwrap();
        let mut cache = VerdictCache::default();
        cache.put(&task, Verdict::default());
        assert!(cache.get(&task).is_some());
        task.updated_at = None;
        assert!(cache.get(&task).is_none());
        cache.retain_listed(&HashSet::new());
        assert!(cache.0.is_empty());
    }

    fn snapshot(task_id: &str, issue: Option<u64>, status: &str) -> TaskSnapshot {
        TaskSnapshot {
            service: Service::TFACTORY,
            task_id: task_id.into(),
            issue_number: issue,
            status: status.into(),
            phase: None,
            title: None,
            project: None,
            updated_at: None,
            correlation: Correlation::default(),
            review_reason: None,
        }
    }

    #[test]
    fn verification_rows_win_over_their_kanban_twins() {
        let merged = merge(
            vec![
                snapshot("142-checkout-retry", Some(142), "evaluating"),
                snapshot("009-shared", None, "stuck"),
                snapshot("142-checkout-retry", Some(142), "duplicate"),
            ],
            vec![
                snapshot("p:001-checkout-retry", Some(142), "in_progress"),
                snapshot("p:009-shared", None, "backlog"),
                snapshot("p:005-board-only", Some(777), "done"),
            ],
        );
        let rows: Vec<_> = merged
            .tasks
            .iter()
            .map(|t| (t.task_id.as_str(), t.status.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("142-checkout-retry", "evaluating"),
                ("009-shared", "stuck"),
                ("p:005-board-only", "done")
            ]
        );
        assert_eq!(
            merged.twins.get("p:001-checkout-retry").map(String::as_str),
            Some("142-checkout-retry")
        );
        assert_eq!(
            merged.twins.get("p:009-shared").map(String::as_str),
            Some("009-shared")
        );
        assert_eq!(merged.twins.len(), 2);
    }
}

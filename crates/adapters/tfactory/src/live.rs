//! TFactory's live feeds speak the kanban board's ids (`project_id:spec`) and statuses.
//! A board task that a verification spec stands for (same issue or spec id) is reported
//! under the spec's id, so its frames are rewritten to that id here; its board status
//! arrives as progress, since the flattened word must not read as the spec's status.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cfactory_domain::event::Service;
use cfactory_domain::ports::LiveSink;
use cfactory_domain::upstream::{FeedState, LiveUpdate};

/// Which kanban ids a verification spec stands for, as of the last kanban list read.
#[derive(Debug, Default)]
pub(crate) struct Twins(RwLock<Table>);

#[derive(Debug, Default)]
struct Table {
    spec_of_kanban: HashMap<String, String>,
    kanban_of_spec: HashMap<String, String>,
}

impl Twins {
    /// Replaces the table with `twins` (kanban id → spec id).
    pub(crate) fn replace(&self, twins: HashMap<String, String>) {
        let kanban_of_spec = twins
            .iter()
            .map(|(kanban, spec)| (spec.clone(), kanban.clone()))
            .collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Table {
            spec_of_kanban: twins,
            kanban_of_spec,
        };
    }

    /// The spec that stands for kanban task `kanban_id`.
    pub(crate) fn spec_of(&self, kanban_id: &str) -> Option<String> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table.spec_of_kanban.get(kanban_id).cloned()
    }

    /// The kanban task spec `spec_id` stands for.
    pub(crate) fn kanban_of(&self, spec_id: &str) -> Option<String> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table.kanban_of_spec.get(spec_id).cloned()
    }

    /// `update` as it concerns the reported task.
    fn translate(&self, update: LiveUpdate) -> LiveUpdate {
        match update {
            LiveUpdate::Status {
                task_id,
                status,
                review_reason,
                at,
            } => match self.spec_of(&task_id) {
                Some(spec_id) => LiveUpdate::Progress {
                    task_id: spec_id,
                    phase: None,
                    percent: None,
                    message: Some(match review_reason {
                        Some(reason) => format!("board: {status} ({reason})"),
                        None => format!("board: {status}"),
                    }),
                    at,
                },
                None => LiveUpdate::Status {
                    task_id,
                    status,
                    review_reason,
                    at,
                },
            },
            LiveUpdate::Progress {
                task_id,
                phase,
                percent,
                message,
                at,
            } => LiveUpdate::Progress {
                task_id: self.spec_of(&task_id).unwrap_or(task_id),
                phase,
                percent,
                message,
                at,
            },
        }
    }
}

/// A sink that rewrites kanban ids to the ids the snapshots report, then hands on.
pub(crate) struct ReportedIds {
    inner: Arc<dyn LiveSink>,
    twins: Arc<Twins>,
}

impl ReportedIds {
    pub(crate) fn new(inner: Arc<dyn LiveSink>, twins: Arc<Twins>) -> Self {
        Self { inner, twins }
    }
}

impl LiveSink for ReportedIds {
    fn live_update(&self, service: Service, update: LiveUpdate) {
        self.inner
            .live_update(service, self.twins.translate(update));
    }

    fn feed_state(&self, service: Service, route: &str, state: FeedState) {
        self.inner.feed_state(service, route, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn twin_frames_are_rewritten_and_others_pass() {
        let twins = Twins::default();
        twins.replace(HashMap::from([(
            "p:001-checkout-retry".to_owned(),
            "142-checkout-retry".to_owned(),
        )]));
        assert_eq!(
            twins.kanban_of("142-checkout-retry").as_deref(),
            Some("p:001-checkout-retry")
        );
        let at = Utc::now();
        let status = |task_id: &str| LiveUpdate::Status {
            task_id: task_id.into(),
            status: "human_review".into(),
            review_reason: Some("completed".into()),
            at,
        };
        assert_eq!(
            twins.translate(status("p:001-checkout-retry")),
            LiveUpdate::Progress {
                task_id: "142-checkout-retry".into(),
                phase: None,
                percent: None,
                message: Some("board: human_review (completed)".into()),
                at,
            }
        );
        assert_eq!(
            twins.translate(status("p:005-other")),
            status("p:005-other")
        );
    }
}

//! Process graphs of a verification spec: one node per test lane, from the planner's
//! test plan (lanes live on its tests, dependencies on its phases) with the live
//! `lane_progress` as status; or from `lane_progress` alone while there is no plan; or,
//! for a kanban task, one node per subtask of its detail.

use std::collections::{BTreeSet, HashMap};

use cfactory_domain::upstream::ProcessNode;
use cfactory_upstream_http::fields::{as_text, list, number, text, time_in};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// Lanes in the order the graph shows them when nothing else orders them; unknown lanes
/// come last.
const LANES: [&str; 5] = ["unit", "api", "integration", "browser", "mutation"];

/// A test without a lane is shown in this one.
const NO_LANE: &str = "unassigned";

fn lane_rank(lane: &str) -> usize {
    LANES
        .iter()
        .position(|l| l.eq_ignore_ascii_case(lane))
        .unwrap_or(LANES.len())
}

/// One lane of a plan while it is being gathered.
struct Lane<'a> {
    name: String,
    /// Position of the first phase that has a test in this lane.
    first: usize,
    tests: Vec<&'a Value>,
    /// Phase numbers whose tests in this lane wait on other phases.
    phases: BTreeSet<u64>,
}

/// One node per lane of `plan`. A lane depends on the lanes of the phases its own
/// phases list in `depends_on`; its status is `progress[lane]` (the detail's
/// `lane_progress`) when given, else summed up from its tests.
pub(crate) fn plan_nodes(plan: &Value, progress: Option<&Value>, zone: &Tz) -> Vec<ProcessNode> {
    let phases = list(plan, &["phases"]);
    let mut lanes: Vec<Lane<'_>> = Vec::new();
    let mut lanes_of_phase: HashMap<u64, BTreeSet<String>> = HashMap::new();
    let mut depends_on: HashMap<u64, Vec<u64>> = HashMap::new();
    for (pos, phase) in phases.iter().enumerate() {
        let n = number(phase, &["phase"]).unwrap_or(pos as u64 + 1);
        depends_on.entry(n).or_default().extend(
            list(phase, &["depends_on"])
                .iter()
                .filter_map(cfactory_upstream_http::fields::as_number),
        );
        // `chunks` repeats `subtasks`; reading both would count every test twice.
        for test in list(phase, &["subtasks"]) {
            let name = text(test, &["lane"]).unwrap_or_else(|| NO_LANE.to_owned());
            lanes_of_phase.entry(n).or_default().insert(name.clone());
            let lane = match lanes.iter_mut().position(|l| l.name == name) {
                Some(i) => &mut lanes[i],
                None => {
                    lanes.push(Lane {
                        name,
                        first: pos,
                        tests: Vec::new(),
                        phases: BTreeSet::new(),
                    });
                    lanes.last_mut().expect("just pushed")
                }
            };
            lane.tests.push(test);
            lane.phases.insert(n);
        }
    }
    lanes.sort_by(|a, b| {
        (a.first, lane_rank(&a.name), &a.name).cmp(&(b.first, lane_rank(&b.name), &b.name))
    });
    let first_of: HashMap<&str, usize> = lanes.iter().map(|l| (l.name.as_str(), l.first)).collect();
    lanes
        .iter()
        .map(|lane| {
            let waits_on: BTreeSet<&str> = lane
                .phases
                .iter()
                .flat_map(|n| depends_on.get(n).into_iter().flatten())
                .flat_map(|dep| lanes_of_phase.get(dep).into_iter().flatten())
                .map(String::as_str)
                // Only on lanes that start earlier, so a lane that comes back in a later
                // phase cannot make the graph circular.
                .filter(|other| first_of.get(other).is_some_and(|f| *f < lane.first))
                .collect();
            let deps = lanes
                .iter()
                .filter(|l| waits_on.contains(l.name.as_str()))
                .map(|l| l.name.clone())
                .collect();
            let count = lane.tests.len();
            ProcessNode {
                id: lane.name.clone(),
                label: format!(
                    "{} · {count} test{}",
                    lane.name,
                    if count == 1 { "" } else { "s" }
                ),
                status: progress
                    .and_then(|p| p.get(&lane.name))
                    .and_then(as_text)
                    .unwrap_or_else(|| lane_status(&lane.tests)),
                started_at: lane
                    .tests
                    .iter()
                    .filter_map(|t| time_in(t, &["started_at"], zone))
                    .min(),
                finished_at: finished(&lane.tests, zone),
                deps,
            }
        })
        .collect()
}

/// A lane's status from its tests' statuses, in the words `lane_progress` uses
/// (`pending`, `running`, `passed`, `failed`), plus `blocked` for a stuck or blocked test.
fn lane_status(tests: &[&Value]) -> String {
    let statuses: Vec<String> = tests
        .iter()
        .map(|t| text(t, &["status"]).unwrap_or_else(|| "pending".to_owned()))
        .collect();
    let any = |words: &[&str]| statuses.iter().any(|s| words.contains(&s.as_str()));
    let status = if any(&["failed"]) {
        "failed"
    } else if any(&["stuck", "blocked"]) {
        "blocked"
    } else if any(&["in_progress"]) {
        "running"
    } else if !statuses.is_empty() && statuses.iter().all(|s| s == "completed") {
        "passed"
    } else {
        "pending"
    };
    status.to_owned()
}

/// When the last test of a lane finished, once every one has.
fn finished(tests: &[&Value], zone: &Tz) -> Option<DateTime<Utc>> {
    let times: Option<Vec<DateTime<Utc>>> = tests
        .iter()
        .map(|t| time_in(t, &["completed_at"], zone))
        .collect();
    times?.into_iter().max()
}

/// One node per lane of `lane_progress`, for a spec that has no test plan yet.
pub(crate) fn progress_nodes(progress: Option<&Value>) -> Vec<ProcessNode> {
    let Some(lanes) = progress.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut nodes: Vec<ProcessNode> = lanes
        .iter()
        .map(|(lane, status)| ProcessNode {
            id: lane.clone(),
            label: lane.clone(),
            status: as_text(status).unwrap_or_else(|| "pending".to_owned()),
            started_at: None,
            finished_at: None,
            deps: Vec::new(),
        })
        .collect();
    nodes.sort_by(|a, b| (lane_rank(&a.id), &a.id).cmp(&(lane_rank(&b.id), &b.id)));
    nodes
}

/// One node per subtask of a kanban detail, labelled with its lane and grouped lane by
/// lane. The board flattens the plan's phases away, so there are no dependencies unless
/// a subtask names its own.
pub(crate) fn subtask_nodes(detail: &Value, zone: &Tz) -> Vec<ProcessNode> {
    let mut nodes: Vec<(usize, ProcessNode)> = list(detail, &["subtasks"])
        .iter()
        .enumerate()
        .map(|(i, sub)| {
            let lane = text(sub, &["lane"]);
            let title = text(sub, &["title", "description"])
                .unwrap_or_else(|| format!("Subtask {}", i + 1));
            let rank = lane.as_deref().map_or(LANES.len(), lane_rank);
            let node = ProcessNode {
                id: text(sub, &["id"]).unwrap_or_else(|| i.to_string()),
                label: match lane {
                    Some(lane) => format!("{lane} · {title}"),
                    None => title,
                },
                status: text(sub, &["status"]).unwrap_or_else(|| "pending".into()),
                started_at: time_in(sub, &["started_at", "startedAt"], zone),
                finished_at: time_in(sub, &["completed_at", "completedAt"], zone),
                deps: list(sub, &["depends_on", "dependsOn"])
                    .iter()
                    .filter_map(as_text)
                    .collect(),
            };
            (rank, node)
        })
        .collect();
    nodes.sort_by_key(|(rank, _)| *rank);
    nodes.into_iter().map(|(_, node)| node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test(id: &str, lane: &str, status: &str) -> Value {
        json!({"id": id, "lane": lane, "status": status})
    }

    #[test]
    fn lanes_wait_on_the_lanes_of_the_phases_they_depend_on() {
        let plan = json!({"phases": [
            {"phase": 1, "subtasks": [test("u1", "unit", "completed"), test("a1", "api", "in_progress")],
             "chunks": [test("u1", "unit", "completed")]},
            {"phase": 2, "subtasks": [test("b1", "browser", "pending")], "depends_on": [1]},
            {"phase": 3, "subtasks": [test("u2", "unit", "pending"), test("m1", "mutation", "pending")],
             "depends_on": [2]}
        ]});
        let nodes = plan_nodes(&plan, None, &Tz::UTC);
        let shape: Vec<_> = nodes
            .iter()
            .map(|n| (n.id.as_str(), n.status.as_str(), n.deps.clone()))
            .collect();
        // Unit comes back in phase 3, after browser: it keeps no edge to browser.
        assert_eq!(
            shape,
            [
                ("unit", "pending", vec![]),
                ("api", "running", vec![]),
                (
                    "browser",
                    "pending",
                    vec!["unit".to_owned(), "api".to_owned()]
                ),
                ("mutation", "pending", vec!["browser".to_owned()]),
            ]
        );
        assert_eq!(nodes[0].label, "unit · 2 tests");
        assert_eq!(nodes[3].label, "mutation · 1 test");
    }

    #[test]
    fn lane_progress_beats_the_plans_own_statuses() {
        let plan = json!({"phases": [{"phase": 1, "subtasks": [test("u1", "unit", "pending")]}]});
        let progress = json!({"unit": "passed", "browser": "pending"});
        let nodes = plan_nodes(&plan, Some(&progress), &Tz::UTC);
        assert_eq!(nodes.len(), 1, "only the plan's lanes are nodes");
        assert_eq!(nodes[0].status, "passed");
    }

    #[test]
    fn lane_statuses_sum_up_their_tests() {
        let status = |s: &[&str]| {
            let tests: Vec<Value> = s.iter().map(|s| test("t", "unit", s)).collect();
            lane_status(&tests.iter().collect::<Vec<_>>())
        };
        assert_eq!(status(&["completed", "failed"]), "failed");
        assert_eq!(status(&["completed", "stuck"]), "blocked");
        assert_eq!(status(&["completed", "in_progress"]), "running");
        assert_eq!(status(&["completed", "completed"]), "passed");
        assert_eq!(status(&["completed", "pending"]), "pending");
    }
}

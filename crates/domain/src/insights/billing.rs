//! Billing modes: which usage counts dollars. Metered modes (`api`, `cloud`) count real
//! dollars; a subscription or local worker's `cost_usd` is notional (shown, never spent);
//! usage without a billing mode counts its `cost_usd` as sent.

use chrono::{DateTime, Utc};

use crate::event::{Service, Usage};
use crate::workitem::TaskUsage;

/// Whether a billing mode bills real dollars (`api` or `cloud`, any case).
pub fn is_metered(mode: &str) -> bool {
    let mode = mode.trim();
    mode.eq_ignore_ascii_case("api") || mode.eq_ignore_ascii_case("cloud")
}

/// One attributable slice of a task's usage: a worker's share, or the task-level rest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contribution<'a> {
    pub service: Service,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub worker: Option<&'a str>,
    pub billing_mode: Option<&'a str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// Dollars counted; `None` when the mode is unmetered or nothing was sent.
    pub cost_usd: Option<f64>,
    /// Dollars an unmetered worker reported: shown, never counted.
    pub notional_usd: f64,
    pub at: DateTime<Utc>,
}

fn mode_of(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|m| !m.is_empty())
}

/// Dollars a slice counts: metered modes count what was sent (0 when absent), unmetered
/// modes never count, no mode counts what was sent.
fn dollars(mode: Option<&str>, sent: Option<f64>) -> Option<f64> {
    match mode {
        Some(m) if is_metered(m) => Some(sent.unwrap_or(0.0)),
        Some(_) => None,
        None => sent,
    }
}

/// The notional share of `sent` dollars under `mode`: what an unmetered mode reported.
fn notional(mode: Option<&str>, sent: Option<f64>) -> f64 {
    match mode {
        Some(m) if !is_metered(m) => sent.unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The mode every worker shares, or `None` when they differ or there are none.
fn shared_mode<'a>(modes: impl Iterator<Item = Option<&'a str>>) -> Option<&'a str> {
    let mut modes = modes;
    match modes.next() {
        Some(first) if modes.all(|m| m == first) => first,
        _ => None,
    }
}

/// Splits a usage block's dollars into metered spend and notional dollars, by each
/// worker's billing mode; dollars no worker claimed take the mode all workers share.
pub fn split_dollars(usage: &Usage) -> (f64, f64) {
    let (mut spend, mut notional_usd, mut claimed) = (0.0, 0.0, 0.0);
    for w in &usage.workers {
        let mode = mode_of(w.billing_mode.as_deref());
        spend += dollars(mode, w.cost_usd).unwrap_or(0.0);
        notional_usd += notional(mode, w.cost_usd);
        claimed += w.cost_usd.unwrap_or(0.0);
    }
    let rest = (usage.cost_usd.unwrap_or(0.0) - claimed).max(0.0);
    if rest > 1e-12 {
        let mode = shared_mode(
            usage
                .workers
                .iter()
                .map(|w| mode_of(w.billing_mode.as_deref())),
        );
        spend += dollars(mode, Some(rest)).unwrap_or(0.0);
        notional_usd += notional(mode, Some(rest));
    }
    (spend, notional_usd)
}

/// Splits a task's usage into per-worker slices plus a task-level rest.
///
/// The rest (earlier runs, tokens no worker claimed) takes the billing mode all workers
/// share, or none when they differ. A task-level cost of exactly 0 reads as not sent,
/// because the domain's `UsageAmounts` cannot tell the two apart.
pub(crate) fn contributions(task: &TaskUsage) -> Vec<Contribution<'_>> {
    let total = task.total();
    let task_model = task.model.as_deref().filter(|m| !m.trim().is_empty());
    let mut out = Vec::with_capacity(task.workers.len() + 1);
    let (mut worker_tokens, mut worker_cost) = (0u64, 0.0f64);
    let (mut worker_in, mut worker_out) = (0u64, 0u64);
    for w in &task.workers {
        let mode = mode_of(w.billing_mode.as_deref());
        let tokens = w.total();
        let (input, output) = (w.input_tokens.unwrap_or(0), w.output_tokens.unwrap_or(0));
        worker_tokens = worker_tokens.saturating_add(tokens);
        worker_in = worker_in.saturating_add(input);
        worker_out = worker_out.saturating_add(output);
        worker_cost += w.cost_usd.unwrap_or(0.0);
        out.push(Contribution {
            service: task.service,
            model: w
                .model
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .or(task_model),
            provider: w.provider.as_deref(),
            worker: w.worker_id.as_deref(),
            billing_mode: mode,
            input_tokens: input,
            output_tokens: output,
            total_tokens: tokens,
            cost_usd: dollars(mode, w.cost_usd),
            notional_usd: notional(mode, w.cost_usd),
            at: task.at,
        });
    }
    let shared_mode = shared_mode(
        task.workers
            .iter()
            .map(|w| mode_of(w.billing_mode.as_deref())),
    );
    let rest_tokens = total.total_tokens.saturating_sub(worker_tokens);
    let rest_in = total.input_tokens.saturating_sub(worker_in);
    let rest_out = total.output_tokens.saturating_sub(worker_out);
    let rest_cost = (total.reported_usd() - worker_cost).max(0.0);
    if out.is_empty() || rest_tokens > 0 || rest_cost > 1e-12 || rest_in + rest_out > 0 {
        let sent = (rest_cost > 0.0).then_some(rest_cost);
        out.push(Contribution {
            service: task.service,
            model: task_model,
            provider: None,
            worker: None,
            billing_mode: shared_mode,
            input_tokens: rest_in,
            output_tokens: rest_out,
            total_tokens: rest_tokens,
            cost_usd: dollars(shared_mode, sent),
            notional_usd: notional(shared_mode, sent),
            at: task.at,
        });
    }
    out
}

/// The dollars a task counts under the billing rules, `None` when none are counted.
pub(crate) fn task_cost(task: &TaskUsage) -> Option<f64> {
    contributions(task)
        .iter()
        .filter_map(|c| c.cost_usd)
        .fold(None, |acc, c| Some(acc.unwrap_or(0.0) + c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WorkerUsage;
    use crate::workitem::UsageAmounts;

    fn task(total: u64, cost: f64, workers: Vec<WorkerUsage>) -> TaskUsage {
        TaskUsage {
            service: Service::AIFACTORY,
            task_id: "p:1".into(),
            model: Some("m".into()),
            at: DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
                .unwrap()
                .into(),
            current: UsageAmounts {
                input_tokens: 0,
                output_tokens: 0,
                total_tokens: total,
                cost_usd: cost,
                notional_cost_usd: 0.0,
            },
            earlier_runs: UsageAmounts::default(),
            runs: 1,
            phase: None,
            workers,
            run_figures: Vec::new(),
        }
    }

    fn worker(mode: Option<&str>, tokens: u64, cost: Option<f64>) -> WorkerUsage {
        WorkerUsage {
            worker_id: Some("w".into()),
            provider: Some("anthropic".into()),
            model: None,
            tokens: Some(tokens),
            cost_usd: cost,
            billing_mode: mode.map(str::to_owned),
            ..WorkerUsage::default()
        }
    }

    #[test]
    fn metered_modes_are_api_and_cloud_only() {
        assert!(is_metered("api") && is_metered("Cloud"));
        assert!(!is_metered("subscription") && !is_metered("local") && !is_metered(""));
    }

    #[test]
    fn subscription_workers_never_count_dollars_even_when_sent() {
        let t = task(100, 5.0, vec![worker(Some("subscription"), 100, Some(5.0))]);
        assert_eq!(task_cost(&t), None);
        let t = task(100, 5.0, vec![worker(Some("api"), 100, Some(5.0))]);
        assert_eq!(task_cost(&t), Some(5.0));
    }

    #[test]
    fn usage_without_a_mode_counts_its_cost_as_sent() {
        assert_eq!(task_cost(&task(100, 2.5, vec![])), Some(2.5));
        assert_eq!(task_cost(&task(100, 0.0, vec![])), None);
    }

    #[test]
    fn tokens_no_worker_claimed_take_the_shared_mode() {
        let t = task(150, 3.0, vec![worker(Some("local"), 100, None)]);
        let parts = contributions(&t);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].notional_usd, 3.0);
        assert_eq!(parts[1].total_tokens, 50);
        assert_eq!(parts[1].billing_mode, Some("local"));
        assert_eq!(task_cost(&t), None);
    }
}

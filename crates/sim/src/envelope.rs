//! The completion envelopes the three services POST, in the shapes their own envelope
//! builders give them (PFactory without CloudEvents attributes, AIFactory and TFactory
//! with), and the usage blocks they carry. Built as plain JSON: the simulator speaks
//! the services' wire format, not CFactory's types.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

/// One completion envelope under construction.
pub(crate) struct Envelope(Map<String, Value>);

impl Envelope {
    /// The RFC's five required fields; a sender adds its own time and attributes.
    pub(crate) fn new(
        service: &str,
        task_id: &str,
        correlation_key: &str,
        status: &str,
        phase: &str,
    ) -> Self {
        let mut map = Map::new();
        map.insert("correlation_key".into(), json!(correlation_key));
        map.insert("service".into(), json!(service));
        map.insert("task_id".into(), json!(task_id));
        map.insert("status".into(), json!(status));
        map.insert("phase".into(), json!(phase));
        Self(map)
    }

    /// PFactory's only timestamp: it sends no `id`, no `time`, no CloudEvents attributes.
    pub(crate) fn updated_at(self, time: &str) -> Self {
        self.with("updated_at", json!(time))
    }

    /// AIFactory's and TFactory's CloudEvents attributes; `kind` ends the `type`
    /// (`completion`, `worker`, `worker_progress`).
    pub(crate) fn cloud_event(
        self,
        id: String,
        kind: &str,
        time: DateTime<Utc>,
        traceparent: String,
    ) -> Self {
        let service = self.0["service"].as_str().unwrap_or_default().to_owned();
        self.with("id", json!(id))
            .with("specversion", json!("1.0"))
            .with("source", json!(format!("/{service}")))
            .with("type", json!(format!("io.factory.{service}.{kind}")))
            .with("time", json!(iso(time)))
            .with("traceparent", json!(traceparent))
    }

    /// Adds (or replaces) one field.
    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_owned(), value);
        self
    }

    /// The finished envelope.
    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// A time as ISO-8601 UTC with milliseconds.
pub(crate) fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current wall-clock time as ISO-8601 UTC.
pub(crate) fn now_iso() -> String {
    iso(Utc::now())
}

/// The current time as Python's `isoformat()` writes an aware UTC time
/// (`2026-12-04T10:06:00.123456+00:00`): how TFactory's status files stamp a spec.
pub(crate) fn now_utc_offset() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// The current local time with no offset (`2026-12-04T14:52:10.991873`): how the
/// kanban boards stamp a task from its folder's file times.
pub(crate) fn now_local_naive() -> String {
    chrono::Local::now()
        .naive_local()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A random UUID v4 drawn from the seeded generator, so a seed repeats its ids.
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A 40-hex-digit commit sha drawn from the seeded generator.
pub(crate) fn sha(rng: &mut StdRng) -> String {
    hex(rng, 20)
}

/// A W3C `traceparent` drawn from the seeded generator.
pub(crate) fn traceparent(rng: &mut StdRng) -> String {
    format!("00-{}-{}-01", hex(rng, 16), hex(rng, 8))
}

/// How a worker is billed. `api` and `cloud` are metered; a subscription worker still
/// reports a notional dollar figure; a local one costs nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Billing {
    Api,
    Cloud,
    Subscription,
    Local,
}

impl Billing {
    fn as_str(self) -> &'static str {
        match self {
            Billing::Api => "api",
            Billing::Cloud => "cloud",
            Billing::Subscription => "subscription",
            Billing::Local => "local",
        }
    }

    fn metered(self) -> bool {
        matches!(self, Billing::Api | Billing::Cloud)
    }
}

/// One worker's running total within a run.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) role: &'static str,
    pub(crate) provider: &'static str,
    pub(crate) model: &'static str,
    pub(crate) billing: Billing,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) duration_ms: u64,
    /// The subtask it last worked on, for a coder.
    pub(crate) subtask: Option<String>,
}

impl Worker {
    fn total(&self) -> u64 {
        self.input + self.output
    }

    /// The agent phase the worker's role plays.
    fn agent_phase(&self) -> &'static str {
        match self.role {
            "planner" => "planning",
            "qa" => "qa_review",
            _ => "coding",
        }
    }

    /// Dollars at list price, zero for a local model.
    fn cost(&self) -> f64 {
        if self.billing == Billing::Local {
            return 0.0;
        }
        let (per_in, per_out) = match self.model {
            "gpt-5" => (1.25, 10.0),
            "claude-opus-4-1" => (15.0, 75.0),
            _ => (3.0, 15.0),
        };
        round_cents((self.input as f64 * per_in + self.output as f64 * per_out) / 1_000_000.0)
    }

    /// AIFactory's `worker` block: what one worker did in this run.
    pub(crate) fn block(&self, worker_id: &str) -> Value {
        json!({
            "worker_id": worker_id,
            "subtask_id": self.subtask,
            "agent_phase": self.agent_phase(),
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "total_tokens": self.total(),
            "cost_usd": self.cost(),
            "duration_ms": self.duration_ms,
        })
    }
}

fn round_cents(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A token meter: AIFactory's restarts with each run, PFactory's and TFactory's keep a
/// running total.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    pub(crate) workers: Vec<Worker>,
    pub(crate) budget_usd: f64,
    /// Metered dollars of the runs before this one, counted against the budget.
    spent_before_usd: f64,
}

/// The provider mixes a run can use, picked per task.
pub(crate) const PROFILES: [[(&str, &str, &str, Billing); 3]; 4] = [
    [
        ("planner", "anthropic", "claude-sonnet-4-6", Billing::Api),
        ("coder", "anthropic", "claude-sonnet-4-6", Billing::Api),
        ("qa", "anthropic", "claude-sonnet-4-6", Billing::Api),
    ],
    [
        ("planner", "anthropic", "claude-opus-4-1", Billing::Api),
        ("coder", "openai", "gpt-5", Billing::Api),
        ("qa", "anthropic", "claude-sonnet-4-6", Billing::Api),
    ],
    [
        (
            "planner",
            "anthropic",
            "claude-sonnet-4-6",
            Billing::Subscription,
        ),
        ("coder", "ollama", "qwen3-coder:30b", Billing::Local),
        (
            "qa",
            "anthropic",
            "claude-sonnet-4-6",
            Billing::Subscription,
        ),
    ],
    [
        ("planner", "anthropic", "claude-sonnet-4-6", Billing::Api),
        ("coder", "bedrock", "claude-sonnet-4-6", Billing::Cloud),
        ("qa", "openai", "gpt-5", Billing::Api),
    ],
];

impl Meter {
    /// A zeroed meter with the workers of provider profile `profile`.
    pub(crate) fn new(profile: usize, budget_usd: f64) -> Self {
        let workers = PROFILES[profile % PROFILES.len()]
            .iter()
            .map(|&(role, provider, model, billing)| Worker {
                role,
                provider,
                model,
                billing,
                input: 0,
                output: 0,
                duration_ms: 0,
                subtask: None,
            })
            .collect();
        Self {
            workers,
            budget_usd,
            spent_before_usd: 0.0,
        }
    }

    /// Starts a new run: every running total back to zero, what was spent kept against
    /// the budget.
    pub(crate) fn reset(&mut self) {
        self.spent_before_usd = self.spent_usd();
        for w in &mut self.workers {
            w.input = 0;
            w.output = 0;
            w.duration_ms = 0;
            w.subtask = None;
        }
    }

    /// Charges some tokens and time to the worker playing `role` (the first one if none
    /// does).
    pub(crate) fn charge(
        &mut self,
        role: &str,
        subtask: Option<&str>,
        (input, output): (u64, u64),
        ms: u64,
    ) {
        let idx = self
            .workers
            .iter()
            .position(|w| w.role == role)
            .unwrap_or(0);
        if let Some(w) = self.workers.get_mut(idx) {
            w.input += input;
            w.output += output;
            w.duration_ms += ms;
            if let Some(s) = subtask {
                w.subtask = Some(s.to_owned());
            }
        }
    }

    /// The worker playing `role`.
    pub(crate) fn worker(&self, role: &str) -> Option<&Worker> {
        self.workers.iter().find(|w| w.role == role)
    }

    /// Tokens so far.
    pub(crate) fn total_tokens(&self) -> u64 {
        self.workers.iter().map(Worker::total).sum()
    }

    /// Dollars so far, notional subscription dollars included (as AIFactory rolls
    /// them up).
    pub(crate) fn cost_usd(&self) -> f64 {
        round_cents(self.workers.iter().map(Worker::cost).sum())
    }

    /// Metered dollars over every run, the figure the budget is held to.
    fn spent_usd(&self) -> f64 {
        let metered: f64 = self
            .workers
            .iter()
            .filter(|w| w.billing.metered())
            .map(Worker::cost)
            .sum();
        round_cents(self.spent_before_usd + metered)
    }

    /// The model a usage block names: the coder's, else the first worker's.
    fn model(&self) -> Option<&'static str> {
        self.worker("coder")
            .or(self.workers.first())
            .map(|w| w.model)
    }

    /// The plain `usage` block PFactory and TFactory send: totals and a model.
    pub(crate) fn totals_json(&self) -> Value {
        let input: u64 = self.workers.iter().map(|w| w.input).sum();
        let output: u64 = self.workers.iter().map(|w| w.output).sum();
        json!({
            "input_tokens": input,
            "output_tokens": output,
            "total_tokens": input + output,
            "cost_usd": self.cost_usd(),
            "model": self.model(),
        })
    }

    /// AIFactory's `usage` block: totals, `workers[]`, `by_provider{}`, `by_model{}` and
    /// `budget`. Only workers that have run so far are listed.
    pub(crate) fn to_json(&self, worker_prefix: &str) -> Value {
        let mut by_provider = Map::new();
        let mut by_model = Map::new();
        let mut workers = Vec::new();
        for w in self.workers.iter().filter(|w| w.total() > 0) {
            workers.push(json!({
                "worker_id": format!("{worker_prefix}-{}", w.role),
                "phase": w.agent_phase(),
                "subtask_id": w.subtask,
                "provider": w.provider,
                "model": w.model,
                "input_tokens": w.input,
                "output_tokens": w.output,
                "total_tokens": w.total(),
                "cost_usd": w.cost(),
                "duration_ms": w.duration_ms,
                "billing_mode": w.billing.as_str(),
            }));
            for (map, key) in [(&mut by_provider, w.provider), (&mut by_model, w.model)] {
                let entry = map.entry(key.to_owned()).or_insert_with(|| {
                    json!({
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "total_tokens": 0,
                        "cost_usd": 0.0,
                        "workers": 0,
                        "duration_ms": 0,
                        "billing_mode": w.billing.as_str(),
                    })
                });
                let add = |entry: &mut Value, field: &str, n: u64| {
                    entry[field] = json!(entry[field].as_u64().unwrap_or(0) + n);
                };
                add(entry, "input_tokens", w.input);
                add(entry, "output_tokens", w.output);
                add(entry, "total_tokens", w.total());
                add(entry, "workers", 1);
                add(entry, "duration_ms", w.duration_ms);
                let before = entry["cost_usd"].as_f64().unwrap_or(0.0);
                entry["cost_usd"] = json!(round_cents(before + w.cost()));
            }
        }
        let spent = self.spent_usd();
        let mut usage = self.totals_json();
        usage["workers"] = json!(workers);
        usage["by_provider"] = json!(by_provider);
        usage["by_model"] = json!(by_model);
        usage["budget"] = json!({
            "limit_usd": self.budget_usd,
            "spent_usd": spent,
            "exceeded": spent > self.budget_usd,
        });
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_report_input_output_and_total_tokens_never_a_tokens_field() {
        let mut m = Meter::new(2, 10.0);
        m.charge("planner", None, (1_000, 200), 400);
        m.charge("coder", Some("subtask-1"), (3_000, 500), 500);
        let usage = m.to_json("proj:001");
        let workers = usage["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2, "the idle qa worker is not listed");
        for w in workers {
            assert!(w.get("tokens").is_none(), "{w}");
            assert_eq!(
                w["total_tokens"].as_u64().unwrap(),
                w["input_tokens"].as_u64().unwrap() + w["output_tokens"].as_u64().unwrap()
            );
        }
        let planner = &workers[0];
        assert_eq!(planner["billing_mode"], "subscription");
        assert!(
            planner["cost_usd"].as_f64().unwrap() > 0.0,
            "notional dollars"
        );
        assert_eq!(workers[1]["billing_mode"], "local");
        assert_eq!(workers[1]["cost_usd"], 0.0);
        assert_eq!(workers[1]["subtask_id"], "subtask-1");
        assert_eq!(usage["total_tokens"], 4_700);
        // Subscription and local dollars are not metered: nothing counts against the budget.
        assert_eq!(usage["budget"]["spent_usd"], 0.0);
        assert_eq!(usage["budget"]["exceeded"], false);
        assert!(usage["budget"].get("remaining_usd").is_none());
    }

    #[test]
    fn the_budget_counts_every_run_while_usage_restarts_with_each() {
        let mut m = Meter::new(0, 0.05);
        m.charge("coder", None, (10_000, 1_000), 500);
        let first = m.cost_usd();
        assert!(first > 0.0 && first < 0.05, "{first}");
        m.reset();
        assert_eq!(m.total_tokens(), 0);
        m.charge("coder", None, (10_000, 1_000), 500);
        let usage = m.to_json("t");
        assert_eq!(usage["cost_usd"], first);
        assert_eq!(usage["budget"]["spent_usd"], round_cents(2.0 * first));
        assert_eq!(usage["budget"]["exceeded"], true);
    }

    #[test]
    fn a_worker_block_names_its_phase_and_subtask() {
        let mut m = Meter::new(3, 10.0);
        m.charge("coder", Some("subtask-2"), (300, 40), 1_500);
        let block = m.worker("coder").unwrap().block("sub-A");
        assert_eq!(block["agent_phase"], "coding");
        assert_eq!(block["subtask_id"], "subtask-2");
        assert_eq!(block["provider"], "bedrock");
        assert_eq!(block["total_tokens"], 340);
        assert_eq!(block["duration_ms"], 1_500);
        let usage = m.to_json("t");
        assert_eq!(usage["workers"][0]["billing_mode"], "cloud");
        assert_eq!(usage["by_provider"]["bedrock"]["total_tokens"], 340);
    }

    #[test]
    fn cloud_events_carry_their_attributes_and_plain_ones_only_updated_at() {
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(1);
        let tp = traceparent(&mut rng);
        let e = Envelope::new("aifactory", "proj:001", "142", "worker_done", "worker")
            .cloud_event("x".into(), "worker", Utc::now(), tp.clone())
            .into_value();
        assert_eq!(e["type"], "io.factory.aifactory.worker");
        assert_eq!(e["source"], "/aifactory");
        assert_eq!(e["traceparent"], tp);
        assert_eq!(tp.len(), 55);
        let p = Envelope::new("pfactory", "001-x", "pf-001-x", "ingested", "ingested")
            .updated_at(&now_iso())
            .into_value();
        for absent in ["id", "time", "type", "specversion", "source"] {
            assert!(p.get(absent).is_none(), "{absent} in {p}");
        }
        assert!(p["updated_at"].is_string());
    }
}

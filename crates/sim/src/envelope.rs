//! The completion envelope the three services POST (RFC-0001 v1.3 with the 0001a
//! evidence addendum), and the usage block they carry. Built as plain JSON: the
//! simulator speaks the services' wire format, not CFactory's types.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

/// One completion envelope under construction.
pub(crate) struct Envelope(Map<String, Value>);

impl Envelope {
    /// The CloudEvents core plus the RFC's five required fields. Both `time` and the
    /// older `updated_at` are sent: the published asyncapi still requires the latter.
    pub(crate) fn new(
        id: String,
        service: &str,
        task_id: &str,
        correlation_key: &str,
        status: &str,
        phase: &str,
    ) -> Self {
        let now = now_iso();
        let mut map = Map::new();
        map.insert("id".into(), json!(id));
        map.insert("specversion".into(), json!("1.0"));
        map.insert("source".into(), json!(format!("/{service}")));
        map.insert(
            "type".into(),
            json!(format!("io.factory.{service}.completion")),
        );
        map.insert("time".into(), json!(now));
        map.insert("updated_at".into(), json!(now));
        map.insert("correlation_key".into(), json!(correlation_key));
        map.insert("service".into(), json!(service));
        map.insert("task_id".into(), json!(task_id));
        map.insert("status".into(), json!(status));
        map.insert("phase".into(), json!(phase));
        Self(map)
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

/// The current wall-clock time as ISO-8601 UTC.
pub(crate) fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
    (0..20)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// How a worker is billed: metered modes carry dollars, the others only tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Billing {
    Api,
    Subscription,
    Local,
}

impl Billing {
    fn as_str(self) -> &'static str {
        match self {
            Billing::Api => "api",
            Billing::Subscription => "subscription",
            Billing::Local => "local",
        }
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
}

impl Worker {
    fn cost(&self) -> Option<f64> {
        if self.billing != Billing::Api {
            return None;
        }
        let (per_in, per_out) = match self.model {
            "gpt-5" => (1.25, 10.0),
            "claude-opus-4-1" => (15.0, 75.0),
            _ => (3.0, 15.0),
        };
        Some(round_cents(
            (self.input as f64 * per_in + self.output as f64 * per_out) / 1_000_000.0,
        ))
    }
}

fn round_cents(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A task's token meter: cumulative for the current run, reset by a new run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    pub(crate) workers: Vec<Worker>,
    pub(crate) budget_usd: f64,
}

/// The provider mixes a run can use, picked per task.
const PROFILES: [[(&str, &str, &str, Billing); 3]; 3] = [
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
            })
            .collect();
        Self {
            workers,
            budget_usd,
        }
    }

    /// Starts a new run: every running total back to zero.
    pub(crate) fn reset(&mut self) {
        for w in &mut self.workers {
            w.input = 0;
            w.output = 0;
        }
    }

    /// Charges some tokens to the worker playing `role` (the first one if none does).
    pub(crate) fn charge(&mut self, role: &str, input: u64, output: u64) {
        let idx = self
            .workers
            .iter()
            .position(|w| w.role == role)
            .unwrap_or(0);
        if let Some(w) = self.workers.get_mut(idx) {
            w.input += input;
            w.output += output;
        }
    }

    /// Tokens so far.
    pub(crate) fn total_tokens(&self) -> u64 {
        self.workers.iter().map(|w| w.input + w.output).sum()
    }

    /// Metered dollars so far; none when no worker is metered (subscription and
    /// local runs never report a notional dollar figure).
    pub(crate) fn cost_usd(&self) -> Option<f64> {
        let costs: Vec<f64> = self.workers.iter().filter_map(Worker::cost).collect();
        (!costs.is_empty()).then(|| round_cents(costs.iter().fold(0.0, |a, c| a + c)))
    }

    /// The `usage` block: totals, `workers[]`, `by_provider{}`, `by_model{}`, `budget`.
    pub(crate) fn to_json(&self, worker_prefix: &str) -> Value {
        let input: u64 = self.workers.iter().map(|w| w.input).sum();
        let output: u64 = self.workers.iter().map(|w| w.output).sum();
        let mut by_provider = Map::new();
        let mut by_model = Map::new();
        let mut workers = Vec::new();
        for w in &self.workers {
            let tokens = w.input + w.output;
            workers.push(json!({
                "worker_id": format!("{worker_prefix}-{}", w.role),
                "role": w.role,
                "provider": w.provider,
                "model": w.model,
                "tokens": tokens,
                "input_tokens": w.input,
                "output_tokens": w.output,
                "cost_usd": w.cost(),
                "billing_mode": w.billing.as_str(),
            }));
            for (map, key) in [(&mut by_provider, w.provider), (&mut by_model, w.model)] {
                let entry = map
                    .entry(key.to_owned())
                    .or_insert_with(|| json!({"tokens": 0, "cost_usd": null}));
                let t = entry["tokens"].as_u64().unwrap_or(0) + tokens;
                entry["tokens"] = json!(t);
                if let Some(c) = w.cost() {
                    let before = entry["cost_usd"].as_f64().unwrap_or(0.0);
                    entry["cost_usd"] = json!(round_cents(before + c));
                }
            }
        }
        let spent = self.cost_usd();
        let model = self
            .workers
            .iter()
            .find(|w| w.role == "coder")
            .or(self.workers.first())
            .map(|w| w.model);
        json!({
            "input_tokens": input,
            "output_tokens": output,
            "total_tokens": input + output,
            "cost_usd": spent,
            "model": model,
            "workers": workers,
            "by_provider": by_provider,
            "by_model": by_model,
            "budget": {
                "limit_usd": self.budget_usd,
                "spent_usd": spent.unwrap_or(0.0),
                "remaining_usd": round_cents((self.budget_usd - spent.unwrap_or(0.0)).max(0.0)),
            },
        })
    }
}

//! The simulator's configuration: the scenarios it can play and the command-line
//! arguments `cfactory sim` flattens into its own.

use std::net::{Ipv4Addr, SocketAddr};

/// One story a unit of work can tell on its way through plan → code → test.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Plan approved → issue → code done with proof → tests pass with a verdict.
    Happy,
    /// A verify asks for a person's review (or fails), a new build run of the same task
    /// corrects it, the retest passes.
    Handback,
    /// TFactory gives up after two correction cycles, the second of which verified
    /// nothing (`stuck`, `needs_human`), or a coding task stops reporting.
    Stuck,
    /// A coding task ends `qa_failed` (its plan went to AIFactory on the contract path,
    /// no issue), or a later one `failed` having used no tokens.
    Failure,
    /// A verify reports success with nothing counted: the cockpit must call it unproven.
    Unproven,
    /// The pre-coder prompt-injection scan flags the issue and parks the task.
    Injection,
    /// Events first under a synthetic `af-…` key, later linked to an issue number.
    Rekey,
    /// The same event id is delivered twice; the task's budget is exceeded.
    Retry,
    /// A correction run's terminal event, then the first run's again from the outbox.
    #[value(alias = "out_of_order")]
    OutOfOrder,
}

impl Scenario {
    /// Every scenario, longest story first (the order units are handed out in).
    pub const ALL: [Scenario; 9] = [
        Scenario::Stuck,
        Scenario::Handback,
        Scenario::Rekey,
        Scenario::Retry,
        Scenario::OutOfOrder,
        Scenario::Happy,
        Scenario::Injection,
        Scenario::Failure,
        Scenario::Unproven,
    ];

    /// The CLI spelling, also the key in [`crate::SimStats::completed`].
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Happy => "happy",
            Scenario::Handback => "handback",
            Scenario::Stuck => "stuck",
            Scenario::Failure => "failure",
            Scenario::Unproven => "unproven",
            Scenario::Injection => "injection",
            Scenario::Rekey => "rekey",
            Scenario::Retry => "retry",
            Scenario::OutOfOrder => "out-of-order",
        }
    }
}

/// How one simulator run is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where the simulated PFactory listens (port 0 picks a free port).
    pub pfactory_addr: SocketAddr,
    /// Where the simulated AIFactory listens (port 0 picks a free port).
    pub aifactory_addr: SocketAddr,
    /// Where the simulated TFactory listens (port 0 picks a free port).
    pub tfactory_addr: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer <token>` (or the
    /// legacy `?token=`), else it gets 401 (`/api/health` answers anyone; `/ws/events`
    /// closes with 4001, the other feeds refuse the handshake with 403).
    pub token: Option<String>,
    /// The token of an administrator: when set, AIFactory's `DELETE /api/tasks/{id}`
    /// needs it and answers 403 to any other token. It is accepted wherever `token` is.
    pub admin_token: Option<String>,
    /// Where completion envelopes are POSTed; none means they are only counted.
    pub webhook_url: Option<String>,
    /// Added to the webhook URL as `?token=` when set: the real senders send no
    /// authentication header of their own.
    pub webhook_token: Option<String>,
    /// The scenarios to play; empty means all of them.
    pub scenarios: Vec<Scenario>,
    /// Makes a run repeatable: the same seed gives the same ids and the same choices.
    pub seed: u64,
    /// Time scale: 2.0 runs twice as fast as the default schedule.
    pub speed: f64,
    /// How many units of work run; none means enough to cover every scenario.
    pub units: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            pfactory_addr: any_port,
            aifactory_addr: any_port,
            tfactory_addr: any_port,
            token: None,
            admin_token: None,
            webhook_url: None,
            webhook_token: None,
            scenarios: Vec::new(),
            seed: 1,
            speed: 1.0,
            units: None,
        }
    }
}

impl SimConfig {
    /// The scenarios this run plays, in the order units are handed them.
    pub(crate) fn scenario_order(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|s| self.scenarios.is_empty() || self.scenarios.contains(s))
            .collect()
    }

    /// How many units of work run.
    pub(crate) fn unit_count(&self) -> usize {
        self.units
            .unwrap_or_else(|| self.scenario_order().len().max(12))
    }
}

/// The `cfactory sim` command-line arguments.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address of the simulated PFactory.
    #[arg(
        long,
        env = "CFACTORY_SIM_PFACTORY_ADDR",
        default_value = "127.0.0.1:3121"
    )]
    pub pfactory_addr: SocketAddr,
    /// Address of the simulated AIFactory.
    #[arg(
        long,
        env = "CFACTORY_SIM_AIFACTORY_ADDR",
        default_value = "127.0.0.1:3122"
    )]
    pub aifactory_addr: SocketAddr,
    /// Address of the simulated TFactory.
    #[arg(
        long,
        env = "CFACTORY_SIM_TFACTORY_ADDR",
        default_value = "127.0.0.1:3123"
    )]
    pub tfactory_addr: SocketAddr,
    /// Bearer token the simulated services require.
    #[arg(long, env = "CFACTORY_SIM_TOKEN")]
    pub token: Option<String>,
    /// Bearer token of an administrator (needed to delete an AIFactory task).
    #[arg(long, env = "CFACTORY_SIM_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Where to POST completion envelopes (e.g. CFactory's /api/events/completion).
    #[arg(long, env = "CFACTORY_SIM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Key sent with every webhook POST, in the URL as `?token=`.
    #[arg(long, env = "CFACTORY_SIM_WEBHOOK_TOKEN")]
    pub webhook_token: Option<String>,
    /// Scenarios to play (comma-separated or repeated); none means all.
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Seed that makes a run repeatable.
    #[arg(long, env = "CFACTORY_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Time scale (2.0 = twice as fast).
    #[arg(long, env = "CFACTORY_SIM_SPEED", default_value_t = 1.0)]
    pub speed: f64,
    /// How many units of work to run (default: enough to cover every scenario).
    #[arg(long, env = "CFACTORY_SIM_UNITS")]
    pub units: Option<usize>,
}

impl SimArgs {
    /// The configuration these arguments describe.
    pub fn into_config(self) -> SimConfig {
        SimConfig {
            pfactory_addr: self.pfactory_addr,
            aifactory_addr: self.aifactory_addr,
            tfactory_addr: self.tfactory_addr,
            token: self.token,
            admin_token: self.admin_token,
            webhook_url: self.webhook_url,
            webhook_token: self.webhook_token,
            scenarios: self.scenarios,
            seed: self.seed,
            speed: self.speed,
            units: self.units,
        }
    }
}

//! Project tasks, run as `cargo xtask <task>`: the whole test gate, the benchmarks and the
//! demo. Everything here drives the project from outside, the way a developer or CI would.

mod arch;
mod bench;
mod chaos;
mod demo;
mod fanout;
mod fuzz;
mod insights;
mod libfuzz;
mod postgres;
mod queries;
mod test;
mod ui;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "CFactory project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Format check, clippy -D warnings, the architecture check, every test, the API
    /// fuzzer, a bounded chaos run, 30 s of parser fuzzing, and the UI's gate (npm lint,
    /// build, size budget, Vitest, Playwright in Chromium).
    Test {
        /// Skip fmt and clippy (tests and the architecture check still run).
        #[arg(long)]
        quick: bool,
    },
    /// Check the crate graph's rules: the domain reaches no I/O crate and no crate of
    /// ours, adapters do not depend on each other, the copilot reaches no adapter, and
    /// the server sends no HTTP of its own.
    Arch,
    /// Run schemathesis against the built server: every operation of `/openapi.json`,
    /// failing on server errors, undocumented status codes and responses that do not
    /// match their schema.
    FuzzApi {
        /// Generated cases per operation and phase (the test gate runs 10).
        #[arg(long, default_value_t = 100)]
        max_examples: u32,
    },
    /// Coverage-guided fuzzing with libFuzzer (`fuzz/`, built with the nightly toolchain):
    /// runs a target on its checked-in seeds for a fixed time, keeping new inputs in a work
    /// corpus under `target/fuzz`; fails on a crash or panic, naming the reproducer.
    Fuzz(libfuzz::FuzzArgs),
    /// Write the server's `/openapi.json` to `ui/src/openapi/openapi.json` and regenerate the
    /// cockpit's API types (`ui/src/openapi/schema.gen.ts`) from it.
    UiTypes,
    /// Build what the demo needs and run `cfactory demo` (server + simulator).
    Demo {
        /// Arguments passed to `cfactory demo`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Kill the server with SIGKILL while senders ingest, restart it, and check that every
    /// acknowledged event is present exactly once with its usage counted once; then send
    /// SIGTERM under load and check that requests in flight finish. On SQLite and
    /// PostgreSQL.
    Chaos(chaos::ChaosArgs),
    /// Benchmarks; each prints its figures.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Test { quick } => test::run(quick),
        Task::Arch => arch::check(),
        Task::FuzzApi { max_examples } => fuzz::run(max_examples),
        Task::Fuzz(args) => libfuzz::run(&args),
        Task::UiTypes => ui::run_ui_types(),
        Task::Demo { args } => demo::run(&args),
        Task::Chaos(args) => chaos::run(&args),
        Task::Bench { which } => bench::run(which),
    }
}

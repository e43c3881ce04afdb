//! `xtask-full`: every project task but the demo's fast path, run as `cargo xtask <task>`
//! (the `xtask` binary hands them over): the whole test gate, the benchmarks, the dist
//! archive. Everything here drives the project from outside, the way a developer or CI
//! would. Built with the package's `full` feature, which brings the HTTP clients,
//! database drivers and the domain crate the tasks use.

mod arch;
mod bench;
mod chaos;
#[path = "../demo.rs"]
mod demo;
mod dist;
mod fanout;
mod fuzz;
mod insights;
mod libfuzz;
mod mcp_client;
mod postgres;
mod queries;
mod scim;
mod served;
mod test;
mod ui;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "CFactory project tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Format check, clippy -D warnings, the architecture check, every test, the API
    /// fuzzer, the Python MCP SDK's client against `/mcp`, the SCIM conformance checker
    /// against `/scim/v2`, a bounded chaos run, 30 s of
    /// parser fuzzing, the UI's gate (npm lint, build, size budget, Vitest, Playwright in
    /// Chromium), and the dist archive's check (a dev-profile archive unpacked into an
    /// empty folder, its `cfactory demo` run).
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
    /// Connect the Python MCP SDK's client to the built server's `/mcp` with an API key:
    /// initialize (and server/discover), list the tools, call a read and a propose tool.
    McpClient,
    /// Check `/scim/v2` with scim2-tester: discovery, then create, read, replace, PATCH
    /// and delete of Users and Groups with a `scim` key; prints each check and fails on
    /// any failed one.
    ScimCheck,
    /// Coverage-guided fuzzing with libFuzzer (`fuzz/`, built with the nightly toolchain):
    /// runs a target on its checked-in seeds for a fixed time, keeping new inputs in a work
    /// corpus under `target/fuzz`; fails on a crash or panic, naming the reproducer.
    Fuzz(libfuzz::FuzzArgs),
    /// Write the server's `/openapi.json` to `ui/src/openapi/openapi.json` and regenerate the
    /// cockpit's API types (`ui/src/openapi/schema.gen.ts`) from it.
    UiTypes,
    /// Build the release archive for this machine:
    /// `target/dist/cfactory-<version>-<target>.tar.gz` (the binary with the cockpit
    /// embedded, LICENSE, CHANGELOG, the operators' README, the systemd unit and an example
    /// config file) and its `.sha256`.
    Dist(dist::DistArgs),
    /// Build what the demo needs and run `cfactory demo` (server + simulator, on the
    /// demo's own store: emptied at each start unless `--keep` is passed on).
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
    // The HTTP clients here use rustls with ring, the one provider the workspace compiles.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.task {
        Task::Test { quick } => test::run(quick),
        Task::Arch => arch::check(),
        Task::FuzzApi { max_examples } => fuzz::run(max_examples),
        Task::McpClient => mcp_client::run(),
        Task::ScimCheck => scim::run(),
        Task::Fuzz(args) => libfuzz::run(&args),
        Task::UiTypes => ui::run_ui_types(),
        Task::Dist(args) => dist::run(&args),
        Task::Demo { args } => demo::run(&args),
        Task::Chaos(args) => chaos::run(&args),
        Task::Bench { which } => bench::run(which),
    }
}

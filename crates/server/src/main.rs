//! The `cfactory` binary.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use cfactory_server::cli::{self, Cli, Command};
use cfactory_server::settings::LogFormat;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc serves the many small, short-lived allocations of request handling (event
/// text, JSON values, item copies) with less work and less lock contention between
/// threads than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is logged when neither `CFACTORY_LOG` nor `RUST_LOG` says: INFO, with the access
/// log (`cfactory::access`) and without sqlx's per-statement lines.
const DEFAULT_LOG: &str = "info,sqlx=warn,tower_http=info";

/// The log filter: `CFACTORY_LOG`, else `RUST_LOG` (the Rust ecosystem's usual name),
/// else [`DEFAULT_LOG`]. One that does not parse falls back to the default.
fn log_filter() -> EnvFilter {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    set("CFACTORY_LOG")
        .or_else(|| set("RUST_LOG"))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG))
}

fn init_tracing(format: LogFormat) {
    let filter = log_filter();
    // Colours only for a person at a terminal: a file or a log shipper gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings()?;
    init_tracing(settings.log_format);
    match cli.command {
        Command::Sim(args) => cfactory_server::demo::sim(args).await?,
        Command::Demo(args) => cfactory_server::demo::demo(settings, &args).await?,
        Command::Serve(_) => cfactory_server::app::serve(settings).await?,
        Command::Migrate => cli::migrate(&settings).await?,
        Command::Openapi => print!("{}", cfactory_server::api::openapi_document()),
        Command::Keys(command) => cli::keys(&settings, &command).await?,
        Command::Webhooks(command) => cli::webhooks(&settings, &command).await?,
        Command::Audit(cli::AuditCommand::Verify) => {
            let (report, ok) = cli::audit_verify(&settings).await?;
            println!("{report}");
            if !ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Doctor => {
            let found = cli::doctor(&settings).await?;
            for line in &found {
                println!("{line}");
            }
            eprintln!("doctor: {} unreadable rows", found.len());
            if !found.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Ingest(args) => {
            let report = cli::ingest(&settings, &args).await?;
            for reason in &report.rejected {
                eprintln!("rejected: {reason}");
            }
            eprintln!(
                "ingested: {} accepted, {} duplicate, {} rejected",
                report.accepted,
                report.duplicate,
                report.rejected.len()
            );
            if !report.rejected.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cfactory: {e:#}");
            ExitCode::from(2)
        }
    }
}

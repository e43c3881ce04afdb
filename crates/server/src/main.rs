//! The `cfactory` binary.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use cfactory_server::cli::{self, Cli, Command, ConfigCommand};
use cfactory_server::settings::{DEFAULT_LOG, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// mimalloc serves the many small, short-lived allocations of request handling (event
/// text, JSON values, item copies) with less work and less lock contention between
/// threads than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log filter the settings name (`log`: `CFACTORY_LOG`, else `RUST_LOG`, else the
/// default). One that does not parse falls back to the default.
fn log_filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG))
}

/// The most bytes the log writer sends to standard error in one write: a pipe's
/// `PIPE_BUF`, so a batch of lines never interleaves with another writer's line (the
/// `listening on` lines a supervisor reads).
const LOG_BATCH_BYTES: usize = 4096;

/// What the trace export takes when `--otlp-endpoint` is set: the server's own spans at
/// INFO, never those of the exporter's HTTP client (which would trace its own sends).
#[cfg(feature = "otlp")]
const EXPORT_FILTER: &str = "info,sqlx=warn,hyper=off,hyper_util=off,h2=off,reqwest=off,\
                             opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,\
                             opentelemetry_http=off";

/// What must live until the process ends: the log writer's guard (dropping it flushes
/// what is left) and the trace export, if any.
struct Telemetry {
    _logs: tracing_appender::non_blocking::WorkerGuard,
    #[cfg(feature = "otlp")]
    traces: Option<cfactory_otlp::TraceExport>,
}

impl Telemetry {
    /// Sends the spans still batched.
    fn finish(self) {
        #[cfg(feature = "otlp")]
        if let Some(traces) = self.traces {
            traces.shutdown();
        }
    }
}

/// Logs to standard error through a writer thread: a request formats its line and hands
/// it over instead of writing it, and the thread writes whatever lines wait in one go,
/// flushing when none are left. Lossless: past 128 000 waiting lines, loggers wait. With
/// `otlp_endpoint`, spans are also exported there (see [`EXPORT_FILTER`]).
fn init_tracing(
    format: LogFormat,
    filter: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::prelude::*;
    let (writer, logs) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("cfactory-log")
        .finish(std::io::BufWriter::with_capacity(
            LOG_BATCH_BYTES,
            std::io::stderr(),
        ));
    // Colours only for a person at a terminal: a file or a log shipper gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(log_filter(filter)).boxed(),
        LogFormat::Text => fmt.with_filter(log_filter(filter)).boxed(),
    };
    #[cfg(feature = "otlp")]
    {
        let traces = otlp_endpoint
            .map(|endpoint| cfactory_otlp::TraceExport::start(endpoint, env!("CARGO_PKG_VERSION")))
            .transpose()?;
        let export = traces
            .as_ref()
            .map(|t| t.layer().with_filter(EnvFilter::new(EXPORT_FILTER)));
        tracing_subscriber::registry().with(fmt).with(export).init();
        Ok(Telemetry {
            _logs: logs,
            traces,
        })
    }
    // The settings refuse an endpoint in a build without the exporter.
    #[cfg(not(feature = "otlp"))]
    {
        debug_assert!(otlp_endpoint.is_none());
        tracing_subscriber::registry().with(fmt).init();
        Ok(Telemetry { _logs: logs })
    }
}

/// Runs the command; any error is a failure while running (exit 1).
async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    let telemetry = init_tracing(
        settings.log_format,
        &settings.log_filter,
        settings.otlp_endpoint.as_deref(),
    )?;
    let result = self::command(command, settings).await;
    telemetry.finish();
    result
}

async fn command(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    if let Some(note) = &settings.data_dir_note {
        tracing::warn!("{note}");
    }
    match command {
        Command::Sim(args) => cfactory_server::demo::sim(args).await?,
        Command::Demo(args) => cfactory_server::demo::demo(settings, &args).await?,
        Command::Serve(_) => cfactory_server::app::serve(settings).await?,
        Command::Migrate => cli::migrate(&settings).await?,
        Command::Openapi => print!("{}", cfactory_server::api::openapi_document()),
        // Answered before the settings are resolved, in `main`.
        Command::Config(ConfigCommand::Show { .. }) => {}
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

/// Exit code of a usage error: a bad flag (clap's own), an unknown or malformed setting.
const USAGE: u8 = 2;
/// Exit code of a failure while running: the store unreachable, an address in use.
const FAILURE: u8 = 1;

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, flags) = Cli::parse_with_flags();
    let layers = match cli.layers(&flags) {
        Ok(layers) => layers,
        Err(e) => return usage_error(&e),
    };
    if let Command::Config(ConfigCommand::Show { .. }) = cli.command {
        return match layers.show() {
            Ok(text) => {
                print!("{text}");
                match layers.settings() {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => usage_error(&e),
                }
            }
            Err(e) => usage_error(&e),
        };
    }
    let settings = match layers.settings() {
        Ok(settings) => settings,
        Err(e) => return usage_error(&e),
    };
    match run(cli.command, settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cfactory: {e:#}");
            ExitCode::from(FAILURE)
        }
    }
}

fn usage_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("cfactory: {e:#}");
    ExitCode::from(USAGE)
}

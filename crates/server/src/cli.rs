//! The `cfactory` command line: `serve`, `migrate`, `keys`, `ingest`, `config show`. Clap
//! parses the flags; each one given is the top layer of the settings (see
//! [`crate::settings::layers`]), above the environment and the `--config` file. A setting
//! flag's `env` here only shows its variable in `--help`: the layers read the environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use cfactory_domain::ports::ApiKeyStore;
use cfactory_domain::{CompletionEvent, IngestOutcome, TenantId};
use chrono::{DateTime, Utc};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;

use crate::keys;
use crate::settings::layers::{Layers, SETTINGS, Shape};
use crate::settings::{LogFormat, Settings, SqliteSynchronous};
use crate::stores::Stores;

/// CFactory: the cockpit over PFactory, AIFactory and TFactory.
#[derive(Debug, Parser)]
#[command(
    name = "cfactory",
    version,
    about,
    long_about = None,
    after_help = crate::settings::layers::after_help()
)]
pub struct Cli {
    /// Settings every command shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML config file (keys as the environment names without `CFACTORY_`, lower-cased).
    #[arg(long, global = true, env = "CFACTORY_CONFIG")]
    pub config: Option<PathBuf>,
    /// postgres://… or sqlite://PATH [default: sqlite://<data dir>/cfactory.db]
    #[arg(
        long,
        global = true,
        env = "CFACTORY_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Where the embedded store and the generated audit secret live [default:
    /// $STATE_DIRECTORY, else $XDG_STATE_HOME/cfactory, else ~/.local/state/cfactory]
    #[arg(long, global = true, env = "CFACTORY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tenant for writes that come with no key (open mode, `ingest`) [default: default]
    #[arg(long, global = true, env = "CFACTORY_TENANT")]
    pub tenant: Option<String>,
    /// Log format [default: text]
    #[arg(long, global = true, env = "CFACTORY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Export traces to this OpenTelemetry collector over OTLP/HTTP (protobuf), e.g.
    /// http://collector:4318 (spans go to its /v1/traces); needs a build with the `otlp`
    /// feature, as the release archive and the container are [default: no export]
    #[arg(long, global = true, env = "CFACTORY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// How the embedded SQLite store makes a commit durable: `full` flushes the log at
    /// every commit, so an acknowledged event survives a power loss; `normal` flushes at
    /// checkpoints only (faster, but a power loss may lose the last commits)
    /// [default: full]
    #[arg(long, global = true, env = "CFACTORY_SQLITE_SYNCHRONOUS", value_enum)]
    pub sqlite_synchronous: Option<SqliteSynchronous>,
    /// The append-only file where each audit chain's newest entry is noted outside the
    /// store, so a chain deleted or rolled back with its head is caught
    /// [default: audit.anchor in the data dir]
    #[arg(long, global = true, env = "CFACTORY_AUDIT_ANCHOR")]
    pub audit_anchor: Option<PathBuf>,
    /// Seconds a PostgreSQL write waits, for a lock another process holds (a frozen or
    /// cut-off peer) or for a database that does not answer, before it answers 503 with
    /// Retry-After [default: 5]
    #[arg(long, global = true, env = "CFACTORY_LOCK_TIMEOUT_SECONDS")]
    pub lock_timeout_seconds: Option<u64>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API (default 127.0.0.1:3111) and the cockpit (default 127.0.0.1:3110).
    Serve(ServeArgs),
    /// Apply the store's migrations and exit.
    Migrate,
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Replay completion events (a JSON object, a JSON array, or NDJSON) from FILE or `-`
    /// (stdin) through the ingest path.
    Ingest(IngestArgs),
    /// Run simulated PFactory, AIFactory and TFactory (REST, WebSocket feeds, webhooks).
    #[cfg(feature = "sim")]
    Sim(cfactory_sim::SimArgs),
    /// Run simulated PFactory, AIFactory and TFactory (not in this build: it needs the
    /// `sim` feature).
    #[cfg(not(feature = "sim"))]
    Sim(crate::demo::NotBuilt),
    /// Run the cockpit and the simulator wired to it: the whole pipeline on one machine,
    /// on a store of its own (`demo/` in the data dir), emptied at each start unless
    /// `--keep`.
    Demo(DemoArgs),
    /// Check the audit log's HMAC chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List stored rows that no longer decode (work items, actions, events), every
    /// tenant's, one line each; exit 1 when there are any. Such an item is left out of
    /// lists and insights until its next event rebuilds it from its timeline; such an
    /// action is left out of action lists, and such an event out of its timeline.
    Doctor,
    /// Print the API's OpenAPI 3.1 document (what `GET /openapi.json` serves) and exit.
    Openapi,
    /// Webhook signing secrets (Standard Webhooks) for the `--tenant` tenant's senders.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// The effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting as `key = value  # source` (default, file PATH, env NAME or
    /// flag --NAME), secrets as `***`; exit 2 when the settings are refused.
    Show {
        /// The flags `serve` takes, to see what it would run with.
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

/// `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Signing secrets: once a tenant has an active one, its ingest must be signed.
    #[command(subcommand)]
    Secret(SecretCommand),
}

/// `webhooks secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret for the `--tenant` tenant and print it once (`whsec_…`). Several
    /// may be active at once, for rotation.
    Create {
        /// A name to recognise the secret by (the sender it belongs to).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the `--tenant` tenant's secrets (never the secrets themselves).
    List,
    /// Revoke a secret by its id (takes effect within 2 seconds in a running server).
    Revoke {
        /// The secret's id, as `webhooks secret list` shows it.
        id: String,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the tenant's chain (`--tenant`, default `default`); print the verdict as JSON
    /// and exit non-zero unless it is ok.
    Verify,
}

/// `demo` flags: those of `serve`, plus how the simulator plays.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Everything `serve` takes.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Scenarios to play (comma-separated or repeated); none means all of them.
    #[cfg(feature = "sim")]
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<cfactory_sim::Scenario>,
    /// Scenarios to play (this build has no simulator).
    #[cfg(not(feature = "sim"))]
    #[arg(long = "scenario", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Keep the demo's store from the last run instead of starting empty.
    #[arg(long)]
    pub keep: bool,
    /// Seed that makes a run repeatable.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time scale of the simulated pipeline (2.0 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Units of work to run (default: enough to cover every scenario).
    #[arg(long)]
    pub units: Option<usize>,
    /// Key the simulator's webhooks carry (needed once the store has keys).
    #[arg(long, env = "CFACTORY_DEMO_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// API address [default: 127.0.0.1:3111]
    #[arg(long, env = "CFACTORY_API_ADDR")]
    pub api_addr: Option<String>,
    /// Cockpit address [default: 127.0.0.1:3110]
    #[arg(long, env = "CFACTORY_UI_ADDR")]
    pub ui_addr: Option<String>,
    /// Seconds of silence after which a running stage counts as stalled [default: 900]
    #[arg(long, env = "CFACTORY_STALL_DEADLINE_SECONDS")]
    pub stall_deadline_seconds: Option<u64>,
    /// Seconds an event's time may be ahead of this server's clock before it is refused
    /// [default: 300]
    #[arg(long, env = "CFACTORY_MAX_CLOCK_SKEW_SECONDS")]
    pub max_clock_skew_seconds: Option<u64>,
    /// Seconds a request may take before it is answered 503 with Retry-After (the live
    /// WebSocket, MCP and copilot chat, bounded by their own limits, excepted)
    /// [default: 30]
    #[arg(long, env = "CFACTORY_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
    /// Seconds a proposed action waits for a confirm before it expires [default: 900]
    #[arg(long, env = "CFACTORY_ACTION_TTL_SECONDS")]
    pub action_ttl_seconds: Option<u64>,
    /// The cockpit's external origin when it is served under a name or behind a proxy
    /// (`https://cockpit.example.com`): requests for that host are answered, browsers from
    /// that origin may write, and an https one makes the session cookie `Secure`
    #[arg(long, env = "CFACTORY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Refuse a confirm by the same key or session that proposed the action (four eyes)
    #[arg(long, env = "CFACTORY_REQUIRE_SECOND_APPROVER")]
    pub require_second_approver: bool,
    /// Completion-event requests per second per key or client address; 0: no limit
    /// [default: 50000]
    #[arg(long, env = "CFACTORY_LIMIT_INGEST_PER_SECOND")]
    pub limit_ingest_per_second: Option<u32>,
    /// Read requests per second per key, session or client address; 0: no limit
    /// [default: 2000]
    #[arg(long, env = "CFACTORY_LIMIT_READ_PER_SECOND")]
    pub limit_read_per_second: Option<u32>,
    /// Changing requests per minute per key, session or client address; 0: no limit
    /// [default: 6000]
    #[arg(long, env = "CFACTORY_LIMIT_WRITE_PER_MINUTE")]
    pub limit_write_per_minute: Option<u32>,
    /// Sign-in attempts per minute per client address; 0: no limit [default: 10]
    #[arg(long, env = "CFACTORY_LIMIT_SIGNIN_PER_MINUTE")]
    pub limit_signin_per_minute: Option<u32>,
    /// Copilot turns per hour per key, session or client address; 0: no limit
    /// [default: 120]
    #[arg(long, env = "CFACTORY_LIMIT_COPILOT_TURNS_PER_HOUR")]
    pub limit_copilot_turns_per_hour: Option<u32>,
    /// The upstream services.
    #[command(flatten)]
    pub upstreams: UpstreamArgs,
    /// Single sign-on (OpenID Connect).
    #[command(flatten)]
    pub sso: crate::sso::settings::SsoArgs,
}

/// Where the upstream services are and how to watch them.
#[derive(Debug, Default, Args)]
pub struct UpstreamArgs {
    /// PFactory's base URL (no adapter runs while unset)
    #[arg(long, env = "CFACTORY_PFACTORY_URL")]
    pub pfactory_url: Option<String>,
    /// AIFactory's base URL (no adapter runs while unset)
    #[arg(long, env = "CFACTORY_AIFACTORY_URL")]
    pub aifactory_url: Option<String>,
    /// TFactory's base URL (no adapter runs while unset)
    #[arg(long, env = "CFACTORY_TFACTORY_URL")]
    pub tfactory_url: Option<String>,
    /// Bearer token sent to every upstream
    #[arg(long, env = "CFACTORY_UPSTREAM_TOKEN", hide_env_values = true)]
    pub upstream_token: Option<String>,
    /// PFactory's own token (overrides --upstream-token)
    #[arg(long, env = "CFACTORY_PFACTORY_TOKEN", hide_env_values = true)]
    pub pfactory_token: Option<String>,
    /// AIFactory's own token (overrides --upstream-token)
    #[arg(long, env = "CFACTORY_AIFACTORY_TOKEN", hide_env_values = true)]
    pub aifactory_token: Option<String>,
    /// TFactory's own token (overrides --upstream-token)
    #[arg(long, env = "CFACTORY_TFACTORY_TOKEN", hide_env_values = true)]
    pub tfactory_token: Option<String>,
    /// Any watched service's base URL as NAME=URL (repeat, or comma-separate in the
    /// environment): the way to reach a service registered beside the family's three
    #[arg(
        long = "service-url",
        env = "CFACTORY_SERVICE_URLS",
        value_delimiter = ','
    )]
    pub service_urls: Vec<String>,
    /// Any watched service's own token as NAME=TOKEN (overrides --upstream-token)
    #[arg(
        long = "service-token",
        env = "CFACTORY_SERVICE_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub service_tokens: Vec<String>,
    /// Seconds between poll rounds; 0 turns polling off [default: 5]
    #[arg(long, env = "CFACTORY_POLL_INTERVAL_SECONDS")]
    pub poll_interval_seconds: Option<u64>,
    /// Watch this directory tree for COMPLETED.json files
    #[arg(long, env = "CFACTORY_SENTINEL_DIR")]
    pub sentinel_dir: Option<PathBuf>,
    /// The tenant whose items the sentinel's files update [default: the --tenant tenant]
    #[arg(long, env = "CFACTORY_SENTINEL_TENANT")]
    pub sentinel_tenant: Option<String>,
    /// AIFactory's project registry key for a repository, as REPO=KEY (repeat, or
    /// comma-separate in the environment); a handoff to an unmapped repository is refused
    #[arg(
        long = "aifactory-project",
        env = "CFACTORY_AIFACTORY_PROJECTS",
        value_delimiter = ','
    )]
    pub aifactory_projects: Vec<String>,
    /// Time zone of TFactory's times sent without an offset (IANA name) [default: UTC]
    #[arg(long, env = "CFACTORY_TFACTORY_TIMEZONE")]
    pub tfactory_timezone: Option<String>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its SHA-256 is stored).
    Create {
        /// Comma-separated: read, write, ingest, approve (confirm actions), metrics, scim (SCIM provisioning at /scim/v2), admin.
        #[arg(long)]
        scopes: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id (takes effect at once, also in a running server).
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

/// `ingest` arguments.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The file to read, or `-` for stdin.
    pub file: String,
    /// Events per store transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
}

/// The settings the flags on a command line set, each with its flag: the top layer.
#[derive(Debug, Default, Clone)]
pub struct FlagValues(Vec<(&'static str, &'static str, figment::value::Value)>);

impl FlagValues {
    /// Reads the flags given on the command line (not those clap filled from the
    /// environment or a default) into values by setting key, through the settings table.
    fn from_matches(command: &clap::Command, matches: &ArgMatches) -> Self {
        let mut ids = BTreeMap::new();
        long_ids(command, &mut ids);
        let mut levels = vec![matches];
        let mut at = matches;
        while let Some((_, sub)) = at.subcommand() {
            levels.push(sub);
            at = sub;
        }
        let mut out = Vec::new();
        for entry in SETTINGS {
            let Some(flag) = entry.flag else { continue };
            let Some(id) = ids.get(flag.trim_start_matches('-')) else {
                continue;
            };
            let given = levels.iter().find_map(|level| {
                let raw = level.try_get_raw(id.as_str()).ok().flatten()?;
                (level.value_source(id.as_str()) == Some(ValueSource::CommandLine)).then(|| {
                    raw.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                })
            });
            let Some(mut texts) = given else { continue };
            let value = match entry.shape {
                Shape::List | Shape::SecretList => figment::value::Value::from(texts),
                _ => match texts.pop() {
                    Some(text) => figment::value::Value::from(text),
                    None => continue,
                },
            };
            out.push((entry.key, flag, value));
        }
        Self(out)
    }
}

/// Every long flag's clap id, through the subcommands.
fn long_ids(command: &clap::Command, out: &mut BTreeMap<String, clap::Id>) {
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            out.entry(long.to_owned())
                .or_insert_with(|| arg.get_id().clone());
        }
    }
    for sub in command.get_subcommands() {
        long_ids(sub, out);
    }
}

impl Cli {
    /// Parses the process's arguments; a usage error ends the process with clap's message
    /// and exit code 2.
    pub fn parse_with_flags() -> (Self, FlagValues) {
        Self::try_parse_with_flags(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first) into the command and the settings its flags
    /// set.
    pub fn try_parse_with_flags<I, T>(args: I) -> Result<(Self, FlagValues), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let cli = Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        let flags = FlagValues::from_matches(&command, &matches);
        Ok((cli, flags))
    }

    /// The layers for this invocation: the defaults, the `--config` file, the process
    /// environment and `flags`.
    pub fn layers(&self, flags: &FlagValues) -> anyhow::Result<Layers> {
        self.layers_with_env(flags, |name| std::env::var(name).ok())
    }

    /// As [`Self::layers`], reading the environment through `lookup`.
    pub fn layers_with_env(
        &self,
        flags: &FlagValues,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Layers> {
        let mut layers = Layers::defaults();
        if let Some(path) = &self.global.config {
            layers = layers.with_file(path)?;
        }
        layers = layers.with_env(lookup);
        for (key, flag, value) in &flags.0 {
            layers = layers.with_value(format!("flag {flag}"), key, value.clone());
        }
        Ok(layers)
    }
}

/// `cfactory migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let stores = Stores::open(settings).await.context("opening the store")?;
    stores.close().await;
    eprintln!("migrations applied to {}", settings.database.describe());
    Ok(())
}

/// `cfactory keys …`.
pub async fn keys(settings: &Settings, command: &KeysCommand) -> anyhow::Result<()> {
    let stores = Stores::open(settings).await.context("opening the store")?;
    let result = match crate::audit::auditor(settings, stores.audit.clone(), true).await {
        Ok(auditor) => run_keys(stores.keys.as_ref(), &auditor, &settings.tenant, command).await,
        Err(e) => Err(e),
    };
    stores.close().await;
    result
}

/// How a list names a credential's state: `active`, or when it was revoked.
fn state_of(revoked_at: Option<chrono::DateTime<Utc>>) -> String {
    match revoked_at {
        Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
        None => "active".into(),
    }
}

/// Records a key change on the key's tenant's audit chain.
async fn audit_key_change(
    auditor: &crate::audit::Auditor,
    tenant: &TenantId,
    kind: &str,
    key_id: &str,
) -> anyhow::Result<()> {
    let mut entry = crate::audit::record("cli", kind, Utc::now());
    entry.target = Some(key_id.to_owned());
    auditor
        .record(tenant, entry)
        .await
        .context("recording the key change in the audit log")?;
    Ok(())
}

async fn run_keys(
    store: &dyn ApiKeyStore,
    auditor: &crate::audit::Auditor,
    tenant: &TenantId,
    command: &KeysCommand,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { scopes, name } => {
            let scopes = keys::parse_scopes(scopes)?;
            let minted = keys::mint(tenant.clone(), scopes, name.clone(), Utc::now());
            store
                .create_key(&minted.key, &keys::hash_secret(&minted.secret))
                .await?;
            audit_key_change(auditor, tenant, "key.created", &minted.key.id).await?;
            let scopes: Vec<&str> = minted.key.scopes.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "created key {} for tenant {} with scopes {} (shown once; store it now)",
                minted.key.id,
                minted.key.tenant,
                scopes.join(",")
            );
            println!("{}", minted.secret);
        }
        KeysCommand::List => {
            let list = store.list_keys().await?;
            if list.is_empty() {
                eprintln!("no keys: the server runs in open mode on loopback addresses only");
            }
            println!(
                "{:<18} {:<12} {:<24} {:<26} STATE",
                "ID", "TENANT", "SCOPES", "CREATED"
            );
            for k in list {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                let state = state_of(k.revoked_at);
                println!(
                    "{:<18} {:<12} {:<24} {:<26} {state}{}",
                    k.id,
                    k.tenant,
                    scopes.join(","),
                    k.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    k.name.map(|n| format!("  ({n})")).unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let owner = store
                .list_keys()
                .await?
                .into_iter()
                .find(|k| &k.id == id)
                .map(|k| k.tenant);
            if store.revoke_key(id, Utc::now()).await? {
                let owner = owner.unwrap_or_else(|| tenant.clone());
                audit_key_change(auditor, &owner, "key.revoked", id).await?;
                eprintln!("revoked {id}");
            } else {
                bail!("no active key with id `{id}`");
            }
        }
    }
    Ok(())
}

/// `cfactory webhooks …`.
pub async fn webhooks(settings: &Settings, command: &WebhooksCommand) -> anyhow::Result<()> {
    let stores = Stores::open(settings).await.context("opening the store")?;
    let result = match crate::audit::auditor(settings, stores.audit.clone(), true).await {
        Ok(auditor) => {
            let WebhooksCommand::Secret(command) = command;
            run_webhook_secrets(stores.keys.as_ref(), &auditor, &settings.tenant, command).await
        }
        Err(e) => Err(e),
    };
    stores.close().await;
    result
}

async fn run_webhook_secrets(
    store: &dyn ApiKeyStore,
    auditor: &crate::audit::Auditor,
    tenant: &TenantId,
    command: &SecretCommand,
) -> anyhow::Result<()> {
    match command {
        SecretCommand::Create { name } => {
            let key = crate::webhooks::new_key();
            let secret = cfactory_domain::ports::WebhookSecret {
                id: format!("whk_{}", keys::random_text(12)),
                tenant: tenant.clone(),
                name: name.clone(),
                key: key.clone(),
                created_at: Utc::now(),
                revoked_at: None,
            };
            store.create_webhook_secret(&secret).await?;
            audit_key_change(auditor, tenant, "webhook_secret.created", &secret.id).await?;
            eprintln!(
                "created webhook secret {} for tenant {} (shown once; give it to the sender); \
                 this tenant's ingest must now be signed",
                secret.id, secret.tenant
            );
            println!("{}", crate::webhooks::secret_text(&key));
        }
        SecretCommand::List => {
            let list = store.list_webhook_secrets(Some(tenant)).await?;
            if list.is_empty() {
                eprintln!("no webhook secrets for tenant {tenant}: its ingest need not be signed");
            }
            println!("{:<18} {:<12} {:<26} STATE", "ID", "TENANT", "CREATED");
            for w in list {
                let state = state_of(w.revoked_at);
                println!(
                    "{:<18} {:<12} {:<26} {state}{}",
                    w.id,
                    w.tenant,
                    w.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    w.name.map(|n| format!("  ({n})")).unwrap_or_default()
                );
            }
        }
        SecretCommand::Revoke { id } => {
            let owner = store
                .list_webhook_secrets(None)
                .await?
                .into_iter()
                .find(|w| &w.id == id)
                .map(|w| w.tenant);
            if store.revoke_webhook_secret(id, Utc::now()).await? {
                let owner = owner.unwrap_or_else(|| tenant.clone());
                audit_key_change(auditor, &owner, "webhook_secret.revoked", id).await?;
                eprintln!("revoked {id}");
            } else {
                bail!("no active webhook secret with id `{id}`");
            }
        }
    }
    Ok(())
}

/// `cfactory audit verify`: the chain's report, and whether it is ok.
pub async fn audit_verify(settings: &Settings) -> anyhow::Result<(String, bool)> {
    let stores = Stores::open(settings).await.context("opening the store")?;
    let result = async {
        let report = crate::audit::auditor(settings, stores.audit.clone(), true)
            .await?
            .verify(&settings.tenant)
            .await?;
        let ok = report.verdict == cfactory_domain::audit::Verdict::Ok;
        anyhow::Ok((serde_json::to_string_pretty(&report)?, ok))
    }
    .await;
    stores.close().await;
    result
}

/// `cfactory doctor`: one line per stored row that no longer decodes: work items, actions
/// and events, tenant by tenant.
pub async fn doctor(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let stores = Stores::open(settings).await.context("opening the store")?;
    let result = async {
        let mut found = Vec::new();
        for tenant in stores.work.tenants().await? {
            let mut after = None;
            loop {
                let page = stores
                    .work
                    .scan_items(&tenant, after.as_ref(), 1_000)
                    .await?;
                for (key, why) in page.unreadable {
                    found.push(format!("work item {tenant}/{key}: {why}"));
                }
                match page.last {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
            let actions = stores.actions.list(&tenant, None, u32::MAX).await?;
            for (id, why) in actions.unreadable {
                found.push(format!("action {tenant}/{id}: {why}"));
            }
            let mut after = None;
            loop {
                let page = stores.work.scan_events(&tenant, after, 1_000).await?;
                for (seq, why) in page.unreadable {
                    found.push(format!("event {tenant}/{seq}: {why}"));
                }
                match page.last {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
        }
        anyhow::Ok(found)
    }
    .await;
    stores.close().await;
    result
}

/// What `ingest` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Newly committed.
    pub accepted: u64,
    /// Already held.
    pub duplicate: u64,
    /// Refused, each with its reason.
    pub rejected: Vec<String>,
}

/// Reads every event in `text` (one object, an array, NDJSON or concatenated objects).
/// Events that do not parse, or are dated more than `skew` after `now`, are reported with
/// their position and skipped; a break in the JSON itself ends the read there (everything
/// before it is kept).
pub fn read_events(
    text: &str,
    now: DateTime<Utc>,
    skew: chrono::Duration,
) -> (Vec<CompletionEvent>, Vec<String>) {
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    let mut n = 0usize;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    // Lines are counted on from the last event's offset, so a long file is read once.
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    let mut line_of = |offset: usize| {
        let offset = offset.clamp(counted_to, text.len());
        lines_before += text[counted_to..offset].matches('\n').count();
        counted_to = offset;
        lines_before + 1
    };
    let take = |raw: &RawValue,
                n: usize,
                line: usize,
                events: &mut Vec<CompletionEvent>,
                rejected: &mut Vec<String>| {
        match CompletionEvent::parse(raw.get()).and_then(|e| {
            e.check_not_ahead(now, skew)?;
            Ok(e)
        }) {
            Ok(e) => events.push(e),
            Err(e) => take_error(rejected, n, line, &e.to_string()),
        }
    };
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(raw)) => {
                let rest = &text[start..];
                let line = line_of(start + (rest.len() - rest.trim_start().len()));
                if raw.get().trim_start().starts_with('[') {
                    match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                        Ok(items) => {
                            for item in items {
                                n += 1;
                                take(item, n, line, &mut events, &mut rejected);
                            }
                        }
                        Err(e) => {
                            n += 1;
                            take_error(&mut rejected, n, line, &e.to_string());
                        }
                    }
                } else {
                    n += 1;
                    take(raw, n, line, &mut events, &mut rejected);
                }
            }
            Some(Err(e)) => {
                take_error(
                    &mut rejected,
                    n + 1,
                    e.line(),
                    &format!("malformed JSON ({e}); nothing after this point was read"),
                );
                break;
            }
        }
    }
    (events, rejected)
}

fn take_error(rejected: &mut Vec<String>, n: usize, line: usize, why: &str) {
    rejected.push(format!("event {n} (line {line}): {why}"));
}

/// `cfactory ingest FILE|-`.
pub async fn ingest(settings: &Settings, args: &IngestArgs) -> anyhow::Result<IngestReport> {
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let (events, rejected) = read_events(&text, Utc::now(), settings.max_clock_skew());
    let stores = Stores::open(settings).await.context("opening the store")?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(events.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} ingesting [{bar:40}] {pos}/{len} events  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut report = IngestReport {
        rejected,
        ..IngestReport::default()
    };
    let mut events = events.into_iter().peekable();
    let mut failure = None;
    while events.peek().is_some() {
        let chunk: Vec<CompletionEvent> = events.by_ref().take(args.batch_size as usize).collect();
        let len = chunk.len() as u64;
        match stores.work.ingest(&settings.tenant, chunk).await {
            Ok(outcomes) => {
                for o in outcomes {
                    match o {
                        IngestOutcome::Accepted { .. } => report.accepted += 1,
                        IngestOutcome::Duplicate { .. } => report.duplicate += 1,
                    }
                }
                bar.inc(len);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    bar.finish_and_clear();
    stores.close().await;
    if let Some(e) = failure {
        bail!(
            "the store failed after {} events were committed ({} accepted, {} duplicate); \
             re-run to continue, duplicates are skipped: {e}",
            report.accepted + report.duplicate,
            report.accepted,
            report.duplicate
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","correlation_key":"7","service":"aifactory","task_id":"t","status":"running","phase":"coding","time":"2026-11-01T10:00:00Z"}}"#
        )
    }

    /// The events' own time: the read's "now".
    fn now() -> DateTime<Utc> {
        "2026-11-01T10:00:00Z".parse().unwrap()
    }

    fn skew() -> chrono::Duration {
        chrono::Duration::seconds(300)
    }

    #[test]
    fn an_event_dated_beyond_the_skew_is_reported_and_the_rest_kept() {
        let ahead = event("late").replace("2026-11-01T10:00:00Z", "2026-11-01T10:05:01Z");
        let edge = event("edge").replace("2026-11-01T10:00:00Z", "2026-11-01T10:05:00Z");
        let text = format!("{}\n{ahead}\n{edge}\n", event("a"));
        let (events, rejected) = read_events(&text, now(), skew());
        assert_eq!(events.len(), 2, "{rejected:?}");
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(
            rejected[0].starts_with("event 2 (line 2): "),
            "{}",
            rejected[0]
        );
        assert!(rejected[0].contains("300 s ahead"), "{}", rejected[0]);
    }

    #[test]
    fn reads_ndjson_arrays_and_pretty_objects() {
        let text = format!(
            "{}\n{}\n[{},{}]\n",
            event("a"),
            event("b"),
            event("c"),
            event("d")
        );
        let (events, rejected) = read_events(&text, now(), skew());
        assert_eq!(events.len(), 4);
        assert!(rejected.is_empty());
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&event("e")).unwrap(),
        )
        .unwrap();
        let (events, _) = read_events(&pretty, now(), skew());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].raw, pretty);
    }

    #[test]
    fn bad_events_are_reported_with_their_line_and_the_rest_kept() {
        let bad = event("x").replace(r#""status":"running","#, "");
        let text = format!("{}\n{bad}\n{}\n{{\"broken\": \n", event("a"), event("b"));
        let (events, rejected) = read_events(&text, now(), skew());
        assert_eq!(events.len(), 2, "{rejected:?}");
        assert_eq!(rejected.len(), 2, "{rejected:?}");
        assert!(rejected[0].contains("event 2 (line 2)"), "{}", rejected[0]);
        assert!(rejected[0].contains("status"), "{}", rejected[0]);
        assert!(rejected[1].contains("malformed JSON"), "{}", rejected[1]);
    }

    #[test]
    fn each_bad_event_names_its_own_line_among_pretty_and_blank_lines() {
        let bad = event("x").replace(r#""status":"running","#, "");
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&event("p")).unwrap(),
        )
        .unwrap();
        let pretty_lines = pretty.lines().count();
        // Lines: the pretty event, a blank line, a bad event, the same pretty event
        // again, two blank lines, a bad event, and a good one.
        let text = format!("{pretty}\n\n{bad}\n{pretty}\n\n\n{bad} {}\n", event("g"));
        let (events, rejected) = read_events(&text, now(), skew());
        assert_eq!(events.len(), 3, "{rejected:?}");
        let first = pretty_lines + 2;
        let second = first + pretty_lines + 3;
        assert_eq!(
            rejected,
            [
                format!("event 2 (line {first}): missing required field `status`"),
                format!("event 4 (line {second}): missing required field `status`"),
            ]
        );
    }
}

//! One typed `Settings`, resolved once at start from layers (see [`layers`]): built-in
//! defaults, then the config file, then the environment, then flags. Validation happens
//! here so the rest of the server never sees a bad value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cfactory_domain::insights::Thresholds;
use cfactory_domain::{Service, StageName, TenantId};
use serde::Deserialize;

pub mod layers;

/// Default lifetime of a proposed action (15 minutes).
pub const DEFAULT_ACTION_TTL_SECONDS: u64 = 900;
/// How far ahead of the server's clock an event's time may be, by default (5 minutes).
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Default for `--lock-timeout-seconds`.
pub const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 5;
/// Default for `--request-timeout-seconds`.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;
/// The default API address.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:3111";
/// The default cockpit address.
pub const DEFAULT_UI_ADDR: &str = "127.0.0.1:3110";
/// The default stall deadline.
pub const DEFAULT_STALL_DEADLINE_SECONDS: u64 = 900;
/// What is logged when no layer says: INFO, with the access log (`cfactory::access`) and
/// without sqlx's per-statement lines or the MCP SDK's per-request ones.
pub const DEFAULT_LOG: &str = "info,sqlx=warn,rmcp=warn,tower_http=info";

/// A value that must never reach a log: `Debug` and `Display` print a redacted form.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where WorkItems are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A PostgreSQL server; the URL may carry a password.
    Postgres(Secret),
    /// The embedded SQLite file.
    Sqlite(PathBuf),
}

impl Database {
    /// Reads a `--database-url`: `postgres://…`, `postgresql://…`, `sqlite://PATH` or
    /// `sqlite:PATH`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(Secret::new(url)));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                bail!("the SQLite URL `{url}` names no file; use sqlite://PATH");
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        bail!(
            "unsupported database URL (it must start with postgres://, postgresql:// or \
             sqlite://)"
        )
    }

    /// A form safe to print: the Postgres password is masked.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => redact_password(url.expose()),
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the embedded SQLite store makes a commit durable (`--sqlite-synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Flush the write-ahead log at every commit: an acknowledged event survives a power
    /// loss.
    #[default]
    Full,
    /// Flush only at checkpoints: faster commits, but a power loss may lose the last
    /// acknowledged events (a killed process loses nothing).
    Normal,
}

/// Every setting as the layers give it, merged: every field optional, keys as in the
/// config file (each flag's name without `--`, with `_` for `-`; see
/// [`crate::settings::layers::SETTINGS`]). A key it does not name is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--api-addr`.
    pub api_addr: Option<String>,
    /// See `--ui-addr`.
    pub ui_addr: Option<String>,
    /// See `--tenant`.
    pub tenant: Option<String>,
    /// See `--stall-deadline-seconds`.
    pub stall_deadline_seconds: Option<u64>,
    /// See `--max-clock-skew-seconds`.
    pub max_clock_skew_seconds: Option<u64>,
    /// See `--request-timeout-seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// See `--action-ttl-seconds`.
    pub action_ttl_seconds: Option<u64>,
    /// See `--public-url`.
    pub public_url: Option<String>,
    /// See `--require-second-approver`.
    pub require_second_approver: Option<bool>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// The log filter (`CFACTORY_LOG`, else `RUST_LOG`): tracing directives.
    pub log: Option<String>,
    /// See `--otlp-endpoint`.
    pub otlp_endpoint: Option<String>,
    /// See `--sqlite-synchronous`.
    pub sqlite_synchronous: Option<SqliteSynchronous>,
    /// See `--audit-anchor`.
    pub audit_anchor: Option<PathBuf>,
    /// See `--lock-timeout-seconds`.
    pub lock_timeout_seconds: Option<u64>,
    /// See `CFACTORY_API_KEYS`.
    pub api_keys: Option<String>,
    /// See `CFACTORY_UI_DIR`.
    pub ui_dir: Option<PathBuf>,
    /// See `--pfactory-url`.
    pub pfactory_url: Option<String>,
    /// See `--aifactory-url`.
    pub aifactory_url: Option<String>,
    /// See `--tfactory-url`.
    pub tfactory_url: Option<String>,
    /// See `--upstream-token`.
    pub upstream_token: Option<String>,
    /// See `--pfactory-token`.
    pub pfactory_token: Option<String>,
    /// See `--aifactory-token`.
    pub aifactory_token: Option<String>,
    /// See `--tfactory-token`.
    pub tfactory_token: Option<String>,
    /// See `--service-url`: `["NAME=URL", …]`.
    pub service_urls: Option<Vec<String>>,
    /// See `--service-token`: `["NAME=TOKEN", …]`.
    pub service_tokens: Option<Vec<String>>,
    /// See `--poll-interval-seconds`.
    pub poll_interval_seconds: Option<u64>,
    /// See `--sentinel-dir`.
    pub sentinel_dir: Option<PathBuf>,
    /// See `--sentinel-tenant`.
    pub sentinel_tenant: Option<String>,
    /// See `--aifactory-project`: `["acme/shop=shop", …]`.
    pub aifactory_projects: Option<Vec<String>>,
    /// The `[services.NAME]` tables: any watched service's `url` and `token`, by its
    /// name in the service table (see `--service-url`).
    pub services: Option<BTreeMap<String, FileServiceTarget>>,
    /// See `--tfactory-timezone`.
    pub tfactory_timezone: Option<String>,
    /// The `[anomalies]` table: the anomaly rules' thresholds (the stall limit is
    /// `stall_deadline_seconds`).
    pub anomalies: Option<Thresholds>,
    /// The `[limits]` table: request limits (see `--limit-*`).
    pub limits: Option<crate::limits::LimitSettings>,
    /// See `CFACTORY_AUDIT_HMAC_SECRET`.
    pub audit_hmac_secret: Option<String>,
    /// See `--oidc-issuer`.
    pub oidc_issuer: Option<String>,
    /// See `--oidc-client-id`.
    pub oidc_client_id: Option<String>,
    /// See `--oidc-client-secret`.
    pub oidc_client_secret: Option<String>,
    /// See `--oidc-scopes`.
    pub oidc_scopes: Option<String>,
    /// See `--oidc-groups-claim`.
    pub oidc_groups_claim: Option<String>,
    /// See `--oidc-tenant`.
    pub oidc_tenant: Option<String>,
    /// See `--oidc-tenant-claim`.
    pub oidc_tenant_claim: Option<String>,
    /// See `--oidc-role`: `["GROUP=SCOPE+SCOPE", …]`, each replacing its group's
    /// `[roles]` entry.
    pub oidc_roles: Option<Vec<String>>,
    /// The `[roles]` table: `[roles.GROUP] scopes = [...]`, what each group of the
    /// groups claim grants a person signed in by single sign-on.
    pub roles: Option<BTreeMap<String, crate::sso::settings::RoleEntry>>,
    /// The `[copilot]` table: the copilot's model.
    pub copilot: Option<CopilotSettings>,
}

/// The `[copilot]` table (`CFACTORY_COPILOT_*`, the providers' keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopilotSettings {
    /// `anthropic` or `openai`; unset, the copilot is off.
    pub provider: Option<String>,
    /// The model id.
    pub model: Option<String>,
    /// Anthropic's key (`CFACTORY_ANTHROPIC_API_KEY`, else `ANTHROPIC_API_KEY`).
    pub anthropic_api_key: Option<String>,
    /// Anthropic's API address.
    pub anthropic_base_url: Option<String>,
    /// The OpenAI-compatible server's key (`CFACTORY_OPENAI_API_KEY`, else
    /// `OPENAI_API_KEY`).
    pub openai_api_key: Option<String>,
    /// The OpenAI-compatible server's address.
    pub openai_base_url: Option<String>,
}

impl CopilotSettings {
    /// The model configuration these name, checked by the copilot's own rules; `None`
    /// while no provider is set.
    fn model(&self) -> anyhow::Result<Option<cfactory_copilot::ModelConfig>> {
        cfactory_copilot::ModelConfig::from_lookup(|name| {
            match name {
                "CFACTORY_COPILOT_PROVIDER" => &self.provider,
                "CFACTORY_COPILOT_MODEL" => &self.model,
                "CFACTORY_ANTHROPIC_API_KEY" => &self.anthropic_api_key,
                "CFACTORY_ANTHROPIC_BASE_URL" => &self.anthropic_base_url,
                "CFACTORY_OPENAI_API_KEY" => &self.openai_api_key,
                "CFACTORY_OPENAI_BASE_URL" => &self.openai_base_url,
                _ => &None,
            }
            .clone()
        })
        .map_err(|e| anyhow::anyhow!("copilot configuration: {e}"))
    }
}

impl RawSettings {
    /// The built-in defaults, as the lowest layer.
    pub fn defaults() -> figment::value::Dict {
        use figment::value::Value;
        let limits = crate::limits::LimitSettings::default();
        let mut d = figment::value::Dict::new();
        let mut put = |key: &str, value: Value| {
            d.insert(key.to_owned(), value);
        };
        put("api_addr", DEFAULT_API_ADDR.into());
        put("ui_addr", DEFAULT_UI_ADDR.into());
        put("tenant", TenantId::default_tenant().as_str().into());
        put("log_format", "text".into());
        put("log", DEFAULT_LOG.into());
        put("sqlite_synchronous", "full".into());
        put("lock_timeout_seconds", DEFAULT_LOCK_TIMEOUT_SECONDS.into());
        put(
            "stall_deadline_seconds",
            DEFAULT_STALL_DEADLINE_SECONDS.into(),
        );
        put(
            "max_clock_skew_seconds",
            DEFAULT_MAX_CLOCK_SKEW_SECONDS.into(),
        );
        put(
            "request_timeout_seconds",
            DEFAULT_REQUEST_TIMEOUT_SECONDS.into(),
        );
        put("action_ttl_seconds", DEFAULT_ACTION_TTL_SECONDS.into());
        put("require_second_approver", false.into());
        put(
            "poll_interval_seconds",
            DEFAULT_POLL_INTERVAL_SECONDS.into(),
        );
        put("tfactory_timezone", "UTC".into());
        put(
            "oidc_groups_claim",
            crate::sso::settings::DEFAULT_GROUPS_CLAIM.into(),
        );
        put(
            "oidc_scopes",
            crate::sso::settings::DEFAULT_SCOPES.join(" ").into(),
        );
        let mut table = figment::value::Dict::new();
        for (key, value) in [
            ("ingest_per_second", limits.ingest_per_second),
            ("read_per_second", limits.read_per_second),
            ("write_per_minute", limits.write_per_minute),
            ("signin_per_minute", limits.signin_per_minute),
            ("copilot_turns_per_hour", limits.copilot_turns_per_hour),
        ] {
            table.insert(key.to_owned(), value.into());
        }
        put("limits", table.into());
        if let Ok(anomalies) = Value::serialize(Thresholds::default()) {
            put("anomalies", anomalies);
        }
        d
    }
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store.
    pub database: Database,
    /// Where the embedded store and other local state live.
    pub data_dir: PathBuf,
    /// A note to log about the data dir (the legacy `~/.cfactory` is in use), if any.
    pub data_dir_note: Option<String>,
    /// The API listener.
    pub api_addr: SocketAddr,
    /// The cockpit listener.
    pub ui_addr: SocketAddr,
    /// The tenant for writes that come with no key.
    pub tenant: TenantId,
    /// Silence after which a running stage counts as stalled.
    pub stall_deadline_seconds: u64,
    /// How far ahead of this server's clock an event's time may be.
    pub max_clock_skew_seconds: u64,
    /// How long a request may take before it is answered 503 (streams excepted).
    pub request_timeout_seconds: u64,
    /// How long a proposed action waits for a confirm.
    pub action_ttl_seconds: u64,
    /// The cockpit's external origin (`https://cockpit.example.com`), when it is served
    /// behind a proxy or under a name: its host is one of the server's own names.
    pub public_url: Option<PublicUrl>,
    /// Whether a confirm by the key or session that proposed the action is refused.
    pub require_second_approver: bool,
    /// Request limits.
    pub limits: crate::limits::LimitSettings,
    /// Log format.
    pub log_format: LogFormat,
    /// The OpenTelemetry collector spans are exported to (OTLP/HTTP), when set.
    pub otlp_endpoint: Option<String>,
    /// How SQLite makes a commit durable (ignored on PostgreSQL, which commits durably).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Keys to seed at start, as `KEY:SCOPES[:TENANT]` entries.
    pub seed_keys: Option<Secret>,
    /// The upstream services to watch.
    pub upstreams: UpstreamSettings,
    /// The anomaly rules' thresholds.
    pub thresholds: Thresholds,
    /// The audit chain's HMAC secret, when configured (else a loopback server keeps one in
    /// the data dir).
    pub audit_secret: Option<Secret>,
    /// Where each chain's newest entry is noted outside the store; `None` for
    /// `audit.anchor` in the data dir.
    pub audit_anchor: Option<PathBuf>,
    /// How long a PostgreSQL statement waits for a lock (a tenant's write lock held by a
    /// frozen peer) before the request answers 503.
    pub lock_timeout_seconds: u64,
    /// Single sign-on (OpenID Connect), when an issuer is configured.
    pub sso: Option<crate::sso::settings::SsoSettings>,
    /// The log filter, as tracing directives.
    pub log_filter: String,
    /// A directory the cockpit's files are served from instead of the embedded ones.
    pub ui_dir: Option<PathBuf>,
    /// The copilot's model, when a provider is configured.
    pub copilot: Option<cfactory_copilot::ModelConfig>,
}

/// The cockpit's external address: an `http` or `https` origin, kept as its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// The host as written (lower-cased), brackets kept for IPv6.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl PublicUrl {
    /// Parses `http[s]://host[:port][/]`; a path beyond `/`, credentials, a query or a
    /// fragment are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err("must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
            return Err("must be an origin only (no path, query or fragment)".into());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "has no host".to_owned())?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Self { scheme, host, port })
    }

    /// `scheme://host[:port]`, the port left out when it is the scheme's default, as a
    /// browser spells an `Origin`.
    pub fn origin(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }

    /// Whether it is https.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

/// One `[services.NAME]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServiceTarget {
    /// Its base URL.
    pub url: Option<String>,
    /// Its own bearer token.
    pub token: Option<String>,
}

/// Reads `NAME=VALUE` entries of `flag` into a map by watched service; refuses a service
/// the table does not hold or that has no stage (nothing to watch), and a repeat.
fn per_service(flag: &str, entries: &[String]) -> anyhow::Result<BTreeMap<Service, String>> {
    let mut out = BTreeMap::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some((name, value)) = entry.split_once('=') else {
            bail!("{flag} `{}` must read NAME=VALUE", name_only(entry));
        };
        let service = watched_service(flag, name.trim())?;
        if out.insert(service, value.trim().to_owned()).is_some() {
            bail!("{flag} names {service} twice");
        }
    }
    Ok(out)
}

/// The part of an entry before `=`, so an error never echoes a token.
fn name_only(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// The watched service called `name`, or an error listing the known ones.
fn watched_service(what: &str, name: &str) -> anyhow::Result<Service> {
    Service::parse(name)
        .filter(|s| Service::upstreams().any(|u| u == *s))
        .ok_or_else(|| {
            let known: Vec<&str> = Service::upstreams().map(Service::as_str).collect();
            anyhow::anyhow!(
                "{what}: `{name}` is not a watched service (known: {})",
                known.join(", ")
            )
        })
}

/// How to reach one upstream service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// Its base URL, if configured (a URL stored from the cockpit overrides it).
    pub url: Option<String>,
    /// The bearer token to send.
    pub token: Option<Secret>,
}

/// The upstream services and how to watch them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// How to reach each service, by service.
    pub targets: BTreeMap<Service, UpstreamTarget>,
    /// Seconds between poll rounds; 0 turns polling off.
    pub poll_interval_seconds: u64,
    /// A directory to watch for `COMPLETED.json` files.
    pub sentinel_dir: Option<PathBuf>,
    /// The tenant the sentinel writes into (`None`: the `--tenant` tenant).
    pub sentinel_tenant: Option<TenantId>,
    /// AIFactory's project registry key per repository (lower-cased `owner/name`).
    pub aifactory_projects: BTreeMap<String, String>,
    /// The zone of TFactory's times sent without an offset (an IANA name).
    pub tfactory_timezone: String,
}

impl UpstreamSettings {
    /// How to reach `service`: its configured target, or none configured.
    pub fn target(&self, service: Service) -> UpstreamTarget {
        self.targets
            .get(&service)
            .cloned()
            .unwrap_or(UpstreamTarget {
                url: None,
                token: None,
            })
    }
}

/// Parses `REPO=KEY` entries into a map keyed by the lower-cased repository.
fn aifactory_projects(entries: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some((repo, key)) = entry.split_once('=') else {
            bail!("--aifactory-project `{entry}` must read REPO=KEY, e.g. acme/shop=shop");
        };
        let (repo, key) = (repo.trim(), key.trim());
        if repo.is_empty() || key.is_empty() {
            bail!("--aifactory-project `{entry}` must read REPO=KEY, e.g. acme/shop=shop");
        }
        out.insert(repo.to_ascii_lowercase(), key.to_owned());
    }
    Ok(out)
}

/// The default poll interval.
pub const DEFAULT_POLL_INTERVAL_SECONDS: u64 = 5;

fn upstream_url(name: &str, url: Option<String>) -> anyhow::Result<Option<String>> {
    match url.filter(|u| !u.trim().is_empty()) {
        None => Ok(None),
        Some(u) => {
            let trimmed = u.trim().trim_end_matches('/');
            let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                && trimmed
                    .split("://")
                    .nth(1)
                    .is_some_and(|rest| !rest.is_empty());
            if !ok {
                let family = StageName::FAMILY
                    .iter()
                    .any(|s| s.service().as_str() == name);
                let flag = if family {
                    format!("--{name}-url")
                } else {
                    format!("--service-url {name}=URL")
                };
                bail!("{flag} must be an absolute http:// or https:// URL");
            }
            Ok(Some(trimmed.to_owned()))
        }
    }
}

fn parse_addr(name: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.trim()
        .parse()
        .with_context(|| format!("{name} `{text}` is not an address like 127.0.0.1:3111"))
}

impl Settings {
    /// The audit anchor file: `--audit-anchor`, else `audit.anchor` in the data dir.
    pub fn audit_anchor_path(&self) -> PathBuf {
        self.audit_anchor
            .clone()
            .unwrap_or_else(|| self.data_dir.join(crate::audit::ANCHOR_FILE))
    }

    /// How far ahead of this server's clock an event's time may be, as a duration.
    pub fn max_clock_skew(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            i64::try_from(self.max_clock_skew_seconds).unwrap_or(i64::MAX / 1_000_000),
        )
    }

    /// Resolves the merged layers into checked settings; a bad value is refused with the
    /// setting named.
    pub fn resolve(raw: RawSettings) -> anyhow::Result<Self> {
        let crate::data_dir::DataDir {
            path: data_dir,
            note: data_dir_note,
        } = crate::data_dir::resolve(raw.data_dir, &|name| std::env::var_os(name))?;
        let database = match raw.database_url {
            Some(url) if !url.trim().is_empty() => Database::parse(&url)?,
            _ => Database::Sqlite(data_dir.join("cfactory.db")),
        };
        let api_addr = parse_addr(
            "--api-addr",
            raw.api_addr.as_deref().unwrap_or(DEFAULT_API_ADDR),
        )?;
        let ui_addr = parse_addr(
            "--ui-addr",
            raw.ui_addr.as_deref().unwrap_or(DEFAULT_UI_ADDR),
        )?;
        let tenant = match raw.tenant {
            Some(t) => TenantId::parse(&t).map_err(|e| anyhow::anyhow!("--tenant `{t}`: {e}"))?,
            None => TenantId::default_tenant(),
        };
        let stall_deadline_seconds = raw
            .stall_deadline_seconds
            .unwrap_or(DEFAULT_STALL_DEADLINE_SECONDS);
        if stall_deadline_seconds == 0 {
            bail!("--stall-deadline-seconds must be at least 1");
        }
        let public_url = raw
            .public_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| PublicUrl::parse(&u).map_err(|e| anyhow::anyhow!("--public-url `{u}`: {e}")))
            .transpose()?;
        let otlp_endpoint = raw
            .otlp_endpoint
            .filter(|u| !u.trim().is_empty())
            .map(|u| otlp_endpoint(&u))
            .transpose()?;
        let limits = raw.limits.unwrap_or_default();
        let action_ttl_seconds = raw.action_ttl_seconds.unwrap_or(DEFAULT_ACTION_TTL_SECONDS);
        if !(1..=7 * 86_400).contains(&action_ttl_seconds) {
            bail!("--action-ttl-seconds must be from 1 to 604800 (a week)");
        }
        let shared_token = raw.upstream_token;
        let target = |name: &str, url: Option<String>, token: Option<String>| {
            anyhow::Ok(UpstreamTarget {
                url: upstream_url(name, url)?,
                token: token
                    .or_else(|| shared_token.clone())
                    .filter(|t| !t.trim().is_empty())
                    .map(Secret::new),
            })
        };
        // A service's own key wins over a `NAME=VALUE` entry, which wins over its
        // `[services.NAME]` table (an entry set in a higher layer than the own key has
        // already replaced it: `Layers::settings`).
        let listed_urls = per_service(
            "--service-url",
            raw.service_urls.as_deref().unwrap_or_default(),
        )?;
        let listed_tokens = per_service(
            "--service-token",
            raw.service_tokens.as_deref().unwrap_or_default(),
        )?;
        let mut tables = BTreeMap::new();
        for (name, target) in raw.services.unwrap_or_default() {
            tables.insert(watched_service("[services]", &name)?, target);
        }
        let mut named: BTreeMap<Service, [Option<String>; 2]> = [
            (Service::PFACTORY, [raw.pfactory_url, raw.pfactory_token]),
            (Service::AIFACTORY, [raw.aifactory_url, raw.aifactory_token]),
            (Service::TFACTORY, [raw.tfactory_url, raw.tfactory_token]),
        ]
        .into_iter()
        .collect();
        let targets = Service::upstreams()
            .map(|service| {
                let [own_url, own_token] = named.remove(&service).unwrap_or_default();
                let table = tables.remove(&service).unwrap_or_default();
                let url = own_url
                    .or_else(|| listed_urls.get(&service).cloned())
                    .or(table.url);
                let token = own_token
                    .or_else(|| listed_tokens.get(&service).cloned())
                    .or(table.token);
                Ok((service, target(service.as_str(), url, token)?))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let upstreams = UpstreamSettings {
            targets,
            poll_interval_seconds: raw
                .poll_interval_seconds
                .unwrap_or(DEFAULT_POLL_INTERVAL_SECONDS),
            sentinel_dir: raw.sentinel_dir,
            sentinel_tenant: raw
                .sentinel_tenant
                .map(|t| {
                    TenantId::parse(&t).map_err(|e| anyhow::anyhow!("--sentinel-tenant `{t}`: {e}"))
                })
                .transpose()?,
            aifactory_projects: aifactory_projects(
                raw.aifactory_projects.as_deref().unwrap_or_default(),
            )?,
            tfactory_timezone: raw
                .tfactory_timezone
                .filter(|z| !z.trim().is_empty())
                .unwrap_or_else(|| "UTC".to_owned()),
        };
        let mut thresholds = raw.anomalies.unwrap_or_default();
        thresholds.stall_seconds = i64::try_from(stall_deadline_seconds).unwrap_or(i64::MAX);
        if !(thresholds.z_score > 0.0
            && thresholds.ewma_alpha > 0.0
            && thresholds.ewma_alpha <= 1.0)
        {
            bail!("[anomalies]: z_score must be positive and ewma_alpha in (0, 1]");
        }
        let request_timeout_seconds = raw
            .request_timeout_seconds
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS);
        if request_timeout_seconds == 0 {
            bail!("--request-timeout-seconds must be at least 1");
        }
        let audit_secret = raw
            .audit_hmac_secret
            .filter(|k| !k.trim().is_empty())
            .map(Secret::new);
        if audit_secret
            .as_ref()
            .is_some_and(|k| k.expose().trim().len() < 16)
        {
            bail!("CFACTORY_AUDIT_HMAC_SECRET must be at least 16 characters");
        }
        let lock_timeout_seconds = raw
            .lock_timeout_seconds
            .unwrap_or(DEFAULT_LOCK_TIMEOUT_SECONDS);
        if lock_timeout_seconds == 0 {
            bail!("--lock-timeout-seconds must be at least 1");
        }
        let sso = crate::sso::settings::resolve(
            crate::sso::settings::SsoInputs {
                issuer: raw.oidc_issuer,
                client_id: raw.oidc_client_id,
                client_secret: raw.oidc_client_secret,
                scopes: raw.oidc_scopes,
                groups_claim: raw.oidc_groups_claim,
                tenant: raw.oidc_tenant,
                tenant_claim: raw.oidc_tenant_claim,
                role_flags: raw.oidc_roles.unwrap_or_default(),
                roles: raw.roles.unwrap_or_default(),
            },
            public_url.as_ref(),
            &tenant,
        )?;
        let copilot = raw.copilot.unwrap_or_default().model()?;
        Ok(Self {
            sso,
            upstreams,
            thresholds,
            audit_secret,
            audit_anchor: raw.audit_anchor,
            lock_timeout_seconds,
            database,
            data_dir,
            data_dir_note,
            api_addr,
            ui_addr,
            tenant,
            stall_deadline_seconds,
            max_clock_skew_seconds: raw
                .max_clock_skew_seconds
                .unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS),
            request_timeout_seconds,
            action_ttl_seconds,
            public_url,
            require_second_approver: raw.require_second_approver.unwrap_or(false),
            limits,
            log_format: raw.log_format.unwrap_or(LogFormat::Text),
            log_filter: raw
                .log
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_LOG.to_owned()),
            otlp_endpoint,
            sqlite_synchronous: raw.sqlite_synchronous.unwrap_or_default(),
            seed_keys: raw
                .api_keys
                .filter(|k| !k.trim().is_empty())
                .map(Secret::new),
            ui_dir: raw.ui_dir.filter(|d| !d.as_os_str().is_empty()),
            copilot,
        })
    }
}

/// `--otlp-endpoint` checked: an http(s) URL a collector's `/v1/traces` can be made from.
#[cfg(feature = "otlp")]
fn otlp_endpoint(url: &str) -> anyhow::Result<String> {
    cfactory_otlp::traces_url(url)
        .map(|_| url.trim().to_owned())
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))
}

/// `--otlp-endpoint` in a build that cannot export: refused, with how to get one that can.
#[cfg(not(feature = "otlp"))]
fn otlp_endpoint(_url: &str) -> anyhow::Result<String> {
    bail!(
        "--otlp-endpoint: this cfactory was built without trace export (the `otlp` cargo \
         feature); the release archive and the container have it, or build with `cargo build \
         --release -p cfactory-server --features otlp`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::value::Value;
    use layers::Layers;

    /// The defaults, then `file` as a config file, then each `(key, value)` as a flag.
    fn layered(file: &str, flags: &[(&str, Value)]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cfactory.toml");
        std::fs::write(&path, file)?;
        let mut layers = Layers::defaults().with_file(&path)?;
        for (key, value) in flags {
            layers = layers.with_value(format!("flag {key}"), key, value.clone());
        }
        layers.settings()
    }

    fn text(value: &str) -> Value {
        Value::from(value)
    }

    fn list(values: &[&str]) -> Value {
        Value::from(values.iter().map(|v| Value::from(*v)).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_use_the_embedded_store_in_the_data_dir() {
        let s = layered("", &[("data_dir", text("/tmp/cf"))]).unwrap();
        assert_eq!(s.database, Database::Sqlite("/tmp/cf/cfactory.db".into()));
        assert_eq!(s.api_addr.to_string(), DEFAULT_API_ADDR);
        assert_eq!(s.ui_addr.to_string(), DEFAULT_UI_ADDR);
        assert_eq!(s.tenant.as_str(), "default");
        assert_eq!(s.stall_deadline_seconds, 900);
        assert_eq!(s.upstreams.poll_interval_seconds, 5);
        assert_eq!(s.upstreams.target(Service::AIFACTORY).url, None);
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Full);
        assert_eq!(s.log_filter, DEFAULT_LOG);
        assert_eq!(s.limits, crate::limits::LimitSettings::default());
        assert_eq!(s.ui_dir, None);
        assert!(s.copilot.is_none());
    }

    #[test]
    fn sqlite_durability_is_set_by_the_file_and_beaten_by_the_flag() {
        let file = "sqlite_synchronous = \"normal\"\n";
        let s = layered(file, &[]).unwrap();
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Normal);
        let s = layered(file, &[("sqlite_synchronous", text("full"))]).unwrap();
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Full);
        assert!(layered("sqlite_synchronous = \"off\"", &[]).is_err());
    }

    #[test]
    fn upstream_tokens_fall_back_to_the_shared_one() {
        let s = layered(
            "",
            &[
                ("aifactory_url", text("http://127.0.0.1:3122/")),
                ("upstream_token", text("shared")),
                ("tfactory_token", text("own")),
            ],
        )
        .unwrap();
        let target = |service| s.upstreams.target(service);
        assert_eq!(
            target(Service::AIFACTORY).url.as_deref(),
            Some("http://127.0.0.1:3122")
        );
        assert_eq!(
            target(Service::AIFACTORY).token,
            Some(Secret::new("shared"))
        );
        assert_eq!(target(Service::TFACTORY).token, Some(Secret::new("own")));
        let err = layered("", &[("pfactory_url", text("ftp://x"))]).unwrap_err();
        assert!(err.to_string().contains("--pfactory-url"), "{err}");
    }

    #[test]
    fn any_watched_service_is_reached_by_name_from_flags_or_the_file() {
        let file = "[services.tfactory]\nurl = \"http://file:3\"\ntoken = \"file-t\"\n\
                    [services.aifactory]\nurl = \"http://file:2\"\n";
        let s = layered(
            file,
            &[
                ("service_urls", list(&["aifactory=http://flag:2/"])),
                ("service_tokens", list(&["pfactory=flag-p"])),
                ("pfactory_url", text("http://named:1")),
            ],
        )
        .unwrap();
        let target = |service| s.upstreams.target(service);
        assert_eq!(
            target(Service::PFACTORY).url.as_deref(),
            Some("http://named:1")
        );
        assert_eq!(target(Service::PFACTORY).token, Some(Secret::new("flag-p")));
        assert_eq!(
            target(Service::AIFACTORY).url.as_deref(),
            Some("http://flag:2")
        );
        assert_eq!(
            target(Service::TFACTORY).url.as_deref(),
            Some("http://file:3")
        );
        assert_eq!(target(Service::TFACTORY).token, Some(Secret::new("file-t")));

        for (entries, needle) in [
            (list(&["cfactory=http://x"]), "not a watched service"),
            (
                list(&["nope=http://x"]),
                "known: pfactory, aifactory, tfactory",
            ),
            (list(&["aifactory"]), "NAME=VALUE"),
            (list(&["aifactory=http://a", "aifactory=http://b"]), "twice"),
        ] {
            let err = layered("", &[("service_urls", entries)]).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = layered("", &[("service_tokens", list(&["mystery=s3cret"]))]).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = layered("[services.aifactory]\nhost = \"x\"", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("host"), "{err:#}");
    }

    #[test]
    fn a_service_entry_from_a_higher_layer_beats_the_services_own_key_from_a_lower_one() {
        let s = layered(
            "aifactory_url = \"http://file:2\"\ntfactory_token = \"file-t\"\n",
            &[
                ("service_urls", list(&["aifactory=http://flag:2"])),
                ("service_tokens", list(&["tfactory=flag-t"])),
            ],
        )
        .unwrap();
        let target = |service| s.upstreams.target(service);
        assert_eq!(
            target(Service::AIFACTORY).url.as_deref(),
            Some("http://flag:2")
        );
        assert_eq!(target(Service::TFACTORY).token, Some(Secret::new("flag-t")));
        // In the same layer the service's own key wins.
        let s = layered(
            "aifactory_url = \"http://own:2\"\nservice_urls = [\"aifactory=http://listed:2\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.upstreams.target(Service::AIFACTORY).url.as_deref(),
            Some("http://own:2")
        );
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfactory.toml");
        std::fs::write(
            &path,
            "api_addr = \"127.0.0.1:4000\"\ntenant = \"acme\"\nstall_deadline_seconds = 60\n",
        )
        .unwrap();
        let env = |name: &str| match name {
            "CFACTORY_TENANT" => Some("from-env".to_owned()),
            "CFACTORY_STALL_DEADLINE_SECONDS" => Some("120".to_owned()),
            "CFACTORY_AIFACTORY_PROJECTS" => Some("acme/shop=shop, acme/web=web".to_owned()),
            _ => None,
        };
        let layers = Layers::defaults()
            .with_file(&path)
            .unwrap()
            .with_env(env)
            .with_value("flag --api-addr", "api_addr", text("127.0.0.1:5000"));
        let s = layers.settings().unwrap();
        assert_eq!(s.api_addr.port(), 5000);
        assert_eq!(s.tenant.as_str(), "from-env");
        assert_eq!(s.stall_deadline_seconds, 120, "a number read from its text");
        assert_eq!(s.upstreams.aifactory_projects.len(), 2);
        assert_eq!(s.ui_addr.to_string(), DEFAULT_UI_ADDR);
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let bad =
            |key: &str, value: &str| layered("", &[(key, text(value))]).unwrap_err().to_string();
        assert!(bad("api_addr", "nowhere").contains("--api-addr"));
        assert!(bad("database_url", "mysql://x").contains("unsupported database URL"));
        assert!(bad("tenant", "a b").contains("--tenant"));
        assert!(bad("stall_deadline_seconds", "soon").contains("stall_deadline_seconds"));
        let unknown = format!("{:#}", layered("colour = 1", &[]).unwrap_err());
        assert!(unknown.contains("colour"), "{unknown}");
        assert!(unknown.contains("cfactory.toml"), "{unknown}");
        let nested = format!(
            "{:#}",
            layered("[anomalies]\nzscore = 2.0", &[]).unwrap_err()
        );
        assert!(nested.contains("zscore"), "{nested}");
        let nested = format!("{:#}", layered("[copilot]\nkey = \"k\"", &[]).unwrap_err());
        assert!(nested.contains("`key`"), "{nested}");
    }

    #[test]
    fn passwords_never_print() {
        let db = Database::parse("postgres://me:hunter2@db:5432/cf").unwrap();
        assert_eq!(db.describe(), "postgres://me:***@db:5432/cf");
        assert!(!format!("{db:?}").contains("hunter2"));
        assert_eq!(
            Database::parse("sqlite:///var/x.db?mode=rwc").unwrap(),
            Database::Sqlite("/var/x.db".into())
        );
    }
}

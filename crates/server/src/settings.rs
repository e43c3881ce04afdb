//! One typed `Settings`, resolved once at start: defaults, then the config file, then
//! `CFACTORY_*` environment variables and flags (clap gives a flag precedence over its
//! environment twin). Validation happens here so the rest of the server never sees a bad
//! value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cfactory_domain::insights::Thresholds;
use cfactory_domain::{Service, StageName, TenantId};

/// Default lifetime of a proposed action (15 minutes).
pub const DEFAULT_ACTION_TTL_SECONDS: u64 = 900;
/// How far ahead of the server's clock an event's time may be, by default (5 minutes).
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Default for `--lock-timeout-seconds`.
pub const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 5;
/// Default for `--request-timeout-seconds`.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;
use serde::Deserialize;

/// The default API address.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:3111";
/// The default cockpit address.
pub const DEFAULT_UI_ADDR: &str = "127.0.0.1:3110";
/// The default stall deadline.
pub const DEFAULT_STALL_DEADLINE_SECONDS: u64 = 900;

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

/// The config file's shape: every field optional, names as in the environment without
/// the `CFACTORY_` prefix, lower-cased.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
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
    /// The `[roles]` table: `[roles.GROUP] scopes = [...]`, what each group of the
    /// groups claim grants a person signed in by single sign-on.
    pub roles: Option<BTreeMap<String, crate::sso::settings::RoleEntry>>,
}

impl FileSettings {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
    }
}

/// What flags and environment variables said (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--database-url` / `CFACTORY_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--data-dir` / `CFACTORY_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--api-addr` / `CFACTORY_API_ADDR`.
    pub api_addr: Option<String>,
    /// `--ui-addr` / `CFACTORY_UI_ADDR`.
    pub ui_addr: Option<String>,
    /// `--tenant` / `CFACTORY_TENANT`.
    pub tenant: Option<String>,
    /// `--stall-deadline-seconds` / `CFACTORY_STALL_DEADLINE_SECONDS`.
    pub stall_deadline_seconds: Option<u64>,
    /// `--max-clock-skew-seconds` / `CFACTORY_MAX_CLOCK_SKEW_SECONDS`.
    pub max_clock_skew_seconds: Option<u64>,
    /// `--request-timeout-seconds` / `CFACTORY_REQUEST_TIMEOUT_SECONDS`.
    pub request_timeout_seconds: Option<u64>,
    /// `--action-ttl-seconds` / `CFACTORY_ACTION_TTL_SECONDS`.
    pub action_ttl_seconds: Option<u64>,
    /// `--public-url` / `CFACTORY_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--require-second-approver` / `CFACTORY_REQUIRE_SECOND_APPROVER`.
    pub require_second_approver: Option<bool>,
    /// `--limit-ingest-per-second`.
    pub limit_ingest_per_second: Option<u32>,
    /// `--limit-read-per-second`.
    pub limit_read_per_second: Option<u32>,
    /// `--limit-write-per-minute`.
    pub limit_write_per_minute: Option<u32>,
    /// `--limit-signin-per-minute`.
    pub limit_signin_per_minute: Option<u32>,
    /// `--limit-copilot-turns-per-hour`.
    pub limit_copilot_turns_per_hour: Option<u32>,
    /// `--log-format` / `CFACTORY_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--otlp-endpoint` / `CFACTORY_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// `--sqlite-synchronous` / `CFACTORY_SQLITE_SYNCHRONOUS`.
    pub sqlite_synchronous: Option<SqliteSynchronous>,
    /// `--audit-anchor` / `CFACTORY_AUDIT_ANCHOR`.
    pub audit_anchor: Option<PathBuf>,
    /// `--lock-timeout-seconds` / `CFACTORY_LOCK_TIMEOUT_SECONDS`.
    pub lock_timeout_seconds: Option<u64>,
    /// `CFACTORY_API_KEYS`.
    pub api_keys: Option<String>,
    /// `CFACTORY_AUDIT_HMAC_SECRET`.
    pub audit_hmac_secret: Option<String>,
    /// Flag `--pfactory-url`.
    pub pfactory_url: Option<String>,
    /// Flag `--aifactory-url`.
    pub aifactory_url: Option<String>,
    /// Flag `--tfactory-url`.
    pub tfactory_url: Option<String>,
    /// Flag `--upstream-token`.
    pub upstream_token: Option<String>,
    /// Flag `--pfactory-token`.
    pub pfactory_token: Option<String>,
    /// Flag `--aifactory-token`.
    pub aifactory_token: Option<String>,
    /// Flag `--tfactory-token`.
    pub tfactory_token: Option<String>,
    /// Flag `--poll-interval-seconds`.
    pub poll_interval_seconds: Option<u64>,
    /// Flag `--sentinel-dir`.
    pub sentinel_dir: Option<PathBuf>,
    /// Flag `--sentinel-tenant`.
    pub sentinel_tenant: Option<String>,
    /// Flag `--aifactory-project` / `CFACTORY_AIFACTORY_PROJECTS`.
    pub aifactory_projects: Vec<String>,
    /// Flag `--service-url NAME=URL` / `CFACTORY_SERVICE_URLS`.
    pub service_urls: Vec<String>,
    /// Flag `--service-token NAME=TOKEN` / `CFACTORY_SERVICE_TOKENS`.
    pub service_tokens: Vec<String>,
    /// Flag `--tfactory-timezone` / `CFACTORY_TFACTORY_TIMEZONE`.
    pub tfactory_timezone: Option<String>,
    /// `--oidc-issuer` / `CFACTORY_OIDC_ISSUER`.
    pub oidc_issuer: Option<String>,
    /// `--oidc-client-id` / `CFACTORY_OIDC_CLIENT_ID`.
    pub oidc_client_id: Option<String>,
    /// `--oidc-client-secret` / `CFACTORY_OIDC_CLIENT_SECRET`.
    pub oidc_client_secret: Option<String>,
    /// `--oidc-scopes` / `CFACTORY_OIDC_SCOPES`.
    pub oidc_scopes: Option<String>,
    /// `--oidc-groups-claim` / `CFACTORY_OIDC_GROUPS_CLAIM`.
    pub oidc_groups_claim: Option<String>,
    /// `--oidc-tenant` / `CFACTORY_OIDC_TENANT`.
    pub oidc_tenant: Option<String>,
    /// `--oidc-tenant-claim` / `CFACTORY_OIDC_TENANT_CLAIM`.
    pub oidc_tenant_claim: Option<String>,
    /// `--oidc-role GROUP=SCOPES` / `CFACTORY_OIDC_ROLES`.
    pub oidc_roles: Vec<String>,
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

    /// Resolves defaults < `file` < `over`.
    pub fn resolve(file: FileSettings, over: Overrides) -> anyhow::Result<Self> {
        let crate::data_dir::DataDir {
            path: data_dir,
            note: data_dir_note,
        } = crate::data_dir::resolve(over.data_dir.or(file.data_dir), &|name| {
            std::env::var_os(name)
        })?;
        let database = match over.database_url.or(file.database_url) {
            Some(url) if !url.trim().is_empty() => Database::parse(&url)?,
            _ => Database::Sqlite(data_dir.join("cfactory.db")),
        };
        let api_addr = parse_addr(
            "--api-addr",
            &over
                .api_addr
                .or(file.api_addr)
                .unwrap_or_else(|| DEFAULT_API_ADDR.into()),
        )?;
        let ui_addr = parse_addr(
            "--ui-addr",
            &over
                .ui_addr
                .or(file.ui_addr)
                .unwrap_or_else(|| DEFAULT_UI_ADDR.into()),
        )?;
        let tenant_text = over.tenant.or(file.tenant);
        let tenant = match tenant_text {
            Some(t) => TenantId::parse(&t).map_err(|e| anyhow::anyhow!("--tenant `{t}`: {e}"))?,
            None => TenantId::default_tenant(),
        };
        let stall_deadline_seconds = over
            .stall_deadline_seconds
            .or(file.stall_deadline_seconds)
            .unwrap_or(DEFAULT_STALL_DEADLINE_SECONDS);
        if stall_deadline_seconds == 0 {
            bail!("--stall-deadline-seconds must be at least 1");
        }
        let public_url = over
            .public_url
            .or(file.public_url)
            .filter(|u| !u.trim().is_empty())
            .map(|u| PublicUrl::parse(&u).map_err(|e| anyhow::anyhow!("--public-url `{u}`: {e}")))
            .transpose()?;
        let otlp_endpoint = over
            .otlp_endpoint
            .or(file.otlp_endpoint)
            .filter(|u| !u.trim().is_empty())
            .map(|u| {
                cfactory_otlp::traces_url(&u)
                    .map(|_| u.trim().to_owned())
                    .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))
            })
            .transpose()?;
        let mut limits = file.limits.unwrap_or_default();
        for (flag, slot) in [
            (over.limit_ingest_per_second, &mut limits.ingest_per_second),
            (over.limit_read_per_second, &mut limits.read_per_second),
            (over.limit_write_per_minute, &mut limits.write_per_minute),
            (over.limit_signin_per_minute, &mut limits.signin_per_minute),
            (
                over.limit_copilot_turns_per_hour,
                &mut limits.copilot_turns_per_hour,
            ),
        ] {
            if let Some(value) = flag {
                *slot = value;
            }
        }
        let require_second_approver = over
            .require_second_approver
            .or(file.require_second_approver)
            .unwrap_or(false);
        let action_ttl_seconds = over
            .action_ttl_seconds
            .or(file.action_ttl_seconds)
            .unwrap_or(DEFAULT_ACTION_TTL_SECONDS);
        if !(1..=7 * 86_400).contains(&action_ttl_seconds) {
            bail!("--action-ttl-seconds must be from 1 to 604800 (a week)");
        }
        let shared_token = over.upstream_token.or(file.upstream_token);
        let target = |name: &str, url: Option<String>, token: Option<String>| {
            anyhow::Ok(UpstreamTarget {
                url: upstream_url(name, url)?,
                token: token
                    .or_else(|| shared_token.clone())
                    .filter(|t| !t.trim().is_empty())
                    .map(Secret::new),
            })
        };
        // Each layer (flags, then the file) names a service's URL and token with the
        // family's own flags or the generic `NAME=VALUE` ones; flags win over the file.
        let flag_urls = per_service("--service-url", &over.service_urls)?;
        let flag_tokens = per_service("--service-token", &over.service_tokens)?;
        let mut file_services = BTreeMap::new();
        for (name, target) in file.services.unwrap_or_default() {
            file_services.insert(watched_service("[services]", &name)?, target);
        }
        let named = [
            (
                Service::PFACTORY,
                [over.pfactory_url, over.pfactory_token],
                [file.pfactory_url, file.pfactory_token],
            ),
            (
                Service::AIFACTORY,
                [over.aifactory_url, over.aifactory_token],
                [file.aifactory_url, file.aifactory_token],
            ),
            (
                Service::TFACTORY,
                [over.tfactory_url, over.tfactory_token],
                [file.tfactory_url, file.tfactory_token],
            ),
        ];
        let mut named: BTreeMap<Service, _> = named
            .into_iter()
            .map(|(service, flags, file)| (service, (flags, file)))
            .collect();
        let targets = Service::upstreams()
            .map(|service| {
                let ([flag_url, flag_token], [file_url, file_token]) =
                    named.remove(&service).unwrap_or_default();
                let in_file = file_services.remove(&service).unwrap_or_default();
                let url = flag_url
                    .or_else(|| flag_urls.get(&service).cloned())
                    .or(file_url)
                    .or(in_file.url);
                let token = flag_token
                    .or_else(|| flag_tokens.get(&service).cloned())
                    .or(file_token)
                    .or(in_file.token);
                Ok((service, target(service.as_str(), url, token)?))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let upstreams = UpstreamSettings {
            targets,
            poll_interval_seconds: over
                .poll_interval_seconds
                .or(file.poll_interval_seconds)
                .unwrap_or(DEFAULT_POLL_INTERVAL_SECONDS),
            sentinel_dir: over.sentinel_dir.or(file.sentinel_dir),
            sentinel_tenant: over
                .sentinel_tenant
                .or(file.sentinel_tenant)
                .map(|t| {
                    TenantId::parse(&t).map_err(|e| anyhow::anyhow!("--sentinel-tenant `{t}`: {e}"))
                })
                .transpose()?,
            aifactory_projects: aifactory_projects(if over.aifactory_projects.is_empty() {
                file.aifactory_projects.as_deref().unwrap_or_default()
            } else {
                &over.aifactory_projects
            })?,
            tfactory_timezone: over
                .tfactory_timezone
                .or(file.tfactory_timezone)
                .filter(|z| !z.trim().is_empty())
                .unwrap_or_else(|| "UTC".to_owned()),
        };
        let mut thresholds = file.anomalies.unwrap_or_default();
        thresholds.stall_seconds = i64::try_from(stall_deadline_seconds).unwrap_or(i64::MAX);
        if !(thresholds.z_score > 0.0
            && thresholds.ewma_alpha > 0.0
            && thresholds.ewma_alpha <= 1.0)
        {
            bail!("[anomalies]: z_score must be positive and ewma_alpha in (0, 1]");
        }
        let request_timeout_seconds = over
            .request_timeout_seconds
            .or(file.request_timeout_seconds)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS);
        if request_timeout_seconds == 0 {
            bail!("--request-timeout-seconds must be at least 1");
        }
        let audit_secret = over
            .audit_hmac_secret
            .or(file.audit_hmac_secret)
            .filter(|k| !k.trim().is_empty())
            .map(Secret::new);
        if audit_secret
            .as_ref()
            .is_some_and(|k| k.expose().trim().len() < 16)
        {
            bail!("CFACTORY_AUDIT_HMAC_SECRET must be at least 16 characters");
        }
        let audit_anchor = over.audit_anchor.or(file.audit_anchor);
        let lock_timeout_seconds = over
            .lock_timeout_seconds
            .or(file.lock_timeout_seconds)
            .unwrap_or(DEFAULT_LOCK_TIMEOUT_SECONDS);
        if lock_timeout_seconds == 0 {
            bail!("--lock-timeout-seconds must be at least 1");
        }
        let sso = crate::sso::settings::resolve(
            crate::sso::settings::SsoInputs {
                issuer: over.oidc_issuer.or(file.oidc_issuer),
                client_id: over.oidc_client_id.or(file.oidc_client_id),
                client_secret: over.oidc_client_secret.or(file.oidc_client_secret),
                scopes: over.oidc_scopes.or(file.oidc_scopes),
                groups_claim: over.oidc_groups_claim.or(file.oidc_groups_claim),
                tenant: over.oidc_tenant.or(file.oidc_tenant),
                tenant_claim: over.oidc_tenant_claim.or(file.oidc_tenant_claim),
                role_flags: over.oidc_roles,
                roles: file.roles.unwrap_or_default(),
            },
            public_url.as_ref(),
            &tenant,
        )?;
        Ok(Self {
            sso,
            upstreams,
            thresholds,
            audit_secret,
            audit_anchor,
            lock_timeout_seconds,
            database,
            data_dir,
            data_dir_note,
            api_addr,
            ui_addr,
            tenant,
            stall_deadline_seconds,
            max_clock_skew_seconds: over
                .max_clock_skew_seconds
                .or(file.max_clock_skew_seconds)
                .unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS),
            request_timeout_seconds,
            action_ttl_seconds,
            public_url,
            require_second_approver,
            limits,
            log_format: over
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            otlp_endpoint,
            sqlite_synchronous: over
                .sqlite_synchronous
                .or(file.sqlite_synchronous)
                .unwrap_or_default(),
            seed_keys: over
                .api_keys
                .or(file.api_keys)
                .filter(|k| !k.trim().is_empty())
                .map(Secret::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_the_embedded_store_in_the_data_dir() {
        let over = Overrides {
            data_dir: Some("/tmp/cf".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(FileSettings::default(), over).unwrap();
        assert_eq!(s.database, Database::Sqlite("/tmp/cf/cfactory.db".into()));
        assert_eq!(s.api_addr.to_string(), DEFAULT_API_ADDR);
        assert_eq!(s.ui_addr.to_string(), DEFAULT_UI_ADDR);
        assert_eq!(s.tenant.as_str(), "default");
        assert_eq!(s.stall_deadline_seconds, 900);
        assert_eq!(s.upstreams.poll_interval_seconds, 5);
        assert_eq!(s.upstreams.target(Service::AIFACTORY).url, None);
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Full);
    }

    #[test]
    fn sqlite_durability_is_set_by_the_file_and_beaten_by_the_flag() {
        let file: FileSettings = toml::from_str("sqlite_synchronous = \"normal\"\n").unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Normal);
        let file: FileSettings = toml::from_str("sqlite_synchronous = \"normal\"\n").unwrap();
        let over = Overrides {
            sqlite_synchronous: Some(SqliteSynchronous::Full),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, over).unwrap();
        assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Full);
        assert!(toml::from_str::<FileSettings>("sqlite_synchronous = \"off\"").is_err());
    }

    #[test]
    fn upstream_tokens_fall_back_to_the_shared_one() {
        let over = Overrides {
            aifactory_url: Some("http://127.0.0.1:3122/".into()),
            upstream_token: Some("shared".into()),
            tfactory_token: Some("own".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(FileSettings::default(), over).unwrap();
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
        let bad = Overrides {
            pfactory_url: Some("ftp://x".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(FileSettings::default(), bad).unwrap_err();
        assert!(err.to_string().contains("--pfactory-url"), "{err}");
    }

    #[test]
    fn any_watched_service_is_reached_by_name_from_flags_or_the_file() {
        let file: FileSettings = toml::from_str(
            "[services.tfactory]\nurl = \"http://file:3\"\ntoken = \"file-t\"\n\
             [services.aifactory]\nurl = \"http://file:2\"\n",
        )
        .unwrap();
        let over = Overrides {
            service_urls: vec!["aifactory=http://flag:2/".into()],
            service_tokens: vec!["pfactory=flag-p".into()],
            pfactory_url: Some("http://named:1".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, over).unwrap();
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
            (
                vec!["cfactory=http://x".to_owned()],
                "not a watched service",
            ),
            (
                vec!["nope=http://x".to_owned()],
                "known: pfactory, aifactory, tfactory",
            ),
            (vec!["aifactory".to_owned()], "NAME=VALUE"),
            (
                vec![
                    "aifactory=http://a".to_owned(),
                    "aifactory=http://b".to_owned(),
                ],
                "twice",
            ),
        ] {
            let over = Overrides {
                service_urls: entries,
                ..Overrides::default()
            };
            let err = Settings::resolve(FileSettings::default(), over).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let secret = Overrides {
            service_tokens: vec!["mystery=s3cret".into()],
            ..Overrides::default()
        };
        let err = Settings::resolve(FileSettings::default(), secret).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(toml::from_str::<FileSettings>("[services.aifactory]\nhost = \"x\"").is_err());
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: FileSettings =
            toml::from_str("api_addr = \"127.0.0.1:4000\"\ntenant = \"acme\"\n").unwrap();
        let over = Overrides {
            api_addr: Some("127.0.0.1:5000".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, over).unwrap();
        assert_eq!(s.api_addr.port(), 5000);
        assert_eq!(s.tenant.as_str(), "acme");
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let bad = |over: Overrides| {
            Settings::resolve(FileSettings::default(), over)
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(Overrides {
                api_addr: Some("nowhere".into()),
                ..Overrides::default()
            })
            .contains("--api-addr")
        );
        assert!(
            bad(Overrides {
                database_url: Some("mysql://x".into()),
                ..Overrides::default()
            })
            .contains("unsupported database URL")
        );
        assert!(
            bad(Overrides {
                tenant: Some("a b".into()),
                ..Overrides::default()
            })
            .contains("--tenant")
        );
        assert!(toml::from_str::<FileSettings>("colour = 1").is_err());
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

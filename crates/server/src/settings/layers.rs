//! Where each setting comes from. One table, [`SETTINGS`], names every setting's key in
//! the config file, its environment variables and its flag; the layers (built-in
//! defaults, then the config file, then the environment, then flags) are read through it
//! with figment, so the loader, `--help` and `cfactory config show` cannot disagree.
//! Configuration only: no store, no network.

use std::path::Path;

use anyhow::{Context, bail};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::settings::{RawSettings, Settings, redact_password};

/// How a setting's value is read from the environment and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One value.
    Plain,
    /// A comma-separated list in the environment; a repeated flag.
    List,
    /// One value never printed.
    Secret,
    /// A list never printed.
    SecretList,
    /// A URL printed with its password masked.
    Url,
}

/// One setting: its key in the config file (dotted inside a table), the environment
/// variables that set it (the first one set wins) and its flag, if it has one.
#[derive(Debug)]
pub struct Entry {
    /// The key, as in the config file: `api_addr`, `limits.read_per_second`.
    pub key: &'static str,
    /// The environment variables, in order of precedence.
    pub env: &'static [&'static str],
    /// The flag, with its dashes (`--api-addr`), if any.
    pub flag: Option<&'static str>,
    /// How it is read and printed.
    pub shape: Shape,
    /// What it is, for `--help`'s list of settings without a flag.
    pub about: &'static str,
}

const fn setting(key: &'static str, env: &'static [&'static str], flag: &'static str) -> Entry {
    Entry {
        key,
        env,
        flag: Some(flag),
        shape: Shape::Plain,
        about: "",
    }
}

const fn shaped(
    key: &'static str,
    env: &'static [&'static str],
    flag: &'static str,
    shape: Shape,
) -> Entry {
    Entry {
        key,
        env,
        flag: Some(flag),
        shape,
        about: "",
    }
}

const fn env_only(
    key: &'static str,
    env: &'static [&'static str],
    shape: Shape,
    about: &'static str,
) -> Entry {
    Entry {
        key,
        env,
        flag: None,
        shape,
        about,
    }
}

/// Every setting. A flag's environment twin here is also its clap `env` (a test holds
/// them equal); the settings without a flag are listed in `--help`.
pub const SETTINGS: &[Entry] = &[
    shaped(
        "database_url",
        &["CFACTORY_DATABASE_URL"],
        "--database-url",
        Shape::Url,
    ),
    setting("data_dir", &["CFACTORY_DATA_DIR"], "--data-dir"),
    setting("tenant", &["CFACTORY_TENANT"], "--tenant"),
    setting("log_format", &["CFACTORY_LOG_FORMAT"], "--log-format"),
    env_only(
        "log",
        &["CFACTORY_LOG", "RUST_LOG"],
        Shape::Plain,
        "what is logged, as tracing directives (info,sqlx=warn)",
    ),
    setting(
        "otlp_endpoint",
        &["CFACTORY_OTLP_ENDPOINT"],
        "--otlp-endpoint",
    ),
    setting(
        "sqlite_synchronous",
        &["CFACTORY_SQLITE_SYNCHRONOUS"],
        "--sqlite-synchronous",
    ),
    setting("audit_anchor", &["CFACTORY_AUDIT_ANCHOR"], "--audit-anchor"),
    setting(
        "lock_timeout_seconds",
        &["CFACTORY_LOCK_TIMEOUT_SECONDS"],
        "--lock-timeout-seconds",
    ),
    env_only(
        "api_keys",
        &["CFACTORY_API_KEYS"],
        Shape::Secret,
        "keys to create at start, KEY:SCOPES[:TENANT] comma-separated (scopes joined by +)",
    ),
    env_only(
        "audit_hmac_secret",
        &["CFACTORY_AUDIT_HMAC_SECRET"],
        Shape::Secret,
        "the audit chain's HMAC secret, 16 characters or more",
    ),
    env_only(
        "ui_dir",
        &["CFACTORY_UI_DIR"],
        Shape::Plain,
        "serve the cockpit's files from this directory instead of the embedded ones",
    ),
    setting("api_addr", &["CFACTORY_API_ADDR"], "--api-addr"),
    setting("ui_addr", &["CFACTORY_UI_ADDR"], "--ui-addr"),
    setting(
        "stall_deadline_seconds",
        &["CFACTORY_STALL_DEADLINE_SECONDS"],
        "--stall-deadline-seconds",
    ),
    setting(
        "max_clock_skew_seconds",
        &["CFACTORY_MAX_CLOCK_SKEW_SECONDS"],
        "--max-clock-skew-seconds",
    ),
    setting(
        "request_timeout_seconds",
        &["CFACTORY_REQUEST_TIMEOUT_SECONDS"],
        "--request-timeout-seconds",
    ),
    setting(
        "action_ttl_seconds",
        &["CFACTORY_ACTION_TTL_SECONDS"],
        "--action-ttl-seconds",
    ),
    setting("public_url", &["CFACTORY_PUBLIC_URL"], "--public-url"),
    setting(
        "require_second_approver",
        &["CFACTORY_REQUIRE_SECOND_APPROVER"],
        "--require-second-approver",
    ),
    setting(
        "limits.ingest_per_second",
        &["CFACTORY_LIMIT_INGEST_PER_SECOND"],
        "--limit-ingest-per-second",
    ),
    setting(
        "limits.read_per_second",
        &["CFACTORY_LIMIT_READ_PER_SECOND"],
        "--limit-read-per-second",
    ),
    setting(
        "limits.write_per_minute",
        &["CFACTORY_LIMIT_WRITE_PER_MINUTE"],
        "--limit-write-per-minute",
    ),
    setting(
        "limits.signin_per_minute",
        &["CFACTORY_LIMIT_SIGNIN_PER_MINUTE"],
        "--limit-signin-per-minute",
    ),
    setting(
        "limits.copilot_turns_per_hour",
        &["CFACTORY_LIMIT_COPILOT_TURNS_PER_HOUR"],
        "--limit-copilot-turns-per-hour",
    ),
    setting("pfactory_url", &["CFACTORY_PFACTORY_URL"], "--pfactory-url"),
    setting(
        "aifactory_url",
        &["CFACTORY_AIFACTORY_URL"],
        "--aifactory-url",
    ),
    setting("tfactory_url", &["CFACTORY_TFACTORY_URL"], "--tfactory-url"),
    shaped(
        "upstream_token",
        &["CFACTORY_UPSTREAM_TOKEN"],
        "--upstream-token",
        Shape::Secret,
    ),
    shaped(
        "pfactory_token",
        &["CFACTORY_PFACTORY_TOKEN"],
        "--pfactory-token",
        Shape::Secret,
    ),
    shaped(
        "aifactory_token",
        &["CFACTORY_AIFACTORY_TOKEN"],
        "--aifactory-token",
        Shape::Secret,
    ),
    shaped(
        "tfactory_token",
        &["CFACTORY_TFACTORY_TOKEN"],
        "--tfactory-token",
        Shape::Secret,
    ),
    shaped(
        "service_urls",
        &["CFACTORY_SERVICE_URLS"],
        "--service-url",
        Shape::List,
    ),
    shaped(
        "service_tokens",
        &["CFACTORY_SERVICE_TOKENS"],
        "--service-token",
        Shape::SecretList,
    ),
    setting(
        "poll_interval_seconds",
        &["CFACTORY_POLL_INTERVAL_SECONDS"],
        "--poll-interval-seconds",
    ),
    setting("sentinel_dir", &["CFACTORY_SENTINEL_DIR"], "--sentinel-dir"),
    setting(
        "sentinel_tenant",
        &["CFACTORY_SENTINEL_TENANT"],
        "--sentinel-tenant",
    ),
    shaped(
        "aifactory_projects",
        &["CFACTORY_AIFACTORY_PROJECTS"],
        "--aifactory-project",
        Shape::List,
    ),
    setting(
        "tfactory_timezone",
        &["CFACTORY_TFACTORY_TIMEZONE"],
        "--tfactory-timezone",
    ),
    setting("oidc_issuer", &["CFACTORY_OIDC_ISSUER"], "--oidc-issuer"),
    setting(
        "oidc_client_id",
        &["CFACTORY_OIDC_CLIENT_ID"],
        "--oidc-client-id",
    ),
    shaped(
        "oidc_client_secret",
        &["CFACTORY_OIDC_CLIENT_SECRET"],
        "--oidc-client-secret",
        Shape::Secret,
    ),
    setting("oidc_scopes", &["CFACTORY_OIDC_SCOPES"], "--oidc-scopes"),
    setting(
        "oidc_groups_claim",
        &["CFACTORY_OIDC_GROUPS_CLAIM"],
        "--oidc-groups-claim",
    ),
    setting("oidc_tenant", &["CFACTORY_OIDC_TENANT"], "--oidc-tenant"),
    setting(
        "oidc_tenant_claim",
        &["CFACTORY_OIDC_TENANT_CLAIM"],
        "--oidc-tenant-claim",
    ),
    shaped(
        "oidc_roles",
        &["CFACTORY_OIDC_ROLES"],
        "--oidc-role",
        Shape::List,
    ),
    env_only(
        "copilot.provider",
        &["CFACTORY_COPILOT_PROVIDER"],
        Shape::Plain,
        "the copilot's model provider, anthropic or openai (unset: no copilot)",
    ),
    env_only(
        "copilot.model",
        &["CFACTORY_COPILOT_MODEL"],
        Shape::Plain,
        "the model id (needed for openai; anthropic defaults to claude-sonnet-4-6)",
    ),
    env_only(
        "copilot.anthropic_api_key",
        &["CFACTORY_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"],
        Shape::Secret,
        "Anthropic's API key",
    ),
    env_only(
        "copilot.anthropic_base_url",
        &["CFACTORY_ANTHROPIC_BASE_URL"],
        Shape::Plain,
        "Anthropic's API address",
    ),
    env_only(
        "copilot.openai_api_key",
        &["CFACTORY_OPENAI_API_KEY", "OPENAI_API_KEY"],
        Shape::Secret,
        "the OpenAI-compatible server's API key, when it wants one",
    ),
    env_only(
        "copilot.openai_base_url",
        &["CFACTORY_OPENAI_BASE_URL"],
        Shape::Plain,
        "the OpenAI-compatible server's address, up to /v1",
    ),
];

/// `--help`'s closing text: the order of the layers, the settings with no flag and their
/// variables, and the exit codes.
pub fn after_help() -> String {
    let mut text = String::from(
        "Settings come from built-in defaults, then the config file (--config), then the \
         environment, then flags; a later one wins. `cfactory config show` prints each \
         with where it came from.\n\nEnvironment (settings without a flag; the config \
         file's key in brackets):\n",
    );
    for entry in SETTINGS.iter().filter(|e| e.flag.is_none()) {
        text.push_str(&format!(
            "  {}  [{}]\n      {}\n",
            entry.env.join(", "),
            entry.key,
            entry.about
        ));
    }
    text.push_str(
        "\nExit status: 0 success; 1 a failure while running (the store unreachable, an \
         address in use, a check that found problems); 2 a usage error (an unknown flag or \
         config key, a malformed config file, an invalid value).",
    );
    text
}

/// One layer: a config file, one environment variable, one flag or the defaults, named
/// for where its values came from (`file PATH`, `env NAME`, `flag --name`, `default`).
struct Layer {
    name: String,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone()).interpolater(|_: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn nested(key: &str, value: Value) -> Dict {
    match figment::util::nest(key, value) {
        Value::Dict(_, dict) => dict,
        _ => Dict::new(),
    }
}

/// The settings' layers, lowest first.
#[derive(Clone)]
pub struct Layers {
    figment: Figment,
    /// The layers' names, lowest first: which of two keys was set higher up.
    order: Vec<String>,
}

impl Layers {
    /// The built-in defaults alone.
    pub fn defaults() -> Self {
        let layer = Layer {
            name: "default".into(),
            dict: RawSettings::defaults(),
        };
        Self {
            figment: Figment::new().merge(layer),
            order: vec!["default".into()],
        }
    }

    /// Adds the TOML config file at `path`. A key the file may not hold is refused with
    /// its name and the file's.
    pub fn with_file(self, path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let dict = parse_file(&text).with_context(|| format!("config file {}", path.display()))?;
        Ok(self.with_layer(format!("file {}", path.display()), dict))
    }

    /// Adds the environment, read through `lookup`: for each setting, the first of its
    /// variables that is set and not blank.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        for entry in SETTINGS {
            let found = entry.env.iter().find_map(|name| {
                lookup(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            });
            if let Some((name, text)) = found {
                let value = match entry.shape {
                    Shape::List | Shape::SecretList => Value::from(
                        text.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(Value::from)
                            .collect::<Vec<_>>(),
                    ),
                    _ => Value::from(text),
                };
                self = self.with_layer(format!("env {name}"), nested(entry.key, value));
            }
        }
        self
    }

    /// Adds one value set by `source` (a flag, say `flag --api-addr`) above the layers so
    /// far.
    pub fn with_value(self, source: impl Into<String>, key: &str, value: Value) -> Self {
        self.with_layer(source.into(), nested(key, value))
    }

    fn with_layer(mut self, name: String, dict: Dict) -> Self {
        self.order.push(name.clone());
        Self {
            figment: self.figment.merge(Layer { name, dict }),
            order: self.order,
        }
    }

    /// How high up the layer that set `key` is (0: the defaults, or unset).
    fn rank(&self, key: &str) -> usize {
        self.figment
            .find_metadata(key)
            .and_then(|m| self.order.iter().rposition(|name| *name == m.name))
            .unwrap_or(0)
    }

    /// A service's own key (`aifactory_url`) and a `NAME=VALUE` entry for it
    /// (`service_urls`) set in different layers: the higher layer wins, as for any other
    /// setting; in the same layer the service's own key does.
    fn settle_named_services(&self, raw: &mut RawSettings) {
        for (kind, list_key) in [("url", "service_urls"), ("token", "service_tokens")] {
            let listed = match kind {
                "url" => raw.service_urls.clone(),
                _ => raw.service_tokens.clone(),
            }
            .unwrap_or_default();
            for service in ["pfactory", "aifactory", "tfactory"] {
                let own_key = format!("{service}_{kind}");
                let named_in_list = listed.iter().any(|entry| {
                    entry
                        .split_once('=')
                        .is_some_and(|(name, _)| name.trim() == service)
                });
                if !named_in_list || self.rank(list_key) <= self.rank(&own_key) {
                    continue;
                }
                let own = match (service, kind) {
                    ("pfactory", "url") => &mut raw.pfactory_url,
                    ("pfactory", _) => &mut raw.pfactory_token,
                    ("aifactory", "url") => &mut raw.aifactory_url,
                    ("aifactory", _) => &mut raw.aifactory_token,
                    (_, "url") => &mut raw.tfactory_url,
                    _ => &mut raw.tfactory_token,
                };
                *own = None;
            }
        }
    }

    /// The merged values, checked against the settings' shape (strings standing for
    /// numbers or booleans, as the environment gives them, are read as such).
    pub fn raw(&self) -> anyhow::Result<RawSettings> {
        self.figment
            .extract_lossy()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The resolved, validated settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut raw = self.raw()?;
        self.settle_named_services(&mut raw);
        Settings::resolve(raw)
    }

    /// Every setting as `key = value  # source` lines, secrets as `***`: the table's
    /// settings in its order (unset ones as comments), then the tables' entries.
    pub fn show(&self) -> anyhow::Result<String> {
        let merged: Dict = self.figment.extract().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut leaves = Vec::new();
        flatten("", &merged, &mut leaves);
        let resolved = self.settings().ok();
        let mut out = String::new();
        for entry in SETTINGS {
            match leaves.iter().position(|(key, _)| key == entry.key) {
                Some(at) => {
                    let (key, value) = leaves.remove(at);
                    out.push_str(&self.line(&key, &print(entry.shape, &value)));
                }
                None => out.push_str(&unset(entry.key, resolved.as_ref())),
            }
        }
        for (key, value) in leaves {
            let shape = if is_secret_key(&key) {
                Shape::Secret
            } else {
                Shape::Plain
            };
            out.push_str(&self.line(&key, &print(shape, &value)));
        }
        Ok(out)
    }

    fn line(&self, key: &str, value: &str) -> String {
        let source = self
            .figment
            .find_metadata(key)
            .map_or("default", |m| m.name.as_ref());
        format!("{key} = {value}  # {source}\n")
    }
}

/// Parses a config file: its keys must be settings (tables included), with values of
/// the right type.
fn parse_file(text: &str) -> anyhow::Result<Dict> {
    toml::from_str::<RawSettings>(text)?;
    let dict: Dict = toml::from_str(text)?;
    // `[anomalies]` is the domain's own type, which takes any key: check it here.
    if let Some(Value::Dict(_, anomalies)) = dict.get("anomalies") {
        let known = RawSettings::defaults();
        let Some(Value::Dict(_, known)) = known.get("anomalies") else {
            bail!("the [anomalies] defaults are missing");
        };
        if let Some(key) = anomalies.keys().find(|k| !known.contains_key(*k)) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            bail!(
                "unknown field `{key}` in [anomalies], expected one of {}",
                names.join(", ")
            );
        }
    }
    Ok(dict)
}

fn flatten(prefix: &str, dict: &Dict, out: &mut Vec<(String, Value)>) {
    for (key, value) in dict {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Dict(_, inner) => flatten(&key, inner, out),
            _ => out.push((key, value.clone())),
        }
    }
}

/// Whether a key of a table (`services.NAME.token`) holds a secret.
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    ["token", "secret", "key", "password"]
        .iter()
        .any(|word| last.contains(word))
}

fn print(shape: Shape, value: &Value) -> String {
    match shape {
        Shape::Secret | Shape::SecretList => "\"***\"".into(),
        Shape::Url => match value {
            Value::String(_, url) => quoted(&redact_password(url)),
            _ => "\"***\"".into(),
        },
        Shape::Plain | Shape::List => {
            serde_json::to_string(value).unwrap_or_else(|_| "\"?\"".into())
        }
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"?\"".into())
}

/// The line for a setting no layer set: the value the server works out (the data
/// directory and the store), else a comment.
fn unset(key: &str, resolved: Option<&Settings>) -> String {
    let worked_out = resolved.and_then(|s| match key {
        "data_dir" => Some(path_text(&s.data_dir)),
        "database_url" => Some(s.database.describe()),
        _ => None,
    });
    match worked_out {
        Some(value) => format!("{key} = {}  # default\n", quoted(&value)),
        None => format!("# {key} is not set\n"),
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

//! Single sign-on's settings: the OpenID Connect client (`--oidc-*`), the tenant people
//! act for, and the `[roles]` table that maps their groups to scopes. Resolved and checked
//! once at start, with the other settings; the rest of the server sees [`SsoSettings`].

use std::collections::BTreeMap;

use anyhow::bail;
use cfactory_domain::TenantId;
use cfactory_domain::ports::Scope;
use serde::Deserialize;

use crate::settings::{PublicUrl, Secret};

/// Where the provider sends the browser back, under `--public-url`.
pub const CALLBACK_PATH: &str = "/api/auth/oidc/callback";
/// The groups claim unless `--oidc-groups-claim` names another.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Scopes asked for besides `openid` unless `--oidc-scopes` names others.
pub const DEFAULT_SCOPES: [&str; 2] = ["email", "profile"];

/// One entry of the config file's `[roles]` table: `[roles.GROUP] scopes = [...]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// The scopes the group grants.
    pub scopes: Vec<String>,
}

/// What flags, the environment and the file said about single sign-on, merged (flags
/// and the environment first), before it is checked.
#[derive(Debug, Default)]
pub struct SsoInputs {
    /// `--oidc-issuer`.
    pub issuer: Option<String>,
    /// `--oidc-client-id`.
    pub client_id: Option<String>,
    /// `--oidc-client-secret`.
    pub client_secret: Option<String>,
    /// `--oidc-scopes`.
    pub scopes: Option<String>,
    /// `--oidc-groups-claim`.
    pub groups_claim: Option<String>,
    /// `--oidc-tenant`.
    pub tenant: Option<String>,
    /// `--oidc-tenant-claim`.
    pub tenant_claim: Option<String>,
    /// `--oidc-role GROUP=SCOPE+SCOPE` entries (they replace a file entry of the same
    /// group).
    pub role_flags: Vec<String>,
    /// The file's `[roles]` table.
    pub roles: BTreeMap<String, RoleEntry>,
}

/// `serve`'s single sign-on flags; each has its environment twin and its config-file key
/// (the environment name without `CFACTORY_`, lower-cased).
#[derive(Debug, Default, clap::Args)]
pub struct SsoArgs {
    /// OpenID Connect issuer URL, exactly as the provider names itself; single sign-on is
    /// off while unset. https, except for a provider on 127.0.0.1 or localhost
    #[arg(long, env = "CFACTORY_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// This cockpit's client id at the provider
    #[arg(long, env = "CFACTORY_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Its client secret (unset: a public client, PKCE alone)
    #[arg(long, env = "CFACTORY_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Scopes asked for besides `openid`, space- or comma-separated [default: email
    /// profile]
    #[arg(long, env = "CFACTORY_OIDC_SCOPES")]
    pub oidc_scopes: Option<String>,
    /// The ID token claim that lists a person's groups (a dotted path reaches into an
    /// object: realm_access.roles) [default: groups]
    #[arg(long, env = "CFACTORY_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// The tenant people signed in by single sign-on act for [default: the --tenant
    /// tenant]
    #[arg(long, env = "CFACTORY_OIDC_TENANT")]
    pub oidc_tenant: Option<String>,
    /// Take each person's tenant from this ID token claim instead of --oidc-tenant
    #[arg(long, env = "CFACTORY_OIDC_TENANT_CLAIM")]
    pub oidc_tenant_claim: Option<String>,
    /// What a group grants, as GROUP=SCOPE+SCOPE (repeat, or comma-separate in the
    /// environment); beside the config file's [roles] table, a flag wins for its group
    #[arg(long = "oidc-role", env = "CFACTORY_OIDC_ROLES", value_delimiter = ',')]
    pub oidc_roles: Vec<String>,
}

/// Which tenant a signed-in person acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoTenant {
    /// Everyone acts for this tenant (`--oidc-tenant`, else `--tenant`).
    Fixed(TenantId),
    /// The ID token's claim of this name names the tenant (`--oidc-tenant-claim`).
    Claim(String),
}

/// Groups mapped to scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(BTreeMap<String, Vec<Scope>>);

impl Roles {
    /// The scopes `groups` grant together, sorted; empty when none of them is mapped.
    pub fn scopes_for(&self, groups: &[String]) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = groups
            .iter()
            .filter_map(|g| self.0.get(g))
            .flatten()
            .copied()
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The mapped group names.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Single sign-on, checked.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The issuer URL, as the provider's discovery document names itself.
    pub issuer: String,
    /// This cockpit's client id at the provider.
    pub client_id: String,
    /// Its client secret; `None` for a public client (PKCE alone).
    pub client_secret: Option<Secret>,
    /// `{public_url}/api/auth/oidc/callback`.
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim that lists a person's groups.
    pub groups_claim: String,
    /// The tenant people act for.
    pub tenant: SsoTenant,
    /// The `[roles]` table.
    pub roles: Roles,
}

/// Whether an issuer over plain http is acceptable: only on this machine (tests, a
/// provider beside the cockpit).
fn local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_scopes(group: &str, names: &[String]) -> anyhow::Result<Vec<Scope>> {
    if names.is_empty() {
        bail!(
            "[roles.{group}] grants no scope; list at least one (read, write, ingest, approve, metrics, scim, admin)"
        );
    }
    names
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "[roles.{group}]: `{name}` is not a scope (read, write, ingest, approve, \
                     metrics, scim, admin)"
                )
            })
        })
        .collect()
}

/// Checks `inputs`; `None` when single sign-on is off (no issuer). `public_url` gives the
/// redirect URL; `default_tenant` is `--tenant`.
pub fn resolve(
    inputs: SsoInputs,
    public_url: Option<&PublicUrl>,
    default_tenant: &TenantId,
) -> anyhow::Result<Option<SsoSettings>> {
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let Some(issuer) = blank(inputs.issuer) else {
        for (flag, value) in [
            ("--oidc-client-id", &inputs.client_id),
            ("--oidc-client-secret", &inputs.client_secret),
            ("--oidc-tenant", &inputs.tenant),
            ("--oidc-tenant-claim", &inputs.tenant_claim),
        ] {
            if value.as_deref().is_some_and(|v| !v.trim().is_empty()) {
                bail!("{flag} is set but --oidc-issuer is not: single sign-on needs the issuer");
            }
        }
        return Ok(None);
    };
    let issuer = issuer.trim().to_owned();
    let url = url::Url::parse(&issuer)
        .map_err(|e| anyhow::anyhow!("--oidc-issuer `{issuer}`: not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(local_host) => {}
        "http" => bail!(
            "--oidc-issuer `{issuer}`: must be https (plain http is accepted only for a \
             provider on 127.0.0.1 or localhost)"
        ),
        _ => bail!("--oidc-issuer `{issuer}`: must be an https URL"),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        bail!("--oidc-issuer `{issuer}`: must carry no credentials, query or fragment");
    }
    let Some(client_id) = blank(inputs.client_id) else {
        bail!("--oidc-issuer is set but --oidc-client-id is not: single sign-on needs both");
    };
    let Some(public_url) = public_url else {
        bail!(
            "single sign-on needs --public-url: the identity provider sends the browser back \
             to {{public_url}}{CALLBACK_PATH}, which must be registered with it"
        );
    };
    let scopes: Vec<String> = match blank(inputs.scopes) {
        Some(text) => text
            .split([' ', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "openid")
            .map(str::to_owned)
            .collect(),
        None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let groups_claim = blank(inputs.groups_claim)
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| DEFAULT_GROUPS_CLAIM.to_owned());
    let tenant = match (blank(inputs.tenant), blank(inputs.tenant_claim)) {
        (Some(_), Some(_)) => {
            bail!("--oidc-tenant and --oidc-tenant-claim are both set: choose one")
        }
        (Some(t), None) => SsoTenant::Fixed(
            TenantId::parse(t.trim()).map_err(|e| anyhow::anyhow!("--oidc-tenant `{t}`: {e}"))?,
        ),
        (None, Some(claim)) => SsoTenant::Claim(claim.trim().to_owned()),
        (None, None) => SsoTenant::Fixed(default_tenant.clone()),
    };
    let mut roles = BTreeMap::new();
    for (group, entry) in inputs.roles {
        let scopes = parse_scopes(&group, &entry.scopes)?;
        roles.insert(group, scopes);
    }
    for flag in inputs.role_flags {
        let Some((group, scopes)) = flag.split_once('=') else {
            bail!("--oidc-role `{flag}`: expected GROUP=SCOPE+SCOPE (for example ops=read+write)");
        };
        let group = group.trim();
        if group.is_empty() {
            bail!("--oidc-role `{flag}`: the group name is empty");
        }
        let names: Vec<String> = scopes
            .split('+')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        roles.insert(group.to_owned(), parse_scopes(group, &names)?);
    }
    if roles.is_empty() {
        bail!(
            "single sign-on needs at least one role: map a group of the `{groups_claim}` claim \
             to scopes in the config file's [roles] table (`[roles.cfactory-admins]` \
             `scopes = [\"read\", \"write\", \"admin\"]`) or with --oidc-role GROUP=SCOPES"
        );
    }
    Ok(Some(SsoSettings {
        redirect_url: format!("{}{CALLBACK_PATH}", public_url.origin()),
        issuer,
        client_id: client_id.trim().to_owned(),
        client_secret: blank(inputs.client_secret).map(Secret::new),
        scopes,
        groups_claim,
        tenant,
        roles: Roles(roles),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> SsoInputs {
        SsoInputs {
            issuer: Some("https://id.example.com/realms/acme".into()),
            client_id: Some("cfactory".into()),
            client_secret: Some("s3cret".into()),
            role_flags: vec!["ops=read+write".into()],
            ..SsoInputs::default()
        }
    }

    fn public() -> PublicUrl {
        PublicUrl::parse("https://cockpit.example.com").unwrap()
    }

    fn err(inputs: SsoInputs) -> String {
        resolve(inputs, Some(&public()), &TenantId::default_tenant())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_complete_configuration_resolves_with_its_defaults() {
        let mut i = inputs();
        i.roles.insert(
            "cfactory-admins".into(),
            RoleEntry {
                scopes: vec!["read".into(), "admin".into()],
            },
        );
        let s = resolve(i, Some(&public()), &TenantId::default_tenant())
            .unwrap()
            .unwrap();
        assert_eq!(
            s.redirect_url,
            "https://cockpit.example.com/api/auth/oidc/callback"
        );
        assert_eq!(s.groups_claim, "groups");
        assert_eq!(s.scopes, vec!["email", "profile"]);
        assert_eq!(s.tenant, SsoTenant::Fixed(TenantId::default_tenant()));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(
            s.roles
                .scopes_for(&["ops".into(), "cfactory-admins".into(), "x".into()]),
            vec![Scope::Read, Scope::Write, Scope::Admin]
        );
        assert!(s.roles.scopes_for(&["x".into()]).is_empty());
        assert_eq!(
            resolve(SsoInputs::default(), None, &TenantId::default_tenant())
                .unwrap()
                .map(|s| s.issuer),
            None,
            "no issuer: single sign-on is off"
        );
    }

    #[test]
    fn scopes_and_the_tenant_follow_their_flags() {
        let s = resolve(
            SsoInputs {
                scopes: Some("openid email, groups".into()),
                tenant_claim: Some("org".into()),
                issuer: Some("http://127.0.0.1:4000".into()),
                ..inputs()
            },
            Some(&public()),
            &TenantId::default_tenant(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.scopes, vec!["email", "groups"]);
        assert_eq!(s.tenant, SsoTenant::Claim("org".into()));
    }

    #[test]
    fn bad_configurations_are_refused_with_the_setting_named() {
        for (inputs, needle) in [
            (
                SsoInputs {
                    issuer: Some("http://id.example.com".into()),
                    ..inputs()
                },
                "must be https",
            ),
            (
                SsoInputs {
                    issuer: Some("not a url".into()),
                    ..inputs()
                },
                "--oidc-issuer",
            ),
            (
                SsoInputs {
                    client_id: None,
                    ..inputs()
                },
                "--oidc-client-id",
            ),
            (
                SsoInputs {
                    role_flags: vec![],
                    ..inputs()
                },
                "[roles]",
            ),
            (
                SsoInputs {
                    role_flags: vec!["ops=read+fly".into()],
                    ..inputs()
                },
                "`fly` is not a scope",
            ),
            (
                SsoInputs {
                    role_flags: vec!["ops".into()],
                    ..inputs()
                },
                "GROUP=SCOPE",
            ),
            (
                SsoInputs {
                    tenant: Some("acme".into()),
                    tenant_claim: Some("org".into()),
                    ..inputs()
                },
                "both set",
            ),
            (
                SsoInputs {
                    tenant: Some("a b".into()),
                    ..inputs()
                },
                "--oidc-tenant",
            ),
            (
                SsoInputs {
                    issuer: None,
                    ..inputs()
                },
                "--oidc-issuer is not",
            ),
        ] {
            let e = err(inputs);
            assert!(e.contains(needle), "{e}");
        }
        let no_public = resolve(inputs(), None, &TenantId::default_tenant()).unwrap_err();
        assert!(
            no_public.to_string().contains("--public-url"),
            "{no_public}"
        );
    }
}

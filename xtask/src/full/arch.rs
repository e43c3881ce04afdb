//! The architecture check: dependencies point inward. The domain crate may depend on no
//! I/O crate and on no other crate of this workspace; an adapter crate depends on no
//! other adapter (the shared upstream plumbing excepted); the copilot reaches no adapter;
//! the server speaks HTTP to the upstreams only through their adapters, so it does not
//! depend on an HTTP client.

use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// Crates that do I/O and must stay out of the domain.
const FORBIDDEN: &[&str] = &[
    "axum",
    "sqlx",
    "reqwest",
    "tokio-tungstenite",
    "tungstenite",
    "hyper",
    "tower",
    "tower-http",
    "tokio",
    "rig-core",
];

/// The adapter crates: each implements domain ports for one outside thing.
const ADAPTERS: &[&str] = &[
    "cfactory-postgres",
    "cfactory-sqlite",
    "cfactory-pfactory",
    "cfactory-aifactory",
    "cfactory-tfactory",
    "cfactory-upstream-http",
    "cfactory-oidc",
    "cfactory-otlp",
];

/// The plumbing adapters may share.
const SHARED_PLUMBING: &str = "cfactory-upstream-http";

/// A package's dependencies outside dev-dependencies.
fn runtime_deps(package: &Value) -> impl Iterator<Item = &str> {
    package["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"].as_str() != Some("dev"))
        .filter_map(|d| d["name"].as_str())
}

/// HTTP clients the server must reach only through the upstream adapters.
const SERVER_FORBIDDEN: &[&str] = &["reqwest", "hyper-util"];

/// Adapters that depend on other adapters, a copilot that depends on any adapter, and a
/// server that sends HTTP itself.
fn outer_ring_faults(packages: &[Value]) -> Vec<String> {
    let mut faults = Vec::new();
    for p in packages.iter().filter(|p| p["name"] == "cfactory-server") {
        for dep in runtime_deps(p).filter(|d| SERVER_FORBIDDEN.contains(d)) {
            faults.push(format!(
                "cfactory-server depends on `{dep}`: upstream requests go through the adapters"
            ));
        }
    }
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let allowed: &[&str] = if ADAPTERS.contains(&name) {
            &[SHARED_PLUMBING]
        } else if name == "cfactory-copilot" {
            &[]
        } else {
            continue;
        };
        for dep in runtime_deps(p) {
            if ADAPTERS.contains(&dep) && dep != name && !allowed.contains(&dep) {
                faults.push(format!(
                    "{name} depends on the adapter `{dep}`: adapters meet only through domain ports"
                ));
            }
        }
    }
    faults
}

/// Runs the check, printing what it looked at.
pub fn check() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        // --offline fails on a fresh clone before the first fetch; try online once.
        let retry = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1"])
            .output()
            .context("running cargo metadata")?;
        if !retry.status.success() {
            bail!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&retry.stderr)
            );
        }
        return check_metadata(&serde_json::from_slice(&retry.stdout)?);
    }
    check_metadata(&serde_json::from_slice(&out.stdout)?)
}

fn check_metadata(meta: &Value) -> anyhow::Result<()> {
    let packages = meta["packages"]
        .as_array()
        .context("metadata has packages")?;
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .context("metadata has members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let workspace_names: Vec<&str> = packages
        .iter()
        .filter(|p| members.iter().any(|m| Some(*m) == p["id"].as_str()))
        .filter_map(|p| p["name"].as_str())
        .collect();
    let domain = packages
        .iter()
        .find(|p| p["name"] == "cfactory-domain")
        .context("no cfactory-domain package")?;
    let mut faults = outer_ring_faults(packages);
    for dep in domain["dependencies"].as_array().into_iter().flatten() {
        let name = dep["name"].as_str().unwrap_or_default();
        let dev = dep["kind"].as_str() == Some("dev");
        if dev {
            continue;
        }
        if FORBIDDEN.contains(&name) {
            faults.push(format!("cfactory-domain depends on the I/O crate `{name}`"));
        }
        if workspace_names.contains(&name) {
            faults.push(format!(
                "cfactory-domain depends on `{name}`: dependencies must point inward"
            ));
        }
    }
    if faults.is_empty() {
        println!("architecture: cfactory-domain depends on no I/O crate and no adapter: ok");
        println!("architecture: no adapter depends on another, the copilot on none: ok");
        println!("architecture: the server sends no HTTP of its own (no reqwest): ok");
        Ok(())
    } else {
        for f in &faults {
            eprintln!("architecture: {f}");
        }
        bail!("architecture check failed ({} problems)", faults.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(deps: Value) -> Value {
        json!({
            "workspace_members": ["d", "s"],
            "packages": [
                {"id": "d", "name": "cfactory-domain", "dependencies": deps},
                {"id": "s", "name": "cfactory-server", "dependencies": []}
            ]
        })
    }

    #[test]
    fn a_pure_domain_passes() {
        let m = meta(json!([{"name": "serde", "kind": null}, {"name": "tokio", "kind": "dev"}]));
        assert!(check_metadata(&m).is_ok());
    }

    #[test]
    fn adapters_meet_only_through_the_domain() {
        let with = |name: &str, dep: &str, kind: Value| {
            json!({
                "workspace_members": ["d", "a"],
                "packages": [
                    {"id": "d", "name": "cfactory-domain", "dependencies": []},
                    {"id": "a", "name": name, "dependencies": [{"name": dep, "kind": kind}]}
                ]
            })
        };
        let plumbing = with("cfactory-tfactory", "cfactory-upstream-http", Value::Null);
        assert!(check_metadata(&plumbing).is_ok());
        let crossed = with("cfactory-tfactory", "cfactory-aifactory", Value::Null);
        assert!(check_metadata(&crossed).is_err());
        let store = with("cfactory-postgres", "cfactory-sqlite", Value::Null);
        assert!(check_metadata(&store).is_err());
        let dev_only = with("cfactory-postgres", "cfactory-sqlite", json!("dev"));
        assert!(check_metadata(&dev_only).is_ok());
        let copilot = with("cfactory-copilot", "cfactory-postgres", Value::Null);
        assert!(check_metadata(&copilot).is_err());
    }

    #[test]
    fn a_server_with_an_http_client_fails() {
        let server = |kind: Value| {
            json!({
                "workspace_members": ["d", "s"],
                "packages": [
                    {"id": "d", "name": "cfactory-domain", "dependencies": []},
                    {"id": "s", "name": "cfactory-server",
                     "dependencies": [{"name": "reqwest", "kind": kind}]}
                ]
            })
        };
        assert!(check_metadata(&server(Value::Null)).is_err());
        assert!(
            check_metadata(&server(json!("dev"))).is_ok(),
            "tests may use a client"
        );
    }

    #[test]
    fn io_crates_and_adapters_fail() {
        assert!(check_metadata(&meta(json!([{"name": "sqlx", "kind": null}]))).is_err());
        assert!(check_metadata(&meta(json!([{"name": "cfactory-server", "kind": null}]))).is_err());
    }
}

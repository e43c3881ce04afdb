//! The architecture check: dependencies point inward. The domain crate may depend on no
//! I/O crate and on no other crate of this workspace.

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
    let mut faults = Vec::new();
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
    fn io_crates_and_adapters_fail() {
        assert!(check_metadata(&meta(json!([{"name": "sqlx", "kind": null}]))).is_err());
        assert!(check_metadata(&meta(json!([{"name": "cfactory-server", "kind": null}]))).is_err());
    }
}

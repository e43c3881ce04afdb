//! `cargo xtask fuzz-api`: schemathesis, a schema-based API fuzzer, against the built
//! server on a fresh embedded store. Every operation in `/openapi.json` is called with
//! generated valid and invalid input; a run fails on a server error (5xx), a status code
//! the document does not list for the operation, or a response body that does not
//! validate against its schema. The copilot's chat answers 503 without a language model,
//! so it is checked for documented statuses and schemas only.
//!
//! Schemathesis is installed into `target/api-fuzz-venv` from PyPI on first use, pinned;
//! nothing is installed globally.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The fuzzer's pinned version.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The checks every operation must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance";

/// An operation that cannot avoid a 5xx here (no language model is configured).
const NO_MODEL: &str = "/api/copilot/chat";

/// An operation whose documented answer is 501 (SCIM's search across resource types,
/// which this server does not offer).
const NOT_OFFERED: &str = "/scim/v2/.search";

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// `target/<name>`, a Python venv holding `requirement` (one pinned package), created and
/// filled from PyPI on first use or when the pin changed; nothing is installed globally.
pub(crate) fn python_venv(name: &str, requirement: &str) -> anyhow::Result<PathBuf> {
    let venv = workspace().join("target").join(name);
    let pinned = venv.join(".pinned");
    if venv.join("bin").join("python").exists()
        && std::fs::read_to_string(&pinned).is_ok_and(|p| p == requirement)
    {
        return Ok(venv);
    }
    eprintln!("xtask: installing {requirement} into {}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv (is Python 3 with venv installed?)")?;
    if !status.success() {
        bail!("python3 -m venv failed ({status}); on Debian: apt-get install python3-venv");
    }
    let status = Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ])
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip install {requirement} failed ({status})");
    }
    std::fs::write(&pinned, requirement)?;
    Ok(venv)
}

/// The venv's `schemathesis`, installing it first when missing.
fn schemathesis() -> anyhow::Result<PathBuf> {
    Ok(python_venv("api-fuzz-venv", SCHEMATHESIS)?
        .join("bin")
        .join("schemathesis"))
}

/// Runs the fuzzer with `max_examples` cases per operation and phase.
pub fn run(max_examples: u32) -> anyhow::Result<()> {
    let st = schemathesis()?;
    // Every scope, so admin and SCIM operations are fuzzed too; no sign-in limit, so each
    // operation's logic is reached rather than its limit (the fuzzer signs in far faster
    // than a person).
    let server = crate::served::start(
        "api-fuzz",
        "read,write,ingest,approve,metrics,scim,admin",
        &["--limit-signin-per-minute", "0"],
    )?;
    let schema = format!("{}/openapi.json", server.base);
    let auth = format!("Authorization: Bearer {}", server.key);
    let examples = max_examples.to_string();
    let fuzz = |extra: &[&str], checks: &str| -> anyhow::Result<()> {
        let status = Command::new(&st)
            .args([
                "--no-color",
                "run",
                &schema,
                "-H",
                &auth,
                "--checks",
                checks,
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", &examples, "--request-timeout", "30"])
            .args(["--workers", "2", "--wait-for-schema", "30"])
            .args(extra)
            .current_dir(&server.data)
            .status()
            .context("running schemathesis")?;
        if !status.success() {
            bail!(
                "the API fuzzer found problems (see above; the server's log is {})",
                server.log.display()
            );
        }
        Ok(())
    };
    fuzz(
        &["--exclude-path", NO_MODEL, "--exclude-path", NOT_OFFERED],
        CHECKS,
    )?;
    fuzz(
        &["--include-path", NO_MODEL, "--include-path", NOT_OFFERED],
        "status_code_conformance,response_schema_conformance",
    )?;
    eprintln!("xtask: the API fuzzer found no problems");
    Ok(())
}

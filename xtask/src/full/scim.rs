//! `cargo xtask scim-check`: SCIM 2.0 conformance of `/scim/v2`, checked by scim2-tester
//! (a third-party SCIM checker built on the scim2-models reading of RFC 7643/7644)
//! against the built server on a fresh embedded store, with a key holding only the
//! `scim` scope: discovery (ServiceProviderConfig, ResourceTypes, Schemas), then create,
//! read, replace, PATCH and delete of Users and Groups (`xtask/scim_check.py`). Each
//! check's result is printed; any failed check fails the task.
//!
//! The tester is installed into `target/scim-check-venv` from PyPI on first use, pinned;
//! nothing is installed globally.

use anyhow::Context;

use crate::fuzz::python_venv;

/// The checker's pinned version, with the HTTP engine its client uses.
const TESTER: &str = "scim2-tester[httpx2]==0.5.2";

/// Runs the checker against a freshly started server.
pub fn run() -> anyhow::Result<()> {
    let venv = python_venv("scim-check-venv", TESTER).context(
        "the SCIM check needs Python 3 with venv and pip (on Debian: apt-get install \
         python3-venv)",
    )?;
    let server = crate::served::start("scim-check", "scim", &["--poll-interval-seconds", "0"])?;
    server.check_with_python(&venv, "scim_check.py", "SCIM conformance checks")?;
    eprintln!("xtask: every SCIM conformance check passed");
    Ok(())
}

//! `cargo xtask scim-check`: SCIM 2.0 conformance of `/scim/v2`, checked by scim2-tester
//! (a third-party SCIM checker built on the scim2-models reading of RFC 7643/7644)
//! against the built server on a fresh embedded store, with a key holding only the
//! `scim` scope: discovery (ServiceProviderConfig, ResourceTypes, Schemas), then create,
//! read, replace, PATCH and delete of Users and Groups (`xtask/scim_check.py`). Each
//! check's result is printed; any failed check fails the task.
//!
//! The tester is installed into `target/scim-check-venv` from PyPI on first use, pinned;
//! nothing is installed globally.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::fuzz::{python_venv, workspace};

/// The checker's pinned version, with the HTTP engine its client uses.
const TESTER: &str = "scim2-tester[httpx2]==0.5.2";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server started for the check, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the checker against a freshly started server.
pub fn run() -> anyhow::Result<()> {
    let venv = python_venv("scim-check-venv", TESTER).context(
        "the SCIM check needs Python 3 with venv and pip (on Debian: apt-get install \
         python3-venv)",
    )?;
    let data = workspace().join("target").join("scim-check-run");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "cfactory-server",
            "--bin",
            "cfactory",
        ])
        .current_dir(workspace())
        .status()?;
    if !status.success() {
        bail!("building the server failed ({status})");
    }
    let bin = workspace().join("target").join("debug").join("cfactory");
    let db = format!("sqlite://{}", data.join("cfactory.db").display());
    let base = |cmd: &mut Command| {
        cmd.env("CFACTORY_DATA_DIR", &data)
            .env_remove("CFACTORY_API_KEYS")
            .env_remove("CFACTORY_COPILOT_PROVIDER")
            .args(["--database-url", &db]);
    };
    let mut keys = Command::new(&bin);
    base(&mut keys);
    let out = keys
        .args(["keys", "create", "--scopes", "scim", "--name", "scim-check"])
        .output()
        .context("creating a key")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("cfk_"))
        .with_context(|| format!("no key in the output of `keys create`: {text}"))?
        .to_owned();
    let (api, ui) = (free_port()?, free_port()?);
    let mut serve = Command::new(&bin);
    base(&mut serve);
    let log = std::fs::File::create(data.join("server.log"))?;
    let child = serve
        .args(["serve", "--api-addr", &format!("127.0.0.1:{api}")])
        .args(["--ui-addr", &format!("127.0.0.1:{ui}")])
        .args(["--poll-interval-seconds", "0"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the server")?;
    let _server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "the server did not listen within 60 s; see {}",
                data.join("server.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new(venv.join("bin").join("python"))
        .arg(workspace().join("xtask").join("scim_check.py"))
        .args([&format!("http://127.0.0.1:{api}"), &key])
        .env("PYTHONUNBUFFERED", "1")
        .status()
        .context("running the SCIM checker")?;
    if !status.success() {
        bail!(
            "SCIM conformance checks failed (see above; the server's log is {})",
            data.join("server.log").display()
        );
    }
    eprintln!("xtask: every SCIM conformance check passed");
    Ok(())
}

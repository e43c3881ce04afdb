//! The debug server the HTTP checks drive from another program (the API fuzzer, the MCP
//! client, the SCIM checker): built, given a key with the scopes the check needs on a
//! fresh embedded store in `target/<name>-run`, started on free ports and awaited, and
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::free_port;
use crate::fuzz::workspace;

/// A started server, killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// Its API's base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// The key created for the check.
    pub key: String,
    /// Its folder: the store and the log.
    pub data: PathBuf,
    /// Where its log goes.
    pub log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the server (dev profile), creates a key named `name` with `scopes` on a fresh
/// SQLite store in `target/<name>-run` (emptied first), and starts `serve` there with
/// `serve_args` added; returns once the API listens (within 60 s).
pub(crate) fn start(name: &str, scopes: &str, serve_args: &[&str]) -> anyhow::Result<Served> {
    let data = workspace().join("target").join(format!("{name}-run"));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let data = data.as_path();
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
    // Only the settings given here: keys or a copilot from the caller's environment
    // would change what the check sees.
    let base = |cmd: &mut Command| {
        cmd.env("CFACTORY_DATA_DIR", data)
            .env_remove("CFACTORY_API_KEYS")
            .env_remove("CFACTORY_COPILOT_PROVIDER")
            .args(["--database-url", &db]);
    };
    let mut keys = Command::new(&bin);
    base(&mut keys);
    let out = keys
        .args(["keys", "create", "--scopes", scopes, "--name", name])
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
    let log = data.join("server.log");
    let mut serve = Command::new(&bin);
    base(&mut serve);
    let child = serve
        .args(["serve", "--api-addr", &format!("127.0.0.1:{api}")])
        .args(["--ui-addr", &format!("127.0.0.1:{ui}")])
        .args(serve_args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the server")?;
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{api}"),
        key,
        data: data.to_owned(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "the server did not listen within 60 s; see {}",
                served.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(served)
}

impl Served {
    /// Runs `xtask/<script>` with the Python of `venv`, given this server's base URL and
    /// key; fails when it does, naming `what` failed and where the server's log is.
    pub fn check_with_python(&self, venv: &Path, script: &str, what: &str) -> anyhow::Result<()> {
        let status = Command::new(venv.join("bin").join("python"))
            .arg(workspace().join("xtask").join(script))
            .args([&self.base, &self.key])
            .env("PYTHONUNBUFFERED", "1")
            .status()
            .with_context(|| format!("running xtask/{script}"))?;
        if !status.success() {
            bail!(
                "{what} failed (see above; the server's log is {})",
                self.log.display()
            );
        }
        Ok(())
    }
}

//! `cargo xtask dist`: the release archive for this machine, and the check that it runs
//! on its own.
//!
//! The archive `target/dist/cfactory-<version>-<target>.tar.gz` holds one folder of the
//! same name with the `cfactory` binary (the cockpit embedded: the UI is built first when
//! it is missing or stale), `LICENSE`, `CHANGELOG.md`, the operators' `README.md`, the
//! systemd unit `cfactory.service` and `cfactory.example.toml`; beside it,
//! `<archive>.sha256` in `sha256sum` form. `--debug` builds with the dev profile instead
//! (the archive name ends in `-debug`), which is what the test command packs. Either
//! way the binary is built with the `otlp` feature, so what is shipped exports traces.
//! The check unpacks an archive into an empty folder, verifies the sum, checks that the
//! binary takes an OTLP endpoint, and runs `./cfactory demo` from there with no source
//! tree in reach and no Node.js on the `PATH`, until `/health`, the cockpit's index page
//! and the file it loads, and an API page answer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// `cargo xtask dist` flags.
#[derive(clap::Args)]
pub struct DistArgs {
    /// Build with the dev profile instead of release (quick; for testing the packaging).
    #[arg(long)]
    debug: bool,
    /// Then unpack the archive into an empty folder and run its `cfactory demo` there
    /// (what the test command does).
    #[arg(long)]
    check: bool,
    /// Embed `ui/dist` as it is, without npm (the container build makes it in a stage of
    /// its own); it must exist.
    #[arg(long)]
    prebuilt_ui: bool,
}

/// The files of the archive besides the binary: where each comes from in the repository
/// and its name in the archive.
const FILES: &[(&str, &str)] = &[
    ("LICENSE", "LICENSE"),
    ("CHANGELOG.md", "CHANGELOG.md"),
    ("packaging/README.md", "README.md"),
    ("packaging/cfactory.service", "cfactory.service"),
    ("packaging/cfactory.example.toml", "cfactory.example.toml"),
];

/// A built archive and its sum file.
pub struct Archive {
    /// `…/cfactory-<version>-<target>[-debug].tar.gz`.
    pub path: PathBuf,
    /// `<path>.sha256`.
    pub sum: PathBuf,
    /// The folder inside the archive.
    pub folder: String,
}

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The host's target triple, as the toolchain that builds the binary names it.
fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .current_dir(root())
        .output()
        .context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV named no host")
}

/// `cargo xtask dist`.
pub fn run(args: &DistArgs) -> anyhow::Result<()> {
    let archive = build(args.debug, args.prebuilt_ui)?;
    println!("{}", archive.path.display());
    println!("{}", archive.sum.display());
    if args.check {
        check(&archive)?;
    }
    Ok(())
}

/// Builds the UI when stale (unless `prebuilt_ui`), the binary, and the archive with its
/// sum file.
pub fn build(debug: bool, prebuilt_ui: bool) -> anyhow::Result<Archive> {
    if !prebuilt_ui && crate::demo::ui_is_stale() {
        crate::demo::build_ui()?;
    }
    if !root().join("ui/dist/index.html").is_file() {
        bail!("ui/dist/index.html is missing: the archive would have no cockpit (build the UI)");
    }
    let profile = if debug { "debug" } else { "release" };
    eprintln!("xtask: building cfactory ({profile})");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--locked",
        "-p",
        "cfactory-server",
        "--bin",
        "cfactory",
        // What an operator installs exports traces; the demo's own build leaves it out.
        "--features",
        "otlp",
    ]);
    if !debug {
        cargo.arg("--release");
    }
    let status = cargo
        .current_dir(root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build ({profile}) failed ({status})");
    }
    let bin = target_dir().join(profile).join("cfactory");

    let version = env!("CARGO_PKG_VERSION");
    let mut folder = format!("cfactory-{version}-{}", host_triple()?);
    if debug {
        folder.push_str("-debug");
    }
    let out = target_dir().join("dist");
    let staging = out.join(&folder);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("clearing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging)?;
    std::fs::copy(&bin, staging.join("cfactory"))
        .with_context(|| format!("copying {}", bin.display()))?;
    for (from, to) in FILES {
        std::fs::copy(root().join(from), staging.join(to))
            .with_context(|| format!("copying {from} into the archive"))?;
    }

    let path = out.join(format!("{folder}.tar.gz"));
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&path)
        .arg("-C")
        .arg(&out)
        .arg(&folder)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar failed ({status})");
    }
    let digest = sha256_hex(&path)?;
    let sum = out.join(format!("{folder}.tar.gz.sha256"));
    std::fs::write(&sum, format!("{digest}  {folder}.tar.gz\n"))?;
    std::fs::remove_dir_all(&staging)?;
    Ok(Archive { path, sum, folder })
}

fn sha256_hex(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks `archive` as an operator would use it: the sum matches, it unpacks into an empty
/// folder with every file, and `./cfactory demo` started from there (no source tree, no
/// Node.js on the `PATH`, nothing of the caller's environment) answers `/health`, serves
/// the embedded cockpit (its index page and the first file that page loads) and an API
/// page, then stops cleanly on SIGTERM.
pub fn check(archive: &Archive) -> anyhow::Result<()> {
    eprintln!("xtask: checking {}", archive.path.display());
    let name = archive
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .context("archive name")?;
    let listed = std::fs::read_to_string(&archive.sum)
        .with_context(|| format!("reading {}", archive.sum.display()))?;
    let expected = format!("{}  {name}", sha256_hex(&archive.path)?);
    if listed.trim_end() != expected {
        bail!(
            "{} says `{}`, the archive's sum is `{expected}`",
            archive.sum.display(),
            listed.trim_end()
        );
    }

    let scratch = Scratch::new()?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive.path)
        .arg("-C")
        .arg(&scratch.0)
        .status()
        .context("running tar -x")?;
    if !status.success() {
        bail!("unpacking the archive failed ({status})");
    }
    let unpacked = scratch.0.join(&archive.folder);
    for file in ["cfactory"]
        .into_iter()
        .chain(FILES.iter().map(|(_, to)| *to))
    {
        if !unpacked.join(file).is_file() {
            bail!("the archive has no {file}");
        }
    }
    // A PATH with nothing on it: no node, no npm, no cargo.
    let empty_path = scratch.0.join("empty-path");
    let home = scratch.0.join("home");
    let data = scratch.0.join("data");
    for dir in [&empty_path, &home] {
        std::fs::create_dir_all(dir)?;
    }
    // What an operator installs exports traces: its settings take an OTLP endpoint (a
    // build without the `otlp` feature refuses one with exit 2).
    let traces = Command::new(unpacked.join("cfactory"))
        .args(["--otlp-endpoint", "http://127.0.0.1:4318", "config", "show"])
        .arg("--data-dir")
        .arg(&data)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", &home)
        .output()
        .context("running ./cfactory config show from the unpacked archive")?;
    if !traces.status.success() {
        bail!(
            "the archive's cfactory refuses an OTLP endpoint ({}): {}",
            traces.status,
            String::from_utf8_lossy(&traces.stderr).trim()
        );
    }
    let child = Command::new(unpacked.join("cfactory"))
        .args([
            "demo",
            "--api-addr",
            "127.0.0.1:0",
            "--ui-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .current_dir(&unpacked)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", &home)
        .env("CFACTORY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ./cfactory demo from the unpacked archive")?;
    let mut demo = Demo::watch(child);
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(probe(&mut demo));
    let stopped = demo.stop();
    if let Err(e) = outcome {
        bail!("{e:#}\nlast lines of its log:\n{}", demo.tail());
    }
    if !stopped? {
        bail!(
            "cfactory demo did not exit 0 on SIGTERM; its log:\n{}",
            demo.tail()
        );
    }
    if !data.join("demo").join("cfactory.db").is_file() {
        bail!("the demo left no store in {}", data.join("demo").display());
    }
    eprintln!("xtask: the archive unpacks and its cfactory demo serves the cockpit: ok");
    Ok(())
}

/// Waits for the listening lines, then for each page the check reads.
async fn probe(demo: &mut Demo) -> anyhow::Result<()> {
    let (api, ui) = demo.addresses(Duration::from_secs(60))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.get(format!("{api}/health")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() > deadline => bail!("{api}/health did not answer 200 within 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let index = client.get(format!("{ui}/")).send().await?;
    if !index.status().is_success() {
        bail!("the cockpit's index page answered {}", index.status());
    }
    let html = index.text().await?;
    // The page a binary without an embedded UI shows loads no bundle: the built one does.
    let assets: Vec<String> = crate::ui::referenced_paths(&html)
        .into_iter()
        .filter(|p| p.starts_with("/assets/"))
        .collect();
    let Some(first) = assets.first() else {
        bail!("the cockpit's index page loads no /assets/ file: the UI is not embedded:\n{html}");
    };
    let asset = client.get(format!("{ui}{first}")).send().await?;
    if !asset.status().is_success() || asset.bytes().await?.is_empty() {
        bail!("the cockpit's {first} did not come back");
    }
    let page = client
        .get(format!("{api}/api/workitems?limit=5"))
        .send()
        .await?;
    if !page.status().is_success() {
        bail!("GET /api/workitems answered {}", page.status());
    }
    let body: serde_json::Value = page.json().await?;
    if !body["items"].is_array() {
        bail!("GET /api/workitems answered no item list: {body}");
    }
    Ok(())
}

/// A folder under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "cfactory-dist-check-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("making {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running demo, its log lines collected as they come.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    fn watch(mut child: Child) -> Self {
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    if let Ok(mut log) = sink.lock() {
                        log.push(line);
                    }
                }
            });
        }
        Self { child, lines, log }
    }

    /// The API and cockpit base URLs, from the lines the server prints once it listens.
    fn addresses(&mut self, within: Duration) -> anyhow::Result<(String, String)> {
        let deadline = Instant::now() + within;
        let (mut api, mut ui) = (None, None);
        while api.is_none() || ui.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("cfactory: API listening on ") {
                        api = Some(url.trim().to_owned());
                    }
                    if let Some(url) = line.strip_prefix("cfactory: cockpit listening on ") {
                        ui = Some(url.trim().to_owned());
                    }
                }
                Err(_) => bail!("cfactory demo did not say where it listens within {within:?}"),
            }
        }
        Ok((api.unwrap_or_default(), ui.unwrap_or_default()))
    }

    /// Sends SIGTERM and waits up to 20 s; whether it exited 0.
    fn stop(&mut self) -> anyhow::Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status.success());
        }
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn tail(&self) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        let from = log.len().saturating_sub(30);
        log[from..].join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

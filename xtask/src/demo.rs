//! `cargo xtask demo`: builds what the demo needs (the cockpit UI when it is missing or
//! older than its sources, then the release binary) and runs `cfactory demo` with the
//! arguments given.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The newest modification time under `dir`, skipping `node_modules` and `dist`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best: Option<SystemTime> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "node_modules" || name == "dist" {
            continue;
        }
        let t = if path.is_dir() {
            newest(&path)
        } else {
            entry.metadata().ok()?.modified().ok()
        };
        best = best.max(t);
    }
    best
}

/// Whether `ui/dist` is missing or older than the UI's sources.
pub fn ui_is_stale() -> bool {
    let ui = root().join("ui");
    if !ui.join("package.json").exists() {
        return false;
    }
    let built = std::fs::metadata(ui.join("dist").join("index.html"))
        .and_then(|m| m.modified())
        .ok();
    match (built, newest(&ui)) {
        (None, _) => true,
        (Some(b), Some(src)) => src > b,
        (Some(_), None) => false,
    }
}

/// Builds the UI with npm (installing from the lockfile when needed).
pub fn build_ui() -> anyhow::Result<()> {
    let ui = root().join("ui");
    if !ui.join("node_modules").exists() {
        eprintln!("xtask: installing the UI's packages (npm ci)");
        let ok = Command::new("npm")
            .arg("ci")
            .current_dir(&ui)
            .status()
            .context("running npm ci (is Node.js installed?)")?
            .success();
        if !ok {
            bail!("npm ci failed");
        }
    }
    eprintln!("xtask: building the cockpit UI (npm run build)");
    let ok = Command::new("npm")
        .args(["run", "build"])
        .current_dir(&ui)
        .status()
        .context("running npm run build")?
        .success();
    if !ok {
        bail!("npm run build failed");
    }
    Ok(())
}

/// Runs the demo.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if ui_is_stale() {
        build_ui()?;
    }
    // Cargo's own progress shows: a first release build takes minutes.
    eprintln!("xtask: building and starting cfactory (release; a first build takes a few minutes)");
    let status = Command::new(env!("CARGO"))
        .args(["run", "--release", "-p", "cfactory-server", "--", "demo"])
        .args(args)
        .current_dir(root())
        .status()?;
    if !status.success() {
        bail!("cfactory demo exited with {status}");
    }
    Ok(())
}

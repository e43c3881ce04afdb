//! The cockpit UI's gate and benchmark, run from `ui/` with npm: install from the
//! lockfile when needed, lint, build, the shipped-JavaScript size budget, component
//! tests and the end-to-end run in the system's Chromium against `cfactory demo`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};

/// Most gzipped JavaScript `ui/dist` may ship (issue 5), in bytes.
const JS_BUDGET_BYTES: u64 = 300 * 1024;

/// Prints the summed gzipped size of the files named on its command line (Node's zlib,
/// level 9: what a server would send compressed).
const GZIP_SIZE_SCRIPT: &str = "const fs=require('fs'),z=require('zlib');let n=0;\
for(const f of process.argv.slice(1))n+=z.gzipSync(fs.readFileSync(f),{level:9}).length;\
console.log(n)";

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The UI's folder.
fn ui_dir() -> PathBuf {
    root().join("ui")
}

/// Runs one step in `ui/`, stopping the gate when it fails.
fn run_step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: ui: {name}");
    let status = cmd
        .status()
        .with_context(|| format!("starting {name} (are Node.js and npm installed?)"))?;
    if !status.success() {
        bail!("ui: {name} failed ({status})");
    }
    Ok(())
}

/// `npm <args>` in `ui/`.
fn npm(args: &[&str]) -> Command {
    let mut cmd = Command::new("npm");
    cmd.args(args).current_dir(ui_dir());
    cmd
}

/// A file's modification time, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether `node_modules` is missing or older than `package-lock.json`. npm stamps every
/// install in `node_modules/.package-lock.json`, so its time says when the last one ran.
fn packages_stale(ui: &Path) -> bool {
    let modules = ui.join("node_modules");
    let installed = modified(&modules.join(".package-lock.json")).or_else(|| modified(&modules));
    match (installed, modified(&ui.join("package-lock.json"))) {
        (None, _) => true,
        (Some(i), Some(lock)) => lock > i,
        (Some(_), None) => false,
    }
}

/// Installs the UI's packages from the lockfile when they are missing or stale.
fn ensure_packages() -> anyhow::Result<()> {
    if packages_stale(&ui_dir()) {
        run_step("npm ci", &mut npm(&["ci"]))?;
    }
    Ok(())
}

/// Installs the packages of the single sign-on tests' identity provider (the
/// `oidc-provider` package, run by the server's `oidc` tests and the e2e run) from its
/// own lockfile when they are missing or stale.
pub fn ensure_oidc_fixture() -> anyhow::Result<()> {
    let dir = root().join("crates/server/tests/oidc-provider");
    if packages_stale(&dir) {
        run_step(
            "npm ci (the OpenID provider for the single sign-on tests)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )?;
    }
    Ok(())
}

/// Every JavaScript file under `dir`.
fn js_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            js_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "js" || e == "mjs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks the gzipped size of all JavaScript in `ui/dist` against the budget and prints it.
fn check_js_budget() -> anyhow::Result<()> {
    let mut files = Vec::new();
    js_files(&ui_dir().join("dist"), &mut files)?;
    if files.is_empty() {
        bail!("ui: no JavaScript in ui/dist after the build");
    }
    let out = Command::new("node")
        .arg("-e")
        .arg(GZIP_SIZE_SCRIPT)
        .args(&files)
        .output()
        .context("running node to measure ui/dist")?;
    if !out.status.success() {
        bail!(
            "ui: measuring ui/dist failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading the gzipped size")?;
    eprintln!(
        "xtask: ui: shipped JavaScript is {:.1} KB gzipped in {} file(s) (budget {} KB)",
        bytes as f64 / 1024.0,
        files.len(),
        JS_BUDGET_BYTES / 1024
    );
    if bytes > JS_BUDGET_BYTES {
        bail!(
            "ui: shipped JavaScript is {bytes} bytes gzipped, over the {JS_BUDGET_BYTES}-byte budget"
        );
    }
    Ok(())
}

/// Builds the debug `cfactory` binary the e2e run and the benchmark drive (a no-op when
/// it is current), and returns its path.
fn build_server() -> anyhow::Result<PathBuf> {
    run_step(
        "cargo build -p cfactory-server",
        Command::new(env!("CARGO"))
            .args(["build", "-p", "cfactory-server"])
            .current_dir(root()),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join("debug").join("cfactory"))
}

/// The UI gate: `npm ci` when needed, lint, build, the 300 KB gzipped JavaScript budget,
/// the component tests and the end-to-end run (screenshots in `target/ui-shots/`).
pub fn run_ui_gate() -> anyhow::Result<()> {
    ensure_packages()?;
    ensure_oidc_fixture()?;
    run_step("npm run lint", &mut npm(&["run", "lint"]))?;
    run_step("npm run build", &mut npm(&["run", "build"]))?;
    check_js_budget()?;
    run_step("npm test", &mut npm(&["test"]))?;
    let bin = build_server()?;
    run_step(
        "npm run e2e",
        npm(&["run", "e2e"]).env("CFACTORY_BIN", &bin),
    )?;
    Ok(())
}

/// The `src` and `href` paths on this server that `html` names (`/assets/…`), in order.
pub(crate) fn referenced_paths(html: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            if path.starts_with('/') && !path.starts_with("//") && !paths.iter().any(|p| p == path)
            {
                paths.push(path.to_owned());
            }
        }
    }
    paths
}

/// The body bytes of `url` as sent for `Accept-Encoding: coding`, and the coding it came
/// in (the client decodes nothing, so the length is what crossed the wire).
async fn sent(
    client: &reqwest::Client,
    url: &str,
    coding: &str,
) -> anyhow::Result<(usize, String)> {
    let answer = client
        .get(url)
        .header("accept-encoding", coding)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !answer.status().is_success() {
        bail!("GET {url} answered {}", answer.status());
    }
    let came_as = answer
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    Ok((answer.bytes().await?.len(), came_as))
}

/// The cockpit's first load on the wire: `index.html` and every file it references,
/// fetched from the cockpit address of `bin` as sent uncompressed, gzip and brotli.
async fn first_load_bytes(bin: &Path) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cfactory-bench-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database = format!("sqlite://{}/cfactory.db", dir.display());
    let ui_port = crate::bench::free_port()?;
    let server =
        crate::bench::Server::start_at(bin, &database, &dir, crate::bench::free_port()?, ui_port)
            .await?;
    let base = format!("http://127.0.0.1:{ui_port}");
    let client = reqwest::Client::new();
    let index = client.get(format!("{base}/")).send().await?.text().await?;
    let mut paths = vec!["/".to_owned()];
    paths.extend(referenced_paths(&index));
    let codings = ["identity", "gzip", "br"];
    let mut totals = [0usize; 3];
    let mut any_plain = false;
    println!("\ncockpit first load: body bytes on the wire by Accept-Encoding");
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "file", "identity", "gzip", "br"
    );
    for path in &paths {
        let mut row = Vec::new();
        for (i, coding) in codings.iter().enumerate() {
            let (bytes, came_as) = sent(&client, &format!("{base}{path}"), coding).await?;
            totals[i] += bytes;
            let mark = if came_as == *coding {
                ""
            } else {
                any_plain = true;
                "*"
            };
            row.push(format!("{bytes}{mark}"));
        }
        let name = if path == "/" { "/ (index.html)" } else { path };
        println!("{name:<44} {:>10} {:>10} {:>10}", row[0], row[1], row[2]);
    }
    let share = |n: usize| 100.0 * n as f64 / totals[0].max(1) as f64;
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        format!("total ({} files)", paths.len()),
        totals[0],
        totals[1],
        totals[2]
    );
    println!(
        "{:<44} {:>10} {:>9.1}% {:>9.1}%",
        "of uncompressed",
        "100%",
        share(totals[1]),
        share(totals[2])
    );
    if any_plain {
        println!("(* sent uncompressed: too small or not text)");
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The board benchmark: first the bytes the cockpit's first load puts on the wire
/// uncompressed, gzip and brotli, then 2,000 work items in Chromium with first-render
/// and scroll frame times. Builds the UI first so it measures the current sources.
pub fn run_ui_bench() -> anyhow::Result<()> {
    ensure_packages()?;
    run_step("npm run build", &mut npm(&["run", "build"]))?;
    let bin = build_server()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(first_load_bytes(&bin))?;
    run_step(
        "npm run bench",
        npm(&["run", "bench"]).env("CFACTORY_BIN", &bin),
    )?;
    Ok(())
}

/// Refreshes the cockpit's API types: writes the server's OpenAPI document to
/// `ui/src/openapi/openapi.json` (`cfactory openapi`) and regenerates
/// `ui/src/openapi/schema.gen.ts` from it. Tests on both sides fail until this has run after
/// a wire change.
pub fn run_ui_types() -> anyhow::Result<()> {
    let bin = build_server()?;
    eprintln!("xtask: ui: cfactory openapi");
    let out = Command::new(&bin)
        .arg("openapi")
        .output()
        .with_context(|| format!("running {} openapi", bin.display()))?;
    if !out.status.success() {
        bail!(
            "cfactory openapi failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let doc = ui_dir().join("src").join("openapi").join("openapi.json");
    std::fs::write(&doc, &out.stdout).with_context(|| format!("writing {}", doc.display()))?;
    run_step(
        "node scripts/openapi-types.mjs",
        Command::new("node")
            .arg("scripts/openapi-types.mjs")
            .current_dir(ui_dir()),
    )
}

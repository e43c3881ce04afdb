//! Embeds the built cockpit (`ui/dist`) into the binary when it exists, each text file with
//! its brotli and gzip copies and its content tag, made here once per build so the server
//! never compresses a cockpit file per request. No npm here: a build without `ui/dist`
//! embeds nothing and the cockpit address shows how to build it. Cargo re-runs this
//! whenever anything under `ui/dist` changes, or, while there is no `ui/dist`, whenever
//! anything under `ui` does (so a first cockpit build is noticed; a path that does not
//! exist would make cargo re-run this, and rebuild the server, on every build).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[path = "src/ui/precompress.rs"]
mod precompress;

/// Brotli's best quality: the embedded UI's copies are made once per build, so the
/// slowest level costs nothing at run time.
const BROTLI_BEST: u32 = 11;

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, root, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
}

/// Writes `bytes` to `path` (making its folder) and returns the `include_bytes!` for it.
fn embed(path: &Path, bytes: &[u8]) -> String {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("making a folder under OUT_DIR");
    }
    std::fs::write(path, bytes).expect("writing a compressed copy under OUT_DIR");
    format!("include_bytes!({:?})", path.display().to_string())
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let dist = manifest.join("../../ui/dist");
    let ui = manifest.join("../../ui");
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if ui.is_dir() {
        println!("cargo:rerun-if-changed={}", ui.display());
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let copies = out_dir.join("ui");
    let _ = std::fs::remove_dir_all(&copies);
    let mut code = String::from("/// The built cockpit's files, by path under `ui/dist`.\n");
    code.push_str("pub(super) static FILES: &[super::EmbeddedFile] = &[\n");
    for (rel, path) in &files {
        let bytes = std::fs::read(path).expect("reading a file of ui/dist");
        let made = precompress::copies(rel, &bytes, BROTLI_BEST);
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        let copy = |copy: Option<Vec<u8>>, suffix: &str| match copy {
            Some(copy) => format!(
                "Some({})",
                embed(&copies.join(format!("{rel}.{suffix}")), &copy)
            ),
            None => "None".to_owned(),
        };
        let _ = writeln!(
            code,
            "    super::EmbeddedFile {{ path: {rel:?}, tag: {:?}, identity: include_bytes!({:?}), \
             brotli: {}, gzip: {} }},",
            precompress::content_tag(&bytes),
            abs.display().to_string(),
            copy(made.brotli, "br"),
            copy(made.gzip, "gz"),
        );
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("embedded_ui.rs"), code).expect("writing embedded_ui.rs");
}

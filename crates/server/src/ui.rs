//! The cockpit's files on the cockpit address: `ui/dist` as embedded at build time, or a
//! directory named by `CFACTORY_UI_DIR` (development). Unknown paths without a file
//! extension get `index.html`, so client-side routes load the app. Without a built UI, a
//! page says how to build it.
//!
//! Each text file goes out as the brotli or gzip copy the request's `Accept-Encoding`
//! takes, made once (at build time when embedded; from a directory, on the first request
//! for each version of a file), never per request. Each copy has a strong `ETag` from the
//! content's hash, so `If-None-Match` answers 304. Vite fingerprints everything under
//! `assets/`, so those are cached for a year; `index.html` must always revalidate.

mod precompress;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

/// One embedded file, as `build.rs` writes it.
struct EmbeddedFile {
    path: &'static str,
    tag: &'static str,
    identity: &'static [u8],
    brotli: Option<&'static [u8]>,
    gzip: Option<&'static [u8]>,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_ui.rs"));
}

/// Brotli's quality for a directory's files: a development source, rebuilt often, so its
/// copies are made at a level that takes milliseconds rather than a second.
const DIR_BROTLI_QUALITY: u32 = 5;

/// Where the cockpit's files come from.
pub struct UiSource(Source);

enum Source {
    /// The files embedded in this binary (possibly none).
    Embedded,
    /// A directory read at request time.
    Dir(Folder),
}

impl UiSource {
    /// The files under `dir` (the `ui_dir` setting) when set, else the embedded files.
    pub fn from_dir(dir: Option<PathBuf>) -> Self {
        match dir {
            Some(dir) if !dir.as_os_str().is_empty() => Self::dir(dir),
            _ => Self::embedded(),
        }
    }

    /// The files embedded in this binary (possibly none).
    pub fn embedded() -> Self {
        Self(Source::Embedded)
    }

    /// The files under `root`, read when asked for.
    pub fn dir(root: PathBuf) -> Self {
        Self(Source::Dir(Folder {
            root,
            made: Mutex::default(),
        }))
    }

    /// Whether a built UI is available.
    pub fn is_built(&self) -> bool {
        match &self.0 {
            Source::Embedded => embedded::FILES.iter().any(|f| f.path == "index.html"),
            Source::Dir(folder) => folder.root.join("index.html").is_file(),
        }
    }

    fn asset(&self, rel: &str) -> Option<Arc<Asset>> {
        match &self.0 {
            Source::Embedded => embedded_assets().get(rel).cloned(),
            Source::Dir(folder) => folder.asset(rel),
        }
    }
}

/// One cockpit file as it is sent: the file, its smaller copies, its content's tag.
struct Asset {
    tag: String,
    identity: Bytes,
    brotli: Option<Bytes>,
    gzip: Option<Bytes>,
}

impl Asset {
    /// The file at `path` with its copies made now, brotli at `brotli_quality`.
    fn make(path: &str, bytes: Vec<u8>, brotli_quality: u32) -> Self {
        let copies = precompress::copies(path, &bytes, brotli_quality);
        Self {
            tag: precompress::content_tag(&bytes),
            identity: Bytes::from(bytes),
            brotli: copies.brotli.map(Bytes::from),
            gzip: copies.gzip.map(Bytes::from),
        }
    }

    /// The copy to send for a request with these headers, and its coding.
    fn pick(&self, request: &HeaderMap) -> (Coding, &Bytes) {
        let brotli = self.brotli.as_ref().map(|b| (wanted(request, "br"), b));
        let gzip = self.gzip.as_ref().map(|b| (wanted(request, "gzip"), b));
        match (brotli, gzip) {
            // Brotli is the smaller of the two, so it wins a tie.
            (Some((b, bytes)), gzip) if b > 0.0 && gzip.is_none_or(|(g, _)| b >= g) => {
                (Coding::Brotli, bytes)
            }
            (_, Some((g, bytes))) if g > 0.0 => (Coding::Gzip, bytes),
            _ => (Coding::Identity, &self.identity),
        }
    }

    /// Whether what is sent depends on `Accept-Encoding`.
    fn varies(&self) -> bool {
        self.brotli.is_some() || self.gzip.is_some()
    }
}

/// A content coding the cockpit's files are sent in.
#[derive(Clone, Copy)]
enum Coding {
    Identity,
    Brotli,
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` value, none for the file itself.
    fn header(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Brotli => Some("br"),
            Self::Gzip => Some("gzip"),
        }
    }

    /// The strong `ETag` of this coding of the content tagged `tag`: each coding is its own
    /// representation, so each has its own validator (RFC 9110 §8.8.3).
    fn etag(self, tag: &str) -> String {
        match self {
            Self::Identity => format!("\"{tag}\""),
            Self::Brotli => format!("\"{tag}.br\""),
            Self::Gzip => format!("\"{tag}.gz\""),
        }
    }
}

/// How much the request's `Accept-Encoding` wants `coding`: its `q` (1 when not given),
/// else that of `*`, else 0 (RFC 9110 §12.5.3).
fn wanted(request: &HeaderMap, coding: &str) -> f32 {
    let mut any = 0.0;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for entry in text.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let q = parts
                .find_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            if name.eq_ignore_ascii_case(coding) {
                return q;
            }
            if name == "*" {
                any = q;
            }
        }
    }
    any
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, as RFC 9110
/// §13.1.2 asks) or is `*`.
fn unchanged(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The embedded files by path, each with its copies as `build.rs` made them.
fn embedded_assets() -> &'static HashMap<&'static str, Arc<Asset>> {
    static ASSETS: OnceLock<HashMap<&'static str, Arc<Asset>>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        embedded::FILES
            .iter()
            .map(|f| {
                let asset = Asset {
                    tag: f.tag.to_owned(),
                    identity: Bytes::from_static(f.identity),
                    brotli: f.brotli.map(Bytes::from_static),
                    gzip: f.gzip.map(Bytes::from_static),
                };
                (f.path, Arc::new(asset))
            })
            .collect()
    })
}

/// A directory of cockpit files, each kept with its copies until it changes on disk.
struct Folder {
    root: PathBuf,
    made: Mutex<HashMap<String, (Stamp, Arc<Asset>)>>,
}

/// What says a file on disk has changed: its modification time and length.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Folder {
    /// The file at `rel` under the root, its copies made on first request for this
    /// version of it; `None` when missing or when `rel` would leave the root.
    fn asset(&self, rel: &str) -> Option<Arc<Asset>> {
        let clean = Path::new(rel);
        if clean
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let path = self.root.join(clean);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
        let stamp = Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        };
        if let Some((made_at, asset)) = self.lock().get(rel)
            && *made_at == stamp
        {
            return Some(asset.clone());
        }
        let asset = Arc::new(Asset::make(
            rel,
            std::fs::read(&path).ok()?,
            DIR_BROTLI_QUALITY,
        ));
        self.lock().insert(rel.to_owned(), (stamp, asset.clone()));
        Some(asset)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Stamp, Arc<Asset>)>> {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CFactory</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2933}code{background:#eef1f4;padding:.1rem .3rem;border-radius:3px}</style>
</head><body><main>
<h1>CFactory</h1>
<p>The API is running, but this binary was built without the cockpit UI.</p>
<p>Build it with <code>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</code>, then <code>cargo build</code> again (the build embeds <code>ui/dist</code>), or run <code>cargo xtask demo</code>, which does both.</p>
<p>Meanwhile: <a href="/api/workitems"><code>/api/workitems</code></a>, <a href="/health"><code>/health</code></a>, <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
</main></body></html>"#;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file at `path`, in the coding the request takes, or 304 when the request already
/// holds that copy.
fn file_response(path: &str, asset: &Asset, request: &HeaderMap) -> Response {
    let (coding, body) = asset.pick(request);
    let etag = coding.etag(&asset.tag);
    let mut response = if unchanged(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = (StatusCode::OK, body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        if let Some(coding) = coding.header() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if asset.varies() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Answers a cockpit path: the file, else `index.html` for a client-side route, else 404.
pub fn serve(source: &UiSource, uri: &Uri, request: &HeaderMap) -> Response {
    if !source.is_built() {
        return Html(NOT_BUILT).into_response();
    }
    let rel = uri.path().trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    if let Some(asset) = source.asset(rel) {
        return file_response(rel, &asset, request);
    }
    let last = rel.rsplit('/').next().unwrap_or_default();
    if !last.contains('.')
        && let Some(index) = source.asset("index.html")
    {
        return file_response("index.html", &index, request);
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    fn decoded(coding: Coding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Identity => out.extend_from_slice(bytes),
            Coding::Brotli => {
                brotli::Decompressor::new(bytes, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Gzip => {
                flate2::read::GzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn a_directory_source_serves_files_routes_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<html>app</html>").unwrap();
        std::fs::write(dir.path().join("assets/app-1.js"), "console.log(1)").unwrap();
        let source = UiSource::dir(dir.path().to_path_buf());
        let get = |p: &str| serve(&source, &p.parse().unwrap(), &HeaderMap::new());

        let r = get("/assets/app-1.js");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(
            r.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let r = get("/pipeline");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(get("/assets/missing.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/../Cargo.toml").status(), StatusCode::NOT_FOUND);

        let empty = UiSource::dir(dir.path().join("nothing"));
        assert!(!empty.is_built());
        let r = serve(&empty, &"/".parse().unwrap(), &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn accept_encoding_picks_the_copy_by_quality_and_brotli_wins_a_tie() {
        let text = "const cockpit = 'board';\n".repeat(200);
        let asset = Asset::make("assets/app.js", text.into_bytes(), DIR_BROTLI_QUALITY);
        let pick = |value: &str| asset.pick(&accepting(value)).0.header();
        assert_eq!(pick("gzip, deflate, br, zstd"), Some("br"));
        assert_eq!(pick("gzip"), Some("gzip"));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some("gzip"));
        assert_eq!(pick("br;q=0, gzip"), Some("gzip"));
        assert_eq!(pick("*"), Some("br"));
        assert_eq!(pick("*;q=0.1, br;q=0"), Some("gzip"));
        assert_eq!(pick("identity"), None);
        assert_eq!(asset.pick(&HeaderMap::new()).0.header(), None);
    }

    #[test]
    fn a_file_changed_on_disk_gets_new_copies_and_a_new_tag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>one</p>".repeat(100)).unwrap();
        let source = UiSource::dir(dir.path().to_path_buf());
        let first = source.asset("index.html").unwrap();
        assert!(Arc::ptr_eq(&first, &source.asset("index.html").unwrap()));
        std::fs::write(dir.path().join("index.html"), "<p>two!</p>".repeat(100)).unwrap();
        let second = source.asset("index.html").unwrap();
        assert_ne!(first.tag, second.tag);
        assert_eq!(
            decoded(Coding::Brotli, second.brotli.as_ref().unwrap()),
            second.identity
        );
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"old\", W/\"abc.br\""),
        );
        assert!(unchanged(&h, "\"abc.br\""));
        assert!(!unchanged(&h, "\"abc\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(unchanged(&h, "\"anything\""));
        assert!(!unchanged(&HeaderMap::new(), "\"abc\""));
    }

    /// Every file `build.rs` embedded (none when `ui/dist` was not built): each copy
    /// decodes to the file, is smaller than it, and the tag is the file's.
    #[test]
    fn embedded_copies_decode_to_their_files() {
        for file in embedded::FILES {
            assert_eq!(
                file.tag,
                precompress::content_tag(file.identity),
                "{}",
                file.path
            );
            for (coding, copy) in [(Coding::Brotli, file.brotli), (Coding::Gzip, file.gzip)] {
                if let Some(copy) = copy {
                    assert!(copy.len() < file.identity.len(), "{}", file.path);
                    assert_eq!(decoded(coding, copy), file.identity, "{}", file.path);
                }
            }
            if precompress::compressible(file.path) && file.identity.len() > 1024 {
                assert!(
                    file.brotli.is_some() && file.gzip.is_some(),
                    "{}",
                    file.path
                );
            }
        }
    }
}

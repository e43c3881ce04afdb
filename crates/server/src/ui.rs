//! The cockpit's files on the cockpit address: `ui/dist` as embedded at build time, or a
//! directory named by `CFACTORY_UI_DIR` (development). Unknown paths without a file
//! extension get `index.html`, so client-side routes load the app. Without a built UI, a
//! page says how to build it.

use std::path::{Component, Path, PathBuf};

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_ui.rs"));
}

/// Where the cockpit's files come from.
#[derive(Debug, Clone)]
pub enum UiSource {
    /// The files embedded in this binary (possibly none).
    Embedded,
    /// A directory read at request time.
    Dir(PathBuf),
}

impl UiSource {
    /// `CFACTORY_UI_DIR` when set, else the embedded files.
    pub fn from_env() -> Self {
        match std::env::var_os("CFACTORY_UI_DIR") {
            Some(dir) if !dir.is_empty() => Self::Dir(PathBuf::from(dir)),
            _ => Self::Embedded,
        }
    }

    /// Whether a built UI is available.
    pub fn is_built(&self) -> bool {
        match self {
            Self::Embedded => embedded::FILES.iter().any(|(p, _)| *p == "index.html"),
            Self::Dir(dir) => dir.join("index.html").is_file(),
        }
    }

    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            Self::Embedded => embedded::FILES
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, bytes)| bytes.to_vec()),
            Self::Dir(dir) => {
                let clean = Path::new(rel);
                if clean
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
                {
                    return None;
                }
                std::fs::read(dir.join(clean)).ok()
            }
        }
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

fn file_response(path: &str, bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Vite fingerprints everything under assets/; the page itself must always revalidate.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Answers a cockpit path: the file, else `index.html` for a client-side route, else 404.
pub fn serve(source: &UiSource, uri: &Uri) -> Response {
    if !source.is_built() {
        return Html(NOT_BUILT).into_response();
    }
    let rel = uri.path().trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    if let Some(bytes) = source.read(rel) {
        return file_response(rel, bytes);
    }
    let last = rel.rsplit('/').next().unwrap_or_default();
    if !last.contains('.')
        && let Some(index) = source.read("index.html")
    {
        return file_response("index.html", index);
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_source_serves_files_routes_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<html>app</html>").unwrap();
        std::fs::write(dir.path().join("assets/app-1.js"), "console.log(1)").unwrap();
        let source = UiSource::Dir(dir.path().to_path_buf());
        let get = |p: &str| serve(&source, &p.parse().unwrap());

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

        let empty = UiSource::Dir(dir.path().join("nothing"));
        assert!(!empty.is_built());
        let r = serve(&empty, &"/".parse().unwrap());
        assert_eq!(r.status(), StatusCode::OK);
    }
}

//! The cockpit's files as they are sent: a brotli and a gzip copy of each text file, made
//! once (by `build.rs` for the embedded UI, on first request for a directory), and a strong
//! tag from the content's SHA-256. Pure functions over bytes, with no `crate::` paths:
//! `build.rs` includes this file as it is, so what it embeds is made by the same code.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};

/// The brotli and gzip copies of one file; each only when it is smaller than the file.
pub struct Copies {
    /// The brotli copy.
    pub brotli: Option<Vec<u8>>,
    /// The gzip copy.
    pub gzip: Option<Vec<u8>>,
}

/// The content's tag: the first 128 bits of its SHA-256, in hex.
pub fn content_tag(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a file of this name is text worth compressing (images and fonts are not: their
/// formats compress already).
pub fn compressible(path: &str) -> bool {
    matches!(
        path.rsplit('.').next().unwrap_or_default(),
        "html" | "js" | "mjs" | "css" | "json" | "map" | "svg" | "txt" | "xml" | "webmanifest"
    )
}

/// The copies of the file at `path`, brotli at `brotli_quality` and gzip at its best level;
/// none for a file [`compressible`] refuses.
pub fn copies(path: &str, bytes: &[u8], brotli_quality: u32) -> Copies {
    if !compressible(path) {
        return Copies {
            brotli: None,
            gzip: None,
        };
    }
    let smaller = |copy: Vec<u8>| (copy.len() < bytes.len()).then_some(copy);
    Copies {
        brotli: smaller(brotli(bytes, brotli_quality)),
        gzip: smaller(gzip(bytes)),
    }
}

fn brotli(bytes: &[u8], quality: u32) -> Vec<u8> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(quality).unwrap_or(11),
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(bytes.len() / 3);
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
        .expect("compressing into memory cannot fail");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    encoder
        .write_all(bytes)
        .expect("compressing into memory cannot fail");
    encoder
        .finish()
        .expect("compressing into memory cannot fail")
}

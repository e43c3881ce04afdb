//! Build-script half of each store's embedded migrations, shared by the SQLite and
//! PostgreSQL adapters' `build.rs` (`#[path]`-included). It reads one folder of
//! `<VERSION>_<DESCRIPTION>.sql` files the way sqlx names migrations (`.up.sql` and
//! `.down.sql` for reversible ones, `-- no-transaction` as the first line to run outside a
//! transaction) and writes `migrations.rs` into `OUT_DIR`: a `migrator()` that builds the
//! `sqlx::migrate::Migrator` from the files' text, embedded with `include_str!`. This
//! stands in for sqlx's `migrate!` macro, whose proc-macro crate would compile sqlx's
//! drivers a second time for the build host.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `$OUT_DIR/migrations.rs` for the migrations in `dir` (relative to the crate).
pub fn write(dir: &str) {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = manifest.join(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found = read(&dir);
    found.sort_by_key(|m| (m.version, m.kind));
    let mut code = format!(
        "/// The migrations of `{}`, embedded at build time, in version order.\n\
         pub(crate) fn migrator() -> sqlx::migrate::Migrator {{\n    \
         sqlx::migrate::Migrator::with_migrations(vec![\n",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    for m in &found {
        let _ = writeln!(
            code,
            "        sqlx::migrate::Migration::new({}, ::std::borrow::Cow::Borrowed({:?}), \
             sqlx::migrate::MigrationType::{}, \
             sqlx::SqlStr::from_static(include_str!({:?})), {}),",
            m.version,
            m.description,
            m.kind.name(),
            m.path.display().to_string(),
            m.no_tx,
        );
    }
    code.push_str("    ])\n}\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("migrations.rs"), code).expect("writing migrations.rs");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Simple,
    ReversibleUp,
    ReversibleDown,
}

impl Kind {
    fn of(rest: &str) -> (Self, &'static str) {
        if rest.ends_with(".up.sql") {
            (Self::ReversibleUp, ".up.sql")
        } else if rest.ends_with(".down.sql") {
            (Self::ReversibleDown, ".down.sql")
        } else {
            (Self::Simple, ".sql")
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Simple => "Simple",
            Self::ReversibleUp => "ReversibleUp",
            Self::ReversibleDown => "ReversibleDown",
        }
    }
}

struct Found {
    version: i64,
    description: String,
    kind: Kind,
    path: PathBuf,
    no_tx: bool,
}

/// The migration files of `dir`; other files are left alone, as sqlx leaves them.
fn read(dir: &Path) -> Vec<Found> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading the migrations folder {}: {e}", dir.display()));
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        if !rest.ends_with(".sql") {
            continue;
        }
        let version: i64 = version.parse().unwrap_or_else(|_| {
            panic!("migration {name}: the name must start with a whole-number version")
        });
        let (kind, suffix) = Kind::of(rest);
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading migration {}: {e}", path.display()));
        let path = path.canonicalize().unwrap_or(path);
        found.push(Found {
            version,
            description: rest.trim_end_matches(suffix).replace('_', " "),
            kind,
            path,
            no_tx: sql.starts_with("-- no-transaction"),
        });
    }
    found
}

//! Where local state lives when `--data-dir` does not say: the embedded store, the
//! generated audit secret and the audit anchor.
//!
//! The order, first that applies: `--data-dir` (or `CFACTORY_DATA_DIR`, or `data_dir` in
//! the config file); `STATE_DIRECTORY` (set by systemd for `StateDirectory=`);
//! `$XDG_STATE_HOME/cfactory`; `$HOME/.local/state/cfactory`. Environment paths that are
//! not absolute are ignored, as the XDG specification asks, and when nothing applies the
//! start stops with an error rather than writing beside the working directory. Version
//! 0.1.0 kept its data in `~/.cfactory`: while that folder exists and the new default
//! does not, it is used, with a note saying how to move it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::bail;

/// The folder name under the state directories.
const APP: &str = "cfactory";

/// The data directory of version 0.1.0, under `$HOME`.
pub const LEGACY_DIR: &str = ".cfactory";

/// A resolved data directory, with a note to log when it is the legacy one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The folder.
    pub path: PathBuf,
    /// What to tell the operator (the legacy folder is in use), if anything.
    pub note: Option<String>,
}

/// Resolves the data directory: `explicit` when given, else from the environment read
/// through `env` (the process's in production, a map in tests).
pub fn resolve(
    explicit: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<DataDir> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(DataDir { path, note: None });
    }
    let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    // systemd may list several directories, colon-separated, when the unit names more
    // than one; the first is this service's.
    if let Some(dirs) = env("STATE_DIRECTORY") {
        let dirs = dirs.to_string_lossy().into_owned();
        if let Some(first) = dirs.split(':').map(PathBuf::from).find(|p| p.is_absolute()) {
            return Ok(DataDir {
                path: first,
                note: None,
            });
        }
    }
    let home = absolute("HOME");
    let path = match (absolute("XDG_STATE_HOME"), &home) {
        (Some(state), _) => state.join(APP),
        (None, Some(home)) => home.join(".local").join("state").join(APP),
        (None, None) => bail!(
            "no data directory: pass --data-dir (or set CFACTORY_DATA_DIR), or run with \
             STATE_DIRECTORY, XDG_STATE_HOME or HOME set to an absolute path"
        ),
    };
    if let Some(legacy) = home.map(|h| h.join(LEGACY_DIR))
        && legacy.is_dir()
        && !path.exists()
    {
        let note = legacy_note(&legacy, &path);
        return Ok(DataDir {
            path: legacy,
            note: Some(note),
        });
    }
    Ok(DataDir { path, note: None })
}

fn legacy_note(legacy: &Path, new: &Path) -> String {
    format!(
        "using the data directory {} of an earlier version; the default is now {}: move \
         the folder there (or pass --data-dir) and this note goes away",
        legacy.display(),
        new.display()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolved(explicit: Option<&str>, pairs: &[(&str, &str)]) -> anyhow::Result<DataDir> {
        resolve(explicit.map(PathBuf::from), &env_of(pairs))
    }

    #[test]
    fn each_source_wins_over_those_after_it() {
        let all = [
            ("STATE_DIRECTORY", "/var/lib/cfactory"),
            ("XDG_STATE_HOME", "/home/op/.state"),
            ("HOME", "/home/op"),
        ];
        let path = |explicit, pairs| resolved(explicit, pairs).unwrap().path;
        assert_eq!(path(Some("/srv/cf"), &all), PathBuf::from("/srv/cf"));
        assert_eq!(path(None, &all), PathBuf::from("/var/lib/cfactory"));
        assert_eq!(
            path(None, &all[1..]),
            PathBuf::from("/home/op/.state/cfactory")
        );
        assert_eq!(
            path(None, &all[2..]),
            PathBuf::from("/home/op/.local/state/cfactory")
        );
    }

    #[test]
    fn systemd_lists_are_read_for_their_first_directory() {
        let got = resolved(
            None,
            &[("STATE_DIRECTORY", "/var/lib/cfactory:/var/lib/other")],
        )
        .unwrap();
        assert_eq!(got.path, PathBuf::from("/var/lib/cfactory"));
        assert_eq!(got.note, None);
    }

    #[test]
    fn relative_or_empty_environment_paths_are_ignored() {
        let got = resolved(
            None,
            &[
                ("STATE_DIRECTORY", "state"),
                ("XDG_STATE_HOME", ""),
                ("HOME", "/home/op"),
            ],
        )
        .unwrap();
        assert_eq!(got.path, PathBuf::from("/home/op/.local/state/cfactory"));
        let got = resolved(
            None,
            &[("XDG_STATE_HOME", "rel/state"), ("HOME", "/home/op")],
        )
        .unwrap();
        assert_eq!(got.path, PathBuf::from("/home/op/.local/state/cfactory"));
    }

    #[test]
    fn nothing_to_go_on_is_an_error_not_a_relative_path() {
        for pairs in [
            &[][..],
            &[("HOME", "")][..],
            &[("HOME", "relative/home")][..],
        ] {
            let err = resolved(None, pairs).unwrap_err().to_string();
            assert!(err.contains("--data-dir"), "{err}");
            assert!(err.contains("HOME"), "{err}");
        }
        // An empty explicit value counts as none.
        assert!(resolved(Some(""), &[]).is_err());
    }

    #[test]
    fn the_legacy_folder_is_used_with_a_note_until_the_new_one_exists() {
        let home = tempfile::tempdir().unwrap();
        let home_str = home.path().to_str().unwrap();
        let legacy = home.path().join(LEGACY_DIR);
        let new = home.path().join(".local/state/cfactory");

        // No legacy folder: the new default, quietly.
        let got = resolved(None, &[("HOME", home_str)]).unwrap();
        assert_eq!((got.path.clone(), got.note), (new.clone(), None));

        // A legacy folder and no new one: the legacy one, with a note naming both.
        std::fs::create_dir(&legacy).unwrap();
        let got = resolved(None, &[("HOME", home_str)]).unwrap();
        assert_eq!(got.path, legacy);
        let note = got.note.unwrap();
        assert!(note.contains(legacy.to_str().unwrap()), "{note}");
        assert!(note.contains(new.to_str().unwrap()), "{note}");

        // STATE_DIRECTORY and an explicit folder never fall back to it.
        let got = resolved(
            None,
            &[("HOME", home_str), ("STATE_DIRECTORY", "/var/lib/cfactory")],
        )
        .unwrap();
        assert_eq!(got.path, PathBuf::from("/var/lib/cfactory"));

        // Once the new folder exists, it wins.
        std::fs::create_dir_all(&new).unwrap();
        let got = resolved(None, &[("HOME", home_str)]).unwrap();
        assert_eq!((got.path, got.note), (new, None));
    }
}

//! The files in `packaging/` say what the server really accepts: the example config loads
//! through the real parser (as written, and with every setting it shows switched on), the
//! systemd unit starts a command the real command line takes, and the Containerfile
//! builds with the archive's own steps.

use std::path::{Path, PathBuf};

use cfactory_domain::Service;
use cfactory_server::cli::{Cli, Command};
use cfactory_server::settings::layers::Layers;
use cfactory_server::settings::{Database, LogFormat, Settings};
use clap::Parser;

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(packaging(file)).unwrap()
}

/// Resolves a config file as `cfactory --config FILE` would, with the data dir given
/// (so the test does not depend on this machine's environment).
fn resolve(path: &Path, data_dir: &Path) -> Settings {
    Layers::defaults()
        .with_file(path)
        .unwrap()
        .with_value(
            "flag --data-dir",
            "data_dir",
            data_dir.display().to_string().into(),
        )
        .settings()
        .unwrap()
}

#[test]
fn the_example_config_loads_as_written() {
    let data = tempfile::tempdir().unwrap();
    let s = resolve(&packaging("cfactory.example.toml"), data.path());
    assert_eq!(s.api_addr.to_string(), "127.0.0.1:3111");
    assert_eq!(s.ui_addr.to_string(), "127.0.0.1:3110");
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(
        s.database,
        Database::Sqlite(data.path().join("cfactory.db"))
    );
    assert_eq!(s.upstreams.target(Service::PFACTORY).url, None);
}

/// Every `# key = value` and `# [table]` line of the example, switched on, is a setting
/// the parser knows, with a value it accepts.
#[test]
fn every_setting_the_example_shows_is_accepted() {
    let text = read("cfactory.example.toml");
    let mut switched = 0;
    let on: String = text
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or_default();
            let key = rest.split(" = ").next().unwrap_or_default();
            let is_setting = (rest.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                || (rest.starts_with('[') && rest.ends_with(']'));
            if is_setting {
                switched += 1;
                format!("{rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(switched >= 30, "only {switched} settings switched on");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfactory.toml");
    std::fs::write(&path, &on).unwrap();
    // The example is for the installed binary, which exports traces; a build without the
    // `otlp` feature refuses its endpoint with the reason, and takes the rest.
    #[cfg(not(feature = "otlp"))]
    {
        let refused = Layers::defaults()
            .with_file(&path)
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(
            refused.to_string().contains("built without trace export"),
            "{refused:#}"
        );
        let rest: String = on
            .lines()
            .filter(|l| !l.starts_with("otlp_endpoint = "))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, rest).unwrap();
    }
    // The file's own data_dir wins over none given; resolve it as the server would.
    let s = Layers::defaults()
        .with_file(&path)
        .unwrap()
        .settings()
        .unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/cfactory"));
    assert!(
        matches!(s.database, Database::Postgres(_)),
        "{:?}",
        s.database
    );
    assert_eq!(
        s.public_url.as_ref().map(|u| u.origin()),
        Some("https://cockpit.example.com".to_owned())
    );
    assert!(s.require_second_approver);
    assert_eq!(
        s.upstreams.target(Service::TFACTORY).url.as_deref(),
        Some("http://tfactory.internal:3103")
    );
    assert_eq!(
        s.upstreams
            .aifactory_projects
            .get("acme/shop")
            .map(String::as_str),
        Some("shop")
    );
    assert_eq!(s.limits.signin_per_minute, 10);
    assert_eq!(s.thresholds.stuck_seconds, 86_400);
}

#[test]
fn the_systemd_unit_runs_a_real_command_on_its_state_directory() {
    let unit = read("cfactory.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("the unit has no {key}="))
            .to_owned()
    };
    assert_eq!(value("StateDirectory"), "cfactory");
    assert_eq!(value("DynamicUser"), "yes");
    for hardening in [
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "RestrictAddressFamilies",
        "SystemCallFilter",
        "CapabilityBoundingSet",
    ] {
        value(hardening);
    }
    let exec = value("ExecStart");
    let cli = Cli::try_parse_from(exec.split_whitespace()).unwrap();
    assert!(matches!(cli.command, Command::Serve(_)), "{exec}");
    assert!(
        value("Environment").starts_with("CFACTORY_CONFIG=/etc/cfactory/"),
        "the unit names its config file"
    );
}

#[test]
fn the_containerfile_builds_with_the_archives_steps() {
    let file = read("Containerfile");
    assert!(file.contains("cargo xtask dist"), "{file}");
    assert!(file.contains("VOLUME [\"/var/lib/cfactory\"]"), "{file}");
    assert!(file.contains("HEALTHCHECK"), "{file}");
    assert!(file.contains("/health"), "{file}");
    let user = file
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage names its user");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
}

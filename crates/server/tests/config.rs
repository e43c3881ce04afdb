//! The layered configuration as a user meets it: `cfactory config show` names each
//! setting's source and never prints a secret, unknown keys are refused with their name,
//! `--help` lists every variable the server reads, and the exit code tells a usage error
//! (2) from a failure while running (1).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use cfactory_server::cli::Cli;
use cfactory_server::settings::layers::SETTINGS;
use clap::CommandFactory;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cfactory")
}

/// Runs the binary with only `env` in its environment (and a data dir of its own).
fn run(args: &[&str], env: &[(&str, &str)], data_dir: &Path) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(bin())
        .env_clear()
        .env("CFACTORY_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("cfactory.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The line `config show` printed for `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{out}"))
}

#[test]
fn config_show_names_each_source_and_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tenant = \"from-file\"\n\
         api_addr = \"127.0.0.1:4000\"\n\
         audit_hmac_secret = \"file-hmac-secret-0123456789\"\n\
         [services.aifactory]\ntoken = \"file-service-token\"\n\
         [copilot]\nprovider = \"openai\"\nmodel = \"m\"\n",
    );
    let secrets = [
        "file-hmac-secret-0123456789",
        "file-service-token",
        "env-upstream-token",
        "sk-usual-key",
        "hunter2",
        "env-oidc-secret",
    ];
    let (code, out, err) = run(
        &[
            "config",
            "show",
            "--config",
            &config,
            "--api-addr",
            "127.0.0.1:5000",
        ],
        &[
            ("CFACTORY_TENANT", "from-env"),
            ("CFACTORY_UPSTREAM_TOKEN", "env-upstream-token"),
            ("OPENAI_API_KEY", "sk-usual-key"),
            ("CFACTORY_DATABASE_URL", "postgres://me:hunter2@db/cf"),
            ("CFACTORY_OIDC_CLIENT_SECRET", "env-oidc-secret"),
        ],
        dir.path(),
    );
    // The client secret without an issuer is refused after the settings are shown.
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("--oidc-issuer"), "{err}");
    for secret in secrets {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
        assert!(!err.contains(secret), "{secret} printed:\n{err}");
    }
    assert!(
        line(&out, "tenant").ends_with("# env CFACTORY_TENANT"),
        "{out}"
    );
    assert!(line(&out, "api_addr").contains("\"127.0.0.1:5000\"  # flag --api-addr"));
    assert!(line(&out, "ui_addr").ends_with("# default"));
    assert!(line(&out, "audit_hmac_secret").contains(&format!("\"***\"  # file {config}")));
    assert!(line(&out, "services.aifactory.token").contains("\"***\""));
    assert!(line(&out, "upstream_token").ends_with("# env CFACTORY_UPSTREAM_TOKEN"));
    assert!(line(&out, "copilot.openai_api_key").ends_with("\"***\"  # env OPENAI_API_KEY"));
    assert!(line(&out, "copilot.provider").ends_with(&format!("# file {config}")));
    assert_eq!(
        line(&out, "database_url"),
        "database_url = \"postgres://me:***@db/cf\"  # env CFACTORY_DATABASE_URL"
    );
}

#[test]
fn the_projects_own_key_name_wins_over_the_usual_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CFACTORY_COPILOT_PROVIDER", "openai"),
        ("CFACTORY_COPILOT_MODEL", "m"),
        ("OPENAI_API_KEY", "sk-usual"),
        ("CFACTORY_OPENAI_API_KEY", "sk-ours"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
    ];
    let (code, out, err) = run(&["config", "show"], &env, dir.path());
    assert_eq!(code, Some(0), "{err}");
    assert!(line(&out, "copilot.openai_api_key").ends_with("# env CFACTORY_OPENAI_API_KEY"));
    assert!(line(&out, "copilot.anthropic_api_key").ends_with("# env ANTHROPIC_API_KEY"));
}

#[test]
fn unknown_keys_are_refused_with_their_name_and_the_file_as_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("colour = \"blue\"\n", "colour"),
        ("[limits]\nreads_per_second = 5\n", "reads_per_second"),
        ("[services.aifactory]\nhost = \"x\"\n", "host"),
        ("[copilot]\napi_key = \"k\"\n", "api_key"),
        ("[anomalies]\nzscore = 2.0\n", "zscore"),
        ("[roles.ops]\nscope = [\"read\"]\n", "scope"),
    ] {
        let config = write(dir.path(), text);
        let (code, _, err) = run(&["--config", &config, "migrate"], &[], dir.path());
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
        assert!(err.contains(&config), "{text}: {err}");
    }
}

#[test]
fn usage_errors_exit_2_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = write(dir.path(), "api_addr = \n");
    for (args, env, needle) in [
        (vec!["serve", "--bogus"], vec![], "--bogus"),
        (
            vec!["--config", malformed.as_str(), "migrate"],
            vec![],
            "cfactory.toml",
        ),
        (vec!["serve", "--api-addr", "nowhere"], vec![], "--api-addr"),
        (
            vec!["migrate"],
            vec![("CFACTORY_STALL_DEADLINE_SECONDS", "soon")],
            "stall_deadline_seconds",
        ),
        (
            vec!["migrate"],
            vec![("CFACTORY_COPILOT_PROVIDER", "gemini")],
            "CFACTORY_COPILOT_PROVIDER",
        ),
        (
            vec!["migrate"],
            vec![("CFACTORY_AUDIT_HMAC_SECRET", "short")],
            "CFACTORY_AUDIT_HMAC_SECRET",
        ),
    ] {
        let (code, _, err) = run(&args, &env, dir.path());
        assert_eq!(code, Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
    }
    let (code, out, _) = run(&["--help"], &[], dir.path());
    assert_eq!(code, Some(0));
    assert!(out.contains("Exit status"), "{out}");
}

#[test]
fn failures_while_running_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(
        &["serve", "--api-addr", &addr, "--ui-addr", "127.0.0.1:0"],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&addr), "{err}");

    let (code, _, err) = run(
        &["migrate", "--database-url", "postgres://cf@127.0.0.1:1/cf"],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(1), "{err}");
}

/// Every quoted environment name in `dir`'s Rust sources.
fn names_read_in(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names_read_in(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for quoted in text.split('"').skip(1).step_by(2) {
                let is_name = quoted.len() > 4
                    && quoted.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    && (quoted.starts_with("CFACTORY_")
                        || quoted.ends_with("_API_KEY")
                        || quoted == "RUST_LOG");
                if is_name {
                    out.insert(quoted.to_owned());
                }
            }
        }
    }
}

#[test]
fn help_lists_every_environment_name_the_server_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut help = String::new();
    for args in [&["--help"][..], &["serve", "--help"], &["demo", "--help"]] {
        let (code, out, err) = run(args, &[], dir.path());
        assert_eq!(code, Some(0), "{err}");
        help.push_str(&out);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = BTreeSet::new();
    names_read_in(&root.join("src"), &mut names);
    names_read_in(&root.join("../copilot/src"), &mut names);
    for entry in SETTINGS {
        names.extend(entry.env.iter().map(|n| (*n).to_owned()));
    }
    assert!(names.contains("OPENAI_API_KEY"), "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !help.contains(*n)).collect();
    assert!(missing.is_empty(), "not in --help: {missing:?}");
}

/// A flag's environment twin in clap (shown by `--help`) is the one the layers read.
#[test]
fn each_flag_and_its_variable_match_the_settings_table() {
    let mut args = Vec::new();
    let command = Cli::command();
    let mut stack = vec![&command];
    while let Some(c) = stack.pop() {
        args.extend(c.get_arguments().cloned());
        stack.extend(c.get_subcommands());
    }
    for entry in SETTINGS {
        let Some(flag) = entry.flag else { continue };
        let arg = args
            .iter()
            .find(|a| a.get_long() == Some(flag.trim_start_matches('-')))
            .unwrap_or_else(|| panic!("{flag} is not a flag"));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            entry.env.first().copied(),
            "{flag}"
        );
    }
}

#[test]
fn the_example_config_shows_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/cfactory.example.toml");
    let (code, out, err) = run(
        &["config", "show", "--config", &example.display().to_string()],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(line(&out, "log_format").contains("# file "), "{out}");
}

/// A build without trace export (the default features) refuses `--otlp-endpoint`, from a
/// flag or the file, as a usage error that says how to get a build that has it, instead
/// of starting without the traces the operator asked for.
#[cfg(not(feature = "otlp"))]
#[test]
fn a_build_without_trace_export_refuses_an_otlp_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        &["--otlp-endpoint", "http://127.0.0.1:4318", "migrate"],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("built without trace export"), "{err}");
    assert!(err.contains("--features otlp"), "{err}");

    let config = write(dir.path(), "otlp_endpoint = \"http://127.0.0.1:4318\"\n");
    let (code, _, err) = run(&["--config", &config, "migrate"], &[], dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("built without trace export"), "{err}");
    // An empty value is no endpoint, so nothing is refused.
    let (code, _, err) = run(&["migrate"], &[("CFACTORY_OTLP_ENDPOINT", "")], dir.path());
    assert_eq!(code, Some(0), "{err}");
}

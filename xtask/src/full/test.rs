//! `cargo xtask test`: the project's whole test gate, the README's test command.

use std::process::Command;

use anyhow::{Context, bail};

use crate::postgres::{self, Postgres};

fn run_step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {name}");
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(env!("CARGO"))
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs fmt, clippy, the architecture check, every Rust test, the API fuzzer against
/// `/openapi.json`, the Python MCP SDK's client against `/mcp`, the SCIM checker against
/// `/scim/v2`, the bounded chaos run,
/// 30 s of coverage-guided fuzzing of the event envelope parser, the UI's gate (lint,
/// build, size budget, component tests, browser end-to-end run), and the release archive's
/// check on a dev-profile archive (packed from the debug build the UI gate has just made,
/// so nothing is compiled twice).
pub fn run(quick: bool) -> anyhow::Result<()> {
    if !quick {
        run_step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        run_step(
            "cargo clippy -D warnings",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                "xtask/full",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        run_step(
            "cargo clippy -D warnings (the server with trace export)",
            cargo().args([
                "clippy",
                "-p",
                "cfactory-server",
                "--features",
                "otlp",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    crate::arch::check()?;

    // The tasks' own tests live in `xtask-full`, which needs its feature.
    let mut features: Vec<&str> = vec!["xtask/full"];
    let mut env: Vec<(&str, String)> = Vec::new();
    match postgres::locate()? {
        Postgres::Url(url) => {
            eprintln!("xtask: Postgres tests use {url}");
            env.push(("CFACTORY_TEST_DATABASE_URL", url));
        }
        Postgres::Testcontainers => {
            eprintln!("xtask: no PostgreSQL found; Postgres tests start containers");
            features.push("cfactory-postgres/testcontainers");
        }
    }

    let mut tests = cargo();
    if has_nextest() {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    if !features.is_empty() {
        tests.args(["--features", &features.join(",")]);
    }
    tests.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    crate::ui::ensure_oidc_fixture()?;
    run_step("workspace tests", &mut tests)?;
    // Trace export is a feature off by default (the first demo build compiles less);
    // its over-the-wire test runs on a build with it, the one the dist archive ships.
    let mut traces = cargo();
    if has_nextest() {
        traces.args(["nextest", "run", "--no-fail-fast"]);
    } else {
        traces.args(["test", "--no-fail-fast"]);
    }
    traces.args([
        "-p",
        "cfactory-server",
        "--features",
        "otlp",
        "--test",
        "trace_export",
    ]);
    traces.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    run_step("trace export tests (the otlp feature)", &mut traces)?;
    eprintln!("xtask: API fuzzer (schemathesis, 10 cases per operation and phase)");
    crate::fuzz::run(10)?;
    eprintln!("xtask: MCP client (the Python SDK against /mcp)");
    crate::mcp_client::run()?;
    eprintln!("xtask: SCIM conformance (scim2-tester against /scim/v2)");
    crate::scim::run()?;
    eprintln!("xtask: chaos, bounded (one SIGKILL round and the SIGTERM check per store)");
    crate::chaos::run_bounded()?;
    eprintln!("xtask: parser fuzzing, bounded (30 s of libFuzzer on the envelope parser)");
    crate::libfuzz::run_bounded()?;
    crate::ui::run_ui_gate()?;
    eprintln!("xtask: the dist archive (dev profile): unpacked and run on its own");
    let archive = crate::dist::build(true, false)?;
    crate::dist::check(&archive)?;
    Ok(())
}

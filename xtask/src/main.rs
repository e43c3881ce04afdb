//! `cargo xtask <task>`: the project's tasks. `demo` runs here, on the standard library
//! and anyhow alone, so a first `cargo xtask demo` compiles the cockpit and little else;
//! every other task (and `--help`) is handed to `xtask-full` (`src/full/`), which cargo
//! builds with the package's `full` feature the first time one is asked for.

mod demo;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("demo") {
        return match demo::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let status = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "-p", "xtask", "--features", "full"])
        .args(["--bin", "xtask-full", "--"])
        .args(&args)
        .current_dir(demo::root())
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            // Ended by a signal (Ctrl-C): a failure, as the shell would report it.
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("Error: running xtask-full through cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

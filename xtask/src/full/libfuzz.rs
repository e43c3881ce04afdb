//! `cargo xtask fuzz`: coverage-guided fuzzing of the parsers with libFuzzer, in the
//! cargo-fuzz layout (`fuzz/`, its own workspace) but without the `cargo fuzz` binary.
//!
//! The target is built with the nightly toolchain and the sanitizer-coverage flags
//! cargo-fuzz uses, for the host triple (so build scripts and proc macros stay
//! uninstrumented), into `target/fuzz` (`target/fuzz/asan` with AddressSanitizer). It
//! then runs for a fixed time on the checked-in seeds (`fuzz/corpus/<target>`, only read)
//! and a work corpus (`target/fuzz/corpus/<target>`, which gets every new input and is
//! kept between runs), with the target's dictionary (`fuzz/<target>.dict`) when it has
//! one. A crash, a failed assertion included, fails the run and names the reproducer
//! saved under `target/fuzz/artifacts/<target>`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What `cargo xtask fuzz` runs.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds of fuzzing (libFuzzer's `-max_total_time`).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The fuzz target: a binary of `fuzz/` (`fuzz/fuzz_targets/<target>.rs`).
    #[arg(long, default_value = "envelope")]
    target: String,
    /// Also build with AddressSanitizer (slower; the parsers are safe Rust).
    #[arg(long)]
    asan: bool,
    /// Start from the checked-in seeds only, emptying the work corpus first.
    #[arg(long)]
    fresh: bool,
}

/// The test gate's run: 30 s on the envelope parser.
pub fn run_bounded() -> anyhow::Result<()> {
    run(&FuzzArgs {
        seconds: 30,
        target: "envelope".into(),
        asan: false,
        fresh: false,
    })
}

/// The sanitizer-coverage instrumentation libFuzzer steers by, as cargo-fuzz sets it.
const COVERAGE_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "--cfg",
    "fuzzing",
];

/// The longest one input may run before it counts as a hang.
const INPUT_TIMEOUT_SECS: u32 = 10;

/// Past this many files the work corpus is minimised after a run: every run adds inputs
/// (a shortened input is a new file beside the one it shortens), and only those that
/// reach coverage no other reaches are worth loading.
const WORK_CORPUS_FILES: usize = 5_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// A command on the nightly toolchain, through rustup; fails, saying what to install,
/// when rustup or the toolchain is missing.
fn nightly(program: &str) -> anyhow::Result<Command> {
    const INSTALL: &str = "the fuzz targets build with the nightly toolchain (libFuzzer's \
        coverage instrumentation); install it with `rustup toolchain install nightly \
        --profile minimal`";
    let list = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .with_context(|| format!("running rustup: {INSTALL}"))?;
    let installed = String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.starts_with("nightly-") || l.starts_with("nightly "));
    if !list.status.success() || !installed {
        bail!("no nightly toolchain: {INSTALL}");
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", program])
        // Nothing of the stable toolchain this task runs under may leak into the build.
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    Ok(cmd)
}

fn host_triple() -> anyhow::Result<String> {
    let out = nightly("rustc")?.arg("-vV").output()?;
    if !out.status.success() {
        bail!(
            "rustc +nightly -vV failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host triple")
}

/// Builds `target` and returns its binary.
fn build(args: &FuzzArgs, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let root = workspace();
    let source = root
        .join("fuzz")
        .join("fuzz_targets")
        .join(format!("{}.rs", args.target));
    if !source.is_file() {
        bail!(
            "no fuzz target `{}` ({} does not exist)",
            args.target,
            source.display()
        );
    }
    let triple = host_triple()?;
    let mut flags: Vec<&str> = COVERAGE_FLAGS.to_vec();
    if args.asan {
        flags.extend(["-Zsanitizer=address", "-Cforce-frame-pointers"]);
    }
    let started = Instant::now();
    eprintln!(
        "xtask: building fuzz target `{}` (nightly, {triple}{}) into {}",
        args.target,
        if args.asan { ", AddressSanitizer" } else { "" },
        target_dir.display()
    );
    let status = nightly("cargo")?
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("fuzz").join("Cargo.toml"))
        .args(["--bin", &args.target, "--target", &triple, "--target-dir"])
        .arg(target_dir)
        // Flags are separated by 0x1f here so that none is split on a space.
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"))
        .status()
        .context("running cargo +nightly build")?;
    if !status.success() {
        bail!("building fuzz target `{}` failed ({status})", args.target);
    }
    eprintln!(
        "xtask: built fuzz target `{}` in {:.1} s",
        args.target,
        started.elapsed().as_secs_f64()
    );
    Ok(target_dir.join(&triple).join("release").join(&args.target))
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count()
    })
}

/// Keeps of a large work corpus only the inputs that add coverage (libFuzzer's
/// `-merge=1`).
fn minimise(bin: &Path, work: &Path) -> anyhow::Result<()> {
    let files = count_files(work);
    if files <= WORK_CORPUS_FILES {
        return Ok(());
    }
    let merged = work.with_extension("merged");
    let _ = std::fs::remove_dir_all(&merged);
    std::fs::create_dir_all(&merged)?;
    let out = Command::new(bin)
        .arg("-merge=1")
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(&merged)
        .arg(work)
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&merged);
        bail!(
            "minimising the work corpus {} failed ({}):\n{}",
            work.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(work)?;
    std::fs::rename(&merged, work)?;
    eprintln!(
        "xtask: minimised the work corpus from {files} to {} inputs",
        count_files(work)
    );
    Ok(())
}

/// What the run's output said, read as it goes by.
#[derive(Default)]
struct Seen {
    /// The last `cov:` (edges) and `ft:` (features) figures.
    cov: Option<u64>,
    ft: Option<u64>,
    /// libFuzzer's final statistics (`-print_final_stats=1`).
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    /// Files libFuzzer wrote a failing input to.
    reproducers: Vec<String>,
}

fn figure_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

impl Seen {
    fn read(&mut self, line: &str) {
        if line.starts_with('#') {
            self.cov = figure_after(line, " cov: ").or(self.cov);
            self.ft = figure_after(line, " ft: ").or(self.ft);
        } else if let Some(v) = line.strip_prefix("stat::number_of_executed_units: ") {
            self.runs = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec: ") {
            self.execs_per_sec = v.trim().parse().ok();
        } else if let Some(at) = line.find("Test unit written to ") {
            let path = line[at + "Test unit written to ".len()..].trim();
            self.reproducers.push(path.to_owned());
        }
    }
}

/// Whether a line is one of the many that each new input prints (`NEW`, `REDUCE` and the
/// `NEW_FUNC` lines after them), which are shown at most every few seconds.
fn is_per_input(line: &str) -> bool {
    (line.starts_with('#') && (line.contains("\tNEW ") || line.contains("\tREDUCE ")))
        || line.starts_with("\tNEW_FUNC")
}

/// How libFuzzer's output is shown: everything, except that per-input lines are thinned
/// out, the recommended dictionary it prints at the end is left out, and its warnings
/// about sanitizer hooks are dropped when no sanitizer is built in.
struct Echo {
    asan: bool,
    last_shown: Option<Instant>,
    thinned: usize,
    in_dictionary: bool,
}

impl Echo {
    fn line(&mut self, line: &str) {
        if line.starts_with("###### Recommended dictionary") {
            self.in_dictionary = true;
            eprintln!("(libFuzzer's recommended dictionary left out)");
            return;
        }
        if self.in_dictionary {
            self.in_dictionary = !line.starts_with("###### End of recommended dictionary");
            return;
        }
        if !self.asan && line.starts_with("WARNING: Failed to find function \"__sanitizer_") {
            return;
        }
        let recent = self
            .last_shown
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5));
        if is_per_input(line) && recent {
            self.thinned += 1;
            return;
        }
        if self.thinned > 0 {
            eprintln!("  ({} more progress lines)", self.thinned);
            self.thinned = 0;
        }
        eprintln!("{line}");
        if is_per_input(line) {
            self.last_shown = Some(Instant::now());
        }
    }
}

/// Builds the target and fuzzes it for `args.seconds`; fails on a crash, naming the
/// reproducer.
pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let root = workspace();
    let fuzz_dir = root.join("target").join("fuzz");
    // AddressSanitizer changes every crate's flags: its build keeps a directory of its
    // own, so switching does not rebuild the other.
    let build_dir = if args.asan {
        fuzz_dir.join("asan")
    } else {
        fuzz_dir.clone()
    };
    let bin = build(args, &build_dir)?;

    let seeds = root.join("fuzz").join("corpus").join(&args.target);
    let work = fuzz_dir.join("corpus").join(&args.target);
    let artifacts = fuzz_dir.join("artifacts").join(&args.target);
    if args.fresh {
        let _ = std::fs::remove_dir_all(&work);
    }
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&artifacts)?;
    let before = count_files(&work);

    let mut cmd = Command::new(&bin);
    cmd.arg(format!("-max_total_time={}", args.seconds))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        // libFuzzer wants the prefix to end with the separator.
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    let dict = root.join("fuzz").join(format!("{}.dict", args.target));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    // New inputs go to the first directory: the work corpus, never the seeds.
    cmd.arg(&work);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    eprintln!(
        "xtask: fuzzing `{}` for {} s (seeds {}, work corpus {})",
        args.target,
        args.seconds,
        seeds.display(),
        work.display()
    );
    let mut child = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let started = Instant::now();
    let mut seen = Seen::default();
    let mut echo = Echo {
        asan: args.asan,
        last_shown: None,
        thinned: 0,
        in_dictionary: false,
    };
    let mut reader = BufReader::new(child.stderr.take().context("libFuzzer's stderr")?);
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf)? > 0 {
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        seen.read(line);
        echo.line(line);
        buf.clear();
    }
    let status = child.wait()?;
    let elapsed = started.elapsed().as_secs();

    let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let new_inputs = count_files(&work).saturating_sub(before);
    eprintln!(
        "xtask: fuzz `{}`: {} runs in {elapsed} s ({} exec/s), coverage {} edges / {} \
         features, {new_inputs} new inputs (work corpus {}: {} files)",
        args.target,
        show(seen.runs),
        show(seen.execs_per_sec),
        show(seen.cov),
        show(seen.ft),
        work.display(),
        count_files(&work),
    );
    if let Some(file) = seen.reproducers.first() {
        bail!(
            "fuzz target `{}` found a failing input (a crash, hang or runaway memory; see \
             above); the reproducer is {file} (replay it with `{} {file}`)",
            args.target,
            bin.display()
        );
    }
    if !status.success() {
        bail!(
            "fuzz target `{}` failed ({status}) and saved no reproducer",
            args.target
        );
    }
    // Only after a clean run: every input of the work corpus has then run without a crash,
    // so minimising cannot drop one that fails.
    minimise(&bin, &work)
}

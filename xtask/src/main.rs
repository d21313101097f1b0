//! Repository automation: `cargo xtask test` (the README's test command) and friends.
//!
//! `test` makes sure the services the suite needs are up (PostgreSQL and Redis on loopback),
//! starting them with the machine's own commands when they are down, then runs every test.
//! Under `CI=true` a service that cannot be started is a failure, never a skip.
#![allow(clippy::print_stdout)]

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("services") => services(),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args]|services|fuzz [seconds per target] [target...]>"
            );
            std::process::exit(2);
        }
    }
}

struct Service {
    name: &'static str,
    addr: &'static str,
    start: &'static str,
}

const SERVICES: &[Service] = &[
    Service {
        name: "PostgreSQL",
        addr: "127.0.0.1:5432",
        start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    },
    Service {
        name: "Redis",
        addr: "127.0.0.1:6379",
        start: "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no",
    },
];

fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

/// Starts every service that is down; fails with the command to run when it cannot.
fn services() -> Result<()> {
    for s in SERVICES {
        if reachable(s.addr) {
            continue;
        }
        println!(
            "xtask: {} is down at {}; starting it: {}",
            s.name, s.addr, s.start
        );
        let status = Command::new("sh").arg("-c").arg(s.start).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reachable(s.addr) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
        if !reachable(s.addr) {
            bail!(
                "{} is not reachable at {} and could not be started (start command: `{}`, status {:?}); \
                 the test suite needs it and never skips its tests",
                s.name,
                s.addr,
                s.start,
                status.ok()
            );
        }
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    services()?;
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .args(extra))?;
    // The fuzz smoke run belongs to the whole suite only (not to a filtered `xtask test X`).
    if extra.is_empty() {
        fuzz(&[])?;
    }
    Ok(())
}

/// cargo-fuzz, pinned: installed from crates.io with its lock file when missing or different.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The fuzz workspace (its own Cargo.lock; excluded from the main workspace).
const FUZZ_DIR: &str = "tests/fuzz";
/// Every fuzz target, in the order they run.
const FUZZ_TARGETS: &[&str] = &[
    "dpop_verify",
    "dpop_signed",
    "pairing_string",
    "user_code",
    "framer",
    "plugin_prepare",
];
/// Targets that need the fuzz crate's `plugins` feature (the plugin host: wasmtime, Cranelift).
const FUZZ_PLUGIN_TARGETS: &[&str] = &["plugin_prepare"];

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION))
        .unwrap_or(false);
    if !installed {
        println!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
        run(cargo().args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    Ok(())
}

/// `cargo fuzz` on stable Rust: no sanitizer (`--sanitizer none`; the sanitizers need nightly's
/// `-Z` flags), an optimised build with debug assertions and overflow checks on, and libFuzzer's
/// coverage instrumentation (stable `-C` flags).
fn cargo_fuzz(sub: &str, plugins: bool) -> Command {
    let mut cmd = cargo();
    cmd.args([
        "fuzz",
        sub,
        "--fuzz-dir",
        FUZZ_DIR,
        "--sanitizer",
        "none",
        "--debug-assertions",
    ]);
    if plugins {
        cmd.args(["--features", "plugins"]);
    }
    cmd
}

/// `cargo xtask fuzz [SECONDS] [TARGET...]`: runs each target for SECONDS (default 5) from its
/// seed corpus (tests/fuzz/seeds/TARGET) plus what earlier runs found (tests/fuzz/corpus/TARGET,
/// not committed). Any crash fails; the crashing input is in tests/fuzz/artifacts/TARGET/.
fn fuzz(args: &[String]) -> Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .with_context(|| format!("`{s}` is not a number of seconds"))?,
        None => 5,
    };
    // Without names: every target but the plugin host's, whose instrumented wasmtime build has
    // not been measured yet (docs/fuzzing.md); name it to run it.
    let chosen: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        FUZZ_TARGETS
            .iter()
            .copied()
            .filter(|t| !FUZZ_PLUGIN_TARGETS.contains(t))
            .collect()
    };
    if let Some(unknown) = chosen.iter().find(|t| !FUZZ_TARGETS.contains(t)) {
        bail!("no fuzz target {unknown}; the targets are {FUZZ_TARGETS:?}");
    }
    // Paths below are relative to the repository root, wherever xtask was started from.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    ensure_cargo_fuzz()?;
    // The plain targets first (a small build), then the plugin host's.
    for plugins in [false, true] {
        let targets: Vec<&str> = chosen
            .iter()
            .copied()
            .filter(|t| FUZZ_PLUGIN_TARGETS.contains(t) == plugins)
            .collect();
        if !targets.is_empty() {
            fuzz_targets(&targets, plugins, seconds)?;
        }
    }
    Ok(())
}

fn fuzz_targets(targets: &[&str], plugins: bool, seconds: u64) -> Result<()> {
    let started = Instant::now();
    run(&mut cargo_fuzz("build", plugins))?;
    println!(
        "xtask: fuzz targets {targets:?} built in {:.0?}",
        started.elapsed()
    );
    for &target in targets {
        let corpus = format!("{FUZZ_DIR}/corpus/{target}");
        std::fs::create_dir_all(&corpus).with_context(|| format!("cannot create {corpus}"))?;
        let args = [
            target.to_string(),
            corpus.clone(),
            format!("{FUZZ_DIR}/seeds/{target}"),
            "--".to_string(),
            format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048".to_string(),
            "-timeout=30".to_string(),
            "-print_final_stats=1".to_string(),
        ];
        run(cargo_fuzz("run", plugins).args(&args)).with_context(|| {
            format!("fuzz target {target} failed: see {FUZZ_DIR}/artifacts/{target}/")
        })?;
    }
    Ok(())
}

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
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args]|services|bench [--smoke]|fuzz [seconds per target] [target...]>"
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

/// A cargo command without the variables `cargo run` set for this xtask (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...): build scripts that watch them (ring's watches `CARGO_MANIFEST_DIR`)
/// would otherwise see a change and rebuild what a plain `cargo build` had already built.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            cmd.env_remove(key);
        }
    }
    cmd
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
    typescript_sdk()?;
    let python = python_sdk_venv()?;
    admin_ui_prerequisites()?;
    nginx_prerequisite()?;
    secret_service_prerequisites()?;
    // The whole suite also runs each criterion benchmark once; a filtered `xtask test -- X Y`
    // leaves them out (criterion takes at most one filter and refuses a second).
    let targets: &[&str] = if extra.is_empty() {
        &["--all-targets"]
    } else {
        &["--lib", "--bins", "--tests"]
    };
    run(cargo()
        .args(["test", "--workspace"])
        .args(targets)
        .env("PAIRGATE_TEST_PYTHON", &python)
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
    // Without names: every target but the plugin host's, whose instrumented wasmtime build takes
    // about half an hour (docs/fuzzing.md, "Build cost"); name it to run it.
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
        let mut args = vec![
            target.to_string(),
            corpus.clone(),
            format!("{FUZZ_DIR}/seeds/{target}"),
            "--".to_string(),
            format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048".to_string(),
            "-timeout=30".to_string(),
            "-print_final_stats=1".to_string(),
        ];
        // A target's libFuzzer dictionary (tokens its inputs are made of), when it has one.
        let dict = format!("{FUZZ_DIR}/{target}.dict");
        if std::path::Path::new(&dict).exists() {
            args.push(format!("-dict={dict}"));
        }
        run(cargo_fuzz("run", plugins).args(&args)).with_context(|| {
            format!("fuzz target {target} failed: see {FUZZ_DIR}/artifacts/{target}/")
        })?;
    }
    Ok(())
}

/// The TypeScript SDK's tests (run by the e2e suite) need its pinned npm packages and a build:
/// `npm ci` when package-lock.json changed since the last install (a copy of it in node_modules is
/// the stamp), then `npm run build` (tsc) every time. Node.js 20+ missing is a failure, never a skip.
fn typescript_sdk() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/typescript");
    let node = Command::new("node").arg("--version").output();
    let version = match &node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => bail!(
            "Node.js 20 or later (with npm) is required by the TypeScript SDK tests and was not found; \
             install it (Debian: the `nodejs` package from NodeSource) and rerun"
        ),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        bail!("Node.js {version} is too old for the TypeScript SDK (it needs 20 or later)");
    }
    npm_ci(&dir, "the TypeScript SDK")?;
    run(Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir(&dir))?;
    // The interop test's generic OAuth/DPoP clients (no pairgate code).
    npm_ci(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop"),
        "the interop test",
    )?;
    // The real coding agents (Claude Code, Codex CLI) the native-API test runs.
    npm_ci(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/agents"),
        "the coding agents' test",
    )
}

/// `npm ci` in `dir` when its lock file changed since the last install.
fn npm_ci(dir: &std::path::Path, what: &str) -> Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("{}/package-lock.json", dir.display()))?;
    let stamp = dir.join("node_modules/.pairgate-package-lock.json");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        println!("xtask: installing {what}'s pinned packages (npm ci)");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir))?;
        std::fs::write(&stamp, &lock).context("writing the npm ci stamp")?;
    }
    Ok(())
}

/// `cargo xtask bench [--smoke] [pairgate-bench args]`: builds the gateway and the benchmark
/// (release; debug with `--smoke`) and runs the end-to-end benchmark; the report goes to
/// `target/bench/report.md` (`smoke.md`) and `.json`. See docs/benchmarks.md.
fn bench(extra: &[String]) -> Result<()> {
    let smoke = extra.iter().any(|a| a == "--smoke");
    nginx_prerequisite()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the repository")?;
    let mut build = cargo();
    build.current_dir(root);
    if smoke {
        // The same selection as `cargo xtask test`, so its artifacts are reused as they are.
        build.args(["build", "--workspace", "--all-targets"]);
    } else {
        build.args([
            "build",
            "--release",
            "-p",
            "pairgate",
            "--bin",
            "pairgate",
            "-p",
            "pairgate-tests",
            "--bin",
            "pairgate-bench",
        ]);
    }
    run(&mut build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let profile = if smoke { "debug" } else { "release" };
    let exe = target
        .join(profile)
        .join(format!("pairgate-bench{}", std::env::consts::EXE_SUFFIX));
    run(Command::new(exe).current_dir(root).args(extra))?;
    Ok(())
}

/// Creates or updates the Python SDK's test environment, `target/sdk-venv`: the pinned, hashed
/// `sdk/python/requirements-test.txt`, then the SDK itself (editable). Does nothing when the
/// stamp says the lock file and `pyproject.toml` are unchanged. Returns its interpreter.
fn python_sdk_venv() -> Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?;
    let sdk = root.join("sdk/python");
    let venv = root.join("target/sdk-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("pairgate-stamp.txt");
    let lock = sdk.join("requirements-test.txt");
    let want = format!(
        "{}\n{}",
        std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?,
        std::fs::read_to_string(sdk.join("pyproject.toml")).context("reading pyproject.toml")?
    );
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(python);
    }
    println!(
        "xtask: preparing the Python SDK's test environment in {}",
        venv.display()
    );
    let system = std::env::var("PAIRGATE_PYTHON").unwrap_or_else(|_| "python3".into());
    if !python.exists() {
        run(Command::new(&system).arg("-m").arg("venv").arg(&venv)).with_context(|| {
            format!("the Python SDK's tests need `{system}` (3.10+) with venv; on Debian: apt-get install python3-venv")
        })?;
    }
    let pip = |args: &[&str]| {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        cmd.args(args);
        cmd
    };
    let lock_arg = lock.to_string_lossy().into_owned();
    run(&mut pip(&["--require-hashes", "-r", &lock_arg]))?;
    let sdk_arg = sdk.to_string_lossy().into_owned();
    run(&mut pip(&[
        "--no-deps",
        "--no-build-isolation",
        "-e",
        &sdk_arg,
    ]))?;
    std::fs::write(&stamp, want).context("writing the venv stamp")?;
    Ok(python)
}

/// The connector's Secret Service test runs its own D-Bus session bus and GNOME Keyring.
fn secret_service_prerequisites() -> Result<()> {
    let why = "the connector's Secret Service test (tests/e2e/connect.rs)";
    apt_install(
        "/usr/bin/dbus-daemon",
        "dbus-daemon",
        why,
        "PATH to include it",
    )?;
    apt_install(
        "/usr/bin/gnome-keyring-daemon",
        "gnome-keyring",
        why,
        "PATH to include it",
    )
}

/// Installs Debian's `package` with apt-get when `path` is missing (as root, or with `sudo -n`).
fn apt_install(path: &str, package: &str, why: &str, override_var: &str) -> Result<()> {
    if std::path::Path::new(path).exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let sudo = if root { "" } else { "sudo -n " };
    let install = format!(
        "{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package} \
         || ({sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package})"
    );
    println!("xtask: {path} is missing ({why}); installing: {install}");
    run(Command::new("sh").arg("-c").arg(&install)).with_context(|| {
        format!(
            "could not install {package}; install it yourself (`{install}`) or set {override_var}"
        )
    })
}

/// Debian's `nginx-light`, the one-hop baseline of the benchmark (its smoke run is a test too).
fn nginx_prerequisite() -> Result<()> {
    let nginx = std::env::var("PAIRGATE_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    apt_install(
        &nginx,
        "nginx-light",
        "the benchmark's one-hop baseline",
        "PAIRGATE_NGINX",
    )
}

/// The admin UI tests need Debian's chromium and `admin-ui/node_modules` (playwright-core and
/// typescript, pinned by `admin-ui/package-lock.json`). Installs what is missing; idempotent.
/// Any failure stops the run (the tests would fail anyway; this says why).
fn admin_ui_prerequisites() -> Result<()> {
    let chromium =
        std::env::var("PAIRGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    apt_install(
        &chromium,
        "chromium",
        "the admin UI test drives it",
        "PAIRGATE_CHROMIUM",
    )?;
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../admin-ui");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&ui))
    .context("`npm ci` in admin-ui/ failed (node and npm are needed for the admin UI tests)")?;
    Ok(())
}

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
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args]|services>");
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
    admin_ui_prerequisites()?;
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .args(extra))?;
    Ok(())
}

/// The admin UI tests need Debian's chromium and `admin-ui/node_modules` (playwright-core and
/// typescript, pinned by `admin-ui/package-lock.json`). Installs what is missing; idempotent.
/// Any failure stops the run (the tests would fail anyway; this says why).
fn admin_ui_prerequisites() -> Result<()> {
    let chromium =
        std::env::var("PAIRGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let sudo = if root { "" } else { "sudo -n " };
        let install = format!(
            "{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
             || ({sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)"
        );
        println!(
            "xtask: {chromium} is missing (the admin UI test drives it); installing: {install}"
        );
        run(Command::new("sh").arg("-c").arg(&install)).with_context(|| {
            format!("could not install chromium; install it yourself (`{install}`) or set PAIRGATE_CHROMIUM")
        })?;
    }
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../admin-ui");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&ui))
    .context("`npm ci` in admin-ui/ failed (node and npm are needed for the admin UI tests)")?;
    Ok(())
}

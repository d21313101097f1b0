//! `pairgate doctor`: checks the configuration, data dir, database, master key, gateway secret,
//! credentials, plugins, Redis and clocks one by one, checks the gateway answers where it
//! listens, and prints what to fix.
//!
//! Each check runs even when an earlier one failed, unless it needs what failed (no database,
//! no master key check). Nothing is created or migrated: doctor reads, and opens the state only
//! when the database exists (the only writes are the ones any command makes when it opens
//! state: none on a database that `serve` has started).
//! Output names credentials and key ids, never a value. `--test-credentials` also calls each
//! credential's provider once (and audits that, as `credential.tested`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pairgate_store::{Backend, Store, StoreOptions};
use serde::Serialize;

use super::CommandError;
use crate::config::{self, Config, MasterKeySourceKind, Sources};
use crate::engine::keys::VERIFIER;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
    /// Skip loading the plugins (compiling them takes seconds when the cache is cold).
    #[arg(long)]
    skip_plugins: bool,
    /// Also test each credential against its provider: one cheap authenticated call (a model
    /// listing) each, as the console's "Test against provider" does; audited, not metered.
    #[arg(long)]
    test_credentials: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    pub check: String,
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Default)]
struct Report(Vec<Check>);

impl Report {
    fn push(&mut self, status: Status, check: &str, detail: impl Into<String>, fix: Option<&str>) {
        self.0.push(Check {
            status,
            check: check.into(),
            detail: detail.into(),
            fix: fix.map(str::to_string),
        });
    }
    fn ok(&mut self, check: &str, detail: impl Into<String>) {
        self.push(Status::Ok, check, detail, None);
    }
    fn failed(&self) -> bool {
        self.0.iter().any(|c| c.status == Status::Fail)
    }
}

/// Runs every check and prints the report; fails (exit 1) when any check failed.
pub async fn run(sources: &Sources, args: DoctorArgs) -> Result<(), CommandError> {
    let mut report = Report::default();
    match config::load(sources) {
        Ok(mut config) => {
            if config.log_level == "info" {
                config.log_level = "error".into();
            }
            crate::http::telemetry::init(&config);
            report.ok(
                "config",
                match sources
                    .file
                    .as_ref()
                    .or(sources.default_file.as_ref().filter(|f| f.exists()))
                {
                    Some(f) => format!("valid ({})", f.display()),
                    None => "valid (defaults, environment and flags; no config file)".into(),
                },
            );
            check_all(&config, &args, &mut report).await;
        }
        Err(errors) => report.push(
            Status::Fail,
            "config",
            errors.to_string(),
            Some("correct the listed settings (file, PAIRGATE_* environment or flags)"),
        ),
    }
    print(&report, args.json);
    if report.failed() {
        let n = report.0.iter().filter(|c| c.status == Status::Fail).count();
        return Err(CommandError::Api(format!(
            "doctor: {n} check{} failed",
            if n == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

async fn check_all(config: &Config, args: &DoctorArgs, report: &mut Report) {
    data_dir(config, report);
    let Some(store) = database(config, report).await else {
        public_url(config, None, report);
        gateway(config, None, report).await;
        report.push(Status::Skip, "master key", "needs the database", None);
        return;
    };
    let served = |key: &'static str| {
        let store = store.clone();
        async move { store.meta_get(key).await.ok().flatten() }
    };
    let served_url = served(crate::http::serve::SERVED_URL).await;
    let served_listen = served(crate::http::serve::SERVED_LISTEN).await;
    public_url(config, served_url.as_deref(), report);
    gateway(config, served_listen.as_deref(), report).await;
    let keys_ok = master_key(config, &store, report).await;
    let owners = store.owner_count().await.unwrap_or(0);
    if owners == 0 {
        report.push(
            Status::Warn,
            "owner",
            "no owner account yet",
            Some("run `pairgate owner create USERNAME`, or open the setup link `pairgate serve` logs"),
        );
    } else {
        report.ok("owner", "an owner account exists");
    }
    clock(config, &store, report).await;
    store.close().await;
    if keys_ok {
        credentials(config, args.test_credentials, report).await;
    } else {
        report.push(Status::Skip, "credentials", "needs the master key", None);
    }
    if args.skip_plugins {
        report.push(Status::Skip, "plugins", "--skip-plugins", None);
    } else {
        plugins(config, report);
    }
    redis(config, report).await;
}

/// The public URL in effect: the configured one, else the one the last `serve` used (it
/// follows the address it bound), else the guess from the configured listen address.
fn public_url(config: &Config, served: Option<&str>, report: &mut Report) {
    let served = served.and_then(|u| url::Url::parse(u).ok());
    let (url, origin) = match (&served, config.public_url_explicit) {
        (_, true) => (config.public_url.clone(), "configured"),
        (Some(url), false) => (
            url.clone(),
            "not configured; the last `pairgate serve` used it",
        ),
        (None, false) => (
            config.public_url.clone(),
            "not configured; guessed from the listen address",
        ),
    };
    let host_is_loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    let loopback = config.listen.ip().is_loopback() && host_is_loopback;
    if !config.public_url_explicit && !loopback {
        report.push(
            Status::Warn,
            "public url",
            format!("{url} ({origin}); listen address {}", config.listen),
            Some(
                "set public_url to the exact https URL apps use: DPoP `htu` checks and pairing \
                 strings depend on it, never on request headers",
            ),
        );
    } else if url.scheme() == "http" && !loopback {
        report.push(
            Status::Warn,
            "public url",
            format!("{url} is plain http on a non-loopback address"),
            Some("serve https (tls.cert_file/tls.key_file) or put a TLS reverse proxy in front"),
        );
    } else {
        report.ok("public url", format!("{url} ({origin})"));
    }
}

/// Whether a gateway answers `GET /healthz` where the last `serve` listened (else at the
/// configured listen address). Not running is a warning: doctor also serves before a start.
async fn gateway(config: &Config, served_listen: Option<&str>, report: &mut Report) {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let configured = format!("{scheme}://{}", reachable(config.listen));
    let base = served_listen
        .and_then(|u| u.split_once("://"))
        .and_then(|(scheme, addr)| Some(format!("{scheme}://{}", reachable(addr.parse().ok()?))))
        .unwrap_or_else(|| configured.clone());
    let listen = if base == configured {
        format!("listen address {}", config.listen)
    } else {
        format!(
            "where the last `pairgate serve` listened; the configured listen address is {}",
            config.listen
        )
    };
    let health = format!("{base}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        // Only whether something answers is asked (nothing is sent); a certificate for the
        // public name does not match the bare address.
        .danger_accept_invalid_certs(true)
        .build();
    let answer = match client {
        Ok(client) => client.get(&health).send().await.map(|r| r.status()),
        Err(e) => Err(e),
    };
    match answer {
        Ok(status) if status.is_success() => {
            report.ok("gateway", format!("answers at {health} ({listen})"));
        }
        Ok(status) => report.push(
            Status::Warn,
            "gateway",
            format!("{health} answered {status} ({listen})"),
            Some("something else may be listening there: check the gateway's logs and address"),
        ),
        Err(e) => report.push(
            Status::Warn,
            "gateway",
            format!(
                "not running: no answer at {health} ({listen}): {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "connection refused".to_string()
                } else {
                    e.to_string()
                }
            ),
            Some("start it: `pairgate serve` (with the same --config / --data-dir)"),
        ),
    }
}

/// An address a client can connect to: an unspecified IP (0.0.0.0, ::) becomes loopback.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// The data dir, and the files in it that hold secrets: private to this user (0700 / 0600).
fn data_dir(config: &Config, report: &mut Report) {
    use std::os::unix::fs::PermissionsExt;
    let dir = config.data_dir.as_path();
    let mode_of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    match std::fs::metadata(dir) {
        Err(_) => report.push(
            Status::Warn,
            "data dir",
            format!("{} does not exist yet", dir.display()),
            Some("`pairgate serve` creates it on first start"),
        ),
        Ok(m) if !m.is_dir() => report.push(
            Status::Fail,
            "data dir",
            format!("{} is not a directory", dir.display()),
            Some("point data_dir at a directory"),
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => report.push(
            Status::Warn,
            "data dir",
            format!(
                "{} is open to other users (mode {:o})",
                dir.display(),
                m.permissions().mode() & 0o777
            ),
            Some("chmod 700 the data dir: it holds the database (and by default the key file)"),
        ),
        Ok(_) => {
            let mut files: Vec<PathBuf> = Vec::new();
            if let Some(db) = config.sqlite_file() {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = db.as_os_str().to_owned();
                    p.push(suffix);
                    files.push(PathBuf::from(p));
                }
            }
            if config.master_key.source == MasterKeySourceKind::File {
                files.push(key_file(config));
            }
            let open: Vec<String> = files
                .iter()
                .filter_map(|f| {
                    mode_of(f)
                        .filter(|m| m & 0o077 != 0)
                        .map(|m| format!("{} (mode {m:o})", f.display()))
                })
                .collect();
            if open.is_empty() {
                report.ok("data dir", format!("{} (private)", dir.display()));
            } else {
                report.push(
                    Status::Warn,
                    "data dir",
                    format!("open to other users: {}", open.join(", ")),
                    Some("chmod 600 them: they hold the database and the key"),
                );
            }
        }
    }
}

fn key_file(config: &Config) -> PathBuf {
    config
        .master_key
        .path
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"))
}

async fn database(config: &Config, report: &mut Report) -> Option<Store> {
    let url = config.effective_database_url();
    if config.uses_embedded_sqlite() && !config.sqlite_path().exists() {
        report.push(
            Status::Warn,
            "database",
            format!("{} does not exist yet", config.sqlite_path().display()),
            Some("`pairgate serve` creates it on first start"),
        );
        return None;
    }
    let store = match Store::connect(&url, &StoreOptions::default()).await {
        Ok(s) => s,
        Err(e) => {
            report.push(
                Status::Fail,
                "database",
                e.to_string(),
                Some("check database_url, that the server runs and that this user may connect"),
            );
            return None;
        }
    };
    let engine = match store.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    match store.check_ready().await {
        Ok(()) => report.ok("database", format!("{engine}, migrations up to date")),
        Err(pairgate_store::StoreError::Migration(m)) => report.push(
            Status::Warn,
            "database",
            format!("{engine}: {m}"),
            Some("the next `pairgate serve` (or any command) applies them"),
        ),
        Err(e) => report.push(
            Status::Fail,
            "database",
            format!("{engine}: {e}"),
            Some("the database answers but is not pairgate's: check database_url"),
        ),
    }
    Some(store)
}

async fn master_key(config: &Config, store: &Store, report: &mut Report) -> bool {
    let source = format!("{:?}", config.master_key.source).to_lowercase();
    match store.meta_get(VERIFIER).await {
        Ok(None) => {
            report.push(
                Status::Warn,
                "master key",
                "nothing is sealed yet (the gateway has not started on this database)",
                Some("start `pairgate serve` once"),
            );
            return false;
        }
        Err(e) => {
            report.push(Status::Fail, "master key", e.to_string(), None);
            return false;
        }
        Ok(Some(_)) => {}
    }
    let key = match crate::engine::keys::load_master_key(config, store, false).await {
        Ok((key, _)) => key,
        Err(e) => {
            report.push(
                Status::Fail,
                "master key",
                format!("source {source}: {e}"),
                Some(
                    "configure the master key the database was sealed under (a key replaced by \
                     `master-key rotate` is kept as KEY.retired-ID)",
                ),
            );
            return false;
        }
    };
    let kid = key.key_id();
    if config.master_key.source == MasterKeySourceKind::File {
        let file = key_file(config);
        if crate::engine::master_key_files::next_path(&file).exists() {
            report.push(
                Status::Warn,
                "master key",
                format!("key {kid}; an unfinished in-place rotation left {}.next", file.display()),
                Some("start the gateway (it completes a committed rotation) or run `master-key rotate` again"),
            );
        } else if file.parent() == Some(config.data_dir.as_path()) {
            report.push(
                Status::Warn,
                "master key",
                format!("key {kid} in {}, beside the database", file.display()),
                Some(
                    "a copy of the data dir holds both: prefer the OS keychain, a command \
                     (secret manager), systemd credentials or a passphrase (master_key.source)",
                ),
            );
        } else {
            report.ok("master key", format!("key {kid} from {}", file.display()));
        }
    } else {
        report.ok("master key", format!("key {kid} from source {source}"));
    }
    match crate::engine::keys::load_gateway_secret(&key, store).await {
        Ok(_) => {
            report.ok("gateway secret", "unsealed");
            true
        }
        Err(e) => {
            report.push(Status::Fail, "gateway secret", e.to_string(), None);
            false
        }
    }
}

async fn clock(config: &Config, store: &Store, report: &mut Report) {
    let max_age = config.dpop_max_age.as_secs();
    if store.backend() != Backend::Postgres {
        report.push(
            Status::Skip,
            "clock",
            format!(
                "no database server clock to compare with; DPoP proofs older than {max_age}s \
                 are refused, so keep this machine's clock synchronised (NTP)"
            ),
            None,
        );
        return;
    }
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    match store.server_clock().await {
        Ok(remote) => {
            let skew = (remote - local).abs();
            if skew > 2.0 {
                report.push(
                    Status::Warn,
                    "clock",
                    format!("this machine and PostgreSQL differ by {skew:.1}s"),
                    Some("synchronise clocks (NTP): expiries and proof ages are checked on them"),
                );
            } else {
                report.ok("clock", format!("within {skew:.2}s of PostgreSQL"));
            }
        }
        Err(e) => report.push(Status::Warn, "clock", format!("cannot read: {e}"), None),
    }
}

async fn credentials(config: &Config, test: bool, report: &mut Report) {
    // Testing against providers needs the plugins, which build the calls.
    let purpose = if test {
        crate::boot::OpenFor::Serve
    } else {
        crate::boot::OpenFor::Command
    };
    let opened = match crate::boot::open_for(config, purpose, crate::boot::Access::Existing).await {
        Ok(opened) => opened,
        Err(e) => {
            report.push(Status::Fail, "credentials", e.to_string(), None);
            return;
        }
    };
    let state = &opened.state;
    match crate::domain::credentials::list(state).await {
        Ok(list) if list.is_empty() => report.push(
            Status::Warn,
            "credentials",
            "no provider credentials",
            Some("add one: `pairgate credential add PROVIDER` (the key on standard input)"),
        ),
        Ok(list) => {
            for c in list {
                let check = format!("credential {}/{}", c.provider, c.name);
                match crate::domain::credentials::resolve(state, &c.provider, &c.name).await {
                    Ok(value) => {
                        drop(value);
                        report.ok(
                            &check,
                            format!("{} usable, fingerprint {}", c.kind, c.fingerprint),
                        );
                        if test {
                            test_credential(state, &c, report).await;
                        }
                    }
                    Err(e) => report.push(
                        Status::Fail,
                        &check,
                        e.to_string(),
                        Some("fix the reference's source, or `pairgate credential rotate` it"),
                    ),
                }
            }
        }
        Err(e) => report.push(Status::Fail, "credentials", e.to_string(), None),
    }
    state.shutdown().await;
    if let Some(lock) = opened.lock {
        lock.release().await;
    }
}

/// One credential against its provider, with the console's domain function.
async fn test_credential(
    state: &crate::state::AppState,
    c: &crate::domain::credentials::CredentialInfo,
    report: &mut Report,
) {
    use crate::relay::probe::CheckOutcome;
    let check = format!("provider test {}", c.label());
    match crate::relay::probe::test_credential(state, c, super::CLI_ACTOR).await {
        Ok(r) => {
            let detail = match r.latency_ms {
                Some(ms) => format!("{} ({ms} ms)", r.message),
                None => r.message,
            };
            let (status, fix) = match r.outcome {
                CheckOutcome::Ok => (Status::Ok, None),
                CheckOutcome::Rejected => (
                    Status::Fail,
                    Some(
                        "replace the key: `pairgate credential rotate PROVIDER` (new value on standard input)",
                    ),
                ),
                CheckOutcome::Unreachable | CheckOutcome::Timeout => (
                    Status::Warn,
                    Some("check this machine's network, proxy and the provider's status"),
                ),
                CheckOutcome::ProviderError => (Status::Warn, None),
                CheckOutcome::NotTestable => (Status::Skip, None),
            };
            report.push(status, &check, detail, fix);
        }
        Err(e) => report.push(Status::Fail, &check, e.to_string(), None),
    }
}

fn plugins(config: &Config, report: &mut Report) {
    let started = Instant::now();
    match crate::engine::providers::ProviderRegistry::start(config) {
        Ok(relay) => {
            let providers: Vec<&str> = relay.providers().map(|p| p.id.as_str()).collect();
            report.ok(
                "plugins",
                format!(
                    "{} provider{} ready in {} ms: {}",
                    providers.len(),
                    if providers.len() == 1 { "" } else { "s" },
                    started.elapsed().as_millis(),
                    providers.join(", ")
                ),
            );
        }
        Err(e) => report.push(
            Status::Fail,
            "plugins",
            e.to_string(),
            Some("check [providers.*] and plugins.install, and that the plugin cache dir is writable"),
        ),
    }
}

async fn redis(config: &Config, report: &mut Report) {
    let Some(url) = config
        .redis_url
        .as_deref()
        .filter(|_| config.limits_backend == "redis")
    else {
        report.push(
            Status::Skip,
            "redis",
            "limits are kept in this process (limits_backend = local)",
            None,
        );
        return;
    };
    let result = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), result).await {
        Ok(Ok(_)) => report.ok("redis", "answers PING"),
        Ok(Err(e)) => report.push(
            Status::Fail,
            "redis",
            e.to_string(),
            Some("check redis_url and that Redis runs"),
        ),
        Err(_) => report.push(
            Status::Fail,
            "redis",
            "no answer within 3 s",
            Some("check redis_url and that Redis runs"),
        ),
    }
}

fn print(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.0).unwrap_or_default()
        );
        return;
    }
    for c in &report.0 {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        println!("{tag}  {:<16} {}", c.check, c.detail);
        if let Some(fix) = &c.fix {
            println!("      {:<16} fix: {fix}", "");
        }
    }
}

//! Configuration: defaults < TOML file < `PAIRGATE_*` environment < command-line flags.
//!
//! Every key is declared once in [`keys::KEYS`]; loading walks all sources, collects every problem
//! (unknown keys, bad values) and either returns a complete [`Config`] or one [`ConfigErrors`]
//! listing them all, so the gateway never half-starts on a half-valid configuration.

mod keys;
pub mod pins;
pub mod providers;
mod value;

/// Requests one client address (IPv6: its /64) may have started within `pairing.consent_ttl`:
/// far below the whole queue's limit (`domain::consent::MAX_PENDING`), so no one address can fill it.
pub const CONSENT_PENDING_PER_CLIENT: u32 = 5;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use keys::KEYS;
pub use value::RawValue;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Where the master key comes from (see docs/ARCHITECTURE.md, "Key custody").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MasterKeySourceKind {
    File,
    Env,
    Systemd,
    Command,
    Keyring,
    PassphraseEnv,
    PassphraseFile,
    PassphraseCommand,
}

/// Master key settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterKeyConfig {
    pub source: MasterKeySourceKind,
    /// For `file` / `passphrase-file`: the file; default `<data_dir>/master.key`.
    pub path: Option<PathBuf>,
    /// For `env` / `passphrase-env`: the variable's name.
    pub var: String,
    /// For `systemd`: the credential's name.
    pub name: String,
    /// For the command sources: program and arguments, run without a shell.
    pub command: Vec<String>,
    pub command_timeout: Duration,
    /// For `keyring`: service and user of the entry.
    pub keyring_service: String,
    pub keyring_user: String,
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite file `<data_dir>/pairgate.db`.
    #[serde(skip)]
    pub database_url: Option<String>,
    /// The URL apps use to reach the gateway; `htu` checks and pairing strings use it.
    pub public_url: url::Url,
    /// Whether `public_url` was configured (otherwise it follows the bound address).
    pub public_url_explicit: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_grace: Duration,
    pub max_body_bytes: usize,
    /// A request head must arrive within this (see `conn.rs`); also the idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this (see `routes::body_timeout`).
    pub body_read_timeout: Duration,
    /// Requests handled at once; beyond, `503 overloaded` at once (see `routes::shed_load`).
    pub max_in_flight_requests: usize,
    /// Client connections open at once; beyond, a new one waits briefly, then is closed
    /// (see `conn.rs`).
    pub max_connections: usize,
    /// Threads serving client connections (plain and TLS), each a single-threaded runtime; 0
    /// serves them on the shared runtime (see `http/spread.rs`).
    pub connection_threads: usize,
    /// Answered requests' ledger rows are journaled in the data dir before the answer and
    /// committed in batches (see `engine/journal.rs`); `false`: each answer waits for its commit.
    pub ledger_journal: bool,
    /// An HTTP/2 connection with no request in progress is closed after this (see `conn.rs`).
    pub http2_idle_timeout: Duration,
    /// HTTP/2 keep-alive pings: how often, and how long one may go unanswered.
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
    /// A separate listener for `/metrics` (see `routes::health`); then the API listener has none.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer token `/metrics` requires; without it (and without `metrics_listen`),
    /// `/metrics` is not served.
    #[serde(skip)]
    pub metrics_token: Option<pairgate_custody::SecretString>,
    pub master_key: MasterKeyConfig,
    pub pairing_ttl: Duration,
    pub pairing_max_ttl: Duration,
    pub consent_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub dpop_max_age: Duration,
    pub dpop_max_future: Duration,
    pub dpop_require_nonce: bool,
    /// Replay-cache entries for proofs without a credential (see `auth::replay::Partition`).
    pub stranger_replay_capacity: usize,
    /// Per client address (IPv6: /64) on `/oauth/token` and `/oauth/device_authorization`.
    pub oauth_client_requests_per_minute: usize,
    /// Provider id used for bare model names (`gpt-4o-mini` means `<default>/gpt-4o-mini`).
    pub default_provider: String,
    /// Configured provider instances (built-in plugins need none).
    pub providers: std::collections::BTreeMap<String, providers::ProviderConfig>,
    /// Where compiled plugins are cached between runs (default `<data_dir>/plugin-cache`).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Third-party plugins: component file and its pinned SHA-256 (lowercase hex).
    pub plugin_install: Vec<(PathBuf, String)>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see `routes::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `local` (one node) or `redis` (limits shared by replicas).
    pub limits_backend: String,
    pub redis_url: Option<String>,
    /// Redis keys are `pairgate:<namespace>:...` (default `gw`).
    pub redis_namespace: String,
    /// Upstream timeouts: connecting, and the whole non-streamed call / the gap between chunks.
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    /// Provider host names pinned to addresses (`upstream.resolve`), checked like DNS answers
    /// (see `relay::resolve`).
    pub upstream_resolve: pins::Pins,
    /// Serve HTTPS directly (see docs/deployment.md, "TLS"); `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// Certificate and key files for serving HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often the files' modification times are checked.
    pub reload_interval: Duration,
}

impl Config {
    /// The database URL in effect: the configured one, or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => pairgate_store::sqlite_url(&self.sqlite_path()),
        }
    }

    /// Where the embedded SQLite database lives.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("pairgate.db")
    }

    /// Whether the embedded SQLite database is in use.
    pub fn uses_embedded_sqlite(&self) -> bool {
        self.database_url.is_none()
    }

    /// The SQLite database file in use: the embedded one, or the file a `sqlite:` database_url
    /// names. `None` for PostgreSQL and for an in-memory database.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let Some(url) = &self.database_url else {
            return Some(self.sqlite_path());
        };
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }
}

/// Values given on the command line; each overrides every other source.
#[derive(Debug, Clone, Default)]
pub struct FlagValues {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
}

/// Everything configuration is read from, injectable for tests.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An explicitly named config file (must exist) ...
    pub file: Option<PathBuf>,
    /// ... or the default location, read only if it exists.
    pub default_file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub flags: FlagValues,
    /// The platform's data directory, the default for `data_dir`.
    pub default_data_dir: Option<PathBuf>,
}

impl Sources {
    /// The real process environment, flags, and platform directories.
    pub fn from_process(file: Option<PathBuf>, flags: FlagValues) -> Sources {
        let dirs = directories::ProjectDirs::from("", "", "pairgate");
        Sources {
            file,
            default_file: dirs.as_ref().map(|d| d.config_dir().join("pairgate.toml")),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX))
                .collect(),
            flags,
            default_data_dir: dirs.map(|d| d.data_dir().to_path_buf()),
        }
    }
}

/// `http://<addr>` for a listen address (an unspecified IP becomes 127.0.0.1).
pub fn default_public_url(addr: SocketAddr) -> url::Url {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let text = format!("http://{host}:{}/", addr.port());
    url::Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
}

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "PAIRGATE_";

/// Every problem found while loading configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.0.len())?;
        if self.0.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, "): {}", self.0.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(name) => write!(f, "flag --{name}"),
        }
    }
}

/// Loads and validates configuration from every source.
pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut builder = keys::Builder::defaults(sources.default_data_dir.clone());

    // 1. the file
    let file = match (&sources.file, &sources.default_file) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(path)) if path.exists() => Some(path.clone()),
        _ => None,
    };
    if let Some(path) = file {
        match std::fs::read_to_string(&path) {
            Ok(text) => apply_file(&mut builder, &path, &text, &mut errors),
            Err(e) => errors.push(format!("cannot read config file {}: {e}", path.display())),
        }
    }

    // 2. the environment
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for (name, value) in &sources.env {
        if let Some(key) = keys::by_env(name) {
            builder.apply(
                key,
                RawValue::Text(value.clone()),
                Origin::Env(name.clone()),
                &mut errors,
            );
        } else if let Some(rest) = name.strip_prefix("PAIRGATE_PROVIDERS__") {
            let path = format!("providers.{}", rest.to_ascii_lowercase().replace("__", "."));
            builder.apply_provider(
                &path,
                &RawValue::Text(value.clone()),
                &Origin::Env(name.clone()),
                &mut errors,
            );
        }
    }
    referenced.insert(builder.master_key_var().to_string());
    for (name, _) in &sources.env {
        if name.starts_with(ENV_PREFIX)
            && keys::by_env(name).is_none()
            && !name.starts_with("PAIRGATE_PROVIDERS__")
            && !referenced.contains(name)
        {
            errors.push(format!("unknown environment variable {name}"));
        }
    }

    // 3. the flags
    let flags = &sources.flags;
    let flag_values: [(&'static str, &'static str, Option<String>); 4] = [
        ("listen", "listen", flags.listen.clone()),
        (
            "data_dir",
            "data-dir",
            flags.data_dir.as_ref().map(|p| p.display().to_string()),
        ),
        ("database_url", "database-url", flags.database_url.clone()),
        ("log_format", "log-format", flags.log_format.clone()),
    ];
    for (path, flag, value) in flag_values {
        if let (Some(value), Some(key)) = (value, keys::by_path(path)) {
            builder.apply(key, RawValue::Text(value), Origin::Flag(flag), &mut errors);
        }
    }

    let config = builder.finish(&mut errors);
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(errors)),
    }
}

fn apply_file(builder: &mut keys::Builder, path: &Path, text: &str, errors: &mut Vec<String>) {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| format!(" at line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            errors.push(format!(
                "config file {} is not valid TOML{at}: {msg}",
                path.display()
            ));
            return;
        }
    };
    let mut flat = Vec::new();
    value::flatten("", &toml::Value::Table(table), &mut flat);
    for (key_path, value) in flat {
        match keys::by_path(&key_path) {
            Some(key) => builder.apply(
                key,
                RawValue::Toml(value),
                Origin::File(path.to_path_buf()),
                errors,
            ),
            None if key_path.starts_with("providers.") => builder.apply_provider(
                &key_path,
                &RawValue::Toml(value),
                &Origin::File(path.to_path_buf()),
                errors,
            ),
            None => errors.push(format!(
                "config file {}: unknown key `{key_path}`",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests;

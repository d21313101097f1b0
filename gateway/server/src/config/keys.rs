//! The table of every configuration key: its path, environment name, and how it is applied.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Config, LogFormat, MasterKeyConfig, MasterKeySourceKind, Origin, RawValue};

/// Default size of the proof replay cache's strangers' partition (`dpop.stranger_replay_capacity`).
pub const DEFAULT_STRANGER_CAPACITY: usize = 100_000;

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Dotted path in the TOML file (`master_key.source`).
    pub path: &'static str,
    /// Whether the value may be a secret (never echoed in errors).
    pub secret: bool,
    pub doc: &'static str,
    set: fn(&mut Builder, &RawValue) -> Result<(), String>,
}

impl Key {
    /// The environment variable: `PAIRGATE_` + path upper-cased, `.` as `__`.
    pub fn env_name(&self) -> String {
        format!(
            "{}{}",
            super::ENV_PREFIX,
            self.path.replace('.', "__").to_ascii_uppercase()
        )
    }
}

macro_rules! key {
    ($path:literal, $doc:literal, |$b:ident, $v:ident| $body:expr) => {
        Key {
            path: $path,
            secret: false,
            doc: $doc,
            set: |$b, $v| {
                $body;
                Ok(())
            },
        }
    };
    (secret $path:literal, $doc:literal, |$b:ident, $v:ident| $body:expr) => {
        Key {
            path: $path,
            secret: true,
            doc: $doc,
            set: |$b, $v| {
                $body;
                Ok(())
            },
        }
    };
}

/// Every key the gateway understands.
pub static KEYS: &[Key] = &[
    key!("listen", "address to listen on", |b, v| b.listen =
        v.socket_addr()?),
    key!(
        "data_dir",
        "directory for the SQLite database and master key file",
        |b, v| b.data_dir = Some(v.path()?)
    ),
    key!(secret "database_url", "sqlite://... or postgres://...; default: SQLite in data_dir", |b, v| {
        let url = v.string()?;
        if pairgate_store::Backend::of_url(&url).is_none() {
            return Err("must start with sqlite: or postgres:".into());
        }
        b.database_url = Some(url)
    }),
    key!(
        "public_url",
        "URL apps use to reach the gateway; default http://<listen>",
        |b, v| b.public_url = Some(v.url()?)
    ),
    key!("log_format", "human or json", |b, v| b.log_format =
        match v.one_of(&["human", "json"])?.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Human,
        }),
    key!(
        "log_level",
        "tracing filter, e.g. info or pairgate=debug",
        |b, v| b.log_level = v.string()?
    ),
    key!(
        "shutdown_grace",
        "how long graceful shutdown waits for in-flight requests",
        |b, v| b.shutdown_grace = v.duration()?
    ),
    key!("max_body_bytes", "largest request body accepted", |b, v| {
        b.max_body_bytes = v.bytes()?
    }),
    key!(
        "header_read_timeout",
        "how long a client may take to send a request's headers (and an idle keep-alive connection stays open)",
        |b, v| b.header_read_timeout = v.duration()?
    ),
    key!(
        "body_read_timeout",
        "how long a client may take to send a request's whole body; then 408 and the connection is closed",
        |b, v| b.body_read_timeout = v.duration()?
    ),
    key!(
        "max_in_flight_requests",
        "requests handled at once; beyond, 503 overloaded at once (bounds memory under overload)",
        |b, v| b.max_in_flight_requests = v.count()?
    ),
    key!(
        "max_connections",
        "client connections open at once (TLS handshakes included); beyond, a new one waits up to 250 ms for a free slot, then is closed",
        |b, v| b.max_connections = v.count()?
    ),
    key!(
        "connection_threads",
        "threads serving client connections (plain and TLS), each a single-threaded runtime (default: one per CPU); 0 serves them on the shared runtime",
        |b, v| b.connection_threads = v.whole()?
    ),
    key!(
        "ledger_journal",
        "answered requests' ledger rows go to a journal file in the data dir before the answer and reach the database in batches (false: every answer waits for its own database commit; for a data dir that does not outlive the process)",
        |b, v| b.ledger_journal = v.boolean()?
    ),
    key!(
        "http2.idle_timeout",
        "how long an HTTP/2 connection with no request in progress stays open (a client trickling a request's headers included)",
        |b, v| b.http2_idle_timeout = v.duration()?
    ),
    key!(
        "http2.keep_alive_interval",
        "how often an HTTP/2 connection that sends nothing is pinged",
        |b, v| b.http2_keep_alive_interval = v.duration()?
    ),
    key!(
        "http2.keep_alive_timeout",
        "how long an HTTP/2 ping may go unanswered before the connection is closed",
        |b, v| b.http2_keep_alive_timeout = v.duration()?
    ),
    key!(
        "metrics.listen",
        "serve /metrics on this separate address (e.g. 127.0.0.1:9464) instead of the API listener",
        |b, v| b.metrics_listen = Some(v.socket_addr()?)
    ),
    key!(secret "metrics.token", "bearer token a scraper must send for /metrics (16 characters or more); without it and without metrics.listen, /metrics is not served", |b, v| {
        let token = v.string()?;
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must be 16 or more characters without spaces".into());
        }
        b.metrics_token = Some(token)
    }),
    key!(
        "master_key.source",
        "file, env, systemd, command, keyring, passphrase-env, passphrase-file or passphrase-command",
        |b, v| {
            b.master_key.source = match v
                .one_of(&[
                    "file",
                    "env",
                    "systemd",
                    "command",
                    "keyring",
                    "passphrase-env",
                    "passphrase-file",
                    "passphrase-command",
                ])?
                .as_str()
            {
                "env" => MasterKeySourceKind::Env,
                "systemd" => MasterKeySourceKind::Systemd,
                "command" => MasterKeySourceKind::Command,
                "keyring" => MasterKeySourceKind::Keyring,
                "passphrase-env" => MasterKeySourceKind::PassphraseEnv,
                "passphrase-file" => MasterKeySourceKind::PassphraseFile,
                "passphrase-command" => MasterKeySourceKind::PassphraseCommand,
                _ => MasterKeySourceKind::File,
            }
        }
    ),
    key!(
        "master_key.path",
        "master key file (file, passphrase-file)",
        |b, v| b.master_key.path = Some(v.path()?)
    ),
    key!(
        "master_key.var",
        "environment variable holding the key (env, passphrase-env)",
        |b, v| b.master_key.var = v.string()?
    ),
    key!(
        "master_key.name",
        "systemd credential name (systemd)",
        |b, v| b.master_key.name = v.string()?
    ),
    key!(
        "master_key.command",
        "program and arguments printing the key, run without a shell",
        |b, v| {
            let list = v.string_list()?;
            if list.is_empty() {
                return Err("must name a program".into());
            }
            b.master_key.command = list
        }
    ),
    key!(
        "master_key.command_timeout",
        "how long the key command may run",
        |b, v| b.master_key.command_timeout = v.duration()?
    ),
    key!(
        "master_key.keyring_service",
        "OS keychain service (keyring)",
        |b, v| b.master_key.keyring_service = v.string()?
    ),
    key!(
        "master_key.keyring_user",
        "OS keychain user (keyring)",
        |b, v| b.master_key.keyring_user = v.string()?
    ),
    key!(
        "pairing.ttl",
        "default lifetime of a pairing string",
        |b, v| b.pairing_ttl = v.duration()?
    ),
    key!(
        "pairing.max_ttl",
        "longest lifetime an owner may choose",
        |b, v| b.pairing_max_ttl = v.duration()?
    ),
    key!(
        "pairing.consent_ttl",
        "lifetime of an app's consent request",
        |b, v| b.consent_ttl = v.duration()?
    ),
    key!(
        "tokens.access_ttl",
        "lifetime of an access token",
        |b, v| b.access_token_ttl = v.duration()?
    ),
    key!(
        "tokens.refresh_ttl",
        "lifetime of a refresh token",
        |b, v| b.refresh_token_ttl = v.duration()?
    ),
    key!("dpop.max_age", "how old a proof's iat may be", |b, v| b
        .dpop_max_age =
        v.duration()?),
    key!(
        "dpop.max_future",
        "how far ahead a proof's iat may be",
        |b, v| b.dpop_max_future = v.duration()?
    ),
    key!(
        "dpop.require_nonce",
        "require a server nonce in every proof",
        |b, v| b.dpop_require_nonce = v.boolean()?
    ),
    key!(
        "dpop.stranger_replay_capacity",
        "replay-cache entries for proofs that come with no credential (device authorization and its polls), kept apart from paired apps' proofs",
        |b, v| b.stranger_replay_capacity = v.count()?
    ),
    key!(
        "oauth.client_requests_per_minute",
        "requests per minute (and burst) one client address (IPv6: its /64) may make to the token and device authorization endpoints",
        |b, v| b.oauth_client_requests_per_minute = v.count()?
    ),
    key!(
        "default_provider",
        "provider id for bare model names",
        |b, v| {
            let id = v.string()?;
            if !super::providers::valid_id(&id) {
                return Err(format!("`{id}` is not a provider id"));
            }
            b.default_provider = id
        }
    ),
    key!(
        "plugins.cache_dir",
        "where compiled plugins are cached",
        |b, v| b.plugin_cache_dir = Some(v.path()?)
    ),
    key!(
        "plugins.install",
        "third-party plugins to load, each \"PATH@sha256:HEX\"",
        |b, v| {
            let list = v.string_list()?;
            let mut out = Vec::new();
            for entry in list {
                let (path, hash) = entry.rsplit_once("@sha256:").ok_or_else(|| {
                    format!("`{entry}` must look like /path/plugin.wasm@sha256:<64 hex digits>")
                })?;
                if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("`{entry}` does not end in a 64-digit SHA-256"));
                }
                out.push((PathBuf::from(path), hash.to_ascii_lowercase()));
            }
            b.plugin_install = out
        }
    ),
    key!("limits.backend", "local or redis", |b, v| b
        .limits_backend =
        v.one_of(&["local", "redis"])?),
    key!(secret "limits.redis_url", "redis://... shared by replicas", |b, v| {
        let url = v.string()?;
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err("must start with redis:// or rediss://".into());
        }
        b.redis_url = Some(url)
    }),
    key!(
        "trusted_proxies",
        "reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client",
        |b, v| {
            let mut out = Vec::new();
            for entry in v.string_list()? {
                let net = entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))?;
                out.push(net);
            }
            b.trusted_proxies = out
        }
    ),
    key!(
        "limits.redis_namespace",
        "Redis keys are pairgate:<namespace>:... (replicas sharing limits use the same one)",
        |b, v| {
            let ns = v.string()?;
            if ns.is_empty()
                || !ns
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err("must be non-empty [A-Za-z0-9_.-]".into());
            }
            b.redis_namespace = ns
        }
    ),
    key!(
        "upstream.connect_timeout",
        "connecting to a provider",
        |b, v| b.upstream_connect_timeout = v.duration()?
    ),
    key!(
        "upstream.timeout",
        "a whole non-streamed call, or the gap between streamed chunks",
        |b, v| b.upstream_timeout = v.duration()?
    ),
    key!(
        "upstream.resolve",
        "pin provider host names to addresses instead of asking DNS, each \"NAME=IP\" (a name may repeat); pinned addresses are checked like resolved ones",
        |b, v| b.upstream_resolve = super::pins::parse_pins(&v.string_list()?)?
    ),
    key!(
        "tls.cert_file",
        "serve HTTPS with this PEM certificate chain (leaf first); reloaded when it changes",
        |b, v| b.tls_cert_file = Some(v.path()?)
    ),
    key!(
        "tls.key_file",
        "the PEM private key (PKCS#8, PKCS#1 or SEC1) of tls.cert_file",
        |b, v| b.tls_key_file = Some(v.path()?)
    ),
    key!(
        "tls.reload_interval",
        "how often the TLS files are checked for changes (SIGHUP also reloads them)",
        |b, v| b.tls_reload_interval = v.duration()?
    ),
];

/// The key at a dotted path.
pub fn by_path(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// The key an environment variable sets.
pub fn by_env(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.env_name() == name)
}

/// Configuration under construction: defaults, then each source applied in order.
#[derive(Debug)]
pub struct Builder {
    listen: SocketAddr,
    data_dir: Option<PathBuf>,
    default_data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<url::Url>,
    log_format: LogFormat,
    log_level: String,
    shutdown_grace: Duration,
    max_body_bytes: usize,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    max_in_flight_requests: usize,
    max_connections: usize,
    connection_threads: usize,
    ledger_journal: bool,
    http2_idle_timeout: Duration,
    http2_keep_alive_interval: Duration,
    http2_keep_alive_timeout: Duration,
    metrics_listen: Option<SocketAddr>,
    metrics_token: Option<String>,
    master_key: MasterKeyConfig,
    pairing_ttl: Duration,
    pairing_max_ttl: Duration,
    consent_ttl: Duration,
    access_token_ttl: Duration,
    refresh_token_ttl: Duration,
    dpop_max_age: Duration,
    dpop_max_future: Duration,
    dpop_require_nonce: bool,
    stranger_replay_capacity: usize,
    oauth_client_requests_per_minute: usize,
    default_provider: String,
    providers: std::collections::BTreeMap<String, super::providers::ProviderConfig>,
    plugin_cache_dir: Option<PathBuf>,
    plugin_install: Vec<(PathBuf, String)>,
    trusted_proxies: Vec<ipnet::IpNet>,
    limits_backend: String,
    redis_url: Option<String>,
    redis_namespace: String,
    upstream_connect_timeout: Duration,
    upstream_timeout: Duration,
    upstream_resolve: super::pins::Pins,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_reload_interval: Duration,
}

impl Builder {
    pub fn defaults(default_data_dir: Option<PathBuf>) -> Builder {
        Builder {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: None,
            default_data_dir,
            database_url: None,
            public_url: None,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            shutdown_grace: Duration::from_secs(30),
            max_body_bytes: 4 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_in_flight_requests: 1024,
            max_connections: 4096,
            connection_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ledger_journal: true,
            http2_idle_timeout: Duration::from_secs(60),
            http2_keep_alive_interval: Duration::from_secs(30),
            http2_keep_alive_timeout: Duration::from_secs(20),
            metrics_listen: None,
            metrics_token: None,
            master_key: MasterKeyConfig {
                source: MasterKeySourceKind::File,
                path: None,
                var: "PAIRGATE_MASTER_KEY".into(),
                name: "pairgate-master-key".into(),
                command: Vec::new(),
                command_timeout: Duration::from_secs(10),
                keyring_service: "pairgate".into(),
                keyring_user: "master-key".into(),
            },
            pairing_ttl: Duration::from_secs(600),
            pairing_max_ttl: Duration::from_secs(7 * 24 * 3600),
            consent_ttl: Duration::from_secs(900),
            access_token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            dpop_max_age: Duration::from_secs(60),
            dpop_max_future: Duration::from_secs(10),
            dpop_require_nonce: false,
            stranger_replay_capacity: DEFAULT_STRANGER_CAPACITY,
            oauth_client_requests_per_minute: 600,
            default_provider: "openai".into(),
            providers: std::collections::BTreeMap::new(),
            plugin_cache_dir: None,
            plugin_install: Vec::new(),
            trusted_proxies: Vec::new(),
            limits_backend: "local".into(),
            redis_url: None,
            redis_namespace: "gw".into(),
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(300),
            upstream_resolve: super::pins::Pins::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_reload_interval: Duration::from_secs(5),
        }
    }

    pub(super) fn apply_provider(
        &mut self,
        path: &str,
        value: &RawValue,
        origin: &Origin,
        errors: &mut Vec<String>,
    ) {
        super::providers::apply(&mut self.providers, path, value, origin, errors);
    }

    /// The env variable the master key source reads (it is not an unknown config variable).
    pub fn master_key_var(&self) -> &str {
        &self.master_key.var
    }

    pub(super) fn apply(
        &mut self,
        key: &Key,
        value: RawValue,
        origin: Origin,
        errors: &mut Vec<String>,
    ) {
        if let Err(problem) = (key.set)(self, &value) {
            let problem = if key.secret {
                "is not valid (value not shown)".to_string()
            } else {
                problem
            };
            errors.push(format!("{origin}: `{}` {problem}", key.path));
        }
    }

    /// Fills derived defaults and checks cross-key rules.
    pub(super) fn finish(self, errors: &mut Vec<String>) -> Option<Config> {
        let data_dir = match self.data_dir.or(self.default_data_dir) {
            Some(dir) => dir,
            None => {
                errors.push("`data_dir` is not set and the platform has no data directory".into());
                return None;
            }
        };
        let public_url_explicit = self.public_url.is_some();
        let public_url = self
            .public_url
            .unwrap_or_else(|| super::default_public_url(self.listen));
        if self.pairing_ttl > self.pairing_max_ttl {
            errors.push("`pairing.ttl` must not exceed `pairing.max_ttl`".into());
        }
        let mk = &self.master_key;
        let needs_command = matches!(
            mk.source,
            MasterKeySourceKind::Command | MasterKeySourceKind::PassphraseCommand
        );
        if needs_command && mk.command.is_empty() {
            errors.push("`master_key.command` is required by this master_key.source".into());
        }
        if mk.source == MasterKeySourceKind::PassphraseFile && mk.path.is_none() {
            errors.push(
                "`master_key.path` is required by master_key.source = passphrase-file".into(),
            );
        }
        if self.limits_backend == "redis" && self.redis_url.is_none() {
            errors.push("`limits.redis_url` is required by limits.backend = redis".into());
        }
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(super::TlsConfig {
                cert_file,
                key_file,
                reload_interval: self.tls_reload_interval.max(Duration::from_millis(100)),
            }),
            (None, None) => None,
            _ => {
                errors.push("`tls.cert_file` and `tls.key_file` must be set together".into());
                None
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            errors.push(format!("`log_level` is not a valid filter: {e}"));
        }
        Some(Config {
            listen: self.listen,
            data_dir,
            database_url: self.database_url,
            public_url,
            public_url_explicit,
            log_format: self.log_format,
            log_level: self.log_level,
            shutdown_grace: self.shutdown_grace,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_in_flight_requests: self.max_in_flight_requests,
            max_connections: self.max_connections,
            connection_threads: self.connection_threads,
            ledger_journal: self.ledger_journal,
            http2_idle_timeout: self.http2_idle_timeout,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_keep_alive_timeout: self.http2_keep_alive_timeout,
            metrics_listen: self.metrics_listen,
            metrics_token: self.metrics_token.map(pairgate_custody::SecretString::from),
            master_key: self.master_key,
            pairing_ttl: self.pairing_ttl,
            pairing_max_ttl: self.pairing_max_ttl,
            consent_ttl: self.consent_ttl,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            dpop_max_age: self.dpop_max_age,
            dpop_max_future: self.dpop_max_future,
            dpop_require_nonce: self.dpop_require_nonce,
            stranger_replay_capacity: self.stranger_replay_capacity,
            oauth_client_requests_per_minute: self.oauth_client_requests_per_minute,
            default_provider: self.default_provider,
            providers: self.providers,
            plugin_cache_dir: self.plugin_cache_dir,
            plugin_install: self.plugin_install,
            trusted_proxies: self.trusted_proxies,
            limits_backend: self.limits_backend,
            redis_url: self.redis_url,
            redis_namespace: self.redis_namespace,
            upstream_connect_timeout: self.upstream_connect_timeout,
            upstream_timeout: self.upstream_timeout,
            upstream_resolve: self.upstream_resolve,
            tls,
        })
    }
}

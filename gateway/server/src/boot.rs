//! Opening the gateway's state, shared by `serve` and the CLI commands: data dir, database and
//! migrations, master key, gateway secret. All-or-nothing: whatever this call created is removed
//! if it fails.
//!
//! Only `serve` and the commands that set a gateway up ([`Access::Create`]) create a data dir,
//! database or master key; every other command needs an existing database and says so.
//! Whoever opens the state holds the database's in-use lock (shared) for as long as the state
//! lives, which `restore` checks (see `pairgate_store::DatabaseLock`). The data dir is created
//! 0700 and the SQLite database (so its WAL and shared-memory files) 0600.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pairgate_store::{DatabaseLock, LockError, LockMode, Store, StoreOptions};

use crate::config::{Config, ConfigErrors};
use crate::state::AppState;

/// Opens everything `serve` needs, or nothing.
pub async fn open(config: &Config) -> Result<Opened, StartError> {
    open_for(config, OpenFor::Serve, Access::Create).await
}

/// What the state is opened for: serving loads the plugins; CLI commands need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFor {
    Serve,
    Command,
}

/// Whether a missing data dir, database and master key are created, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve` and the set-up commands (`owner create`, `credential add`, `plugin install`).
    Create,
    /// Everything else: the database must exist and have been started once.
    Existing,
}

/// The opened state and the database lock held for as long as it is used (`None` only for an
/// in-memory database, which no other process can reach).
#[derive(Debug)]
pub struct Opened {
    pub state: AppState,
    pub lock: Option<DatabaseLock>,
}

/// [`open`] for a purpose.
pub async fn open_for(
    config: &Config,
    purpose: OpenFor,
    access: Access,
) -> Result<Opened, StartError> {
    let mut created = Created::default();
    match prepare(config, &mut created, purpose, access).await {
        Ok(opened) => Ok(opened),
        Err(e) => {
            created.undo();
            Err(e)
        }
    }
}

/// Files and folders this start created, removed again if start-up fails.
#[derive(Debug, Default)]
struct Created(Vec<PathBuf>);

impl Created {
    fn undo(self) {
        for path in self.0.into_iter().rev() {
            let _ = if path.is_dir() {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Data dir, lock, database, master key: everything a command needs before it touches state.
async fn prepare(
    config: &Config,
    created: &mut Created,
    purpose: OpenFor,
    access: Access,
) -> Result<Opened, StartError> {
    let sqlite = config.sqlite_file();
    match access {
        Access::Create => ensure_data_dir(&config.data_dir, created)?,
        Access::Existing => {
            if sqlite.as_ref().is_some_and(|file| !file.is_file()) {
                return Err(no_database(config));
            }
        }
    }
    let lock = take_lock(config, sqlite.as_deref(), created).await?;
    let store = open_store(config, sqlite.as_deref(), created, access).await?;
    match unlock_state(config, &store, created, purpose).await {
        Ok(state) => Ok(Opened { state, lock }),
        Err(e) => {
            store.close().await;
            if let Some(lock) = lock {
                lock.release().await;
            }
            Err(e)
        }
    }
}

/// "no pairgate database at X": a command that only uses a database found none.
fn no_database(config: &Config) -> StartError {
    match config.sqlite_file() {
        Some(file) => StartError::NoDatabase {
            at: file.display().to_string(),
            flag: if config.uses_embedded_sqlite() {
                "--data-dir"
            } else {
                "--database-url"
            },
        },
        None => {
            let mut url = config.effective_database_url();
            if let Ok(mut parsed) = url::Url::parse(&url) {
                let _ = parsed.set_password(None);
                parsed.set_query(None);
                url = parsed.to_string();
            }
            StartError::NoDatabase {
                at: url,
                flag: "--database-url",
            }
        }
    }
}

/// Takes the database's in-use lock, shared. A restore holding it refuses the start.
async fn take_lock(
    config: &Config,
    sqlite: Option<&Path>,
    created: &mut Created,
) -> Result<Option<DatabaseLock>, StartError> {
    let url = config.effective_database_url();
    let taken = match sqlite {
        Some(file) => {
            let path = pairgate_store::sqlite_lock_path(file);
            let existed = path.exists();
            let lock = DatabaseLock::sqlite(file, LockMode::Shared);
            if lock.is_ok() && !existed {
                created.0.push(path);
            }
            lock
        }
        // In memory: private to this process, nobody else to exclude.
        None if url.starts_with("sqlite:") => return Ok(None),
        None => DatabaseLock::postgres(&url, LockMode::Shared).await,
    };
    match taken {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Busy) => Err(StartError::Busy(
            "a `pairgate restore` is replacing this database; try again when it has finished"
                .into(),
        )),
        Err(other) => Err(StartError::Database(other.to_string())),
    }
}

/// Master key, gateway secret, plugins and limits over an opened store.
async fn unlock_state(
    config: &Config,
    store: &Store,
    created: &mut Created,
    purpose: OpenFor,
) -> Result<AppState, StartError> {
    let (master, key_file) = crate::engine::keys::load_master_key(config, store, true).await?;
    created.0.extend(key_file);
    let secret = crate::engine::keys::load_gateway_secret(&master, store).await?;
    let keys = crate::engine::keys::GatewayKeys::new(master, secret)?;
    let relay = match purpose {
        OpenFor::Serve => crate::engine::providers::ProviderRegistry::start(config)?,
        OpenFor::Command => crate::engine::providers::ProviderRegistry::without_plugins(config)?,
    };
    let backend = match (config.limits_backend.as_str(), &config.redis_url) {
        ("redis", Some(url)) => crate::engine::limits::LimitsBackend::Redis { url: url.clone() },
        _ => crate::engine::limits::LimitsBackend::Local,
    };
    let options = crate::engine::limits::LimiterOptions {
        namespace: config.redis_namespace.clone(),
        ..crate::engine::limits::LimiterOptions::default()
    };
    let limiter = crate::engine::limits::Limiter::with_options(backend, store.clone(), options)
        .await
        .map_err(|e| StartError::Limits(e.to_string()))?;
    Ok(AppState::new(
        config.clone(),
        store.clone(),
        keys,
        relay,
        limiter,
    ))
}

/// Opens and migrates the configured database. A new SQLite file is created 0600 before SQLite
/// opens it, so its WAL and shared-memory files (which SQLite creates with the database file's
/// mode) are 0600 too; an existing one open to other users is tightened.
async fn open_store(
    config: &Config,
    sqlite: Option<&Path>,
    created: &mut Created,
    access: Access,
) -> Result<Store, StartError> {
    if let Some(path) = sqlite {
        if !path.exists() {
            let mut new = std::fs::OpenOptions::new();
            new.write(true).create_new(true).mode(0o600);
            new.open(path).map_err(|e| {
                StartError::Database(format!("cannot create {}: {e}", path.display()))
            })?;
            created.0.push(path.to_path_buf());
            for suffix in ["-wal", "-shm"] {
                created.0.push(sidecar(path, suffix));
            }
        }
        tighten(path);
    }
    let store = Store::connect(&config.effective_database_url(), &StoreOptions::default())
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    let checked = async {
        if access == Access::Existing {
            // Before migrating: a database nothing was ever sealed in was never started.
            match store.meta_get(crate::engine::keys::VERIFIER).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err(no_database(config)),
            }
        }
        store
            .migrate()
            .await
            .map_err(|e| StartError::Database(e.to_string()))
    }
    .await;
    if let Err(e) = checked {
        store.close().await;
        return Err(e);
    }
    if let Some(path) = sqlite {
        tighten(path);
    }
    Ok(store)
}

/// `<database><suffix>`: SQLite's `-wal` and `-shm` files.
fn sidecar(database: &Path, suffix: &str) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Makes the database and its WAL and shared-memory files private to this user (0600) when
/// they are open to others (a database from before files were created private).
fn tighten(database: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let path = sidecar(database, suffix);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::warn!(
                    file = %path.display(),
                    "{} was open to other users (mode {mode:o}); made it private (0600)",
                    path.display()
                ),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    error = %e,
                    "{} is open to other users (mode {mode:o}) and cannot be made private",
                    path.display()
                ),
            }
        }
    }
}

/// Creates the data dir (0700; missing ancestors get the usual mode) and checks it is writable.
fn ensure_data_dir(dir: &Path, created: &mut Created) -> Result<(), StartError> {
    let fail = |reason: String| StartError::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.exists() {
        // Record each missing ancestor so a failed start leaves nothing behind.
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|p| !p.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(e.to_string()))?;
        created.0.extend(missing);
    }
    if !dir.is_dir() {
        return Err(fail("not a directory".into()));
    }
    let probe = dir.join(format!(".pairgate-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail(format!("not writable ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Why the gateway did not start. Each is one line for the owner.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("data directory {path} is not usable: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("{0}")]
    Database(String),
    /// A command that only uses a database found none (and created nothing).
    #[error("no pairgate database at {at}; pass {flag} or start `pairgate serve` first")]
    NoDatabase { at: String, flag: &'static str },
    /// Another process holds the database in a conflicting way (a restore, or a gateway).
    #[error("{0}")]
    Busy(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("plugins: {0}")]
    Plugins(String),
    #[error("limits: {0}")]
    Limits(String),
    #[error("{0}")]
    /// The certificate or key files (see `http::tls`).
    Tls(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
    #[error("server failed: {0}")]
    Serve(String),
}

impl StartError {
    /// sysexits(3) codes: 64 usage/config, 66 no database (nothing created), 69 unavailable,
    /// 73 cannot create, 75 busy (try again later), 78 config (keys).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 64,
            StartError::NoDatabase { .. } => 66,
            StartError::Busy(_) => 75,
            StartError::Listen { .. } | StartError::Database(_) | StartError::Limits(_) => 69,
            StartError::DataDir { .. } => 73,
            StartError::MasterKey(_) | StartError::Plugins(_) | StartError::Tls(_) => 78,
            StartError::Runtime(_) | StartError::Serve(_) => 70,
        }
    }
}

impl From<crate::engine::providers::ProvidersError> for StartError {
    fn from(e: crate::engine::providers::ProvidersError) -> Self {
        StartError::Plugins(e.0)
    }
}

impl From<crate::engine::keys::KeyError> for StartError {
    fn from(e: crate::engine::keys::KeyError) -> Self {
        match e {
            crate::engine::keys::KeyError::MasterKey(m) => StartError::MasterKey(m),
            crate::engine::keys::KeyError::Database(m) => StartError::Database(m),
        }
    }
}

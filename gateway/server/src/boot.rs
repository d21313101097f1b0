//! Opening the gateway's state, shared by `serve` and the CLI commands: data dir, database and
//! migrations, master key, gateway secret. All-or-nothing: whatever this call created is removed
//! if it fails.

use std::path::{Path, PathBuf};

use pairgate_store::{Store, StoreOptions};

use crate::config::Config;
use crate::serve::StartError;
use crate::state::AppState;

/// Opens everything a command needs, or nothing.
pub async fn open(config: &Config) -> Result<AppState, StartError> {
    open_for(config, Purpose::Serve).await
}

/// What the state is opened for: serving loads the plugins; CLI commands need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Command,
}

/// [`open`] for a purpose.
pub async fn open_for(config: &Config, purpose: Purpose) -> Result<AppState, StartError> {
    let mut created = Created::default();
    match prepare(config, &mut created, purpose).await {
        Ok(state) => Ok(state),
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

/// Data dir, database, migrations: everything a command needs before it touches state.
async fn prepare(
    config: &Config,
    created: &mut Created,
    purpose: Purpose,
) -> Result<AppState, StartError> {
    ensure_data_dir(&config.data_dir, created)?;
    let store = open_store(config, created).await?;
    let (master, key_file) = match crate::keys::load_master_key(config, &store, true).await {
        Ok(loaded) => loaded,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    created.0.extend(key_file);
    let secret = match crate::keys::load_gateway_secret(&master, &store).await {
        Ok(secret) => secret,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let keys = crate::keys::GatewayKeys::new(master, secret)?;
    let relay = match purpose {
        Purpose::Serve => crate::relay::Relay::start(config),
        Purpose::Command => crate::relay::Relay::without_plugins(config),
    };
    let relay = match relay {
        Ok(r) => r,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let backend = match (config.limits_backend.as_str(), &config.redis_url) {
        ("redis", Some(url)) => crate::limits::LimitsBackend::Redis { url: url.clone() },
        _ => crate::limits::LimitsBackend::Local,
    };
    let options = crate::limits::LimiterOptions {
        namespace: config.redis_namespace.clone(),
        ..crate::limits::LimiterOptions::default()
    };
    let limiter = match crate::limits::Limiter::with_options(backend, store.clone(), options).await
    {
        Ok(l) => l,
        Err(e) => {
            store.close().await;
            return Err(StartError::Limits(e.to_string()));
        }
    };
    Ok(AppState::new(config.clone(), store, keys, relay, limiter))
}

/// Opens and migrates the configured database. Used by `serve` and by the CLI commands.
async fn open_store(config: &Config, created: &mut Created) -> Result<Store, StartError> {
    if config.uses_embedded_sqlite() {
        let path = config.sqlite_path();
        if !path.exists() {
            created.0.push(path.clone());
            for suffix in ["-wal", "-shm"] {
                created
                    .0
                    .push(PathBuf::from(format!("{}{suffix}", path.display())));
            }
        }
    }
    let store = Store::connect(&config.effective_database_url(), &StoreOptions::default())
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(StartError::Database(e.to_string()));
    }
    Ok(store)
}

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
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
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

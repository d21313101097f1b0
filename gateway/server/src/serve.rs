//! Start-up and shutdown of `pairgate serve`: bind, prepare the data dir, open and migrate the
//! database, serve, and drain in-flight requests on SIGINT/SIGTERM.
//!
//! Start-up is all-or-nothing: the listener is bound first (cheap to undo), and whatever this
//! start created on disk (data dir, SQLite file) is removed again if a later step fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pairgate_store::{Store, StoreOptions};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigErrors};
use crate::state::AppState;

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
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
    #[error("server failed: {0}")]
    Serve(String),
}

impl StartError {
    /// sysexits(3) codes: 64 usage/config, 69 unavailable, 73 cannot create, 78 config (keys).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 64,
            StartError::Listen { .. } | StartError::Database(_) => 69,
            StartError::DataDir { .. } => 73,
            StartError::MasterKey(_) => 78,
            StartError::Runtime(_) | StartError::Serve(_) => 70,
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

/// Runs the gateway until a shutdown signal, then drains.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    crate::telemetry::init(&config);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Listen {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
    if !config.public_url_explicit
        && let Ok(addr) = listener.local_addr()
    {
        config.public_url = crate::config::default_public_url(addr);
    }
    let mut created = Created::default();
    let state = match prepare(&config, &mut created).await {
        Ok(state) => state,
        Err(e) => {
            created.undo();
            return Err(e);
        }
    };
    serve(listener, state, config.shutdown_grace).await
}

/// Data dir, database, migrations: everything a command needs before it touches state.
async fn prepare(config: &Config, created: &mut Created) -> Result<AppState, StartError> {
    ensure_data_dir(&config.data_dir, created)?;
    let store = open_store(config, created).await?;
    Ok(AppState::new(config.clone(), store))
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

async fn serve(listener: TcpListener, state: AppState, grace: Duration) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Serve(e.to_string()))?;
    // Handlers are installed before the "listening" line, so a signal sent as soon as the
    // gateway says it is up is always handled gracefully.
    let shutdown = shutdown_signal()?;
    let app = crate::routes::app(state.clone());
    tracing::info!(%addr, public_url = %state.config.public_url, backend = ?state.store.backend(), "pairgate listening on http://{addr}");

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        let _ = signalled_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    let outcome = tokio::select! {
        r = server => r.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())),
        () = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the shutdown grace period");
            Ok(())
        }
    };
    state.shutdown().await;
    tracing::info!("pairgate stopped");
    outcome.map_err(StartError::Serve)
}

/// Registers SIGINT and SIGTERM handlers now; the returned future completes on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let fail =
        |e: std::io::Error| StartError::Serve(format!("cannot install signal handlers: {e}"));
    let mut int = signal(SignalKind::interrupt()).map_err(fail)?;
    let mut term = signal(SignalKind::terminate()).map_err(fail)?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}

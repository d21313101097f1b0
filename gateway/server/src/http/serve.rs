//! Start-up and shutdown of `pairgate serve`: bind, prepare the data dir, open and migrate the
//! database, serve, and drain in-flight requests on SIGINT/SIGTERM.
//!
//! Start-up is all-or-nothing: the listener is bound first (cheap to undo), and whatever this
//! start created on disk (data dir, SQLite file) is removed again if a later step fails.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::boot::StartError;
use crate::config::Config;
use crate::http::conn::OnThreads;
use crate::state::AppState;

/// Meta key holding the public URL of the last `serve` (used by CLI commands).
pub const SERVED_URL: &str = "served_public_url";
/// Meta key holding the address the last `serve` listened on, as `http(s)://IP:PORT` (where
/// `doctor` looks for a running gateway).
pub const SERVED_LISTEN: &str = "served_listen_url";

/// Runs the gateway until a shutdown signal, then drains.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    crate::http::telemetry::init(&config);
    // Certificate problems are found before anything else is touched.
    let tls = config
        .tls
        .as_ref()
        .map(crate::http::tls::Tls::new)
        .transpose()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Listen {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Listen {
                    addr: format!("{addr} (metrics.listen)"),
                    reason: e.to_string(),
                })?,
        ),
        None => None,
    };
    if !config.public_url_explicit
        && let Ok(addr) = listener.local_addr()
    {
        config.public_url = crate::config::default_public_url(addr);
        if tls.is_some() {
            let _ = config.public_url.set_scheme("https");
        }
    }
    let crate::boot::Opened { state, lock } = crate::boot::open(&config).await?;
    // Held until the process ends: `restore` refuses while any gateway holds it.
    let _lock = keep_lock(lock);
    // Before anything is served: rows a hard kill left in the journal go into the database (and
    // their spends into the budgets the limits read).
    if config.ledger_journal
        && let Err(e) = state
            .ledger
            .open_journal(&config.data_dir, &state.limiter)
            .await
    {
        state.shutdown().await;
        return Err(StartError::Database(e.to_string()));
    }
    // CLI commands on this machine embed the URL the gateway really serves on in pairing strings
    // (unless public_url is configured, which always wins); doctor checks the address.
    let listen_url = listener.local_addr().ok().map(|addr| {
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    });
    let recorded = async {
        state
            .store
            .meta_set(SERVED_URL, config.public_url.as_str())
            .await?;
        if let Some(url) = &listen_url {
            state.store.meta_set(SERVED_LISTEN, url).await?;
        }
        Ok::<(), pairgate_store::StoreError>(())
    };
    if let Err(e) = recorded.await {
        state.shutdown().await;
        return Err(StartError::Database(e.to_string()));
    }
    match crate::domain::owner::setup_token_if_needed(&state).await {
        Ok(Some(token)) => tracing::warn!(
            "no owner account yet: create it at {}/admin/setup#{token} (this link works once and is replaced at every start), or run `pairgate owner create USERNAME`",
            config.public_url.as_str().trim_end_matches('/')
        ),
        Ok(None) => {}
        Err(e) => {
            state.shutdown().await;
            return Err(StartError::Database(e.to_string()));
        }
    }
    crate::base::metrics::install();
    let counts = state.ledger.counts();
    crate::base::metrics::before_render(move || {
        let (recorded, finished) = counts.read();
        crate::base::metrics::ledger(recorded, finished);
    });
    if let Err(e) = crate::domain::master_key::spawn_sighup_reloader(state.clone()) {
        state.shutdown().await;
        return Err(StartError::Serve(format!(
            "cannot install the SIGHUP handler: {e}"
        )));
    }
    let _janitor = state.limiter.spawn_janitor();
    // Other replicas' grant and credential changes (PostgreSQL `NOTIFY`), for the caches.
    let _changes = state.store.listen_for_changes();
    let housekeeping = state.clone();
    tokio::spawn(async move {
        loop {
            // A rotated credential's old value goes once its grace has ended.
            if let Err(e) = housekeeping
                .store
                .clear_expired_previous(crate::base::clock::now_ms())
                .await
            {
                tracing::warn!(error = %e, "clearing expired credential values failed");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    if let Some(metrics) = metrics_listener {
        serve_metrics(metrics, &config);
    }
    serve(listener, tls, state, config.shutdown_grace).await
}

/// How many scrapers may be connected to the separate metrics listener at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` on its own listener (`metrics.listen`) for the life of the process.
fn serve_metrics(listener: TcpListener, config: &Config) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, token = config.metrics_token.is_some(), "metrics on http://{addr}/metrics");
    }
    let app = crate::http::routes::health::metrics_listener_app(config.metrics_token.clone());
    let listener = crate::http::conn::Plain::new(
        listener,
        crate::http::conn::Slots::new(METRICS_MAX_CONNECTIONS),
    );
    let timeouts = crate::http::conn::Timeouts::of(config);
    tokio::spawn(crate::http::conn::serve(
        listener,
        app,
        timeouts,
        std::future::pending(),
        None,
    ));
}

async fn serve(
    listener: TcpListener,
    tls: Option<crate::http::tls::Tls>,
    state: AppState,
    grace: Duration,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Serve(e.to_string()))?;
    // Handlers are installed before the "listening" line, so a signal sent as soon as the
    // gateway says it is up is always handled gracefully.
    let shutdown = shutdown_signal()?;
    let app = crate::http::routes::router(state.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, public_url = %state.config.public_url, backend = ?state.store.backend(), "pairgate listening on {scheme}://{addr}");

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        let _ = signalled_tx.send(());
    };
    let timeouts = crate::http::conn::Timeouts::of(&state.config);
    let slots = crate::http::conn::Slots::new(state.config.max_connections);
    let threads =
        match state.relay.http.threads() {
            0 => None,
            n => Some(crate::http::spread::Spread::start(n).map_err(|e| {
                StartError::Serve(format!("cannot start the connection threads: {e}"))
            })?),
        };
    let server = match (tls, threads) {
        (None, spread) => {
            let listener = crate::http::conn::Plain::new(listener, slots);
            let threads = spread.map(|spread| OnThreads { spread, tls: None });
            tokio::spawn(crate::http::conn::serve(
                listener, app, timeouts, shutdown, threads,
            ))
        }
        // Each connection's handshake runs on the thread that then serves it.
        (Some(tls), Some(spread)) => {
            let listener = crate::http::conn::Plain::new(listener, slots);
            let _reloader = tls.spawn_reloader();
            let threads = OnThreads {
                spread,
                tls: Some(tls.acceptor()),
            };
            tokio::spawn(crate::http::conn::serve(
                listener,
                app,
                timeouts,
                shutdown,
                Some(threads),
            ))
        }
        (Some(tls), None) => {
            let listener = tls.listener(listener, slots);
            let _reloader = tls.spawn_reloader();
            tokio::spawn(crate::http::conn::serve(
                listener, app, timeouts, shutdown, None,
            ))
        }
    };
    let outcome = tokio::select! {
        r = server => r.map_err(|e| e.to_string()),
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

/// Keeps the database lock for the life of the process. A PostgreSQL lock lives on its own
/// connection: it is checked every 30 s and taken again if the connection was lost.
fn keep_lock(lock: Option<pairgate_store::DatabaseLock>) -> Option<tokio::task::JoinHandle<()>> {
    let mut lock = lock?;
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            if let Err(e) = lock.refresh().await {
                tracing::warn!(error = %e, "the database in-use lock was lost and cannot be taken again: `pairgate restore` would not see this gateway");
            }
        }
    }))
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
